//! `weft balance`, `weft tx`, `weft chain` and `weft block`: read-only
//! questions to the node's ledger API. Each prints text, or with `--json`
//! the API's JSON as-is.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use weft_ledger::{Address, TxId};

use super::{memo_text, now_ms, print_json, str_field, u64_field, utc};
use crate::{client::Client, commands::human_duration};

/// A checked request, ready to send.
pub(super) enum Request {
    Balance(Address),
    Tx(TxId),
    Chain,
    /// A height or a hash, as the URL's last segment.
    Block(String),
}

/// The account `balance` asks about: an address, a wallet's name, or the
/// default wallet.
pub(super) fn account(wallets: &Path, arg: Option<&str>) -> anyhow::Result<Address> {
    let Some(arg) = arg else {
        return Ok(super::wallet::load(wallets, None)?.address());
    };
    match arg.parse::<Address>() {
        Ok(address) => Ok(address),
        Err(e) if weft_ledger::wallet::check_name(arg).is_ok() => {
            match weft_ledger::wallet::load(wallets, arg) {
                Ok(w) => Ok(w.address()),
                Err(weft_ledger::wallet::WalletError::NotFound { .. }) => {
                    bail!("{arg:?} is neither an address nor a wallet name ({e})")
                }
                Err(other) => Err(other.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn parse_txid(text: &str) -> anyhow::Result<TxId> {
    text.parse::<TxId>().map_err(|e| anyhow!(e))
}

/// A height (digits) or a block hash (64 hex characters).
pub(super) fn parse_block(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let height: u64 = text
            .parse()
            .map_err(|_| anyhow!("block height {text} is too large"))?;
        return Ok(height.to_string());
    }
    match weft_ledger::parse_hex32(text) {
        Some(hash) => Ok(weft_ledger::hex(&hash)),
        None => bail!("{text:?} is not a block height or a block hash (64 hex characters)"),
    }
}

pub(super) async fn run(client: &Client, request: &Request, json: bool) -> anyhow::Result<()> {
    match request {
        Request::Balance(address) => {
            let account: Value = client.get(&format!("/v1/accounts/{address}")).await?;
            if json {
                return print_json(&account);
            }
            print_balance(&account);
        }
        Request::Tx(id) => {
            let tx: Value = client.get(&format!("/v1/transactions/{id}")).await?;
            if json {
                return print_json(&tx);
            }
            print_tx(&tx);
        }
        Request::Chain => {
            let chain: Value = client.get("/v1/chain").await?;
            if json {
                return print_json(&chain);
            }
            print_chain(&chain);
        }
        Request::Block(block) => {
            let b: Value = client
                .get(&format!("/v1/blocks/{block}"))
                .await
                .with_context(|| format!("block {block}"))?;
            if json {
                return print_json(&b);
            }
            print_block(&b);
        }
    }
    Ok(())
}

fn print_balance(a: &Value) {
    let balance = u64_field(a, "balance");
    let pending_in = u64_field(a, "pending_in");
    let pending_out = u64_field(a, "pending_out");
    println!("address:    {}", str_field(a, "address"));
    println!("balance:    {balance} (confirmed)");
    println!("pending:    +{pending_in} incoming, -{pending_out} outgoing");
    println!(
        "spendable:  {} (balance minus pending outgoing)",
        balance.saturating_sub(pending_out)
    );
    println!("next nonce: {}", u64_field(a, "next_nonce"));
}

/// A transaction's status line, then its fields.
fn print_tx(t: &Value) {
    let id = str_field(t, "id");
    match t["status"].as_str() {
        Some("pending") => println!("{id}: pending (in the mempool, not yet in a block)"),
        Some("confirmed") => {
            let c = u64_field(t, "confirmations");
            println!(
                "{id}: confirmed at height {} with {c} confirmation{}",
                u64_field(t, "height"),
                if c == 1 { "" } else { "s" }
            );
            println!("block:  {}", str_field(t, "block"));
        }
        Some("unknown") => println!("{id}: unknown to this node"),
        other => println!("{id}: {}", other.unwrap_or("?")),
    }
    if t["tx"].is_object() {
        print_tx_fields(&t["tx"]);
    }
}

fn print_tx_fields(tx: &Value) {
    println!("from:   {}", str_field(tx, "from"));
    println!("to:     {}", str_field(tx, "to"));
    println!("amount: {}", u64_field(tx, "amount"));
    println!("fee:    {}", u64_field(tx, "fee"));
    println!("nonce:  {}", u64_field(tx, "nonce"));
    let memo = tx["memo"].as_str().unwrap_or("");
    if !memo.is_empty() {
        println!("memo:   {}", memo_text(memo));
    }
}

fn print_chain(c: &Value) {
    println!("genesis:    {}", str_field(c, "genesis"));
    println!("height:     {}", u64_field(c, "height"));
    println!("tip:        {}", str_field(c, "tip"));
    println!("difficulty: {}", u64_field(c, "difficulty"));
    println!("work:       {}", str_field(c, "work"));
    println!(
        "mempool:    {} transaction(s), {} bytes",
        u64_field(&c["mempool"], "count"),
        u64_field(&c["mempool"], "bytes")
    );
    let sync = &c["sync"];
    match (sync["state"].as_str(), sync["best_height"].as_u64()) {
        (Some("syncing"), Some(best)) => println!("sync:       syncing (best known height {best})"),
        (state, _) => println!("sync:       {}", state.unwrap_or("?")),
    }
    println!(
        "rules:      a block every {}ms, reward {}",
        u64_field(c, "block_interval_ms"),
        u64_field(c, "reward")
    );
    let mining = c["mining"].as_bool().unwrap_or(false);
    println!("mining:     {}", if mining { "yes" } else { "no" });
}

fn print_block(b: &Value) {
    let main = b["main"].as_bool().unwrap_or(false);
    println!(
        "block {} {} ({})",
        u64_field(b, "height"),
        str_field(b, "hash"),
        if main { "main chain" } else { "side chain" }
    );
    let ts = u64_field(b, "timestamp");
    let age = human_duration(now_ms().saturating_sub(ts) / 1000);
    println!("parent:        {}", str_field(b, "parent"));
    println!("time:          {} ({age} ago)", utc(ts));
    println!("difficulty:    {}", u64_field(b, "difficulty"));
    println!("nonce:         {}", u64_field(b, "nonce"));
    println!("miner:         {}", str_field(b, "miner"));
    println!("tx root:       {}", str_field(b, "tx_root"));
    println!("size:          {} bytes", u64_field(b, "size"));
    println!("confirmations: {}", u64_field(b, "confirmations"));
    let txs = b["txs"].as_array().cloned().unwrap_or_default();
    println!("transactions:  {}", txs.len());
    for tx in &txs {
        println!(
            "  {}  {} -> {}  amount {}  fee {}",
            str_field(tx, "id"),
            str_field(tx, "from"),
            str_field(tx, "to"),
            u64_field(tx, "amount"),
            u64_field(tx, "fee"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_arguments() {
        assert_eq!(parse_block("0").unwrap(), "0");
        assert_eq!(parse_block("0012").unwrap(), "12");
        let hash = "AB".repeat(32);
        assert_eq!(parse_block(&hash).unwrap(), "ab".repeat(32));
        assert!(parse_block("99999999999999999999999").is_err());
        assert!(parse_block("tip").is_err());
        assert!(parse_block("").is_err());
    }

    #[test]
    fn balance_takes_an_address_or_a_wallet_name() {
        let tmp = tempfile::tempdir().unwrap();
        let err = account(tmp.path(), None).unwrap_err().to_string();
        assert!(err.contains("weft wallet new"), "{err}");
        let w = weft_ledger::wallet::create(tmp.path(), "alice").unwrap();
        assert_eq!(account(tmp.path(), Some("alice")).unwrap(), w.address());
        assert_eq!(account(tmp.path(), None).unwrap(), w.address());
        let a = w.address().to_string();
        assert_eq!(account(tmp.path(), Some(&a)).unwrap(), w.address());
        let err = account(tmp.path(), Some("bob")).unwrap_err().to_string();
        assert!(err.contains("neither"), "{err}");
        assert!(account(tmp.path(), Some("not an address")).is_err());
    }
}

//! `weft send`: check the arguments and the wallet offline, then read the
//! chain's genesis hash and the sender's account, sign with the next nonce,
//! submit, and (with `--wait`) poll the transaction until it has enough
//! confirmations, the timeout passes, or Ctrl-C.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use weft_ledger::{tx::MAX_MEMO, wallet::Wallet, Address, Transaction};

use super::{print_json, str_field, to_hex, u64_field, SendArgs};
use crate::client::Client;

/// How often `--wait` asks about the transaction.
const POLL: Duration = Duration::from_millis(500);
/// Polls in a row that may answer "unknown" before the transaction is
/// taken as dropped (covers a reorganisation moving it back to the mempool).
const UNKNOWN_POLLS: u32 = 6;

/// A checked `send`: everything but what the node must tell us.
pub(super) struct Plan {
    wallet: Wallet,
    to: Address,
    amount: u64,
    fee: u64,
    memo: Vec<u8>,
    wait: Option<Wait>,
}

struct Wait {
    confirmations: u64,
    timeout: Duration,
}

/// Checks the arguments, then loads the wallet; contacts nobody.
pub(super) fn plan(args: &SendArgs, wallets: &Path) -> anyhow::Result<Plan> {
    let to: Address = args.to.parse()?;
    let amount = parse_amount(&args.amount)?;
    let memo = args.memo.clone().unwrap_or_default().into_bytes();
    if memo.len() > MAX_MEMO {
        bail!(
            "the memo is {} bytes; at most {MAX_MEMO} are allowed",
            memo.len()
        );
    }
    if amount.checked_add(args.fee).is_none() {
        bail!("amount plus fee is larger than any balance can be");
    }
    let wait = if args.wait {
        if args.confirmations == 0 {
            bail!("--confirmations must be at least 1");
        }
        if args.timeout == 0 {
            bail!("--timeout must be at least 1 second");
        }
        Some(Wait {
            confirmations: args.confirmations,
            timeout: Duration::from_secs(args.timeout),
        })
    } else {
        None
    };
    let wallet = super::wallet::load(wallets, args.from.as_deref())?;
    if wallet.address() == to {
        bail!(
            "{to} is the address of wallet {} itself; a transfer needs another recipient",
            wallet.name
        );
    }
    Ok(Plan {
        wallet,
        to,
        amount,
        fee: args.fee,
        memo,
        wait,
    })
}

fn parse_amount(text: &str) -> anyhow::Result<u64> {
    let amount: u64 = text.trim().parse().map_err(|_| {
        anyhow!("amount {text:?} is not a whole number of base units (e.g. 250000)")
    })?;
    if amount == 0 {
        bail!("the amount must be more than zero");
    }
    Ok(amount)
}

pub(super) async fn run(client: &Client, plan: &Plan, json: bool) -> anyhow::Result<()> {
    let chain: Value = client.get("/v1/chain").await?;
    let genesis = chain["genesis"]
        .as_str()
        .and_then(weft_ledger::parse_hex32)
        .context("the node's /v1/chain answer has no genesis hash")?;
    let from = plan.wallet.address();
    let account: Value = client.get(&format!("/v1/accounts/{from}")).await?;
    let balance = u64_field(&account, "balance");
    let pending_out = u64_field(&account, "pending_out");
    let nonce = account["next_nonce"]
        .as_u64()
        .context("the node's account answer has no next_nonce")?;
    let have = balance.saturating_sub(pending_out);
    let need = plan.amount.saturating_add(plan.fee);
    if have < need {
        let pending = if pending_out > 0 {
            format!(" ({balance} confirmed, {pending_out} already pending out)")
        } else {
            String::new()
        };
        bail!(
            "insufficient balance: have {have}{pending}, need {need} ({} plus a fee of {}) in wallet {} ({from})",
            plan.amount,
            plan.fee,
            plan.wallet.name
        );
    }
    let tx = Transaction::sign(
        &plan.wallet.key,
        &genesis,
        plan.to,
        plan.amount,
        plan.fee,
        nonce,
        plan.memo.clone(),
    );
    let reply: Value = client
        .post("/v1/transactions", &json!({ "tx": to_hex(&tx.encode()) }))
        .await?;
    let id = reply["id"]
        .as_str()
        .map_or_else(|| tx.id().to_string(), str::to_owned);
    let Some(wait) = &plan.wait else {
        if json {
            return print_json(&reply);
        }
        println!("{id}");
        return Ok(());
    };
    if !json {
        // The id first, so it is known even if waiting fails.
        println!("{id}");
    }
    let status = wait_for(client, &id, wait, json).await?;
    if json {
        return print_json(&status);
    }
    println!(
        "confirmed at height {} with {} confirmation(s), in block {}",
        u64_field(&status, "height"),
        u64_field(&status, "confirmations"),
        str_field(&status, "block")
    );
    Ok(())
}

/// Polls until the transaction has enough confirmations; returns the last
/// status. Ctrl-C stops waiting (the transaction stays submitted).
async fn wait_for(client: &Client, id: &str, wait: &Wait, json: bool) -> anyhow::Result<Value> {
    let bar = spinner(json);
    let result = tokio::select! {
        r = poll(client, id, wait, &bar) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!(
            "interrupted; transaction {id} was submitted: follow it with `weft tx {id}`"
        )),
    };
    bar.finish_and_clear();
    result
}

async fn poll(client: &Client, id: &str, wait: &Wait, bar: &ProgressBar) -> anyhow::Result<Value> {
    let n = wait.confirmations;
    let deadline = Instant::now() + wait.timeout;
    let mut unknown = 0;
    bar.set_message(format!("waiting for confirmations: 0/{n}"));
    loop {
        let status: Value = client.get(&format!("/v1/transactions/{id}")).await?;
        let state = status["status"].as_str().unwrap_or("?");
        let c = if state == "confirmed" {
            u64_field(&status, "confirmations")
        } else {
            0
        };
        bar.set_message(format!("waiting for confirmations: {c}/{n}"));
        if state == "confirmed" && c >= n {
            return Ok(status);
        }
        if state == "unknown" {
            unknown += 1;
            if unknown >= UNKNOWN_POLLS {
                bail!("transaction {id} is no longer known to the node (dropped from the mempool?); check the balance and send again");
            }
        } else {
            unknown = 0;
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s with {c}/{n} confirmation(s) of transaction {id} ({state}); follow it with `weft tx {id}`",
                wait.timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn spinner(json: bool) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_draw_target(if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("250000").unwrap(), 250_000);
        assert!(parse_amount("0").is_err());
        assert!(parse_amount("-5").is_err());
        assert!(parse_amount("1.5").is_err());
        assert!(parse_amount("18446744073709551616").is_err());
    }
}

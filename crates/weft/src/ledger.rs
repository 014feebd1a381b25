//! Ledger commands: `wallet`, `genesis`, `balance`, `send`, `tx`, `chain`
//! and `block`.
//!
//! `wallet` and `genesis` work offline: wallets are key files in
//! `<data dir>/wallets` ([`weft_ledger::wallet`]), and a genesis is a file
//! the command writes. The others are clients of the node's `/v1` ledger
//! API. Every argument (addresses, amounts, ids, the wallet to sign with) is
//! checked before the node is contacted, so a mistake is reported on one
//! line even when no node runs. Nothing here outlives the command: there is
//! no state besides the wallet files.
//!
//! - [`wallet`]: `weft wallet new|list|address|import|export`.
//! - [`genesis`]: `weft genesis new`.
//! - [`query`]: `weft balance`, `weft tx`, `weft chain`, `weft block`.
//! - [`send`]: `weft send`, and waiting for confirmations.

mod genesis;
mod query;
mod send;
mod wallet;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{cli::Cli, client::Client};

/// The ledger's subcommands, flattened into `weft`'s own.
#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Manage wallets: the keys that sign payments (kept in <data dir>/wallets)
    #[command(after_help = "Examples:
  weft wallet new                      create the wallet \"default\"
  weft wallet new --name savings
  weft wallet list
  weft wallet address                  the default wallet's address
  weft wallet export savings --yes > savings.key
  weft --data-dir ./b wallet import savings.key")]
    Wallet {
        #[command(subcommand)]
        command: WalletCommand,
    },

    /// Write the genesis of a new network (its first block and its rules)
    #[command(after_help = "Examples:
  weft genesis new --alloc weft1abc...=100000000000 -o genesis.json
  weft genesis new --alloc \"$(weft wallet address)=5000000000\" \\
      --block-interval 2s --difficulty 1024 --name \"my devnet\" -o devnet.json")]
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },

    /// Show an account's confirmed balance and pending transfers
    #[command(after_help = "Examples:
  weft balance                         the default wallet's account
  weft balance savings                 a wallet by name
  weft balance weft1abc...
  weft balance --json                  the API's JSON: balance, nonce, pending_in, pending_out, ...")]
    Balance {
        /// An address (weft1...) or a wallet name [default: the default wallet]
        account: Option<String>,
    },

    /// Send a payment (amounts are in base units), signed with a wallet
    #[command(after_help = "Examples:
  weft send weft1abc... 250000
  weft send weft1abc... 250000 --fee 2000 --from savings --memo \"invoice 42\"
  weft send weft1abc... 250000 --wait --confirmations 3
  weft send weft1abc... 250000 --json  {\"id\": ..., \"status\": \"pending\"}
The fee goes to the miner. Prints the transaction id; follow it with `weft tx ID`.")]
    Send(SendArgs),

    /// Show a transaction: pending, confirmed (at which height), or unknown
    #[command(after_help = "Examples:
  weft tx 3f9a...c2
  weft tx 3f9a...c2 --json")]
    Tx {
        /// The transaction id (64 hex characters)
        txid: String,
    },

    /// Show the chain: height, tip, difficulty, work, mempool and sync state
    #[command(after_help = "Examples:
  weft chain
  weft chain --json | jq .height")]
    Chain,

    /// Show a block and its transactions, by height or hash
    #[command(after_help = "Examples:
  weft block 0                         the genesis block
  weft block 1234
  weft block 00000a3f...e1 --json")]
    Block {
        /// A height, or a block hash (64 hex characters)
        block: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalletCommand {
    /// Create a wallet with a new random key; prints its name and address
    #[command(after_help = "Examples:
  weft wallet new
  weft wallet new --name savings --json")]
    New {
        /// Wallet name: 1 to 64 characters of A-Z, a-z, 0-9, _ and -
        #[arg(long, default_value = weft_ledger::wallet::DEFAULT_NAME)]
        name: String,
    },

    /// List wallets: name and address
    #[command(after_help = "Examples:
  weft wallet list
  weft wallet list --json | jq -r '.[].address'")]
    List,

    /// Print a wallet's address
    #[command(after_help = "Examples:
  weft wallet address                  the default wallet
  weft wallet address savings")]
    Address {
        /// Wallet name [default: \"default\", or the only wallet]
        name: Option<String>,
    },

    /// Import a key file (as `weft wallet export` prints it, or 64 hex characters)
    #[command(after_help = "Examples:
  weft wallet import savings.key
  weft wallet import seed.hex --name cold")]
    Import {
        /// The key file
        file: PathBuf,
        /// Wallet name [default: the name in the file, else \"default\"]
        #[arg(long)]
        name: Option<String>,
    },

    /// Print a wallet's key file, SECRET KEY included (needs --yes)
    #[command(after_help = "Examples:
  weft wallet export --yes > default.key
  weft wallet export savings --yes
Anyone who sees the output can spend from the wallet.")]
    Export {
        /// Wallet name [default: \"default\", or the only wallet]
        name: Option<String>,
        /// Confirm that the secret key may be printed
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum GenesisCommand {
    /// Write a new genesis file and print its hash (the network's identity)
    #[command(after_help = "Examples:
  weft genesis new --alloc weft1abc...=100000000000 -o genesis.json
  weft genesis new --alloc weft1abc...=5000 --alloc weft1def...=5000 \\
      --block-interval 2s --reward 100 --difficulty 1024 -o devnet.json")]
    New(GenesisArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GenesisArgs {
    /// An initial balance, ADDRESS=AMOUNT in base units (repeatable)
    #[arg(long, value_name = "ADDR=AMOUNT")]
    pub(crate) alloc: Vec<String>,

    /// The block interval the difficulty aims for (e.g. 2s, 500ms, 1m)
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) block_interval: String,

    /// Base units paid to the miner of each block (plus its fees)
    #[arg(long, value_name = "N", default_value_t = 5_000_000_000)]
    pub(crate) reward: u64,

    /// The difficulty of block 1 (expected hashes per block)
    #[arg(long, value_name = "N", default_value_t = 1_048_576)]
    pub(crate) difficulty: u64,

    /// A name for the network, for people
    #[arg(long, default_value = "weft devnet")]
    pub(crate) name: String,

    /// Where to write the genesis JSON
    #[arg(short, long, value_name = "FILE")]
    pub(crate) out: PathBuf,

    /// Replace FILE if it exists
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The recipient's address (weft1...)
    pub(crate) to: String,

    /// The amount, in base units (more than zero)
    #[arg(allow_hyphen_values = true)]
    pub(crate) amount: String,

    /// The fee paid to the miner, in base units
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(crate) fee: u64,

    /// The wallet to pay from [default: \"default\", or the only wallet]
    #[arg(long, value_name = "NAME")]
    pub(crate) from: Option<String>,

    /// A note for the recipient (at most 256 bytes; public)
    #[arg(long, value_name = "TEXT")]
    pub(crate) memo: Option<String>,

    /// Wait until the transaction has --confirmations confirmations
    #[arg(long)]
    pub(crate) wait: bool,

    /// With --wait: how many confirmations to wait for
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) confirmations: u64,

    /// With --wait: give up after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub(crate) timeout: u64,
}

/// Runs a ledger command. `data_dir` is the resolved data dir.
pub(crate) async fn run(cli: &Cli, data_dir: &Path, command: &LedgerCommand) -> anyhow::Result<()> {
    let wallets = data_dir.join(weft_ledger::wallet::DIR_NAME);
    let json = cli.json;
    // Offline commands, and the checks of the others, come first.
    let request = match command {
        LedgerCommand::Wallet { command } => return wallet::run(&wallets, command, json),
        LedgerCommand::Genesis {
            command: GenesisCommand::New(args),
        } => return genesis::new(args, json),
        LedgerCommand::Balance { account } => {
            query::Request::Balance(query::account(&wallets, account.as_deref())?)
        }
        LedgerCommand::Tx { txid } => query::Request::Tx(query::parse_txid(txid)?),
        LedgerCommand::Chain => query::Request::Chain,
        LedgerCommand::Block { block } => query::Request::Block(query::parse_block(block)?),
        LedgerCommand::Send(args) => {
            let plan = send::plan(args, &wallets)?;
            let client = connect(cli, data_dir)?;
            return send::run(&client, &plan, json).await;
        }
    };
    let client = connect(cli, data_dir)?;
    query::run(&client, &request, json).await
}

fn connect(cli: &Cli, data_dir: &Path) -> anyhow::Result<Client> {
    Client::connect(data_dir, cli.api.as_deref(), cli.token.as_deref())
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("?")
}

fn u64_field(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

/// Lowercase hex of any bytes.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Bytes from hex, if it is hex.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A memo for people: its text when it is printable UTF-8, else its hex.
fn memo_text(hex: &str) -> String {
    match from_hex(hex).map(String::from_utf8) {
        Some(Ok(text)) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => format!("0x{hex}"),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex("00ab7f").unwrap(), [0, 0xab, 0x7f]);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }

    #[test]
    fn memos_read_well() {
        assert_eq!(memo_text(&to_hex(b"invoice 42")), "\"invoice 42\"");
        assert_eq!(memo_text("00ff"), "0x00ff");
    }

    #[test]
    fn dates_read_well() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_793_491_200_000), "2026-11-01 00:00:00 UTC");
        assert_eq!(utc(951_827_696_000), "2000-02-29 12:34:56 UTC");
    }
}

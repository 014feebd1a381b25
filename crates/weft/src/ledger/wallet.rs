//! `weft wallet`: key files in `<data dir>/wallets`, with no node needed.

use std::path::Path;

use anyhow::bail;
use serde_json::json;
use weft_ledger::wallet::{self, Wallet};

use super::{print_json, WalletCommand};

pub(super) fn run(dir: &Path, command: &WalletCommand, json: bool) -> anyhow::Result<()> {
    match command {
        WalletCommand::New { name } => {
            let w = wallet::create(dir, name)?;
            let file = wallet::path(dir, &w.name);
            if json {
                return print_json(&json!({
                    "name": w.name,
                    "address": w.address(),
                    "file": file,
                }));
            }
            println!("created wallet {}", w.name);
            println!("address:  {}", w.address());
            println!("key file: {}", file.display());
        }
        WalletCommand::List => {
            let wallets = wallet::list(dir)?;
            if json {
                let list: Vec<_> = wallets
                    .iter()
                    .map(|w| json!({ "name": w.name, "address": w.address() }))
                    .collect();
                return print_json(&json!(list));
            }
            if wallets.is_empty() {
                println!(
                    "no wallets in {}; create one with `weft wallet new`",
                    dir.display()
                );
                return Ok(());
            }
            let width = wallets
                .iter()
                .map(|w| w.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            println!("{:<width$}  ADDRESS", "NAME");
            for w in &wallets {
                println!("{:<width$}  {}", w.name, w.address());
            }
        }
        WalletCommand::Address { name } => {
            let w = load(dir, name.as_deref())?;
            if json {
                return print_json(&json!({ "name": w.name, "address": w.address() }));
            }
            println!("{}", w.address());
        }
        WalletCommand::Import { file, name } => {
            let w = wallet::import(dir, name.as_deref(), file)?;
            let path = wallet::path(dir, &w.name);
            if json {
                return print_json(&json!({
                    "name": w.name,
                    "address": w.address(),
                    "file": path,
                }));
            }
            println!("imported wallet {}", w.name);
            println!("address:  {}", w.address());
            println!("key file: {}", path.display());
        }
        WalletCommand::Export { name, yes } => {
            let w = load(dir, name.as_deref())?;
            if !yes {
                bail!(
                    "the export of wallet {} is its SECRET key: anyone who sees it can spend from {}; run again with --yes to print it",
                    w.name,
                    w.address()
                );
            }
            // The key file is JSON already: the same text with or without --json.
            print!("{}", w.to_json());
        }
    }
    Ok(())
}

/// Wallet `name`, or the default one.
pub(super) fn load(dir: &Path, name: Option<&str>) -> anyhow::Result<Wallet> {
    Ok(match name {
        Some(n) => wallet::load(dir, n)?,
        None => wallet::load_default(dir)?,
    })
}

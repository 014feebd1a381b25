//! `weft genesis new`: writes a genesis file and prints its hash.

use std::{io::Write, path::Path};

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use weft_ledger::{
    genesis::{parse_interval, Alloc},
    Address, Genesis,
};

use super::{now_ms, print_json, utc, GenesisArgs};

pub(super) fn new(args: &GenesisArgs, json: bool) -> anyhow::Result<()> {
    let alloc = args
        .alloc
        .iter()
        .map(|a| parse_alloc(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let interval =
        parse_interval(&args.block_interval).map_err(|e| anyhow!("--block-interval: {e}"))?;
    let genesis = Genesis {
        name: args.name.clone(),
        timestamp: now_ms(),
        alloc,
        block_interval_ms: u64::try_from(interval.as_millis())
            .map_err(|_| anyhow!("--block-interval {} is too long", args.block_interval))?,
        reward: args.reward,
        difficulty: args.difficulty,
    };
    genesis.check()?;
    if args.out.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace it, or choose another file",
            args.out.display()
        );
    }
    write(&args.out, &genesis.to_json())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let hash = genesis.hash();
    if json {
        return print_json(&json!({
            "file": args.out,
            "hash": hash.to_string(),
            "genesis": genesis,
        }));
    }
    println!(
        "wrote {}: {:?}, {} allocation(s) totalling {}, block interval {}ms, reward {}, difficulty {}, time {}",
        args.out.display(),
        genesis.name,
        genesis.alloc.len(),
        genesis.allocated(),
        genesis.block_interval_ms,
        genesis.reward,
        genesis.difficulty,
        utc(genesis.timestamp),
    );
    println!("genesis hash: {hash}");
    Ok(())
}

/// `ADDRESS=AMOUNT`.
fn parse_alloc(text: &str) -> anyhow::Result<Alloc> {
    let Some((address, amount)) = text.split_once('=') else {
        bail!("--alloc {text:?}: expected ADDRESS=AMOUNT");
    };
    let address: Address = address
        .parse()
        .map_err(|e| anyhow!("--alloc {text:?}: {e}"))?;
    let amount: u64 = amount.trim().parse().map_err(|_| {
        anyhow!("--alloc {text:?}: the amount must be a whole number of base units")
    })?;
    if amount == 0 {
        bail!("--alloc {text:?}: the amount must be more than zero");
    }
    Ok(Alloc { address, amount })
}

/// Writes `text` to a temp file next to `path`, then renames it into place.
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_parse() {
        let a = Address([3; 32]);
        let ok = parse_alloc(&format!("{a}=500")).unwrap();
        assert_eq!(ok.address, a);
        assert_eq!(ok.amount, 500);
        assert!(parse_alloc(&format!("{a}")).is_err());
        assert!(parse_alloc(&format!("{a}=0")).is_err());
        assert!(parse_alloc(&format!("{a}=-1")).is_err());
        let err = parse_alloc("weft1nope=5").unwrap_err().to_string();
        assert!(err.contains("not a weft address"), "{err}");
    }
}

//! Content commands: `share`, `get`, `ls`, `pin`, `unpin`, `rm`, `ticket`.
//! Arguments are checked here first (paths, tickets, hashes), so mistakes
//! are reported on one line before any request is made.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use weft_blobs::{Hash, Target};

use crate::client::Client;

/// Checks a hash argument.
pub(crate) fn parse_hash(text: &str) -> anyhow::Result<Hash> {
    Ok(text.parse::<Hash>()?)
}

/// Makes a user path absolute (the node may run in another folder).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current folder")?
        .join(path))
}

pub(crate) fn check_share(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    Ok(())
}

pub(crate) async fn share(client: &Client, path: &Path, json: bool) -> anyhow::Result<()> {
    let abs = absolute(path)?;
    let reply: Value = client
        .post("/v1/blobs", &json!({ "path": abs.to_string_lossy() }))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    let size = reply["size"].as_u64().unwrap_or(0);
    let kind = reply["kind"].as_str().unwrap_or("blob");
    let what = if kind == "collection" {
        format!(
            "{} files, {}",
            reply["files"].as_u64().unwrap_or(0),
            human_bytes(size)
        )
    } else {
        human_bytes(size)
    };
    println!("shared {} ({what}, {kind})", path.display());
    println!("hash:   {}", reply["hash"].as_str().unwrap_or("?"));
    println!("ticket: {}", reply["ticket"].as_str().unwrap_or("?"));
    Ok(())
}

/// Checks `get`'s arguments; returns the parsed target and output path.
pub(crate) fn check_get(target: &str, out: Option<&Path>) -> anyhow::Result<(Target, PathBuf)> {
    let target: Target = target.trim().parse()?;
    let out = match out {
        Some(o) => absolute(o)?,
        None => absolute(Path::new(&target.hash().to_hex()))?,
    };
    if target.kind() == Some(weft_blobs::BlobKind::Collection) && out.is_file() {
        bail!(
            "{} exists and is a file; a folder is needed for a collection",
            out.display()
        );
    }
    if let Some(parent) = out.parent() {
        if parent.exists() && !parent.is_dir() {
            bail!("{} is not a folder", parent.display());
        }
    }
    Ok((target, out))
}

pub(crate) async fn get(
    client: &Client,
    target: &Target,
    out: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let body = match target {
        Target::Ticket(t) => json!({ "ticket": t.to_string(), "out": out.to_string_lossy() }),
        Target::Hash(h) => json!({ "hash": h.to_hex(), "out": out.to_string_lossy() }),
    };
    let started: Value = client.post("/v1/fetches", &body).await?;
    let id = started["id"]
        .as_u64()
        .context("the node did not return a fetch id")?;
    let bar = progress_bar(json);
    let begin = Instant::now();
    let status = tokio::select! {
        s = poll(client, id, &bar) => s?,
        _ = tokio::signal::ctrl_c() => {
            bar.abandon_with_message("interrupted");
            let _: anyhow::Result<Value> = client.delete(&format!("/v1/fetches/{id}")).await;
            bail!("interrupted; run the same command again to resume");
        }
    };
    bar.finish_and_clear();
    match status["state"].as_str() {
        Some("complete") => {
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let total = status["total"].as_u64().unwrap_or(0);
                let received = status["bytes_received"].as_u64().unwrap_or(0);
                let secs = begin.elapsed().as_secs_f64().max(0.001);
                let peers = status["per_peer"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|p| p["bytes"].as_u64().unwrap_or(0) > 0)
                            .count()
                    })
                    .unwrap_or(0);
                println!(
                    "fetched {} ({}) into {}: {} received from {} peer(s) in {:.1}s ({}/s), every chunk verified",
                    status["hash"].as_str().unwrap_or("?"),
                    human_bytes(total),
                    out.display(),
                    human_bytes(received),
                    peers,
                    secs,
                    human_bytes((received as f64 / secs) as u64),
                );
            }
            Ok(())
        }
        _ => bail!(
            "{}",
            status["error"]
                .as_str()
                .unwrap_or("the fetch did not complete")
        ),
    }
}

fn progress_bar(json: bool) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    let style = ProgressStyle::with_template(
        "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

async fn poll(client: &Client, id: u64, bar: &ProgressBar) -> anyhow::Result<Value> {
    loop {
        let status: Value = client.get(&format!("/v1/fetches/{id}")).await?;
        if let Some(total) = status["total"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(status["bytes_done"].as_u64().unwrap_or(0));
        let files = match status["files_total"].as_u64() {
            Some(n) if n > 0 => format!(
                ", {}/{} files",
                status["files_done"].as_u64().unwrap_or(0),
                n
            ),
            _ => String::new(),
        };
        bar.set_message(format!(
            "{} peer(s){files} [{}]",
            status["peers"].as_u64().unwrap_or(0),
            status["state"].as_str().unwrap_or("?")
        ));
        match status["state"].as_str() {
            Some("complete" | "failed" | "cancelled") => return Ok(status),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub(crate) async fn ls(client: &Client, json: bool) -> anyhow::Result<()> {
    let list: Value = client.get("/v1/blobs").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no content; share some with `weft share PATH`");
        return Ok(());
    }
    println!(
        "{:<64}  {:<10}  {:>10}  {:>6}  {:<6}  NAME",
        "HASH", "KIND", "SIZE", "DONE", "PINNED"
    );
    for b in &items {
        println!(
            "{:<64}  {:<10}  {:>10}  {:>5}%  {:<6}  {}",
            b["hash"].as_str().unwrap_or("?"),
            b["kind"].as_str().unwrap_or("?"),
            human_bytes(b["size"].as_u64().unwrap_or(0)),
            b["percent"].as_f64().unwrap_or(0.0),
            if b["pinned"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            b["name"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

pub(crate) async fn simple(
    client: &Client,
    verb: &str,
    hash: &Hash,
    json: bool,
) -> anyhow::Result<()> {
    let reply: Value = match verb {
        "pin" => {
            client
                .post(&format!("/v1/blobs/{hash}/pin"), &json!({}))
                .await?
        }
        "unpin" => {
            client
                .post(&format!("/v1/blobs/{hash}/unpin"), &json!({}))
                .await?
        }
        "rm" => client.delete(&format!("/v1/blobs/{hash}")).await?,
        _ => client.get(&format!("/v1/blobs/{hash}/ticket")).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    match verb {
        "pin" => println!("pinned {hash}"),
        "unpin" => println!("unpinned {hash}"),
        "rm" => println!("removed {hash}"),
        _ => println!("{}", reply["ticket"].as_str().unwrap_or("?")),
    }
    Ok(())
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_well() {
        assert_eq!(super::human_bytes(5), "5 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(64 << 20), "64.0 MiB");
    }
}

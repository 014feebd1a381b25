//! `weft app`: publish a folder of web files as an app; list the apps this
//! node served and set what each may do; decide their payment requests.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{cli::Cli, client::Client};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AppCommand {
    /// Share a folder of web files (with an index.html) as an app; print its hash and URLs
    #[command(after_help = "Examples:
  weft app publish ./apps/board
  weft app publish ./my-app --json | jq -r .url

The app is served in its own browser origin, http://<hash in base32>.app.localhost:<API port>/,
by this node and by any node that can fetch it, and at /app/<hash>/ for tools
that cannot use subdomains.")]
    Publish {
        /// The app's folder
        dir: std::path::PathBuf,
    },
    /// List the apps this node served, with their permissions
    List,
    /// Show or change what an app may do without asking
    #[command(after_help = "Examples:
  weft app permissions 9c1e…7a                      # show them
  weft app permissions 9c1e…7a --uploads allow      # let it add files (64 MiB each)
  weft app permissions 9c1e…7a --payments allow --max-amount 100
  weft app permissions 9c1e…7a --payments ask       # every payment waits for approval

Unchanged permissions keep their values.")]
    Permissions {
        /// The app's hash
        hash: String,
        /// Payments: `ask` (each waits for approval) or `allow` (up to --max-amount each)
        #[arg(long, value_parser = ["ask", "allow"])]
        payments: Option<String>,
        /// With `--payments allow`: the largest payment made without asking
        #[arg(long)]
        max_amount: Option<u64>,
        /// Uploads: `deny` or `allow` (the app may add files to this node)
        #[arg(long, value_parser = ["deny", "allow"])]
        uploads: Option<String>,
    },
    /// List apps' payment requests (pending ones wait for you)
    Requests,
    /// Approve a pending payment request: the node pays from its default wallet
    Approve {
        /// The request's id (see `weft app requests`)
        id: u64,
    },
    /// Deny a pending payment request
    Deny {
        /// The request's id (see `weft app requests`)
        id: u64,
    },
}

pub(crate) async fn run(cli: &Cli, data_dir: &Path, command: &AppCommand) -> anyhow::Result<()> {
    // Arguments are checked before the node is asked for anything.
    match command {
        AppCommand::Publish { dir } => check_dir(dir)?,
        AppCommand::Permissions { hash, .. } => {
            weft_apps::apps::check_hash(hash).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        _ => {}
    }
    let client = Client::connect(data_dir, cli.api.as_deref(), cli.token.as_deref())?;
    match command {
        AppCommand::Publish { dir } => publish(&client, dir, cli.json).await,
        AppCommand::List => {
            let apps: Value = client.get("/v1/apps").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&apps)?);
                return Ok(());
            }
            let list = apps.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no app has been opened through this node yet");
            }
            for a in list {
                println!(
                    "{}  {}  {}\n  {}",
                    a["hash"].as_str().unwrap_or("?"),
                    a["name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or("(no name)"),
                    describe(&a["permissions"]),
                    a["url"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        AppCommand::Permissions {
            hash,
            payments,
            max_amount,
            uploads,
        } => {
            let apps: Value = client.get("/v1/apps").await?;
            let current = apps
                .as_array()
                .and_then(|l| l.iter().find(|a| a["hash"] == hash.as_str()))
                .map(|a| a["permissions"].clone())
                .unwrap_or_else(
                    || json!({ "payments": "ask", "max_amount": 0, "uploads": "deny" }),
                );
            let permissions = if payments.is_none() && max_amount.is_none() && uploads.is_none() {
                current
            } else {
                let mut next = current;
                if let Some(p) = payments {
                    next["payments"] = json!(p);
                }
                if let Some(m) = max_amount {
                    next["max_amount"] = json!(m);
                }
                if let Some(u) = uploads {
                    next["uploads"] = json!(u);
                }
                let info: Value = client
                    .post(&format!("/v1/apps/{hash}/permissions"), &next)
                    .await?;
                info["permissions"].clone()
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&permissions)?);
            } else {
                println!("{hash}: {}", describe(&permissions));
            }
            Ok(())
        }
        AppCommand::Requests => {
            let requests: Value = client.get("/v1/apps/requests").await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&requests)?);
                return Ok(());
            }
            let list = requests.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no payment requests");
            }
            for r in list {
                println!(
                    "#{}  {}  {} to {} (fee {})  app {}  {}",
                    r["id"],
                    r["status"].as_str().unwrap_or("?"),
                    r["amount"],
                    r["to"].as_str().unwrap_or("?"),
                    r["fee"],
                    r["app"].as_str().map_or("?", |a| a.get(..12).unwrap_or(a)),
                    r["memo"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        AppCommand::Approve { id } | AppCommand::Deny { id } => {
            let verb = if matches!(command, AppCommand::Approve { .. }) {
                "approve"
            } else {
                "deny"
            };
            let reply: Value = client
                .post(&format!("/v1/apps/requests/{id}/{verb}"), &json!({}))
                .await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&reply)?);
            } else if let Some(txid) = reply["txid"].as_str() {
                println!("request #{id} approved and paid: transaction {txid}");
            } else {
                println!("request #{id} denied");
            }
            Ok(())
        }
    }
}

/// One line for an app's permissions.
fn describe(p: &Value) -> String {
    let payments = match p["payments"].as_str() {
        Some("allow") => format!("payments: allow up to {} each", p["max_amount"]),
        _ => "payments: ask".to_owned(),
    };
    let uploads = p["uploads"].as_str().unwrap_or("deny");
    format!("{payments}, uploads: {uploads}")
}

/// Shares `dir`, an app folder (checked by [`check_dir`]), as a collection
/// and prints its hash and the URLs it is served at.
async fn publish(client: &Client, dir: &Path, json_out: bool) -> anyhow::Result<()> {
    let abs = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    let reply: Value = client
        .post("/v1/blobs", &json!({ "path": abs.to_string_lossy() }))
        .await?;
    let hash = reply["hash"].as_str().unwrap_or_default().to_owned();
    let port = client
        .base_url()
        .rsplit_once(':')
        .map(|(_, p)| p.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| "4720".into());
    let url = weft_apps::apps::app_url(&hash, &port);
    let path_url = format!("http://127.0.0.1:{port}/app/{hash}/");
    if json_out {
        let out = json!({
            "hash": hash,
            "url": url,
            "path_url": path_url,
            "ticket": reply["ticket"],
            "files": reply["files"],
            "size": reply["size"],
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "published app {} ({} files)",
        dir.display(),
        reply["files"].as_u64().unwrap_or(0)
    );
    println!("hash:   {hash}");
    println!("open:   {url}");
    println!("or:     {path_url}");
    println!("ticket: {}", reply["ticket"].as_str().unwrap_or("?"));
    Ok(())
}

fn check_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        bail!("{} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: an app is a folder with an index.html",
            dir.display()
        );
    }
    if !dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: an app is a folder with an index.html",
            dir.display()
        );
    }
    Ok(())
}

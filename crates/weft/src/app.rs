//! `weft app publish DIR`: shares a folder of web files as an app.

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
}

pub(crate) async fn run(cli: &Cli, data_dir: &Path, command: &AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Publish { dir } => {
            check_dir(dir)?;
            let client = Client::connect(data_dir, cli.api.as_deref(), cli.token.as_deref())?;
            publish(&client, dir, cli.json).await
        }
    }
}

/// Checks that `dir` is an app folder (with `index.html`), shares it as a
/// collection and prints its hash and the URLs it is served at.
pub(crate) async fn publish(client: &Client, dir: &Path, json_out: bool) -> anyhow::Result<()> {
    check_dir(dir)?;
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

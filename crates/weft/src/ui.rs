//! `weft ui`: prints the dashboard's login URL,
//! `http://127.0.0.1:PORT/#token=<token>`, and opens it in a browser.
//!
//! The node is found like every client command finds it (`--api` and
//! `--token`, or the data dir's `api.addr` and `api.token`), and asked for
//! `/v1/node` first, so a stopped node or a wrong token is reported here
//! rather than in the browser. The token travels in the URL's fragment,
//! which browsers never send to a server; the dashboard moves it into the
//! tab's session storage and out of the address bar as it loads.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use weft_node::data_dir::{API_ADDR_FILE, TOKEN_FILE};

use crate::{
    cli::Cli,
    client::{normalize_url, Client},
};

#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// Only print the URL; do not start a browser
    #[arg(long)]
    pub(crate) no_open: bool,
}

pub(crate) async fn run(cli: &Cli, dir: &Path, args: &UiArgs) -> anyhow::Result<()> {
    // Same discovery and errors as every other command; proves the token works.
    let client = Client::connect(dir, cli.api.as_deref(), cli.token.as_deref())?;
    let _: Value = client.get("/v1/node").await?;

    let base = match cli.api.as_deref() {
        Some(api) => normalize_url(api),
        None => normalize_url(&read_small(&dir.join(API_ADDR_FILE))?),
    };
    let token = match cli.token.as_deref() {
        Some(t) => t.trim().to_owned(),
        None => read_small(&dir.join(TOKEN_FILE))?,
    };
    let url = login_url(&base, &token);

    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "url": url }))?);
    } else {
        println!("{url}");
    }
    if !args.no_open && !open_browser(&url).await {
        eprintln!("could not start a browser: open the URL above in one");
    }
    Ok(())
}

fn read_small(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(meta.len() <= 4096, "{} is too large", path.display());
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_owned())
}

/// The dashboard's address with the token in its fragment.
fn login_url(base: &str, token: &str) -> String {
    format!(
        "{}/#token={}",
        base.trim_end_matches('/'),
        fragment_escape(token)
    )
}

/// Percent-encodes everything but unreserved characters (tokens are hex,
/// but `--token` may be anything).
fn fragment_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Starts the desktop's browser on `url`; false if no opener could start it.
///
/// An opener that fails quickly (no browser, no display) counts as failed;
/// one still running after a few seconds (some run the browser in the
/// foreground) is left to it.
async fn open_browser(url: &str) -> bool {
    let openers: &[(&str, &[&str])] = if cfg!(target_os = "macos") {
        &[("open", &[])]
    } else if cfg!(windows) {
        &[("rundll32", &["url.dll,FileProtocolHandler"])]
    } else {
        &[("xdg-open", &[]), ("gio", &["open"])]
    };
    for (program, pre) in openers {
        let spawned = Command::new(program)
            .args(*pre)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = spawned else { continue };
        for _ in 0..30 {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return true,
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if matches!(child.try_wait(), Ok(None)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn login_urls_carry_the_token_in_the_fragment() {
        assert_eq!(
            super::login_url("http://127.0.0.1:4720", "ab12"),
            "http://127.0.0.1:4720/#token=ab12"
        );
        assert_eq!(
            super::login_url("http://127.0.0.1:4720/", "a b&c"),
            "http://127.0.0.1:4720/#token=a%20b%26c"
        );
    }
}

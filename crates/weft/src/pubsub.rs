//! `weft pub TOPIC [MESSAGE]` and `weft sub TOPIC`: app topics from the
//! command line, through the node's `/v1/topics` API.
//!
//! `pub` sends the message as `{"message": ...}` with the shared API
//! client when it is text, and as a raw body when it is not (stdin may be
//! binary). `sub` holds the node's Server-Sent Events stream open and
//! prints each message as it arrives until Ctrl-C, or fails when the node
//! goes away. Topic names and sizes are checked by the node, so the rules
//! live in one place; every error is one line. Nothing outlives the
//! command.

use std::{io::Read, path::Path, time::Duration};

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use weft_node::data_dir::{API_ADDR_FILE, TOKEN_FILE};

use crate::{
    cli::Cli,
    client::{normalize_url, Client},
};

/// Most bytes read from stdin. Messages are limited to 64 KiB by the node,
/// which reports the exact size of anything between the two.
const MAX_STDIN: u64 = 1024 * 1024;

/// `weft pub`: prints the message id, or with `--json` the API's answer.
pub(crate) async fn publish(
    cli: &Cli,
    dir: &Path,
    topic: &str,
    message: Option<&str>,
) -> anyhow::Result<()> {
    let data = match message {
        Some(m) => m.as_bytes().to_vec(),
        None => read_stdin()?,
    };
    let client = Client::connect(dir, cli.api.as_deref(), cli.token.as_deref())?;
    let path = format!("/v1/topics/{}/messages", encode_segment(topic));
    let reply: Value = match String::from_utf8(data) {
        Ok(text) => client.post(&path, &json!({ "message": text })).await?,
        Err(binary) => {
            let endpoint = Endpoint::find(cli, dir)?;
            let response = endpoint
                .request(reqwest::Method::POST, &path)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(binary.into_bytes())
                .send()
                .await
                .map_err(|e| endpoint.send_error(e))?;
            let response = endpoint.check(response).await?;
            response
                .json()
                .await
                .with_context(|| format!("unexpected answer from {}", endpoint.base))?
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!("{}", reply["id"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// The message on stdin, without one trailing newline if it is text.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut data)
        .context("cannot read the message from stdin")?;
    if data.len() as u64 > MAX_STDIN {
        bail!("the message on stdin is larger than 1 MiB; topic messages are at most 64 KiB");
    }
    if std::str::from_utf8(&data).is_ok() {
        if data.ends_with(b"\r\n") {
            data.truncate(data.len() - 2);
        } else if data.ends_with(b"\n") {
            data.pop();
        }
    }
    Ok(data)
}

/// `weft sub`: prints messages until Ctrl-C.
pub(crate) async fn subscribe(cli: &Cli, dir: &Path, topic: &str) -> anyhow::Result<()> {
    // Same discovery and errors as every other command.
    Client::connect(dir, cli.api.as_deref(), cli.token.as_deref())?;
    let endpoint = Endpoint::find(cli, dir)?;
    let path = format!("/v1/topics/{}/events", encode_segment(topic));
    let response = endpoint
        .request(reqwest::Method::GET, &path)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| endpoint.send_error(e))?;
    let mut response = endpoint.check(response).await?;
    eprintln!("subscribed to {topic}; waiting for messages (Ctrl-C to stop)");

    let mut events = EventParser::default();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let chunk = chunk
            .map_err(|e| anyhow!("lost the event stream from {}: {e}", endpoint.base))?
            .ok_or_else(|| anyhow!("the node at {} closed the event stream", endpoint.base))?;
        for (kind, data) in events.push(&chunk) {
            print_event(&kind, &data, cli.json)?;
        }
    }
}

fn print_event(kind: &str, data: &str, json: bool) -> anyhow::Result<()> {
    let v: Value = serde_json::from_str(data).context("the node sent an event that is not JSON")?;
    match kind {
        "message" if json => println!("{v}"),
        "message" => {
            let text = match (v["data"].as_str(), v["data_base64"].as_str()) {
                (Some(text), _) => escape_controls(text),
                (None, Some(b64)) => format!("base64:{b64}"),
                (None, None) => String::new(),
            };
            println!(
                "{} {} {text}",
                rfc3339_ms(v["timestamp"].as_u64().unwrap_or(0)),
                v["from"].as_str().unwrap_or("?"),
            );
        }
        "lagged" => eprintln!(
            "warning: missed {} message(s): this subscriber fell behind",
            v["missed"].as_u64().unwrap_or(0)
        ),
        _ => {}
    }
    Ok(())
}

/// Server-Sent Events, fed as chunks arrive: complete events out, the rest
/// kept for the next chunk.
#[derive(Default)]
struct EventParser {
    pending: Vec<u8>,
    kind: Option<String>,
    data: Vec<String>,
}

impl EventParser {
    /// The (type, data) of every event completed by `chunk`.
    fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let data = std::mem::take(&mut self.data);
                let kind = self.kind.take().unwrap_or_else(|| "message".to_owned());
                if !data.is_empty() {
                    out.push((kind, data.join("\n")));
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
            } else if let Some(rest) = line.strip_prefix("event:") {
                self.kind = Some(rest.trim().to_owned());
            }
            // Comments (keep-alives), ids and retry hints need nothing.
        }
        out
    }
}

/// Text on one line: control characters (newlines, tabs, escapes) as
/// `\n`, `\t`, `\u{1b}`.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Milliseconds since the Unix epoch as `2026-05-01T12:00:00.123Z`.
fn rfc3339_ms(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// A topic as one URL path segment: the node checks the name itself, so
/// anything may be sent, but `/`, `?` or `#` must not change the path.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct ApiErrorBody {
    code: String,
    message: String,
}

/// Where the node's API is, for the requests the shared client does not
/// make (a raw body, a stream). Found like [`Client::connect`] finds it,
/// which has already checked that it can be.
struct Endpoint {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Endpoint {
    fn find(cli: &Cli, dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| -> anyhow::Result<String> {
            let path = dir.join(name);
            Ok(std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim()
                .to_owned())
        };
        let base = match cli.api.as_deref() {
            Some(api) => normalize_url(api),
            None => normalize_url(&read(API_ADDR_FILE)?),
        };
        let token = match cli.token.as_deref() {
            Some(t) => t.trim().to_owned(),
            None => read(TOKEN_FILE)?,
        };
        // No overall timeout: an event stream stays open for as long as
        // the user wants it.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot create HTTP client")?;
        Ok(Self { http, base, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn send_error(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "cannot reach the weft node at {}: is it running? (`weft start`)",
                self.base
            )
        } else {
            anyhow!("request to {} failed: {e}", self.base)
        }
    }

    /// The response if it succeeded, else the API's error on one line.
    async fn check(&self, response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(err) => bail!("{} ({})", err.message, err.code),
            Err(_) => bail!("the node answered {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunks() {
        let mut p = EventParser::default();
        assert!(p.push(b": keep-alive\n\nid: 1\ndata: {\"a\"").is_empty());
        let out = p.push(b": 1}\n\nevent: lagged\ndata: {\"missed\": 3}\n\n");
        assert_eq!(
            out,
            [
                ("message".to_owned(), "{\"a\": 1}".to_owned()),
                ("lagged".to_owned(), "{\"missed\": 3}".to_owned())
            ]
        );
        assert_eq!(
            p.push(b"data: x\r\n\r\n"),
            [("message".to_owned(), "x".to_owned())]
        );
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_767_225_599_999), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn messages_print_on_one_line() {
        assert_eq!(escape_controls("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape_controls("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn topics_stay_one_path_segment() {
        assert_eq!(encode_segment("chat.lobby_1-x"), "chat.lobby_1-x");
        assert_eq!(encode_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
    }
}

//! A small client of the node's HTTP API, and how the CLI finds the node:
//! `--api`/`WEFT_API` with a token, or the API address and token files in
//! the data dir.

use std::{path::Path, time::Duration};

use anyhow::{anyhow, bail, Context};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;
use weft_node::data_dir::{API_ADDR_FILE, TOKEN_FILE};

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    code: String,
    message: String,
}

/// Turns `HOST:PORT` or a URL into a base URL without a trailing slash.
pub(crate) fn normalize_url(input: &str) -> String {
    let trimmed = input.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

fn read_small(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > 4096 {
        return Err(std::io::Error::other("file is too large"));
    }
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

impl Client {
    pub(crate) fn connect(
        data_dir: &Path,
        api: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let base = match api {
            Some(a) => normalize_url(a),
            None => {
                let path = data_dir.join(API_ADDR_FILE);
                match read_small(&path) {
                    Ok(s) => normalize_url(&s),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                        "no running node found for data dir {} (no {API_ADDR_FILE}); start one with `weft start`, or pass --api URL and --token",
                        data_dir.display()
                    ),
                    Err(e) => bail!("cannot read {}: {e}", path.display()),
                }
            }
        };
        let token = match token {
            Some(t) => t.trim().to_owned(),
            None => {
                let path = data_dir.join(TOKEN_FILE);
                read_small(&path).with_context(|| {
                    format!(
                        "cannot read the API token {} (pass --token or WEFT_TOKEN)",
                        path.display()
                    )
                })?
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .context("cannot create HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// The node's API base URL (`http://127.0.0.1:PORT`).
    pub(crate) fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "cannot reach the weft node at {}: is it running? (`weft start`)",
                    self.base
                )
            } else if e.is_timeout() {
                anyhow!("the weft node at {} did not answer in time", self.base)
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer from {}", self.base))?;
        if !status.is_success() {
            if let Ok(err) = serde_json::from_slice::<ApiErrorBody>(&bytes) {
                bail!("{} ({})", err.message, err.code);
            }
            bail!("the node answered {status}");
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from {}", self.base))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            super::normalize_url("127.0.0.1:4720"),
            "http://127.0.0.1:4720"
        );
        assert_eq!(
            super::normalize_url("http://127.0.0.1:4720/"),
            "http://127.0.0.1:4720"
        );
    }
}

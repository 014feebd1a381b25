//! Collections through the gateway: recognising a manifest, finding a path
//! in it, the providers to ask for its files, and folder listings.
//!
//! A listing is JSON, or HTML for a client whose `Accept` names
//! `text/html` (a browser). It shows the direct children of one folder,
//! at most [`MAX_LISTING`] of them.

use std::{fmt::Write as _, time::Duration};

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use serde_json::json;
use tokio::time::Instant;
use weft_blobs::{
    collection::{validate_path, Collection, EntryKind, MAX_MANIFEST_BYTES},
    ticket::Provider,
    Hash,
};
use weft_net::NetworkHandle;

use super::{source::Source, ApiError};

/// Most children shown in one listing.
const MAX_LISTING: usize = 10_000;
/// Most providers of a collection handed to a session for one of its files.
const MAX_PROVIDERS: usize = 8;
/// Longest wait for the first provider of a collection.
const PROVIDER_LOOKUP: Duration = Duration::from_secs(5);
/// After the first provider is found, how long to wait for more. Short: the
/// time to first byte waits on it, and once the download runs, peer
/// exchange finds the rest of the swarm.
const MORE_PROVIDERS: Duration = Duration::from_millis(30);
/// Listings may change with the software, so they are cached briefly.
const LISTING_CACHE: &str = "public, max-age=300";

/// The canonical manifest's first bytes.
const MANIFEST_PREFIX: &[u8] = br#"{"weft_collection":"#;

/// What a path inside a collection names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resolved {
    /// A file, with its path and content hash.
    File { path: String, hash: Hash },
    /// A folder: `""` for the root, else a path ending in `/`.
    Dir { prefix: String },
}

/// Loads `source` as a collection; `None` if it is not a manifest. Only a
/// blob that starts like a canonical manifest is read whole.
pub(super) async fn load(
    source: &Source,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<Collection>, ApiError> {
    let prefix_len = MANIFEST_PREFIX.len() as u64;
    if source.size > MAX_MANIFEST_BYTES || source.size < prefix_len {
        return Ok(None);
    }
    if source.read(0..prefix_len, cancel).await? != MANIFEST_PREFIX {
        return Ok(None);
    }
    // Manifests are read whole: bound the memory all requests may use for
    // them at once, in MiB, so many concurrent requests wait instead.
    let mib = u32::try_from(source.size.div_ceil(1 << 20).max(1)).unwrap_or(u32::MAX);
    let _budget = manifest_budget()
        .acquire_many(mib.min(MANIFEST_BUDGET_MIB))
        .await
        .map_err(|_| ApiError::unavailable("the gateway is shutting down"))?;
    let bytes = source.read_all(MAX_MANIFEST_BYTES, cancel).await?;
    Ok(Collection::from_bytes(&bytes).ok())
}

/// MiB of manifests all gateway requests may hold in memory at once.
const MANIFEST_BUDGET_MIB: u32 = 512;

fn manifest_budget() -> &'static tokio::sync::Semaphore {
    static BUDGET: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| tokio::sync::Semaphore::new(MANIFEST_BUDGET_MIB as usize))
}

/// Checks a path from a URL: one trailing `/` asks for a folder, the rest
/// must be a safe collection path (or empty, for the root). Returns the
/// path without the slash and whether a folder was asked for.
pub(super) fn check_path(path: &str) -> Result<(&str, bool), ApiError> {
    let (trimmed, wants_dir) = match path.strip_suffix('/') {
        Some(t) => (t, true),
        None => (path, path.is_empty()),
    };
    if !trimmed.is_empty() {
        validate_path(trimmed).map_err(|e| ApiError::bad_request("bad_path", e.to_string()))?;
    }
    Ok((trimmed, wants_dir))
}

/// Finds `path` (as it came in the URL, possibly empty or ending in `/`)
/// in `collection`.
pub(super) fn resolve(collection: &Collection, path: &str) -> Result<Resolved, ApiError> {
    let (trimmed, wants_dir) = check_path(path)?;
    if trimmed.is_empty() {
        return Ok(Resolved::Dir {
            prefix: String::new(),
        });
    }
    let missing = || ApiError::not_found(format!("{path:?} is not in the collection"));
    match collection.find(trimmed).map(|e| &e.kind) {
        Some(EntryKind::File { hash, .. }) if !wants_dir => Ok(Resolved::File {
            path: trimmed.to_owned(),
            hash: *hash,
        }),
        Some(EntryKind::File { .. }) => Err(missing()),
        Some(EntryKind::Dir) => Ok(Resolved::Dir {
            prefix: format!("{trimmed}/"),
        }),
        None => {
            let prefix = format!("{trimmed}/");
            if under(collection, &prefix).next().is_some() {
                Ok(Resolved::Dir { prefix })
            } else {
                Err(missing())
            }
        }
    }
}

/// The entries whose path starts with `prefix` (they sort together).
fn under<'a>(
    collection: &'a Collection,
    prefix: &'a str,
) -> impl Iterator<Item = &'a weft_blobs::collection::Entry> + 'a {
    let entries = collection.entries();
    let start = entries.partition_point(|e| e.path.as_str() < prefix);
    entries[start..]
        .iter()
        .take_while(move |e| e.path.starts_with(prefix))
}

/// Peers providing `collection`, to fetch its files from (the DHT only
/// knows providers of roots). Waits up to [`PROVIDER_LOOKUP`] for the
/// first; the file's own session searches the DHT as well.
pub(super) async fn providers(net: &NetworkHandle, collection: Hash) -> Vec<Provider> {
    let Ok(mut found) = net.find_providers(collection.as_bytes().to_vec()).await else {
        return Vec::new();
    };
    let me = net.local_peer_id();
    let mut peers = Vec::new();
    let mut deadline = Instant::now() + PROVIDER_LOOKUP;
    while peers.len() < MAX_PROVIDERS {
        match tokio::time::timeout_at(deadline, found.recv()).await {
            Ok(Some(peer)) if peer != me && !peers.contains(&peer) => {
                if peers.is_empty() {
                    deadline = deadline.min(Instant::now() + MORE_PROVIDERS);
                }
                peers.push(peer);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    peers
        .into_iter()
        .map(|peer| Provider {
            peer,
            addrs: Vec::new(),
        })
        .collect()
}

/// A listing of the folder `prefix` of `collection`.
pub(super) fn listing(collection: &Collection, hash: Hash, prefix: &str, html: bool) -> Response {
    let mut children: Vec<(&str, Option<(Hash, u64)>)> = Vec::new();
    let mut more = 0usize;
    for entry in under(collection, prefix) {
        let rest = &entry.path[prefix.len()..];
        let (name, file) = match (rest.split_once('/'), &entry.kind) {
            (Some((dir, _)), _) => (dir, None),
            (None, EntryKind::Dir) => (rest, None),
            (None, EntryKind::File { hash, size }) => (rest, Some((*hash, *size))),
        };
        if name.is_empty() || children.last().is_some_and(|(last, _)| *last == name) {
            continue;
        }
        if children.len() == MAX_LISTING {
            more += 1;
            continue;
        }
        children.push((name, file));
    }
    let mut response = if html {
        html_listing(hash, prefix, &children, more).into_response()
    } else {
        let entries: Vec<_> = children
            .iter()
            .map(|(name, file)| match file {
                Some((h, size)) => json!({
                    "name": name, "path": format!("{prefix}{name}"), "kind": "file",
                    "hash": h.to_hex(), "size": size,
                }),
                None => json!({"name": name, "path": format!("{prefix}{name}/"), "kind": "dir"}),
            })
            .collect();
        axum::Json(json!({
            "collection": hash.to_hex(),
            "path": prefix,
            "entries": entries,
            "more": more,
        }))
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(LISTING_CACHE),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn html_listing(
    hash: Hash,
    prefix: &str,
    children: &[(&str, Option<(Hash, u64)>)],
    more: usize,
) -> axum::response::Html<String> {
    let base = format!("/blob/{}/", hash.to_hex());
    let title = escape(&format!("/{prefix}"));
    let mut out = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<h1>{title}</h1>\n<ul>\n"
    );
    if !prefix.is_empty() {
        let parent = prefix[..prefix.len() - 1]
            .rsplit_once('/')
            .map(|(p, _)| format!("{p}/"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<li><a href=\"{base}{}\">../</a></li>",
            url_path(&parent)
        );
    }
    for (name, file) in children {
        let (slash, size) = match file {
            Some((_, size)) => ("", format!(" ({size} bytes)")),
            None => ("/", String::new()),
        };
        let _ = writeln!(
            out,
            "<li><a href=\"{base}{}{slash}\">{}{slash}</a>{size}</li>",
            url_path(&format!("{prefix}{name}")),
            escape(name),
        );
    }
    if more > 0 {
        let _ = writeln!(out, "<li>… and {more} more</li>");
    }
    out.push_str("</ul>\n");
    axum::response::Html(out)
}

/// Percent-encodes a `/`-separated path for a URL.
fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use weft_blobs::collection::Entry;

    use super::*;

    fn sample() -> Collection {
        let h = Hash::new(b"x");
        Collection::new(vec![
            Entry::file("index.html", h, 1),
            Entry::file("sub/a.txt", h, 2),
            Entry::file("sub/a-b", h, 3),
            Entry::file("sub/deep/c", h, 4),
            Entry::dir("empty"),
        ])
        .unwrap()
    }

    #[test]
    fn resolves_files_and_folders() {
        let c = sample();
        let h = Hash::new(b"x");
        let file = |p: &str| Resolved::File {
            path: p.into(),
            hash: h,
        };
        let dir = |p: &str| Resolved::Dir { prefix: p.into() };
        assert_eq!(resolve(&c, "sub/a.txt").unwrap(), file("sub/a.txt"));
        assert_eq!(resolve(&c, "").unwrap(), dir(""));
        assert_eq!(resolve(&c, "sub").unwrap(), dir("sub/"));
        assert_eq!(resolve(&c, "sub/").unwrap(), dir("sub/"));
        assert_eq!(resolve(&c, "sub/deep").unwrap(), dir("sub/deep/"));
        assert_eq!(resolve(&c, "empty").unwrap(), dir("empty/"));
        assert_eq!(resolve(&c, "nope").unwrap_err().code, "not_found");
        assert_eq!(resolve(&c, "su").unwrap_err().code, "not_found");
        assert_eq!(resolve(&c, "index.html/").unwrap_err().code, "not_found");
        for bad in [
            "../x",
            "sub/../index.html",
            "/etc/passwd",
            "a\\b",
            "a//b",
            "./x",
        ] {
            assert_eq!(resolve(&c, bad).unwrap_err().code, "bad_path", "{bad}");
        }
    }

    #[tokio::test]
    async fn lists_direct_children() {
        let c = sample();
        let resp = listing(&c, Hash::new(b"c"), "sub/", false);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let names: Vec<_> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            vec![("a-b", "file"), ("a.txt", "file"), ("deep", "dir")]
        );

        let resp = listing(&c, Hash::new(b"c"), "", true);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("href=\"/blob/"), "{html}");
        assert!(html.contains("sub/\">sub/</a>"), "{html}");
        assert_eq!(url_path("a b/ü<"), "a%20b/%C3%BC%3C");
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}

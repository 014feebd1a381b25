//! The read-only content gateway, outside `/v1` and open without a token.
//!
//! Routes (GET and HEAD):
//! - `/blob/{hash}`: the blob's bytes. If the blob is a collection manifest
//!   (and `format=raw` is not given), its `index.html`, else a listing.
//! - `/blob/{hash}/` and `/blob/{hash}/{*path}`: a file of the collection
//!   `hash`; a folder gives its `index.html` or a listing
//!   ([`collection`]).
//! - `/blob/{hash}?format=bao&bytes=START-END`: a verifiable encoding of a
//!   range ([`bao`] documents the format).
//!
//! Content is served with `ETag: "<hash>"`, `Cache-Control: public,
//! max-age=31536000, immutable` (a hash names bytes that never change),
//! `Accept-Ranges: bytes`, `Content-Length`, a `Content-Type` from the name
//! or the first bytes ([`sniff`]) and `X-Content-Type-Options: nosniff`.
//! `If-None-Match` gives 304; a single `Range` gives 206 or 416 ([`range`]).
//!
//! Content that is not complete locally is proven (its size, within
//! [`source::PROVE_TIMEOUT`], else 404) and then streamed from the swarm
//! as it is verified ([`source`]). Handlers hold no state of their own:
//! each request creates what it needs and drops it when the response ends.

mod bao;
mod collection;
mod range;
mod sniff;
mod source;

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, Query, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use weft_blobs::{
    collection::{Collection, EntryKind},
    Hash,
};

use super::{ApiError, ApiState};
use range::Requested;
use source::{blocking, Source};

/// `Cache-Control` for content addressed by hash.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/blob/{hash}", get(blob))
        .route("/blob/{hash}/", get(collection_root))
        .route("/blob/{hash}/{*path}", get(in_collection))
}

#[derive(Debug, Default, Deserialize)]
struct GatewayQuery {
    format: Option<String>,
    bytes: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Bytes, or a collection's index or listing.
    Auto,
    /// The blob's bytes even if it is a collection manifest.
    Raw,
    /// The verifiable encoding; see [`bao`].
    Bao,
}

/// What every gateway request carries besides its path.
struct Request {
    head: bool,
    headers: HeaderMap,
    format: Format,
    bytes: Option<String>,
}

impl Request {
    fn new(method: &Method, headers: HeaderMap, uri: &Uri) -> Result<Self, ApiError> {
        let query = match uri.query() {
            None => GatewayQuery::default(),
            Some(_) => {
                Query::<GatewayQuery>::try_from_uri(uri)
                    .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?
                    .0
            }
        };
        let format = match query.format.as_deref() {
            None => Format::Auto,
            Some("raw") => Format::Raw,
            Some("bao") => Format::Bao,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "bad_format",
                    format!("unknown format {other:?}: expected \"bao\" or \"raw\""),
                ))
            }
        };
        Ok(Self {
            head: method == Method::HEAD,
            headers,
            format,
            bytes: query.bytes,
        })
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the client already has the content named `hash`.
    fn has(&self, hash: &Hash) -> bool {
        self.header(header::IF_NONE_MATCH)
            .is_some_and(|v| range::none_match(v, &etag(hash)))
    }

    fn wants_html(&self) -> bool {
        self.header(header::ACCEPT)
            .is_some_and(|v| v.contains("text/html"))
    }
}

fn etag(hash: &Hash) -> String {
    format!("\"{}\"", hash.to_hex())
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    text.parse()
        .map_err(|e: weft_blobs::HashParseError| ApiError::bad_request("bad_hash", e.to_string()))
}

fn bad_url(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("bad_path", rejection.body_text())
}

async fn blob(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(hash) = path.map_err(bad_url)?;
    let req = Request::new(&method, headers, &uri)?;
    handle(&state, &req, &hash, None).await
}

async fn collection_root(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(hash) = path.map_err(bad_url)?;
    let req = Request::new(&method, headers, &uri)?;
    handle(&state, &req, &hash, Some(String::new())).await
}

async fn in_collection(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((hash, path)) = path.map_err(bad_url)?;
    let req = Request::new(&method, headers, &uri)?;
    handle(&state, &req, &hash, Some(path)).await
}

/// Serves `path` inside the collection `hash` (an app's file), or the blob
/// `hash` itself when `path` is `None`, for the app origins.
pub(super) async fn serve_for_app(
    state: &ApiState,
    method: &Method,
    headers: HeaderMap,
    uri: &Uri,
    hash: &str,
    path: Option<String>,
) -> Result<Response, ApiError> {
    let req = Request::new(method, headers, uri)?;
    handle(state, &req, hash, path).await
}

/// Serves `hash`, or `path` inside the collection `hash`.
async fn handle(
    state: &ApiState,
    req: &Request,
    hash: &str,
    path: Option<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(hash)?;
    // Fires when the handler returns: stops any fetch it started.
    let cancel = CancellationToken::new();
    let _cancel_on_return = cancel.clone().drop_guard();
    if req.format == Format::Bao {
        if path.is_some() {
            return Err(ApiError::bad_request(
                "bad_format",
                "format=bao is served at /blob/{hash} only",
            ));
        }
        let bytes = req.bytes.as_deref().map(bao::parse_bytes).transpose()?;
        let source = Source::open(&state.blobs, hash, Vec::new(), &cancel).await?;
        return bao::respond(source, bytes, req.head, &cancel).await;
    }
    let Some(path) = path else {
        // A client holding this tag got the blob's own bytes from this URL
        // (a collection's response never carries the collection's hash).
        if req.has(&hash) {
            return not_modified(&hash);
        }
        let source = Source::open(&state.blobs, hash, Vec::new(), &cancel).await?;
        let (head, truncated) = head(&source, &cancel).await?;
        if req.format == Format::Auto {
            if let Some(c) = collection::load(&source, &cancel).await? {
                return serve_dir(state, req, hash, &c, "", &cancel).await;
            }
        }
        let content_type = sniff::content_type(source.name.as_deref(), &head, truncated);
        return serve(req, source, &content_type);
    };
    // Reject a bad path before fetching anything.
    collection::check_path(&path)?;
    let manifest = Source::open(&state.blobs, hash, Vec::new(), &cancel).await?;
    let c = collection::load(&manifest, &cancel).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_collection",
            format!("blob {hash} is not a collection, so it has no path {path:?}"),
        )
    })?;
    drop(manifest);
    match collection::resolve(&c, &path)? {
        collection::Resolved::File { path, hash: file } => {
            serve_entry(state, req, hash, &path, file, &cancel).await
        }
        collection::Resolved::Dir { prefix } => {
            serve_dir(state, req, hash, &c, &prefix, &cancel).await
        }
    }
}

/// A folder of a collection: its `index.html` if it has one, else a listing.
async fn serve_dir(
    state: &ApiState,
    req: &Request,
    hash: Hash,
    c: &Collection,
    prefix: &str,
    cancel: &CancellationToken,
) -> Result<Response, ApiError> {
    let index = format!("{prefix}index.html");
    if let Some(EntryKind::File { hash: file, .. }) = c.find(&index).map(|e| &e.kind) {
        return serve_entry(state, req, hash, &index, *file, cancel).await;
    }
    Ok(collection::listing(c, hash, prefix, req.wants_html()))
}

/// The file at `path` (content `file`) of the collection `hash`.
async fn serve_entry(
    state: &ApiState,
    req: &Request,
    hash: Hash,
    path: &str,
    file: Hash,
    cancel: &CancellationToken,
) -> Result<Response, ApiError> {
    if req.has(&file) {
        return not_modified(&file);
    }
    let store = state.blobs.store().clone();
    let local = blocking(move || store.info(&file))
        .await?
        .map_err(ApiError::from)?
        .is_some_and(|i| i.complete);
    // The DHT knows providers of roots, so ask the collection's.
    let providers = if local {
        Vec::new()
    } else {
        collection::providers(&state.net, hash).await
    };
    let source = Source::open(&state.blobs, file, providers, cancel).await?;
    let (head, truncated) = head(&source, cancel).await?;
    let content_type = sniff::content_type(Some(path), &head, truncated);
    serve(req, source, &content_type)
}

/// The first bytes of a blob, for its type; and whether there are more.
async fn head(
    source: &Source,
    cancel: &CancellationToken,
) -> Result<(bytes::Bytes, bool), ApiError> {
    let n = source.size.min(sniff::SNIFF_LEN);
    let head = if n == 0 {
        bytes::Bytes::new()
    } else {
        source.read(0..n, cancel).await?
    };
    Ok((head, source.size > n))
}

fn not_modified(hash: &Hash) -> Result<Response, ApiError> {
    Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header(header::ETAG, etag(hash))
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The content of `source`, whole or the requested range.
fn serve(req: &Request, source: Source, content_type: &str) -> Result<Response, ApiError> {
    let size = source.size;
    let etag = etag(&source.hash);
    let requested = match req.header(header::RANGE) {
        Some(r)
            if req
                .header(header::IF_RANGE)
                .is_none_or(|v| range::if_range_holds(v, &etag)) =>
        {
            range::parse_range(r, size)
        }
        _ => Requested::Full,
    };
    let content_type = HeaderValue::try_from(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let (builder, span) = match requested {
        Requested::Full => (builder.status(StatusCode::OK), 0..size),
        Requested::Partial(r) => (
            builder.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ),
            r,
        ),
        Requested::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range is outside the content ({size} bytes)"),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::try_from(format!("bytes */{size}"))
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
            return Ok(response);
        }
    };
    source.touch();
    let body = if req.head || span.is_empty() {
        Body::empty()
    } else {
        Body::from_stream(Arc::new(source).stream(span.clone()))
    };
    builder
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

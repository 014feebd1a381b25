//! `/v1/blobs` (local content) and `/v1/fetches` (downloads).

use std::path::PathBuf;

use axum::{
    body::Body,
    extract::{rejection::JsonRejection, Path, Query, State},
    http::{header::CONTENT_TYPE, HeaderMap, StatusCode},
    routing::{get, post},
    Json, Router,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use weft_blobs::{fetch::FetchTarget, service::AddError, BlobInfo, Hash, Target, Ticket};

use super::{ApiError, ApiState};

/// Largest upload through `POST /v1/blobs` with a raw body.
const MAX_UPLOAD: u64 = 64 << 30;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/blobs", get(list).post(add))
        .route("/blobs/stats", get(stats))
        .route("/blobs/{hash}", get(info).delete(remove))
        .route("/blobs/{hash}/pin", post(pin))
        .route("/blobs/{hash}/unpin", post(unpin))
        .route("/blobs/{hash}/ticket", get(ticket))
        .route("/fetches", post(start_fetch))
        .route("/fetches/{id}", get(fetch_status).delete(cancel_fetch))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    text.parse()
        .map_err(|e: weft_blobs::HashParseError| ApiError::bad_request("bad_hash", e.to_string()))
}

#[derive(Serialize)]
struct BlobResponse {
    hash: String,
    name: Option<String>,
    kind: weft_blobs::BlobKind,
    size: u64,
    complete: bool,
    pinned: bool,
    verified_bytes: u64,
    percent: f64,
}

impl From<BlobInfo> for BlobResponse {
    fn from(b: BlobInfo) -> Self {
        let percent = if b.size == 0 {
            100.0
        } else {
            (b.verified_bytes as f64 * 1000.0 / b.size as f64).round() / 10.0
        };
        Self {
            hash: b.hash.to_hex(),
            name: b.name,
            kind: b.kind,
            size: b.size,
            complete: b.complete,
            pinned: b.pinned,
            verified_bytes: b.verified_bytes,
            percent,
        }
    }
}

async fn list(State(state): State<ApiState>) -> Result<Json<Vec<BlobResponse>>, ApiError> {
    let mut list = state.blobs.list().await.map_err(ApiError::from)?;
    list.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.hash.cmp(&b.hash)));
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

async fn info(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<BlobResponse>, ApiError> {
    let hash = parse_hash(&hash)?;
    match state.blobs.info(hash).await.map_err(ApiError::from)? {
        Some(b) => Ok(Json(b.into())),
        None => Err(ApiError::not_found(format!(
            "blob {hash} is not in the local store"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    path: String,
}

#[derive(Deserialize)]
struct AddQuery {
    name: Option<String>,
}

#[derive(Serialize)]
struct AddResponse {
    hash: String,
    kind: weft_blobs::BlobKind,
    size: u64,
    files: u64,
    name: Option<String>,
    ticket: String,
}

/// `{"path": ...}` as JSON imports a local file or folder; any other body
/// is imported as the bytes of one blob (`?name=` names it).
async fn add(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<AddQuery>,
    body: Body,
) -> Result<Json<AddResponse>, ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let added = if is_json {
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|e| ApiError::bad_request("bad_json", e.to_string()))?;
        let request: AddRequest = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("bad_json", format!("invalid JSON body: {e}")))?;
        let path = PathBuf::from(&request.path);
        if !path.is_absolute() {
            return Err(ApiError::bad_request(
                "bad_path",
                format!(
                    "{:?} must be an absolute path (the node may run in another folder)",
                    request.path
                ),
            ));
        }
        state.blobs.add_path(path).await.map_err(add_error)?
    } else {
        let tmp = upload_to_temp(&state, body, MAX_UPLOAD).await?;
        let result = state.blobs.add_file_named(tmp.clone(), query.name).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        result.map_err(add_error)?
    };
    let ticket = state
        .blobs
        .ticket(added.hash)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(AddResponse {
        hash: added.hash.to_hex(),
        kind: added.kind,
        size: added.size,
        files: added.files,
        name: added.name,
        ticket: ticket.to_string(),
    }))
}

/// Streams `body` into a temporary file in the store's folder; more than
/// `max` bytes is a 413 and leaves nothing behind.
pub(super) async fn upload_to_temp(
    state: &ApiState,
    body: Body,
    max: u64,
) -> Result<PathBuf, ApiError> {
    let dir = state.blobs.store().dir().to_owned();
    let suffix: u64 = rand::random();
    let tmp = dir.join(format!("upload-{suffix:016x}.tmp"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store upload: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ApiError::bad_request(
                    "bad_body",
                    format!("upload failed: {e}"),
                ));
            }
        };
        total += chunk.len() as u64;
        if total > max {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("upload too large (at most {max} bytes)"),
            ));
        }
        if let Err(e) = file.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ApiError::internal(format!("cannot store upload: {e}")));
        }
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(tmp)
}

pub(super) fn add_error(e: AddError) -> ApiError {
    match e {
        AddError::Missing(p) => ApiError::not_found(format!("{} does not exist", p.display())),
        AddError::Unreadable { .. } => ApiError::bad_request("unreadable", e.to_string()),
        AddError::Store(s) => s.into(),
        AddError::Internal(m) => ApiError::internal(m),
    }
}

async fn remove(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hash = parse_hash(&hash)?;
    state.blobs.remove(hash).await.map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({ "removed": hash.to_hex() })))
}

async fn pin(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<BlobResponse>, ApiError> {
    set_pinned(&state, &hash, true).await
}

async fn unpin(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<BlobResponse>, ApiError> {
    set_pinned(&state, &hash, false).await
}

async fn set_pinned(
    state: &ApiState,
    hash: &str,
    pinned: bool,
) -> Result<Json<BlobResponse>, ApiError> {
    let hash = parse_hash(hash)?;
    Ok(Json(state.blobs.set_pinned(hash, pinned).await?.into()))
}

async fn ticket(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hash = parse_hash(&hash)?;
    let ticket = state.blobs.ticket(hash).await.map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({
        "hash": hash.to_hex(),
        "kind": ticket.kind,
        "ticket": ticket.to_string(),
    })))
}

async fn stats(State(state): State<ApiState>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let s = state.blobs.stats();
    Json(serde_json::json!({
        "bytes_sent": s.bytes_sent.load(Relaxed),
        "requests": s.requests.load(Relaxed),
        "busy": s.busy.load(Relaxed),
        "store_bytes": state.blobs.store().total_bytes(),
        "quota": state.blobs.store().quota(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    ticket: Option<String>,
    hash: Option<String>,
    out: Option<String>,
}

async fn start_fetch(
    State(state): State<ApiState>,
    body: Result<Json<FetchRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(request) = body?;
    let target = match (&request.ticket, &request.hash) {
        (Some(t), None) => t
            .parse::<Ticket>()
            .map(Target::Ticket)
            .map_err(|e| ApiError::bad_request("bad_ticket", e.to_string()))?,
        (None, Some(h)) => Target::Hash(parse_hash(h)?),
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "give exactly one of \"ticket\" and \"hash\"",
            ))
        }
    };
    let out = match request.out {
        Some(o) => {
            let p = PathBuf::from(&o);
            if !p.is_absolute() {
                return Err(ApiError::bad_request(
                    "bad_path",
                    format!("{o:?} must be an absolute path"),
                ));
            }
            Some(p)
        }
        None => None,
    };
    let target = match target {
        Target::Ticket(t) => FetchTarget {
            hash: t.hash,
            kind: Some(t.kind),
            providers: t.providers,
        },
        Target::Hash(h) => FetchTarget {
            hash: h,
            kind: None,
            providers: vec![],
        },
    };
    let hash = target.hash;
    let id = state.blobs.start_fetch(target, out);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "hash": hash.to_hex() })),
    ))
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("bad_id", format!("{text:?} is not a fetch id")))
}

async fn fetch_status(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<weft_blobs::service::FetchStatus>, ApiError> {
    let id = parse_id(&id)?;
    state
        .blobs
        .fetch_status(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no fetch with id {id}")))
}

async fn cancel_fetch(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    if state.blobs.cancel_fetch(id) {
        Ok(Json(serde_json::json!({ "cancelled": id })))
    } else {
        Err(ApiError::not_found(format!("no fetch with id {id}")))
    }
}

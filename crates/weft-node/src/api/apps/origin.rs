//! App origins. Each app is served in a browser origin of its own,
//! `http://<label>.app.localhost:PORT/`, where the label is the app's hash in
//! base32 (as IPFS subdomain gateways do; 64 hex characters would not fit
//! in a DNS label), so
//! one app cannot read another's storage, the dashboard's, or call the API
//! as the user. The path form `/app/<hash>/` is for tools that cannot use
//! subdomains; its pages are sandboxed by CSP into an opaque origin, so
//! they cannot reach the dashboard's storage either.
//!
//! On an app's origin:
//! - app files come from the collection `<hash>` (fetched from the swarm
//!   if not local), `index.html` for folders, with a strict
//!   Content-Security-Policy;
//! - `/sdk/weft.js` is the JavaScript SDK;
//! - `/.weft/…` (`/app/<hash>/.weft/…` in the path form) is the app's
//!   narrow API: the node's identity, the chain, accounts, content by hash,
//!   topics (publish, Server-Sent Events), payment requests, which only
//!   the user can approve, and uploads of content, refused unless the user
//!   allowed the app uploads in the dashboard.
//!
//! Requests to `*.app.localhost` never reach `/v1` or the dashboard.

use std::convert::Infallible;

use axum::{
    body::to_bytes,
    extract::{Path, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Redirect, Response,
    },
    routing::get,
    Router,
};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use weft_apps::apps::{UploadPermission, MAX_APP_UPLOAD};

use super::{default_wallet, send_approved, DEFAULT_FEE};
use crate::api::{
    blobs::{add_error, upload_to_temp},
    gateway,
    ledger::{account_json, chain_json, parse_address},
    ApiError, ApiState,
};

/// The SDK apps load from `/sdk/weft.js`.
const SDK: &str = include_str!("../../../sdk/weft.js");
/// Largest body an app may POST.
const MAX_APP_BODY: usize = 128 << 10;

/// CSP of an app's pages on its own origin.
const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `http://<label>.app.localhost:PORT/`.
    Subdomain,
    /// `/app/<hash>/` on the node's own origin.
    Path,
}

pub(in crate::api) fn app_routes() -> Router<ApiState> {
    Router::new()
        .route("/sdk/weft.js", get(sdk))
        .route("/app/{hash}", get(redirect_to_root).post(not_allowed))
        .route("/app/{hash}/", axum::routing::any(path_root))
        .route("/app/{hash}/{*path}", axum::routing::any(path_file))
}

async fn not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use GET",
    )
}

async fn sdk() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SDK,
    )
        .into_response()
}

async fn redirect_to_root(Path(hash): Path<String>) -> Response {
    match weft_apps::apps::check_hash(&hash) {
        Ok(()) => Redirect::permanent(&format!("/app/{hash}/")).into_response(),
        Err(e) => ApiError::bad_request("bad_hash", e.to_string()).into_response(),
    }
}

async fn path_root(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
    req: Request,
) -> Response {
    serve(state, Form::Path, hash, String::new(), req).await
}

async fn path_file(
    State(state): State<ApiState>,
    Path((hash, path)): Path<(String, String)>,
    req: Request,
) -> Response {
    serve(state, Form::Path, hash, path, req).await
}

/// The app named by a `Host: <label>.app.localhost[:port]` header: the
/// label is the hash in base32 ([`weft_apps::apps::origin_label`]). A host
/// under `.app.localhost` that names no app still counts as an app origin
/// (it gets an error, never the node's own routes).
fn app_of_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let label = name
        .to_ascii_lowercase()
        .strip_suffix(".app.localhost")?
        .to_owned();
    Some(weft_apps::apps::hash_of_label(&label).unwrap_or(label))
}

/// Middleware: requests for an app's origin go to the app, whatever their
/// path; everything else goes on to the node's own routes.
pub(in crate::api) async fn app_host(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(hash) = app_of_host(req.headers()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().trim_start_matches('/').to_owned();
    serve(state, Form::Subdomain, hash, path, req).await
}

async fn serve(state: ApiState, form: Form, hash: String, path: String, req: Request) -> Response {
    if let Err(e) = weft_apps::apps::check_hash(&hash) {
        return ApiError::bad_request("bad_hash", e.to_string()).into_response();
    }
    if form == Form::Subdomain && path == "sdk/weft.js" {
        return sdk().await;
    }
    if let Some(rest) = path.strip_prefix(".weft/") {
        let rest = rest.to_owned();
        let mut resp = app_api(&state, form, &hash, &rest, req)
            .await
            .unwrap_or_else(IntoResponse::into_response);
        if form == Form::Path {
            // Sandboxed pages have an opaque origin: allow them to read.
            resp.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        return resp;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return not_allowed().await.into_response();
    }
    let (parts, _) = req.into_parts();
    let result = gateway::serve_for_app(
        &state,
        &parts.method,
        parts.headers,
        &parts.uri,
        &hash,
        Some(path),
    )
    .await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if resp.status().is_success() {
        let name = match hash.parse::<weft_blobs::Hash>() {
            Ok(h) => state
                .blobs
                .info(h)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.name),
            Err(_) => None,
        };
        state.apps.visit(&hash, name);
    }
    let csp = match form {
        Form::Subdomain => APP_CSP.to_owned(),
        Form::Path => {
            format!("{APP_CSP}; sandbox allow-scripts allow-forms allow-popups allow-modals")
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// Whether a state-changing request comes from the app's own page (or from
/// no browser at all: no `Origin` header).
fn from_app(headers: &HeaderMap, form: Form, hash: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    match form {
        Form::Subdomain => origin
            .strip_prefix("http://")
            .and_then(|rest| rest.split(':').next())
            .and_then(|host| {
                host.to_ascii_lowercase()
                    .strip_suffix(".app.localhost")
                    .map(str::to_owned)
            })
            .and_then(|label| weft_apps::apps::hash_of_label(&label))
            .is_some_and(|h| h == hash),
        // The sandboxed path form sends `Origin: null`.
        Form::Path => origin == "null",
    }
}

async fn json_body<T: for<'de> Deserialize<'de>>(req: Request) -> Result<T, ApiError> {
    let bytes = to_bytes(req.into_body(), MAX_APP_BODY)
        .await
        .map_err(|e| ApiError::bad_request("bad_body", format!("cannot read the body: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}

#[derive(Deserialize)]
struct PaymentBody {
    to: String,
    amount: u64,
    fee: Option<u64>,
    #[serde(default)]
    memo: String,
}

#[derive(Deserialize)]
struct PublishBody {
    message: String,
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

/// The API an app reaches on its own origin.
async fn app_api(
    state: &ApiState,
    form: Form,
    app: &str,
    rest: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let parts: Vec<&str> = rest.split('/').collect();
    if method == Method::OPTIONS {
        return Ok((
            StatusCode::NO_CONTENT,
            [(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")],
        )
            .into_response());
    }
    let writes = method == Method::POST;
    if writes && !from_app(req.headers(), form, app) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_origin",
            "this request does not come from the app's own page",
        ));
    }
    match (method, parts.as_slice()) {
        (Method::GET, ["node"]) => {
            let address = default_wallet(state).ok().map(|w| w.address().to_string());
            Ok(axum::Json(json!({
                "peer_id": state.net.local_peer_id().to_string(),
                "address": address,
                "app": app,
                "genesis": state.ledger.genesis_hash().to_string(),
            }))
            .into_response())
        }
        (Method::GET, ["chain"]) => Ok(axum::Json(chain_json(state)).into_response()),
        (Method::GET, ["accounts", address]) => {
            let a = parse_address(address)?;
            Ok(axum::Json(account_json(state, &a)).into_response())
        }
        (Method::GET | Method::HEAD, ["blob", hash]) => {
            let (p, _) = req.into_parts();
            gateway::serve_for_app(state, &p.method, p.headers, &p.uri, hash, None).await
        }
        (Method::GET, ["topics", topic, "events"]) => {
            let rx = state
                .pubsub
                .subscribe(topic)
                .await
                .map_err(|e| ApiError::bad_request("bad_topic", e.to_string()))?;
            Ok(Sse::new(events(rx))
                .keep_alive(KeepAlive::default())
                .into_response())
        }
        (Method::POST, ["topics", topic, "messages"]) => {
            let topic = topic.to_string();
            let body: PublishBody = json_body(req).await?;
            let m = state
                .pubsub
                .publish(&topic, body.message.into_bytes())
                .await
                .map_err(|e| ApiError::bad_request("bad_message", e.to_string()))?;
            Ok(axum::Json(message_json(&m)).into_response())
        }
        (Method::POST, ["payments"]) => {
            if form == Form::Path {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_origin",
                    format!(
                        "payments need the app's own origin: open {}",
                        weft_apps::apps::app_url(app, "PORT")
                    ),
                ));
            }
            let b: PaymentBody = json_body(req).await?;
            let to = parse_address(&b.to)?;
            let r = state
                .apps
                .request_payment(app, to, b.amount, b.fee.unwrap_or(DEFAULT_FEE), b.memo)
                .map_err(|e| ApiError::bad_request("bad_payment", e.to_string()))?;
            if r.auto {
                // The user granted this app payments up to a limit.
                let _ = send_approved(state, &r).await;
            }
            let now = state.apps.request(r.id).unwrap_or(r);
            Ok(axum::Json(json!(now)).into_response())
        }
        (Method::POST, ["content"]) => {
            if form == Form::Path {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_origin",
                    format!(
                        "uploads need the app's own origin: open {}",
                        weft_apps::apps::app_url(app, "PORT")
                    ),
                ));
            }
            if state.apps.permissions(app).uploads != UploadPermission::Allow {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_required",
                    "this app may not add content to the node: the user can allow its uploads \
                     in the dashboard (Apps)",
                ));
            }
            let name = axum::extract::Query::<UploadQuery>::try_from_uri(req.uri())
                .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?
                .0
                .name;
            if name
                .as_ref()
                .is_some_and(|n| n.len() > 255 || n.contains(['/', '\\', '\0']))
            {
                return Err(ApiError::bad_request(
                    "bad_name",
                    "a name is at most 255 bytes, without slashes",
                ));
            }
            let tmp = upload_to_temp(state, req.into_body(), MAX_APP_UPLOAD).await?;
            let added = state.blobs.add_file_named(tmp.clone(), name).await;
            let _ = tokio::fs::remove_file(&tmp).await;
            let added = added.map_err(add_error)?;
            Ok(axum::Json(json!({
                "hash": added.hash.to_hex(),
                "size": added.size,
                "name": added.name,
            }))
            .into_response())
        }
        (Method::GET, ["payments", id]) => {
            let id: u64 = id
                .parse()
                .map_err(|_| ApiError::bad_request("bad_id", "not a payment request id"))?;
            match state.apps.request(id) {
                Some(r) if r.app == app => Ok(axum::Json(json!(r)).into_response()),
                _ => Err(ApiError::not_found("no such payment request")),
            }
        }
        _ => Err(ApiError::not_found("no such app API path")),
    }
}

fn message_json(m: &weft_apps::pubsub::Message) -> Value {
    json!({
        "id": m.id,
        "topic": m.topic,
        "from": m.from,
        "timestamp": m.timestamp_ms,
        "data": String::from_utf8_lossy(&m.data),
    })
}

/// Messages of a subscription as Server-Sent Events, until the client goes.
fn events(
    rx: tokio::sync::broadcast::Receiver<weft_apps::pubsub::Message>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    let ev = Event::default().data(message_json(&m).to_string());
                    return Some((Ok(ev), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    })
}

//! Apps: the node's wallet as the dashboard uses it, the registry of apps
//! with their permissions, and app payment requests (`/v1/wallet*`,
//! `/v1/apps*`, behind the token), plus the app origins themselves
//! ([`origin`]: `http://<base32 hash>.app.localhost:PORT/` and `/app/<hash>/`,
//! no token).
//!
//! An app never holds the token. What it asks the node to pay waits in
//! [`weft_apps::Apps`] until the user approves it here (or the app was
//! granted `payments: allow` up to a limit); only then does the node sign
//! with its default wallet.

mod origin;

pub(super) use origin::{app_host, app_routes};

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{header::HOST, HeaderMap},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use weft_apps::apps::{AppsError, PaymentPermission, Permissions, UploadPermission};
use weft_ledger::{wallet, Address, Transaction};

use super::{
    ledger::{account_json, parse_address, submit_error},
    ApiError, ApiState,
};

/// Fee used when none is given.
pub(super) const DEFAULT_FEE: u64 = 100;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/wallet", get(wallet_info))
        .route("/wallet/send", post(wallet_send))
        .route("/apps", get(list_apps))
        .route("/apps/requests", get(list_requests))
        .route("/apps/requests/{id}/approve", post(approve))
        .route("/apps/requests/{id}/deny", post(deny))
        .route("/apps/{hash}/permissions", post(set_permissions))
}

fn apps_error(e: AppsError) -> ApiError {
    let message = e.to_string();
    match e {
        AppsError::NoSuchRequest(_) => ApiError::not_found(message),
        AppsError::AlreadyDecided(_) => ApiError::conflict("already_decided", message),
        AppsError::TooManyPending => ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            message,
        ),
        AppsError::Save(_) => ApiError::internal(message),
        _ => ApiError::bad_request("bad_request", message),
    }
}

/// The node's default wallet.
fn default_wallet(state: &ApiState) -> Result<wallet::Wallet, ApiError> {
    let dir = state
        .apps
        .wallet_dir()
        .ok_or_else(|| ApiError::not_found("this node has no data dir for wallets"))?;
    wallet::load_default(dir).map_err(|e| ApiError::not_found(e.to_string()))
}

async fn wallet_info(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let w = default_wallet(&state)?;
    let mut v = account_json(&state, &w.address());
    v["name"] = json!(w.name);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct SendBody {
    to: String,
    amount: u64,
    fee: Option<u64>,
    #[serde(default)]
    memo: String,
}

/// Signs a payment with the default wallet and submits it.
pub(super) async fn pay(
    state: &ApiState,
    to: Address,
    amount: u64,
    fee: u64,
    memo: Vec<u8>,
) -> Result<String, ApiError> {
    let w = default_wallet(state)?;
    let from = w.address();
    if from == to {
        return Err(ApiError::bad_request(
            "bad_transaction",
            "sender and recipient are the same account",
        ));
    }
    let (acc, pending_out, _, next_nonce) = state.ledger.account(&from);
    let need = amount
        .checked_add(fee)
        .ok_or_else(|| ApiError::bad_request("bad_transaction", "amount plus fee overflows"))?;
    let spendable = acc.balance.saturating_sub(pending_out);
    if spendable < need {
        return Err(ApiError::bad_request(
            "insufficient_balance",
            format!("insufficient balance: have {spendable}, need {need}"),
        ));
    }
    let genesis = state.ledger.genesis_hash();
    let tx = Transaction::sign(&w.key, &genesis.0, to, amount, fee, next_nonce, memo);
    let id = state.ledger.submit(tx).await.map_err(submit_error)?;
    Ok(id.to_string())
}

async fn wallet_send(
    State(state): State<ApiState>,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let to = parse_address(&b.to)?;
    if b.amount == 0 {
        return Err(ApiError::bad_request(
            "bad_transaction",
            "the amount must be more than zero",
        ));
    }
    let id = pay(
        &state,
        to,
        b.amount,
        b.fee.unwrap_or(DEFAULT_FEE),
        b.memo.into_bytes(),
    )
    .await?;
    Ok(Json(json!({ "id": id, "status": "pending" })))
}

/// The port this request came to, for app URLs.
fn port_of(headers: &HeaderMap) -> String {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| "4720".into())
}

async fn list_apps(State(state): State<ApiState>, headers: HeaderMap) -> Json<Value> {
    let port = port_of(&headers);
    let apps: Vec<Value> = state
        .apps
        .list()
        .into_iter()
        .map(|a| {
            json!({
                "hash": a.hash,
                "name": a.name,
                "url": weft_apps::apps::app_url(&a.hash, &port),
                "path_url": format!("http://127.0.0.1:{port}/app/{}/", a.hash),
                "permissions": a.permissions,
                "last_used": a.last_used,
            })
        })
        .collect();
    Json(json!(apps))
}

#[derive(Deserialize)]
struct PermissionsBody {
    payments: PaymentPermission,
    #[serde(default)]
    max_amount: u64,
    #[serde(default)]
    uploads: UploadPermission,
}

async fn set_permissions(
    State(state): State<ApiState>,
    Path(hash): Path<String>,
    body: Result<Json<PermissionsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let info = state
        .apps
        .set_permissions(
            &hash,
            Permissions {
                payments: b.payments,
                max_amount: b.max_amount,
                uploads: b.uploads,
            },
        )
        .map_err(apps_error)?;
    Ok(Json(json!(info)))
}

async fn list_requests(State(state): State<ApiState>) -> Json<Value> {
    Json(json!(state.apps.requests()))
}

async fn approve(
    State(state): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let req = state.apps.decide(id, true).map_err(apps_error)?;
    send_approved(&state, &req).await.map(Json)
}

/// Sends an approved request and records the outcome.
pub(super) async fn send_approved(
    state: &ApiState,
    req: &weft_apps::apps::PaymentRequest,
) -> Result<Value, ApiError> {
    let result = pay(
        state,
        req.to,
        req.amount,
        req.fee,
        req.memo.clone().into_bytes(),
    )
    .await;
    let recorded = state
        .apps
        .sent(req.id, result.clone().map_err(|e| e.message));
    let txid = result?;
    Ok(json!({ "id": req.id, "txid": txid, "request": recorded }))
}

async fn deny(State(state): State<ApiState>, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    let req = state.apps.decide(id, false).map_err(apps_error)?;
    Ok(Json(json!(req)))
}

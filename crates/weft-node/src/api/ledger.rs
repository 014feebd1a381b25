//! The ledger's API: `/v1/chain`, `/v1/blocks/{height|hash}`,
//! `/v1/accounts/{address}`, `/v1/transactions[/{id}]` and `/v1/mempool`.
//!
//! Transactions arrive signed (the CLI signs locally; the node never sees
//! a wallet's key) as the hex of their borsh encoding; they are validated
//! and gossiped, and invalid ones get a 4xx with a stable code.

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weft_ledger::{
    block::Block,
    mempool::Rejected,
    service::{BlockId, SubmitError, TxStatus},
    tx::TxError,
    Address, Transaction, TxId,
};

use super::{ApiError, ApiState};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/chain", get(chain))
        .route("/blocks/{id}", get(block))
        .route("/accounts/{address}", get(account))
        .route("/transactions", axum::routing::post(submit))
        .route("/transactions/{id}", get(transaction))
        .route("/mempool", get(mempool))
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A transaction as JSON.
fn tx_json(tx: &Transaction) -> Value {
    json!({
        "id": tx.id().to_string(),
        "from": tx.from.to_string(),
        "to": tx.to.to_string(),
        "amount": tx.amount,
        "fee": tx.fee,
        "nonce": tx.nonce,
        "memo": hex(&tx.memo),
        "signature": hex(&tx.signature),
    })
}

async fn chain(State(state): State<ApiState>) -> Json<Value> {
    Json(chain_json(&state))
}

/// The chain's summary, as `GET /v1/chain` and apps see it.
pub(super) fn chain_json(state: &ApiState) -> Value {
    let l = &state.ledger;
    let tip = l.tip();
    let (count, bytes) = l.mempool_size();
    let sync = l.sync_status();
    let genesis = l.genesis();
    json!({
        "genesis": l.genesis_hash().to_string(),
        "height": tip.height,
        "tip": tip.hash.to_string(),
        "timestamp": tip.timestamp,
        "difficulty": l.next_difficulty(),
        "work": tip.work.to_string(),
        "mempool": {"count": count, "bytes": bytes},
        "sync": {
            "state": if sync.syncing { "syncing" } else { "synced" },
            "best_height": sync.best_height,
        },
        "block_interval_ms": genesis.block_interval_ms,
        "reward": genesis.reward,
        "mining": l.is_mining(),
    })
}

fn block_json(b: &Block, main: bool, tip_height: u64, difficulty: Option<u64>) -> Value {
    let h = &b.header;
    json!({
        "hash": b.hash().to_string(),
        "height": h.height,
        "parent": h.parent.to_string(),
        "timestamp": h.timestamp,
        "difficulty": difficulty,
        "target": hex(&h.target),
        "nonce": h.nonce,
        "miner": h.miner.to_string(),
        "tx_root": hex(&h.tx_root),
        "size": b.size(),
        "main": main,
        "confirmations": if main { tip_height.saturating_sub(h.height) + 1 } else { 0 },
        "txs": b.txs.iter().map(tx_json).collect::<Vec<_>>(),
    })
}

async fn block(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: BlockId = id
        .parse()
        .map_err(|e: String| ApiError::bad_request("bad_block_id", e))?;
    let found = state
        .ledger
        .block(id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let Some((b, main)) = found else {
        return Err(ApiError::not_found("no such block"));
    };
    let difficulty = state.ledger.block_difficulty(&b.hash());
    Ok(Json(block_json(
        &b,
        main,
        state.ledger.tip().height,
        difficulty,
    )))
}

pub(super) fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse()
        .map_err(|e: weft_ledger::AddressError| ApiError::bad_request("bad_address", e.to_string()))
}

async fn account(
    State(state): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = parse_address(&address)?;
    Ok(Json(account_json(&state, &a)))
}

/// An account's state, as `GET /v1/accounts/{address}` and apps see it.
pub(super) fn account_json(state: &ApiState, a: &Address) -> Value {
    let (acc, pending_out, pending_in, next_nonce) = state.ledger.account(a);
    json!({
        "address": a.to_string(),
        "balance": acc.balance,
        "nonce": acc.nonce,
        "pending_out": pending_out,
        "pending_in": pending_in,
        "next_nonce": next_nonce,
    })
}

#[derive(Deserialize)]
struct SubmitBody {
    /// Hex of the transaction's borsh encoding.
    tx: String,
}

#[derive(Serialize)]
struct Submitted {
    id: String,
    status: &'static str,
}

async fn submit(
    State(state): State<ApiState>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<Json<Submitted>, ApiError> {
    let Json(body) = body?;
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(body.tx.trim().as_bytes())
        .map_err(|e| ApiError::bad_request("bad_transaction", format!("tx is not hex: {e}")))?;
    let tx = Transaction::decode(&bytes)
        .map_err(|e| ApiError::bad_request("bad_transaction", e.to_string()))?;
    let id = state.ledger.submit(tx).await.map_err(submit_error)?;
    Ok(Json(Submitted {
        id: id.to_string(),
        status: "pending",
    }))
}

pub(super) fn submit_error(e: SubmitError) -> ApiError {
    let message = e.to_string();
    match e {
        SubmitError::Invalid(TxError::BadSignature | TxError::BadKey) => {
            ApiError::bad_request("bad_signature", message)
        }
        SubmitError::Invalid(_) => ApiError::bad_request("bad_transaction", message),
        SubmitError::Rejected(r) => match r {
            Rejected::Duplicate => ApiError::conflict("duplicate", message),
            Rejected::StaleNonce { .. } | Rejected::NonceTooFar { .. } => {
                ApiError::bad_request("bad_nonce", message)
            }
            Rejected::InsufficientBalance { .. } => {
                ApiError::bad_request("insufficient_balance", message)
            }
            Rejected::FeeTooLow { .. } => ApiError::bad_request("fee_too_low", message),
            _ => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "mempool_full",
                message,
            ),
        },
        SubmitError::Shutdown => ApiError::unavailable(message),
    }
}

async fn transaction(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: TxId = id
        .parse()
        .map_err(|e: String| ApiError::bad_request("bad_transaction_id", e))?;
    let status = state
        .ledger
        .tx_status(id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(match status {
        TxStatus::Pending(tx) => {
            json!({"id": id.to_string(), "status": "pending", "tx": tx_json(&tx)})
        }
        TxStatus::Confirmed {
            tx,
            block,
            height,
            confirmations,
        } => json!({
            "id": id.to_string(),
            "status": "confirmed",
            "block": block.to_string(),
            "height": height,
            "confirmations": confirmations,
            "tx": tx.as_ref().map(tx_json),
        }),
        TxStatus::Unknown => json!({"id": id.to_string(), "status": "unknown"}),
    }))
}

async fn mempool(State(state): State<ApiState>) -> Json<Value> {
    let entries = state.ledger.mempool_entries();
    let (count, bytes) = state.ledger.mempool_size();
    let txs: Vec<Value> = entries
        .iter()
        .map(|(tx, ready)| {
            let mut v = tx_json(tx);
            v["ready"] = json!(ready);
            v
        })
        .collect();
    Json(json!({"count": count, "bytes": bytes, "txs": txs}))
}

//! `/v1/node`, `/v1/peers` and `/v1/dht`.

use std::time::Duration;

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    routing::{delete, get},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use weft_net::{DialError, PeerId};

use super::{ApiError, ApiState};

/// How long `POST /v1/peers` waits for the peer to connect and identify.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a DHT lookup through the API may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/node", get(node))
        .route("/peers", get(peers).post(dial))
        .route("/peers/{peer_id}", delete(disconnect))
        .route("/dht", get(dht))
        .route("/dht/peers/{peer_id}", get(lookup))
}

#[derive(Serialize)]
struct NodeResponse {
    peer_id: String,
    network: String,
    genesis: String,
    listen_addrs: Vec<String>,
    version: &'static str,
    uptime_s: u64,
}

async fn node(State(state): State<ApiState>) -> Result<Json<NodeResponse>, ApiError> {
    let listen_addrs = state.net.listen_addrs().await?;
    Ok(Json(NodeResponse {
        peer_id: state.net.local_peer_id().to_string(),
        network: state.network.to_string(),
        genesis: state.ledger.genesis_hash().to_string(),
        listen_addrs: listen_addrs.iter().map(ToString::to_string).collect(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
    }))
}

#[derive(Serialize)]
struct PeerResponse {
    peer_id: String,
    addrs: Vec<String>,
    direction: &'static str,
    rtt_ms: Option<f64>,
    protocols: Vec<String>,
    agent_version: Option<String>,
    connected_s: u64,
}

async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<PeerResponse>>, ApiError> {
    let peers = state.net.peers().await?;
    Ok(Json(
        peers
            .into_iter()
            .map(|p| PeerResponse {
                peer_id: p.peer_id.to_string(),
                addrs: p.addrs.iter().map(ToString::to_string).collect(),
                direction: p.direction.as_str(),
                rtt_ms: p.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                protocols: p.protocols,
                agent_version: p.agent_version,
                connected_s: p.connected_for.as_secs(),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialRequest {
    addr: String,
}

#[derive(Serialize)]
struct DialResponse {
    peer_id: String,
}

async fn dial(
    State(state): State<ApiState>,
    body: Result<Json<DialRequest>, JsonRejection>,
) -> Result<Json<DialResponse>, ApiError> {
    let Json(request) = body?;
    let addr = weft_net::parse_multiaddr(&request.addr)
        .map_err(|e| ApiError::bad_request("bad_addr", e.to_string()))?;
    let result = tokio::time::timeout(DIAL_TIMEOUT, state.net.dial(addr.clone()))
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "dial_timeout",
                format!(
                    "dialing {addr} took longer than {}s",
                    DIAL_TIMEOUT.as_secs()
                ),
            )
        })?;
    match result {
        Ok(peer) => Ok(Json(DialResponse {
            peer_id: peer.to_string(),
        })),
        Err(e @ DialError::WrongNetwork { .. }) => {
            Err(ApiError::conflict("wrong_network", e.to_string()))
        }
        Err(e @ DialError::SelfDial(_)) => Err(ApiError::conflict("self_dial", e.to_string())),
        Err(e @ DialError::Failed { .. }) => Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "dial_failed",
            e.to_string(),
        )),
        Err(e @ (DialError::Busy | DialError::Shutdown)) => {
            Err(ApiError::unavailable(e.to_string()))
        }
    }
}

fn parse_peer_id(text: &str) -> Result<PeerId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("bad_peer_id", format!("{text:?} is not a peer id")))
}

#[derive(Serialize)]
struct DisconnectResponse {
    disconnected: String,
}

async fn disconnect(
    State(state): State<ApiState>,
    Path(peer_id): Path<String>,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let peer = parse_peer_id(&peer_id)?;
    if state.net.disconnect(peer).await? {
        Ok(Json(DisconnectResponse {
            disconnected: peer.to_string(),
        }))
    } else {
        Err(ApiError::not_found(format!("peer {peer} is not connected")))
    }
}

#[derive(Serialize)]
struct DhtResponse {
    mode: &'static str,
    size: usize,
    buckets: Vec<BucketResponse>,
}

#[derive(Serialize)]
struct BucketResponse {
    index: u32,
    size: usize,
    peers: Vec<String>,
}

async fn dht(State(state): State<ApiState>) -> Result<Json<DhtResponse>, ApiError> {
    let info = state.net.dht().await?;
    Ok(Json(DhtResponse {
        mode: info.mode,
        size: info.size,
        buckets: info
            .buckets
            .into_iter()
            .map(|b| BucketResponse {
                index: b.index,
                size: b.peers.len(),
                peers: b.peers.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }))
}

#[derive(Serialize)]
struct LookupResponse {
    peer_id: String,
    found: bool,
    addrs: Vec<String>,
    requests: u32,
    successes: u32,
    duration_ms: u64,
}

async fn lookup(
    State(state): State<ApiState>,
    Path(peer_id): Path<String>,
) -> Result<Json<LookupResponse>, ApiError> {
    let peer = parse_peer_id(&peer_id)?;
    let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, state.net.find_peer(peer))
        .await
        .map_err(|_| ApiError::unavailable("DHT lookup timed out"))??;
    if !lookup.found {
        return Err(ApiError::not_found(format!(
            "peer {peer} was not found in the DHT"
        )));
    }
    Ok(Json(LookupResponse {
        peer_id: peer.to_string(),
        found: lookup.found,
        addrs: lookup.addrs.iter().map(ToString::to_string).collect(),
        requests: lookup.requests,
        successes: lookup.successes,
        duration_ms: lookup.duration.as_millis() as u64,
    }))
}

//! The local HTTP API: JSON under `/v1/` (bearer token required) and
//! Prometheus metrics at `/metrics`.
//!
//! The router is built by [`router`] from an [`ApiState`] and served by
//! [`serve`] until the cancellation token fires. Handlers only reach the
//! node through its service handles.

mod apps;
mod auth;
mod blobs;
mod error;
mod gateway;
mod ledger;
mod net;
mod topics;
mod ui;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{http::header, response::IntoResponse, routing::get, Router};
use tokio_util::sync::CancellationToken;
use weft_net::{NetworkHandle, Registry};

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub net: NetworkHandle,
    pub token: Arc<str>,
    pub started: Instant,
    pub registry: Arc<Registry>,
    pub blobs: weft_blobs::Blobs,
    pub ledger: weft_ledger::service::Ledger,
    pub pubsub: weft_apps::PubSub,
    pub apps: weft_apps::Apps,
    /// The network's name (without the genesis suffix the wire carries).
    pub network: Arc<str>,
}

/// Builds the router for `state`.
pub fn router(state: ApiState) -> Router {
    let v1 = net::routes()
        .merge(blobs::routes())
        .merge(ledger::routes())
        .merge(topics::routes())
        .merge(apps::routes())
        .fallback(|| async { ApiError::not_found("no such API path") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(metrics))
        .merge(gateway::routes())
        .merge(apps::app_routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found("no such path") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            apps::app_host,
        ))
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<ApiState>,
) -> axum::response::Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot encode metrics: {e}")).into_response(),
    }
}

/// Serves `router` on an already bound listener until `cancel` fires.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, cancel: CancellationToken) {
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("API server failed: {e}");
    }
}

/// The URL a client uses for `addr`.
pub fn url_for(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

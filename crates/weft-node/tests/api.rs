//! The API router, called in-process with `tower::ServiceExt::oneshot`
//! against a real network actor on loopback.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    Router,
};
use serde_json::Value;
use tower::ServiceExt;
use weft_net::{Config, Identity, Registry};
use weft_node::api::{router, ApiState};

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn app() -> (Router, weft_net::Network) {
    let mut registry = Registry::default();
    let net = weft_net::start(
        Config::loopback(Identity::generate(), "api-test"),
        &mut registry,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let blobs = weft_blobs::Blobs::start(
        weft_blobs::Config {
            dir: dir.join("blobs"),
            quota: None,
            fault: weft_blobs::transfer::Fault::None,
        },
        net.handle().clone(),
    )
    .await
    .unwrap();
    let ledger = weft_ledger::service::Ledger::start(
        weft_ledger::service::Config {
            genesis: weft_ledger::Genesis::builtin(),
            db_path: dir.join("ledger.redb"),
            mine: None,
            mempool: weft_ledger::mempool::Config::default(),
            clock: weft_ledger::service::system_clock(),
        },
        net.handle().clone(),
    )
    .await
    .unwrap();
    let state = ApiState {
        pubsub: weft_apps::PubSub::new(net.handle().clone()),
        apps: weft_apps::Apps::default(),
        ledger,
        network: Arc::from("api-test"),
        blobs,
        net: net.handle().clone(),
        token: Arc::from(TOKEN),
        started: Instant::now(),
        registry: Arc::new(registry),
    };
    (router(state), net)
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn every_v1_call_needs_the_token() {
    let (app, net) = app().await;
    for (method, path) in [
        (Method::GET, "/v1/node"),
        (Method::GET, "/v1/peers"),
        (Method::POST, "/v1/peers"),
        (Method::GET, "/v1/dht"),
        (
            Method::DELETE,
            "/v1/peers/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
        ),
    ] {
        let (s, b) = call(&app, method.clone(), path, None, None).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
        let (s, b) = call(&app, method, path, Some("wrong"), None).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    net.shutdown().await;
}

#[tokio::test]
async fn node_peers_and_dht_answer() {
    let (app, net) = app().await;
    let (s, node) = call(&app, Method::GET, "/v1/node", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(node["peer_id"], net.handle().local_peer_id().to_string());
    assert_eq!(node["network"], "api-test");
    assert!(node["version"].is_string());
    assert!(node["uptime_s"].is_u64());
    assert_eq!(node["listen_addrs"].as_array().unwrap().len(), 2);

    let (s, peers) = call(&app, Method::GET, "/v1/peers", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(peers, serde_json::json!([]));

    // Dial a second node through the API; it then shows up with all fields.
    let mut registry = Registry::default();
    let other = weft_net::start(
        Config::loopback(Identity::generate(), "api-test"),
        &mut registry,
    )
    .await
    .unwrap();
    let addr = other.handle().listen_addrs().await.unwrap()[0].to_string();
    let body = serde_json::json!({ "addr": addr }).to_string();
    let (s, dialed) = call(&app, Method::POST, "/v1/peers", Some(TOKEN), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{dialed}");
    assert_eq!(
        dialed["peer_id"],
        other.handle().local_peer_id().to_string()
    );

    let (_, peers) = call(&app, Method::GET, "/v1/peers", Some(TOKEN), None).await;
    let p = &peers[0];
    for field in ["peer_id", "addrs", "direction", "rtt_ms", "protocols"] {
        assert!(p.get(field).is_some(), "missing {field}: {p}");
    }
    assert_eq!(p["direction"], "outbound");
    assert!(p["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "/weft/kad/1.0.0"));

    let (s, dht) = call(&app, Method::GET, "/v1/dht", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(dht["size"], 1, "{dht}");
    assert_eq!(
        dht["buckets"][0]["peers"][0],
        other.handle().local_peer_id().to_string()
    );

    let path = format!("/v1/peers/{}", other.handle().local_peer_id());
    let (s, _) = call(&app, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);

    // Metrics: ours and libp2p's, without a token.
    let (s, text) = call(&app, Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap().to_owned();
    for metric in [
        "weft_peers",
        "weft_dht_routing_table_size",
        "libp2p_bandwidth_bytes",
        "libp2p_swarm",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    other.shutdown().await;
    net.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let (app, net) = app().await;
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/peers",
        Some(TOKEN),
        Some("{not json"),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_json");
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/peers",
        Some(TOKEN),
        Some(r#"{"addr": 5}"#),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_json");
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/peers",
        Some(TOKEN),
        Some(r#"{"addr": "/ip4/1.2.3"}"#),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_addr");

    let unknown = "/v1/peers/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    let (s, b) = call(&app, Method::DELETE, unknown, Some(TOKEN), None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = call(
        &app,
        Method::DELETE,
        "/v1/peers/not-a-peer",
        Some(TOKEN),
        None,
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_peer_id");
    let (s, b) = call(&app, Method::GET, "/v1/nothing-here", Some(TOKEN), None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");

    // Dialing ourselves is a conflict, not a crash.
    let own = net.handle().listen_addrs().await.unwrap()[0].to_string();
    let body = serde_json::json!({ "addr": own }).to_string();
    let (s, b) = call(&app, Method::POST, "/v1/peers", Some(TOKEN), Some(&body)).await;
    assert_error(s, &b, StatusCode::CONFLICT, "self_dial");

    // Nothing listens there: a clean dial failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let body = serde_json::json!({ "addr": format!("/ip4/127.0.0.1/tcp/{port}") }).to_string();
    let (s, b) = call(&app, Method::POST, "/v1/peers", Some(TOKEN), Some(&body)).await;
    assert_error(s, &b, StatusCode::BAD_GATEWAY, "dial_failed");
    net.shutdown().await;
}

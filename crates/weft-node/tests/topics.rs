//! App topics over the HTTP API, end to end: two real nodes on loopback,
//! reqwest against their APIs, Server-Sent Events read as they arrive.

use std::time::{Duration, Instant};

use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use weft_node::{Node, NodeConfig};

const DEADLINE: Duration = Duration::from_secs(30);

async fn node(dir: &std::path::Path, name: &str) -> Node {
    Node::start(NodeConfig::loopback(dir.join(name), "topics-api"))
        .await
        .expect("node starts")
}

fn url(node: &Node, path: &str) -> String {
    format!("{}{path}", node.info().api_url)
}

async fn get_json(client: &Client, node: &Node, path: &str) -> Value {
    let r = client
        .get(url(node, path))
        .bearer_auth(&node.info().api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.json().await.unwrap()
}

/// POSTs `body` (raw, or as JSON when `json` is set) to a topic.
async fn post(
    client: &Client,
    node: &Node,
    topic: &str,
    body: Vec<u8>,
    json: bool,
) -> (StatusCode, Value) {
    let mut request = client
        .post(url(node, &format!("/v1/topics/{topic}/messages")))
        .bearer_auth(&node.info().api_token)
        .body(body);
    if json {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let bytes = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

/// An open event stream.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(client: &Client, node: &Node, topic: &str) -> Events {
        let response = client
            .get(url(node, &format!("/v1/topics/{topic}/events")))
            .bearer_auth(&node.info().api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's type and JSON data, or None by the deadline.
    async fn next(&mut self, deadline: Duration) -> Option<(String, Value)> {
        let until = Instant::now() + deadline;
        loop {
            // Events end with a blank line; comments (keep-alives) start with ':'.
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut kind, mut data) = ("message".to_owned(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some((
                    kind,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
            let left = until.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => panic!("the event stream ended"),
                Err(_) => return None,
            }
        }
    }
}

/// Whether `node` lists `topic` with `peer` in its mesh.
async fn in_mesh(client: &Client, node: &Node, topic: &str, peer: &str) -> bool {
    let list = get_json(client, node, "/v1/topics").await;
    list.as_array().unwrap().iter().any(|t| {
        t["topic"] == topic
            && t["mesh_peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == peer)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_on_one_node_streams_from_another_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(dir.path(), "a").await, node(dir.path(), "b").await);
    b.net()
        .dial(a.info().listen_addrs[0].clone())
        .await
        .unwrap();
    let client = Client::new();
    let (ida, idb) = (a.info().peer_id.to_string(), b.info().peer_id.to_string());

    let mut on_b = Events::open(&client, &b, "chat").await;
    let mut on_a = Events::open(&client, &a, "chat").await;
    assert!(
        weft_testkit::wait_for(DEADLINE, || in_mesh(&client, &a, "chat", &idb)).await,
        "no mesh at A"
    );
    assert!(
        weft_testkit::wait_for(DEADLINE, || in_mesh(&client, &b, "chat", &ida)).await,
        "no mesh at B"
    );
    let listed = get_json(&client, &b, "/v1/topics").await;
    assert_eq!(
        listed,
        json!([{"topic": "chat", "subscribers": 1, "mesh_peers": [ida]}])
    );

    // A raw body.
    let (status, sent) = post(&client, &a, "chat", b"hello from A".to_vec(), false).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["topic"], "chat");
    assert_eq!(sent["from"], ida);
    assert_eq!(sent["id"].as_str().unwrap().len(), 64);
    assert!(sent["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    for events in [&mut on_b, &mut on_a] {
        let (kind, got) = events.next(DEADLINE).await.expect("the message arrives");
        assert_eq!(kind, "message");
        assert_eq!(got["data"], "hello from A");
        for field in ["id", "topic", "from", "timestamp"] {
            assert_eq!(got[field], sent[field], "{field}");
        }
    }

    // JSON, then binary: each is the very next event, so nothing came twice.
    let (status, json_sent) = post(
        &client,
        &a,
        "chat",
        br#"{"message": "sent as JSON"}"#.to_vec(),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json_sent}");
    let (status, bin_sent) = post(&client, &a, "chat", vec![0xff, 0xfe, 0x00], false).await;
    assert_eq!(status, StatusCode::OK, "{bin_sent}");
    for events in [&mut on_b, &mut on_a] {
        let (_, got) = events.next(DEADLINE).await.expect("the JSON message");
        assert_eq!(got["data"], "sent as JSON");
        assert_eq!(got["id"], json_sent["id"]);
        let (_, got) = events.next(DEADLINE).await.expect("the binary message");
        assert_eq!(got["data_base64"], "//4A");
        assert!(got.get("data").is_none());
        assert_eq!(got["id"], bin_sent["id"]);
    }
    assert!(
        on_b.next(Duration::from_millis(300)).await.is_none(),
        "a stray event"
    );

    // The other way, B to A.
    let (status, _) = post(&client, &b, "chat", b"hello from B".to_vec(), false).await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = on_a.next(DEADLINE).await.expect("B's message");
    assert_eq!(
        (got["data"].as_str(), got["from"].as_str()),
        (Some("hello from B"), Some(idb.as_str()))
    );

    // The client goes away: the subscription ends with it.
    drop(on_b);
    let ended = weft_testkit::wait_for(DEADLINE, || async {
        get_json(&client, &b, "/v1/topics").await[0]["subscribers"] == 0
    })
    .await;
    assert!(ended, "B still counts the closed event stream");
    drop(on_a);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "a").await;
    let client = Client::new();

    for topic in [
        "bad!topic",
        "with%20space",
        "%C3%A9t%C3%A9",
        &"x".repeat(65),
    ] {
        let (status, err) = post(&client, &a, topic, b"hi".to_vec(), false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{topic}: {err}");
        assert_eq!(err["code"], "bad_topic");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("1 to 64 characters"),
            "{err}"
        );
        let r = client
            .get(url(&a, &format!("/v1/topics/{topic}/events")))
            .bearer_auth(&a.info().api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "bad_topic");
    }

    // Just over the limit: the exact size is reported.
    let (status, err) = post(&client, &a, "chat", vec![b'x'; 64 * 1024 + 1], false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["code"], "too_large");
    assert!(err["message"].as_str().unwrap().contains("65537"), "{err}");
    // Far over it, raw or as JSON.
    let (status, err) = post(&client, &a, "chat", vec![b'x'; 4 << 20], false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["code"], "too_large");
    assert!(
        err["message"].as_str().unwrap().contains("4194304 bytes"),
        "{err}"
    );
    let huge = serde_json::to_vec(&json!({"message": "y".repeat(100_000)})).unwrap();
    let (status, err) = post(&client, &a, "chat", huge, true).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    // The limit itself is fine.
    let (status, _) = post(&client, &a, "chat", vec![b'x'; 64 * 1024], false).await;
    assert_eq!(status, StatusCode::OK);

    let (status, err) = post(&client, &a, "chat", b"{\"msg\": 1}".to_vec(), true).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json"))
    );

    // No token, or a wrong one.
    for path in ["/v1/topics", "/v1/topics/chat/events"] {
        let r = client.get(url(&a, path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    }
    let r = client
        .post(url(&a, "/v1/topics/chat/messages"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .post(url(&a, "/v1/topics/chat/messages"))
        .bearer_auth("wrong")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    a.shutdown().await;
}

//! App origins end to end: the example app served on its own origin and at
//! `/app/<hash>/`, with content types and a strict CSP; the API unreachable
//! from an app and closed without the token; path traversal refused; and
//! an app's payment that happens only after the user approves it.

use std::{path::Path, time::Duration};

use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_ledger::{genesis::Alloc, wallet, Genesis};
use weft_node::{config::Mining, Node, NodeConfig};

/// `send`, then the answer's body, for tests (panics on transport errors).
trait Answer {
    async fn json_value(self) -> Value;
    async fn body_bytes(self) -> Box<[u8]>;
}

impl Answer for reqwest::RequestBuilder {
    async fn json_value(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }

    async fn body_bytes(self) -> Box<[u8]> {
        self.send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
            .into()
    }
}

fn board_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/board")
}

/// A node whose default wallet is prefunded on its own devnet, mining.
async fn funded_node(dir: &Path) -> (Node, String) {
    let data = dir.join("node");
    let w = wallet::create(&data.join("wallets"), "default").unwrap();
    let mut c = NodeConfig::loopback(data, "apps-test");
    c.genesis = Genesis {
        name: "apps test".into(),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            - 60_000,
        alloc: vec![Alloc {
            address: w.address(),
            amount: 1_000_000,
        }],
        block_interval_ms: 200,
        reward: 10,
        difficulty: 20,
    };
    c.mine = Some(Mining {
        miner: Some(weft_ledger::Address([0xee; 32])),
        threads: 1,
    });
    (Node::start(c).await.unwrap(), w.address().to_string())
}

async fn publish_board(client: &Client, node: &Node) -> String {
    let v: Value = client
        .post(format!("{}/v1/blobs", node.info().api_url))
        .bearer_auth(&node.info().api_token)
        .json(&json!({ "path": board_dir().canonicalize().unwrap() }))
        .json_value()
        .await;
    v["hash"].as_str().unwrap().to_owned()
}

fn port(node: &Node) -> u16 {
    node.info().api_addr.port()
}

/// The app's own host, `<base32 hash>.app.localhost:PORT`, as browsers
/// reach it (a DNS label holds at most 63 characters).
fn app_host(node: &Node, hash: &str) -> String {
    let label = weft_apps::apps::origin_label(hash).unwrap();
    assert!(label.len() <= 63);
    format!("{label}.app.localhost:{}", port(node))
}

/// GET `path` on the app's origin, as a browser would.
async fn on_app(client: &Client, node: &Node, hash: &str, path: &str) -> reqwest::Response {
    client
        .get(format!("{}{path}", node.info().api_url))
        .header(header::HOST, app_host(node, hash))
        .send()
        .await
        .unwrap()
}

/// A raw HTTP GET (reqwest would normalise `..` away).
async fn raw_get(node: &Node, host: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(node.info().api_addr)
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_get_their_own_origin_types_and_csp() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("n"), "apps-origin"))
        .await
        .unwrap();
    let client = Client::new();
    let hash = publish_board(&client, &node).await;

    let page = on_app(&client, &node, &hash, "/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let ct = page.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("weft board"));
    let css = on_app(&client, &node, &hash, "/style.css").await;
    assert!(css.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let js = on_app(&client, &node, &hash, "/app.js").await;
    assert!(js.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let sdk = on_app(&client, &node, &hash, "/sdk/weft.js").await;
    assert_eq!(sdk.status(), StatusCode::OK);
    assert!(sdk.text().await.unwrap().contains("window.weft"));

    // The path form: sandboxed into an opaque origin.
    let base = &node.info().api_url;
    let page = client
        .get(format!("{base}/app/{hash}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("sandbox allow-scripts") && !csp.contains("allow-same-origin"),
        "{csp}"
    );

    // Origins differ: the dashboard's, this app's, another app's.
    let app_origin = format!("http://{}", app_host(&node, &hash));
    let other = format!("http://{}", app_host(&node, &"b".repeat(64)));
    assert_ne!(app_origin, *base);
    assert_ne!(app_origin, other);

    // The API is not reachable from an app's origin, even with the token.
    let api_from_app = client
        .get(format!("{base}/v1/node"))
        .header(header::HOST, app_host(&node, &hash))
        .bearer_auth(&node.info().api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(api_from_app.status(), StatusCode::NOT_FOUND);
    // And on the node's origin it needs the token.
    for path in ["/v1/wallet", "/v1/apps", "/v1/apps/requests"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = client
        .post(format!("{base}/v1/apps/requests/1/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Path traversal is refused in both forms.
    let host = format!("127.0.0.1:{}", port(&node));
    for path in [
        format!("/app/{hash}/../../etc/passwd"),
        format!("/app/{hash}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/app/{hash}/..%2f..%2fetc%2fpasswd"),
    ] {
        let out = raw_get(&node, &host, &path).await;
        let status = out.split_whitespace().nth(1).unwrap_or("").to_owned();
        assert!(status.starts_with('4'), "{path}: {status}");
        assert!(!out.contains("root:"), "{path}");
    }
    let out = raw_get(&node, &app_host(&node, &hash), "/../../etc/passwd").await;
    assert!(out.split_whitespace().nth(1).unwrap_or("").starts_with('4'));

    // Bad input: a malformed topic and a huge message get clear errors.
    let bad = on_app(&client, &node, &hash, "/.weft/topics/no%20spaces!/events").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let huge = client
        .post(format!("{base}/.weft/topics/board/messages"))
        .header(header::HOST, app_host(&node, &hash))
        .body(json!({ "message": "x".repeat(200_000) }).to_string())
        .send()
        .await
        .unwrap();
    assert!(huge.status().is_client_error(), "{}", huge.status());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_payment_happens_only_after_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (node, me) = funded_node(dir.path()).await;
    let client = Client::new();
    let hash = publish_board(&client, &node).await;
    let base = node.info().api_url.clone();
    let app_origin = format!("http://{}", app_host(&node, &hash));
    let payee = weft_ledger::Address([0x42; 32]).to_string();
    let pay = |origin: &str| {
        client
            .post(format!("{base}/.weft/payments"))
            .header(header::HOST, app_host(&node, &hash))
            .header(header::ORIGIN, origin.to_owned())
            .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(json!({ "to": payee, "amount": 700, "memo": "tip" }).to_string())
            .send()
    };
    // Another site cannot ask in this app's name.
    let forged = pay("http://evil.example").await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let req: Value = pay(&app_origin).await.unwrap().json().await.unwrap();
    assert_eq!(req["status"], "pending", "{req}");
    let id = req["id"].as_u64().unwrap();
    // Nothing is spent while it waits.
    let account = |a: String| {
        let client = client.clone();
        let base = base.clone();
        let token = node.info().api_token.clone();
        async move {
            client
                .get(format!("{base}/v1/accounts/{a}"))
                .bearer_auth(token)
                .json_value()
                .await
        }
    };
    assert_eq!(account(payee.clone()).await["pending_in"], 0);
    let listed: Value = client
        .get(format!("{base}/v1/apps/requests"))
        .bearer_auth(&node.info().api_token)
        .json_value()
        .await;
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["status"], "pending");

    // The user approves in the dashboard (with the token).
    let approved: Value = client
        .post(format!("{base}/v1/apps/requests/{id}/approve"))
        .bearer_auth(&node.info().api_token)
        .json_value()
        .await;
    let txid = approved["txid"].as_str().expect("txid").to_owned();
    let status: Value = client
        .get(format!("{base}/.weft/payments/{id}"))
        .header(header::HOST, app_host(&node, &hash))
        .json_value()
        .await;
    assert_eq!(status["status"], "sent");
    assert_eq!(status["txid"], txid.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while account(payee.clone()).await["balance"] != 700 {
        assert!(
            std::time::Instant::now() < deadline,
            "the tip was never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(account(me.clone()).await["balance"], 1_000_000 - 700 - 100);

    // A denied request spends nothing.
    let req: Value = pay(&app_origin).await.unwrap().json().await.unwrap();
    let id = req["id"].as_u64().unwrap();
    let denied = client
        .post(format!("{base}/v1/apps/requests/{id}/deny"))
        .bearer_auth(&node.info().api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::OK);
    let again = client
        .post(format!("{base}/v1/apps/requests/{id}/approve"))
        .bearer_auth(&node.info().api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(account(payee).await["pending_in"], 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_adds_content_only_when_the_user_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("n"), "apps-upload"))
        .await
        .unwrap();
    let client = Client::new();
    let hash = publish_board(&client, &node).await;
    let base = node.info().api_url.clone();
    let app_origin = format!("http://{}", app_host(&node, &hash));
    let bytes = b"an attachment from the board".to_vec();
    let expected = weft_blobs::Hash::new(&bytes).to_hex();
    let upload = |origin: &str, body: Vec<u8>| {
        client
            .post(format!("{base}/.weft/content?name=note.txt"))
            .header(header::HOST, app_host(&node, &hash))
            .header(header::ORIGIN, origin.to_owned())
            .body(body)
            .send()
    };
    let code = |r: Value| r["code"].as_str().unwrap_or_default().to_owned();

    // Not allowed yet: refused, and nothing is stored.
    let r = upload(&app_origin, bytes.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(code(r.json().await.unwrap()), "permission_required");
    let has = |h: String| {
        let node = &node;
        async move {
            let parsed: weft_blobs::Hash = h.parse().unwrap();
            node.blobs().info(parsed).await.unwrap().is_some()
        }
    };
    assert!(!has(expected.clone()).await, "a refused upload was stored");

    // Only the user, with the token, allows it.
    let allow = |token: Option<String>| {
        let mut req = client
            .post(format!("{base}/v1/apps/{hash}/permissions"))
            .json(&json!({ "payments": "ask", "uploads": "allow" }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        allow(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let set: Value = allow(Some(node.info().api_token.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set["permissions"]["uploads"], "allow", "{set}");

    // Another site, or the shared path form, still cannot upload as the app.
    let forged = upload("http://evil.example", bytes.clone()).await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let path_form = client
        .post(format!("{base}/app/{hash}/.weft/content"))
        .header(header::ORIGIN, "null")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(path_form.status(), StatusCode::FORBIDDEN);
    assert!(!has(expected.clone()).await);

    let added: Value = upload(&app_origin, bytes.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["hash"], expected.as_str(), "{added}");
    assert_eq!(added["size"], bytes.len());
    assert_eq!(added["name"], "note.txt");
    let served = client
        .get(format!("{base}/blob/{expected}"))
        .body_bytes()
        .await;
    assert_eq!(served.as_ref(), bytes.as_slice());

    // Over the per-upload limit: 413, and no temporary file is left.
    let big = vec![7u8; weft_apps::apps::MAX_APP_UPLOAD as usize + 1];
    let r = upload(&app_origin, big).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let leftovers: Vec<_> = std::fs::read_dir(node.blobs().store().dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    node.shutdown().await;
}

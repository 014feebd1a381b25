//! The dashboard end to end: a real node on loopback serves `/` and the
//! assets under `/ui/` with the right types and security headers, without a
//! token, and nothing else from that folder.

use reqwest::{header, Client, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_node::{Node, NodeConfig};

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

async fn start(dir: &std::path::Path) -> Node {
    Node::start(NodeConfig::loopback(dir.join("node"), "ui-test"))
        .await
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &header::HeaderName) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// GETs `path` and checks the dashboard's headers; answers with the body.
async fn get_asset(client: &Client, node: &Node, path: &str, content_type: &str) -> String {
    let resp = client
        .get(format!("{}{path}", node.info().api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(header(&resp, &header::CONTENT_TYPE), content_type, "{path}");
    assert_eq!(
        header(&resp, &header::CONTENT_SECURITY_POLICY),
        CSP,
        "{path}"
    );
    assert_eq!(header(&resp, &header::CACHE_CONTROL), "no-cache", "{path}");
    assert_eq!(
        header(&resp, &header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{path}"
    );
    assert_eq!(
        header(&resp, &header::REFERRER_POLICY),
        "no-referrer",
        "{path}"
    );
    let body = resp.text().await.unwrap();
    assert!(!body.is_empty(), "{path} is empty");
    body
}

/// The status of a request sent byte for byte (reqwest would normalise the path).
async fn raw_status(node: &Node, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(node.info().api_addr)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_assets_are_served_with_strict_headers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let client = Client::new();

    let index = get_asset(&client, &node, "/", "text/html; charset=utf-8").await;
    for asset in ["/ui/style.css", "/ui/app.js"] {
        assert!(index.contains(asset), "index.html does not load {asset}");
    }
    assert!(
        !index.contains("<script>") && !index.contains(" style="),
        "no inline code"
    );
    for id in [
        "share-file",
        "share-button",
        "content-list",
        "fetch-ticket",
        "fetch-button",
        "fetch-progress",
        "wallet-address",
        "wallet-balance",
        "send-to",
        "send-amount",
        "send-button",
        "send-confirm",
        "requests-list",
        "bandwidth-plot",
    ] {
        assert!(
            index.contains(&format!("id=\"{id}\"")),
            "index.html has no #{id}"
        );
    }
    let same = get_asset(&client, &node, "/ui/index.html", "text/html; charset=utf-8").await;
    assert_eq!(same, index);

    let css = get_asset(&client, &node, "/ui/style.css", "text/css; charset=utf-8").await;
    assert!(css.contains("--accent"));

    let app = get_asset(
        &client,
        &node,
        "/ui/app.js",
        "text/javascript; charset=utf-8",
    )
    .await;
    // Every module app.js imports is served too.
    let modules: Vec<&str> = app
        .split("from './")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .collect();
    assert!(
        modules.len() >= 5,
        "app.js imports its modules: {modules:?}"
    );
    for module in modules {
        let js = get_asset(
            &client,
            &node,
            &format!("/ui/{module}"),
            "text/javascript; charset=utf-8",
        )
        .await;
        assert!(js.contains("export "), "{module} exports nothing");
    }
    get_asset(&client, &node, "/ui/favicon.svg", "image/svg+xml").await;

    // The page needs no token; the API behind it still does.
    let resp = client
        .get(format!("{}/v1/node", node.info().api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_assets_and_path_traversal_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let client = Client::new();

    for path in ["/ui/nope.js", "/ui/", "/ui/APP.JS", "/ui/app.js.map"] {
        let resp = client
            .get(format!("{}{path}", node.info().api_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/ui/..%2f..",
        "/ui/..%2f..%2fCargo.toml",
        "/ui/..%2fsrc%2fapi%2fui.rs",
        "/ui/%2e%2e%2fapi.token",
        "/ui/../../api.token",
        "/ui/..",
        "/ui/.%2fapp.js",
        "/ui/app.js%00",
    ] {
        assert_eq!(raw_status(&node, path).await, 404, "{path}");
    }
    // The token file in the data dir is never reachable.
    let resp = client
        .get(format!("{}/api.token", node.info().api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    node.shutdown().await;
}

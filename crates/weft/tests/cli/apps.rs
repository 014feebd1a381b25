//! `weft app` beyond publishing: the apps a node served and what each may
//! do, and apps' payment requests approved or denied from the CLI.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::Duration,
};

use serde_json::{json as value, Value};

use crate::{
    payments::{genesis, json, new_wallet, node_args, try_json},
    support::{stderr, unique_network, wait_until, Daemon},
};

/// POSTs `body` to the app API path `path` on the app's own origin, as
/// the app's page would; returns the JSON answer.
fn post_as_app(node: &Daemon, hash: &str, path: &str, body: &Value) -> Value {
    let port = node
        .api_url
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1;
    let host = format!(
        "{}.app.localhost:{port}",
        weft_apps::apps::origin_label(hash).unwrap()
    );
    let body = body.to_string();
    let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (_, json_body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    serde_json::from_str(json_body).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn app_permissions_and_payment_requests_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let me = new_wallet(&dir);
    let g = genesis(tmp.path(), &[(&me, 1_000_000)], "300ms", 50);
    let node = Daemon::start(&dir, &node_args(&unique_network("apps"), &g, &["--mine"]));
    let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/board");
    let published = json(&dir, &["app", "publish", board.to_str().unwrap()]);
    let hash = published["hash"].as_str().expect("hash").to_owned();

    // Permissions: shown, changed one at a time, listed.
    let shown = json(&dir, &["app", "permissions", &hash]);
    assert_eq!(shown["payments"], "ask", "{shown}");
    assert_eq!(shown["uploads"], "deny", "{shown}");
    let set = json(&dir, &["app", "permissions", &hash, "--uploads", "allow"]);
    assert_eq!(set["uploads"], "allow", "{set}");
    assert_eq!(
        set["payments"], "ask",
        "other permissions keep their values"
    );
    let listed = json(&dir, &["app", "list"]);
    let app = listed
        .as_array()
        .and_then(|l| l.iter().find(|a| a["hash"] == hash.as_str()))
        .unwrap_or_else(|| panic!("{hash} not in {listed}"));
    assert_eq!(app["permissions"]["uploads"], "allow", "{app}");
    let text = node.weft(&["app", "list"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("uploads: allow"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let bad = node.weft(&["app", "permissions", "not-a-hash", "--uploads", "allow"]);
    assert!(!bad.status.success());
    assert_eq!(stderr(&bad).trim().lines().count(), 1, "{}", stderr(&bad));

    // A payment the app asks for waits; denied from the CLI, it cannot be
    // approved afterwards.
    let payee = weft_ledger::Address([0x42; 32]).to_string();
    let ask = value!({ "to": payee, "amount": 700, "memo": "tip" });
    let first = post_as_app(&node, &hash, "/.weft/payments", &ask);
    assert_eq!(first["status"], "pending", "{first}");
    let n = first["id"].as_u64().expect("id");
    let id = n.to_string();
    let requests = json(&dir, &["app", "requests"]);
    assert!(
        requests
            .as_array()
            .is_some_and(|l| l.iter().any(|r| r["id"] == n && r["status"] == "pending")),
        "{requests}"
    );
    let denied = node.weft(&["app", "deny", &id]);
    assert!(denied.status.success(), "{}", stderr(&denied));
    let late = node.weft(&["app", "approve", &id]);
    assert!(!late.status.success(), "a denied request was approved");
    assert_eq!(stderr(&late).trim().lines().count(), 1, "{}", stderr(&late));

    // Approved from the CLI, it is paid and confirmed.
    let second = post_as_app(&node, &hash, "/.weft/payments", &ask);
    let id = second["id"].as_u64().expect("id").to_string();
    let approved = json(&dir, &["app", "approve", &id]);
    let txid = approved["txid"].as_str().expect("txid").to_owned();
    let confirmed = wait_until(Duration::from_secs(60), || {
        try_json(&dir, &["tx", &txid]).is_some_and(|t| t["status"] == "confirmed")
    });
    assert!(confirmed, "the approved payment {txid} was never confirmed");
    assert_eq!(json(&dir, &["balance", &payee])["balance"], 700);
    drop(node);
}

//! Three `weft start` processes: B and C bootstrap only from A, and find
//! each other through the DHT.

use std::time::Duration;

use crate::support::{loopback_args, unique_network, wait_until, Daemon};

#[test]
fn peers_find_each_other_through_the_dht() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("discovery");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));

    let mut args = loopback_args(&network);
    args.extend(["--bootstrap".to_owned(), a.addr("tcp")]);
    let b = Daemon::start(&tmp.path().join("b"), &args);
    let c = Daemon::start(&tmp.path().join("c"), &args);

    // Neither was told about the other: only A's address was given.
    let found = wait_until(Duration::from_secs(60), || {
        b.peer_ids().contains(&c.peer_id) && c.peer_ids().contains(&b.peer_id)
    });
    assert!(
        found,
        "B and C did not find each other: B sees {:?}, C sees {:?}",
        b.peer_ids(),
        c.peer_ids()
    );
    assert!(a.peer_ids().contains(&b.peer_id));

    // The DHT knows both other nodes on B.
    let out = b.weft(&["status", "--json"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["dht_size"].as_u64().unwrap() >= 2, "{status}");
}

#[test]
fn cli_reports_identity_and_dials() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("dial");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&network));

    let out = a.weft(&["id", "--json"]);
    assert!(out.status.success());
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["peer_id"], a.peer_id.as_str());
    assert!(id["listen_addrs"].as_array().unwrap().len() >= 2);

    let text = a.weft(&["id"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&a.peer_id));

    // Dial over QUIC through the CLI, then see the peer from both sides.
    let out = b.weft(&["dial", &a.addr("quic-v1")]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a.peer_id));
    assert!(b.peer_ids().contains(&a.peer_id));
    assert!(wait_until(Duration::from_secs(20), || a
        .peer_ids()
        .contains(&b.peer_id)));

    // Disconnect through the CLI.
    let out = b.weft(&["disconnect", &a.peer_id]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert!(wait_until(Duration::from_secs(20), || !b
        .peer_ids()
        .contains(&a.peer_id)));

    // --api and --token reach the node without a data dir.
    let token = std::fs::read_to_string(a.dir.join("api.token")).unwrap();
    let out = crate::support::weft_raw(&["--api", &a.api_url, "--token", token.trim(), "status"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("peers:"));
}

#[test]
fn devnet_starts_connected_nodes() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let mut child = std::process::Command::new(crate::support::WEFT)
        .args(["--json", "devnet", "--nodes", "3", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("devnet printed {line:?}: {e}")
    });
    let nodes = v["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 3);
    for node in &nodes {
        let data_dir = node["data_dir"].as_str().unwrap();
        let out = crate::support::weft(std::path::Path::new(data_dir), &["peers", "--json"]);
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(peers.as_array().unwrap().len(), 2, "{data_dir}: {peers}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

//! The ledger through the real binary: a payment sent with `weft send` is
//! confirmed on three nodes, and nodes killed with -9 while mining and while
//! syncing restart with their chain intact and catch up.

use std::{path::Path, time::Duration};

use serde_json::Value;

use crate::support::{loopback_args, stderr, unique_network, wait_until, weft, Daemon};

pub(crate) fn json(dir: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = weft(dir, &full);
    assert!(out.status.success(), "weft {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

pub(crate) fn try_json(dir: &Path, args: &[&str]) -> Option<Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = weft(dir, &full);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn height(dir: &Path) -> u64 {
    try_json(dir, &["chain"])
        .and_then(|v| v["height"].as_u64())
        .unwrap_or(0)
}

pub(crate) fn new_wallet(dir: &Path) -> String {
    let v = json(dir, &["wallet", "new"]);
    v["address"].as_str().expect("address").to_owned()
}

/// Writes a genesis into `dir` and returns its path.
pub(crate) fn genesis(
    dir: &Path,
    allocs: &[(&str, u64)],
    interval: &str,
    difficulty: u64,
) -> String {
    let path = dir.join("genesis.json");
    let p = path.to_str().expect("utf-8 path").to_owned();
    let mut args: Vec<String> = vec!["genesis".into(), "new".into()];
    for (addr, amount) in allocs {
        args.push("--alloc".into());
        args.push(format!("{addr}={amount}"));
    }
    args.extend(
        [
            "--block-interval",
            interval,
            "--reward",
            "1000",
            "--difficulty",
            &difficulty.to_string(),
            "-o",
            &p,
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = weft(dir, &refs);
    assert!(out.status.success(), "genesis new: {}", stderr(&out));
    p
}

pub(crate) fn node_args(network: &str, genesis: &str, extra: &[&str]) -> Vec<String> {
    let mut a = loopback_args(network);
    a.push("--genesis".into());
    a.push(genesis.into());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn a_send_from_the_cli_is_confirmed_on_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db, dc) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    new_wallet(&da);
    let payer = new_wallet(&db);
    let payee = new_wallet(&dc);
    let g = genesis(tmp.path(), &[(&payer, 1_000_000)], "300ms", 50);
    let net = unique_network("pay");
    let a = Daemon::start(&da, &node_args(&net, &g, &["--mine"]));
    let boot = a.addr("tcp");
    let b = Daemon::start(&db, &node_args(&net, &g, &["--bootstrap", &boot]));
    let c = Daemon::start(&dc, &node_args(&net, &g, &["--bootstrap", &boot]));

    let out = b.weft(&["send", &payee, "25000", "--fee", "100", "--wait"]);
    assert!(out.status.success(), "send: {}", stderr(&out));
    let id = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("an id")
        .to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let status = json(&db, &["tx", &id]);
    assert_eq!(status["status"], "confirmed");

    let dirs = [&da, &db, &dc];
    let same = wait_until(Duration::from_secs(60), || {
        let tips: Vec<Value> = dirs
            .iter()
            .filter_map(|d| try_json(d, &["chain"]).map(|v| v["tip"].clone()))
            .collect();
        tips.len() == 3 && tips.windows(2).all(|w| w[0] == w[1])
    });
    assert!(same, "the nodes never agreed on a tip");
    for d in dirs {
        assert_eq!(json(d, &["balance", &payee])["balance"], 25_000);
        assert_eq!(json(d, &["balance", &payer])["balance"], 1_000_000 - 25_100);
        assert_eq!(json(d, &["tx", &id])["status"], "confirmed");
    }
    drop((a, b, c));
}

#[test]
fn nodes_killed_while_mining_and_while_syncing_restart_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, dd) = (tmp.path().join("a"), tmp.path().join("d"));
    let miner = new_wallet(&da);
    // Millisecond blocks: hundreds of blocks in seconds.
    let g = genesis(tmp.path(), &[], "1ms", 1);
    let net = unique_network("crash");
    let mut a = Daemon::start(&da, &node_args(&net, &g, &["--mine"]));
    assert!(wait_until(Duration::from_secs(120), || height(&da) >= 1_500));
    let seen = height(&da);
    a.signal("KILL", Duration::from_secs(5)).expect("killed");
    drop(a);

    // Restarted (not mining): at least what it had, and its state matches
    // its chain: the miner holds exactly the rewards of every block.
    let a = Daemon::start(&da, &node_args(&net, &g, &[]));
    let h = height(&da);
    assert!(h >= seen, "lost blocks: {h} < {seen}");
    assert_eq!(json(&da, &["balance", &miner])["balance"], h * 1000);

    // A late joiner killed mid-sync, restarted, catches up and agrees.
    let boot = a.addr("tcp");
    let mut d = Daemon::start(&dd, &node_args(&net, &g, &["--bootstrap", &boot]));
    let mid = wait_until(Duration::from_secs(60), || height(&dd) > 0);
    assert!(mid, "sync never started");
    d.signal("KILL", Duration::from_secs(5)).expect("killed");
    drop(d);
    let partial = {
        let d = Daemon::start(&dd, &node_args(&net, &g, &[]));
        let partial = height(&dd);
        drop(d);
        partial
    };
    assert!(partial <= h);
    let d = Daemon::start(&dd, &node_args(&net, &g, &["--bootstrap", &boot]));
    assert!(wait_until(Duration::from_secs(120), || height(&dd) >= h));
    assert_eq!(json(&dd, &["chain"])["tip"], json(&da, &["chain"])["tip"]);
    assert_eq!(json(&dd, &["balance", &miner])["balance"], h * 1000);
    eprintln!("killed mid-sync at height {partial} of {h}; resumed and caught up");
    drop((a, d));
}

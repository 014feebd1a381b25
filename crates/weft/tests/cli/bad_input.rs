//! Bad input to `weft start` and the client commands: each exits non-zero
//! with one line naming the problem, and never panics.

use std::process::Output;

use crate::support::{loopback_args, stderr, unique_network, weft};

fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

fn start_with(dir: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["start"];
    args.extend(extra);
    weft(dir, &args)
}

#[test]
fn malformed_multiaddr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = start_with(
        tmp.path(),
        &["--no-mdns", "--listen", "/ip4/999.0.0.1/tcp/0"],
    );
    assert_one_line_error(&out, "malformed multiaddr");
    let out = start_with(tmp.path(), &["--no-mdns", "--bootstrap", "not-an-address"]);
    assert_one_line_error(&out, "malformed multiaddr");
    let out = weft(tmp.path(), &["dial", "/ip4/1.2.3"]);
    assert_one_line_error(&out, "malformed multiaddr");
}

#[test]
fn bootstrap_without_peer_id() {
    let tmp = tempfile::tempdir().unwrap();
    let out = start_with(
        tmp.path(),
        &[
            "--no-mdns",
            "--api",
            "127.0.0.1:0",
            "--bootstrap",
            "/ip4/127.0.0.1/tcp/4719",
        ],
    );
    assert_one_line_error(&out, "/p2p/<peer id>");
}

#[test]
fn port_already_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();

    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let out = start_with(
        &tmp.path().join("p2p"),
        &["--no-mdns", "--api", "127.0.0.1:0", "--listen", &listen],
    );
    assert_one_line_error(&out, "cannot listen on");
    assert!(stderr(&out).contains(&port.to_string()));

    let api = format!("127.0.0.1:{port}");
    let out = start_with(
        &tmp.path().join("api"),
        &[
            "--no-mdns",
            "--api",
            &api,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
    );
    assert_one_line_error(&out, "cannot start the API");
}

#[test]
fn unwritable_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where a folder must be: unwritable even for root.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = start_with(
        &file.join("data"),
        &loopback_args(&unique_network("rw"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_one_line_error(&out, "data dir");
}

#[test]
fn corrupt_identity_file_is_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("identity.key");
    std::fs::write(&key, b"garbage, not a key").unwrap();
    let args = loopback_args(&unique_network("corrupt"));
    let out = start_with(
        tmp.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_one_line_error(&out, "identity file");
    assert_eq!(std::fs::read(&key).unwrap(), b"garbage, not a key");
}

#[test]
fn other_bad_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = start_with(tmp.path(), &["--no-mdns", "--api", "0.0.0.0:0"]);
    assert_one_line_error(&out, "loopback");
    let out = start_with(tmp.path(), &["--no-mdns", "--network", "no spaces"]);
    assert_one_line_error(&out, "network name");
    let out = start_with(
        tmp.path(),
        &["--no-mdns", "--listen", "/ip4/127.0.0.1/udp/0"],
    );
    assert_one_line_error(&out, "cannot listen on");
    std::fs::write(tmp.path().join("weft.toml"), "listen = 5\n").unwrap();
    let out = start_with(tmp.path(), &["--no-mdns"]);
    assert_one_line_error(&out, "weft.toml");
}

#[test]
fn app_publish_needs_a_folder_with_index_html() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.js"), "1").unwrap();
    let out = weft(&dir, &["app", "publish", app.to_str().unwrap()]);
    assert_one_line_error(&out, "index.html");
    let missing = tmp.path().join("nope");
    let out = weft(&dir, &["app", "publish", missing.to_str().unwrap()]);
    assert_one_line_error(&out, "does not exist");
    let file = app.join("main.js");
    let out = weft(&dir, &["app", "publish", file.to_str().unwrap()]);
    assert_one_line_error(&out, "not a folder");
}

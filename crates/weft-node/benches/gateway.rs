//! Gateway benchmark: time to first byte of an app that is not local yet.
//!
//! Node A publishes the example app (`apps/board`). For each run a fresh
//! node B, connected to A, is asked for the app's page on its own origin
//! (`Host: <hash>.app.localhost`): B has nothing, so it finds A, proves the
//! manifest, fetches `index.html` and streams it. Baselines in the same run:
//! the same request answered by A (local content), and a raw TCP round
//! trip on loopback.
//!
//! Run: `cargo bench -p weft-node --bench gateway` (`WEFT_BENCH_RUNS`, default 10).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_node::{Node, NodeConfig};

fn runs() -> usize {
    std::env::var("WEFT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Sends a GET for the app's page and returns the time until the first
/// byte of the response and until its end.
async fn ttfb(node: &Node, hash: &str) -> (Duration, Duration, String) {
    let mut s = tokio::net::TcpStream::connect(node.info().api_addr)
        .await
        .expect("connect to the gateway");
    let port = node.info().api_addr.port();
    let req =
        format!("GET / HTTP/1.1\r\nHost: {hash}.app.localhost:{port}\r\nConnection: close\r\n\r\n");
    let t = Instant::now();
    s.write_all(req.as_bytes()).await.expect("write");
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.expect("first byte");
    let first_at = t.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("body");
    let all = t.elapsed();
    let mut head = first.to_vec();
    head.extend_from_slice(&rest);
    // "HTTP/1.1 200 OK": the status is the second word.
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .map(|s| s.to_owned())
        .unwrap_or_default();
    (first_at, all, status)
}

async fn raw_rtt() -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).await.is_ok() {
                if s.write_all(&b).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut best = Duration::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        c.write_all(b"x").await.expect("write");
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.expect("read");
        best = best.min(t.elapsed());
    }
    best
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let board = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/board");
    let a = Node::start(NodeConfig::loopback(tmp.path().join("a"), "bench-gw"))
        .await
        .expect("start A");
    let added = a
        .blobs()
        .add_path(board.canonicalize().expect("apps/board"))
        .await
        .expect("publish the app");
    let hash = added.hash.to_hex().to_string();
    let mut cold = Vec::new();
    let mut cold_all = Vec::new();
    let mut warm = Vec::new();
    for i in 0..runs() {
        let b = Node::start(NodeConfig::loopback(
            tmp.path().join(format!("b{i}")),
            "bench-gw",
        ))
        .await
        .expect("start B");
        b.net()
            .dial(a.info().listen_addrs[0].clone())
            .await
            .expect("B dials A");
        let (first, all, status) = ttfb(&b, &hash).await;
        assert_eq!(status, "200", "B did not serve the app");
        cold.push(first);
        cold_all.push(all);
        warm.push(ttfb(&b, &hash).await.0);
        b.shutdown().await;
    }
    let mut local = Vec::new();
    for _ in 0..runs() {
        local.push(ttfb(&a, &hash).await.0);
    }
    let rtt = raw_rtt().await;
    let (cold_m, local_m) = (median(cold.clone()), median(local));
    println!("\n==================== weft gateway ====================");
    println!("app {hash} (apps/board), {} runs, medians", runs());
    println!(
        "  not local yet (fresh node B, app on A): TTFB {:8.2} ms, whole page {:8.2} ms, worst TTFB {:8.2} ms",
        ms(cold_m),
        ms(median(cold_all)),
        ms(*cold.iter().max().unwrap_or(&Duration::ZERO))
    );
    println!(
        "  same node again (now local):            TTFB {:8.2} ms",
        ms(median(warm))
    );
    println!(
        "  baseline: the node that has it:         TTFB {:8.2} ms",
        ms(local_m)
    );
    println!(
        "  baseline: raw TCP round trip:                {:8.3} ms",
        ms(rtt)
    );
    println!(
        "  ratio: not local / local = {:.1}x, not local / raw TCP RTT = {:.0}x",
        cold_m.as_secs_f64() / local_m.as_secs_f64(),
        cold_m.as_secs_f64() / rtt.as_secs_f64()
    );
    println!("======================================================");
    a.shutdown().await;
}

//! App topics benchmark: delivery latency and wire amplification of
//! [`PubSub`] across real nodes on 127.0.0.1 (weft-net over QUIC, as
//! `weft_net::Config::loopback`, DHT in client mode so the topology is
//! exactly the dialled one), all in this process. Run it with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p weft-apps --bench pubsub
//! ```
//!
//! 20 nodes (`WEFT_BENCH_NODES`), each dialling 2 or 3 random earlier ones
//! (seed `WEFT_BENCH_SEED`), all subscribed to one topic. Once the mesh
//! links every node and warm-up messages reached everyone, for each message
//! size (256 B and 16 KiB: gossipsub sends IDONTWANT for messages of 1000
//! bytes or more, which cuts duplicates), 200 messages (`WEFT_BENCH_MESSAGES`)
//! are published from random nodes, one every 20 ms (`WEFT_BENCH_SPACING_MS`).
//! Every subscriber timestamps each arrival as its `broadcast` receiver
//! yields it.
//!
//! - **latency**: from the call to `publish` to the arrival at each other
//!   node (per delivery), and to the arrival at the last of them (time to
//!   all); median, p99 and max.
//! - **amplification**: bytes the nodes received on their connections
//!   (libp2p's `libp2p_bandwidth_bytes_total{direction="inbound"}`, counted
//!   on the muxed streams, so after decryption and demultiplexing) during
//!   the publishing, minus what an idle window of the same length received
//!   just before (pings, identify, gossip heartbeats), divided by the bytes
//!   of one framed copy of one message (gossipsub's protobuf, computed
//!   below) times the remote deliveries: 1.0 would mean every node received
//!   each message exactly once and nothing else. Duplicates, IHAVE, IWANT
//!   and IDONTWANT all count. weft-net builds gossipsub without its own
//!   metrics (`topic_msg_recv_counts_unfiltered` would count duplicate
//!   copies directly), so this is the honest proxy; the unique messages
//!   gossipsub handed up (`libp2p_gossipsub_messages_total`) are checked
//!   against the deliveries.
//! - **baseline**: the round trip of 256 bytes over a raw loopback TCP
//!   socket pair (tokio, nodelay), so latencies are also given as a ratio.
//!
//! Prints one report and asserts nothing. The 1-minute load average is
//! printed, since other work on the machine skews everything.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use weft_testkit::wait_for;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::broadcast,
};
use weft_apps::pubsub::{Envelope, PubSub};
use weft_net::{Config, DhtMode, Identity, Network, NetworkHandle, PeerId, Registry};

const TOPIC: &str = "bench";
const SIZES: [usize; 2] = [256, 16 * 1024];
const WARMUPS: usize = 3;
const DEADLINE: Duration = Duration::from_secs(60);
const TCP_ROUNDS: usize = 10_000;
const TCP_BYTES: usize = 256;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// One arrival: which node, when.
type Arrivals = Arc<Mutex<HashMap<String, Vec<(usize, Instant)>>>>;

struct Node {
    net: Network,
    registry: Registry,
    pubsub: PubSub,
}

impl Node {
    fn handle(&self) -> &NetworkHandle {
        self.net.handle()
    }
}

/// Inbound bytes on all connections, and unique gossip messages received.
fn counters(registry: &Registry) -> (u64, u64) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return (0, 0);
    }
    if std::env::var_os("WEFT_BENCH_DUMP_METRICS").is_some() {
        eprintln!("{text}");
    }
    let (mut bytes, mut messages) = (0, 0);
    for line in text.lines() {
        let value = || {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        if line.starts_with("libp2p_bandwidth_bytes_total{")
            && line.contains("direction=\"Inbound\"")
        {
            bytes += value();
        } else if line.starts_with("libp2p_gossipsub_messages_total ") {
            messages += value();
        }
    }
    (bytes, messages)
}

fn totals(nodes: &[Node]) -> (u64, u64) {
    nodes
        .iter()
        .map(|n| counters(&n.registry))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// A length-delimited protobuf field of `len` bytes.
fn field(len: usize) -> usize {
    1 + varint_len(len) + len
}

/// Bytes of one framed gossipsub RPC carrying one message with `payload`
/// bytes of app data: the envelope, then gossipsub's `Message` (author's
/// peer id, data, 8-byte sequence number, topic, 64-byte signature; an
/// ed25519 key is inlined in the peer id), in an `RPC`, after its varint
/// length.
fn copy_bytes(network: &str, payload: usize) -> usize {
    let envelope = Envelope {
        timestamp_ms: 0,
        data: vec![0; payload],
    }
    .encode()
    .len();
    let topic = format!("/weft/{network}/app/{TOPIC}").len();
    let message = field(38) + field(envelope) + field(8) + field(topic) + field(64);
    let rpc = field(message);
    varint_len(rpc) + rpc
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Round trips of `TCP_BYTES` over a loopback TCP socket pair.
async fn tcp_baseline() -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = vec![0; TCP_BYTES];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (out, mut back) = (vec![7u8; TCP_BYTES], vec![0u8; TCP_BYTES]);
    let mut rtts = Vec::with_capacity(TCP_ROUNDS);
    for _ in 0..TCP_ROUNDS {
        let t = Instant::now();
        s.write_all(&out).await.expect("write");
        s.read_exact(&mut back).await.expect("read");
        rtts.push(t.elapsed());
    }
    drop(s);
    let _ = echo.await;
    rtts.sort();
    rtts
}

async fn start_nodes(n: usize, network: &str, rng: &mut StdRng) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let mut config = Config::loopback(Identity::generate(), network);
        config.dht_mode = DhtMode::Client;
        let mut registry = Registry::default();
        let net = weft_net::start(config, &mut registry)
            .await
            .expect("node starts");
        let pubsub = PubSub::new(net.handle().clone());
        let k = rng.gen_range(2..=3).min(i);
        let mut earlier: Vec<usize> = (0..i).collect();
        earlier.shuffle(rng);
        for &j in &earlier[..k] {
            let addr = nodes[j]
                .handle()
                .listen_addrs()
                .await
                .expect("addrs")
                .remove(0);
            net.handle().dial(addr).await.expect("dial");
        }
        nodes.push(Node {
            net,
            registry,
            pubsub,
        });
    }
    nodes
}

/// Whether every node knows its neighbours joined and the mesh links all.
async fn mesh_complete(nodes: &[Node]) -> bool {
    let wire = format!("app/{TOPIC}");
    let mut edges: HashMap<PeerId, Vec<PeerId>> = HashMap::new();
    for n in nodes {
        let h = n.handle();
        let neighbours = h.peers().await.map(|p| p.len()).unwrap_or(0);
        let Some(t) = h
            .topics()
            .await
            .ok()
            .and_then(|ts| ts.into_iter().find(|t| t.topic == wire))
        else {
            return false;
        };
        if t.subscribed_peers < neighbours || t.mesh_peers.is_empty() {
            return false;
        }
        for p in t.mesh_peers {
            edges.entry(h.local_peer_id()).or_default().push(p);
            edges.entry(p).or_default().push(h.local_peer_id());
        }
    }
    let first = nodes[0].handle().local_peer_id();
    let (mut reached, mut todo) = (HashSet::from([first]), vec![first]);
    while let Some(p) = todo.pop() {
        for q in edges.get(&p).into_iter().flatten() {
            if reached.insert(*q) {
                todo.push(*q);
            }
        }
    }
    reached.len() == nodes.len()
}

fn collect(
    i: usize,
    mut rx: broadcast::Receiver<weft_apps::pubsub::Message>,
    arrivals: Arrivals,
    lagged: Arc<Mutex<u64>>,
) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    let now = Instant::now();
                    arrivals
                        .lock()
                        .unwrap()
                        .entry(m.id)
                        .or_default()
                        .push((i, now));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => *lagged.lock().unwrap() += n,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

struct Round {
    size: usize,
    sent: usize,
    complete: usize,
    deliveries: Vec<Duration>,
    to_all: Vec<Duration>,
    duplicates: usize,
    phase: Duration,
    bytes: u64,
    idle_bytes: f64,
    gossip_unique: u64,
    copy: usize,
}

async fn round(
    nodes: &[Node],
    arrivals: &Arrivals,
    rng: &mut StdRng,
    size: usize,
    messages: usize,
    spacing: Duration,
    network: &str,
) -> Round {
    let n = nodes.len();
    // Idle window as long as the publishing will take.
    let planned = spacing * messages as u32 + Duration::from_secs(1);
    let (idle0, _) = totals(nodes);
    tokio::time::sleep(planned).await;
    let (idle1, _) = totals(nodes);
    let idle_rate = (idle1 - idle0) as f64 / planned.as_secs_f64();

    let (bytes0, unique0) = totals(nodes);
    let started = Instant::now();
    let mut sent: Vec<(String, usize, Instant)> = Vec::with_capacity(messages);
    let mut next = tokio::time::Instant::now();
    for k in 0..messages {
        let from = rng.gen_range(0..n);
        let mut data = vec![b'x'; size];
        let tag = format!("{size}/{k}");
        data[..tag.len()].copy_from_slice(tag.as_bytes());
        let t0 = Instant::now();
        let m = nodes[from]
            .pubsub
            .publish(TOPIC, data)
            .await
            .expect("publish");
        sent.push((m.id, from, t0));
        next += spacing;
        tokio::time::sleep_until(next).await;
    }
    let all_in = wait_for(DEADLINE, || async {
        let a = arrivals.lock().unwrap();
        sent.iter()
            .all(|(id, _, _)| a.get(id).is_some_and(|v| v.len() >= n))
    })
    .await;
    if !all_in {
        eprintln!("warning: not every message reached every node within {DEADLINE:?}");
    }
    // Let the gossip about the last messages (IHAVE for three heartbeats)
    // finish before reading the counters.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let phase = started.elapsed();
    let (bytes1, unique1) = totals(nodes);

    let a = arrivals.lock().unwrap();
    let (mut deliveries, mut to_all) = (Vec::new(), Vec::new());
    let (mut complete, mut duplicates) = (0, 0);
    for (id, from, t0) in &sent {
        let got = a.get(id).cloned().unwrap_or_default();
        let mut seen = HashSet::new();
        let mut last = Duration::ZERO;
        for (node, at) in got {
            if !seen.insert(node) {
                duplicates += 1;
                continue;
            }
            if node == *from {
                continue;
            }
            let d = at.saturating_duration_since(*t0);
            deliveries.push(d);
            last = last.max(d);
        }
        if seen.len() == n {
            complete += 1;
            to_all.push(last);
        }
    }
    deliveries.sort();
    to_all.sort();
    Round {
        size,
        sent: sent.len(),
        complete,
        deliveries,
        to_all,
        duplicates,
        phase,
        bytes: bytes1 - bytes0,
        idle_bytes: idle_rate * phase.as_secs_f64(),
        gossip_unique: unique1 - unique0,
        copy: copy_bytes(network, size),
    }
}

async fn run() {
    let n: usize = env_or("WEFT_BENCH_NODES", 20);
    let messages: usize = env_or("WEFT_BENCH_MESSAGES", 200);
    let spacing = Duration::from_millis(env_or("WEFT_BENCH_SPACING_MS", 20));
    let seed: u64 = env_or("WEFT_BENCH_SEED", 7);
    let network = format!("bench-pubsub-{}", std::process::id());
    let mut rng = StdRng::seed_from_u64(seed);
    println!("weft-apps pub/sub bench: {n} nodes, {messages} messages per size every {spacing:?}, seed {seed}, load average {}", load_average());

    let rtts = tcp_baseline().await;
    let rtt = percentile(&rtts, 0.5);

    let setup = Instant::now();
    let nodes = start_nodes(n, &network, &mut rng).await;
    let arrivals: Arrivals = Arc::default();
    let lagged = Arc::new(Mutex::new(0));
    for (i, node) in nodes.iter().enumerate() {
        let rx = node.pubsub.subscribe(TOPIC).await.expect("subscribe");
        collect(i, rx, arrivals.clone(), lagged.clone());
    }
    let meshed = wait_for(DEADLINE, || mesh_complete(&nodes)).await;
    let links: usize = {
        let mut total = 0;
        for node in &nodes {
            total += node.handle().peers().await.map(|p| p.len()).unwrap_or(0);
        }
        total / 2
    };
    println!(
        "setup: {links} connections, mesh {} in {:.1} s",
        if meshed {
            "linked every node"
        } else {
            "INCOMPLETE"
        },
        setup.elapsed().as_secs_f64()
    );
    for k in 0..WARMUPS {
        let m = nodes[k % n]
            .pubsub
            .publish(TOPIC, format!("warm-up {k}").into_bytes())
            .await
            .expect("publish");
        let ok = wait_for(DEADLINE, || async {
            arrivals
                .lock()
                .unwrap()
                .get(&m.id)
                .is_some_and(|v| v.len() >= n)
        })
        .await;
        if !ok {
            eprintln!("warning: warm-up {k} did not reach every node");
        }
    }

    let mut rounds = Vec::new();
    for size in SIZES {
        rounds.push(
            round(
                &nodes, &arrivals, &mut rng, size, messages, spacing, &network,
            )
            .await,
        );
    }

    println!();
    println!(
        "baseline: raw TCP loopback round trip of {TCP_BYTES} B: median {}, p99 {} ({TCP_ROUNDS} rounds)",
        ms(rtt),
        ms(percentile(&rtts, 0.99))
    );
    for r in &rounds {
        let remote = r.deliveries.len();
        let ratio = |d: Duration| d.as_secs_f64() / rtt.as_secs_f64().max(1e-9);
        println!();
        println!(
            "messages of {} B: {} published, {} reached all {n} nodes; {} remote deliveries, {} duplicate deliveries",
            r.size, r.sent, r.complete, remote, r.duplicates
        );
        let (d50, d99, dmax) = (
            percentile(&r.deliveries, 0.5),
            percentile(&r.deliveries, 0.99),
            r.deliveries.last().copied().unwrap_or_default(),
        );
        let (a50, a99, amax) = (
            percentile(&r.to_all, 0.5),
            percentile(&r.to_all, 0.99),
            r.to_all.last().copied().unwrap_or_default(),
        );
        println!(
            "  latency per delivery:  median {} ({:.0}x TCP RTT), p99 {} ({:.0}x), max {}",
            ms(d50),
            ratio(d50),
            ms(d99),
            ratio(d99),
            ms(dmax)
        );
        println!(
            "  latency to all nodes:  median {} ({:.0}x TCP RTT), p99 {} ({:.0}x), max {}",
            ms(a50),
            ratio(a50),
            ms(a99),
            ratio(a99),
            ms(amax)
        );
        let net_bytes = (r.bytes as f64 - r.idle_bytes).max(0.0);
        let ideal = (remote * r.copy) as f64;
        println!(
            "  wire: {:.2} MB received in {:.1} s ({:.2} MB of it idle traffic, by the idle window); one framed copy is {} B",
            r.bytes as f64 / 1e6,
            r.phase.as_secs_f64(),
            r.idle_bytes / 1e6,
            r.copy
        );
        println!(
            "  amplification: {:.2} copies' worth of bytes received per delivered message ({:.0} B per delivery; 1.00 = each node got each message once and nothing else)",
            net_bytes / ideal.max(1.0),
            net_bytes / (remote.max(1) as f64)
        );
        println!(
            "  gossipsub handed up {} unique messages (expected {} = remote deliveries)",
            r.gossip_unique, remote
        );
    }
    let lag = *lagged.lock().unwrap();
    if lag > 0 {
        println!("warning: local subscribers lagged by {lag} messages");
    }
    println!("load average at the end: {}", load_average());
    for node in nodes {
        node.pubsub.close().await;
        node.net.shutdown().await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

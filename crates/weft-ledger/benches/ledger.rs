//! Ledger benchmark: block validation, chain sync and transaction gossip, on
//! devnet genesis files built here (prefunded keys, difficulty 1 so proof of
//! work costs nothing, 1 ms block interval). Nodes are real weft-net +
//! [`Ledger`] pairs on 127.0.0.1 (QUIC + TCP, as `weft_net::Config::loopback`)
//! in this process, each with its own redb file under the system temp dir.
//! It prints one report at the end and asserts nothing. Run it with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench nice -n 15 cargo bench -p weft-ledger --bench ledger
//! ```
//!
//! 1. **validate**: a block of 10,000 transfers (`WEFT_BENCH_TXS`) from 100
//!    senders with consecutive nonces, imported with `Chain::process` by a
//!    fresh chain over a `MemoryStore` (merkle root, ids, batch signature
//!    check, state transition, commit), best and median of 5 runs
//!    (`WEFT_BENCH_REPEAT`). Baselines from the same run, on the same
//!    signatures and signed bytes: ed25519-zebra one by one (key
//!    decompression included) and its batch verifier (queueing included).
//! 2. **sync**: node A mines (1 thread) until height 1,000
//!    (`WEFT_BENCH_BLOCKS`) while the bench submits 10 transfers per new tip;
//!    A is then restarted without mining on the same redb file. Node B, with
//!    an empty chain, dials A; timed from the dial until B's tip is A's.
//!    Baselines: the same blocks imported by a `Chain` with no network, over
//!    a `MemoryStore` and over a fresh redb file. `sync` runs before the
//!    timed redb phases, so that earlier writes are not flushed in them.
//! 3. **gossip**: 20 nodes (`WEFT_BENCH_NODES`), each dialing 3 random
//!    earlier ones (seed `WEFT_BENCH_SEED`), no mining. Once the meshes have
//!    formed, the nodes have gone quiet (this process under 0.1 cores: new
//!    nodes spend a few seconds on Kademlia bootstrap) and warm-up transfers
//!    reached everyone: 50 rounds (`WEFT_BENCH_ROUNDS`) of a fresh transfer
//!    submitted on a random node, while a dedicated thread polls every
//!    node's mempool size every 0.2 ms (`WEFT_BENCH_POLL_US`); each arrival
//!    is then confirmed with `tx_status`. Baselines: the round trip of 64
//!    bytes over one libp2p stream between two neighbours, and over a raw
//!    loopback TCP socket.
//!
//! `WEFT_BENCH_ONLY=validate,sync,gossip` runs a subset. Every wait has a
//! deadline, and a watchdog prints what was measured and exits if the whole
//! run takes longer than `WEFT_BENCH_DEADLINE` seconds (600). Rates in MB/s
//! are 10^6 bytes of encoded blocks (`Block::size`). The 1-minute load
//! average is printed, since other work on the machine skews everything.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ed25519_zebra::{Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use weft_ledger::{
    block::merkle_root,
    chain::{Chain, ChainStore, Commit, MemoryStore, Snapshot, StoreError},
    genesis::Alloc,
    mempool,
    service::{self, BlockId, Ledger, MineConfig, TxStatus, TX_TOPIC},
    state::{Account, State, Undo},
    store::RedbStore,
    tx::{self, address_of},
    Address, Block, BlockHash, Genesis, Transaction, TxId,
};
use weft_net::{Identity, Multiaddr, Network, Registry, StreamProtocol};

const PREFUND: u64 = 1 << 40;
const FEE: u64 = 10;
const MINER: Address = Address([0xaa; 32]);
/// Transfers the sync measurement submits to A each time its tip moves.
const FEED_PER_TIP: usize = 10;
/// Warm-up transfers before the timed gossip rounds.
const WARMUPS: usize = 3;
/// Earlier nodes each gossip node dials.
const DIALS_PER_NODE: usize = 3;
const ECHO: StreamProtocol = StreamProtocol::new("/weft/bench/echo/1");
const ECHO_BYTES: usize = 64;
/// How often the gossip measurement looks at the mempools, by default.
const POLL_US: u64 = 200;

/// Lines measured so far, for the watchdog to print if the run hangs.
static REPORT: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// What the run is doing now, for the watchdog.
static PHASE: Mutex<&str> = Mutex::new("start");

fn main() {
    let deadline = Duration::from_secs(env_u64("WEFT_BENCH_DEADLINE", 600));
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        let phase = *PHASE.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = take_report();
        lines.push(format!(
            "TIMED OUT after {} s, during: {phase}",
            deadline.as_secs()
        ));
        print_report(&lines);
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
    // Stray blocking tasks (a miner thread, a redb read) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(5));
}

async fn run() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    report([format!(
        "weft-ledger benchmark: {cpus} CPUs, 127.0.0.1, redb files under {}, 1-min load average at start: {}",
        std::env::temp_dir().display(),
        load_average()
    )]);
    if runs("validate") {
        phase("validate");
        let txs = env_u64("WEFT_BENCH_TXS", 10_000) as usize;
        let repeat = env_u64("WEFT_BENCH_REPEAT", 5).max(1) as usize;
        let lines = tokio::task::spawn_blocking(move || validate(txs, repeat)).await;
        report(lines.unwrap_or_else(|e| vec![format!("1. Validation FAILED: {e}")]));
    }
    if runs("sync") {
        phase("sync");
        let blocks = env_u64("WEFT_BENCH_BLOCKS", 1_000).max(1);
        report(
            sync(blocks)
                .await
                .unwrap_or_else(|e| vec![format!("2. Sync FAILED: {e}")]),
        );
    }
    if runs("gossip") {
        phase("gossip");
        let nodes = env_u64("WEFT_BENCH_NODES", 20).max(2) as usize;
        let rounds = env_u64("WEFT_BENCH_ROUNDS", 50).max(1) as usize;
        let seed = env_u64("WEFT_BENCH_SEED", 1);
        let lines = gossip(nodes, rounds, seed).await;
        report(lines.unwrap_or_else(|e| vec![format!("3. Gossip FAILED: {e}")]));
    }
    report([format!("1-min load average at the end: {}", load_average())]);
    print_report(&take_report());
}

// ---------------------------------------------------------------- helpers

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

fn runs(part: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

fn phase(name: &'static str) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = name;
    eprintln!("[{name}] starting");
}

fn report(lines: impl IntoIterator<Item = String>) {
    REPORT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(lines);
}

fn take_report() -> Vec<String> {
    std::mem::take(&mut *REPORT.lock().unwrap_or_else(|e| e.into_inner()))
}

fn print_report(lines: &[String]) {
    println!("\n===================== weft-ledger ledger =====================");
    for line in lines {
        println!("{line}");
    }
    println!("==============================================================");
}

/// The 1-minute load average: other work on the machine skews the results.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// CPU time (user + system) this process has used, from /proc/self/stat
/// (in clock ticks, taken as 100 Hz).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces; the fields after it do not.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11) // utime and stime are fields 14 and 15
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Cores' worth of CPU this process used since `cpu` and `wall` were taken.
fn cores_since(cpu: Duration, wall: Instant) -> f64 {
    (cpu_time().saturating_sub(cpu)).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// `WEFT_BENCH_POLL_US`, or [`POLL_US`].
fn poll_interval() -> Duration {
    Duration::from_micros(env_u64("WEFT_BENCH_POLL_US", POLL_US).max(1))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorts `v` and returns (best, median).
fn best_median(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort_unstable();
    (v[0], v[v.len() / 2])
}

/// Nearest-rank percentile `p` (0..=100) of a sorted, non-empty slice.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `f` with a deadline, naming `what` when it runs out.
async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))
}

/// A genesis with `senders` prefunded keys; each measurement has its own,
/// so nodes of different measurements never share a network.
struct Devnet {
    /// The network name nodes check on connect (name and genesis hash).
    name: String,
    genesis: Genesis,
    genesis_hash: [u8; 32],
    keys: Vec<SigningKey>,
}

impl Devnet {
    fn new(label: &str, senders: usize) -> Self {
        let keys: Vec<SigningKey> = (0..senders)
            .map(|i| {
                let seed = blake3::hash(format!("weft bench {label} {i}").as_bytes());
                SigningKey::from(*seed.as_bytes())
            })
            .collect();
        let genesis = Genesis {
            name: format!("weft bench {label}"),
            timestamp: now_ms() - 60_000,
            alloc: keys
                .iter()
                .map(|k| Alloc {
                    address: address_of(k),
                    amount: PREFUND,
                })
                .collect(),
            block_interval_ms: 1,
            reward: 1_000,
            difficulty: 1,
        };
        let hash = genesis.hash();
        Devnet {
            name: format!("weft-bench-{label}@{}", &hash.to_string()[..16]),
            genesis,
            genesis_hash: hash.0,
            keys,
        }
    }

    /// A transfer from sender `from` to a fresh account.
    fn pay(&self, from: usize, nonce: u64) -> Transaction {
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&(from as u64).to_le_bytes());
        seed[8..].copy_from_slice(&nonce.to_le_bytes());
        let to = Address(*blake3::hash(&seed).as_bytes());
        let key = &self.keys[from];
        Transaction::sign(
            key,
            &self.genesis_hash,
            to,
            1 + nonce % 1000,
            FEE,
            nonce,
            Vec::new(),
        )
    }
}

// ------------------------------------------------------- 1. validation

fn validate(count: usize, repeat: usize) -> Vec<String> {
    let senders = count.clamp(1, 100);
    eprintln!("[validate] signing {count} transfers from {senders} senders");
    let dev = Devnet::new("validate", senders);
    let txs: Vec<Transaction> = (0..count)
        .map(|i| dev.pay(i % senders, (i / senders) as u64))
        .collect();
    let open = || Chain::open(dev.genesis.clone(), MemoryStore::default()).expect("open a chain");
    let now = now_ms();
    let block = open().template(MINER, txs, now);
    let (size, n) = (block.size(), block.txs.len());
    let mut out = vec![format!(
        "1. Validation: one block of {n} transfers from {senders} senders ({:.2} MB), difficulty 1, best | median of {repeat}",
        size as f64 / 1e6
    )];

    eprintln!("[validate] Chain::process x{repeat}");
    let mut process = Vec::new();
    for _ in 0..repeat {
        let (mut chain, b) = (open(), block.clone());
        let t = Instant::now();
        let r = chain.process(b, now);
        let took = t.elapsed();
        drop(chain);
        match r {
            Ok(p) if p.new_tip => process.push(took),
            Ok(_) => {
                return vec![format!(
                    "{}  FAILED: the block did not become the tip",
                    out[0]
                )]
            }
            Err(e) => return vec![format!("{}  FAILED: the block is invalid: {e}", out[0])],
        }
    }

    let msgs: Vec<Vec<u8>> = block
        .txs
        .iter()
        .map(|t| t.signing_bytes(&dev.genesis_hash))
        .collect();
    eprintln!("[validate] raw ed25519-zebra, single and batch");
    let (mut single, mut batch, mut all_ok) = (Vec::new(), Vec::new(), true);
    for _ in 0..repeat {
        let t = Instant::now();
        let mut ok = 0usize;
        for (tx, msg) in block.txs.iter().zip(&msgs) {
            let key = VerificationKey::try_from(tx.from.0);
            ok += usize::from(
                key.is_ok_and(|k| k.verify(&Signature::from(tx.signature), msg).is_ok()),
            );
        }
        single.push(t.elapsed());
        all_ok &= ok == n;
        let t = Instant::now();
        let mut verifier = ed25519_zebra::batch::Verifier::new();
        for (tx, msg) in block.txs.iter().zip(&msgs) {
            let key = VerificationKeyBytes::from(tx.from.0);
            verifier.queue((key, Signature::from(tx.signature), msg));
        }
        all_ok &= verifier.verify(rand::thread_rng()).is_ok();
        batch.push(t.elapsed());
    }

    // Where process's time goes, piece by piece (for information).
    let genesis_state = State::from_accounts(dev.genesis.alloc.iter().map(|a| {
        (
            a.address,
            Account {
                balance: a.amount,
                nonce: 0,
            },
        )
    }));
    let mut parts: [Vec<Duration>; 5] = Default::default();
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(merkle_root(&block.txs));
        parts[0].push(t.elapsed());
        let t = Instant::now();
        let ids: HashSet<_> = block.txs.iter().map(Transaction::id).collect();
        parts[1].push(t.elapsed());
        all_ok &= ids.len() == n;
        let t = Instant::now();
        all_ok &= tx::verify_batch(&block.txs, &dev.genesis_hash).is_ok();
        parts[2].push(t.elapsed());
        let mut state = genesis_state.clone();
        let t = Instant::now();
        all_ok &= state.apply(&block, dev.genesis.reward).is_ok();
        parts[3].push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(block.encode());
        parts[4].push(t.elapsed());
    }

    let (p_best, p_med) = best_median(&mut process);
    let (s_best, s_med) = best_median(&mut single);
    let (b_best, b_med) = best_median(&mut batch);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let line = |label: &str, best: Duration, med: Duration| {
        format!(
            "  {label:<40} {:>8.1} | {:>8.1} ms {:>9.0} | {:>9.0} tx/s",
            ms(best),
            ms(med),
            rate(best),
            rate(med)
        )
    };
    out.push(format!(
        "{}  = {:.2}x raw batch, {:.2}x raw single (best runs; aim >= 0.60x batch)",
        line("Chain::process (MemoryStore)", p_best, p_med),
        b_best.as_secs_f64() / p_best.as_secs_f64(),
        s_best.as_secs_f64() / p_best.as_secs_f64(),
    ));
    out.push(line(
        "baseline: ed25519-zebra batch, 1 thread",
        b_best,
        b_med,
    ));
    out.push(line("baseline: ed25519-zebra one by one", s_best, s_med));
    let names = [
        "merkle root",
        "tx ids",
        "tx::verify_batch",
        "State::apply",
        "Block::encode",
    ];
    let pieces: Vec<String> = parts
        .iter_mut()
        .zip(names)
        .map(|(v, name)| format!("{name} {:.1}", ms(best_median(v).0)))
        .collect();
    out.push(format!("  parts, best ms, for info: {}", pieces.join(", ")));
    if !all_ok {
        out.push("  (a baseline rejected a signature or the state transition failed!)".into());
    }
    out
}

// ------------------------------------------------------------- nodes

/// weft-net and a [`Ledger`] on it.
struct Node {
    net: Network,
    ledger: Ledger,
}

impl Node {
    /// Starts a node on `db`; retries while the file is still held by a
    /// ledger that is shutting down.
    async fn start(dev: &Devnet, db: &Path, mine: bool) -> Result<Node, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match Node::try_start(dev, db.to_owned(), mine).await {
                Ok(node) => return Ok(node),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn try_start(dev: &Devnet, db_path: PathBuf, mine: bool) -> Result<Node, String> {
        let config = weft_net::Config::loopback(Identity::generate(), &dev.name);
        let net = within(Duration::from_secs(10), "start the network", async {
            weft_net::start(config, &mut Registry::default()).await
        })
        .await?
        .map_err(|e| e.to_string())?;
        let config = service::Config {
            genesis: dev.genesis.clone(),
            db_path,
            mine: mine.then_some(MineConfig {
                miner: MINER,
                threads: 1,
            }),
            mempool: mempool::Config::default(),
            clock: service::system_clock(),
        };
        let started = within(Duration::from_secs(10), "start the ledger", async {
            Ledger::start(config, net.handle().clone()).await
        })
        .await;
        match started {
            Ok(Ok(ledger)) => Ok(Node { net, ledger }),
            Ok(Err(e)) => {
                net.shutdown().await;
                Err(format!("start the ledger: {e}"))
            }
            Err(e) => {
                net.shutdown().await;
                Err(e)
            }
        }
    }

    async fn stop(self) {
        let Node { net, ledger } = self;
        let limit = Duration::from_secs(10);
        let _ = tokio::time::timeout(limit, ledger.shutdown()).await;
        let _ = tokio::time::timeout(limit, net.shutdown()).await;
    }

    /// The first listen address (QUIC), with `/p2p/<peer id>`.
    async fn addr(&self) -> Result<Multiaddr, String> {
        let addrs = within(Duration::from_secs(5), "listen addresses", async {
            self.net.handle().listen_addrs().await
        })
        .await?
        .map_err(|e| e.to_string())?;
        addrs.into_iter().next().ok_or("no listen address".into())
    }

    async fn dial(&self, other: &Node) -> Result<(), String> {
        let addr = other.addr().await?;
        within(
            Duration::from_secs(10),
            "dial",
            self.net.handle().dial(addr),
        )
        .await?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Indices (in `ids`) of the nodes we are connected to.
    async fn neighbours(&self, ids: &HashMap<weft_net::PeerId, usize>) -> Vec<usize> {
        let peers = within(Duration::from_secs(5), "peers", self.net.handle().peers()).await;
        let peers = peers.ok().and_then(Result::ok).unwrap_or_default();
        peers
            .iter()
            .filter_map(|p| ids.get(&p.peer_id).copied())
            .collect()
    }

    /// The transport of our connection to `other`.
    async fn transport_to(&self, other: &Node) -> &'static str {
        let peer = other.net.handle().local_peer_id();
        let peers = within(Duration::from_secs(5), "peers", self.net.handle().peers()).await;
        let peers = peers.ok().and_then(Result::ok).unwrap_or_default();
        match peers
            .iter()
            .find(|p| p.peer_id == peer)
            .and_then(|p| p.addrs.first())
        {
            Some(a) if a.to_string().contains("/quic") => "QUIC",
            Some(_) => "TCP",
            None => "?",
        }
    }
}

// ------------------------------------------------------------- 2. sync

async fn sync(target: u64) -> Result<Vec<String>, String> {
    let dev = Devnet::new("sync", 100);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let a_db = work.path().join("a.redb");
    eprintln!("[sync] node A mining to height {target}");
    let a = Node::start(&dev, &a_db, true).await?;
    let t = Instant::now();
    let fed = feed(&dev, &a.ledger, target, Duration::from_secs(150)).await;
    let mining = t.elapsed();
    a.stop().await;
    let a = Node::start(&dev, &a_db, false).await?;
    let result = sync_to_fresh_node(&dev, &a, work.path(), fed, mining, target).await;
    a.stop().await;
    result
}

/// Submits [`FEED_PER_TIP`] transfers to `ledger` whenever its tip moves,
/// until it reaches `target` or `limit` passes. Returns how many it took.
async fn feed(dev: &Devnet, ledger: &Ledger, target: u64, limit: Duration) -> usize {
    let mut nonces = vec![0u64; dev.keys.len()];
    let (mut sender, mut submitted) = (0, 0);
    let mut tips = ledger.watch_tip();
    let (end, mut shown) = (Instant::now() + limit, Instant::now());
    while ledger.tip().height < target && Instant::now() < end {
        for _ in 0..FEED_PER_TIP {
            let tx = dev.pay(sender, nonces[sender]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), ledger.submit(tx)).await
            {
                nonces[sender] += 1;
                submitted += 1;
            }
            sender = (sender + 1) % nonces.len();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), tips.changed()).await;
        if shown.elapsed() > Duration::from_secs(5) {
            eprintln!("[sync] A at height {}", ledger.tip().height);
            shown = Instant::now();
        }
    }
    submitted
}

async fn sync_to_fresh_node(
    dev: &Devnet,
    a: &Node,
    work: &Path,
    fed: usize,
    mining: Duration,
    target: u64,
) -> Result<Vec<String>, String> {
    let tip = a.ledger.tip();
    eprintln!("[sync] loading A's {} blocks", tip.height);
    let mut blocks: Vec<Block> = Vec::with_capacity(tip.height as usize);
    for h in 1..=tip.height {
        let got = within(
            Duration::from_secs(10),
            "read a block",
            a.ledger.block(BlockId::Height(h)),
        );
        match got.await? {
            Ok(Some((b, true))) => blocks.push(b),
            other => return Err(format!("block {h} of A: {other:?}")),
        }
    }
    let bytes: usize = blocks.iter().map(Block::size).sum();
    let txs: usize = blocks.iter().map(|b| b.txs.len()).sum();
    let mut out = vec![
        format!(
            "2. Sync: {} blocks, {txs} transfers, {:.2} MB, from a node with the chain to a new one",
            tip.height,
            bytes as f64 / 1e6
        ),
        format!(
            "  (A mined them with 1 thread in {:.1} s, {:.0} blocks/s; {fed} transfers submitted{})",
            mining.as_secs_f64(),
            tip.height as f64 / mining.as_secs_f64(),
            if tip.height < target { "; STOPPED SHORT of the target" } else { "" }
        ),
    ];
    let row = |label: &str, d: Duration| {
        let s = d.as_secs_f64();
        format!(
            "  {label:<40} {s:>7.2} s {:>8.0} blocks/s {:>6.2} MB/s",
            tip.height as f64 / s,
            bytes as f64 / 1e6 / s
        )
    };

    eprintln!("[sync] node B syncing from A");
    settle_disk().await;
    let b = Node::start(dev, &work.join("b.redb"), false).await?;
    let mut tips = b.ledger.watch_tip();
    let t = Instant::now();
    let dialed = b.dial(a).await;
    let dial_time = t.elapsed();
    let mut synced = dialed.clone().map(|_| None);
    let end = Instant::now() + Duration::from_secs(150);
    while let Ok(None) = synced {
        let wait = tokio::time::timeout(
            Duration::from_secs(5),
            tips.wait_for(|t| t.hash == tip.hash),
        );
        match wait.await {
            Ok(Ok(_)) => synced = Ok(Some(t.elapsed())),
            Ok(Err(_)) => synced = Err("B's ledger stopped".to_string()),
            Err(_) if Instant::now() > end => {
                let h = b.ledger.tip().height;
                synced = Err(format!(
                    "B reached only height {h} of {} in 150 s",
                    tip.height
                ));
            }
            Err(_) => eprintln!("[sync] B at height {}", b.ledger.tip().height),
        }
    }
    let via = b.transport_to(a).await;
    b.stop().await;

    eprintln!("[sync] local imports, no network");
    let (genesis, now) = (dev.genesis.clone(), now_ms());
    let db = work.join("local.redb");
    let local = tokio::task::spawn_blocking(move || {
        let mem = import_locally(&blocks, &genesis, || Ok(MemoryStore::default()), now);
        let _ = std::process::Command::new("sync").status();
        let redb = import_locally(&blocks, &genesis, || RedbStore::open(&db), now);
        (mem, redb)
    });
    let (mem, redb) = within(Duration::from_secs(300), "local import", local)
        .await?
        .map_err(|e| e.to_string())?;

    let sync = synced.map(|d| d.unwrap_or_default());
    match (&sync, &mem) {
        (Ok(d), Ok((m, _))) => out.push(format!(
            "{}  = {:.2}x local import (MemoryStore), {:.2}x local import (redb)",
            row(&format!("sync via {via}, dial to same tip"), *d),
            m.as_secs_f64() / d.as_secs_f64(),
            redb.as_ref()
                .map_or(f64::NAN, |r| r.0.as_secs_f64() / d.as_secs_f64()),
        )),
        (Err(e), _) => out.push(format!("  sync FAILED: {e}")),
        (_, Err(e)) => out.push(format!("  local import FAILED: {e}")),
    }
    out.push(format!(
        "  (of which the dial and identify: {:.1} ms)",
        ms(dial_time)
    ));
    for (label, r) in [
        ("baseline: Chain::process, MemoryStore", mem),
        ("baseline: Chain::process, redb file", redb),
    ] {
        out.push(match r {
            Ok((d, commits)) => format!(
                "{}  (store commits {:.2} s)",
                row(label, d),
                commits.as_secs_f64()
            ),
            Err(e) => format!("  {label:<40} FAILED: {e}"),
        });
    }
    Ok(out)
}

/// Flushes dirty page cache (A's chain, other work on the machine) so that
/// it is not written back during a timed phase: every block import ends in
/// an fsync, which would wait for it.
async fn settle_disk() {
    let sync = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status());
    let _ = tokio::time::timeout(Duration::from_secs(60), sync).await;
}

/// A [`ChainStore`] that times its commits.
struct Timed<S> {
    store: S,
    commits: Duration,
}

impl<S: ChainStore> ChainStore for Timed<S> {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.store.load()
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        self.store.undo(hash)
    }
    fn tx_block(&self, id: &TxId) -> Result<Option<BlockHash>, StoreError> {
        self.store.tx_block(id)
    }
    fn commit(&mut self, commit: Commit) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.store.commit(commit);
        self.commits += t.elapsed();
        r
    }
}

/// Opens a chain over `store` and imports `blocks` in order. Returns the
/// time and, of it, the store's commits; the clone of the blocks is not
/// timed.
fn import_locally<S: ChainStore>(
    blocks: &[Block],
    genesis: &Genesis,
    store: impl FnOnce() -> Result<S, StoreError>,
    now: u64,
) -> Result<(Duration, Duration), String> {
    let blocks = blocks.to_vec();
    let t = Instant::now();
    let store = Timed {
        store: store().map_err(|e| e.to_string())?,
        commits: Duration::ZERO,
    };
    let mut chain = Chain::open(genesis.clone(), store).map_err(|e| e.to_string())?;
    for b in blocks {
        let height = b.header.height;
        chain
            .process(b, now)
            .map_err(|e| format!("block {height}: {e}"))?;
    }
    Ok((t.elapsed(), chain.store().commits))
}

// ----------------------------------------------------------- 3. gossip

async fn gossip(count: usize, rounds: usize, seed: u64) -> Result<Vec<String>, String> {
    let dev = Devnet::new("gossip", rounds + WARMUPS);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    eprintln!("[gossip] starting {count} nodes");
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        match Node::start(&dev, &work.path().join(format!("n{i}.redb")), false).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                stop_all(nodes).await;
                return Err(format!("node {i}: {e}"));
            }
        }
    }
    let result = gossip_rounds(&dev, &nodes, rounds, seed).await;
    eprintln!("[gossip] stopping the nodes");
    stop_all(nodes).await;
    result
}

async fn stop_all(nodes: Vec<Node>) {
    futures::future::join_all(nodes.into_iter().map(Node::stop)).await;
}

async fn gossip_rounds(
    dev: &Devnet,
    nodes: &[Node],
    rounds: usize,
    seed: u64,
) -> Result<Vec<String>, String> {
    let count = nodes.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failed_dials = 0;
    for i in 1..count {
        for j in rand::seq::index::sample(&mut rng, i, DIALS_PER_NODE.min(i)).into_vec() {
            failed_dials += usize::from(nodes[i].dial(&nodes[j]).await.is_err());
        }
    }
    let ids: HashMap<_, _> = (0..count)
        .map(|i| (nodes[i].net.handle().local_peer_id(), i))
        .collect();

    eprintln!("[gossip] waiting for the meshes");
    let t = Instant::now();
    let meshes = wait_for_meshes(nodes).await;
    let mesh_time = t.elapsed();
    let mut graph = Vec::with_capacity(count);
    for n in nodes {
        graph.push(n.neighbours(&ids).await);
    }
    let links = graph.iter().map(Vec::len).sum::<usize>() / 2;
    let hops: Vec<Vec<usize>> = (0..count).map(|i| distances(&graph, i)).collect();
    let diameter = hops
        .iter()
        .flatten()
        .filter(|&&d| d != usize::MAX)
        .max()
        .copied()
        .unwrap_or(0);

    eprintln!("[gossip] waiting for the nodes to go quiet");
    let (quiet, idle) = settle(Duration::from_secs(20)).await;
    eprintln!("[gossip] warm-up");
    let mut warm = Vec::new();
    for w in 0..WARMUPS {
        let origin = (w * count / WARMUPS).min(count - 1);
        let (arrived, _) = propagate(nodes, origin, dev.pay(rounds + w, 0)).await?;
        warm.push(arrived.iter().flatten().max().copied());
    }

    eprintln!("[gossip] baselines");
    let tcp = tcp_rtt(1000).await;
    let (i, j) = (1, graph[1].first().copied().unwrap_or(0));
    let stream = stream_rtt(&nodes[i], &nodes[j], 300).await;
    let via = nodes[i].transport_to(&nodes[j]).await;

    eprintln!("[gossip] {rounds} rounds");
    let (cpu, wall) = (cpu_time(), Instant::now());
    let (mut all, mut each, mut incomplete) = (Vec::new(), Vec::new(), 0);
    let (mut submits, mut own) = (Vec::new(), Vec::new());
    let mut by_hops: Vec<Vec<Duration>> = vec![Vec::new(); diameter + 1];
    for r in 0..rounds {
        let origin = rng.gen_range(0..count);
        let (arrived, submit) = propagate(nodes, origin, dev.pay(r, 0)).await?;
        submits.push(submit);
        own.extend(arrived[origin]);
        for (n, a) in arrived.iter().enumerate().filter(|(n, _)| *n != origin) {
            if let Some(d) = a {
                each.push(*d);
                if let Some(v) = by_hops.get_mut(hops[origin][n]) {
                    v.push(*d);
                }
            }
        }
        let slowest = arrived.iter().flatten().max().copied().unwrap_or_default();
        eprintln!(
            "[gossip] round {r}: origin {origin}, {}/{count} nodes, slowest {:.1} ms",
            arrived.iter().flatten().count(),
            ms(slowest)
        );
        match arrived.iter().copied().collect::<Option<Vec<_>>>() {
            Some(v) => all.push(v.into_iter().max().unwrap_or_default()),
            None => incomplete += 1,
        }
        let gap = rng.gen_range(20..40);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }

    let cores = cores_since(cpu, wall);
    let mut out = vec![
        format!(
            "3. Gossip: {count} nodes, each dialed {DIALS_PER_NODE} random earlier ones: {links} connections, diameter {diameter} hops; {rounds} transfers"
        ),
        format!(
            "  meshes {} in {:.1} s ({}); warm-up all-nodes times: {}",
            if meshes.0 { "formed" } else { "NOT all formed" },
            mesh_time.as_secs_f64(),
            meshes.1,
            warm.iter()
                .map(|d| d.map_or("missed".into(), |d| format!("{:.1} ms", ms(d))))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "  nodes quiet {:.1} s after the meshes (Kademlia bootstrap), then {idle:.2} cores idle; {cores:.2} cores during the rounds",
            quiet.as_secs_f64()
        ),
    ];
    if failed_dials > 0 {
        out.push(format!("  ({failed_dials} dials FAILED)"));
    }
    let rtt = stream.as_ref().ok().copied();
    let ratio = |d: Duration| match (rtt, &tcp) {
        (Some(s), Ok(t)) => format!(
            "= {:>5.1}x stream RTT, {:>6.1}x TCP RTT",
            d.as_secs_f64() / s.as_secs_f64(),
            d.as_secs_f64() / t.as_secs_f64()
        ),
        _ => String::new(),
    };
    let stats = |label: &str, v: &mut Vec<Duration>| {
        if v.is_empty() {
            return format!("  {label:<34} no arrivals");
        }
        v.sort_unstable();
        let (med, p99) = (v[v.len() / 2], percentile(v, 99.0));
        format!(
            "  {label:<34} median {:>6.2} ms {}  p99 {:>6.2} ms  max {:>6.2} ms",
            ms(med),
            ratio(med),
            ms(p99),
            ms(v[v.len() - 1])
        )
    };
    out.push(stats(
        &format!("all {count} nodes have it ({} rounds)", all.len()),
        &mut all,
    ));
    out.push(stats(
        &format!("per node ({} arrivals)", each.len()),
        &mut each,
    ));
    for (h, v) in by_hops.iter_mut().enumerate().skip(1) {
        if !v.is_empty() {
            out.push(stats(&format!("  nodes {h} hop(s) from the origin"), v));
        }
    }
    out.push(stats("  origin: submit returned", &mut submits));
    out.push(stats("  origin: in its own mempool", &mut own));
    if incomplete > 0 {
        out.push(format!(
            "  {incomplete} rounds did NOT reach every node within 5 s"
        ));
    }
    out.push(match stream {
        Ok(d) => format!(
            "  baseline: {ECHO_BYTES} B round trip, libp2p stream ({via}) median {:.3} ms",
            ms(d)
        ),
        Err(e) => format!("  baseline: libp2p stream round trip FAILED: {e}"),
    });
    out.push(match tcp {
        Ok(d) => format!(
            "  baseline: {ECHO_BYTES} B round trip, raw loopback TCP   median {:.3} ms",
            ms(d)
        ),
        Err(e) => format!("  baseline: raw TCP round trip FAILED: {e}"),
    });
    out.push(format!(
        "  (mempools polled every {} us, so arrival times are up to that late)",
        poll_interval().as_micros()
    ));
    Ok(out)
}

/// Waits until this process uses under 0.1 cores over half a second (new
/// nodes run Kademlia bootstrap queries for a few seconds), or `limit`
/// passes. Returns the wait and the last half second's use.
async fn settle(limit: Duration) -> (Duration, f64) {
    let start = Instant::now();
    loop {
        let (cpu, wall) = (cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cores = cores_since(cpu, wall);
        if cores < 0.1 || start.elapsed() > limit {
            return (start.elapsed(), cores);
        }
    }
}

/// Hop counts from `from` over `graph` (`usize::MAX`: unreachable).
fn distances(graph: &[Vec<usize>], from: usize) -> Vec<usize> {
    let mut dist = vec![usize::MAX; graph.len()];
    dist[from] = 0;
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for &m in &graph[n] {
            if dist[m] == usize::MAX {
                dist[m] = dist[n] + 1;
                queue.push_back(m);
            }
        }
    }
    dist
}

/// Waits (up to 20 s) until every node's transaction mesh holds all its
/// subscribed peers or at least 5 of them. Returns whether it did, and the
/// mesh sizes.
async fn wait_for_meshes(nodes: &[Node]) -> (bool, String) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut sizes = Vec::with_capacity(nodes.len());
        let mut ready = true;
        for n in nodes {
            let topics = within(Duration::from_secs(5), "topics", n.net.handle().topics()).await;
            let topics = topics.ok().and_then(Result::ok).unwrap_or_default();
            let peers = n.net.handle().peers();
            let peers = within(Duration::from_secs(5), "peers", peers).await;
            let connected = peers.ok().and_then(Result::ok).map_or(0, |p| p.len());
            match topics.iter().find(|t| t.topic.ends_with(TX_TOPIC)) {
                Some(t) => {
                    sizes.push(t.mesh_peers.len());
                    ready &= t.subscribed_peers >= connected
                        && t.mesh_peers.len() >= t.subscribed_peers.min(5);
                }
                None => ready = false,
            }
        }
        if ready || Instant::now() > end {
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
            let text = format!(
                "mesh peers min {} / mean {mean:.1} / max {}",
                min.unwrap_or(&0),
                max.unwrap_or(&0)
            );
            return (ready, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits `tx` on `nodes[origin]` and watches every node's mempool until
/// all have it or 5 s pass. Returns when each saw it and when `submit`
/// returned, counted from just before the submit.
///
/// A dedicated thread polls the mempools' sizes every [`poll_interval`] (tokio's
/// timer has 1 ms resolution); each rise is then confirmed with
/// `tx_status`, untimed.
async fn propagate(
    nodes: &[Node],
    origin: usize,
    tx: Transaction,
) -> Result<(Vec<Option<Duration>>, Duration), String> {
    let id = tx.id();
    let ledgers: Vec<Ledger> = nodes.iter().map(|n| n.ledger.clone()).collect();
    let before: Vec<usize> = ledgers.iter().map(|l| l.mempool_size().0).collect();
    let ledger = ledgers[origin].clone();
    let t = Instant::now();
    let submit = tokio::spawn(async move {
        let r = ledger.submit(tx).await.map_err(|e| e.to_string());
        r.map(|_| t.elapsed())
    });
    let poll = poll_interval();
    let watch = tokio::task::spawn_blocking(move || {
        let mut seen = vec![None; ledgers.len()];
        let end = t + Duration::from_secs(5);
        while seen.iter().any(Option::is_none) && Instant::now() < end {
            for (i, l) in ledgers.iter().enumerate() {
                if seen[i].is_none() && l.mempool_size().0 > before[i] {
                    seen[i] = Some(t.elapsed());
                }
            }
            std::thread::sleep(poll);
        }
        seen
    });
    let submitted = within(Duration::from_secs(5), "submit", submit).await?;
    let mut arrived = within(Duration::from_secs(10), "mempool watch", watch)
        .await?
        .map_err(|e| e.to_string())?;
    let submit_time = match submitted {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(format!("submit on node {origin}: {e}")),
        Err(e) => return Err(format!("submit on node {origin}: {e}")),
    };
    for (n, a) in nodes.iter().zip(&mut arrived) {
        let status = within(Duration::from_secs(1), "tx_status", n.ledger.tx_status(id)).await;
        if !matches!(status, Ok(Ok(TxStatus::Pending(_)))) {
            *a = None;
        }
    }
    Ok((arrived, submit_time))
}

/// Median round trip of [`ECHO_BYTES`] over one libp2p stream from
/// `client` to `server` (already connected), `n` times after a warm-up.
async fn stream_rtt(client: &Node, server: &Node, n: usize) -> Result<Duration, String> {
    let mut incoming = server
        .net
        .handle()
        .accept_streams(ECHO)
        .map_err(|e| e.to_string())?;
    let echo = tokio::spawn(async move {
        if let Some((_, mut s)) = incoming.next().await {
            let mut buf = [0u8; ECHO_BYTES];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
        }
    });
    let peer = server.net.handle().local_peer_id();
    let result = within(Duration::from_secs(30), "stream round trips", async {
        let mut s = client
            .net
            .handle()
            .open_stream(peer, ECHO)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0x5au8; ECHO_BYTES];
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 20 {
            let t = Instant::now();
            s.write_all(&buf).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            if i >= 20 {
                times.push(t.elapsed());
            }
        }
        let _ = s.close().await;
        Ok::<_, String>(best_median(&mut times).1)
    })
    .await;
    echo.abort();
    result?
}

/// Median round trip of [`ECHO_BYTES`] over a loopback TCP socket pair
/// (nodelay), `n` times after a warm-up.
async fn tcp_rtt(n: usize) -> Result<Duration, String> {
    within(Duration::from_secs(30), "TCP round trips", async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let mut buf = [0u8; ECHO_BYTES];
            while s.read_exact(&mut buf).await.is_ok() {
                s.write_all(&buf).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut buf = [0x5au8; ECHO_BYTES];
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 50 {
            let t = Instant::now();
            s.write_all(&buf).await?;
            s.read_exact(&mut buf).await?;
            if i >= 50 {
                times.push(t.elapsed());
            }
        }
        drop(s);
        let _ = echo.await;
        Ok::<_, std::io::Error>(best_median(&mut times).1)
    })
    .await?
    .map_err(|e| e.to_string())
}

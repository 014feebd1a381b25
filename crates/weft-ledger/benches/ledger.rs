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

#[path = "ledger/gossip.rs"]
mod gossip;
#[path = "ledger/helpers.rs"]
mod helpers;
#[path = "ledger/nodes.rs"]
mod nodes;
#[path = "ledger/sync.rs"]
mod sync;
#[path = "ledger/validate.rs"]
mod validate;

use gossip::*;
use helpers::*;
use nodes::*;
use sync::*;
use validate::*;

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

//! The ledger wired to the network for one node.
//!
//! [`Ledger`] is a cheap clone around shared state: the [`Chain`] (over
//! redb) and the [`Mempool`], each behind a mutex and only touched on
//! blocking threads. Tasks, all stopped by one `CancellationToken`:
//! - gossip: transactions and blocks arrive on per-network topics and are
//!   validated before gossipsub may forward them ([`gossip`]);
//! - sync: peers exchange tips on connect and every few seconds, and a node
//!   behind fetches headers then blocks from a peer with more work
//!   ([`sync`]);
//! - mining, when configured ([`miner`]).

mod gossip;
mod miner;
mod persist;
pub mod sync;

use std::{
    path::PathBuf,
    sync::{atomic::AtomicU64, Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use weft_net::NetworkHandle;

use crate::{
    address::Address,
    block::{Block, BlockHash},
    chain::{BlockError, Chain, OpenError, Processed, StoreError, Tip},
    genesis::Genesis,
    mempool::{self, AccountState, Inserted, Mempool, Rejected},
    store::RedbStore,
    tx::{Transaction, TxError, TxId},
};

/// Topic of transactions (the network namespaces it).
pub const TX_TOPIC: &str = "ledger/tx/1";
/// Topic of blocks.
pub const BLOCK_TOPIC: &str = "ledger/block/1";

/// The clock, in milliseconds since the Unix epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

#[derive(Clone)]
pub struct Config {
    pub genesis: Genesis,
    /// The chain database file.
    pub db_path: PathBuf,
    pub mine: Option<MineConfig>,
    pub mempool: mempool::Config,
    pub clock: Clock,
}

#[derive(Debug, Clone)]
pub struct MineConfig {
    pub miner: Address,
    pub threads: usize,
}

/// Why a submitted transaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TxError),
    #[error("{0}")]
    Rejected(#[from] Rejected),
    #[error("the ledger is shutting down")]
    Shutdown,
}

/// Sync progress, as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStatus {
    pub syncing: bool,
    /// Highest tip a peer told us about.
    pub best_height: Option<u64>,
}

/// A transaction's place.
#[derive(Debug, Clone)]
pub enum TxStatus {
    Pending(Transaction),
    Confirmed {
        tx: Option<Transaction>,
        block: BlockHash,
        height: u64,
        confirmations: u64,
    },
    Unknown,
}

#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    chain: Mutex<Chain<RedbStore>>,
    mempool: Mutex<Mempool>,
    /// Where the mempool is saved across restarts (see `persist`).
    mempool_path: PathBuf,
    mempool_limits: mempool::Config,
    net: NetworkHandle,
    genesis_hash: BlockHash,
    clock: Clock,
    tip: watch::Sender<Tip>,
    sync: Mutex<SyncStatus>,
    /// Bumped whenever miners should start over (new tip, new transactions).
    work_generation: AtomicU64,
    /// Gossiped transactions dropped by the per-peer rate limit.
    throttled: AtomicU64,
    mining: bool,
    /// Peers the sync task should check now.
    sync_requests: tokio::sync::mpsc::Sender<weft_net::PeerId>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the ledger's network tasks: {0}")]
    Net(String),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl Ledger {
    pub async fn start(config: Config, net: NetworkHandle) -> Result<Self, StartError> {
        let genesis = config.genesis.clone();
        let path = config.db_path.clone();
        let chain = blocking(move || -> Result<_, StartError> {
            let store = RedbStore::open(&path)?;
            Ok(Chain::open(genesis, store)?)
        })
        .await
        .ok_or_else(|| StartError::Net("the runtime is shutting down".into()))??;
        let genesis_hash = chain.genesis_hash();
        let (tip, _) = watch::channel(chain.tip());
        let (sync_requests, sync_rx) = tokio::sync::mpsc::channel(64);
        let ledger = Ledger {
            inner: Arc::new(Inner {
                chain: Mutex::new(chain),
                mempool: Mutex::new(Mempool::new(config.mempool.clone())),
                mempool_path: persist::path_for(&config.db_path),
                mempool_limits: config.mempool.clone(),
                net: net.clone(),
                genesis_hash,
                clock: config.clock.clone(),
                tip,
                sync: Mutex::new(SyncStatus::default()),
                work_generation: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
                mining: config.mine.is_some(),
                sync_requests,
                cancel: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let txs = net
            .subscribe(TX_TOPIC, 1024)
            .await
            .map_err(|e| StartError::Net(e.to_string()))?;
        let blocks = net
            .subscribe(BLOCK_TOPIC, 256)
            .await
            .map_err(|e| StartError::Net(e.to_string()))?;
        let incoming = net
            .accept_streams(sync::PROTOCOL)
            .map_err(|e| StartError::Net(e.to_string()))?;
        ledger.spawn(gossip::run_txs(ledger.clone(), txs));
        ledger.spawn(gossip::run_blocks(ledger.clone(), blocks));
        ledger.spawn(sync::serve(ledger.clone(), incoming));
        ledger.spawn(sync::run(ledger.clone(), sync_rx));
        if let Some(mine) = config.mine {
            ledger.spawn(miner::run(ledger.clone(), mine));
        }
        let restored = ledger.restore_mempool().await;
        ledger.spawn(persist::republish(ledger.clone(), restored));
        ledger.spawn(persist::run_saves(ledger.clone()));
        Ok(ledger)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.inner.cancel.clone();
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = cancel.cancelled() => {}
            }
        });
        if let Ok(mut t) = self.inner.tasks.lock() {
            t.push(handle);
        }
    }

    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
        self.save_mempool().await;
    }

    fn chain(&self) -> MutexGuard<'_, Chain<RedbStore>> {
        self.inner
            .chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.inner
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn net(&self) -> &NetworkHandle {
        &self.inner.net
    }

    pub fn genesis_hash(&self) -> BlockHash {
        self.inner.genesis_hash
    }

    pub fn genesis(&self) -> Genesis {
        self.chain().genesis().clone()
    }

    pub fn now_ms(&self) -> u64 {
        (self.inner.clock)()
    }

    pub fn tip(&self) -> Tip {
        *self.inner.tip.borrow()
    }

    /// Changes whenever the tip does.
    pub fn watch_tip(&self) -> watch::Receiver<Tip> {
        self.inner.tip.subscribe()
    }

    /// Gossiped transactions dropped because their sender exceeded its rate.
    pub fn throttled(&self) -> u64 {
        self.inner
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_mining(&self) -> bool {
        self.inner.mining
    }

    pub fn sync_status(&self) -> SyncStatus {
        self.inner.sync.lock().map(|s| *s).unwrap_or_default()
    }

    fn set_sync(&self, f: impl FnOnce(&mut SyncStatus)) {
        if let Ok(mut s) = self.inner.sync.lock() {
            f(&mut s);
        }
    }

    /// The difficulty of the next block.
    pub fn next_difficulty(&self) -> u64 {
        let c = self.chain();
        c.difficulty_after(&c.tip().hash).unwrap_or(1)
    }

    /// The difficulty of a known block.
    pub fn block_difficulty(&self, hash: &BlockHash) -> Option<u64> {
        self.chain().meta(hash).map(|m| m.difficulty)
    }

    /// Count and bytes of the mempool.
    pub fn mempool_size(&self) -> (usize, usize) {
        let m = self.mempool();
        (m.len(), m.bytes())
    }

    pub fn mempool_entries(&self) -> Vec<(Transaction, bool)> {
        self.mempool().entries()
    }

    /// Confirmed state, pending outgoing total, pending incoming total and
    /// the next nonce to use.
    pub fn account(&self, a: &Address) -> (AccountState, u64, u64, u64) {
        let acc = self.chain().account(a);
        let state = AccountState {
            balance: acc.balance,
            nonce: acc.nonce,
        };
        let m = self.mempool();
        let (out, next) = m.pending(a, state);
        (state, out, m.incoming(a), next)
    }

    /// A block by height (main chain) or hash, with whether it is on the
    /// main chain.
    pub async fn block(&self, id: BlockId) -> Result<Option<(Block, bool)>, StoreError> {
        let me = self.clone();
        blocking(move || {
            let c = me.chain();
            let hash = match id {
                BlockId::Height(h) => match c.hash_at(h) {
                    Some(h) => h,
                    None => return Ok(None),
                },
                BlockId::Hash(h) => h,
            };
            Ok(c.block(&hash)?.map(|b| (b, c.is_main(&hash))))
        })
        .await
        .unwrap_or(Ok(None))
    }

    pub async fn tx_status(&self, id: TxId) -> Result<TxStatus, StoreError> {
        if let Some(tx) = self.mempool().get(&id).cloned() {
            return Ok(TxStatus::Pending(tx));
        }
        let me = self.clone();
        blocking(move || {
            let c = me.chain();
            let Some((block, height, confirmations)) = c.tx_location(&id)? else {
                return Ok(TxStatus::Unknown);
            };
            let tx = c
                .block(&block)?
                .and_then(|b| b.txs.into_iter().find(|t| t.id() == id));
            Ok(TxStatus::Confirmed {
                tx,
                block,
                height,
                confirmations,
            })
        })
        .await
        .unwrap_or(Ok(TxStatus::Unknown))
    }

    /// Validates a transaction, adds it to the mempool and gossips it.
    pub async fn submit(&self, tx: Transaction) -> Result<TxId, SubmitError> {
        let id = tx.id();
        let me = self.clone();
        let genesis = self.inner.genesis_hash;
        let checked = tx.clone();
        blocking(move || checked.verify(&genesis.0))
            .await
            .ok_or(SubmitError::Shutdown)??;
        me.admit(tx.clone())?;
        let _ = self.inner.net.publish(TX_TOPIC, tx.encode()).await;
        Ok(id)
    }

    /// Adds a signature-checked transaction to the mempool.
    fn admit(&self, tx: Transaction) -> Result<Inserted, Rejected> {
        let acc = self.chain().account(&tx.from);
        let state = AccountState {
            balance: acc.balance,
            nonce: acc.nonce,
        };
        let now = Instant::now();
        let r = self.mempool().insert(tx, state, now);
        if matches!(r, Ok(Inserted::Ready | Inserted::Replaced(_))) && self.inner.mining {
            self.bump_work();
        }
        r
    }

    fn bump_work(&self) {
        self.inner
            .work_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Imports a block (from gossip, sync or our miner) on a blocking
    /// thread, then brings the mempool and miners up to date.
    pub async fn import(&self, block: Block) -> Result<Processed, BlockError> {
        self.import_with(block, false).await
    }

    /// [`Ledger::import`]; `lazy` defers the fsync to a later durable
    /// import (sync batches: see `Commit::lazy`).
    pub async fn import_with(&self, block: Block, lazy: bool) -> Result<Processed, BlockError> {
        let me = self.clone();
        let now = self.now_ms();
        let processed = blocking(move || me.chain().process_with(block, now, lazy))
            .await
            .ok_or(BlockError::Store(StoreError("shutting down".into())))??;
        if processed.new_tip {
            self.after_new_tip(&processed);
        }
        Ok(processed)
    }

    fn after_new_tip(&self, p: &Processed) {
        let tip = {
            // Lock order everywhere: chain, then mempool.
            let c = self.chain();
            let state = |a: &Address| {
                let acc = c.account(a);
                AccountState {
                    balance: acc.balance,
                    nonce: acc.nonce,
                }
            };
            let mut m = self.mempool();
            let now = Instant::now();
            for tx in p.connected.iter().flat_map(|b| &b.txs) {
                m.remove(&tx.id());
            }
            // Transactions of abandoned blocks come back if still valid.
            for tx in p.disconnected.iter().flat_map(|b| b.txs.iter()) {
                if !p.connected.iter().any(|b| b.txs.contains(tx)) {
                    let _ = m.insert(tx.clone(), state(&tx.from), now);
                }
            }
            m.update(&state, now);
            c.tip()
        };
        self.bump_work();
        self.inner.tip.send_replace(tip);
    }
}

/// How a block is named in the API and CLI.
#[derive(Debug, Clone, Copy)]
pub enum BlockId {
    Height(u64),
    Hash(BlockHash),
}

impl std::str::FromStr for BlockId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(h) = s.parse::<u64>() {
            return Ok(BlockId::Height(h));
        }
        s.parse::<BlockHash>()
            .map(BlockId::Hash)
            .map_err(|_| format!("not a block height or hash: {s}"))
    }
}

/// Pause between polls of peers' tips.
pub(crate) const TIP_POLL: Duration = Duration::from_secs(3);

//! Downloading blobs and collections from many providers at once.
//!
//! [`Fetcher::fetch`] gathers providers (the ticket's, dialed directly, and
//! the DHT's, as they are found), proves the blob's size with a first
//! request, then lets the [`scheduler`] hand out requests to every provider
//! in parallel until every chunk is verified and stored. A collection is its
//! manifest blob, then each file blob, a few at a time.
//!
//! Everything received is verified before it is written (see
//! [`crate::transfer`]); the store records verified ranges, so a fetch that
//! is cancelled, or whose node is killed, resumes where it stopped.

mod discovery;
mod providers;
pub mod scheduler;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bao_tree::{ChunkNum, ChunkRanges};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weft_net::{NetworkHandle, PeerId};

use crate::{
    collection::{Collection, EntryKind, MAX_MANIFEST_BYTES},
    protocol,
    store::{verified_bytes, Store, StoreError},
    ticket::{BlobKind, Provider},
    transfer::{fetch_ranges, Destination, TransferError},
    Hash,
};
use providers::Pool;
use scheduler::{Failure, Scheduler};

/// How long a fetch waits for a provider when it has none that can help.
const PROVIDER_WAIT: Duration = Duration::from_secs(30);
/// File blobs of a collection fetched at once.
const PARALLEL_FILES: usize = 8;
const TICK: Duration = Duration::from_millis(250);
/// Tries per provider for the first, size-proving request.
const PROVE_ATTEMPTS: u32 = 8;

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchTarget {
    pub hash: Hash,
    /// From a ticket; `None` for a bare hash (detected after download).
    pub kind: Option<BlobKind>,
    pub providers: Vec<Provider>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FetchState {
    #[default]
    Searching,
    Downloading,
    /// Verified and stored; being written to the output path.
    Exporting,
    Complete,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerBytes {
    pub peer_id: String,
    pub bytes: u64,
}

/// A fetch's progress, as the API reports it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressSnapshot {
    pub state: FetchState,
    pub hash: String,
    pub kind: Option<BlobKind>,
    /// Verified bytes, including what was already stored.
    pub bytes_done: u64,
    /// Total bytes, once known.
    pub total: Option<u64>,
    /// Bytes received and verified in this run.
    pub bytes_received: u64,
    /// Providers currently usable.
    pub peers: usize,
    /// Bytes per second over the last second or so.
    pub rate: f64,
    pub files_done: u64,
    pub files_total: u64,
    pub per_peer: Vec<PeerBytes>,
    /// Peers dropped for sending bad data.
    pub bad_peers: Vec<String>,
    pub error: Option<String>,
}

impl ProgressSnapshot {
    fn add_peer_bytes(&mut self, peer: PeerId, bytes: u64) {
        let id = peer.to_string();
        match self.per_peer.iter_mut().find(|p| p.peer_id == id) {
            Some(p) => p.bytes += bytes,
            None => self.per_peer.push(PeerBytes { peer_id: id, bytes }),
        }
    }
}

/// Shared, cheaply cloned progress of one fetch.
#[derive(Clone, Default)]
pub struct Progress(Arc<Mutex<ProgressSnapshot>>);

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut ProgressSnapshot)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    pub fn update_state(&self, state: FetchState) {
        self.update(|p| p.state = state);
    }

    pub fn fail(&self, error: String) {
        self.update(|p| {
            p.state = FetchState::Failed;
            p.error = Some(error);
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no provider found for {0} (nobody reachable has it)")]
    NoProviders(Hash),
    #[error("could not fetch {hash}: {reason}")]
    Failed { hash: Hash, reason: String },
    #[error("the fetch was cancelled")]
    Cancelled,
    #[error("{0} is not a valid collection: {1}")]
    BadCollection(Hash, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of a finished fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchOutcome {
    pub hash: Hash,
    pub kind: BlobKind,
    pub size: u64,
}

/// Fetches parts of one blob on demand; see [`Fetcher::session`].
pub struct Session {
    fetcher: Fetcher,
    hash: Hash,
    pool: tokio::sync::Mutex<Pool>,
}

impl Session {
    /// Makes bytes `range` of the blob local and verified (only the size,
    /// for an empty range). Returns the blob's size.
    pub async fn ensure(
        &self,
        range: std::ops::Range<u64>,
        cancel: &CancellationToken,
    ) -> Result<u64, FetchError> {
        // Bytes already here need neither the providers nor the lock (which
        // a read-ahead for a later range may be holding).
        let store = self.fetcher.store.clone();
        let hash = self.hash;
        if let Ok(Ok(Some((size, valid)))) =
            tokio::task::spawn_blocking(move || store.valid_ranges(&hash)).await
        {
            let wanted = ChunkRanges::from(
                ChunkNum::full_chunks(range.start.min(size))..ChunkNum::chunks(range.end.min(size)),
            );
            if protocol::normalize(&wanted, size).is_subset(&valid) {
                return Ok(size);
            }
        }
        let mut pool = self.pool.lock().await;
        self.fetcher
            .fetch_blob(
                self.hash,
                BlobKind::Blob,
                None,
                &mut pool,
                &Progress::default(),
                cancel,
                false,
                Some(range),
            )
            .await
    }
}

/// Runs fetches for one node.
#[derive(Clone)]
pub struct Fetcher {
    net: NetworkHandle,
    store: Store,
    /// Peers that sent bad data, with the number of offences.
    scores: Arc<Mutex<HashMap<PeerId, u32>>>,
}

impl Fetcher {
    pub fn new(net: NetworkHandle, store: Store) -> Self {
        Self {
            net,
            store,
            scores: Default::default(),
        }
    }

    /// Offences recorded against a peer.
    pub fn offences(&self, peer: &PeerId) -> u32 {
        self.scores
            .lock()
            .map(|m| m.get(peer).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn penalise(&self, peer: PeerId) {
        if let Ok(mut m) = self.scores.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            *m.entry(peer).or_insert(0) += 1;
        }
    }

    /// A session for fetching parts of one blob on demand (the gateway): it
    /// gathers providers once and keeps them.
    pub fn session(&self, hash: Hash, providers: Vec<Provider>) -> Session {
        let pool = self.gather(&FetchTarget {
            hash,
            kind: None,
            providers,
        });
        Session {
            fetcher: self.clone(),
            hash,
            pool: tokio::sync::Mutex::new(pool),
        }
    }

    /// Fetches a blob or collection into the store.
    pub async fn fetch(
        &self,
        target: FetchTarget,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<FetchOutcome, FetchError> {
        progress.update(|p| {
            p.hash = target.hash.to_hex();
            p.kind = target.kind;
            p.state = FetchState::Searching;
        });
        let result = self.fetch_inner(&target, &progress, &cancel).await;
        // On success the caller sets the final state (after any export).
        progress.update(|p| match &result {
            Ok(out) => {
                p.kind = Some(out.kind);
                p.bytes_done = out.size;
                p.total = Some(out.size);
            }
            Err(FetchError::Cancelled) => p.state = FetchState::Cancelled,
            Err(e) => {
                p.state = FetchState::Failed;
                p.error = Some(e.to_string());
            }
        });
        if let Ok(out) = &result {
            if let Err(e) = self.net.provide(out.hash.as_bytes().to_vec()).await {
                tracing::debug!(hash = %out.hash, "cannot announce: {e}");
            }
        }
        result
    }

    async fn fetch_inner(
        &self,
        target: &FetchTarget,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<FetchOutcome, FetchError> {
        let mut pool = self.gather(target);
        let kind = target.kind.unwrap_or(BlobKind::Blob);
        let size = self
            .fetch_blob(
                target.hash,
                kind,
                None,
                &mut pool,
                progress,
                cancel,
                true,
                None,
            )
            .await?;
        let is_collection = match target.kind {
            Some(k) => k == BlobKind::Collection,
            None => self.looks_like_collection(&target.hash, size).await,
        };
        if !is_collection {
            return Ok(FetchOutcome {
                hash: target.hash,
                kind: BlobKind::Blob,
                size,
            });
        }
        let collection = self.load_collection(&target.hash).await?;
        let files: Vec<(String, Hash, u64)> = collection
            .entries()
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { hash, size } => Some((e.path.clone(), *hash, *size)),
                EntryKind::Dir => None,
            })
            .collect();
        let total = collection.total_size() + size;
        progress.update(|p| {
            p.kind = Some(BlobKind::Collection);
            p.total = Some(total);
            p.files_total = files.len() as u64;
            p.bytes_done = size;
        });
        let peers = pool.known.clone();
        let mut pending = files.into_iter();
        let mut running = JoinSet::new();
        let base_done = Arc::new(AtomicU64::new(size));
        loop {
            while running.len() < PARALLEL_FILES {
                let Some((path, hash, file_size)) = pending.next() else {
                    break;
                };
                let this = self.clone();
                let peers = peers.clone();
                let progress = progress.clone();
                let cancel = cancel.clone();
                let base_done = base_done.clone();
                running.spawn(async move {
                    let mut pool = Pool {
                        known: peers,
                        incoming: None,
                    };
                    let child_progress = Progress::default();
                    let r = this
                        .fetch_blob(
                            hash,
                            BlobKind::Blob,
                            Some(path.clone()),
                            &mut pool,
                            &child_progress,
                            &cancel,
                            false,
                            None,
                        )
                        .await;
                    if r.is_ok() {
                        let done = base_done.fetch_add(file_size, Ordering::Relaxed) + file_size;
                        let snap = child_progress.snapshot();
                        progress.update(|p| {
                            p.files_done += 1;
                            p.bytes_done = done;
                            p.bytes_received += snap.bytes_received;
                            for pb in &snap.per_peer {
                                match p.per_peer.iter_mut().find(|x| x.peer_id == pb.peer_id) {
                                    Some(x) => x.bytes += pb.bytes,
                                    None => p.per_peer.push(pb.clone()),
                                }
                            }
                        });
                    }
                    r.map_err(|e| (path, e))
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok(Ok(_)) => {}
                Ok(Err((path, e))) => {
                    running.abort_all();
                    return Err(match e {
                        FetchError::Cancelled => FetchError::Cancelled,
                        other => FetchError::Failed {
                            hash: target.hash,
                            reason: format!("{path}: {other}"),
                        },
                    });
                }
                Err(e) => {
                    return Err(FetchError::Failed {
                        hash: target.hash,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(FetchOutcome {
            hash: target.hash,
            kind: BlobKind::Collection,
            size: total,
        })
    }

    async fn looks_like_collection(&self, hash: &Hash, size: u64) -> bool {
        if size > MAX_MANIFEST_BYTES {
            return false;
        }
        self.load_collection(hash).await.is_ok()
    }

    async fn load_collection(&self, hash: &Hash) -> Result<Collection, FetchError> {
        let store = self.store.clone();
        let h = *hash;
        let bytes = tokio::task::spawn_blocking(move || store.read_to_vec(&h, MAX_MANIFEST_BYTES))
            .await
            .map_err(|e| FetchError::Failed {
                hash: h,
                reason: e.to_string(),
            })??;
        Collection::from_bytes(&bytes).map_err(|e| FetchError::BadCollection(h, e.to_string()))
    }

    /// Fetches one blob; returns its size.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_blob(
        &self,
        hash: Hash,
        kind: BlobKind,
        name: Option<String>,
        pool: &mut Pool,
        progress: &Progress,
        cancel: &CancellationToken,
        report_total: bool,
        wanted_bytes: Option<std::ops::Range<u64>>,
    ) -> Result<u64, FetchError> {
        let _guard = self.store.hold(hash);
        let _flush = FlushOnExit {
            store: self.store.clone(),
            hash,
        };
        let store = self.store.clone();
        let state = tokio::task::spawn_blocking(move || store.valid_ranges(&hash))
            .await
            .map_err(|e| FetchError::Failed {
                hash,
                reason: e.to_string(),
            })??;
        let received = Arc::new(AtomicU64::new(0));
        let mut dest = Destination {
            hash,
            kind,
            name,
            known_size: None,
        };
        let mut first_peer = None;
        let (size, done) = match state {
            Some((size, done)) => (size, done),
            None => {
                let (peer, first) = self
                    .prove_size(&mut dest, pool, received.clone(), progress, cancel)
                    .await?;
                first_peer = Some((peer, verified_bytes(&first.ranges, first.size)));
                (first.size, first.ranges)
            }
        };
        dest.known_size = Some(size);
        let all = protocol::all_chunks(size);
        // Only part of the blob wanted: count the rest as done.
        let done = match &wanted_bytes {
            Some(r) => {
                let chunks = ChunkRanges::from(
                    ChunkNum::full_chunks(r.start.min(size))..ChunkNum::chunks(r.end.min(size)),
                );
                let wanted = protocol::normalize(&chunks, size);
                done | (all.clone() - wanted)
            }
            None => done,
        };
        if report_total {
            progress.update(|p| {
                p.total = Some(size);
                p.bytes_done = verified_bytes(&done, size);
                p.state = FetchState::Downloading;
            });
        }
        if all.is_subset(&done) {
            progress.update(|p| {
                p.bytes_received = received.load(Ordering::Relaxed);
                if let Some((peer, bytes)) = first_peer {
                    p.add_peer_bytes(peer, bytes);
                }
            });
            return Ok(size);
        }

        let seed = rand::random::<u64>();
        let mut sched = Scheduler::new(size, &done, seed);
        if let Some((peer, bytes)) = first_peer {
            sched.add_peer(peer, None);
            sched.credit(peer, bytes);
        }
        // Peer exchange: find other downloaders and learn what they have.
        // Peers that sent bad data are not asked for peers either.
        let trusted: Vec<PeerId> = pool
            .known
            .iter()
            .filter(|p| self.offences(p) == 0)
            .copied()
            .collect();
        let (mut discovered, discovery) =
            discovery::spawn_discovery(self.net.clone(), hash, size, trusted);
        let _discovery = crate::transfer::AbortOnDrop(discovery);
        for p in &pool.known {
            if self.offences(p) == 0 {
                sched.add_peer(*p, None);
            }
        }
        let mut tasks: JoinSet<(u64, PeerId, Result<ChunkRanges, TransferError>, Duration)> =
            JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        let mut last_rate = (Instant::now(), 0u64);
        let mut waiting_since: Option<Instant> = None;
        loop {
            if sched.is_done() {
                break;
            }
            let now = Instant::now();
            for peer in sched.idle_peers(now) {
                while let Some(a) = sched.next_request(peer, now) {
                    let net = self.net.clone();
                    let store = self.store.clone();
                    let dest = dest.clone();
                    let counter = received.clone();
                    tasks.spawn(async move {
                        let started = Instant::now();
                        let r = fetch_ranges(&net, &store, a.peer, &dest, &a.ranges, counter)
                            .await
                            .map(|r| r.ranges);
                        (a.id, a.peer, r, started.elapsed())
                    });
                }
            }
            if tasks.is_empty() {
                // Nothing in flight: nobody could take a request just now.
                // With every provider given up on and no search left that
                // could find another, waiting is pointless.
                let hopeless = sched.usable_peers() == 0 && !pool.is_open();
                let since = *waiting_since.get_or_insert(now);
                if hopeless || since.elapsed() > PROVIDER_WAIT {
                    return Err(if pool.known.is_empty() {
                        FetchError::NoProviders(hash)
                    } else {
                        FetchError::Failed {
                            hash,
                            reason: "no provider could deliver the missing data".into(),
                        }
                    });
                }
            } else {
                waiting_since = None;
            }
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let Ok((id, peer, result, elapsed)) = joined else { continue };
                    match result {
                        Ok(ranges) => {
                            let bytes = verified_bytes(&ranges, size);
                            sched.complete(id, &ranges, bytes, elapsed);
                        }
                        Err(TransferError::BadData(reason)) => {
                            tracing::warn!(%peer, %hash, "dropping provider that sent bad data: {reason}");
                            self.penalise(peer);
                            sched.failed(id, Failure::BadData, Instant::now());
                            progress.update(|p| p.bad_peers.push(peer.to_string()));
                        }
                        Err(TransferError::NotFound) => sched.failed(id, Failure::NotFound, Instant::now()),
                        Err(TransferError::Busy) => sched.failed(id, Failure::Busy, Instant::now()),
                        Err(TransferError::Stream(reason)) => {
                            tracing::debug!(%peer, "request failed: {reason}");
                            sched.failed(id, Failure::Stream, Instant::now());
                        }
                        Err(TransferError::Store(e)) => {
                            tasks.abort_all();
                            return Err(e.into());
                        }
                    }
                }
                Some(p) = pool.recv_new(), if pool.is_open() => {
                    if self.offences(&p) == 0 {
                        sched.add_peer(p, None);
                    }
                }
                Some((p, have)) = discovered.recv() => {
                    if self.offences(&p) == 0 {
                        if sched.knows(&p) {
                            sched.update_have(p, have);
                        } else {
                            sched.add_peer(p, Some(have));
                        }
                    }
                }
                _ = tick.tick() => {}
                _ = cancel.cancelled() => {
                    tasks.abort_all();
                    return Err(FetchError::Cancelled);
                }
            }
            let got = received.load(Ordering::Relaxed);
            let elapsed = last_rate.0.elapsed();
            let rate_update = if elapsed >= Duration::from_secs(1) {
                let rate = (got - last_rate.1) as f64 / elapsed.as_secs_f64();
                last_rate = (Instant::now(), got);
                Some(rate)
            } else {
                None
            };
            let done_bytes = sched.bytes_done();
            let peers = sched.usable_peers();
            let per_peer = sched.per_peer_bytes();
            progress.update(|p| {
                if report_total {
                    p.bytes_done = done_bytes.min(size);
                }
                p.bytes_received = got;
                p.peers = peers;
                if let Some(r) = rate_update {
                    p.rate = r;
                }
                p.per_peer = per_peer
                    .into_iter()
                    .map(|(peer, bytes)| PeerBytes {
                        peer_id: peer.to_string(),
                        bytes,
                    })
                    .collect();
            });
        }
        progress.update(|p| {
            p.bytes_received = received.load(Ordering::Relaxed);
            if report_total {
                p.bytes_done = size;
            }
        });
        Ok(size)
    }
}

/// Makes a download's verified ranges durable when it stops, however it
/// stops (done, failed, cancelled, aborted), so a later run resumes them.
struct FlushOnExit {
    store: Store,
    hash: Hash,
}

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        let store = self.store.clone();
        let hash = self.hash;
        let flush = move || {
            if let Err(e) = store.flush(&hash) {
                tracing::warn!(%hash, "could not record verified ranges: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(flush)),
            Err(_) => flush(),
        }
    }
}

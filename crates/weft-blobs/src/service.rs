//! The blobs service: the store, the blob server, the fetcher and the
//! fetches in progress, wired to the network for one node.
//!
//! [`Blobs::start`] opens the store, starts answering blob requests and
//! announces every complete root blob in the DHT (batched, a few per
//! tick). [`Blobs::shutdown`] cancels fetches and stops serving.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_net::NetworkHandle;

use crate::{
    collection::{walk_dir, Collection, Entry, EntryKind, WalkKind},
    export::{export, ExportError},
    fetch::{FetchState, FetchTarget, Fetcher, Progress, ProgressSnapshot},
    protocol::PROTOCOL,
    store::{BlobInfo, Store, StoreError},
    ticket::{BlobKind, Provider, Ticket},
    transfer::{serve, Fault, ServeStats},
    Hash,
};

/// Most fetches running at once; more wait their turn.
const MAX_RUNNING_FETCHES: usize = 16;
/// Most fetches remembered (running or finished) for status queries.
const MAX_FETCHES: usize = 1024;
/// Files imported per durability barrier and index transaction.
const IMPORT_BATCH: usize = 1000;
/// Root blobs announced per announcement tick.
const ANNOUNCE_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub quota: Option<u64>,
    pub fault: Fault,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What an import produced.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub hash: Hash,
    pub kind: BlobKind,
    pub size: u64,
    pub name: Option<String>,
    pub files: u64,
}

/// A fetch as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FetchStatus {
    pub id: u64,
    #[serde(flatten)]
    pub progress: ProgressSnapshot,
    pub out: Option<PathBuf>,
    pub elapsed_s: f64,
}

struct FetchEntry {
    progress: Progress,
    cancel: CancellationToken,
    out: Option<PathBuf>,
    started: Instant,
    finished: Option<Instant>,
}

#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    net: NetworkHandle,
    fetcher: Fetcher,
    stats: Arc<ServeStats>,
    fetches: Mutex<HashMap<u64, FetchEntry>>,
    next_id: AtomicU64,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    running: Arc<tokio::sync::Semaphore>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}

impl Blobs {
    pub async fn start(config: Config, net: NetworkHandle) -> Result<Self, StoreError> {
        let dir = config.dir.clone();
        let quota = config.quota;
        let store = blocking(move || Store::open(&dir, quota))
            .await
            .map_err(StoreError::Db)??;
        let stats = Arc::new(ServeStats::default());
        let incoming = net
            .accept_streams(PROTOCOL)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let cancel = CancellationToken::new();
        let serve_task = {
            let store = store.clone();
            let stats = stats.clone();
            let cancel = cancel.clone();
            let net = net.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = serve(store, net, incoming, config.fault, stats) => {}
                    _ = cancel.cancelled() => {}
                }
            })
        };
        let blobs = Self {
            inner: Arc::new(Inner {
                fetcher: Fetcher::new(net.clone(), store.clone()),
                store,
                net,
                stats,
                fetches: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                cancel,
                tasks: Mutex::new(vec![serve_task]),
                running: Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING_FETCHES)),
            }),
        };
        let announcer = tokio::spawn(blobs.clone().announce_all());
        if let Ok(mut t) = blobs.inner.tasks.lock() {
            t.push(announcer);
        }
        Ok(blobs)
    }

    /// Announces every complete root (blob shared on its own, or collection).
    async fn announce_all(self) {
        let store = self.inner.store.clone();
        let Ok(Ok(list)) = blocking(move || store.list()).await else {
            return;
        };
        let roots: Vec<Hash> = list
            .iter()
            .filter(|b| b.complete && (b.kind == BlobKind::Collection || b.name.is_some()))
            .map(|b| b.hash)
            .collect();
        for batch in roots.chunks(ANNOUNCE_BATCH) {
            for hash in batch {
                let _ = self.inner.net.provide(hash.as_bytes().to_vec()).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.inner.cancel.cancelled() => return,
            }
        }
    }

    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        if let Ok(fetches) = self.inner.fetches.lock() {
            for f in fetches.values() {
                f.cancel.cancel();
            }
        }
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn stats(&self) -> &ServeStats {
        &self.inner.stats
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.inner.fetcher
    }

    /// Imports a file or a folder (as a collection) and announces it.
    pub async fn add_path(&self, path: PathBuf) -> Result<Added, AddError> {
        let store = self.inner.store.clone();
        let added = blocking(move || import_path(&store, &path))
            .await
            .map_err(AddError::Internal)??;
        let _ = self.inner.net.provide(added.hash.as_bytes().to_vec()).await;
        Ok(added)
    }

    /// Imports a file under a given name (an upload spooled to disk).
    pub async fn add_file_named(
        &self,
        path: PathBuf,
        name: Option<String>,
    ) -> Result<Added, AddError> {
        let store = self.inner.store.clone();
        let info = blocking(move || {
            store.import_file(&path, BlobKind::Blob, Some(name.unwrap_or_default()))
        })
        .await
        .map_err(AddError::Internal)??;
        Ok(self.announce_single(info).await)
    }

    /// Announces a single imported blob and describes it.
    async fn announce_single(&self, info: BlobInfo) -> Added {
        let _ = self.inner.net.provide(info.hash.as_bytes().to_vec()).await;
        Added {
            hash: info.hash,
            kind: BlobKind::Blob,
            size: info.size,
            name: info.name,
            files: 1,
        }
    }

    /// Imports bytes (an upload) and announces them.
    pub async fn add_bytes(&self, bytes: Vec<u8>, name: Option<String>) -> Result<Added, AddError> {
        let store = self.inner.store.clone();
        let info = blocking(move || {
            store.import_bytes(&bytes, BlobKind::Blob, name.or(Some(String::new())))
        })
        .await
        .map_err(AddError::Internal)??;
        Ok(self.announce_single(info).await)
    }

    pub async fn info(&self, hash: Hash) -> Result<Option<BlobInfo>, StoreError> {
        let store = self.inner.store.clone();
        blocking(move || store.info(&hash))
            .await
            .map_err(StoreError::Db)?
    }

    pub async fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let store = self.inner.store.clone();
        blocking(move || store.list())
            .await
            .map_err(StoreError::Db)?
    }

    pub async fn set_pinned(&self, hash: Hash, pinned: bool) -> Result<BlobInfo, StoreError> {
        let store = self.inner.store.clone();
        let info = blocking(move || store.set_pinned(&hash, pinned))
            .await
            .map_err(StoreError::Db)??;
        if info.kind == BlobKind::Collection {
            // Pinning a collection pins its files.
            let store = self.inner.store.clone();
            blocking(move || -> Result<(), StoreError> {
                let bytes = store.read_to_vec(&hash, crate::collection::MAX_MANIFEST_BYTES)?;
                if let Ok(c) = Collection::from_bytes(&bytes) {
                    for e in c.entries() {
                        if let EntryKind::File { hash, .. } = &e.kind {
                            match store.set_pinned(hash, pinned) {
                                Ok(_) | Err(StoreError::NotFound(_)) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
                Ok(())
            })
            .await
            .map_err(StoreError::Db)??;
        }
        Ok(info)
    }

    pub async fn remove(&self, hash: Hash) -> Result<(), StoreError> {
        let store = self.inner.store.clone();
        blocking(move || store.remove(&hash))
            .await
            .map_err(StoreError::Db)??;
        let _ = self
            .inner
            .net
            .stop_providing(hash.as_bytes().to_vec())
            .await;
        Ok(())
    }

    /// A ticket for content this node has, naming this node as provider.
    pub async fn ticket(&self, hash: Hash) -> Result<Ticket, StoreError> {
        let info = self.info(hash).await?.ok_or(StoreError::NotFound(hash))?;
        let addrs = self
            .inner
            .net
            .listen_addrs()
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?
            .into_iter()
            .filter_map(|a| weft_net::split_peer_id(&a).map(|(t, _)| t))
            .filter(|a| {
                // Unspecified listen addresses cannot be dialed.
                !a.to_string().starts_with("/ip4/0.0.0.0") && !a.to_string().starts_with("/ip6/::/")
            })
            .take(crate::ticket::MAX_ADDRS)
            .collect();
        Ok(Ticket {
            hash,
            kind: info.kind,
            providers: vec![Provider {
                peer: self.inner.net.local_peer_id(),
                addrs,
            }],
        })
    }

    /// Starts a fetch in the background; returns its id.
    pub fn start_fetch(&self, target: FetchTarget, out: Option<PathBuf>) -> u64 {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let progress = Progress::default();
        let cancel = self.inner.cancel.child_token();
        if let Ok(mut fetches) = self.inner.fetches.lock() {
            if fetches.len() >= MAX_FETCHES {
                // Forget the oldest finished fetch.
                if let Some(old) = fetches
                    .iter()
                    .filter(|(_, f)| f.finished.is_some())
                    .min_by_key(|(id, _)| **id)
                    .map(|(id, _)| *id)
                {
                    fetches.remove(&old);
                }
            }
            fetches.insert(
                id,
                FetchEntry {
                    progress: progress.clone(),
                    cancel: cancel.clone(),
                    out: out.clone(),
                    started: Instant::now(),
                    finished: None,
                },
            );
        }
        let this = self.clone();
        tokio::spawn(async move {
            let permit = tokio::select! {
                p = this.inner.running.clone().acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            let Some(_permit) = permit else {
                progress.update_state(FetchState::Cancelled);
                return;
            };
            let result = this
                .inner
                .fetcher
                .fetch(target, progress.clone(), cancel)
                .await;
            if let Ok(outcome) = result {
                match out {
                    Some(out) => {
                        progress.update_state(FetchState::Exporting);
                        let store = this.inner.store.clone();
                        let exported =
                            blocking(move || export(&store, &outcome.hash, outcome.kind, &out))
                                .await
                                .map_err(|e| ExportError::Write {
                                    path: PathBuf::new(),
                                    source: std::io::Error::other(e),
                                })
                                .and_then(|r| r);
                        match exported {
                            Ok(_) => progress.update_state(FetchState::Complete),
                            Err(e) => progress.fail(e.to_string()),
                        }
                    }
                    None => progress.update_state(FetchState::Complete),
                }
            }
            if let Ok(mut fetches) = this.inner.fetches.lock() {
                if let Some(f) = fetches.get_mut(&id) {
                    f.finished = Some(Instant::now());
                }
            }
        });
        id
    }

    pub fn fetch_status(&self, id: u64) -> Option<FetchStatus> {
        let fetches = self.inner.fetches.lock().ok()?;
        let f = fetches.get(&id)?;
        Some(FetchStatus {
            id,
            progress: f.progress.snapshot(),
            out: f.out.clone(),
            elapsed_s: f
                .finished
                .unwrap_or_else(Instant::now)
                .duration_since(f.started)
                .as_secs_f64(),
        })
    }

    /// Cancels a running fetch; false if there is no such fetch.
    pub fn cancel_fetch(&self, id: u64) -> bool {
        let Ok(fetches) = self.inner.fetches.lock() else {
            return false;
        };
        match fetches.get(&id) {
            Some(f) => {
                f.cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// Imports a file, or a folder as a collection. Blocking.
pub fn import_path(store: &Store, path: &Path) -> Result<Added, AddError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            AddError::Missing(path.to_owned())
        } else {
            AddError::Unreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        }
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_file() {
        let info = store.import_file(path, BlobKind::Blob, Some(name))?;
        return Ok(Added {
            hash: info.hash,
            kind: BlobKind::Blob,
            size: info.size,
            name: info.name,
            files: 1,
        });
    }
    if !meta.is_dir() {
        return Err(AddError::Unreadable {
            path: path.to_owned(),
            reason: "not a file or folder".into(),
        });
    }
    let walked = walk_dir(path).map_err(|e| AddError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut entries = Vec::with_capacity(walked.len());
    let mut total = 0u64;
    let mut files = 0u64;
    let file_paths: Vec<PathBuf> = walked
        .iter()
        .filter(|w| matches!(w.kind, WalkKind::File { .. }))
        .map(|w| w.abs.clone())
        .collect();
    let mut imported = Vec::with_capacity(file_paths.len());
    for batch in file_paths.chunks(IMPORT_BATCH) {
        imported.extend(store.import_files(batch)?);
    }
    let mut imported = imported.into_iter();
    for w in walked {
        match w.kind {
            WalkKind::EmptyDir => entries.push(Entry {
                path: w.rel,
                kind: EntryKind::Dir,
            }),
            WalkKind::File { .. } => {
                let info = imported
                    .next()
                    .ok_or_else(|| AddError::Internal("import count mismatch".into()))?;
                total += info.size;
                files += 1;
                entries.push(Entry {
                    path: w.rel,
                    kind: EntryKind::File {
                        hash: info.hash,
                        size: info.size,
                    },
                });
            }
        }
    }
    let collection = Collection::new(entries).map_err(|e| AddError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let manifest = collection.to_bytes();
    let info = store.import_bytes(&manifest, BlobKind::Collection, Some(name))?;
    Ok(Added {
        hash: info.hash,
        kind: BlobKind::Collection,
        size: total,
        name: info.name,
        files,
    })
}

//! The blob store: verified content on disk, indexed in redb.
//!
//! Each blob is two files under `<data dir>/blobs/`: `<hash>.data` holds the
//! bytes (sparse while partial) and `<hash>.obao` the pre-order BLAKE3
//! outboard (the hash tree above 16 KiB chunk groups), so any byte range can
//! be served and verified on its own. The redb index (`index.redb`) records
//! each blob's size, state, pin and last use, and for partial blobs the chunk
//! ranges that were verified.
//!
//! Crash safety: an import writes temp files, fsyncs and renames them, then
//! commits the index. A download writes only verified chunks (bao-tree
//! checks every chunk group against the root before it is written), fsyncs,
//! then records the new ranges in one redb transaction. After a crash the
//! index never claims more than what is on disk; unrecorded data is simply
//! fetched again. Leftover temp files are removed at open.
//!
//! The [`Store`] is a cheap clone around shared state; its methods block
//! (file and database I/O), so async callers use `spawn_blocking`.

mod partial;
mod tables;

pub use partial::PartialTargets;

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bao_tree::{io::outboard::PreOrderOutboard, BaoTree, BlockSize, ChunkNum, ChunkRanges};
use redb::{ReadableDatabase, ReadableTable};
use serde::Serialize;

use crate::{ticket::BlobKind, Hash};
use tables::{EntryRecord, BLOBS, RANGES};

/// Chunk groups of 16 KiB: the unit of verification and of the outboard.
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
/// Largest blob we accept, from a peer or from disk (1 TiB).
pub const MAX_BLOB_SIZE: u64 = 1 << 40;

/// A blob as the store reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: Hash,
    pub size: u64,
    pub kind: BlobKind,
    pub name: Option<String>,
    pub complete: bool,
    pub pinned: bool,
    /// Bytes verified so far (equals `size` when complete).
    pub verified_bytes: u64,
    /// Unix seconds of the last use.
    pub last_used: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("blob store database: {0}")]
    Db(String),
    #[error("blob {0} is not in the store")]
    NotFound(Hash),
    #[error("blob {0} is not complete")]
    Incomplete(Hash),
    #[error("{size} bytes is larger than the largest blob weft accepts ({MAX_BLOB_SIZE} bytes)")]
    TooLarge { size: u64 },
    #[error("the store quota of {quota} bytes is full: {need} more bytes are needed and nothing unpinned can be evicted")]
    QuotaExceeded { need: u64, quota: u64 },
    #[error("blob {hash}: {reason}")]
    Corrupt { hash: Hash, reason: String },
}

impl StoreError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: redb::Database,
    quota: Option<u64>,
    /// Bytes of all blobs in the index (partial ones at full size).
    total: AtomicU64,
    /// Blobs being fetched or served: never evicted.
    in_use: Mutex<HashMap<Hash, usize>>,
    /// Verified ranges not yet durable; its lock also serializes
    /// read-modify-write of range records.
    unsynced: Mutex<HashMap<Hash, partial::Unsynced>>,
}

/// Keeps a blob from eviction while alive.
pub struct UseGuard {
    store: Store,
    hash: Hash,
}

impl Drop for Store {
    fn drop(&mut self) {
        // The last handle: make what was verified in memory durable.
        if Arc::strong_count(&self.inner) == 1 {
            if let Err(e) = self.flush_all() {
                tracing::warn!("could not record verified ranges at close: {e}");
            }
        }
    }
}

impl Drop for UseGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.store.inner.in_use.lock() {
            if let Some(n) = map.get_mut(&self.hash) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.hash);
                }
            }
        }
    }
}

/// Open handles for reading a blob's data and outboard.
pub struct BlobReader {
    pub hash: Hash,
    pub size: u64,
    pub data: File,
    pub outboard: PreOrderOutboard<File>,
    /// Chunk ranges that are verified and may be served.
    pub valid: ChunkRanges,
}

impl BlobReader {
    pub fn tree(&self) -> BaoTree {
        BaoTree::new(self.size, BLOCK_SIZE)
    }

    /// Whether bytes `start..end` are all verified.
    pub fn has_bytes(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let chunks = ChunkRanges::from(ChunkNum::full_chunks(start)..ChunkNum::chunks(end));
        chunks.is_subset(&self.valid)
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, quota: Option<u64>) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let db_path = dir.join("index.redb");
        let db = redb::Database::create(&db_path)
            .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", db_path.display())))?;
        {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(BLOBS).map_err(db_err)?;
            tx.open_table(RANGES).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        // Leftovers of imports interrupted by a crash.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let store = Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                db,
                quota,
                total: AtomicU64::new(0),
                in_use: Mutex::new(HashMap::new()),
                unsynced: Mutex::new(HashMap::new()),
            }),
        };
        let total = store.list()?.iter().map(|b| b.size).sum();
        store.inner.total.store(total, Ordering::Relaxed);
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn quota(&self) -> Option<u64> {
        self.inner.quota
    }

    /// Bytes of all blobs in the store.
    pub fn total_bytes(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Fresh temp paths for an import's data and outboard (removed at open
    /// if a crash leaves them behind).
    fn temp_paths(&self) -> (PathBuf, PathBuf) {
        let suffix: u64 = rand::random();
        let dir = &self.inner.dir;
        (
            dir.join(format!("import-{suffix:016x}.data.tmp")),
            dir.join(format!("import-{suffix:016x}.obao.tmp")),
        )
    }

    fn data_path(&self, hash: &Hash) -> PathBuf {
        self.inner.dir.join(format!("{}.data", hash.to_hex()))
    }

    fn outboard_path(&self, hash: &Hash) -> PathBuf {
        self.inner.dir.join(format!("{}.obao", hash.to_hex()))
    }

    /// Marks a blob as in use (not evictable) until the guard drops.
    pub fn hold(&self, hash: Hash) -> UseGuard {
        if let Ok(mut map) = self.inner.in_use.lock() {
            *map.entry(hash).or_insert(0) += 1;
        }
        UseGuard {
            store: self.clone(),
            hash,
        }
    }

    fn is_in_use(&self, hash: &Hash) -> bool {
        self.inner
            .in_use
            .lock()
            .map(|m| m.contains_key(hash))
            .unwrap_or(true)
    }

    fn record(&self, hash: &Hash) -> Result<Option<EntryRecord>, StoreError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(BLOBS).map_err(db_err)?;
        let Some(value) = table.get(tables::key(hash)).map_err(db_err)? else {
            return Ok(None);
        };
        EntryRecord::decode(value.value())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                hash: *hash,
                reason: "unreadable index entry".into(),
            })
    }

    /// Verified ranges of a partial blob as the index records them.
    fn db_ranges(&self, hash: &Hash) -> Result<ChunkRanges, StoreError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(RANGES).map_err(db_err)?;
        Ok(table
            .get(tables::key(hash))
            .map_err(db_err)?
            .map(|v| tables::decode_ranges(v.value()))
            .unwrap_or_else(ChunkRanges::empty))
    }

    /// Verified ranges of a partial blob, including those not yet durable.
    fn stored_ranges(&self, hash: &Hash) -> Result<ChunkRanges, StoreError> {
        let unsynced = self.lock_unsynced()?;
        let db = self.db_ranges(hash)?;
        Ok(match unsynced.get(hash) {
            Some(pending) => db | pending.ranges(),
            None => db,
        })
    }

    fn lock_unsynced(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<Hash, partial::Unsynced>>, StoreError> {
        self.inner
            .unsynced
            .lock()
            .map_err(|_| StoreError::Db("lock poisoned".into()))
    }

    fn info_from(&self, hash: Hash, rec: &EntryRecord) -> Result<BlobInfo, StoreError> {
        let verified = if rec.complete {
            rec.size
        } else {
            verified_bytes(&self.stored_ranges(&hash)?, rec.size)
        };
        Ok(blob_info(hash, rec, verified))
    }

    pub fn info(&self, hash: &Hash) -> Result<Option<BlobInfo>, StoreError> {
        match self.record(hash)? {
            Some(rec) => Ok(Some(self.info_from(*hash, &rec)?)),
            None => Ok(None),
        }
    }

    pub fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let tx = self.inner.db.begin_read().map_err(db_err)?;
        let blobs = tx.open_table(BLOBS).map_err(db_err)?;
        let ranges = tx.open_table(RANGES).map_err(db_err)?;
        let mut out = Vec::new();
        for item in blobs.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let hash = Hash::from_bytes(k.value());
            let Some(rec) = EntryRecord::decode(v.value()) else {
                tracing::warn!(%hash, "skipping unreadable index entry");
                continue;
            };
            let verified_bytes = if rec.complete {
                rec.size
            } else {
                let r = ranges
                    .get(k.value())
                    .map_err(db_err)?
                    .map(|v| tables::decode_ranges(v.value()))
                    .unwrap_or_else(ChunkRanges::empty);
                verified_bytes(&r, rec.size)
            };
            out.push(BlobInfo {
                hash,
                size: rec.size,
                kind: rec.kind,
                name: rec.name,
                complete: rec.complete,
                pinned: rec.pinned,
                verified_bytes,
                last_used: rec.last_used,
            });
        }
        Ok(out)
    }

    /// Imports a file: hashes it, copies it into the store with its
    /// outboard, and indexes it.
    pub fn import_file(
        &self,
        path: &Path,
        kind: BlobKind,
        name: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        let file = File::open(path).map_err(StoreError::io(path))?;
        let size = file.metadata().map_err(StoreError::io(path))?.len();
        self.import_reader(file, size, kind, name)
    }

    /// Imports bytes held in memory.
    pub fn import_bytes(
        &self,
        bytes: &[u8],
        kind: BlobKind,
        name: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        self.import_reader(bytes, bytes.len() as u64, kind, name)
    }

    /// Imports `size` bytes from `reader`.
    pub fn import_reader(
        &self,
        reader: impl Read,
        size: u64,
        kind: BlobKind,
        name: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        if size > MAX_BLOB_SIZE {
            return Err(StoreError::TooLarge { size });
        }
        self.ensure_space(size, None)?;
        let (tmp_data, tmp_obao) = self.temp_paths();
        let result = self.write_temp(reader, size, &tmp_data, &tmp_obao, true);
        let hash = match result {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_file(&tmp_data);
                let _ = fs::remove_file(&tmp_obao);
                return Err(e);
            }
        };
        let data_path = self.data_path(&hash);
        let obao_path = self.outboard_path(&hash);
        let existing = self.record(&hash)?;
        if existing.as_ref().is_some_and(|r| r.complete) {
            let _ = fs::remove_file(&tmp_data);
            let _ = fs::remove_file(&tmp_obao);
        } else {
            fs::rename(&tmp_obao, &obao_path).map_err(StoreError::io(&obao_path))?;
            fs::rename(&tmp_data, &data_path).map_err(StoreError::io(&data_path))?;
            sync_dir(&self.inner.dir);
        }
        let rec = EntryRecord {
            size,
            complete: true,
            pinned: existing.as_ref().is_some_and(|r| r.pinned),
            kind,
            name: name.or_else(|| existing.as_ref().and_then(|r| r.name.clone())),
            last_used: now(),
        };
        self.write_record(&hash, &rec, true)?;
        if existing.is_none() {
            self.inner.total.fetch_add(size, Ordering::Relaxed);
        }
        self.info_from(hash, &rec)
    }

    /// Imports many files at once: data and outboards are written without
    /// waiting for the disk, then one file-system sync makes them all
    /// durable, then one index transaction records them. Much faster than
    /// one [`Store::import_file`] per file for folders of small files.
    pub fn import_files(&self, files: &[PathBuf]) -> Result<Vec<BlobInfo>, StoreError> {
        let mut sizes = Vec::with_capacity(files.len());
        for path in files {
            let size = fs::metadata(path).map_err(StoreError::io(path))?.len();
            if size > MAX_BLOB_SIZE {
                return Err(StoreError::TooLarge { size });
            }
            sizes.push(size);
        }
        self.ensure_space(sizes.iter().sum(), None)?;
        let mut written: Vec<(Hash, u64, bool)> = Vec::with_capacity(files.len());
        for (path, &size) in files.iter().zip(&sizes) {
            let (tmp_data, tmp_obao) = self.temp_paths();
            let file = File::open(path).map_err(StoreError::io(path))?;
            let hash = match self.write_temp(file, size, &tmp_data, &tmp_obao, false) {
                Ok(h) => h,
                Err(e) => {
                    let _ = fs::remove_file(&tmp_data);
                    let _ = fs::remove_file(&tmp_obao);
                    return Err(e);
                }
            };
            let existing = self.record(&hash)?;
            if existing.as_ref().is_some_and(|r| r.complete)
                || written.iter().any(|(h, _, _)| *h == hash)
            {
                let _ = fs::remove_file(&tmp_data);
                let _ = fs::remove_file(&tmp_obao);
            } else {
                let obao_path = self.outboard_path(&hash);
                let data_path = self.data_path(&hash);
                fs::rename(&tmp_obao, &obao_path).map_err(StoreError::io(&obao_path))?;
                fs::rename(&tmp_data, &data_path).map_err(StoreError::io(&data_path))?;
            }
            written.push((hash, size, existing.is_none()));
        }
        sync_filesystem(&self.inner.dir)?;
        let t = now();
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        let mut infos = Vec::with_capacity(written.len());
        {
            let mut blobs = tx.open_table(BLOBS).map_err(db_err)?;
            let mut ranges = tx.open_table(RANGES).map_err(db_err)?;
            for (hash, size, _) in &written {
                let existing = blobs
                    .get(tables::key(hash))
                    .map_err(db_err)?
                    .and_then(|v| EntryRecord::decode(v.value()));
                let rec = EntryRecord {
                    size: *size,
                    complete: true,
                    pinned: existing.as_ref().is_some_and(|r| r.pinned),
                    kind: existing.as_ref().map(|r| r.kind).unwrap_or(BlobKind::Blob),
                    name: existing.as_ref().and_then(|r| r.name.clone()),
                    last_used: t,
                };
                blobs
                    .insert(tables::key(hash), rec.encode().as_slice())
                    .map_err(db_err)?;
                ranges.remove(tables::key(hash)).map_err(db_err)?;
                infos.push(BlobInfo {
                    hash: *hash,
                    size: *size,
                    kind: rec.kind,
                    name: rec.name,
                    complete: true,
                    pinned: rec.pinned,
                    verified_bytes: *size,
                    last_used: t,
                });
            }
        }
        tx.commit().map_err(db_err)?;
        let mut counted = std::collections::HashSet::new();
        for (hash, size, new) in &written {
            if *new && counted.insert(*hash) {
                self.inner.total.fetch_add(*size, Ordering::Relaxed);
            }
        }
        Ok(infos)
    }

    /// Writes data and outboard to temp files; `sync` waits for the disk.
    fn write_temp(
        &self,
        reader: impl Read,
        size: u64,
        tmp_data: &Path,
        tmp_obao: &Path,
        sync: bool,
    ) -> Result<Hash, StoreError> {
        let mut data_file = File::create(tmp_data).map_err(StoreError::io(tmp_data))?;
        let obao_file = File::create(tmp_obao).map_err(StoreError::io(tmp_obao))?;
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let mut outboard = PreOrderOutboard {
            root: blake3::hash(&[]),
            tree,
            data: obao_file,
        };
        let mut tee = Tee {
            inner: reader.take(size),
            copy: &mut data_file,
            seen: 0,
        };
        let root = bao_tree::io::sync::outboard(&mut tee, tree, &mut outboard)
            .map_err(StoreError::io(tmp_data))?;
        if tee.seen != size {
            return Err(StoreError::Io {
                path: tmp_data.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("expected {size} bytes, read {}", tee.seen),
                ),
            });
        }
        if sync {
            data_file.sync_all().map_err(StoreError::io(tmp_data))?;
            outboard.data.sync_all().map_err(StoreError::io(tmp_obao))?;
        }
        Ok(Hash::from(root))
    }

    fn write_record(
        &self,
        hash: &Hash,
        rec: &EntryRecord,
        clear_ranges: bool,
    ) -> Result<(), StoreError> {
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = tx.open_table(BLOBS).map_err(db_err)?;
            blobs
                .insert(tables::key(hash), rec.encode().as_slice())
                .map_err(db_err)?;
            if clear_ranges {
                let mut ranges = tx.open_table(RANGES).map_err(db_err)?;
                ranges.remove(tables::key(hash)).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    pub fn set_pinned(&self, hash: &Hash, pinned: bool) -> Result<BlobInfo, StoreError> {
        let mut rec = self.record(hash)?.ok_or(StoreError::NotFound(*hash))?;
        rec.pinned = pinned;
        self.write_record(hash, &rec, false)?;
        self.info_from(*hash, &rec)
    }

    /// Records a use, for least-recently-used eviction.
    pub fn touch(&self, hash: &Hash) -> Result<(), StoreError> {
        if let Some(mut rec) = self.record(hash)? {
            let t = now();
            if rec.last_used != t {
                rec.last_used = t;
                self.write_record(hash, &rec, false)?;
            }
        }
        Ok(())
    }

    /// Removes a blob's index entry and files.
    pub fn remove(&self, hash: &Hash) -> Result<(), StoreError> {
        let rec = self.record(hash)?.ok_or(StoreError::NotFound(*hash))?;
        self.lock_unsynced()?.remove(hash);
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = tx.open_table(BLOBS).map_err(db_err)?;
            blobs.remove(tables::key(hash)).map_err(db_err)?;
            let mut ranges = tx.open_table(RANGES).map_err(db_err)?;
            ranges.remove(tables::key(hash)).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        let _ = fs::remove_file(self.data_path(hash));
        let _ = fs::remove_file(self.outboard_path(hash));
        self.inner
            .total
            .fetch_sub(rec.size.min(self.total_bytes()), Ordering::Relaxed);
        Ok(())
    }

    /// Makes room for `need` more bytes under the quota by evicting the least
    /// recently used blobs that are unpinned and not in use. `keep` is never
    /// evicted.
    pub fn ensure_space(&self, need: u64, keep: Option<&Hash>) -> Result<(), StoreError> {
        let Some(quota) = self.inner.quota else {
            return Ok(());
        };
        if self.total_bytes().saturating_add(need) <= quota {
            return Ok(());
        }
        let mut candidates: Vec<BlobInfo> = self
            .list()?
            .into_iter()
            .filter(|b| !b.pinned && Some(&b.hash) != keep && !self.is_in_use(&b.hash))
            .collect();
        candidates.sort_by_key(|b| b.last_used);
        for blob in candidates {
            if self.total_bytes().saturating_add(need) <= quota {
                break;
            }
            tracing::info!(hash = %blob.hash, size = blob.size, "evicting to stay under the store quota");
            self.remove(&blob.hash)?;
        }
        if self.total_bytes().saturating_add(need) <= quota {
            Ok(())
        } else {
            Err(StoreError::QuotaExceeded { need, quota })
        }
    }

    /// Opens a blob for reading, partial or complete.
    pub fn reader(&self, hash: &Hash) -> Result<Option<BlobReader>, StoreError> {
        let Some(rec) = self.record(hash)? else {
            return Ok(None);
        };
        let valid = if rec.complete {
            ChunkRanges::all()
        } else {
            self.stored_ranges(hash)?
        };
        let data_path = self.data_path(hash);
        let obao_path = self.outboard_path(hash);
        let data = File::open(&data_path).map_err(StoreError::io(&data_path))?;
        let obao = File::open(&obao_path).map_err(StoreError::io(&obao_path))?;
        Ok(Some(BlobReader {
            hash: *hash,
            size: rec.size,
            data,
            outboard: PreOrderOutboard {
                root: (*hash).into(),
                tree: BaoTree::new(rec.size, BLOCK_SIZE),
                data: obao,
            },
            valid,
        }))
    }

    /// Reads a whole complete blob into memory, up to `limit` bytes.
    pub fn read_to_vec(&self, hash: &Hash, limit: u64) -> Result<Vec<u8>, StoreError> {
        let rec = self.record(hash)?.ok_or(StoreError::NotFound(*hash))?;
        if !rec.complete {
            return Err(StoreError::Incomplete(*hash));
        }
        if rec.size > limit {
            return Err(StoreError::TooLarge { size: rec.size });
        }
        let path = self.data_path(hash);
        let mut buf = Vec::with_capacity(rec.size as usize);
        File::open(&path)
            .and_then(|f| f.take(rec.size).read_to_end(&mut buf))
            .map_err(StoreError::io(&path))?;
        Ok(buf)
    }

    /// Path of a complete blob's data file (for export by copy).
    pub fn data_file(&self, hash: &Hash) -> Result<PathBuf, StoreError> {
        let rec = self.record(hash)?.ok_or(StoreError::NotFound(*hash))?;
        if !rec.complete {
            return Err(StoreError::Incomplete(*hash));
        }
        Ok(self.data_path(hash))
    }
}

fn blob_info(hash: Hash, rec: &EntryRecord, verified_bytes: u64) -> BlobInfo {
    BlobInfo {
        hash,
        size: rec.size,
        kind: rec.kind,
        name: rec.name.clone(),
        complete: rec.complete,
        pinned: rec.pinned,
        verified_bytes,
        last_used: rec.last_used,
    }
}

/// Bytes covered by `ranges` in a blob of `size` bytes.
pub fn verified_bytes(ranges: &ChunkRanges, size: u64) -> u64 {
    let mut total = 0u64;
    for r in ranges.iter() {
        let (start, end) = match r {
            range_collections::range_set::RangeSetRange::Range(r) => {
                (r.start.to_bytes(), r.end.to_bytes())
            }
            range_collections::range_set::RangeSetRange::RangeFrom(r) => (r.start.to_bytes(), size),
        };
        total += end.min(size).saturating_sub(start.min(size));
    }
    total
}

/// Makes everything written under `dir` durable: one `syncfs` on Linux.
fn sync_filesystem(dir: &Path) -> Result<(), StoreError> {
    let d = File::open(dir).map_err(StoreError::io(dir))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `d` is an open file descriptor for the duration of the call.
        let rc = unsafe { libc::syncfs(d.as_raw_fd()) };
        if rc != 0 {
            return Err(StoreError::io(dir)(io::Error::last_os_error()));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Without syncfs, fall back to a global sync of dirty data.
        d.sync_all().map_err(StoreError::io(dir))
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Reads from `inner` while copying every byte into `copy`.
struct Tee<'a, R> {
    inner: R,
    copy: &'a mut File,
    seen: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        self.seen += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_files_in_one_batch_matches_single_imports() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), None).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let mut paths = Vec::new();
        for (i, content) in [
            b"alpha".to_vec(),
            vec![7u8; 40_000],
            b"alpha".to_vec(),
            Vec::new(),
        ]
        .iter()
        .enumerate()
        {
            let p = src.join(format!("f{i}"));
            fs::write(&p, content).unwrap();
            paths.push(p);
        }
        let infos = store.import_files(&paths).unwrap();
        assert_eq!(infos.len(), 4);
        assert_eq!(infos[0].hash, infos[2].hash, "same bytes, same hash");
        assert_eq!(infos[1].hash, Hash::new(&[7u8; 40_000]));
        assert_eq!(
            store.read_to_vec(&infos[1].hash, u64::MAX).unwrap(),
            vec![7u8; 40_000]
        );
        assert_eq!(
            store.read_to_vec(&infos[3].hash, u64::MAX).unwrap(),
            Vec::<u8>::new()
        );
        // Duplicates are counted once.
        assert_eq!(store.total_bytes(), 5 + 40_000);
        // The batch is consistent with the single-file path.
        let single = store.import_file(&paths[1], BlobKind::Blob, None).unwrap();
        assert_eq!(single.hash, infos[1].hash);
        assert_eq!(store.total_bytes(), 5 + 40_000);
    }

    #[test]
    fn quota_evicts_least_recently_used_unpinned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Some(3000)).unwrap();
        let a = store
            .import_bytes(&[1u8; 1000], BlobKind::Blob, None)
            .unwrap();
        store.set_pinned(&a.hash, true).unwrap();
        let b = store
            .import_bytes(&[2u8; 1000], BlobKind::Blob, None)
            .unwrap();
        let c = store
            .import_bytes(&[3u8; 1000], BlobKind::Blob, None)
            .unwrap();
        let d = store
            .import_bytes(&[4u8; 1000], BlobKind::Blob, None)
            .unwrap();
        assert!(
            store.info(&a.hash).unwrap().is_some(),
            "pinned content stays"
        );
        assert!(store.info(&d.hash).unwrap().is_some());
        let left = [b.hash, c.hash]
            .iter()
            .filter(|h| store.info(h).unwrap().is_some())
            .count();
        assert_eq!(left, 1, "one unpinned blob was evicted");
        assert!(store.total_bytes() <= 3000);
        // Nothing evictable: a pinned-only store refuses new content.
        for h in [b.hash, c.hash, d.hash] {
            if store.info(&h).unwrap().is_some() {
                store.set_pinned(&h, true).unwrap();
            }
        }
        let err = store
            .import_bytes(&[5u8; 1000], BlobKind::Blob, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
    }
}

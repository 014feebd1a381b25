//! Blobs being downloaded: sparse files that fill with verified chunk
//! groups, and the record of which ranges are verified.
//!
//! Durability is batched. Newly verified ranges go into an in-memory
//! overlay that readers see at once (so a downloader serves what it has to
//! other downloaders straight away), and are made durable together: fsync of
//! both files, then one redb commit. That happens when the overlay holds a
//! sixteenth of the blob (bounded to 4–64 MiB), when a second has passed,
//! when the blob becomes complete, and on [`Store::flush`]. A crash loses at
//! most the overlay, which is fetched again; the index never claims a range
//! whose bytes were not synced first.
//!
//! The data file of a large blob is also opened for direct I/O (see
//! [`crate::direct`]); the sink writes aligned runs of verified data
//! through it.

use std::{
    fs::{self, File},
    path::Path,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use bao_tree::{io::outboard::PreOrderOutboard, BaoTree, ChunkNum, ChunkRanges};

use super::{
    blob_info, db_err, now, tables, verified_bytes, BlobInfo, EntryRecord, Store, StoreError,
    BLOBS, BLOCK_SIZE, MAX_BLOB_SIZE, RANGES,
};
use crate::{direct, ticket::BlobKind, Hash};

/// Verified ranges of one blob that are not durable yet.
pub(super) struct Unsynced {
    ranges: ChunkRanges,
    bytes: u64,
    since: Instant,
}

impl Unsynced {
    pub(super) fn ranges(&self) -> ChunkRanges {
        self.ranges.clone()
    }
}

/// The longest verified data stays only in memory.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds on how much verified data may wait for a sync.
const MIN_SYNC_BYTES: u64 = 4 << 20;
const MAX_SYNC_BYTES: u64 = 64 << 20;

fn sync_threshold(size: u64) -> u64 {
    (size / 16).clamp(MIN_SYNC_BYTES, MAX_SYNC_BYTES)
}

/// Files for writing verified chunks of a blob being downloaded.
pub struct PartialTargets {
    pub data: File,
    /// The data file opened for direct I/O, for a large blob on a
    /// filesystem that supports it (see the module docs).
    pub direct: Option<File>,
    pub outboard: PreOrderOutboard<File>,
}

impl Store {
    /// Opens (creating if needed) the files of a blob being downloaded with
    /// the given size. Nothing is indexed until [`Store::add_verified`].
    pub fn partial_targets(&self, hash: &Hash, size: u64) -> Result<PartialTargets, StoreError> {
        if size > MAX_BLOB_SIZE {
            return Err(StoreError::TooLarge { size });
        }
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let data_path = self.data_path(hash);
        let obao_path = self.outboard_path(hash);
        let open = |p: &Path| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(StoreError::io(p))
        };
        let data = open(&data_path)?;
        let obao = open(&obao_path)?;
        if data.metadata().map_err(StoreError::io(&data_path))?.len() != size {
            data.set_len(size).map_err(StoreError::io(&data_path))?;
        }
        if obao.metadata().map_err(StoreError::io(&obao_path))?.len() != tree.outboard_size() {
            obao.set_len(tree.outboard_size())
                .map_err(StoreError::io(&obao_path))?;
        }
        let direct = direct::wanted(size)
            .then(|| direct::open(&data_path, fs::OpenOptions::new().write(true)))
            .flatten();
        Ok(PartialTargets {
            data,
            direct,
            outboard: PreOrderOutboard {
                root: (*hash).into(),
                tree,
                data: obao,
            },
        })
    }

    /// Records chunk ranges of a partial blob as verified (the caller has
    /// written and verified them). The first ranges of a blob create its
    /// index entry durably; later ones are batched (see the module docs).
    /// Returns the blob's state afterwards.
    pub fn add_verified(
        &self,
        hash: &Hash,
        size: u64,
        kind: BlobKind,
        name: Option<String>,
        added: &ChunkRanges,
    ) -> Result<BlobInfo, StoreError> {
        if self.record(hash)?.is_none() {
            // Outside the lock: eviction reads and removes other entries.
            self.ensure_space(size, Some(hash))?;
        }
        let mut unsynced = self.lock_unsynced()?;
        let existing = self.record(hash)?;
        let tree = BaoTree::new(size, BLOCK_SIZE);
        let all = ChunkRanges::from(ChunkNum(0)..tree.chunks());
        let Some(rec) = existing else {
            let ranges = added.clone() & all.clone();
            let rec = EntryRecord {
                size,
                complete: all.is_subset(&ranges),
                pinned: false,
                kind,
                name,
                last_used: now(),
            };
            self.commit_ranges(hash, &rec, &ranges)?;
            self.inner.total.fetch_add(size, Ordering::Relaxed);
            return Ok(self.info_with(*hash, &rec, &ranges));
        };
        if rec.size != size {
            return Err(StoreError::Corrupt {
                hash: *hash,
                reason: format!("size {size} does not match the stored size {}", rec.size),
            });
        }
        if rec.complete {
            unsynced.remove(hash);
            return self.info_from(*hash, &rec);
        }
        let stored = self.db_ranges(hash)?;
        let pending = unsynced.entry(*hash).or_insert_with(|| Unsynced {
            ranges: ChunkRanges::empty(),
            bytes: 0,
            since: Instant::now(),
        });
        let fresh = (added.clone() & all.clone()) - (stored.clone() | pending.ranges.clone());
        pending.bytes += verified_bytes(&fresh, size);
        pending.ranges |= fresh;
        let ranges = stored | pending.ranges.clone();
        let complete = all.is_subset(&ranges);
        let due = complete
            || pending.bytes >= sync_threshold(size)
            || pending.since.elapsed() >= SYNC_INTERVAL;
        let mut rec = rec;
        if name.is_some() && rec.name.is_none() {
            rec.name = name;
        }
        if due {
            unsynced.remove(hash);
            rec.complete = complete;
            rec.last_used = now();
            self.commit_ranges(hash, &rec, &ranges)?;
        }
        Ok(self.info_with(*hash, &rec, &ranges))
    }

    /// Makes the verified ranges of `hash` that are still only in memory
    /// durable. Called when a download stops, for whatever reason.
    pub fn flush(&self, hash: &Hash) -> Result<(), StoreError> {
        let mut unsynced = self.lock_unsynced()?;
        let Some(pending) = unsynced.remove(hash) else {
            return Ok(());
        };
        let Some(mut rec) = self.record(hash)? else {
            return Ok(());
        };
        if rec.complete {
            return Ok(());
        }
        let ranges = self.db_ranges(hash)? | pending.ranges;
        rec.last_used = now();
        self.commit_ranges(hash, &rec, &ranges)
    }

    /// [`Store::flush`] for every blob.
    pub fn flush_all(&self) -> Result<(), StoreError> {
        let hashes: Vec<Hash> = self.lock_unsynced()?.keys().copied().collect();
        for hash in hashes {
            self.flush(&hash)?;
        }
        Ok(())
    }

    /// Syncs a blob's files, then records `rec` and `ranges` in one commit.
    fn commit_ranges(
        &self,
        hash: &Hash,
        rec: &EntryRecord,
        ranges: &ChunkRanges,
    ) -> Result<(), StoreError> {
        for path in [self.data_path(hash), self.outboard_path(hash)] {
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(StoreError::io(&path))?;
        }
        let tx = self.inner.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = tx.open_table(BLOBS).map_err(db_err)?;
            blobs
                .insert(tables::key(hash), rec.encode().as_slice())
                .map_err(db_err)?;
            let mut table = tx.open_table(RANGES).map_err(db_err)?;
            if rec.complete {
                table.remove(tables::key(hash)).map_err(db_err)?;
            } else {
                table
                    .insert(tables::key(hash), tables::encode_ranges(ranges).as_slice())
                    .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn info_with(&self, hash: Hash, rec: &EntryRecord, ranges: &ChunkRanges) -> BlobInfo {
        let verified = if rec.complete {
            rec.size
        } else {
            verified_bytes(ranges, rec.size)
        };
        blob_info(hash, rec, verified)
    }

    /// Removes the files of a blob that has no index entry (a download whose
    /// first response failed verification).
    pub fn discard_unindexed(&self, hash: &Hash) -> Result<(), StoreError> {
        if self.record(hash)?.is_none() {
            let _ = fs::remove_file(self.data_path(hash));
            let _ = fs::remove_file(self.outboard_path(hash));
        }
        Ok(())
    }

    /// Verified chunk ranges and size of a blob, if present.
    pub fn valid_ranges(&self, hash: &Hash) -> Result<Option<(u64, ChunkRanges)>, StoreError> {
        let Some(rec) = self.record(hash)? else {
            return Ok(None);
        };
        let tree = BaoTree::new(rec.size, BLOCK_SIZE);
        let ranges = if rec.complete {
            ChunkRanges::from(ChunkNum(0)..tree.chunks())
        } else {
            self.stored_ranges(hash)?
        };
        Ok(Some((rec.size, ranges)))
    }
}

//! All redb tables of the blob store, with versioned names, and the
//! encodings of their values.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::{ticket::BlobKind, Hash};

/// hash → [`EntryRecord`] (JSON).
pub(super) const BLOBS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("blobs-v1");
/// hash → verified chunk ranges of a partial blob ([`encode_ranges`]).
pub(super) const RANGES: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("ranges-v1");

/// What the index keeps per blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EntryRecord {
    pub(super) size: u64,
    pub(super) complete: bool,
    pub(super) pinned: bool,
    pub(super) kind: BlobKind,
    #[serde(default)]
    pub(super) name: Option<String>,
    /// Unix seconds of the last import, fetch or read.
    pub(super) last_used: u64,
}

impl EntryRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Chunk ranges as little-endian (start, end) pairs of chunk numbers.
pub(super) fn encode_ranges(ranges: &bao_tree::ChunkRanges) -> Vec<u8> {
    let mut out = Vec::new();
    for r in ranges.iter() {
        let (start, end) = match r {
            range_collections::range_set::RangeSetRange::Range(r) => (r.start.0, r.end.0),
            range_collections::range_set::RangeSetRange::RangeFrom(r) => (r.start.0, u64::MAX),
        };
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
    out
}

pub(super) fn decode_ranges(bytes: &[u8]) -> bao_tree::ChunkRanges {
    let mut ranges = bao_tree::ChunkRanges::empty();
    for pair in bytes.chunks_exact(16) {
        let mut s = [0u8; 8];
        let mut e = [0u8; 8];
        s.copy_from_slice(&pair[..8]);
        e.copy_from_slice(&pair[8..]);
        let (start, end) = (u64::from_le_bytes(s), u64::from_le_bytes(e));
        if end == u64::MAX {
            ranges |= bao_tree::ChunkRanges::from(bao_tree::ChunkNum(start)..);
        } else if start < end {
            ranges |=
                bao_tree::ChunkRanges::from(bao_tree::ChunkNum(start)..bao_tree::ChunkNum(end));
        }
    }
    ranges
}

pub(super) fn key(hash: &Hash) -> [u8; 32] {
    *hash.as_bytes()
}

#[cfg(test)]
mod tests {
    use bao_tree::{ChunkNum, ChunkRanges};

    #[test]
    fn ranges_round_trip() {
        let r = ChunkRanges::from(ChunkNum(0)..ChunkNum(10))
            | ChunkRanges::from(ChunkNum(20)..ChunkNum(30))
            | ChunkRanges::from(ChunkNum(100)..);
        assert_eq!(super::decode_ranges(&super::encode_ranges(&r)), r);
        assert_eq!(super::decode_ranges(&[1, 2, 3]), ChunkRanges::empty());
    }
}

//! Writes a response's verified items into a partial blob's files.
//!
//! bao-tree yields one item per 16 KiB chunk group and one per 64-byte
//! parent pair, each only after it verified. Writing each as its own
//! positioned write costs a syscall per item (about 130,000 per GiB), so
//! adjacent items are gathered into writes of up to 1 MiB.

use std::{
    io::{self, Read},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use bao_tree::{
    io::{
        sync::{DecodeResponseIter, WriteAt},
        BaoContentItem, DecodeError, Leaf, Parent,
    },
    ChunkRanges,
};

use crate::store::PartialTargets;

/// Largest write the sink gathers.
const GATHER: usize = 1 << 20;

/// Gathers writes at adjacent positions into one.
struct Gather<W> {
    inner: W,
    start: u64,
    buf: Vec<u8>,
}

impl<W: WriteAt> Gather<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            start: 0,
            buf: Vec::new(),
        }
    }

    fn write(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        let adjacent = self.start + self.buf.len() as u64 == pos;
        if !self.buf.is_empty() && (!adjacent || self.buf.len() + data.len() > GATHER) {
            self.finish()?;
        }
        if self.buf.is_empty() {
            self.start = pos;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes out what is gathered.
    fn finish(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all_at(self.start, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Decodes a response for `ranges` from `encoded`, verifying it against the
/// blob's root, and writes each verified item into `targets`. `progress`
/// counts data bytes as they verify.
pub(super) fn decode_into(
    encoded: impl Read,
    ranges: &ChunkRanges,
    targets: PartialTargets,
    progress: &Arc<AtomicU64>,
) -> Result<(), DecodeError> {
    let outboard = targets.outboard;
    let tree = outboard.tree;
    let items = DecodeResponseIter::new(outboard.root, tree, encoded, ranges);
    let mut data = Gather::new(targets.data);
    let mut hashes = Gather::new(outboard.data);
    for item in items {
        match item? {
            BaoContentItem::Parent(Parent { node, pair }) => {
                if let Some(offset) = tree.pre_order_offset(node) {
                    let mut bytes = [0u8; 64];
                    bytes[..32].copy_from_slice(pair.0.as_bytes());
                    bytes[32..].copy_from_slice(pair.1.as_bytes());
                    hashes.write(offset * 64, &bytes)?;
                }
            }
            BaoContentItem::Leaf(Leaf { offset, data: leaf }) => {
                data.write(offset, &leaf)?;
                progress.fetch_add(leaf.len() as u64, Ordering::Relaxed);
            }
        }
    }
    data.finish()?;
    hashes.finish()?;
    Ok(())
}

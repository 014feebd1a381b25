//! Writes a response's verified items into a partial blob's files.
//!
//! bao-tree yields one item per 16 KiB chunk group and one per 64-byte
//! parent pair, each only after it verified. Writing each as its own
//! positioned write costs a syscall per item (about 130,000 per GiB), so
//! adjacent items are gathered into writes of up to 1 MiB. The gather
//! buffer is page-aligned, so a gathered run of a large blob's data that
//! starts and ends on a 4 KiB boundary goes out through the direct-I/O file
//! (see `store::partial`); anything else, or any write the filesystem
//! refuses as unaligned, goes through the ordinary file.

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::FileExt,
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

use crate::{
    direct::{self, AlignedBuf},
    store::PartialTargets,
};

/// Largest write the sink gathers.
const GATHER: usize = 1 << 20;

/// Gathers writes at adjacent positions into one.
struct Gather<W> {
    inner: W,
    /// The same file opened for direct I/O, if any.
    direct: Option<File>,
    start: u64,
    buf: AlignedBuf,
}

impl<W: WriteAt> Gather<W> {
    fn new(inner: W, direct: Option<File>) -> Self {
        Self {
            inner,
            direct,
            start: 0,
            buf: AlignedBuf::new(GATHER),
        }
    }

    fn write(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        if data.len() > GATHER {
            self.finish()?;
            return self.inner.write_all_at(pos, data);
        }
        let adjacent = self.start + self.buf.len as u64 == pos;
        if self.buf.len > 0 && (!adjacent || self.buf.len + data.len() > GATHER) {
            self.finish()?;
        }
        if self.buf.len == 0 {
            self.start = pos;
        }
        self.buf.push(data);
        Ok(())
    }

    /// Writes out what is gathered.
    fn finish(&mut self) -> io::Result<()> {
        if self.buf.len == 0 {
            return Ok(());
        }
        let aligned = self.start.is_multiple_of(direct::ALIGN as u64)
            && self.buf.len.is_multiple_of(direct::ALIGN);
        let mut written = false;
        if let (true, Some(file)) = (aligned, &self.direct) {
            match FileExt::write_all_at(file, self.buf.bytes(), self.start) {
                Ok(()) => written = true,
                // Alignment rules stricter than ours: no direct I/O then.
                Err(e) if direct::refused(&e) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        if !written {
            self.inner.write_all_at(self.start, self.buf.bytes())?;
        }
        self.buf.len = 0;
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
    let mut data = Gather::new(targets.data, targets.direct);
    let mut hashes = Gather::new(outboard.data, None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{protocol, store::Store, BlobKind};
    use bao_tree::io::sync::encode_ranges_validated;

    /// A large blob (direct I/O where the filesystem has it) with a tail
    /// that is not 4 KiB-aligned: every byte lands where it belongs.
    #[test]
    fn a_large_blob_decodes_into_its_file_exactly() {
        let size = direct::MIN_SIZE as usize + 5_000;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open(&dir.path().join("a"), None).unwrap();
        let hash = source
            .import_bytes(&data, BlobKind::Blob, None)
            .unwrap()
            .hash;
        let reader = source.reader(&hash).unwrap().unwrap();
        let all = protocol::all_chunks(size as u64);
        let mut encoded = Vec::new();
        encode_ranges_validated(&reader.data, &reader.outboard, &all, &mut encoded).unwrap();

        let dest = Store::open(&dir.path().join("b"), None).unwrap();
        let targets = dest.partial_targets(&hash, size as u64).unwrap();
        eprintln!("direct I/O here: {}", targets.direct.is_some());
        let written = targets.data.try_clone().unwrap();
        let progress = Arc::new(AtomicU64::new(0));
        decode_into(&encoded[..], &all, targets, &progress).unwrap();
        assert_eq!(progress.load(Ordering::Relaxed), size as u64);
        let mut back = vec![0u8; size];
        written.read_exact_at(&mut back, 0).unwrap();
        assert!(back == data, "the decoded file differs from the blob");
    }
}

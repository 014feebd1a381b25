//! Trustless ranges: `GET /blob/{hash}?format=bao[&bytes=START-END]`.
//!
//! The response proves itself against the hash alone, so a client need not
//! trust this node. `Content-Type: application/x-bao`; the body is:
//!
//! ```text
//! u64 LE   size of the blob in bytes
//! u16 LE   n, the number of chunk ranges that follow
//! n × (u64 LE start, u64 LE end)
//!          the chunk ranges encoded: 1 KiB chunk numbers, end exclusive,
//!          sorted and disjoint, already rounded out to whole 16 KiB chunk
//!          groups (see `weft_blobs::protocol::normalize`)
//! ...      the BLAKE3/bao encoding of those ranges, pre-order, with
//!          16 KiB chunk groups: exactly what
//!          `bao_tree::io::sync::encode_ranges_validated` writes
//! ```
//!
//! `START-END` are bytes, END inclusive as in HTTP ranges (`START-` runs to
//! the end); without `bytes` the whole blob is encoded. A range past the
//! end becomes the last chunk group.
//!
//! To verify, a client that knows only the hash builds
//! `BaoTree::new(size, BlockSize::from_chunk_log(4))` and the range set,
//! then decodes the rest with `bao_tree::io::sync::DecodeResponseIter`
//! (or `decode_ranges`) against the root hash; every parent and leaf is
//! checked, and any tampering is an error. The size in the header is only
//! proven when the ranges include the last chunk group (as the whole blob
//! does); otherwise a lying server could claim another size, which shows
//! up only when the last group is requested.
//!
//! Missing data is fetched from the swarm first. The encoding is then
//! written by a blocking task into a small bounded channel that feeds the
//! response body; `Content-Length` is computed in advance, so a failure
//! midway truncates the response visibly.

use std::io::{self, Write};

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use bao_tree::{io::sync::truncate_ranges, iter::BaoChunk, BaoTree, ChunkNum, ChunkRanges};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_blobs::{
    protocol::normalize,
    store::{BLOCK_SIZE, MAX_BLOB_SIZE},
};

use super::{
    source::{blocking, Source},
    ApiError, IMMUTABLE,
};

/// Size of the pieces the encoder hands to the response body.
const PIECE: usize = 64 * 1024;
/// Pieces buffered between the encoder and the client.
const PIECES_BUFFERED: usize = 4;

/// Parses `START-END` (END inclusive) or `START-`.
pub(super) fn parse_bytes(text: &str) -> Result<(u64, Option<u64>), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_range",
            format!("bytes={text:?}: expected START-END (END inclusive) or START-"),
        )
    };
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok((start, end))
}

/// The chunk ranges sent for bytes `start..=end` of a blob of `size` bytes.
pub(super) fn chunk_ranges(bytes: Option<(u64, Option<u64>)>, size: u64) -> ChunkRanges {
    let wanted = match bytes {
        None => ChunkRanges::all(),
        Some((start, end)) => {
            // Capped so chunk arithmetic cannot overflow; still past any end.
            let start = start.min(MAX_BLOB_SIZE);
            let end = end.map_or(MAX_BLOB_SIZE, |e| e.min(MAX_BLOB_SIZE)) + 1;
            ChunkRanges::from(ChunkNum::full_chunks(start)..ChunkNum::chunks(end))
        }
    };
    normalize(&wanted, size)
}

/// `(start, end)` chunk pairs of bounded ranges.
fn pairs(ranges: &ChunkRanges) -> Vec<(u64, u64)> {
    ranges
        .boundaries()
        .chunks(2)
        .filter_map(|pair| match pair {
            [start, end] => Some((start.0, end.0)),
            _ => None,
        })
        .collect()
}

/// The body's header: size, range count, ranges.
fn header_bytes(size: u64, pairs: &[(u64, u64)]) -> Result<Vec<u8>, ApiError> {
    let count =
        u16::try_from(pairs.len()).map_err(|_| ApiError::internal("too many ranges to encode"))?;
    let mut out = Vec::with_capacity(10 + 16 * pairs.len());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for (start, end) in pairs {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&end.to_le_bytes());
    }
    Ok(out)
}

/// Bytes `encode_ranges_validated` writes for `ranges`.
fn encoded_len(tree: BaoTree, ranges: &ChunkRanges) -> u64 {
    let ranges = truncate_ranges(ranges, tree.size());
    tree.ranges_pre_order_chunks_iter_ref(ranges, 0)
        .map(|item| match item {
            BaoChunk::Parent { .. } => 64,
            BaoChunk::Leaf { size, .. } => size as u64,
        })
        .sum()
}

/// Answers a bao request for an opened blob.
pub(super) async fn respond(
    source: Source,
    bytes: Option<(u64, Option<u64>)>,
    head_only: bool,
    cancel: &CancellationToken,
) -> Result<Response, ApiError> {
    let size = source.size;
    let ranges = chunk_ranges(bytes, size);
    let pairs = pairs(&ranges);
    let header = header_bytes(size, &pairs)?;
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let length = header.len() as u64 + encoded_len(tree, &ranges);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-bao")
        .header(header::CONTENT_LENGTH, length)
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    if head_only {
        return response
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    for (start, end) in &pairs {
        let start = start.saturating_mul(1024).min(size);
        let end = end.saturating_mul(1024).min(size);
        source.ensure_all(start..end, cancel).await?;
    }
    source.touch();
    let store = source.store().clone();
    let hash = source.hash;
    let reader = blocking(move || store.reader(&hash))
        .await?
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("blob {hash} is no longer in the store")))?;
    if !ranges.is_subset(&reader.valid) {
        return Err(ApiError::internal(format!(
            "blob {hash}: the requested ranges are not all verified"
        )));
    }
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(PIECES_BUFFERED);
    tokio::task::spawn_blocking(move || {
        // Keeps the blob from eviction until the encoding is written.
        let _source = source;
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: header,
        };
        let result = bao_tree::io::sync::encode_ranges_validated(
            &reader.data,
            &reader.outboard,
            &ranges,
            &mut writer,
        )
        .map_err(|e| io::Error::other(format!("cannot encode blob {hash}: {e:?}")))
        .and_then(|()| writer.flush());
        if let Err(e) = result {
            tracing::debug!("bao response ends early: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    response
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Sends what is written, in pieces, into a bounded channel (blocking).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes() {
        assert_eq!(parse_bytes("0-9").unwrap(), (0, Some(9)));
        assert_eq!(parse_bytes("5-").unwrap(), (5, None));
        for bad in ["", "-5", "a-b", "9-1", "1", "1-2-3"] {
            assert_eq!(parse_bytes(bad).unwrap_err().code, "bad_range", "{bad}");
        }
    }

    #[test]
    fn ranges_round_to_groups() {
        let size = 100 * 1024 + 5; // 101 chunks
        let r = chunk_ranges(Some((20_000, Some(20_001))), size);
        assert_eq!(pairs(&r), vec![(16, 32)]);
        assert_eq!(pairs(&chunk_ranges(None, size)), vec![(0, 101)]);
        assert_eq!(
            pairs(&chunk_ranges(Some((1 << 50, None)), size)),
            vec![(96, 101)]
        );
        assert_eq!(
            pairs(&chunk_ranges(Some((0, Some(u64::MAX))), size)),
            vec![(0, 101)]
        );
        assert_eq!(pairs(&chunk_ranges(None, 0)), vec![(0, 1)]);
        let header = header_bytes(size, &[(16, 32)]).unwrap();
        assert_eq!(header.len(), 8 + 2 + 16);
        assert_eq!(&header[..8], &size.to_le_bytes());
    }
}

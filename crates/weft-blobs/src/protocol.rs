//! The blob protocol, `/weft/blobs/1.0.0`, over one libp2p stream per
//! request.
//!
//! Request: a length-prefixed frame naming a hash and chunk ranges.
//! Response: a status byte; if found, the blob's size and the chunk ranges
//! the provider will send (what it has of those asked for), then the bao
//! encoding of exactly those ranges: the chunk groups plus the parent hashes
//! that prove them against the root. The requester knows the root (it is
//! the content id) and verifies every chunk group before writing it.
//!
//! The size is proven by the last chunk: a requester that does not know the
//! size yet includes a range past the end, which both sides read as "the
//! last chunk group", so a false size fails verification.
//!
//! Everything a peer sends is bounded: the request frame, the range count,
//! the claimed size.

use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use futures::{AsyncReadExt, AsyncWriteExt};
use range_collections::range_set::RangeSetRange;
use weft_net::StreamProtocol;

use crate::{
    store::{BLOCK_SIZE, MAX_BLOB_SIZE},
    Hash,
};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/blobs/1.0.0");
const VERSION: u8 = 1;
/// Most ranges in one request.
pub const MAX_RANGES: usize = 256;
/// Largest request frame.
const MAX_REQUEST_LEN: usize = 2 + 32 + 2 + MAX_RANGES * 16;

const STATUS_FOUND: u8 = 0;
const STATUS_NOT_FOUND: u8 = 1;
const STATUS_BUSY: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("peer claims a size of {0} bytes, over the limit")]
    SizeTooLarge(u64),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// The verified encoding of chunk ranges.
    Data = 0,
    /// Only which chunk ranges the provider has (a header, no data).
    Have = 1,
    /// Other peers that recently asked this provider for the same blob
    /// (peer exchange, so downloaders find and feed each other).
    Peers = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: RequestKind,
    pub hash: Hash,
    pub ranges: ChunkRanges,
}

/// Most peers in a peer-exchange answer, and addresses per peer.
pub const MAX_PEX_PEERS: usize = 32;
pub const MAX_PEX_ADDRS: usize = 8;

/// Encodes a peer-exchange answer: count, then per peer its id and addresses.
pub fn encode_peers(peers: &[(weft_net::PeerId, Vec<weft_net::Multiaddr>)]) -> Vec<u8> {
    let mut out = vec![STATUS_FOUND];
    let peers = &peers[..peers.len().min(MAX_PEX_PEERS)];
    out.push(peers.len() as u8);
    for (peer, addrs) in peers {
        let id = peer.to_bytes();
        out.push(id.len() as u8);
        out.extend_from_slice(&id);
        let addrs = &addrs[..addrs.len().min(MAX_PEX_ADDRS)];
        out.push(addrs.len() as u8);
        for a in addrs {
            let bytes = a.to_vec();
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Reads a peer-exchange answer, bounded and strict.
pub async fn read_peers<R: futures::AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<(weft_net::PeerId, Vec<weft_net::Multiaddr>)>, ProtocolError> {
    let mut b = [0u8; 1];
    reader.read_exact(&mut b).await?;
    match b[0] {
        STATUS_FOUND => {}
        STATUS_NOT_FOUND | STATUS_BUSY => return Ok(vec![]),
        _ => return Err(ProtocolError::Malformed("unknown status")),
    }
    reader.read_exact(&mut b).await?;
    let count = b[0] as usize;
    if count > MAX_PEX_PEERS {
        return Err(ProtocolError::Malformed("too many peers"));
    }
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        reader.read_exact(&mut b).await?;
        let mut id = vec![0u8; b[0] as usize];
        reader.read_exact(&mut id).await?;
        let peer = weft_net::PeerId::from_bytes(&id)
            .map_err(|_| ProtocolError::Malformed("bad peer id"))?;
        reader.read_exact(&mut b).await?;
        let n = b[0] as usize;
        if n > MAX_PEX_ADDRS {
            return Err(ProtocolError::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let mut len = [0u8; 2];
            reader.read_exact(&mut len).await?;
            let len = u16::from_le_bytes(len) as usize;
            if len > 1024 {
                return Err(ProtocolError::Malformed("address too long"));
            }
            let mut bytes = vec![0u8; len];
            reader.read_exact(&mut bytes).await?;
            let addr = weft_net::Multiaddr::try_from(bytes)
                .map_err(|_| ProtocolError::Malformed("bad address"))?;
            addrs.push(addr);
        }
        peers.push((peer, addrs));
    }
    Ok(peers)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseHeader {
    Found { size: u64, ranges: ChunkRanges },
    NotFound,
    Busy,
}

/// A range as (start, end) chunk numbers; `end == u64::MAX` is open.
fn range_pairs(ranges: &ChunkRanges) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .map(|r| match r {
            RangeSetRange::Range(r) => (r.start.0, r.end.0),
            RangeSetRange::RangeFrom(r) => (r.start.0, u64::MAX),
        })
        .collect()
}

fn encode_ranges(out: &mut Vec<u8>, ranges: &ChunkRanges) -> Result<(), ProtocolError> {
    let pairs = range_pairs(ranges);
    if pairs.len() > MAX_RANGES {
        return Err(ProtocolError::Malformed("too many ranges"));
    }
    out.extend_from_slice(&(pairs.len() as u16).to_le_bytes());
    for (s, e) in pairs {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    Ok(())
}

fn decode_ranges(bytes: &[u8]) -> Result<(ChunkRanges, usize), ProtocolError> {
    let count = bytes
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
        .ok_or(ProtocolError::Malformed("truncated range count"))?;
    if count > MAX_RANGES {
        return Err(ProtocolError::Malformed("too many ranges"));
    }
    let body = bytes
        .get(2..2 + count * 16)
        .ok_or(ProtocolError::Malformed("truncated ranges"))?;
    let mut ranges = ChunkRanges::empty();
    let mut last_end = 0u64;
    for (i, pair) in body.chunks_exact(16).enumerate() {
        let mut s = [0u8; 8];
        let mut e = [0u8; 8];
        s.copy_from_slice(&pair[..8]);
        e.copy_from_slice(&pair[8..]);
        let (start, end) = (u64::from_le_bytes(s), u64::from_le_bytes(e));
        if start >= end || (i > 0 && start <= last_end) {
            return Err(ProtocolError::Malformed("ranges not sorted and disjoint"));
        }
        last_end = end;
        if end == u64::MAX {
            ranges |= ChunkRanges::from(ChunkNum(start)..);
        } else {
            ranges |= ChunkRanges::from(ChunkNum(start)..ChunkNum(end));
        }
    }
    Ok((ranges, 2 + count * 16))
}

impl Request {
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut body = vec![VERSION, self.kind as u8];
        body.extend_from_slice(self.hash.as_bytes());
        encode_ranges(&mut body, &self.ranges)?;
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a request body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let version = *body
            .first()
            .ok_or(ProtocolError::Malformed("empty request"))?;
        if version != VERSION {
            return Err(ProtocolError::Version(version));
        }
        let kind = match body.get(1) {
            Some(0) => RequestKind::Data,
            Some(1) => RequestKind::Have,
            Some(2) => RequestKind::Peers,
            Some(_) => return Err(ProtocolError::Malformed("unknown request kind")),
            None => return Err(ProtocolError::Malformed("truncated request")),
        };
        let hash: [u8; 32] = body
            .get(2..34)
            .and_then(|h| h.try_into().ok())
            .ok_or(ProtocolError::Malformed("truncated hash"))?;
        let (ranges, used) = decode_ranges(&body[34..])?;
        if 34 + used != body.len() {
            return Err(ProtocolError::Malformed("trailing bytes"));
        }
        Ok(Self {
            kind,
            hash: Hash::from_bytes(hash),
            ranges,
        })
    }

    /// Reads one length-prefixed request.
    pub async fn read<R: futures::AsyncRead + Unpin>(
        reader: &mut R,
    ) -> Result<Self, ProtocolError> {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).await?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_REQUEST_LEN {
            return Err(ProtocolError::Malformed("request too large"));
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).await?;
        Self::decode(&body)
    }
}

impl ResponseHeader {
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        match self {
            ResponseHeader::Found { size, ranges } => {
                out.push(STATUS_FOUND);
                out.extend_from_slice(&size.to_le_bytes());
                encode_ranges(&mut out, ranges)?;
            }
            ResponseHeader::NotFound => out.push(STATUS_NOT_FOUND),
            ResponseHeader::Busy => out.push(STATUS_BUSY),
        }
        Ok(out)
    }

    pub async fn read<R: futures::AsyncRead + Unpin>(
        reader: &mut R,
    ) -> Result<Self, ProtocolError> {
        let mut status = [0u8; 1];
        reader.read_exact(&mut status).await?;
        match status[0] {
            STATUS_FOUND => {
                let mut size = [0u8; 8];
                reader.read_exact(&mut size).await?;
                let size = u64::from_le_bytes(size);
                if size > MAX_BLOB_SIZE {
                    return Err(ProtocolError::SizeTooLarge(size));
                }
                let mut count = [0u8; 2];
                reader.read_exact(&mut count).await?;
                let n = u16::from_le_bytes(count) as usize;
                if n > MAX_RANGES {
                    return Err(ProtocolError::Malformed("too many ranges"));
                }
                let mut buf = vec![0u8; 2 + n * 16];
                buf[..2].copy_from_slice(&count);
                reader.read_exact(&mut buf[2..]).await?;
                let (ranges, _) = decode_ranges(&buf)?;
                Ok(ResponseHeader::Found { size, ranges })
            }
            STATUS_NOT_FOUND => Ok(ResponseHeader::NotFound),
            STATUS_BUSY => Ok(ResponseHeader::Busy),
            _ => Err(ProtocolError::Malformed("unknown status")),
        }
    }

    pub async fn write<W: futures::AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
    ) -> Result<(), ProtocolError> {
        writer.write_all(&self.encode()?).await?;
        Ok(())
    }
}

/// All chunks of a blob of `size` bytes.
pub fn all_chunks(size: u64) -> ChunkRanges {
    ChunkRanges::from(ChunkNum(0)..BaoTree::new(size, BLOCK_SIZE).chunks())
}

/// A range that asks for the last chunk group, whatever the size.
pub fn last_chunk() -> ChunkRanges {
    ChunkRanges::from(ChunkNum(u64::MAX - 1)..)
}

/// What a request for `ranges` means for a blob of `size` bytes: clamped to
/// the blob, anything past the end becomes the last chunk group, and
/// everything is rounded out to whole chunk groups (the unit that can be
/// proven).
pub fn normalize(ranges: &ChunkRanges, size: u64) -> ChunkRanges {
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let chunks = tree.chunks();
    let all = ChunkRanges::from(ChunkNum(0)..chunks);
    let mut r = ranges.clone() & all.clone();
    let beyond = ranges.clone() - all.clone();
    if !beyond.is_empty() && chunks.0 > 0 {
        r |= ChunkRanges::from(ChunkNum(chunks.0 - 1)..chunks);
    }
    if chunks.0 == 0 && !ranges.is_empty() {
        // An empty blob: the single (empty) chunk proves the size.
        return ChunkRanges::from(ChunkNum(0)..ChunkNum(1));
    }
    bao_tree::io::round_up_to_chunks_groups(r, BLOCK_SIZE) & all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_strictness() {
        let req = Request {
            kind: RequestKind::Data,
            hash: Hash::from_bytes([7; 32]),
            ranges: ChunkRanges::from(ChunkNum(0)..ChunkNum(16)) | last_chunk(),
        };
        let bytes = req.encode().unwrap();
        assert_eq!(Request::decode(&bytes[4..]).unwrap(), req);
        for cut in 0..bytes.len() - 4 {
            assert!(Request::decode(&bytes[4..4 + cut]).is_err());
        }
        let mut trailing = bytes[4..].to_vec();
        trailing.push(0);
        assert!(Request::decode(&trailing).is_err());
    }

    #[test]
    fn normalize_rounds_and_maps_past_end_to_last_group() {
        let size = 100 * 1024 + 5; // 101 chunks -> 7 groups of 16
        let n = normalize(&last_chunk(), size);
        assert_eq!(n, ChunkRanges::from(ChunkNum(96)..ChunkNum(101)));
        let n = normalize(&ChunkRanges::from(ChunkNum(3)..ChunkNum(5)), size);
        assert_eq!(n, ChunkRanges::from(ChunkNum(0)..ChunkNum(16)));
        assert_eq!(normalize(&ChunkRanges::all(), size), all_chunks(size));
    }
}

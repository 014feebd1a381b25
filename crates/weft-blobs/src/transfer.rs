//! Both ends of one blob request: [`serve`] answers requests from peers out
//! of the store; [`fetch_ranges`] asks one peer for chunk ranges and writes
//! what verifies into the store.
//!
//! The bao encoding and decoding are synchronous (bao-tree's `io::sync`), so
//! they run on blocking threads, bridged to the libp2p stream with
//! bounded channels pumped by async tasks with idle timeouts, so a
//! stalled peer never pins a thread. Serving is bounded by a semaphore: a peer that finds no
//! free slot gets a `Busy` answer instead of a queue.

mod pump;
mod sink;

pub(crate) use pump::AbortOnDrop;
use pump::{pump_in, ChannelReader, ChannelWriter, IDLE_TIMEOUT, PUMP_CHUNKS};

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bao_tree::{io::sync::encode_ranges_validated, ChunkRanges};
use futures::{AsyncWriteExt, StreamExt};
use tokio::sync::Semaphore;
use weft_net::{IncomingStreams, NetworkHandle, PeerId, Stream};

use crate::{
    protocol::{self, normalize, ProtocolError, Request, RequestKind, ResponseHeader, PROTOCOL},
    store::{Store, StoreError},
    ticket::BlobKind,
    Hash,
};

/// Most requests served at once.
pub const MAX_CONCURRENT_SERVES: usize = 32;
/// Time a peer gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a provider gets to answer with a header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// A deliberate fault in the blob server, for tests of bad providers. Off
/// unless a node is started with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Flip bits in the encoded data sent to peers.
    CorruptData,
}

/// Counters of the serving side.
#[derive(Debug, Default)]
pub struct ServeStats {
    pub bytes_sent: AtomicU64,
    pub requests: AtomicU64,
    pub busy: AtomicU64,
}

/// Peers that recently asked for each blob: the material of peer exchange.
#[derive(Default)]
pub struct Swarmers {
    recent: std::sync::Mutex<std::collections::HashMap<Hash, Vec<(PeerId, std::time::Instant)>>>,
    /// Data requests being served, per blob.
    active: std::sync::Mutex<std::collections::HashMap<Hash, usize>>,
}

/// Upload slots per blob: like BitTorrent's unchoke slots, a busy answer
/// sends extra downloaders to each other instead of all to one seed.
pub const MAX_SERVES_PER_BLOB: usize = 3;

/// Holds one of a blob's upload slots.
struct Slot<'a> {
    swarmers: &'a Swarmers,
    hash: Hash,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut active) = self.swarmers.active.lock() {
            if let Some(n) = active.get_mut(&self.hash) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&self.hash);
                }
            }
        }
    }
}

/// Blobs tracked for peer exchange, peers per blob, and for how long.
const MAX_SWARMS: usize = 1024;
const MAX_SWARMERS: usize = 64;
const SWARMER_TTL: Duration = Duration::from_secs(600);

impl Swarmers {
    fn try_slot(&self, hash: Hash) -> Option<Slot<'_>> {
        let mut active = self.active.lock().ok()?;
        let n = active.entry(hash).or_insert(0);
        if *n >= MAX_SERVES_PER_BLOB {
            return None;
        }
        *n += 1;
        Some(Slot {
            swarmers: self,
            hash,
        })
    }

    fn record(&self, hash: Hash, peer: PeerId) {
        let Ok(mut map) = self.recent.lock() else {
            return;
        };
        if !map.contains_key(&hash) && map.len() >= MAX_SWARMS {
            map.retain(|_, v| v.iter().any(|(_, t)| t.elapsed() < SWARMER_TTL));
            if map.len() >= MAX_SWARMS {
                return;
            }
        }
        let list = map.entry(hash).or_default();
        list.retain(|(p, t)| *p != peer && t.elapsed() < SWARMER_TTL);
        if list.len() >= MAX_SWARMERS {
            list.remove(0);
        }
        list.push((peer, std::time::Instant::now()));
    }

    fn peers(&self, hash: &Hash, except: &PeerId) -> Vec<PeerId> {
        let Ok(map) = self.recent.lock() else {
            return vec![];
        };
        map.get(hash)
            .map(|v| {
                v.iter()
                    .rev()
                    .filter(|(p, t)| p != except && t.elapsed() < SWARMER_TTL)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Answers blob requests until `incoming` ends.
pub async fn serve(
    store: Store,
    net: NetworkHandle,
    mut incoming: IncomingStreams,
    fault: Fault,
    stats: Arc<ServeStats>,
) {
    let swarmers = Arc::new(Swarmers::default());
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_SERVES));
    while let Some((peer, mut stream)) = incoming.next().await {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.busy.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream)).await
                {
                    let _ = ResponseHeader::Busy.write(&mut stream).await;
                }
                let _ = stream.close().await;
            });
            continue;
        };
        let store = store.clone();
        let stats = stats.clone();
        let net = net.clone();
        let swarmers = swarmers.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(store, &net, &swarmers, peer, stream, fault, &stats).await {
                tracing::debug!(%peer, "blob request failed: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_one(
    store: Store,
    net: &NetworkHandle,
    swarmers: &Swarmers,
    peer: PeerId,
    mut stream: Stream,
    fault: Fault,
    stats: &ServeStats,
) -> Result<(), ProtocolError> {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, Request::read(&mut stream))
        .await
        .map_err(|_| {
            ProtocolError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request in time",
            ))
        })??;
    let hash = request.hash;
    swarmers.record(hash, peer);
    if request.kind == RequestKind::Peers {
        let wanted = swarmers.peers(&hash, &peer);
        let known = net.peers().await.unwrap_or_default();
        let list: Vec<_> = wanted
            .into_iter()
            .filter_map(|p| {
                known.iter().find(|k| k.peer_id == p).map(|k| {
                    let addrs: Vec<_> = k
                        .addrs
                        .iter()
                        .filter(|a| !a.to_string().starts_with("/ip4/0.0.0.0"))
                        .cloned()
                        .collect();
                    (p, addrs)
                })
            })
            .take(protocol::MAX_PEX_PEERS)
            .collect();
        stream.write_all(&protocol::encode_peers(&list)).await?;
        stream.close().await?;
        return Ok(());
    }
    let _guard = store.hold(hash);
    let lookup_store = store.clone();
    let reader = tokio::task::spawn_blocking(move || lookup_store.reader(&hash))
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    let reader = match reader {
        Ok(Some(r)) => r,
        Ok(None) => {
            ResponseHeader::NotFound.write(&mut stream).await?;
            stream.close().await?;
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(%hash, "cannot open blob for serving: {e}");
            ResponseHeader::NotFound.write(&mut stream).await?;
            stream.close().await?;
            return Ok(());
        }
    };
    if request.kind == RequestKind::Have {
        let mut have = reader.valid.clone() & protocol::all_chunks(reader.size);
        // Keep the answer bounded: a very fragmented partial blob reports
        // its first ranges only.
        while have.iter().count() > protocol::MAX_RANGES {
            let last = have.iter().last().map(|r| match r {
                range_collections::range_set::RangeSetRange::Range(r) => {
                    ChunkRanges::from(*r.start..*r.end)
                }
                range_collections::range_set::RangeSetRange::RangeFrom(r) => {
                    ChunkRanges::from(*r.start..)
                }
            });
            match last {
                Some(l) => have -= l,
                None => break,
            }
        }
        ResponseHeader::Found {
            size: reader.size,
            ranges: have,
        }
        .write(&mut stream)
        .await?;
        stream.close().await?;
        return Ok(());
    }
    let Some(_slot) = swarmers.try_slot(hash) else {
        stats.busy.fetch_add(1, Ordering::Relaxed);
        ResponseHeader::Busy.write(&mut stream).await?;
        stream.close().await?;
        return Ok(());
    };
    let wanted = normalize(&request.ranges, reader.size);
    let served = wanted & reader.valid.clone();
    ResponseHeader::Found {
        size: reader.size,
        ranges: served.clone(),
    }
    .write(&mut stream)
    .await?;
    if served.is_empty() {
        stream.close().await?;
        return Ok(());
    }
    // The encoder runs on a blocking thread and writes into a bounded
    // channel; this task moves the chunks to the stream with an idle
    // timeout. If the peer stalls, dropping the channel frees the thread.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(PUMP_CHUNKS);
    let encoder = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut writer = Counting {
            inner: ChannelWriter::new(tx),
            count: 0,
            fault,
        };
        encode_ranges_validated(&reader.data, &reader.outboard, &served, &mut writer)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        writer.flush()?;
        Ok(writer.count)
    });
    while let Some(chunk) = rx.recv().await {
        tokio::time::timeout(IDLE_TIMEOUT, stream.write_all(&chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))??;
    }
    let sent = encoder
        .await
        .map_err(|e| io::Error::other(e.to_string()))??;
    stats.bytes_sent.fetch_add(sent, Ordering::Relaxed);
    tokio::time::timeout(IDLE_TIMEOUT, stream.close())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))??;
    Ok(())
}

/// Counts bytes written and applies the configured fault.
struct Counting<W> {
    inner: W,
    count: u64,
    fault: Fault,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fault == Fault::CorruptData && !buf.is_empty() {
            let mut bad = buf.to_vec();
            for (i, b) in bad.iter_mut().enumerate() {
                if (self.count + i as u64) % 1021 == 7 {
                    *b ^= 0x5a;
                }
            }
            let n = self.inner.write(&bad)?;
            self.count += n as u64;
            return Ok(n);
        }
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What one request delivered.
#[derive(Debug, Clone)]
pub struct Received {
    pub size: u64,
    /// Chunk ranges that were received and verified.
    pub ranges: ChunkRanges,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("peer does not have the blob")]
    NotFound,
    #[error("peer is busy")]
    Busy,
    /// The peer sent data that failed verification or broke the protocol:
    /// its fault.
    #[error("peer sent bad data: {0}")]
    BadData(String),
    /// The connection failed or timed out: not necessarily the peer's fault.
    #[error("transfer failed: {0}")]
    Stream(String),
    /// Our side failed (disk, database).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ProtocolError> for TransferError {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Io(io) => TransferError::Stream(io.to_string()),
            other => TransferError::BadData(other.to_string()),
        }
    }
}

/// Where a fetch writes what it receives.
#[derive(Debug, Clone)]
pub struct Destination {
    pub hash: Hash,
    pub kind: BlobKind,
    pub name: Option<String>,
    /// The blob's size, once proven by an earlier response.
    pub known_size: Option<u64>,
}

/// Asks `peer` for `ranges` of a blob and stores every verified chunk group.
/// `progress` counts bytes written.
pub async fn fetch_ranges(
    net: &NetworkHandle,
    store: &Store,
    peer: PeerId,
    dest: &Destination,
    ranges: &ChunkRanges,
    progress: Arc<AtomicU64>,
) -> Result<Received, TransferError> {
    let mut stream = tokio::time::timeout(HEADER_TIMEOUT, net.open_stream(peer, PROTOCOL))
        .await
        .map_err(|_| TransferError::Stream("opening a stream timed out".into()))?
        .map_err(|e| TransferError::Stream(e.to_string()))?;
    let request = Request {
        kind: RequestKind::Data,
        hash: dest.hash,
        ranges: ranges.clone(),
    };
    send_request(&mut stream, &request).await?;
    let header = tokio::time::timeout(HEADER_TIMEOUT, ResponseHeader::read(&mut stream))
        .await
        .map_err(|_| TransferError::Stream("no answer in time".into()))??;
    let (size, served) = match header {
        ResponseHeader::NotFound => return Err(TransferError::NotFound),
        ResponseHeader::Busy => return Err(TransferError::Busy),
        ResponseHeader::Found { size, ranges } => (size, ranges),
    };
    if let Some(known) = dest.known_size {
        if known != size {
            return Err(TransferError::BadData(format!(
                "claims size {size}, the blob has {known} bytes"
            )));
        }
    }
    let wanted = normalize(ranges, size);
    if !served.is_subset(&wanted) {
        return Err(TransferError::BadData(
            "sent ranges that were not asked for".into(),
        ));
    }
    if dest.known_size.is_none() {
        let proof = normalize(&protocol::last_chunk(), size);
        if !proof.is_subset(&served) {
            return Err(TransferError::BadData("did not prove the size".into()));
        }
    }
    if served.is_empty() {
        return Ok(Received {
            size,
            ranges: served,
        });
    }

    let hash = dest.hash;
    let blocking_store = store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_CHUNKS);
    let pump = tokio::spawn(pump_in(stream, tx));
    let _pump = AbortOnDrop(pump);
    let source = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let decode_ranges_set = served.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<(), TransferError> {
        let targets = blocking_store.partial_targets(&hash, size)?;
        // The channel reader buffers already: no BufReader (one copy less).
        sink::decode_into(source, &decode_ranges_set, targets, &progress).map_err(|e| match e {
            bao_tree::io::DecodeError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                TransferError::Stream("the peer closed the stream early".into())
            }
            bao_tree::io::DecodeError::Io(io) => TransferError::Stream(io.to_string()),
            other => TransferError::BadData(format!("verification failed: {other:?}")),
        })
    })
    .await
    .map_err(|e| TransferError::Stream(e.to_string()))?;
    if let Err(e) = decoded {
        if dest.known_size.is_none() {
            // The size was never proven: drop the files we created for it.
            let cleanup = store.clone();
            let _ = tokio::task::spawn_blocking(move || cleanup.discard_unindexed(&hash)).await;
        }
        return Err(e);
    }
    let record_store = store.clone();
    let dest = dest.clone();
    let recorded = served.clone();
    tokio::task::spawn_blocking(move || {
        record_store.add_verified(&dest.hash, size, dest.kind, dest.name.clone(), &recorded)
    })
    .await
    .map_err(|e| TransferError::Stream(e.to_string()))??;
    Ok(Received {
        size,
        ranges: served,
    })
}

async fn send_request(stream: &mut Stream, request: &Request) -> Result<(), TransferError> {
    let bytes = request.encode()?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| TransferError::Stream(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| TransferError::Stream(e.to_string()))
}

async fn ask(
    net: &NetworkHandle,
    peer: PeerId,
    kind: RequestKind,
    hash: Hash,
) -> Result<Stream, TransferError> {
    let mut stream = tokio::time::timeout(HEADER_TIMEOUT, net.open_stream(peer, PROTOCOL))
        .await
        .map_err(|_| TransferError::Stream("opening a stream timed out".into()))?
        .map_err(|e| TransferError::Stream(e.to_string()))?;
    let request = Request {
        kind,
        hash,
        ranges: ChunkRanges::empty(),
    };
    send_request(&mut stream, &request).await?;
    Ok(stream)
}

/// Asks `peer` which chunk ranges of a blob it has: `(size, ranges)`.
pub async fn query_have(
    net: &NetworkHandle,
    peer: PeerId,
    hash: Hash,
) -> Result<(u64, ChunkRanges), TransferError> {
    let mut stream = ask(net, peer, RequestKind::Have, hash).await?;
    let header = tokio::time::timeout(HEADER_TIMEOUT, ResponseHeader::read(&mut stream))
        .await
        .map_err(|_| TransferError::Stream("no answer in time".into()))??;
    match header {
        ResponseHeader::Found { size, ranges } => Ok((size, ranges)),
        ResponseHeader::NotFound => Err(TransferError::NotFound),
        ResponseHeader::Busy => Err(TransferError::Busy),
    }
}

/// Asks `peer` for other peers that recently wanted the same blob.
pub async fn query_peers(
    net: &NetworkHandle,
    peer: PeerId,
    hash: Hash,
) -> Result<Vec<(PeerId, Vec<weft_net::Multiaddr>)>, TransferError> {
    let mut stream = ask(net, peer, RequestKind::Peers, hash).await?;
    let peers = tokio::time::timeout(HEADER_TIMEOUT, protocol::read_peers(&mut stream))
        .await
        .map_err(|_| TransferError::Stream("no answer in time".into()))??;
    Ok(peers)
}

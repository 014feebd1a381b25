//! Chain sync over `/weft/ledger/sync/1.0.0`: one request and one response
//! per stream, each a length-prefixed borsh message with bounded size.
//!
//! On connect, and every few seconds with a few peers, a node asks for the
//! peer's tip. If the peer has more work, the node asks for headers after
//! its locator (exponentially spaced main-chain hashes), checks that they
//! link up and carry valid proof of work, then fetches their blocks in
//! batches and imports them one by one, validating as it goes. At most one
//! batch is held in memory; a peer that disconnects mid-sync just ends this
//! round, and the next poll resumes from where the chain got to.

use std::{collections::HashSet, time::Duration};

use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use weft_net::{IncomingStreams, NetworkEvent, PeerId, Stream, StreamProtocol};

use super::Ledger;
use crate::{
    block::{Block, BlockHash, Header},
    chain::BlockError,
    pow,
};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/ledger/sync/1.0.0");

/// Largest request and response frames.
const MAX_REQUEST: usize = 64 << 10;
const MAX_RESPONSE: usize = 16 << 20;
/// Bytes of blocks a response carries at most (then fewer blocks).
const RESPONSE_BLOCK_BYTES: usize = 8 << 20;
pub const MAX_HEADERS: u32 = 512;
pub const MAX_BLOCKS: usize = 64;
const MAX_LOCATOR: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(20);
/// Inbound sync requests served at once.
const MAX_SERVING: usize = 16;
/// Peers whose tips are polled each round.
const POLL_PEERS: usize = 4;

#[derive(Debug, BorshSerialize, BorshDeserialize)]
pub enum Request {
    Tip,
    Headers { locator: Vec<BlockHash>, max: u32 },
    Blocks { hashes: Vec<BlockHash> },
}

#[derive(Debug, BorshSerialize, BorshDeserialize)]
pub enum Response {
    Tip {
        height: u64,
        hash: BlockHash,
        work: u128,
    },
    Headers(Vec<Header>),
    Blocks(Vec<Block>),
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("stream: {0}")]
    Stream(String),
    #[error("peer broke the protocol: {0}")]
    Protocol(String),
}

async fn write_frame(s: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(bytes).await?;
    s.flush().await
}

async fn read_frame(s: &mut Stream, max: usize) -> Result<Vec<u8>, SyncError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .await
        .map_err(|e| SyncError::Stream(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(SyncError::Protocol(format!(
            "{len}-byte frame, the limit is {max}"
        )));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| SyncError::Stream(e.to_string()))?;
    Ok(buf)
}

/// Sends one request to `peer` and reads its response.
pub async fn ask(ledger: &Ledger, peer: PeerId, req: &Request) -> Result<Response, SyncError> {
    let exchange = async {
        let mut s = ledger
            .net()
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| SyncError::Stream(e.to_string()))?;
        let bytes = borsh::to_vec(req).map_err(|e| SyncError::Protocol(e.to_string()))?;
        write_frame(&mut s, &bytes)
            .await
            .map_err(|e| SyncError::Stream(e.to_string()))?;
        let frame = read_frame(&mut s, MAX_RESPONSE).await?;
        let _ = s.close().await;
        borsh::from_slice::<Response>(&frame).map_err(|e| SyncError::Protocol(e.to_string()))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| SyncError::Stream("timed out".into()))?
}

/// Answers sync requests from peers.
pub(super) async fn serve(ledger: Ledger, mut incoming: IncomingStreams) {
    let slots = std::sync::Arc::new(Semaphore::new(MAX_SERVING));
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Busy: dropping the stream tells the peer to come back later.
            continue;
        };
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = async {
                let frame = read_frame(&mut stream, MAX_REQUEST).await?;
                let response = match borsh::from_slice::<Request>(&frame) {
                    Ok(req) => answer(&ledger, req).await,
                    Err(e) => Response::Error(format!("bad request: {e}")),
                };
                let bytes =
                    borsh::to_vec(&response).map_err(|e| SyncError::Protocol(e.to_string()))?;
                write_frame(&mut stream, &bytes)
                    .await
                    .map_err(|e| SyncError::Stream(e.to_string()))?;
                let _ = stream.close().await;
                Ok::<_, SyncError>(())
            };
            if let Ok(Err(e)) = tokio::time::timeout(TIMEOUT, answer).await {
                tracing::debug!(%peer, "sync request failed: {e}");
            }
        });
    }
}

async fn answer(ledger: &Ledger, req: Request) -> Response {
    match req {
        Request::Tip => {
            let t = ledger.tip();
            Response::Tip {
                height: t.height,
                hash: t.hash,
                work: t.work,
            }
        }
        Request::Headers { locator, max } => {
            if locator.len() > MAX_LOCATOR {
                return Response::Error(format!("locator longer than {MAX_LOCATOR}"));
            }
            let max = max.min(MAX_HEADERS) as usize;
            let me = ledger.clone();
            match super::blocking(move || me.chain().headers_after(&locator, max)).await {
                Some(Ok(h)) => Response::Headers(h),
                Some(Err(e)) => Response::Error(e.to_string()),
                None => Response::Error("shutting down".into()),
            }
        }
        Request::Blocks { hashes } => {
            if hashes.len() > MAX_BLOCKS {
                return Response::Error(format!("more than {MAX_BLOCKS} blocks asked for"));
            }
            let me = ledger.clone();
            let found = super::blocking(move || {
                let c = me.chain();
                let mut out = Vec::new();
                let mut bytes = 0;
                for h in hashes {
                    match c.block(&h) {
                        Ok(Some(b)) => {
                            bytes += b.size();
                            out.push(b);
                            if bytes >= RESPONSE_BLOCK_BYTES {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                out
            })
            .await
            .unwrap_or_default();
            Response::Blocks(found)
        }
    }
}

/// Asks the sync task to check `peer` (it sent a block we cannot place).
pub(super) fn request(ledger: &Ledger, peer: PeerId) {
    let _ = ledger.inner.sync_requests.try_send(peer);
}

/// Watches peers' tips and syncs from any with more work.
pub(super) async fn run(ledger: Ledger, mut requests: mpsc::Receiver<PeerId>) {
    let mut events = ledger.net().events();
    let mut poll = tokio::time::interval(super::TIP_POLL);
    loop {
        let peers: Vec<PeerId> = tokio::select! {
            ev = events.recv() => match ev {
                Ok(NetworkEvent::PeerReady(p)) => vec![p],
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            Some(p) = requests.recv() => vec![p],
            _ = poll.tick() => {
                let mut peers: Vec<PeerId> = ledger.net().peers().await.unwrap_or_default()
                    .into_iter().map(|p| p.peer_id).collect();
                use rand::seq::SliceRandom;
                peers.shuffle(&mut rand::thread_rng());
                peers.truncate(POLL_PEERS);
                peers
            }
        };
        for peer in peers {
            if let Err(e) = check_peer(&ledger, peer).await {
                tracing::debug!(%peer, "sync: {e}");
            }
        }
    }
}

async fn check_peer(ledger: &Ledger, peer: PeerId) -> Result<(), SyncError> {
    let Response::Tip { height, work, .. } = ask(ledger, peer, &Request::Tip).await? else {
        return Err(SyncError::Protocol("expected a tip".into()));
    };
    ledger.set_sync(|s| s.best_height = Some(s.best_height.unwrap_or(0).max(height)));
    if work <= ledger.tip().work {
        return Ok(());
    }
    ledger.set_sync(|s| s.syncing = true);
    let result = sync_from(ledger, peer).await;
    ledger.set_sync(|s| s.syncing = false);
    result
}

/// Fetches and imports what `peer` has beyond our chain.
async fn sync_from(ledger: &Ledger, peer: PeerId) -> Result<(), SyncError> {
    loop {
        let me = ledger.clone();
        let locator = super::blocking(move || me.chain().locator())
            .await
            .unwrap_or_default();
        let locator: Vec<BlockHash> = locator.into_iter().take(MAX_LOCATOR).collect();
        let req = Request::Headers {
            locator,
            max: MAX_HEADERS,
        };
        let Response::Headers(headers) = ask(ledger, peer, &req).await? else {
            return Err(SyncError::Protocol("expected headers".into()));
        };
        if headers.len() > MAX_HEADERS as usize {
            return penalise(ledger, peer, "sent too many headers").await;
        }
        if headers.is_empty() {
            return Ok(());
        }
        // Headers must link up and carry their proof of work.
        let hashes: Vec<BlockHash> = headers.iter().map(Header::hash).collect();
        for (i, h) in headers.iter().enumerate() {
            if !pow::meets(&hashes[i].0, &h.target) || (i > 0 && h.parent != hashes[i - 1]) {
                return penalise(ledger, peer, "sent headers that do not link or lack work").await;
            }
        }
        let full = headers.len() == MAX_HEADERS as usize;
        drop(headers);
        let wanted: Vec<BlockHash> = {
            let c = ledger.chain();
            hashes.iter().filter(|h| !c.knows(h)).copied().collect()
        };
        for batch in wanted.chunks(MAX_BLOCKS) {
            let req = Request::Blocks {
                hashes: batch.to_vec(),
            };
            let Response::Blocks(blocks) = ask(ledger, peer, &req).await? else {
                return Err(SyncError::Protocol("expected blocks".into()));
            };
            if blocks.is_empty() {
                return Err(SyncError::Protocol(
                    "had none of the blocks it announced".into(),
                ));
            }
            let asked: HashSet<BlockHash> = batch.iter().copied().collect();
            let last = blocks.len().saturating_sub(1);
            for (i, block) in blocks.into_iter().enumerate() {
                if !asked.contains(&block.hash()) {
                    return penalise(ledger, peer, "sent a block that was not asked for").await;
                }
                // One fsync per batch: the batch's last block makes the
                // ones before it durable too.
                match ledger.import_with(block, i < last).await {
                    Ok(_) | Err(BlockError::Duplicate) => {}
                    Err(e) if e.is_peer_fault() => {
                        let reason = format!("sent an invalid block during sync: {e}");
                        return penalise(ledger, peer, &reason).await;
                    }
                    Err(e) => return Err(SyncError::Protocol(e.to_string())),
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

async fn penalise(ledger: &Ledger, peer: PeerId, reason: &str) -> Result<(), SyncError> {
    tracing::warn!(%peer, "sync: {reason}");
    let _ = ledger.net().penalise(peer, reason).await;
    Err(SyncError::Protocol(reason.into()))
}

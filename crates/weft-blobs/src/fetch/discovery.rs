//! Peer exchange during a fetch: ask known providers for other peers that
//! want the same blob, dial them, and keep asking partial peers what they
//! have, so downloaders find and feed each other. One task per blob fetch,
//! aborted when the fetch ends.

use std::time::Duration;

use bao_tree::ChunkRanges;
use tokio::sync::mpsc;
use weft_net::{NetworkHandle, PeerId};

use crate::{protocol, transfer::TransferError, Hash};

/// How often peer exchange runs during a fetch.
const PEX_INTERVAL: Duration = Duration::from_millis(200);
/// Most peers one fetch learns through peer exchange.
const MAX_PEX_KNOWN: usize = 64;

/// Peer exchange for one blob: asks known providers for other peers that
/// want the same blob, and keeps asking partial peers what they have.
/// Reports `(peer, ranges it has)`.
pub(super) fn spawn_discovery(
    net: NetworkHandle,
    hash: Hash,
    size: u64,
    initial: Vec<PeerId>,
) -> (
    mpsc::Receiver<(PeerId, ChunkRanges)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let me = net.local_peer_id();
        let all = protocol::all_chunks(size);
        let mut sources: Vec<PeerId> = initial;
        let mut partial: Vec<PeerId> = Vec::new();
        let mut round = 0usize;
        loop {
            if round > 0 {
                tokio::time::sleep(PEX_INTERVAL).await;
            }
            round += 1;
            // Ask one source per round, in turn, for other peers.
            if !sources.is_empty() {
                let source = sources[round % sources.len()];
                if let Ok(found) = crate::transfer::query_peers(&net, source, hash).await {
                    for (peer, addrs) in found {
                        if peer == me || sources.contains(&peer) || sources.len() >= MAX_PEX_KNOWN {
                            continue;
                        }
                        for addr in addrs {
                            let dial = net.dial(weft_net::with_peer_id(&addr, peer));
                            if let Ok(Ok(_)) =
                                tokio::time::timeout(Duration::from_secs(10), dial).await
                            {
                                break;
                            }
                        }
                        sources.push(peer);
                        partial.push(peer);
                    }
                }
            }
            // Refresh what partial peers have; drop those that completed.
            let mut still_partial = Vec::new();
            for peer in partial.drain(..) {
                match crate::transfer::query_have(&net, peer, hash).await {
                    Ok((s, have)) if s == size => {
                        let complete = all.is_subset(&have);
                        if tx.send((peer, have)).await.is_err() {
                            return;
                        }
                        if !complete {
                            still_partial.push(peer);
                        }
                    }
                    Ok(_) => {} // a different size: not the same blob, ignore it
                    Err(TransferError::NotFound) => still_partial.push(peer),
                    Err(_) => {}
                }
            }
            partial = still_partial;
        }
    });
    (rx, task)
}

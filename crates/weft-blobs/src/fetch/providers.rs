//! The providers of one fetch: gathered from the ticket (dialed directly)
//! and the DHT (as they are found), and the first, size-proving request,
//! which tries them in turn.

use std::{
    collections::HashMap,
    sync::atomic::AtomicU64,
    sync::Arc,
    time::{Duration, Instant},
};

use bao_tree::{ChunkNum, ChunkRanges};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_net::PeerId;

use super::{
    scheduler::PIECE_CHUNKS, FetchError, FetchTarget, Fetcher, Progress, PROVE_ATTEMPTS,
    PROVIDER_WAIT,
};
use crate::{
    protocol,
    transfer::{fetch_ranges, Destination, TransferError},
};

/// The providers of one fetch: the known ones, and a channel of new ones
/// that closes when every search has ended.
pub(super) struct Pool {
    pub(super) known: Vec<PeerId>,
    pub(super) incoming: Option<mpsc::Receiver<PeerId>>,
}

impl Pool {
    pub(super) fn is_open(&self) -> bool {
        self.incoming.is_some()
    }

    /// The next new provider; `None` once no more can come.
    pub(super) async fn recv_new(&mut self) -> Option<PeerId> {
        loop {
            let rx = self.incoming.as_mut()?;
            match rx.recv().await {
                Some(p) if !self.known.contains(&p) => {
                    self.known.push(p);
                    return Some(p);
                }
                Some(_) => continue,
                None => {
                    self.incoming = None;
                    return None;
                }
            }
        }
    }

    /// Waits for the next new provider, up to `wait`.
    pub(super) async fn next_new(&mut self, wait: Duration) -> Option<PeerId> {
        tokio::time::timeout(wait, self.recv_new())
            .await
            .ok()
            .flatten()
    }
}

impl Fetcher {
    /// Starts gathering providers: dials the ticket's, searches the DHT.
    pub(super) fn gather(&self, target: &FetchTarget) -> Pool {
        let (tx, rx) = mpsc::channel(128);
        let me = self.net.local_peer_id();
        for provider in target.providers.iter().filter(|p| p.peer != me).cloned() {
            let net = self.net.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for addr in &provider.addrs {
                    let full = weft_net::with_peer_id(addr, provider.peer);
                    match tokio::time::timeout(Duration::from_secs(20), net.dial(full))
                        .await
                        .unwrap_or(Err(weft_net::DialError::Busy))
                    {
                        Ok(_) => {
                            let _ = tx.send(provider.peer).await;
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(peer = %provider.peer, "cannot reach ticket provider: {e}")
                        }
                    }
                }
                // No address worked; it may still be reachable by id.
                if provider.addrs.is_empty() {
                    let _ = tx.send(provider.peer).await;
                }
            });
        }
        let net = self.net.clone();
        let key = target.hash.as_bytes().to_vec();
        tokio::spawn(async move {
            let Ok(mut found) = net.find_providers(key).await else {
                return;
            };
            while let Some(p) = found.recv().await {
                if tx.send(p).await.is_err() {
                    return;
                }
            }
        });
        Pool {
            known: Vec::new(),
            incoming: Some(rx),
        }
    }

    /// The first request for a blob we know nothing of: the first piece and
    /// the last chunk group, which proves the size.
    pub(super) async fn prove_size(
        &self,
        dest: &mut Destination,
        pool: &mut Pool,
        received: Arc<AtomicU64>,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<(PeerId, crate::transfer::Received), FetchError> {
        let ranges =
            ChunkRanges::from(ChunkNum(0)..ChunkNum(PIECE_CHUNKS)) | protocol::last_chunk();
        // Attempts per peer; busy or failing peers are retried a few times.
        let mut attempts: HashMap<PeerId, u32> = HashMap::new();
        let mut gave_up: Vec<PeerId> = Vec::new();
        let mut last_error = None;
        let deadline = Instant::now() + PROVIDER_WAIT;
        loop {
            let next = pool
                .known
                .iter()
                .filter(|p| !gave_up.contains(p) && self.offences(p) == 0)
                .min_by_key(|p| attempts.get(*p).copied().unwrap_or(0))
                .copied();
            let peer = match next {
                Some(p) => {
                    let n = attempts.get(&p).copied().unwrap_or(0);
                    if n > 0 {
                        if Instant::now() >= deadline {
                            return Err(FetchError::Failed {
                                hash: dest.hash,
                                reason: last_error.unwrap_or_else(|| "no provider answered".into()),
                            });
                        }
                        // Everyone left was tried: back off before retrying.
                        let pause = Duration::from_millis((150 * u64::from(n)).min(1_000));
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                        }
                    }
                    p
                }
                None => {
                    // Nobody left to ask: wait for a new provider while a
                    // search may still find one.
                    let wait = deadline.saturating_duration_since(Instant::now());
                    let waited = tokio::select! {
                        p = pool.next_new(wait), if pool.is_open() => p,
                        _ = std::future::ready(()), if !pool.is_open() => None,
                        _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                    };
                    match waited {
                        // Peers that sent bad data before are not asked.
                        Some(p) if self.offences(&p) > 0 => continue,
                        Some(p) => p,
                        None => {
                            return Err(match last_error {
                                None => FetchError::NoProviders(dest.hash),
                                Some(reason) => FetchError::Failed {
                                    hash: dest.hash,
                                    reason,
                                },
                            })
                        }
                    }
                }
            };
            let n = attempts.entry(peer).or_insert(0);
            *n += 1;
            let tries = *n;
            let attempt = tokio::select! {
                r = fetch_ranges(&self.net, &self.store, peer, dest, &ranges, received.clone()) => r,
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            };
            match attempt {
                Ok(r) => return Ok((peer, r)),
                Err(TransferError::BadData(reason)) => {
                    tracing::warn!(%peer, hash = %dest.hash, "dropping provider that sent bad data: {reason}");
                    self.penalise(peer);
                    progress.update(|p| p.bad_peers.push(peer.to_string()));
                    gave_up.push(peer);
                    last_error = Some(format!("{peer} sent bad data"));
                }
                Err(TransferError::NotFound) => {
                    gave_up.push(peer);
                    last_error = Some(format!("{peer} does not have it"));
                }
                Err(TransferError::Store(e)) => return Err(e.into()),
                // A busy provider (all upload slots taken by other
                // downloaders) is retried until the deadline.
                Err(TransferError::Busy) => last_error = Some(format!("{peer} is busy")),
                Err(e) => {
                    last_error = Some(format!("{peer}: {e}"));
                    if tries >= PROVE_ATTEMPTS {
                        gave_up.push(peer);
                    }
                }
            }
        }
    }
}

//! Transactions and blocks from gossip, validated before gossipsub may
//! forward them: Accept, Ignore (duplicate, stale, early, or a peer over
//! its rate) or Reject (invalid: gossipsub and the network penalise the
//! peer, and repeat offenders are disconnected).
//!
//! Each peer gets a token bucket of transactions per second; a flooding
//! peer's surplus is ignored unread, so honest peers' transactions still
//! get in. Blocks slightly in the future are set aside (bounded) and
//! retried when their time comes, without blaming the sender.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use weft_net::{GossipMessage, PeerId, Verdict};

use super::Ledger;
use crate::{
    block::Block,
    chain::BlockError,
    mempool::Rejected,
    tx::{Transaction, TxError},
};

/// Transactions per second each peer may send us, and the burst.
const TX_RATE: f64 = 200.0;
const TX_BURST: f64 = 1_000.0;
/// Most peers tracked by the rate limiter.
const MAX_TRACKED: usize = 1024;
/// Most blocks set aside for being early.
const MAX_SET_ASIDE: usize = 32;

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Limiter {
    buckets: HashMap<PeerId, Bucket>,
}

impl Limiter {
    fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&peer) {
            self.buckets
                .retain(|_, b| now.duration_since(b.at) < Duration::from_secs(10));
            if self.buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let b = self.buckets.entry(peer).or_insert(Bucket {
            tokens: TX_BURST,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * TX_RATE).min(TX_BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(super) async fn run_txs(ledger: Ledger, mut rx: mpsc::Receiver<GossipMessage>) {
    let mut limiter = Limiter::default();
    let mut throttled: HashMap<PeerId, u64> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let peer = msg.propagation_source;
        let verdict = if !limiter.allow(peer, Instant::now()) {
            ledger
                .inner
                .throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = throttled.entry(peer).or_insert(0);
            *n += 1;
            if *n == 1 || (*n).is_multiple_of(1000) {
                tracing::info!(%peer, dropped = *n, "throttling a peer that floods transactions");
            }
            if throttled.len() > MAX_TRACKED {
                throttled.clear();
            }
            Verdict::Ignore
        } else {
            tx_verdict(&ledger, &msg.data).await
        };
        let _ = ledger.net().report_message(msg.id, peer, verdict).await;
    }
}

async fn tx_verdict(ledger: &Ledger, data: &[u8]) -> Verdict {
    let tx = match Transaction::decode(data) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::debug!("invalid transaction from gossip: {e}");
            return Verdict::Reject;
        }
    };
    if ledger.mempool().contains(&tx.id()) {
        return Verdict::Ignore;
    }
    let genesis = ledger.genesis_hash();
    let checked = tx.clone();
    match super::blocking(move || checked.verify(&genesis.0)).await {
        Some(Ok(())) => {}
        Some(Err(TxError::BadSignature | TxError::BadKey)) => return Verdict::Reject,
        Some(Err(_)) => return Verdict::Reject,
        None => return Verdict::Ignore,
    }
    match ledger.admit(tx) {
        Ok(_) => Verdict::Accept,
        // Overspends are invalid whatever the timing; the rest may be
        // honest races (already mined, replaced, pool full).
        Err(Rejected::InsufficientBalance { .. }) => Verdict::Reject,
        Err(_) => Verdict::Ignore,
    }
}

pub(super) async fn run_blocks(ledger: Ledger, mut rx: mpsc::Receiver<GossipMessage>) {
    let mut set_aside: Vec<(u64, Block)> = Vec::new();
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                let peer = msg.propagation_source;
                let verdict = match Block::decode(&msg.data) {
                    Err(e) => {
                        tracing::info!(%peer, "undecodable block: {e}");
                        Verdict::Reject
                    }
                    Ok(block) => {
                        let ts = block.header.timestamp;
                        match ledger.import(block.clone()).await {
                            Ok(_) => Verdict::Accept,
                            Err(BlockError::Future { ahead_ms }) => {
                                tracing::info!(%peer, ahead_ms, "block from the near future set aside");
                                if set_aside.len() < MAX_SET_ASIDE {
                                    set_aside.push((ts, block));
                                }
                                Verdict::Ignore
                            }
                            Err(BlockError::Orphan(_)) => {
                                super::sync::request(&ledger, peer);
                                Verdict::Ignore
                            }
                            Err(e) if e.is_peer_fault() => {
                                tracing::warn!(%peer, "invalid block: {e}");
                                Verdict::Reject
                            }
                            Err(_) => Verdict::Ignore,
                        }
                    }
                };
                let _ = ledger.net().report_message(msg.id, peer, verdict).await;
            }
            _ = retry.tick(), if !set_aside.is_empty() => {
                let now = ledger.now_ms();
                let due: Vec<Block> = {
                    let (due, keep): (Vec<_>, Vec<_>) = set_aside
                        .drain(..)
                        .partition(|(ts, _)| *ts <= now + crate::chain::MAX_FUTURE_MS);
                    set_aside = keep;
                    due.into_iter().map(|(_, b)| b).collect()
                };
                for block in due {
                    let encoded = block.encode();
                    if ledger.import(block).await.is_ok() {
                        // Our verdict on the original was Ignore: pass it on now.
                        let _ = ledger.net().publish(super::BLOCK_TOPIC, encoded).await;
                    }
                }
            }
        }
    }
}

//! Mining: builds a block from the mempool (best fee rate first, in nonce
//! order per sender) on the current tip and searches nonces on
//! `threads` blocking threads. Work restarts at once when the tip changes or
//! new transactions arrive (the work generation moves), and at least every
//! couple of seconds to refresh the timestamp.

use std::{sync::atomic::Ordering, time::Duration};

use tokio::task::JoinSet;

use super::{Ledger, MineConfig, BLOCK_TOPIC};
use crate::{
    block::{Block, MAX_BLOCK_BYTES, MAX_BLOCK_TXS},
    pow,
};

/// Longest a template is worked on before it is rebuilt.
const REFRESH: Duration = Duration::from_secs(2);

impl Ledger {
    /// A block to mine on the tip, paying `miner`.
    pub fn template(&self, miner: crate::Address) -> Block {
        let c = self.chain();
        let txs = self.mempool().select(MAX_BLOCK_BYTES - 4096, MAX_BLOCK_TXS);
        let txs = c.state().applicable(txs);
        c.template(miner, txs, self.now_ms())
    }
}

pub(super) async fn run(ledger: Ledger, cfg: MineConfig) {
    let threads = cfg.threads.max(1) as u64;
    tracing::info!(miner = %cfg.miner, threads, "mining");
    loop {
        let generation = &ledger.inner.work_generation;
        let current = generation.load(Ordering::Relaxed);
        let me = ledger.clone();
        let miner = cfg.miner;
        let Some(template) = super::blocking(move || me.template(miner)).await else {
            return;
        };
        let mut searches = JoinSet::new();
        for i in 0..threads {
            let mut header = template.header.clone();
            let me = ledger.clone();
            searches.spawn_blocking(move || {
                let g = &me.inner.work_generation;
                pow::search(&mut header, i, threads, g, current).map(|_| header)
            });
        }
        let refresh = tokio::time::sleep(REFRESH);
        tokio::pin!(refresh);
        let mut found = None;
        loop {
            tokio::select! {
                joined = searches.join_next() => match joined {
                    Some(Ok(Some(header))) => {
                        found = Some(header);
                        generation.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = &mut refresh => {
                    generation.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let Some(header) = found else { continue };
        let block = Block {
            header,
            txs: template.txs,
        };
        let encoded = block.encode();
        match ledger.import(block).await {
            Ok(p) => {
                tracing::debug!(height = p.height, hash = %p.hash, "mined a block");
                let _ = ledger.net().publish(BLOCK_TOPIC, encoded).await;
            }
            Err(e) => tracing::debug!("mined block not used: {e}"),
        }
    }
}

//! The checks a block must pass before it is stored: size, proof of work,
//! target, height, timestamps, merkle root and signatures. State checks
//! (nonces, balances) happen when the block joins the main chain.

use std::collections::HashSet;

use crate::{
    block::{merkle_root, Block, BlockHash, MAX_BLOCK_BYTES, MAX_BLOCK_TXS},
    pow,
    state::StateError,
    tx::{self, TxError},
};

use super::{Chain, ChainStore, StoreError};

/// Blocks whose median timestamp a new block must exceed.
pub const MEDIAN_SPAN: usize = 11;
/// How far past our clock a block's time may be and still be accepted.
pub const MAX_FUTURE_MS: u64 = 15_000;
/// Blocks up to this far past our clock are set aside and retried (clocks
/// drift); beyond it they are invalid.
pub const SET_ASIDE_MS: u64 = 10 * 60_000;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("already known")]
    Duplicate,
    #[error("known to be invalid")]
    KnownInvalid,
    #[error("parent {0} is unknown")]
    Orphan(BlockHash),
    #[error("its time is {ahead_ms} ms ahead of ours; set aside for later")]
    Future { ahead_ms: u64 },
    #[error("its time is {ahead_ms} ms ahead of ours, too far in the future")]
    TooFarInFuture { ahead_ms: u64 },
    #[error("its time is not after the median of the last {MEDIAN_SPAN} blocks")]
    TooOld,
    #[error("{size} bytes is more than the largest block ({MAX_BLOCK_BYTES})")]
    TooLarge { size: usize },
    #[error("{0} transactions is more than a block may hold ({MAX_BLOCK_TXS})")]
    TooManyTxs(usize),
    #[error("height {got}, its parent is at {parent}")]
    BadHeight { got: u64, parent: u64 },
    #[error("the target does not match the difficulty rule")]
    BadTarget,
    #[error("the header hash does not meet its target (bad proof of work)")]
    BadPow,
    #[error("the merkle root does not match the transactions")]
    BadMerkleRoot,
    #[error("transaction {index}: {error}")]
    BadTx { index: usize, error: TxError },
    #[error("a transaction appears twice")]
    DuplicateTx,
    #[error("its parent is invalid")]
    InvalidParent,
    #[error("a block it builds on is invalid")]
    InvalidAncestor,
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(StoreError),
}

impl BlockError {
    /// Whether the peer that sent the block is at fault (reject and
    /// penalise), rather than the block being merely early, late or known.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            BlockError::Duplicate
                | BlockError::Orphan(_)
                | BlockError::Future { .. }
                | BlockError::Store(_)
        )
    }
}

impl<S: ChainStore> Chain<S> {
    /// Every check that needs no state; returns the block's difficulty.
    pub(super) fn check_block(&self, block: &Block, now_ms: u64) -> Result<u64, BlockError> {
        let size = block.size();
        if size > MAX_BLOCK_BYTES {
            return Err(BlockError::TooLarge { size });
        }
        if block.txs.len() > MAX_BLOCK_TXS {
            return Err(BlockError::TooManyTxs(block.txs.len()));
        }
        let h = &block.header;
        // Proof of work first: it is cheap and costs a forger real work.
        if !pow::meets(&h.hash().0, &h.target) {
            return Err(BlockError::BadPow);
        }
        let parent = *self
            .index
            .get(&h.parent)
            .ok_or(BlockError::Orphan(h.parent))?;
        if parent.invalid {
            return Err(BlockError::InvalidParent);
        }
        if h.height != parent.height + 1 {
            return Err(BlockError::BadHeight {
                got: h.height,
                parent: parent.height,
            });
        }
        let difficulty = self
            .difficulty_after(&h.parent)
            .ok_or(BlockError::Orphan(h.parent))?;
        if h.target != pow::target_for(difficulty) {
            return Err(BlockError::BadTarget);
        }
        if h.timestamp <= self.median_time(&h.parent) {
            return Err(BlockError::TooOld);
        }
        if h.timestamp > now_ms.saturating_add(MAX_FUTURE_MS) {
            let ahead_ms = h.timestamp - now_ms;
            return Err(if ahead_ms <= SET_ASIDE_MS {
                BlockError::Future { ahead_ms }
            } else {
                BlockError::TooFarInFuture { ahead_ms }
            });
        }
        if merkle_root(&block.txs) != h.tx_root {
            return Err(BlockError::BadMerkleRoot);
        }
        let mut ids = HashSet::with_capacity(block.txs.len());
        if !block.txs.iter().all(|t| ids.insert(t.id())) {
            return Err(BlockError::DuplicateTx);
        }
        tx::verify_batch(&block.txs, &self.genesis_hash.0)
            .map_err(|(index, error)| BlockError::BadTx { index, error })?;
        Ok(difficulty)
    }
}

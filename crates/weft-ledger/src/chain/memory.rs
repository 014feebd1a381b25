//! A [`ChainStore`] in memory, for tests and benchmarks.

use std::collections::{BTreeMap, HashMap};

use crate::{
    address::Address,
    block::{Block, BlockHash},
    state::{Account, Undo},
    tx::TxId,
};

use super::{BlockMeta, ChainStore, Commit, Snapshot, StoreError};

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    blocks: HashMap<BlockHash, Vec<u8>>,
    metas: HashMap<BlockHash, BlockMeta>,
    main: BTreeMap<u64, BlockHash>,
    accounts: HashMap<Address, Account>,
    undos: HashMap<BlockHash, Undo>,
    txs: HashMap<TxId, BlockHash>,
    /// Commits left before commits start failing (for tests).
    pub fail_after: Option<usize>,
}

impl ChainStore for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            metas: self.metas.iter().map(|(h, m)| (*h, *m)).collect(),
            main: self.main.values().copied().collect(),
            accounts: self.accounts.iter().map(|(a, b)| (*a, *b)).collect(),
        })
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.blocks
            .get(hash)
            .map(|b| Block::decode(b).map_err(|e| StoreError(e.to_string())))
            .transpose()
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        Ok(self.undos.get(hash).cloned())
    }

    fn tx_block(&self, id: &TxId) -> Result<Option<BlockHash>, StoreError> {
        Ok(self.txs.get(id).copied())
    }

    fn commit(&mut self, c: Commit) -> Result<(), StoreError> {
        if let Some(n) = &mut self.fail_after {
            if *n == 0 {
                return Err(StoreError("injected failure".into()));
            }
            *n -= 1;
        }
        self.blocks.extend(c.blocks);
        self.metas.extend(c.metas);
        self.main.retain(|h, _| *h < c.main_len);
        self.main.extend(c.main_set);
        for (a, acc) in c.accounts {
            match acc {
                Some(acc) => self.accounts.insert(a, acc),
                None => self.accounts.remove(&a),
            };
        }
        self.undos.extend(c.undos);
        for id in c.txs_remove {
            self.txs.remove(&id);
        }
        self.txs.extend(c.txs_add);
        Ok(())
    }
}

//! The chain in redb: blocks, the block index, the main chain, account
//! state, undo records and the transaction index, each in its own table,
//! and every [`Commit`] in one write transaction. redb commits are atomic
//! and durable, so after a kill -9 the store holds exactly the chain and
//! state of the last imported block.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::{
    address::Address,
    block::{Block, BlockHash},
    chain::{BlockMeta, ChainStore, Commit, Snapshot, StoreError},
    state::{Account, Undo},
    tx::TxId,
};

/// hash → encoded block.
const BLOCKS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("ledger-blocks-v1");
/// hash → [`BlockMeta`] (borsh).
const INDEX: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("ledger-index-v1");
/// height → hash of the main chain.
const MAIN: TableDefinition<'_, u64, [u8; 32]> = TableDefinition::new("ledger-main-v1");
/// address → [`Account`] (borsh).
const ACCOUNTS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("ledger-accounts-v1");
/// hash → [`Undo`] (borsh).
const UNDO: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("ledger-undo-v1");
/// transaction id → hash of the main-chain block holding it.
const TXS: TableDefinition<'_, [u8; 32], [u8; 32]> = TableDefinition::new("ledger-txs-v1");

pub struct RedbStore {
    db: redb::Database,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn decode<T: borsh::BorshDeserialize>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    borsh::from_slice(bytes).map_err(|e| StoreError(format!("unreadable {what}: {e}")))
}

fn encode<T: borsh::BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).unwrap_or_default()
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = redb::Database::create(path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(BLOCKS).map_err(err)?;
        tx.open_table(INDEX).map_err(err)?;
        tx.open_table(MAIN).map_err(err)?;
        tx.open_table(ACCOUNTS).map_err(err)?;
        tx.open_table(UNDO).map_err(err)?;
        tx.open_table(TXS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db })
    }
}

impl ChainStore for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let mut snap = Snapshot::default();
        for row in tx.open_table(INDEX).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            snap.metas.push((
                BlockHash(k.value()),
                decode::<BlockMeta>(v.value(), "block meta")?,
            ));
        }
        for row in tx.open_table(MAIN).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            if k.value() != snap.main.len() as u64 {
                return Err(StoreError(format!("main chain has a gap at {}", k.value())));
            }
            snap.main.push(BlockHash(v.value()));
        }
        for row in tx.open_table(ACCOUNTS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            snap.accounts
                .push((Address(k.value()), decode::<Account>(v.value(), "account")?));
        }
        Ok(snap)
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(BLOCKS).map_err(err)?;
        let Some(v) = table.get(hash.0).map_err(err)? else {
            return Ok(None);
        };
        Block::decode(v.value())
            .map(Some)
            .map_err(|e| StoreError(format!("unreadable block {hash}: {e}")))
    }

    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(UNDO).map_err(err)?;
        table
            .get(hash.0)
            .map_err(err)?
            .map(|v| decode::<Undo>(v.value(), "undo record"))
            .transpose()
    }

    fn tx_block(&self, id: &TxId) -> Result<Option<BlockHash>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(TXS).map_err(err)?;
        Ok(table.get(id.0).map_err(err)?.map(|v| BlockHash(v.value())))
    }

    fn commit(&mut self, c: Commit) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        if c.lazy {
            tx.set_durability(redb::Durability::None).map_err(err)?;
        }
        {
            let mut blocks = tx.open_table(BLOCKS).map_err(err)?;
            for (h, bytes) in &c.blocks {
                blocks.insert(h.0, bytes.as_slice()).map_err(err)?;
            }
            let mut index = tx.open_table(INDEX).map_err(err)?;
            for (h, m) in &c.metas {
                index.insert(h.0, encode(m).as_slice()).map_err(err)?;
            }
            let mut main = tx.open_table(MAIN).map_err(err)?;
            main.retain(|h, _| h < c.main_len).map_err(err)?;
            for (height, h) in &c.main_set {
                main.insert(height, h.0).map_err(err)?;
            }
            let mut accounts = tx.open_table(ACCOUNTS).map_err(err)?;
            for (a, acc) in &c.accounts {
                match acc {
                    Some(acc) => {
                        accounts.insert(a.0, encode(acc).as_slice()).map_err(err)?;
                    }
                    None => {
                        accounts.remove(a.0).map_err(err)?;
                    }
                }
            }
            let mut undo = tx.open_table(UNDO).map_err(err)?;
            for (h, u) in &c.undos {
                undo.insert(h.0, encode(u).as_slice()).map_err(err)?;
            }
            let mut txs = tx.open_table(TXS).map_err(err)?;
            for id in &c.txs_remove {
                txs.remove(id.0).map_err(err)?;
            }
            for (id, h) in &c.txs_add {
                txs.insert(id.0, h.0).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::{chain::Chain, genesis::Genesis, pow, Address};

    fn genesis() -> Genesis {
        Genesis {
            name: "store test".into(),
            timestamp: 1_000,
            alloc: Vec::new(),
            block_interval_ms: 1_000,
            reward: 5,
            difficulty: 1,
        }
    }

    /// Blocks imported lazily inside a batch and closed by a durable one
    /// are all there after reopening, with a state that matches them.
    #[test]
    fn lazy_commits_become_durable_with_the_next_durable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        {
            let mut chain = Chain::open(genesis(), RedbStore::open(&path).unwrap()).unwrap();
            for i in 0..10u64 {
                let mut b = chain.template(Address([1; 32]), Vec::new(), 2_000 + i * 1_000);
                pow::search(&mut b.header, 0, 1, &AtomicU64::new(0), 0).unwrap();
                chain.process_with(b, 100_000, i < 9).unwrap();
            }
            assert_eq!(chain.height(), 10);
        }
        let again = Chain::open(genesis(), RedbStore::open(&path).unwrap()).unwrap();
        assert_eq!(again.height(), 10);
        assert_eq!(again.account(&Address([1; 32])).balance, 50);
    }
}

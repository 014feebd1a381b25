//! The chain: block validation, fork choice and reorganisations.
//!
//! [`Chain`] is sans-IO: it is given blocks and the clock, keeps the block
//! index, the main chain and the account state in memory, and persists
//! through a [`ChainStore`], one [`Commit`] per imported block, so a crash
//! at any moment leaves a chain that matches its state. [`MemoryStore`]
//! serves tests; `crate::store::RedbStore` is the real one.
//!
//! Fork choice is most cumulative work. When a side branch overtakes the
//! main chain, the main blocks above the fork are undone and the branch's
//! blocks applied in order; if one of them turns out invalid, it and its
//! descendants are marked invalid and the old chain and state come back.

mod checks;
mod memory;

pub use checks::{BlockError, MAX_FUTURE_MS, MEDIAN_SPAN, SET_ASIDE_MS};
pub use memory::MemoryStore;

use std::collections::{BTreeSet, HashMap};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    address::Address,
    block::{merkle_root, Block, BlockHash, Header},
    genesis::Genesis,
    pow,
    state::{Account, State, Undo},
    tx::{Transaction, TxId},
};

/// What the index knows of each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockMeta {
    pub height: u64,
    pub parent: BlockHash,
    pub timestamp: u64,
    /// This block's difficulty.
    pub difficulty: u64,
    /// Cumulative work up to and including this block.
    pub work: u128,
    pub invalid: bool,
}

/// Everything a store must load at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub metas: Vec<(BlockHash, BlockMeta)>,
    pub main: Vec<BlockHash>,
    pub accounts: Vec<(Address, Account)>,
}

/// One atomic write to the store.
#[derive(Debug, Default)]
pub struct Commit {
    pub blocks: Vec<(BlockHash, Vec<u8>)>,
    pub metas: Vec<(BlockHash, BlockMeta)>,
    /// The main chain's new length; entries at and above it go.
    pub main_len: u64,
    /// Main-chain entries to set (height, hash).
    pub main_set: Vec<(u64, BlockHash)>,
    /// Accounts to write (`None`: delete).
    pub accounts: Vec<(Address, Option<Account>)>,
    pub undos: Vec<(BlockHash, Undo)>,
    /// Transactions now in the main chain, and the block holding each.
    pub txs_add: Vec<(TxId, BlockHash)>,
    pub txs_remove: Vec<TxId>,
    /// Durable on return (fsync). A non-durable commit is atomic and
    /// visible at once, and becomes durable with the next durable one; a
    /// crash before that rolls the store back to the last durable commit,
    /// which is still a consistent chain. Sync uses it inside a batch.
    pub lazy: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("chain store: {0}")]
pub struct StoreError(pub String);

/// Persistence of the chain.
pub trait ChainStore {
    fn load(&self) -> Result<Snapshot, StoreError>;
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError>;
    fn undo(&self, hash: &BlockHash) -> Result<Option<Undo>, StoreError>;
    fn tx_block(&self, id: &TxId) -> Result<Option<BlockHash>, StoreError>;
    fn commit(&mut self, commit: Commit) -> Result<(), StoreError>;
}

/// The outcome of importing a valid block.
#[derive(Debug, Default)]
pub struct Processed {
    pub hash: BlockHash,
    pub height: u64,
    /// The block is now the tip (directly or by a reorganisation).
    pub new_tip: bool,
    /// Blocks that left the main chain, highest first.
    pub disconnected: Vec<Block>,
    /// Blocks that joined the main chain, lowest first.
    pub connected: Vec<Block>,
}

/// The tip, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: BlockHash,
    pub work: u128,
    pub timestamp: u64,
    pub difficulty: u64,
}

pub struct Chain<S> {
    genesis: Genesis,
    genesis_hash: BlockHash,
    store: S,
    index: HashMap<BlockHash, BlockMeta>,
    main: Vec<BlockHash>,
    state: State,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the chain data belongs to another genesis ({found}); this node runs {expected}")]
    OtherGenesis {
        found: BlockHash,
        expected: BlockHash,
    },
    #[error("the chain data is inconsistent: {0}")]
    Inconsistent(String),
}

impl<S: ChainStore> Chain<S> {
    /// Loads the chain from `store`, writing the genesis into an empty one.
    pub fn open(genesis: Genesis, mut store: S) -> Result<Self, OpenError> {
        let genesis_block = genesis.block();
        let genesis_hash = genesis_block.hash();
        let mut snap = store.load()?;
        if snap.main.is_empty() {
            let meta = BlockMeta {
                height: 0,
                parent: BlockHash::default(),
                timestamp: genesis.timestamp,
                difficulty: genesis.difficulty,
                work: 0,
                invalid: false,
            };
            let accounts: Vec<_> = genesis
                .alloc
                .iter()
                .map(|a| {
                    (
                        a.address,
                        Some(Account {
                            balance: a.amount,
                            nonce: 0,
                        }),
                    )
                })
                .collect();
            store.commit(Commit {
                blocks: vec![(genesis_hash, genesis_block.encode())],
                metas: vec![(genesis_hash, meta)],
                main_len: 1,
                main_set: vec![(0, genesis_hash)],
                accounts,
                ..Commit::default()
            })?;
            snap = store.load()?;
        }
        match snap.main.first() {
            Some(h) if *h == genesis_hash => {}
            Some(h) => {
                return Err(OpenError::OtherGenesis {
                    found: *h,
                    expected: genesis_hash,
                })
            }
            None => {
                return Err(OpenError::Inconsistent(
                    "no genesis after writing it".into(),
                ))
            }
        }
        let index: HashMap<_, _> = snap.metas.into_iter().collect();
        for (height, h) in snap.main.iter().enumerate() {
            match index.get(h) {
                Some(m) if m.height == height as u64 && !m.invalid => {}
                _ => {
                    return Err(OpenError::Inconsistent(format!(
                        "main chain entry {height} ({h}) has no matching index entry"
                    )))
                }
            }
        }
        Ok(Self {
            genesis,
            genesis_hash,
            store,
            index,
            main: snap.main,
            state: State::from_accounts(snap.accounts),
        })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis_hash
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn account(&self, a: &Address) -> Account {
        self.state.account(a)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn tip(&self) -> Tip {
        let hash = self.main.last().copied().unwrap_or(self.genesis_hash);
        let m = self.index.get(&hash).copied().unwrap_or(BlockMeta {
            height: 0,
            parent: BlockHash::default(),
            timestamp: self.genesis.timestamp,
            difficulty: self.genesis.difficulty,
            work: 0,
            invalid: false,
        });
        Tip {
            height: m.height,
            hash,
            work: m.work,
            timestamp: m.timestamp,
            difficulty: m.difficulty,
        }
    }

    pub fn height(&self) -> u64 {
        self.main.len().saturating_sub(1) as u64
    }

    pub fn meta(&self, hash: &BlockHash) -> Option<&BlockMeta> {
        self.index.get(hash)
    }

    pub fn knows(&self, hash: &BlockHash) -> bool {
        self.index.contains_key(hash)
    }

    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.main.get(usize::try_from(height).ok()?).copied()
    }

    pub fn is_main(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|m| self.hash_at(m.height) == Some(*hash))
    }

    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        self.store.block(hash)
    }

    /// Where a transaction is confirmed: its block, height and number of
    /// confirmations (1 = in the tip).
    pub fn tx_location(&self, id: &TxId) -> Result<Option<(BlockHash, u64, u64)>, StoreError> {
        let Some(b) = self.store.tx_block(id)? else {
            return Ok(None);
        };
        Ok(self.index.get(&b).and_then(|m| {
            self.is_main(&b)
                .then(|| (b, m.height, self.height().saturating_sub(m.height) + 1))
        }))
    }

    /// The difficulty a child of `parent` must have.
    pub fn difficulty_after(&self, parent: &BlockHash) -> Option<u64> {
        let p = self.index.get(parent)?;
        if p.height == 0 {
            return Some(self.genesis.difficulty);
        }
        let gp = self.index.get(&p.parent)?;
        let solve = p.timestamp.saturating_sub(gp.timestamp);
        Some(pow::next_difficulty(
            p.difficulty,
            solve,
            self.genesis.block_interval_ms,
        ))
    }

    /// Median timestamp of `hash` and its ancestors, up to [`MEDIAN_SPAN`].
    pub fn median_time(&self, hash: &BlockHash) -> u64 {
        let mut times = Vec::with_capacity(MEDIAN_SPAN);
        let mut cur = Some(*hash);
        while let Some(h) = cur {
            let Some(m) = self.index.get(&h) else { break };
            times.push(m.timestamp);
            if times.len() == MEDIAN_SPAN || m.height == 0 {
                break;
            }
            cur = Some(m.parent);
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// Hashes of main-chain blocks at exponentially spaced heights from the
    /// tip down to genesis: what a peer needs to find where we diverge.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut h = self.height();
        let mut step = 1u64;
        loop {
            if let Some(hash) = self.hash_at(h) {
                out.push(hash);
            }
            if h == 0 {
                break;
            }
            if out.len() >= 10 {
                step = step.saturating_mul(2);
            }
            h = h.saturating_sub(step);
        }
        out
    }

    /// Main-chain headers after the first locator entry that is on our main
    /// chain (or after genesis), at most `max`.
    pub fn headers_after(
        &self,
        locator: &[BlockHash],
        max: usize,
    ) -> Result<Vec<Header>, StoreError> {
        let start = locator
            .iter()
            .find(|h| self.is_main(h))
            .and_then(|h| self.index.get(h))
            .map(|m| m.height)
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut height = start + 1;
        while out.len() < max {
            let Some(hash) = self.hash_at(height) else {
                break;
            };
            match self.store.block(&hash)? {
                Some(b) => out.push(b.header),
                None => return Err(StoreError(format!("block {hash} missing"))),
            }
            height += 1;
        }
        Ok(out)
    }

    /// A block for miners to solve on top of the tip: `txs` (already
    /// filtered with [`State::applicable`]), the time `now_ms` (moved past
    /// the median if needed) and the right target.
    pub fn template(&self, miner: Address, txs: Vec<Transaction>, now_ms: u64) -> Block {
        let tip = self.tip();
        let difficulty = self
            .difficulty_after(&tip.hash)
            .unwrap_or(pow::MIN_DIFFICULTY);
        let timestamp = now_ms.max(self.median_time(&tip.hash) + 1);
        Block {
            header: Header {
                parent: tip.hash,
                height: tip.height + 1,
                timestamp,
                tx_root: merkle_root(&txs),
                target: pow::target_for(difficulty),
                nonce: 0,
                miner,
            },
            txs,
        }
    }

    /// Validates and imports a block, durably. See [`BlockError`] for which
    /// errors are the sender's fault.
    pub fn process(&mut self, block: Block, now_ms: u64) -> Result<Processed, BlockError> {
        self.process_with(block, now_ms, false)
    }

    /// [`Chain::process`]; with `lazy`, the commit is not synced to disk
    /// until a later durable one ([`Commit::lazy`]): for blocks in the
    /// middle of a sync batch.
    pub fn process_with(
        &mut self,
        block: Block,
        now_ms: u64,
        lazy: bool,
    ) -> Result<Processed, BlockError> {
        let hash = block.hash();
        if let Some(m) = self.index.get(&hash) {
            return Err(if m.invalid {
                BlockError::KnownInvalid
            } else {
                BlockError::Duplicate
            });
        }
        let difficulty = self.check_block(&block, now_ms)?;
        let parent = self
            .index
            .get(&block.header.parent)
            .copied()
            .ok_or(BlockError::Orphan(block.header.parent))?;
        let meta = BlockMeta {
            height: block.header.height,
            parent: block.header.parent,
            timestamp: block.header.timestamp,
            difficulty,
            work: parent.work + u128::from(difficulty),
            invalid: false,
        };
        let mut commit = Commit {
            blocks: vec![(hash, block.encode())],
            metas: vec![(hash, meta)],
            main_len: self.main.len() as u64,
            lazy,
            ..Commit::default()
        };
        if meta.work <= self.tip().work {
            // A side branch: stored, connected later if it overtakes.
            self.store.commit(commit).map_err(BlockError::Store)?;
            self.index.insert(hash, meta);
            return Ok(Processed {
                hash,
                height: meta.height,
                ..Processed::default()
            });
        }
        self.index.insert(hash, meta);
        match self.switch_to(hash, block, &mut commit) {
            Ok(processed) => {
                if let Err(e) = self.store.commit(commit) {
                    // Memory must match what the store has.
                    self.reload();
                    return Err(BlockError::Store(e));
                }
                Ok(processed)
            }
            Err(e) => {
                // switch_to restored memory; record what is known invalid.
                let _ = self.store.commit(commit);
                Err(e)
            }
        }
    }

    /// Makes `target` (already in the index) the tip.
    fn switch_to(
        &mut self,
        target: BlockHash,
        block: Block,
        commit: &mut Commit,
    ) -> Result<Processed, BlockError> {
        // The branch from the fork point up to target, lowest first.
        let mut path = Vec::new();
        let mut cur = target;
        while !self.is_main(&cur) {
            path.push(cur);
            cur = self
                .index
                .get(&cur)
                .map(|m| m.parent)
                .ok_or(BlockError::Orphan(cur))?;
        }
        path.reverse();
        let fork_height = self.index.get(&cur).map(|m| m.height).unwrap_or(0);
        let reward = self.genesis.reward;
        let mut touched = BTreeSet::new();
        let mut processed = Processed {
            hash: target,
            height: self.index.get(&target).map(|m| m.height).unwrap_or(0),
            new_tip: true,
            ..Processed::default()
        };
        // Undo the main chain down to the fork.
        let old_main = self.main.clone();
        for h in ((fork_height + 1) as usize..self.main.len()).rev() {
            let bh = self.main[h];
            let undo = self.load_undo(&bh)?;
            let b = self.load_block(&bh)?;
            self.state.undo(&undo);
            touched.extend(undo.prev.iter().map(|(a, _)| *a));
            commit.txs_remove.extend(b.txs.iter().map(Transaction::id));
            processed.disconnected.push(b);
        }
        self.main.truncate(fork_height as usize + 1);
        // Apply the branch.
        let mut applied: Vec<Undo> = Vec::new();
        for (i, bh) in path.iter().enumerate() {
            let b = if *bh == target {
                block.clone()
            } else {
                self.load_block(bh)?
            };
            match self.state.apply(&b, reward) {
                Ok(undo) => {
                    touched.extend(undo.prev.iter().map(|(a, _)| *a));
                    commit.undos.push((*bh, undo.clone()));
                    commit.txs_add.extend(b.txs.iter().map(|t| (t.id(), *bh)));
                    applied.push(undo);
                    self.main.push(*bh);
                    processed.connected.push(b);
                }
                Err(e) => {
                    // Back to the old chain, and the branch from here on is invalid.
                    for undo in applied.iter().rev() {
                        self.state.undo(undo);
                    }
                    for b in processed.disconnected.iter().rev() {
                        let _ = self.state.apply(b, reward);
                    }
                    self.main = old_main;
                    *commit = Commit {
                        blocks: std::mem::take(&mut commit.blocks),
                        main_len: self.main.len() as u64,
                        ..Commit::default()
                    };
                    for bad in &path[i..] {
                        if let Some(m) = self.index.get_mut(bad) {
                            m.invalid = true;
                            commit.metas.push((*bad, *m));
                        }
                    }
                    return Err(if *bh == target {
                        BlockError::State(e)
                    } else {
                        BlockError::InvalidAncestor
                    });
                }
            }
        }
        commit.main_len = self.main.len() as u64;
        commit.main_set = (fork_height + 1..self.main.len() as u64)
            .map(|h| (h, self.main[h as usize]))
            .collect();
        commit.accounts = touched
            .into_iter()
            .map(|a| {
                let acc = self.state.account(&a);
                (a, (acc != Account::default()).then_some(acc))
            })
            .collect();
        Ok(processed)
    }

    /// Reloads memory from the store, after a commit failed.
    fn reload(&mut self) {
        if let Ok(snap) = self.store.load() {
            self.index = snap.metas.into_iter().collect();
            self.main = snap.main;
            self.state = State::from_accounts(snap.accounts);
        }
    }

    fn load_block(&self, hash: &BlockHash) -> Result<Block, BlockError> {
        self.store
            .block(hash)
            .map_err(BlockError::Store)?
            .ok_or_else(|| BlockError::Store(StoreError(format!("block {hash} missing"))))
    }

    fn load_undo(&self, hash: &BlockHash) -> Result<Undo, BlockError> {
        self.store
            .undo(hash)
            .map_err(BlockError::Store)?
            .ok_or_else(|| BlockError::Store(StoreError(format!("undo of {hash} missing"))))
    }
}

#[cfg(test)]
mod tests;

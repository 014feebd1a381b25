//! The mempool: signed transfers waiting for a block.
//!
//! Sans-IO and deterministic (STYLE.md habit 3): the caller verifies
//! signatures and hands in each sender's confirmed [`AccountState`] and the
//! clock. There is no randomness and no randomly seeded hashing (every map is
//! a B-tree), so the same calls always build the same pool.
//!
//! [`Mempool`] owns all of its state:
//! - per sender, a chain of entries by nonce. Its *ready* prefix starts at the
//!   account's next nonce, has no gap, and is affordable as a whole (amount
//!   plus fee, summed). The rest is *future* (behind a gap, or not affordable
//!   yet) and expires after [`Config::future_ttl`].
//! - each sender's *last* entry, indexed by (fee rate, id). A full pool evicts
//!   the cheapest chain end, so eviction never opens a gap in a chain.
//!
//! [`Config`] bounds everything: count, bytes, entries per sender, future
//! entries per sender and in total, and how far ahead a nonce may be. There
//! is nothing to shut down.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap},
    time::{Duration, Instant},
};

use crate::{
    address::Address,
    tx::{Transaction, TxId},
};

/// An account's confirmed state: its balance and the next nonce the chain
/// expects from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountState {
    pub balance: u64,
    pub nonce: u64,
}

/// The mempool's limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Transactions in total.
    pub max_count: usize,
    /// Encoded bytes in total.
    pub max_bytes: usize,
    /// Transactions (ready and future) per sender.
    pub max_per_sender: usize,
    /// Future transactions per sender.
    pub max_future_per_sender: usize,
    /// Future transactions in total.
    pub max_future_total: usize,
    /// A nonce more than this past the account's nonce is rejected.
    pub max_nonce_gap: u64,
    /// How long a future transaction is kept.
    pub future_ttl: Duration,
    /// How much more fee, in percent, a replacement pays (at a higher rate).
    pub min_bump_percent: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_count: 20_000,
            max_bytes: 16 << 20,
            max_per_sender: 64,
            max_future_per_sender: 16,
            max_future_total: 2_000,
            max_nonce_gap: 64,
            future_ttl: Duration::from_secs(10 * 60),
            min_bump_percent: 10,
        }
    }
}

/// What [`Mempool::insert`] did with a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// It can go into the next block.
    Ready,
    /// It waits for an earlier nonce or for funds.
    Future,
    /// It replaced (and evicted) the pooled one with the same sender and nonce.
    Replaced(TxId),
}

/// Why [`Mempool::insert`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the transaction is already in the mempool")]
    Duplicate,
    #[error("nonce {nonce} is used on chain already; the account's next nonce is {expected}")]
    StaleNonce { nonce: u64, expected: u64 },
    #[error("nonce {nonce} is too far ahead; the sender's next nonce is {expected}")]
    NonceTooFar { nonce: u64, expected: u64 },
    #[error("a replacement must pay a fee of at least {needed}")]
    FeeTooLow { needed: u64 },
    #[error("the sender's pending transfers need {needed}; the balance is {balance}")]
    InsufficientBalance { needed: u64, balance: u64 },
    #[error("the mempool is full and the fee rate is not above the cheapest evictable one")]
    Full,
    #[error("the sender has too many pending transactions")]
    SenderLimit,
    #[error("too many transactions are waiting for an earlier nonce")]
    FutureLimit,
}

#[derive(Debug)]
struct Entry {
    tx: Transaction,
    id: TxId,
    size: usize,
    rate: u64,
    /// amount + fee.
    cost: u64,
    ready: bool,
    /// When it last became future (inserted or demoted); expiry counts from here.
    since: Instant,
}

#[derive(Debug, Default)]
struct Sender {
    account: AccountState,
    txs: BTreeMap<u64, Entry>,
    /// This sender's key in [`Index::tails`].
    tail: Option<(u64, TxId)>,
}

impl Sender {
    /// The ready prefix of the chain.
    fn ready(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.txs.values().take_while(|e| e.ready)
    }
}

/// Everything but the chains: where each entry is, the eviction
/// candidates, and the totals.
#[derive(Debug, Default)]
struct Index {
    by_id: BTreeMap<TxId, (Address, u64)>,
    /// (fee rate, id) of each sender's last entry.
    tails: BTreeSet<(u64, TxId)>,
    bytes: usize,
    ready: usize,
    future: usize,
}

impl Index {
    /// Forgets an entry taken out of its chain (its sender's `tail` is
    /// fixed by `Mempool::refresh`).
    fn forget(&mut self, e: &Entry) {
        *if e.ready {
            &mut self.ready
        } else {
            &mut self.future
        } -= 1;
        self.bytes -= e.size;
        self.by_id.remove(&e.id);
    }
}

/// Pending transactions; see the module docs.
#[derive(Debug, Default)]
pub struct Mempool {
    config: Config,
    senders: BTreeMap<Address, Sender>,
    index: Index,
    /// The latest `now` given to `insert` or `update`.
    clock: Option<Instant>,
}

impl Mempool {
    pub fn new(config: Config) -> Self {
        Mempool {
            config,
            ..Mempool::default()
        }
    }

    /// Adds a transaction whose signature the caller has checked; `account`
    /// is its sender's confirmed state.
    pub fn insert(
        &mut self,
        tx: Transaction,
        account: AccountState,
        now: Instant,
    ) -> Result<Inserted, Rejected> {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        let (id, from, nonce) = (tx.id(), tx.from, tx.nonce);
        if self.contains(&id) {
            return Err(Rejected::Duplicate);
        }
        let expected = account.nonce;
        if nonce < expected {
            return Err(Rejected::StaleNonce { nonce, expected });
        }
        if let Some(sender) = self.senders.get_mut(&from).filter(|s| s.account != account) {
            sender.account = account;
            self.refresh(&from);
        }
        let empty = Sender::default();
        let sender = self.senders.get(&from).unwrap_or(&empty);
        let ready = sender.ready().count();
        let next = expected.saturating_add(ready as u64);
        if nonce > expected.saturating_add(self.config.max_nonce_gap) {
            return Err(Rejected::NonceTooFar {
                nonce,
                expected: next,
            });
        }
        let balance = account.balance;
        let short = |needed: Option<u64>| Rejected::InsufficientBalance {
            needed: needed.unwrap_or(u64::MAX),
            balance,
        };
        let cost = match tx.amount.checked_add(tx.fee) {
            Some(cost) if cost <= balance => cost,
            cost => return Err(short(cost)),
        };
        let (size, rate) = (tx.size(), tx.fee_rate());
        let old = sender.txs.get(&nonce);
        let (replaced, added, freed) = match old {
            Some(old) => {
                let needed = self.replacement_fee(old, size);
                if tx.fee < needed {
                    return Err(Rejected::FeeTooLow { needed });
                }
                (Some(old.id), 0, old.size)
            }
            None if sender.txs.len() >= self.config.max_per_sender => {
                return Err(Rejected::SenderLimit)
            }
            None if nonce > next
                && (sender.txs.len() - ready >= self.config.max_future_per_sender
                    || self.index.future >= self.config.max_future_total) =>
            {
                return Err(Rejected::FutureLimit)
            }
            None => (None, 1, 0),
        };
        // A ready one must be affordable after the ready ones before it.
        if old.map_or(nonce == next, |old| old.ready) {
            let total = (sender.ready())
                .filter(|e| e.tx.nonce < nonce)
                .try_fold(cost, |sum, e| sum.checked_add(e.cost));
            if total.is_none_or(|t| t > balance) {
                return Err(short(total));
            }
        }

        for (addr, n) in self.plan_evictions(&from, added, size, freed, rate)? {
            self.take(&addr, n);
            self.refresh(&addr);
        }
        if replaced.is_some() {
            self.take(&from, nonce);
        }
        // In as future; `refresh` promotes it (and what follows) if it can.
        let entry = Entry {
            tx,
            id,
            size,
            rate,
            cost,
            ready: false,
            since: now,
        };
        let sender = self.senders.entry(from).or_insert_with(|| Sender {
            account,
            ..Sender::default()
        });
        sender.txs.insert(nonce, entry);
        self.index.future += 1;
        self.index.bytes += size;
        self.index.by_id.insert(id, (from, nonce));
        self.refresh(&from);
        Ok(match replaced {
            Some(old) => Inserted::Replaced(old),
            None if self.entry(&id).is_some_and(|e| e.ready) => Inserted::Ready,
            None => Inserted::Future,
        })
    }

    pub fn contains(&self, id: &TxId) -> bool {
        self.index.by_id.contains_key(id)
    }

    pub fn get(&self, id: &TxId) -> Option<&Transaction> {
        self.entry(id).map(|e| &e.tx)
    }

    /// Removes a transaction; the sender's later ones wait (as future) until
    /// the gap is filled.
    pub fn remove(&mut self, id: &TxId) -> Option<Transaction> {
        let (addr, nonce) = *self.index.by_id.get(id)?;
        let entry = self.take(&addr, nonce)?;
        self.refresh(&addr);
        Some(entry.tx)
    }

    /// Ready transactions for a block, within `max_bytes` and `max_count`:
    /// the best fee rate first, each sender's in nonce order (a priority
    /// queue over the senders' next transactions).
    pub fn select(&self, max_bytes: usize, max_count: usize) -> Vec<Transaction> {
        let mut heads: BinaryHeap<_> = (self.senders.iter())
            .filter_map(|(addr, s)| {
                let (&nonce, e) = s.txs.first_key_value().filter(|(_, e)| e.ready)?;
                Some((e.rate, Reverse(e.id), *addr, nonce))
            })
            .collect();
        let (mut out, mut room) = (Vec::new(), max_bytes);
        while out.len() < max_count {
            let Some((_, _, addr, nonce)) = heads.pop() else {
                break;
            };
            let Some(sender) = self.senders.get(&addr) else {
                continue;
            };
            let Some(e) = sender.txs.get(&nonce).filter(|e| e.size <= room) else {
                continue; // and so do the sender's later ones
            };
            room -= e.size;
            out.push(e.tx.clone());
            let next = nonce.saturating_add(1);
            if let Some(n) = sender.txs.get(&next).filter(|n| n.ready) {
                heads.push((n.rate, Reverse(n.id), addr, next));
            }
        }
        out
    }

    /// Catches up after the chain moved (a block or a reorganisation):
    /// `accounts` gives the senders' new confirmed state (only senders in the
    /// pool are asked). Drops used nonces, demotes (or drops) what is no
    /// longer affordable, promotes what is, and expires old future entries.
    pub fn update(&mut self, accounts: &dyn Fn(&Address) -> AccountState, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        let addrs: Vec<Address> = self.senders.keys().copied().collect();
        for addr in addrs {
            if let Some(sender) = self.senders.get_mut(&addr) {
                sender.account = accounts(&addr);
            }
            self.refresh(&addr);
        }
    }

    /// The sum of amount + fee of the sender's ready transactions, and the
    /// nonce after them (the one a wallet should use next).
    pub fn pending(&self, sender: &Address, account: AccountState) -> (u64, u64) {
        let (mut cost, mut next) = (0u64, account.nonce);
        for e in self.senders.get(sender).into_iter().flat_map(Sender::ready) {
            if e.tx.nonce == next {
                cost = cost.saturating_add(e.cost);
                next = next.saturating_add(1);
            }
        }
        (cost, next)
    }

    /// The sum of the amounts of ready transactions paying `to`.
    pub fn incoming(&self, to: &Address) -> u64 {
        (self.senders.values().flat_map(Sender::ready))
            .filter(|e| e.tx.to == *to)
            .fold(0u64, |sum, e| sum.saturating_add(e.tx.amount))
    }

    pub fn len(&self) -> usize {
        self.index.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.by_id.is_empty()
    }

    /// Encoded bytes of all pooled transactions.
    pub fn bytes(&self) -> usize {
        self.index.bytes
    }

    pub fn ready_len(&self) -> usize {
        self.index.ready
    }

    pub fn future_len(&self) -> usize {
        self.index.future
    }

    /// Every pooled transaction and whether it is ready, by sender then nonce.
    pub fn entries(&self) -> Vec<(Transaction, bool)> {
        (self.senders.values().flat_map(|s| s.txs.values()))
            .map(|e| (e.tx.clone(), e.ready))
            .collect()
    }

    fn entry(&self, id: &TxId) -> Option<&Entry> {
        let (addr, nonce) = self.index.by_id.get(id)?;
        self.senders.get(addr)?.txs.get(nonce)
    }

    /// The fee a replacement of `old` with `size` bytes must pay: the bump,
    /// and a strictly higher fee rate.
    fn replacement_fee(&self, old: &Entry, size: usize) -> u64 {
        let fee = u128::from(old.tx.fee);
        let bump = fee + (fee * u128::from(self.config.min_bump_percent)).div_ceil(100);
        let rate = ((u128::from(old.rate) + 1) * size as u128).div_ceil(1000);
        u64::try_from(bump.max(rate)).unwrap_or(u64::MAX)
    }

    /// The entries to evict, cheapest chain end first and never `exclude`'s,
    /// so that `added` more transactions and `size - freed` more bytes fit.
    /// Each must pay a fee rate below `rate`, or the answer is Full.
    fn plan_evictions(
        &self,
        exclude: &Address,
        added: usize,
        size: usize,
        freed: usize,
        rate: u64,
    ) -> Result<Vec<(Address, u64)>, Rejected> {
        let (mut count, mut bytes) = (self.len() + added, self.bytes() - freed + size);
        let mut tails = (self.index.tails.iter())
            .filter_map(|&(r, id)| {
                let &(addr, nonce) = self.index.by_id.get(&id)?;
                (addr != *exclude).then_some((r, id, addr, nonce))
            })
            .peekable();
        // Entries before those already chosen, which became chain ends.
        let mut exposed = BTreeSet::new();
        let mut victims = Vec::new();
        while count > self.config.max_count || bytes > self.config.max_bytes {
            let next = match (tails.peek(), exposed.first()) {
                (Some(t), Some(e)) if e < t => exposed.pop_first(),
                (Some(_), _) => tails.next(),
                (None, _) => exposed.pop_first(),
            };
            let Some((_, _, addr, nonce)) = next.filter(|&(r, ..)| r < rate) else {
                return Err(Rejected::Full);
            };
            let Some(sender) = self.senders.get(&addr) else {
                return Err(Rejected::Full);
            };
            count -= 1;
            bytes -= sender.txs.get(&nonce).map_or(0, |e| e.size);
            victims.push((addr, nonce));
            if let Some((&n, prev)) = sender.txs.range(..nonce).next_back() {
                exposed.insert((prev.rate, prev.id, addr, n));
            }
        }
        Ok(victims)
    }

    /// Takes an entry out of its chain; `refresh` the sender afterwards.
    fn take(&mut self, addr: &Address, nonce: u64) -> Option<Entry> {
        let entry = self.senders.get_mut(addr)?.txs.remove(&nonce)?;
        self.index.forget(&entry);
        Some(entry)
    }

    /// Brings a sender's chain in line with its account and the clock: drops
    /// used nonces; marks the gapless, affordable prefix from the account's
    /// nonce ready and the rest future; drops expired future entries, and
    /// more from the chain's end while over a future limit; re-indexes the
    /// chain's end. A sender with no entries left is forgotten.
    fn refresh(&mut self, addr: &Address) {
        let (config, index, clock) = (&self.config, &mut self.index, self.clock);
        let Some(sender) = self.senders.get_mut(addr) else {
            return;
        };
        let AccountState {
            balance,
            nonce: mut expected,
        } = sender.account;
        let current = sender.txs.split_off(&expected);
        for used in std::mem::replace(&mut sender.txs, current).values() {
            index.forget(used);
        }
        let (mut cost, mut prefix) = (0u64, true);
        for (&nonce, e) in sender.txs.iter_mut() {
            match cost.checked_add(e.cost).filter(|&t| t <= balance) {
                Some(total) if prefix && nonce == expected => {
                    cost = total;
                    expected = expected.saturating_add(1);
                }
                _ => prefix = false,
            }
            if e.ready && !prefix {
                (index.ready, index.future) = (index.ready - 1, index.future + 1);
                e.since = clock.unwrap_or(e.since);
            } else if !e.ready && prefix {
                (index.ready, index.future) = (index.ready + 1, index.future - 1);
            }
            e.ready = prefix;
        }
        let ttl = config.future_ttl;
        sender.txs.retain(|_, e| {
            let expired = clock.is_some_and(|now| now.saturating_duration_since(e.since) > ttl);
            if !e.ready && expired {
                index.forget(e);
            }
            e.ready || !expired
        });
        // Demotions can break a future limit; future entries end the chain.
        let mut future = sender.txs.values().filter(|e| !e.ready).count();
        while future > config.max_future_per_sender
            || (future > 0 && index.future > config.max_future_total)
        {
            let Some((_, e)) = sender.txs.pop_last() else {
                break;
            };
            index.forget(&e);
            future -= 1;
        }
        if let Some(tail) = sender.tail.take() {
            index.tails.remove(&tail);
        }
        sender.tail = sender.txs.values().next_back().map(|e| (e.rate, e.id));
        if let Some(tail) = sender.tail {
            index.tails.insert(tail);
        } else {
            self.senders.remove(addr);
        }
    }
}

#[cfg(test)]
mod tests;

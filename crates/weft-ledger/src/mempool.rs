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
mod tests {
    use ed25519_zebra::SigningKey;

    use super::*;
    use crate::tx::{address_of, MAX_MEMO};

    const G: [u8; 32] = [7; 32];
    const RICH: AccountState = acct(1 << 40, 0);

    const fn acct(balance: u64, nonce: u64) -> AccountState {
        AccountState { balance, nonce }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    fn addr(seed: u8) -> Address {
        address_of(&key(seed))
    }

    /// A signed transfer of 100 from `seed`: 156 bytes (no memo).
    fn tx(seed: u8, nonce: u64, fee: u64) -> Transaction {
        Transaction::sign(&key(seed), &G, addr(200), 100, fee, nonce, vec![])
    }

    /// An unsigned transfer from sender `i` (the mempool does not verify).
    fn raw(i: u32, nonce: u64, fee: u64, memo: usize) -> Transaction {
        let mut from = [1u8; 32];
        from[..4].copy_from_slice(&i.to_le_bytes());
        let (to, memo, signature) = (Address([0xee; 32]), vec![0xab; memo], [0; 64]);
        let (from, amount) = (Address(from), 1);
        Transaction {
            from,
            to,
            amount,
            fee,
            nonce,
            memo,
            signature,
        }
    }

    fn limited(max_count: usize, max_bytes: usize) -> Mempool {
        let config = Config {
            max_count,
            max_bytes,
            ..Config::default()
        };
        Mempool::new(config)
    }

    /// Inserts from a rich account.
    fn add(pool: &mut Mempool, tx: Transaction) -> Result<Inserted, Rejected> {
        pool.insert(tx, RICH, Instant::now())
    }

    fn has(pool: &Mempool, tx: Transaction) -> bool {
        pool.contains(&tx.id())
    }

    /// Every index agrees with the chains, and every limit holds.
    fn check(pool: &Mempool) {
        let c = &pool.config;
        assert!(pool.len() <= c.max_count && pool.bytes() <= c.max_bytes);
        assert!(pool.future_len() <= c.max_future_total);
        let (mut count, mut bytes, mut ready) = (0, 0, 0);
        for (addr, s) in &pool.senders {
            assert!(!s.txs.is_empty() && s.txs.len() <= c.max_per_sender);
            let (mut next, mut cost) = (s.account.nonce, 0);
            for (&nonce, e) in &s.txs {
                assert_eq!(pool.index.by_id[&e.id], (*addr, nonce));
                assert!(nonce >= s.account.nonce);
                if e.ready {
                    assert_eq!(nonce, next, "a gap (or a future entry) before a ready one");
                    (next, cost, ready) = (next + 1, cost + e.cost, ready + 1);
                }
                (count, bytes) = (count + 1, bytes + e.size);
            }
            assert!(cost <= s.account.balance);
            assert!(s.txs.len() - s.ready().count() <= c.max_future_per_sender);
            let last = s.txs.values().next_back().map(|e| (e.rate, e.id));
            assert_eq!(s.tail, last);
            assert!(pool.index.tails.contains(&last.unwrap()));
        }
        assert_eq!(pool.index.tails.len(), pool.senders.len());
        assert_eq!((count, bytes), (pool.len(), pool.bytes()));
        assert_eq!(
            (ready, count - ready),
            (pool.ready_len(), pool.future_len())
        );
    }

    #[test]
    fn ready_vs_future_and_promotion_when_the_gap_is_filled() {
        let mut pool = Mempool::default();
        assert_eq!(add(&mut pool, tx(1, 0, 10)), Ok(Inserted::Ready));
        assert_eq!(add(&mut pool, tx(1, 2, 10)), Ok(Inserted::Future));
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 1));
        assert_eq!(pool.pending(&addr(1), RICH), (110, 1));
        // Filling the gap promotes what waited behind it.
        assert_eq!(add(&mut pool, tx(1, 1, 10)), Ok(Inserted::Ready));
        assert_eq!((pool.ready_len(), pool.future_len()), (3, 0));
        assert_eq!(pool.pending(&addr(1), RICH), (330, 3));
        assert_eq!(pool.incoming(&addr(200)), 300);
        let entries: Vec<_> = pool.entries().iter().map(|(t, r)| (t.nonce, *r)).collect();
        assert_eq!(entries, [(0, true), (1, true), (2, true)]);
        assert_eq!(add(&mut pool, tx(1, 1, 10)), Err(Rejected::Duplicate));
        let (nonce, expected) = (65, 3);
        let far = add(&mut pool, tx(1, nonce, 10));
        assert_eq!(far, Err(Rejected::NonceTooFar { nonce, expected }));
        check(&pool);

        // So does the chain's nonce moving past it (nonce 0 mined elsewhere).
        assert_eq!(add(&mut pool, tx(2, 1, 10)), Ok(Inserted::Future));
        assert_eq!(pool.select(1 << 20, 10).len(), 3);
        pool.update(
            &|a| {
                if *a == addr(2) {
                    acct(RICH.balance, 1)
                } else {
                    RICH
                }
            },
            Instant::now(),
        );
        assert_eq!((pool.ready_len(), pool.future_len()), (4, 0));
        assert!(pool.select(1 << 20, 10).contains(&tx(2, 1, 10)));
        check(&pool);
    }

    #[test]
    fn replacement_needs_the_fee_bump() {
        let mut pool = Mempool::default();
        add(&mut pool, tx(1, 0, 1000)).unwrap();
        add(&mut pool, tx(1, 1, 1000)).unwrap();
        let low = add(&mut pool, tx(1, 0, 1099));
        assert_eq!(low, Err(Rejected::FeeTooLow { needed: 1100 }));
        let bumped = add(&mut pool, tx(1, 0, 1100));
        assert_eq!(bumped, Ok(Inserted::Replaced(tx(1, 0, 1000).id())));
        assert!(!has(&pool, tx(1, 0, 1000)));
        assert_eq!(pool.get(&tx(1, 0, 1100).id()), Some(&tx(1, 0, 1100)));
        assert_eq!((pool.len(), pool.ready_len()), (2, 2));
        // A zero fee is replaced only at a higher fee rate.
        add(&mut pool, tx(2, 0, 0)).unwrap();
        let other = Transaction::sign(&key(2), &G, addr(201), 100, 0, 0, vec![]);
        assert_eq!(
            add(&mut pool, other),
            Err(Rejected::FeeTooLow { needed: 1 })
        );
        check(&pool);
    }

    #[test]
    fn future_entries_expire_after_the_ttl() {
        let (t0, mut pool) = (Instant::now(), Mempool::default());
        let ttl = pool.config.future_ttl;
        pool.insert(tx(1, 0, 10), RICH, t0).unwrap();
        pool.insert(tx(1, 5, 10), RICH, t0).unwrap();
        pool.update(&|_| RICH, t0 + ttl - Duration::from_secs(1));
        assert!(has(&pool, tx(1, 5, 10)));
        pool.update(&|_| RICH, t0 + ttl + Duration::from_secs(1));
        assert!(!has(&pool, tx(1, 5, 10)));
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 0));
        check(&pool);
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_and_rejects_a_cheaper_newcomer() {
        let mut pool = limited(3, 1 << 20);
        for (seed, fee) in [(1, 10), (2, 20), (3, 30)] {
            add(&mut pool, tx(seed, 0, fee)).unwrap();
        }
        assert_eq!(add(&mut pool, tx(4, 0, 5)), Err(Rejected::Full));
        assert_eq!(add(&mut pool, tx(4, 0, 10)), Err(Rejected::Full));
        assert_eq!(add(&mut pool, tx(4, 0, 25)), Ok(Inserted::Ready));
        assert!(!has(&pool, tx(1, 0, 10)));
        assert_eq!(pool.len(), 3);
        check(&pool);
    }

    #[test]
    fn eviction_never_leaves_a_gap_in_a_ready_chain() {
        let mut pool = limited(4, 1 << 20);
        // Sender 1's cheap entries sit before an expensive one.
        for (nonce, fee) in [(0, 5), (1, 5), (2, 50)] {
            add(&mut pool, tx(1, nonce, fee)).unwrap();
        }
        add(&mut pool, tx(2, 0, 40)).unwrap();
        add(&mut pool, tx(3, 0, 90)).unwrap();
        assert!(!has(&pool, tx(2, 0, 40)), "the cheapest chain end goes");
        add(&mut pool, tx(4, 0, 95)).unwrap();
        assert!(!has(&pool, tx(1, 2, 50)));
        add(&mut pool, tx(5, 0, 99)).unwrap();
        assert!(!has(&pool, tx(1, 1, 5)) && has(&pool, tx(1, 0, 5)));
        check(&pool);

        // Freeing bytes may take several entries of one chain, from its end.
        let mut pool = limited(100, 3 * 156);
        for (seed, nonce, fee) in [(1, 0, 10), (1, 1, 20), (2, 0, 1000)] {
            add(&mut pool, tx(seed, nonce, fee)).unwrap();
        }
        let big = Transaction::sign(&key(3), &G, addr(200), 1, 5000, 0, vec![0; 156]);
        assert_eq!(add(&mut pool, big), Ok(Inserted::Ready));
        assert_eq!((pool.len(), pool.bytes()), (2, 3 * 156));
        assert!(has(&pool, tx(2, 0, 1000)));
        check(&pool);
    }

    #[test]
    fn a_flood_from_one_sender_stays_bounded() {
        let mut pool = Mempool::default();
        for nonce in 1..=10_000 {
            let _ = add(&mut pool, raw(u32::MAX, nonce, 1, MAX_MEMO));
        }
        assert_eq!((pool.ready_len(), pool.future_len()), (0, 16));
        let more = add(&mut pool, raw(u32::MAX, 17, 1, 0));
        assert_eq!(more, Err(Rejected::FutureLimit));
        for nonce in 0..10_000 {
            let _ = add(&mut pool, raw(u32::MAX, nonce, 1, MAX_MEMO));
        }
        assert_eq!(pool.len(), pool.config.max_per_sender);
        let more = add(&mut pool, raw(u32::MAX, 64, 1, 0));
        assert_eq!(more, Err(Rejected::SenderLimit));
        check(&pool);
        assert_eq!(add(&mut pool, tx(9, 0, 10_000)), Ok(Inserted::Ready));
    }

    #[test]
    fn a_flood_from_many_senders_stays_bounded() {
        let mut pool = Mempool::default();
        for i in 0..10_000 {
            let _ = add(&mut pool, raw(i, 1, 1, MAX_MEMO));
        }
        assert_eq!(pool.future_len(), pool.config.max_future_total);
        check(&pool);
        assert_eq!(add(&mut pool, tx(9, 0, 10_000)), Ok(Inserted::Ready));

        // Ready floods fill the pool by count or bytes, then evict.
        let (max_count, max_bytes) = (2_000, 512 << 10);
        let mut pool = limited(max_count, max_bytes);
        for i in 0..10_000u32 {
            let fee = u64::from(i % 97) + 1;
            let _ = add(&mut pool, raw(i, 0, fee, MAX_MEMO));
            let _ = add(&mut pool, raw(i, 1, fee, 0));
            if i.is_multiple_of(1_000) {
                check(&pool);
            }
        }
        assert!(pool.len() == max_count || pool.bytes() > max_bytes - 2 * 420);
        assert_eq!(add(&mut pool, tx(9, 0, 10_000)), Ok(Inserted::Ready));
        check(&pool);
    }

    #[test]
    fn select_keeps_nonce_order_and_prefers_higher_fee_rates() {
        let mut pool = Mempool::default();
        let (a0, a1, b0) = (tx(1, 0, 10), tx(1, 1, 1000), tx(2, 0, 500));
        // Sender 3's is future: never selected.
        for t in [&a1, &a0, &b0, &tx(3, 1, 5000)] {
            add(&mut pool, t.clone()).unwrap();
        }
        let all = [b0.clone(), a0.clone(), a1];
        assert_eq!(pool.select(1 << 20, 100), all);
        assert_eq!(pool.select(1 << 20, 2), all[..2]);
        assert_eq!(pool.select(156, 100), [b0]);
        assert!(pool.select(155, 100).is_empty());
    }

    #[test]
    fn readiness_needs_cumulative_balance() {
        let (now, mut pool) = (Instant::now(), Mempool::default());
        let a = acct(250, 0);
        assert_eq!(pool.insert(tx(1, 0, 10), a, now), Ok(Inserted::Ready));
        assert_eq!(pool.insert(tx(1, 1, 10), a, now), Ok(Inserted::Ready));
        let (needed, balance) = (330, 250);
        let third = pool.insert(tx(1, 2, 10), a, now);
        assert_eq!(
            third,
            Err(Rejected::InsufficientBalance { needed, balance })
        );
        assert_eq!((pool.ready_len(), pool.pending(&addr(1), a)), (2, (220, 2)));
        // A lower balance demotes the end of the chain; a higher one promotes it.
        pool.update(&|_| acct(150, 0), now);
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 1));
        check(&pool);
        pool.update(&|_| a, now);
        assert_eq!((pool.ready_len(), pool.future_len()), (2, 0));
        check(&pool);
    }

    #[test]
    fn update_drops_confirmed_nonces() {
        let (now, mut pool) = (Instant::now(), Mempool::default());
        let txs: Vec<_> = (0..3).map(|n| tx(1, n, 10)).collect();
        for t in &txs {
            add(&mut pool, t.clone()).unwrap();
        }
        let at = |nonce| acct(RICH.balance, nonce);
        pool.update(&|_| at(2), now);
        assert!(!has(&pool, txs[0].clone()) && !has(&pool, txs[1].clone()));
        assert!(has(&pool, txs[2].clone()));
        assert_eq!((pool.len(), pool.ready_len()), (1, 1));
        let (nonce, expected) = (0, 2);
        let stale = pool.insert(txs[0].clone(), at(2), now);
        assert_eq!(stale, Err(Rejected::StaleNonce { nonce, expected }));
        check(&pool);
        pool.update(&|_| at(3), now);
        assert!(pool.is_empty() && pool.bytes() == 0 && pool.senders.is_empty());
        check(&pool);
    }
}

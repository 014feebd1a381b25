//! The mempool: signed transfers waiting for a block.
//!
//! Sans-IO and deterministic (STYLE.md habit 3). The caller verifies
//! signatures and passes each sender's confirmed [`AccountState`] and the
//! clock; there is no randomness and no randomly seeded hashing (every map is
//! a `BTreeMap`), so the same calls always give the same pool.
//!
//! State, all owned by [`Mempool`]:
//! - per sender, a chain of entries keyed by nonce. Its *ready* prefix starts
//!   at the account's next nonce, has no gaps, and the sender can afford all
//!   of it together (amount plus fee, summed). Everything after it is
//!   *future*: behind a gap, or not affordable yet. Future entries expire
//!   after [`Config::future_ttl`].
//! - an index of each sender's *last* entry by (fee rate, id). When the pool
//!   is full, the cheapest chain end is evicted, so eviction never opens a gap
//!   in a ready chain.
//!
//! Everything is bounded by [`Config`]: total count and bytes, entries per
//! sender, future entries per sender and in total, and how far ahead of the
//! account a nonce may be. There is nothing to shut down: dropping the value
//! drops the pool.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap},
    time::{Duration, Instant},
};

use crate::{
    address::Address,
    tx::{Transaction, TxId},
};

/// The confirmed state of an account: its balance and the next nonce the
/// chain expects from it.
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
    /// A nonce more than this far past the account's nonce is rejected.
    pub max_nonce_gap: u64,
    /// How long a future transaction is kept.
    pub future_ttl: Duration,
    /// How much more fee (in percent) a replacement must pay; its fee rate
    /// must be higher too.
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
    /// It replaced the pooled transaction with the same sender and nonce.
    Replaced(TxId),
}

/// Why [`Mempool::insert`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the transaction is already in the mempool")]
    Duplicate,
    #[error("nonce {nonce} is already used on chain; the account's next nonce is {expected}")]
    StaleNonce { nonce: u64, expected: u64 },
    #[error("nonce {nonce} is too far ahead; the sender's next nonce is {expected}")]
    NonceTooFar { nonce: u64, expected: u64 },
    #[error("a replacement must pay a fee of at least {needed}")]
    FeeTooLow { needed: u64 },
    #[error("the sender's pending transfers need {needed}, the balance is {balance}")]
    InsufficientBalance { needed: u64, balance: u64 },
    #[error(
        "the mempool is full and the fee rate is not above the cheapest evictable transaction"
    )]
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
    /// amount + fee (checked on insert).
    cost: u64,
    ready: bool,
    /// When it last became future (insert or demotion); expiry counts from here.
    since: Instant,
}

#[derive(Debug)]
struct Sender {
    account: AccountState,
    txs: BTreeMap<u64, Entry>,
    ready: usize,
    future: usize,
    ready_cost: u64,
    /// This sender's key in [`Mempool::tails`].
    tail: Option<(u64, TxId)>,
}

/// Pending transactions, see the module docs.
#[derive(Debug)]
pub struct Mempool {
    config: Config,
    senders: BTreeMap<Address, Sender>,
    by_id: BTreeMap<TxId, (Address, u64)>,
    /// (fee rate, id) of each sender's last entry: the eviction candidates.
    tails: BTreeSet<(u64, TxId)>,
    bytes: usize,
    ready: usize,
    future: usize,
    /// The latest clock reading given to `insert` or `update`, for demotions
    /// done by `remove`.
    clock: Option<Instant>,
}

impl Mempool {
    pub fn new(config: Config) -> Self {
        Mempool {
            config,
            senders: BTreeMap::new(),
            by_id: BTreeMap::new(),
            tails: BTreeSet::new(),
            bytes: 0,
            ready: 0,
            future: 0,
            clock: None,
        }
    }

    /// Adds a transaction whose signature the caller has verified. `account`
    /// is the sender's confirmed state.
    pub fn insert(
        &mut self,
        tx: Transaction,
        account: AccountState,
        now: Instant,
    ) -> Result<Inserted, Rejected> {
        self.tick(now);
        let id = tx.id();
        if self.by_id.contains_key(&id) {
            return Err(Rejected::Duplicate);
        }
        if tx.nonce < account.nonce {
            return Err(Rejected::StaleNonce {
                nonce: tx.nonce,
                expected: account.nonce,
            });
        }
        let from = tx.from;
        if self
            .senders
            .get(&from)
            .is_some_and(|s| s.account != account)
        {
            self.sync(&from, account);
        }
        let (ready, ready_cost, len, future) = self.senders.get(&from).map_or((0, 0, 0, 0), |s| {
            (s.ready, s.ready_cost, s.txs.len(), s.future)
        });
        let next = account.nonce.saturating_add(ready as u64);
        if tx.nonce > account.nonce.saturating_add(self.config.max_nonce_gap) {
            return Err(Rejected::NonceTooFar {
                nonce: tx.nonce,
                expected: next,
            });
        }
        let balance = account.balance;
        let short = |needed: Option<u64>| Rejected::InsufficientBalance {
            needed: needed.unwrap_or(u64::MAX),
            balance,
        };
        let cost = tx.amount.checked_add(tx.fee).ok_or(short(None))?;
        if cost > balance {
            return Err(short(Some(cost)));
        }
        let size = tx.size();
        let rate = tx.fee_rate();

        let old = self.senders.get(&from).and_then(|s| s.txs.get(&tx.nonce));
        let (replaced, added, freed) = if let Some(old) = old {
            let needed = self.replacement_fee(old, size);
            if tx.fee < needed {
                return Err(Rejected::FeeTooLow { needed });
            }
            if old.ready {
                // Everything before it stays ready, so it must fit after them.
                let total = self
                    .chain_cost(&from, account.nonce, tx.nonce)
                    .and_then(|before| before.checked_add(cost));
                if total.is_none_or(|t| t > balance) {
                    return Err(short(total));
                }
            }
            (Some(old.id), 0, old.size)
        } else {
            if len >= self.config.max_per_sender {
                return Err(Rejected::SenderLimit);
            }
            if tx.nonce == next {
                let total = ready_cost.checked_add(cost);
                if total.is_none_or(|t| t > balance) {
                    return Err(short(total));
                }
            } else if future >= self.config.max_future_per_sender
                || self.future >= self.config.max_future_total
            {
                return Err(Rejected::FutureLimit);
            }
            (None, 1, 0)
        };

        let victims = self.plan_evictions(&from, added, size, freed, rate)?;
        for (addr, nonce) in victims {
            self.take(&addr, nonce);
            self.refresh(&addr);
        }
        let nonce = tx.nonce;
        if replaced.is_some() {
            self.take(&from, nonce);
        }
        let sender = self.senders.entry(from).or_insert_with(|| Sender {
            account,
            txs: BTreeMap::new(),
            ready: 0,
            future: 0,
            ready_cost: 0,
            tail: None,
        });
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
        sender.txs.insert(nonce, entry);
        sender.future += 1;
        self.future += 1;
        self.bytes += size;
        self.by_id.insert(id, (from, nonce));
        self.refresh(&from);

        let ready = self
            .senders
            .get(&from)
            .and_then(|s| s.txs.get(&nonce))
            .is_some_and(|e| e.ready);
        Ok(match replaced {
            Some(old) => Inserted::Replaced(old),
            None if ready => Inserted::Ready,
            None => Inserted::Future,
        })
    }

    pub fn contains(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn get(&self, id: &TxId) -> Option<&Transaction> {
        self.entry(id).map(|e| &e.tx)
    }

    /// Removes a transaction. Later transactions of the same sender become
    /// future until the gap is filled.
    pub fn remove(&mut self, id: &TxId) -> Option<Transaction> {
        let (addr, nonce) = *self.by_id.get(id)?;
        let entry = self.take(&addr, nonce)?;
        self.refresh(&addr);
        Some(entry.tx)
    }

    /// Ready transactions for a block: the best fee rate first, each sender's
    /// in nonce order (a priority queue over the senders' next transactions),
    /// within `max_bytes` and `max_count`.
    pub fn select(&self, max_bytes: usize, max_count: usize) -> Vec<Transaction> {
        let mut heads = BinaryHeap::new();
        for (addr, sender) in &self.senders {
            if let Some((&nonce, e)) = sender.txs.first_key_value() {
                if e.ready {
                    heads.push((e.rate, Reverse(e.id), *addr, nonce));
                }
            }
        }
        let mut out = Vec::new();
        let mut room = max_bytes;
        while out.len() < max_count {
            let Some((_, _, addr, nonce)) = heads.pop() else {
                break;
            };
            let Some(sender) = self.senders.get(&addr) else {
                continue;
            };
            let Some(e) = sender.txs.get(&nonce) else {
                continue;
            };
            if e.size > room {
                // The sender's later transactions need this one first.
                continue;
            }
            room -= e.size;
            out.push(e.tx.clone());
            let next = nonce.saturating_add(1);
            if let Some(n) = sender.txs.get(&next).filter(|n| n.ready) {
                heads.push((n.rate, Reverse(n.id), addr, next));
            }
        }
        out
    }

    /// Brings the pool up to date after the chain moved (a new block or a
    /// reorganisation). `accounts` is asked about the senders in the pool
    /// only. Drops used nonces, demotes or drops what is no longer
    /// affordable, promotes what is, and expires old future transactions.
    pub fn update(&mut self, accounts: &dyn Fn(&Address) -> AccountState, now: Instant) {
        self.tick(now);
        let ttl = self.config.future_ttl;
        let addrs: Vec<Address> = self.senders.keys().copied().collect();
        for addr in addrs {
            self.sync(&addr, accounts(&addr));
            let Some(sender) = self.senders.get(&addr) else {
                continue;
            };
            let expired: Vec<u64> = sender
                .txs
                .iter()
                .filter(|(_, e)| !e.ready && now.saturating_duration_since(e.since) > ttl)
                .map(|(&nonce, _)| nonce)
                .collect();
            if !expired.is_empty() {
                for nonce in expired {
                    self.take(&addr, nonce);
                }
                self.refresh(&addr);
            }
        }
    }

    /// The sum of amount + fee of the sender's ready transactions, and the
    /// nonce after them (the one a wallet should use next).
    pub fn pending(&self, sender: &Address, account: AccountState) -> (u64, u64) {
        let (mut cost, mut next) = (0u64, account.nonce);
        if let Some(s) = self.senders.get(sender) {
            for (&nonce, e) in s.txs.range(account.nonce..) {
                if !e.ready || nonce != next {
                    break;
                }
                cost = cost.saturating_add(e.cost);
                next = next.saturating_add(1);
            }
        }
        (cost, next)
    }

    /// The sum of the amounts of ready transactions paying `to`.
    pub fn incoming(&self, to: &Address) -> u64 {
        self.senders
            .values()
            .flat_map(|s| s.txs.values())
            .filter(|e| e.ready && e.tx.to == *to)
            .fold(0u64, |sum, e| sum.saturating_add(e.tx.amount))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Encoded bytes of all pooled transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn ready_len(&self) -> usize {
        self.ready
    }

    pub fn future_len(&self) -> usize {
        self.future
    }

    /// Every pooled transaction and whether it is ready, by sender then nonce.
    pub fn entries(&self) -> Vec<(Transaction, bool)> {
        self.senders
            .values()
            .flat_map(|s| s.txs.values())
            .map(|e| (e.tx.clone(), e.ready))
            .collect()
    }

    fn tick(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    fn entry(&self, id: &TxId) -> Option<&Entry> {
        let (addr, nonce) = self.by_id.get(id)?;
        self.senders.get(addr)?.txs.get(nonce)
    }

    /// The fee a replacement of `old` of `size` bytes must pay: the bump, and
    /// a strictly higher fee rate.
    fn replacement_fee(&self, old: &Entry, size: usize) -> u64 {
        let fee = u128::from(old.tx.fee);
        let bump = fee + (fee * u128::from(self.config.min_bump_percent)).div_ceil(100);
        let rate = ((u128::from(old.rate) + 1) * size as u128).div_ceil(1000);
        u64::try_from(bump.max(rate)).unwrap_or(u64::MAX)
    }

    /// amount + fee of the sender's entries with nonces in `from..to`.
    fn chain_cost(&self, sender: &Address, from: u64, to: u64) -> Option<u64> {
        let Some(s) = self.senders.get(sender) else {
            return Some(0);
        };
        s.txs
            .range(from..to)
            .try_fold(0u64, |sum, (_, e)| sum.checked_add(e.cost))
    }

    /// Which entries to evict (cheapest chain ends first, never `exclude`'s)
    /// so that `added` more transactions of `size` bytes, after `freed` bytes
    /// go, fit. Each must pay a fee rate below `rate`, or the answer is Full.
    fn plan_evictions(
        &self,
        exclude: &Address,
        added: usize,
        size: usize,
        freed: usize,
        rate: u64,
    ) -> Result<Vec<(Address, u64)>, Rejected> {
        let mut count = self.len() + added;
        let mut bytes = self.bytes.saturating_sub(freed) + size;
        let mut victims = Vec::new();
        let mut tails = self
            .tails
            .iter()
            .filter_map(|&(r, id)| {
                let &(addr, nonce) = self.by_id.get(&id)?;
                (addr != *exclude).then_some((r, id, addr, nonce))
            })
            .peekable();
        // The entries before those already chosen, which became chain ends.
        let mut exposed = BTreeSet::new();
        while count > self.config.max_count || bytes > self.config.max_bytes {
            let from_tails = match (tails.peek(), exposed.first()) {
                (Some(t), Some(e)) => t < e,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let next = if from_tails {
                tails.next()
            } else {
                exposed.pop_first()
            };
            let Some((r, _, addr, nonce)) = next else {
                return Err(Rejected::Full);
            };
            let Some(sender) = self.senders.get(&addr).filter(|_| r < rate) else {
                return Err(Rejected::Full);
            };
            let Some(entry) = sender.txs.get(&nonce) else {
                return Err(Rejected::Full);
            };
            count -= 1;
            bytes = bytes.saturating_sub(entry.size);
            victims.push((addr, nonce));
            if let Some((&n, prev)) = sender.txs.range(..nonce).next_back() {
                exposed.insert((prev.rate, prev.id, addr, n));
            }
        }
        Ok(victims)
    }

    /// Takes one entry out of every index; the caller then calls `refresh`.
    fn take(&mut self, addr: &Address, nonce: u64) -> Option<Entry> {
        let sender = self.senders.get_mut(addr)?;
        let entry = sender.txs.remove(&nonce)?;
        if entry.ready {
            sender.ready = sender.ready.saturating_sub(1);
            sender.ready_cost = sender.ready_cost.saturating_sub(entry.cost);
            self.ready = self.ready.saturating_sub(1);
        } else {
            sender.future = sender.future.saturating_sub(1);
            self.future = self.future.saturating_sub(1);
        }
        self.by_id.remove(&entry.id);
        self.bytes = self.bytes.saturating_sub(entry.size);
        Some(entry)
    }

    /// Sets a sender's confirmed state: drops used nonces, then refreshes.
    fn sync(&mut self, addr: &Address, account: AccountState) {
        let Some(sender) = self.senders.get_mut(addr) else {
            return;
        };
        sender.account = account;
        let used: Vec<u64> = sender.txs.range(..account.nonce).map(|(&n, _)| n).collect();
        for nonce in used {
            self.take(addr, nonce);
        }
        self.refresh(addr);
    }

    /// Recomputes which of a sender's entries are ready (the gapless,
    /// affordable prefix from the account's nonce), drops future entries from
    /// the end of the chain while over the future limits, and re-indexes the
    /// chain end. A sender with no entries left is forgotten.
    fn refresh(&mut self, addr: &Address) {
        let Some(sender) = self.senders.get_mut(addr) else {
            return;
        };
        let (mut expected, mut cost, mut prefix) = (sender.account.nonce, 0u64, true);
        let (mut ready, mut future) = (0, 0);
        for (&nonce, e) in sender.txs.iter_mut() {
            let total = cost
                .checked_add(e.cost)
                .filter(|&t| t <= sender.account.balance);
            match total {
                Some(total) if prefix && nonce == expected => {
                    cost = total;
                    expected = expected.saturating_add(1);
                    ready += 1;
                    e.ready = true;
                }
                _ => {
                    prefix = false;
                    if e.ready {
                        e.ready = false;
                        e.since = self.clock.unwrap_or(e.since);
                    }
                    future += 1;
                }
            }
        }
        self.ready = (self.ready + ready).saturating_sub(sender.ready);
        self.future = (self.future + future).saturating_sub(sender.future);
        sender.ready = ready;
        sender.future = future;
        sender.ready_cost = cost;
        // Demotions can break the future limits. Future entries come after
        // the ready ones, so the chain's last entry is future.
        while sender.future > 0
            && (sender.future > self.config.max_future_per_sender
                || self.future > self.config.max_future_total)
        {
            let Some((_, e)) = sender.txs.pop_last() else {
                break;
            };
            sender.future -= 1;
            self.future = self.future.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(e.size);
            self.by_id.remove(&e.id);
        }
        if let Some(tail) = sender.tail.take() {
            self.tails.remove(&tail);
        }
        match sender.txs.last_key_value() {
            Some((_, e)) => {
                sender.tail = Some((e.rate, e.id));
                self.tails.insert((e.rate, e.id));
            }
            None => {
                self.senders.remove(addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_zebra::SigningKey;

    use super::*;
    use crate::tx::{address_of, MAX_MEMO};

    const G: [u8; 32] = [7; 32];
    const RICH: u64 = 1_000_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    fn addr(seed: u8) -> Address {
        address_of(&key(seed))
    }

    /// A signed transfer of 100 from `seed` (156 bytes: no memo).
    fn tx(seed: u8, nonce: u64, fee: u64) -> Transaction {
        Transaction::sign(&key(seed), &G, addr(200), 100, fee, nonce, vec![])
    }

    /// An unsigned transfer from any address (the mempool does not verify).
    fn raw(from: Address, nonce: u64, fee: u64, memo: usize) -> Transaction {
        Transaction {
            from,
            to: Address([0xee; 32]),
            amount: 1,
            fee,
            nonce,
            memo: vec![0xab; memo],
            signature: [0; 64],
        }
    }

    fn numbered(i: u32) -> Address {
        let mut bytes = [1u8; 32];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        Address(bytes)
    }

    fn acct(balance: u64, nonce: u64) -> AccountState {
        AccountState { balance, nonce }
    }

    fn small(max_count: usize) -> Mempool {
        Mempool::new(Config {
            max_count,
            ..Config::default()
        })
    }

    /// Every index agrees with the chains, and every limit holds.
    fn check(pool: &Mempool) {
        let c = &pool.config;
        assert!(pool.len() <= c.max_count);
        assert!(pool.bytes() <= c.max_bytes);
        assert!(pool.future_len() <= c.max_future_total);
        let (mut count, mut bytes, mut ready, mut future) = (0, 0, 0, 0);
        for (addr, s) in &pool.senders {
            assert!(!s.txs.is_empty());
            assert!(s.txs.len() <= c.max_per_sender);
            assert!(s.future <= c.max_future_per_sender);
            let (mut next, mut cost, mut prefix) = (s.account.nonce, 0, true);
            for (&nonce, e) in &s.txs {
                assert_eq!(pool.by_id[&e.id], (*addr, nonce));
                assert!(nonce >= s.account.nonce);
                if e.ready {
                    assert!(prefix, "a ready entry after a future one");
                    assert_eq!(nonce, next, "a gap in a ready chain");
                    next += 1;
                    cost += e.cost;
                    ready += 1;
                } else {
                    prefix = false;
                    future += 1;
                }
                count += 1;
                bytes += e.size;
            }
            assert!(cost <= s.account.balance);
            assert_eq!(cost, s.ready_cost);
            let last = s.txs.values().next_back().map(|e| (e.rate, e.id));
            assert_eq!(s.tail, last);
            assert!(pool.tails.contains(&last.unwrap()));
        }
        assert_eq!(pool.tails.len(), pool.senders.len());
        assert_eq!((count, bytes), (pool.len(), pool.bytes()));
        assert_eq!((ready, future), (pool.ready_len(), pool.future_len()));
    }

    #[test]
    fn ready_future_and_promotion_when_the_gap_is_filled() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let a = acct(RICH, 0);
        assert_eq!(pool.insert(tx(1, 0, 10), a, now), Ok(Inserted::Ready));
        assert_eq!(pool.insert(tx(1, 2, 10), a, now), Ok(Inserted::Future));
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 1));
        assert_eq!(pool.pending(&addr(1), a), (110, 1));
        assert_eq!(pool.insert(tx(1, 1, 10), a, now), Ok(Inserted::Ready));
        assert_eq!((pool.ready_len(), pool.future_len()), (3, 0));
        assert_eq!(pool.pending(&addr(1), a), (330, 3));
        assert_eq!(pool.incoming(&addr(200)), 300);
        assert!(pool.entries().iter().map(|(t, r)| (t.nonce, *r)).eq([
            (0, true),
            (1, true),
            (2, true)
        ]));
        assert_eq!(pool.insert(tx(1, 1, 10), a, now), Err(Rejected::Duplicate));
        check(&pool);
    }

    #[test]
    fn future_is_promoted_when_the_chain_nonce_advances() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let future = tx(1, 1, 10);
        assert_eq!(
            pool.insert(future.clone(), acct(RICH, 0), now),
            Ok(Inserted::Future)
        );
        // Nonce 0 was mined from elsewhere.
        pool.update(&|_| acct(RICH, 1), now);
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 0));
        assert_eq!(pool.select(1 << 20, 10), vec![future]);
        check(&pool);
    }

    #[test]
    fn replacement_needs_the_fee_bump() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let a = acct(RICH, 0);
        let old = tx(1, 0, 1000);
        pool.insert(old.clone(), a, now).unwrap();
        pool.insert(tx(1, 1, 1000), a, now).unwrap();
        assert_eq!(
            pool.insert(tx(1, 0, 1099), a, now),
            Err(Rejected::FeeTooLow { needed: 1100 })
        );
        assert_eq!(
            pool.insert(tx(1, 0, 1100), a, now),
            Ok(Inserted::Replaced(old.id()))
        );
        assert!(!pool.contains(&old.id()));
        assert!(pool.contains(&tx(1, 0, 1100).id()));
        assert_eq!((pool.len(), pool.ready_len()), (2, 2));
        // A fee-less transaction is replaced only at a higher fee rate.
        pool.insert(tx(2, 0, 0), a, now).unwrap();
        assert_eq!(pool.insert(tx(2, 0, 0), a, now), Err(Rejected::Duplicate));
        let needed = pool.insert(
            Transaction::sign(&key(2), &G, addr(201), 100, 0, 0, vec![]),
            a,
            now,
        );
        assert_eq!(needed, Err(Rejected::FeeTooLow { needed: 1 }));
        check(&pool);
    }

    #[test]
    fn future_entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let ttl = pool.config.future_ttl;
        let a = acct(RICH, 0);
        pool.insert(tx(1, 0, 10), a, t0).unwrap();
        let future = tx(1, 5, 10);
        pool.insert(future.clone(), a, t0).unwrap();
        pool.update(&|_| a, t0 + ttl - Duration::from_secs(1));
        assert!(pool.contains(&future.id()));
        pool.update(&|_| a, t0 + ttl + Duration::from_secs(1));
        assert!(!pool.contains(&future.id()));
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 0));
        check(&pool);
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_and_rejects_a_cheaper_newcomer() {
        let now = Instant::now();
        let mut pool = small(3);
        let a = acct(RICH, 0);
        for (seed, fee) in [(1, 10), (2, 20), (3, 30)] {
            pool.insert(tx(seed, 0, fee), a, now).unwrap();
        }
        assert_eq!(pool.insert(tx(4, 0, 5), a, now), Err(Rejected::Full));
        assert_eq!(pool.insert(tx(4, 0, 10), a, now), Err(Rejected::Full));
        assert_eq!(pool.insert(tx(4, 0, 25), a, now), Ok(Inserted::Ready));
        assert!(!pool.contains(&tx(1, 0, 10).id()));
        assert_eq!(pool.len(), 3);
        check(&pool);
    }

    #[test]
    fn eviction_never_leaves_a_gap_in_a_ready_chain() {
        let now = Instant::now();
        let a = acct(RICH, 0);
        let mut pool = small(4);
        // Sender 1's cheap entries sit before an expensive one.
        for (nonce, fee) in [(0, 5), (1, 5), (2, 50)] {
            pool.insert(tx(1, nonce, fee), a, now).unwrap();
        }
        pool.insert(tx(2, 0, 40), a, now).unwrap();
        pool.insert(tx(3, 0, 90), a, now).unwrap();
        assert!(
            !pool.contains(&tx(2, 0, 40).id()),
            "the cheapest chain end goes"
        );
        pool.insert(tx(4, 0, 95), a, now).unwrap();
        assert!(!pool.contains(&tx(1, 2, 50).id()));
        pool.insert(tx(5, 0, 99), a, now).unwrap();
        assert!(!pool.contains(&tx(1, 1, 5).id()));
        assert!(pool.contains(&tx(1, 0, 5).id()));
        check(&pool);

        // Freeing bytes may take several entries of one chain, from its end.
        let mut pool = Mempool::new(Config {
            max_bytes: 3 * 156,
            ..Config::default()
        });
        pool.insert(tx(1, 0, 10), a, now).unwrap();
        pool.insert(tx(1, 1, 20), a, now).unwrap();
        pool.insert(tx(2, 0, 1000), a, now).unwrap();
        let big = Transaction::sign(&key(3), &G, addr(200), 1, 5000, 0, vec![0; 156]);
        assert_eq!(pool.insert(big, a, now), Ok(Inserted::Ready));
        assert_eq!((pool.len(), pool.bytes()), (2, 3 * 156));
        assert!(pool.contains(&tx(2, 0, 1000).id()));
        check(&pool);
    }

    #[test]
    fn a_flood_from_one_sender_stays_bounded() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let attacker = numbered(u32::MAX);
        let a = acct(RICH, 0);
        for nonce in 1..=10_000 {
            let _ = pool.insert(raw(attacker, nonce, 1, MAX_MEMO), a, now);
        }
        assert_eq!(pool.future_len(), pool.config.max_future_per_sender);
        assert_eq!(pool.ready_len(), 0);
        // Ready ones stop at the sender limit.
        for nonce in 0..10_000 {
            let _ = pool.insert(raw(attacker, nonce, 1, MAX_MEMO), a, now);
        }
        assert_eq!(pool.len(), pool.config.max_per_sender);
        check(&pool);
        assert_eq!(pool.insert(tx(9, 0, 10_000), a, now), Ok(Inserted::Ready));
    }

    #[test]
    fn a_flood_from_many_senders_stays_bounded() {
        let now = Instant::now();
        let a = acct(RICH, 0);
        let mut pool = Mempool::new(Config::default());
        for i in 0..10_000 {
            let _ = pool.insert(raw(numbered(i), 1, 1, MAX_MEMO), a, now);
        }
        assert_eq!(pool.future_len(), pool.config.max_future_total);
        check(&pool);
        assert_eq!(pool.insert(tx(9, 0, 10_000), a, now), Ok(Inserted::Ready));

        // Ready floods fill the pool by count and bytes, then evict.
        let config = Config {
            max_count: 2_000,
            max_bytes: 512 << 10,
            ..Config::default()
        };
        let mut pool = Mempool::new(config.clone());
        for i in 0..10_000u32 {
            let fee = u64::from(i % 97) + 1;
            let _ = pool.insert(raw(numbered(i), 0, fee, MAX_MEMO), a, now);
            let _ = pool.insert(raw(numbered(i), 1, fee, 0), a, now);
            if i % 1_000 == 0 {
                check(&pool);
            }
        }
        check(&pool);
        assert!(pool.len() <= config.max_count && pool.bytes() <= config.max_bytes);
        assert!(pool.bytes() > config.max_bytes - 2 * 420 || pool.len() == config.max_count);
        assert_eq!(pool.insert(tx(9, 0, 10_000), a, now), Ok(Inserted::Ready));
        check(&pool);
    }

    #[test]
    fn select_keeps_nonce_order_and_prefers_higher_fee_rates() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let a = acct(RICH, 0);
        let (a0, a1, b0) = (tx(1, 0, 10), tx(1, 1, 1000), tx(2, 0, 500));
        for t in [a1.clone(), a0.clone(), b0.clone()] {
            pool.insert(t, a, now).unwrap();
        }
        pool.insert(tx(3, 1, 5000), a, now).unwrap(); // future: never selected
        assert_eq!(pool.select(1 << 20, 100), vec![b0.clone(), a0.clone(), a1]);
        assert_eq!(pool.select(1 << 20, 2), vec![b0.clone(), a0]);
        assert_eq!(pool.select(156, 100), vec![b0]);
        assert!(pool.select(155, 100).is_empty());
    }

    #[test]
    fn readiness_needs_cumulative_balance() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let a = acct(250, 0);
        assert_eq!(pool.insert(tx(1, 0, 10), a, now), Ok(Inserted::Ready));
        assert_eq!(pool.insert(tx(1, 1, 10), a, now), Ok(Inserted::Ready));
        let third = pool.insert(tx(1, 2, 10), a, now);
        assert_eq!(
            third,
            Err(Rejected::InsufficientBalance {
                needed: 330,
                balance: 250
            })
        );
        assert_eq!(pool.ready_len(), 2);
        assert_eq!(pool.pending(&addr(1), a), (220, 2));
        // A lower balance demotes the end of the chain.
        pool.update(&|_| acct(150, 0), now);
        assert_eq!((pool.ready_len(), pool.future_len()), (1, 1));
        pool.update(&|_| acct(250, 0), now);
        assert_eq!((pool.ready_len(), pool.future_len()), (2, 0));
        check(&pool);
    }

    #[test]
    fn update_drops_confirmed_nonces() {
        let now = Instant::now();
        let mut pool = Mempool::new(Config::default());
        let a = acct(RICH, 0);
        let txs: Vec<_> = (0..3).map(|n| tx(1, n, 10)).collect();
        for t in &txs {
            pool.insert(t.clone(), a, now).unwrap();
        }
        pool.update(&|_| acct(RICH, 2), now);
        assert!(!pool.contains(&txs[0].id()) && !pool.contains(&txs[1].id()));
        assert!(pool.contains(&txs[2].id()));
        assert_eq!((pool.len(), pool.ready_len()), (1, 1));
        assert_eq!(
            pool.insert(txs[0].clone(), acct(RICH, 2), now),
            Err(Rejected::StaleNonce {
                nonce: 0,
                expected: 2
            })
        );
        pool.update(&|_| acct(RICH, 3), now);
        assert!(pool.is_empty() && pool.bytes() == 0 && pool.senders.is_empty());
        check(&pool);
    }
}

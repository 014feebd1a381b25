//! Unit tests of the parent module.
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

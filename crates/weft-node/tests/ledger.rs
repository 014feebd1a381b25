//! The ledger across real nodes on loopback: transactions and blocks
//! gossiped, validated, mined and synced; forks, double spends and peers
//! that send bad data.
//!
//! Each test builds its own devnet genesis with prefunded keys, so nodes of
//! different tests never agree on a network.

#[path = "ledger/support.rs"]
mod support;

use std::time::Duration;

use support::*;
use weft_ledger::{
    service::{BlockId, TxStatus, BLOCK_TOPIC, TX_TOPIC},
    tx::address_of,
    Address, Transaction,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_confirmed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("confirmed", 300);
    let a = net.start(dir.path(), "a", true).await;
    let b = net.start(dir.path(), "b", false).await;
    let c = net.start(dir.path(), "c", false).await;
    connect(&b, &a).await;
    connect(&c, &a).await;
    connect(&c, &b).await;
    let to = address_of(&key(9));
    let tx = net.pay(1, to, 1_234, 0);
    let id = b.ledger().submit(tx).await.unwrap();
    for n in [&a, &b, &c] {
        wait_confirmed(n, id, 1).await;
    }
    let nodes = [&a, &b, &c];
    wait_same_tip(&nodes).await;
    for n in nodes {
        assert_eq!(n.ledger().account(&to).0.balance, 1_234);
        assert_eq!(
            n.ledger().account(&address_of(&key(1))).0.balance,
            PREFUND - 1_234 - FEE
        );
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_confirms_at_most_once() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("double", 300);
    let a = net.start(dir.path(), "a", true).await;
    let b = net.start(dir.path(), "b", false).await;
    let c = net.start(dir.path(), "c", false).await;
    connect(&b, &a).await;
    connect(&c, &a).await;
    // Same sender and nonce, different recipients, almost all the balance.
    let x = net.pay(2, address_of(&key(10)), PREFUND - 10_000, 0);
    let y = net.pay(2, address_of(&key(11)), PREFUND - 10_000, 0);
    let (rx, ry) = tokio::join!(b.ledger().submit(x.clone()), c.ledger().submit(y.clone()));
    assert!(rx.is_ok() || ry.is_ok());
    // Wait until one of them is confirmed on the miner, then a few more blocks.
    let confirmed = wait_until(Duration::from_secs(60), || async {
        for t in [&x, &y] {
            if confirmations(&a, t.id()).await >= 3 {
                return Some(t.id());
            }
        }
        None
    })
    .await;
    let nodes = [&a, &b, &c];
    wait_same_tip(&nodes).await;
    for n in nodes {
        let cx = confirmations(n, x.id()).await;
        let cy = confirmations(n, y.id()).await;
        assert!(cx == 0 || cy == 0, "both spends confirmed: {cx} {cy}");
        assert!(cx + cy > 0);
        assert!(confirmations(n, confirmed).await > 0);
        let sender = n.ledger().account(&address_of(&key(2))).0;
        assert_eq!(sender.balance, 10_000 - FEE);
        assert_eq!(sender.nonce, 1);
        let paid = n.ledger().account(&address_of(&key(10))).0.balance
            + n.ledger().account(&address_of(&key(11))).0.balance;
        assert_eq!(paid, PREFUND - 10_000);
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_miners_converge_on_most_work_and_requeue_lost_payments() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("partition", 200);
    // Two miners that never met: two branches.
    let a = net.start(dir.path(), "a", true).await;
    let b = net.start(dir.path(), "b", true).await;
    // A payment only A's side hears of.
    let tx = net.pay(3, address_of(&key(12)), 777, 0);
    let id = a.ledger().submit(tx.clone()).await.unwrap();
    wait_confirmed(&a, id, 1).await;
    wait_height(&a, 6).await;
    wait_height(&b, 6).await;
    assert_ne!(a.ledger().tip().hash, b.ledger().tip().hash);
    // Heal: whichever branch has more work wins everywhere.
    connect(&b, &a).await;
    wait_same_tip(&[&a, &b]).await;
    // The payment is confirmed on the winning chain, re-queued if it was lost.
    for n in [&a, &b] {
        wait_confirmed(n, id, 1).await;
        assert_eq!(n.ledger().account(&address_of(&key(12))).0.balance, 777);
    }
    for n in [a, b] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_genesis_peer_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Devnet::new("genesis-a", 300);
    let theirs = Devnet::new("genesis-b", 300);
    let a = ours.start(dir.path(), "a", false).await;
    let b = theirs.start(dir.path(), "b", false).await;
    let err = b
        .net()
        .dial(a.info().listen_addrs[0].clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("network"), "{err}");
    for n in [a, b] {
        n.shutdown().await;
    }
}

/// A bare libp2p peer on the devnet's network that sends whatever bytes a
/// test gives it: the ledger's validation is all that stands in the way.
async fn rogue(net: &Devnet, victim: &weft_node::Node) -> weft_net::Network {
    let id = weft_node::network_id(&net.name, &net.genesis);
    let cfg = weft_net::Config::loopback(weft_net::Identity::generate(), &id);
    let mut registry = weft_net::Registry::default();
    let rogue = weft_net::start(cfg, &mut registry).await.unwrap();
    rogue
        .handle()
        .dial(victim.info().listen_addrs[0].clone())
        .await
        .unwrap();
    // Subscribed, so gossipsub knows the victim listens on both topics.
    let _txs = rogue.handle().subscribe(TX_TOPIC, 16).await.unwrap();
    let _blocks = rogue.handle().subscribe(BLOCK_TOPIC, 16).await.unwrap();
    std::mem::forget((_txs, _blocks));
    rogue
}

/// Publishes until gossipsub has a peer to send to.
async fn send(rogue: &weft_net::Network, topic: &str, data: Vec<u8>) {
    wait_until(Duration::from_secs(20), || {
        let data = data.clone();
        async move {
            rogue
                .handle()
                .publish(topic, data)
                .await
                .ok()
                .filter(|sent| *sent)
        }
    })
    .await;
}

async fn penalties(victim: &weft_node::Node, peer: weft_net::PeerId) -> Option<u32> {
    let peers = victim.net().peers().await.unwrap();
    peers
        .iter()
        .find(|p| p.peer_id == peer)
        .map(|p| p.penalties)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_from_a_peer_is_rejected_not_forwarded_and_penalised() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("bad-data", 300);
    let victim = net.start(dir.path(), "victim", false).await;
    let watcher = net.start(dir.path(), "watcher", false).await;
    connect(&watcher, &victim).await;
    let rogue = rogue(&net, &victim).await;
    let g = net.genesis.hash().0;
    let miner = Address([0xbb; 32]);

    // Control: a valid transaction from the rogue is accepted and forwarded.
    let good = net.pay(5, address_of(&key(13)), 5, 0);
    send(&rogue, TX_TOPIC, good.encode()).await;
    wait_until(Duration::from_secs(20), || async {
        matches!(
            watcher.ledger().tx_status(good.id()).await.unwrap(),
            TxStatus::Pending(_)
        )
        .then_some(())
    })
    .await;

    let mut bad_sig = net.pay(6, address_of(&key(13)), 5, 0);
    bad_sig.signature[7] ^= 1;
    let overspend = net.pay(6, address_of(&key(13)), PREFUND * 2, 0);
    let other_genesis =
        Transaction::sign(&key(6), &[7; 32], address_of(&key(13)), 5, FEE, 0, vec![]);
    let mut bad_pow = victim.ledger().template(miner);
    let target = bad_pow.header.target;
    while weft_ledger::pow::meets(&bad_pow.hash().0, &target) {
        bad_pow.header.nonce += 1;
    }
    let mut bad_root = victim.ledger().template(miner);
    bad_root.header.tx_root = [9; 32];
    solve(&mut bad_root);
    let memo_tx =
        |i: u64| Transaction::sign(&key(7), &g, address_of(&key(13)), 1, FEE, i, vec![0; 256]);
    let mut oversized = victim.ledger().template(miner);
    oversized.txs = (0..10_200).map(memo_tx).collect();
    oversized.header.tx_root = weft_ledger::block::merkle_root(&oversized.txs);
    solve(&mut oversized);
    assert!(oversized.size() > weft_ledger::block::MAX_BLOCK_BYTES);

    let items: Vec<(&str, Vec<u8>)> = vec![
        (TX_TOPIC, bad_sig.encode()),
        (TX_TOPIC, overspend.encode()),
        (TX_TOPIC, other_genesis.encode()),
        (BLOCK_TOPIC, bad_pow.encode()),
        (BLOCK_TOPIC, bad_root.encode()),
        (BLOCK_TOPIC, oversized.encode()),
    ];
    // Each item from a fresh rogue peer: gossipsub's own scoring would
    // otherwise stop listening to a peer after a few invalid messages.
    for (topic, data) in items {
        let sender = self::rogue(&net, &victim).await;
        let id = sender.handle().local_peer_id();
        send(&sender, topic, data).await;
        wait_until(Duration::from_secs(20), || async {
            (penalties(&victim, id).await.unwrap_or(0) >= 1).then_some(())
        })
        .await;
        sender.shutdown().await;
    }
    // Nothing bad was stored or forwarded.
    for tx in [&bad_sig, &overspend, &other_genesis] {
        for n in [&victim, &watcher] {
            assert!(matches!(
                n.ledger().tx_status(tx.id()).await.unwrap(),
                TxStatus::Unknown
            ));
        }
    }
    for b in [&bad_pow, &bad_root, &oversized] {
        for n in [&victim, &watcher] {
            let found = n.ledger().block(BlockId::Hash(b.hash())).await.unwrap();
            assert!(found.is_none(), "a bad block was stored");
        }
    }
    rogue.shutdown().await;
    for n in [victim, watcher] {
        n.shutdown().await;
    }
}

fn solve(b: &mut weft_ledger::Block) {
    let g = std::sync::atomic::AtomicU64::new(0);
    weft_ledger::pow::search(&mut b.header, 0, 1, &g, 0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_syncs_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    // Millisecond blocks: the difficulty falls to the minimum.
    let net = Devnet::new("late", 1);
    let a = net.start(dir.path(), "a", true).await;
    let tx = net.pay(4, address_of(&key(14)), 999, 0);
    a.ledger().submit(tx.clone()).await.unwrap();
    wait_height(&a, 320).await;
    let target = a.ledger().tip().height;
    let started = std::time::Instant::now();
    let d = net.start(dir.path(), "d", false).await;
    connect(&d, &a).await;
    wait_until(Duration::from_secs(120), || async {
        (d.ledger().tip().height >= target).then_some(())
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "late joiner synced {target} blocks in {:.2} s: {:.0} blocks/s",
        took.as_secs_f64(),
        target as f64 / took.as_secs_f64()
    );
    let at = |n: &weft_node::Node| {
        let n = n.ledger().clone();
        async move {
            n.block(BlockId::Height(target))
                .await
                .unwrap()
                .unwrap()
                .0
                .hash()
        }
    };
    assert_eq!(at(&a).await, at(&d).await);
    assert!(confirmations(&d, tx.id()).await > 0);
    assert_eq!(d.ledger().account(&address_of(&key(14))).0.balance, 999);
    for n in [a, d] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_slightly_ahead_are_set_aside_far_ahead_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("skew", 300);
    let victim = net.start(dir.path(), "victim", false).await;
    let miner = Address([0xcc; 32]);
    let height = victim.ledger().tip().height;

    // Far in the future: invalid, and the sender pays for it.
    let far_sender = rogue(&net, &victim).await;
    let mut far = victim.ledger().template(miner);
    far.header.timestamp = now_ms() + 20 * 60_000;
    solve(&mut far);
    send(&far_sender, BLOCK_TOPIC, far.encode()).await;
    let far_id = far_sender.handle().local_peer_id();
    wait_until(Duration::from_secs(20), || async {
        (penalties(&victim, far_id).await.unwrap_or(0) >= 1).then_some(())
    })
    .await;

    // A couple of seconds past the allowed drift: set aside, then accepted.
    let near_sender = rogue(&net, &victim).await;
    let mut near = victim.ledger().template(miner);
    near.header.timestamp = now_ms() + weft_ledger::chain::MAX_FUTURE_MS + 2_000;
    solve(&mut near);
    send(&near_sender, BLOCK_TOPIC, near.encode()).await;
    wait_until(Duration::from_secs(30), || async {
        (victim.ledger().tip().hash == near.hash()).then_some(())
    })
    .await;
    assert_eq!(victim.ledger().tip().height, height + 1);
    let near_id = near_sender.handle().local_peer_id();
    assert_eq!(penalties(&victim, near_id).await.unwrap_or(0), 0);
    assert!(victim
        .ledger()
        .block(BlockId::Hash(far.hash()))
        .await
        .unwrap()
        .is_none());
    for r in [far_sender, near_sender] {
        r.shutdown().await;
    }
    victim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mempool_flood_stays_bounded_and_honest_payments_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("flood", 300);
    let victim = net.start(dir.path(), "victim", false).await;
    let honest = net.start(dir.path(), "honest", false).await;
    connect(&honest, &victim).await;
    let flooder = rogue(&net, &victim).await;
    let g = net.genesis.hash().0;
    // Valid signatures, largest memo, nonces far ahead: held as future at best.
    for i in 0..6_000u64 {
        let from = key(1 + (i % 4) as u8);
        let tx = Transaction::sign(
            &from,
            &g,
            address_of(&key(15)),
            1,
            FEE,
            1 + i / 4,
            vec![7; 256],
        );
        let _ = flooder.handle().publish(TX_TOPIC, tx.encode()).await;
    }
    let honest_tx = net.pay(8, address_of(&key(16)), 42, 0);
    honest.ledger().submit(honest_tx.clone()).await.unwrap();
    wait_until(Duration::from_secs(30), || async {
        matches!(
            victim.ledger().tx_status(honest_tx.id()).await.unwrap(),
            TxStatus::Pending(_)
        )
        .then_some(())
    })
    .await;
    let (count, bytes) = victim.ledger().mempool_size();
    let limits = weft_ledger::mempool::Config::default();
    assert!(count <= limits.max_count && bytes <= limits.max_bytes);
    // Per sender, at most the future limit is held from the flood.
    assert!(
        count <= 4 * limits.max_future_per_sender + 1,
        "{count} pooled"
    );
    assert!(
        victim.ledger().throttled() > 0,
        "the flooding peer was not throttled"
    );
    flooder.shutdown().await;
    for n in [victim, honest] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_its_peer_leaving_midway() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("leave", 1);
    let a = net.start(dir.path(), "a", true).await;
    wait_height(&a, 1_200).await;
    // B takes a copy of A's chain.
    let b = net.start(dir.path(), "b", false).await;
    connect(&b, &a).await;
    wait_height(&b, 1_200).await;
    // D syncs from A, which leaves (and stops mining) partway through.
    let d = net.start(dir.path(), "d", false).await;
    connect(&d, &a).await;
    wait_until(Duration::from_secs(60), || async {
        (d.ledger().tip().height > 0).then_some(())
    })
    .await;
    a.shutdown().await;
    let stopped_at = d.ledger().tip().height;
    // With A gone, B's tip is the best chain there is; D carries on from B.
    connect(&d, &b).await;
    wait_until(Duration::from_secs(120), || async {
        let (bt, dt) = (b.ledger().tip(), d.ledger().tip());
        (dt == bt && dt.height >= 1_200).then_some(())
    })
    .await;
    eprintln!(
        "the sync source left when D was at height {stopped_at}; D reached {}",
        d.ledger().tip().height
    );
    for n in [b, d] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarted_on_new_ports_can_be_dialed_again() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("redial", 300);
    let a = net.start(dir.path(), "a", false).await;
    let b = net.start(dir.path(), "b", false).await;
    connect(&b, &a).await;
    let id = a.info().peer_id;
    let old_quic = a
        .info()
        .listen_addrs
        .iter()
        .find(|m| m.to_string().contains("quic"))
        .cloned()
        .unwrap();
    let cfg = net.config(dir.path(), "a", false);
    a.shutdown().await;
    // Same identity, new ports, while B may still be trying an old address:
    // the dial of the new one goes ahead instead of waiting for the old.
    let a = weft_node::Node::start(cfg).await.unwrap();
    assert_eq!(a.info().peer_id, id);
    let stale = {
        let net = b.net().clone();
        tokio::spawn(async move { net.dial(old_quic).await })
    };
    tokio::task::yield_now().await;
    connect(&b, &a).await;
    stale.abort();
    for n in [a, b] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_payments_survive_a_restart_and_are_gossiped_again() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::new("mempool-restart", 300);
    let a = net.start(dir.path(), "a", false).await;
    let to = address_of(&key(9));
    let ready = a.ledger().submit(net.pay(1, to, 500, 0)).await.unwrap();
    // A nonce gap: held as a future transaction.
    let held = a.ledger().submit(net.pay(2, to, 700, 1)).await.unwrap();
    a.shutdown().await;

    let a = net.start(dir.path(), "a", false).await;
    for id in [ready, held] {
        let status = a.ledger().tx_status(id).await.unwrap();
        assert!(
            matches!(status, TxStatus::Pending(_)),
            "{id} after a restart: {status:?}"
        );
    }
    assert_eq!(a.ledger().mempool_size().0, 2);

    // A miner that never saw the payment confirms it once A gossips it again.
    let m = net.start(dir.path(), "m", true).await;
    connect(&a, &m).await;
    wait_confirmed(&m, ready, 1).await;
    wait_confirmed(&a, ready, 1).await;
    assert_eq!(a.ledger().account(&to).0.balance, 500);
    for n in [a, m] {
        n.shutdown().await;
    }
}

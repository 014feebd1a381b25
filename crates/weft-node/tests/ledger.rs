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
use weft_ledger::{tx::address_of, Transaction};

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
    let _ = Transaction::decode(&[]);
    for n in [a, b] {
        n.shutdown().await;
    }
}

//! Helpers for the ledger tests: a devnet genesis with prefunded keys, nodes
//! on loopback, and waits with deadlines.
#![allow(dead_code)]

use std::{
    future::Future,
    path::Path,
    time::{Duration, Instant},
};

use ed25519_zebra::SigningKey;
use weft_ledger::{
    genesis::Alloc, service::TxStatus, tx::address_of, Address, Genesis, Transaction, TxId,
};
use weft_node::{config::Mining, Node, NodeConfig};

pub(crate) const PREFUND: u64 = 1_000_000;
pub(crate) const FEE: u64 = 10;

pub(crate) fn key(i: u8) -> SigningKey {
    SigningKey::from([i; 32])
}

pub(crate) struct Devnet {
    pub(crate) name: String,
    pub(crate) genesis: Genesis,
}

impl Devnet {
    /// A genesis with keys 1..=8 prefunded and blocks every `interval_ms`.
    pub(crate) fn new(name: &str, interval_ms: u64) -> Self {
        let genesis = Genesis {
            name: format!("test {name}"),
            timestamp: now_ms() - 60_000,
            alloc: (1..=8)
                .map(|i| Alloc {
                    address: address_of(&key(i)),
                    amount: PREFUND,
                })
                .collect(),
            block_interval_ms: interval_ms,
            reward: 1_000,
            difficulty: 50,
        };
        Self {
            name: format!("ledger-{name}"),
            genesis,
        }
    }

    pub(crate) fn config(&self, dir: &Path, node: &str, mine: bool) -> NodeConfig {
        let mut c = NodeConfig::loopback(dir.join(node), &self.name);
        c.genesis = self.genesis.clone();
        c.mine = mine.then_some(Mining {
            miner: Some(Address([0xaa; 32])),
            threads: 1,
        });
        c
    }

    pub(crate) async fn start(&self, dir: &Path, node: &str, mine: bool) -> Node {
        Node::start(self.config(dir, node, mine)).await.unwrap()
    }

    pub(crate) fn pay(&self, from: u8, to: Address, amount: u64, nonce: u64) -> Transaction {
        Transaction::sign(
            &key(from),
            &self.genesis.hash().0,
            to,
            amount,
            FEE,
            nonce,
            Vec::new(),
        )
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub(crate) async fn connect(b: &Node, a: &Node) {
    b.net()
        .dial(a.info().listen_addrs[0].clone())
        .await
        .unwrap();
}

/// Polls `f` every 100 ms until it gives `Some`, failing after `limit`.
pub(crate) async fn wait_until<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn confirmations(n: &Node, id: TxId) -> u64 {
    match n.ledger().tx_status(id).await.unwrap() {
        TxStatus::Confirmed { confirmations, .. } => confirmations,
        _ => 0,
    }
}

pub(crate) async fn wait_confirmed(n: &Node, id: TxId, depth: u64) {
    wait_until(Duration::from_secs(60), || async {
        (confirmations(n, id).await >= depth).then_some(())
    })
    .await
}

pub(crate) async fn wait_height(n: &Node, height: u64) {
    wait_until(Duration::from_secs(60), || async {
        (n.ledger().tip().height >= height).then_some(())
    })
    .await
}

/// Waits until all nodes report the same tip (and it stays for a moment).
pub(crate) async fn wait_same_tip(nodes: &[&Node]) {
    wait_until(Duration::from_secs(60), || async {
        let tips: Vec<_> = nodes.iter().map(|n| n.ledger().tip().hash).collect();
        tips.windows(2).all(|w| w[0] == w[1]).then_some(())
    })
    .await
}

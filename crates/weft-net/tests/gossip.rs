//! Gossip between real nodes on 127.0.0.1 (real sockets, one process):
//! delivery through a line of validating nodes, validation before
//! forwarding, penalties and bans, and the local error cases.
//!
//! The nodes run the DHT in client mode, so nobody enters a routing table
//! and the topology is exactly the connections each test dials.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use weft_testkit::wait_for;

use tokio::sync::mpsc;
use weft_net::{
    Config, DhtMode, GossipError, GossipMessage, Identity, Network, NetworkHandle, PeerId,
    Registry, Verdict,
};

const TOPIC: &str = "blocks";
const DEADLINE: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn node(network: &str) -> Network {
    let mut config = Config::loopback(Identity::generate(), network);
    config.dht_mode = DhtMode::Client;
    let mut registry = Registry::default();
    weft_net::start(config, &mut registry)
        .await
        .expect("node starts")
}

async fn first_addr(h: &NetworkHandle) -> weft_net::Multiaddr {
    h.listen_addrs().await.unwrap().remove(0)
}

/// `a` dials `b` and waits until `b` has identified.
async fn connect(a: &NetworkHandle, b: &NetworkHandle) {
    let peer = a.dial(first_addr(b).await).await.expect("dial");
    assert_eq!(peer, b.local_peer_id());
}

async fn connected(h: &NetworkHandle, peer: PeerId) -> bool {
    h.peers().await.unwrap().iter().any(|p| p.peer_id == peer)
}

async fn mesh_peers(h: &NetworkHandle, topic: &str) -> Vec<PeerId> {
    h.topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.topic == topic)
        .map(|t| t.mesh_peers)
        .unwrap_or_default()
}

/// Waits until every node's mesh for `topic` is exactly its neighbours.
async fn wait_for_mesh(nodes: &[&NetworkHandle], neighbours: &[Vec<PeerId>]) {
    for (h, expected) in nodes.iter().zip(neighbours) {
        let mut expected = expected.clone();
        expected.sort_by_key(|p| p.to_bytes());
        let ok = wait_for(DEADLINE, || {
            let expected = expected.clone();
            async move { mesh_peers(h, TOPIC).await == expected }
        })
        .await;
        assert!(
            ok,
            "mesh of {} never became {expected:?}: {:?}",
            h.local_peer_id(),
            h.topics().await.unwrap()
        );
    }
}

type Inbox = Arc<Mutex<Vec<GossipMessage>>>;

/// Reads `rx` in a task: records every message, then reports the verdict
/// `judge` gives it.
fn validate(
    h: &NetworkHandle,
    mut rx: mpsc::Receiver<GossipMessage>,
    judge: fn(&[u8]) -> Verdict,
) -> Inbox {
    let inbox: Inbox = Arc::default();
    let (h, seen) = (h.clone(), inbox.clone());
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let verdict = judge(&m.data);
            seen.lock().unwrap().push(m.clone());
            if h.report_message(m.id, m.propagation_source, verdict)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    inbox
}

fn count(inbox: &Inbox, data: &[u8]) -> usize {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.data == data)
        .count()
}

async fn received(inbox: &Inbox, data: &[u8]) -> bool {
    count(inbox, data) > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_a_line_of_validating_nodes_once() {
    init_tracing();
    const N: usize = 5;
    let mut nodes = Vec::new();
    for _ in 0..N {
        nodes.push(node("gossip-line").await);
    }
    let h: Vec<NetworkHandle> = nodes.iter().map(|n| n.handle().clone()).collect();
    let ids: Vec<PeerId> = h.iter().map(NetworkHandle::local_peer_id).collect();
    for i in 1..N {
        connect(&h[i], &h[i - 1]).await;
    }
    let mut inboxes = Vec::new();
    for node in &h {
        let rx = node.subscribe(TOPIC, 16).await.unwrap();
        inboxes.push(validate(node, rx, |_| Verdict::Accept));
    }
    let neighbours: Vec<Vec<PeerId>> = (0..N)
        .map(|i| {
            let mut v = Vec::new();
            if i > 0 {
                v.push(ids[i - 1]);
            }
            if i + 1 < N {
                v.push(ids[i + 1]);
            }
            v
        })
        .collect();
    wait_for_mesh(&h.iter().collect::<Vec<_>>(), &neighbours).await;

    // From one end to the other: four hops, each validated before forwarding.
    assert!(h[0].publish(TOPIC, b"first".to_vec()).await.unwrap());
    for (i, inbox) in inboxes.iter().enumerate().skip(1) {
        assert!(
            wait_for(DEADLINE, || received(inbox, b"first")).await,
            "node {i} never got the message"
        );
    }
    // And back: once it arrives everywhere, anything sent earlier has too.
    assert!(h[N - 1].publish(TOPIC, b"second".to_vec()).await.unwrap());
    for (i, inbox) in inboxes.iter().enumerate().take(N - 1) {
        assert!(
            wait_for(DEADLINE, || received(inbox, b"second")).await,
            "node {i} never got the second message"
        );
    }
    for (i, inbox) in inboxes.iter().enumerate() {
        let expect_first = usize::from(i != 0);
        let expect_second = usize::from(i != N - 1);
        assert_eq!(count(inbox, b"first"), expect_first, "node {i}");
        assert_eq!(count(inbox, b"second"), expect_second, "node {i}");
        for m in inbox.lock().unwrap().iter() {
            assert_eq!(m.topic, TOPIC);
            if m.data == b"first" {
                assert_eq!(m.source, Some(ids[0]), "signed author");
                assert_eq!(
                    m.propagation_source,
                    ids[i - 1],
                    "forwarded by the neighbour"
                );
            }
        }
    }

    // The same content again is the same message, whoever publishes it.
    assert!(!h[0].publish(TOPIC, b"first".to_vec()).await.unwrap());
    assert!(!h[2].publish(TOPIC, b"first".to_vec()).await.unwrap());

    // Nobody was penalised along the way.
    for node in &h {
        for p in node.peers().await.unwrap() {
            assert_eq!(p.penalties, 0, "{p:?}");
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_is_not_forwarded() {
    init_tracing();
    let (a, b, c) = (
        node("gossip-reject").await,
        node("gossip-reject").await,
        node("gossip-reject").await,
    );
    let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
    connect(hb, ha).await;
    connect(hc, hb).await;
    let _a_rx = ha.subscribe(TOPIC, 16).await.unwrap();
    let b_inbox = validate(hb, hb.subscribe(TOPIC, 16).await.unwrap(), |data| {
        if data.starts_with(b"bad") {
            Verdict::Reject
        } else {
            Verdict::Accept
        }
    });
    let c_inbox = validate(hc, hc.subscribe(TOPIC, 16).await.unwrap(), |_| {
        Verdict::Accept
    });
    let (ia, ib, ic) = (ha.local_peer_id(), hb.local_peer_id(), hc.local_peer_id());
    wait_for_mesh(&[ha, hb, hc], &[vec![ib], vec![ia, ic], vec![ib]]).await;

    assert!(ha.publish(TOPIC, b"bad block".to_vec()).await.unwrap());
    assert!(wait_for(DEADLINE, || received(&b_inbox, b"bad block")).await);
    // B handles its messages in order, so once C has this one, B has long
    // rejected the bad one; the path from A to C works.
    assert!(ha.publish(TOPIC, b"good block".to_vec()).await.unwrap());
    assert!(
        wait_for(DEADLINE, || received(&c_inbox, b"good block")).await,
        "an accepted message should cross B"
    );
    assert_eq!(
        count(&c_inbox, b"bad block"),
        0,
        "B forwarded a rejected message"
    );
    assert_eq!(count(&c_inbox, b"good block"), 1);

    let a_at_b = hb
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == ia)
        .expect("A is still connected to B");
    assert_eq!(a_at_b.penalties, 1, "one rejected message, one offence");
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enough_penalties_ban_a_peer_both_ways() {
    init_tracing();
    let (x, y) = (node("gossip-ban").await, node("gossip-ban").await);
    let (hx, hy) = (x.handle(), y.handle());
    let (ix, iy) = (hx.local_peer_id(), hy.local_peer_id());
    connect(hy, hx).await;
    let max = Config::new(Identity::generate()).max_penalties;
    assert_eq!(max, 5);

    for i in 1..max {
        hx.penalise(iy, "test offence").await.unwrap();
        let info = hx.peers().await.unwrap();
        let at_x = info
            .iter()
            .find(|p| p.peer_id == iy)
            .expect("still connected");
        assert_eq!(at_x.penalties, i);
    }
    hx.penalise(iy, "last straw").await.unwrap();
    let apart = wait_for(DEADLINE, || async {
        !connected(hx, iy).await && !connected(hy, ix).await
    })
    .await;
    assert!(apart, "a banned peer stayed connected");

    // The banned peer dials again: refused.
    let err = hy.dial(first_addr(hx).await).await;
    assert!(err.is_err(), "a banned peer got back in: {err:?}");
    assert!(!connected(hx, iy).await);
    // And we do not dial it either.
    let err = hx.dial(first_addr(hy).await).await.unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    assert!(!connected(hx, iy).await);
    x.shutdown().await;
    y.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_errors_and_no_peers() {
    init_tracing();
    let n = node("gossip-local").await;
    let h = n.handle();

    // No peers is not an error.
    assert!(!h.publish(TOPIC, b"hello".to_vec()).await.unwrap());
    let _rx = h.subscribe(TOPIC, 4).await.unwrap();
    assert!(!h.publish(TOPIC, b"hello again".to_vec()).await.unwrap());

    // Size limit, checked before anything is sent.
    let max = weft_net::DEFAULT_GOSSIP_MAX_SIZE;
    assert!(!h.publish(TOPIC, vec![7; max]).await.unwrap());
    assert_eq!(
        h.publish(TOPIC, vec![7; max + 1]).await.unwrap_err(),
        GossipError::TooLarge { size: max + 1, max }
    );

    // One live receiver per topic.
    assert_eq!(
        h.subscribe(TOPIC, 4).await.unwrap_err(),
        GossipError::AlreadySubscribed(TOPIC.into())
    );
    h.unsubscribe(TOPIC).await.unwrap();
    assert_eq!(
        h.unsubscribe(TOPIC).await.unwrap_err(),
        GossipError::NotSubscribed(TOPIC.into())
    );
    let rx = h.subscribe(TOPIC, 4).await.unwrap();
    drop(rx);
    let _rx = h
        .subscribe(TOPIC, 4)
        .await
        .expect("the old receiver is gone");

    assert!(matches!(
        h.subscribe("", 4).await.unwrap_err(),
        GossipError::InvalidTopic(_)
    ));

    // The topic limit.
    let mut receivers = Vec::new();
    for i in 1..weft_net::MAX_TOPICS {
        receivers.push(h.subscribe(&format!("t{i}"), 1).await.unwrap());
    }
    assert_eq!(h.topics().await.unwrap().len(), weft_net::MAX_TOPICS);
    assert_eq!(
        h.subscribe("one-too-many", 1).await.unwrap_err(),
        GossipError::TooManyTopics {
            max: weft_net::MAX_TOPICS
        }
    );
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_mebibyte_block_fits() {
    init_tracing();
    let (a, b) = (node("gossip-big").await, node("gossip-big").await);
    let (ha, hb) = (a.handle(), b.handle());
    connect(hb, ha).await;
    let _a_rx = ha.subscribe(TOPIC, 1).await.unwrap();
    let inbox = validate(hb, hb.subscribe(TOPIC, 1).await.unwrap(), |_| {
        Verdict::Accept
    });
    wait_for_mesh(
        &[ha, hb],
        &[vec![hb.local_peer_id()], vec![ha.local_peer_id()]],
    )
    .await;
    let block: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    assert!(ha.publish(TOPIC, block.clone()).await.unwrap());
    assert!(
        wait_for(DEADLINE, || received(&inbox, &block)).await,
        "a 4 MiB block never arrived"
    );
    a.shutdown().await;
    b.shutdown().await;
}

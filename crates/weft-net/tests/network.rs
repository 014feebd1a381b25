//! In-process networks of real nodes on 127.0.0.1 (real TCP/QUIC sockets,
//! one process): DHT lookups across 50+ nodes, and network separation.

use std::{collections::HashMap, time::Duration};
use weft_testkit::wait_for;

use rand::{seq::SliceRandom, Rng};
use weft_net::{Config, DialError, Identity, Network, NetworkHandle, PeerId, Registry};

async fn node(network: &str, bootstrap: Vec<weft_net::Multiaddr>, tcp_only: bool) -> Network {
    let mut config = Config::loopback(Identity::generate(), network);
    if tcp_only {
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    }
    config.bootstrap = bootstrap;
    let mut registry = Registry::default();
    weft_net::start(config, &mut registry)
        .await
        .expect("node starts")
}

async fn first_addr(h: &NetworkHandle) -> weft_net::Multiaddr {
    h.listen_addrs().await.unwrap().remove(0)
}

async fn connected(h: &NetworkHandle, peer: PeerId) -> bool {
    h.peers().await.unwrap().iter().any(|p| p.peer_id == peer)
}

async fn in_dht(h: &NetworkHandle, peer: PeerId) -> bool {
    h.dht()
        .await
        .unwrap()
        .buckets
        .iter()
        .any(|b| b.peers.contains(&peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_lookup_finds_every_node_among_fifty() {
    const NODES: usize = 52;
    let mut rng = rand::thread_rng();
    let mut nodes: Vec<Network> = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let bootstrap = if i == 0 {
            vec![]
        } else {
            let j = rng.gen_range(0..i);
            vec![first_addr(nodes[j].handle()).await]
        };
        nodes.push(node("dht50", bootstrap, true).await);
    }
    let handles: Vec<NetworkHandle> = nodes.iter().map(|n| n.handle().clone()).collect();

    // Every node gets into someone's routing table and has a non-empty one.
    let ready = wait_for(Duration::from_secs(60), || {
        let handles = handles.clone();
        async move {
            for h in &handles {
                if h.dht().await.unwrap().size == 0 {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(ready, "some node never got a routing table entry");

    // Snapshot the routing tables before the lookups fill them, to replay
    // Kademlia's iterative lookup over them for hop counts (below).
    let mut tables = HashMap::new();
    for h in &handles {
        let dht = h.dht().await.unwrap();
        let peers: Vec<PeerId> = dht.buckets.into_iter().flat_map(|b| b.peers).collect();
        tables.insert(h.local_peer_id(), peers);
    }
    let mut sizes: Vec<usize> = tables.values().map(Vec::len).collect();
    sizes.sort_unstable();
    println!(
        "routing table sizes before lookups: min {} median {} max {}",
        sizes[0],
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );

    // From a random other node, look up every node's peer id.
    let mut order: Vec<usize> = (0..NODES).collect();
    order.shuffle(&mut rng);
    let mut stats = Vec::new();
    for chunk in order.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for &target in chunk {
            let mut source = rng.gen_range(0..NODES);
            if source == target {
                source = (source + 1) % NODES;
            }
            let h = handles[source].clone();
            let peer = handles[target].local_peer_id();
            set.spawn(async move { (source, target, h.find_peer(peer).await.unwrap()) });
        }
        while let Some(r) = set.join_next().await {
            let (source, target, lookup) = r.unwrap();
            assert!(
                lookup.found,
                "node {source} could not find node {target} ({}) through the DHT",
                lookup.target
            );
            stats.push(lookup);
        }
    }
    let mut requests: Vec<u32> = stats.iter().map(|l| l.requests).collect();
    requests.sort_unstable();
    let mut ms: Vec<u128> = stats.iter().map(|l| l.duration.as_millis()).collect();
    ms.sort_unstable();
    println!(
        "{} lookups across {NODES} nodes: DHT requests per lookup min {} median {} max {}; \
         successful responses median {}; duration median {} ms, max {} ms",
        stats.len(),
        requests[0],
        requests[requests.len() / 2],
        requests[requests.len() - 1],
        {
            let mut s: Vec<u32> = stats.iter().map(|l| l.successes).collect();
            s.sort_unstable();
            s[s.len() / 2]
        },
        ms[ms.len() / 2],
        ms[ms.len() - 1],
    );

    let mut hops = Vec::new();
    for target in &handles {
        let target = target.local_peer_id();
        let source = loop {
            let s = handles[rng.gen_range(0..NODES)].local_peer_id();
            if s != target {
                break s;
            }
        };
        hops.push(simulated_hops(&tables, source, target));
    }
    let unreached = hops.iter().filter(|h| h.is_none()).count();
    let mut hops: Vec<usize> = hops.into_iter().flatten().collect();
    hops.sort_unstable();
    println!(
        "replayed lookups that reach the target over the tables from before the lookups: {}/{}",
        hops.len(),
        hops.len() + unreached
    );
    if hops.is_empty() {
        return;
    }
    let mean = hops.iter().sum::<usize>() as f64 / hops.len() as f64;
    println!(
        "lookup hop counts (replayed over the routing tables as they were before the lookups): min {} median {} max {} mean {mean:.2}; histogram {:?}",
        hops[0],
        hops[hops.len() / 2],
        hops[hops.len() - 1],
        (0..=hops[hops.len() - 1]).map(|h| hops.iter().filter(|&&x| x == h).count()).collect::<Vec<_>>()
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// Rounds of an iterative Kademlia lookup (alpha 3, k 20) until some answer
/// names `target`; 0 when the source's own table already has it.
fn simulated_hops(
    tables: &HashMap<PeerId, Vec<PeerId>>,
    source: PeerId,
    target: PeerId,
) -> Option<usize> {
    use libp2p::kad::KBucketKey;
    let key = KBucketKey::from(target);
    let closest = |peers: &[PeerId]| {
        let mut v = peers.to_vec();
        v.sort_by_key(|p| KBucketKey::from(*p).distance(&key));
        v.truncate(20);
        v
    };
    let own = tables.get(&source)?;
    if own.contains(&target) {
        return Some(0);
    }
    let mut known = closest(own);
    let mut queried = std::collections::HashSet::new();
    for round in 1..=64 {
        let batch: Vec<PeerId> = known
            .iter()
            .filter(|p| !queried.contains(*p))
            .take(3)
            .copied()
            .collect();
        if batch.is_empty() {
            return None;
        }
        for peer in batch {
            queried.insert(peer);
            let answer = closest(tables.get(&peer).map(Vec::as_slice).unwrap_or(&[]));
            if answer.contains(&target) {
                return Some(round);
            }
            known.extend(answer);
        }
        known.sort_by_key(|p| KBucketKey::from(*p).distance(&key));
        known.dedup();
        known.truncate(20);
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_different_networks_do_not_stay_connected() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let x = node("x", vec![], false).await;
    let x_addr = first_addr(x.handle()).await;
    let x_id = x.handle().local_peer_id();

    // Control: a node on the same network connects and enters the DHT.
    let same = node("x", vec![x_addr.clone()], false).await;
    let same_id = same.handle().local_peer_id();
    assert!(
        wait_for(Duration::from_secs(20), || in_dht(x.handle(), same_id)).await,
        "a same-network peer should be accepted"
    );

    // An explicit dial from network y connects, identifies, and is refused.
    let y = node("y", vec![], false).await;
    let y_id = y.handle().local_peer_id();
    let err = y.handle().dial(x_addr.clone()).await.unwrap_err();
    assert!(
        matches!(&err, DialError::WrongNetwork { theirs, .. } if theirs == "x"),
        "{err}"
    );

    // A node of network y that bootstraps from x is refused too.
    let y2 = node("y", vec![x_addr.clone()], false).await;
    let y2_id = y2.handle().local_peer_id();

    let apart = wait_for(Duration::from_secs(20), || async {
        !connected(x.handle(), y_id).await
            && !connected(y.handle(), x_id).await
            && !connected(x.handle(), y2_id).await
            && !connected(y2.handle(), x_id).await
    })
    .await;
    assert!(apart, "nodes on networks x and y stayed connected");
    for (h, other) in [
        (x.handle(), y_id),
        (x.handle(), y2_id),
        (y.handle(), x_id),
        (y2.handle(), x_id),
    ] {
        assert!(
            !in_dht(h, other).await,
            "a peer from another network is in the DHT"
        );
    }
    // And they stay apart: a second explicit dial is refused the same way.
    let err = y.handle().dial(x_addr).await.unwrap_err();
    assert!(matches!(err, DialError::WrongNetwork { .. }), "{err}");
    assert!(connected(x.handle(), same_id).await);

    for n in [x, same, y, y2] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_bytes_and_unknown_protocols_are_refused() {
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    let a = node("streams", vec![], false).await;
    let b = node("streams", vec![], false).await;
    let proto = weft_net::StreamProtocol::new("/weft/test-echo/1");
    let mut incoming = a.handle().accept_streams(proto.clone()).unwrap();
    tokio::spawn(async move {
        while let Some((_, mut s)) = incoming.next().await {
            let mut buf = Vec::new();
            if s.read_to_end(&mut buf).await.is_ok() {
                let _ = s.write_all(&buf).await;
                let _ = s.close().await;
            }
        }
    });
    let a_id = b.handle().dial(first_addr(a.handle()).await).await.unwrap();
    let mut s = b.handle().open_stream(a_id, proto).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&payload).await.unwrap();
    s.close().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, payload);

    // A protocol the peer does not speak is refused, and the peer lives on.
    let err = b
        .handle()
        .open_stream(a_id, weft_net::StreamProtocol::new("/weft/nonsense/1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not support"), "{err}");
    assert!(a.handle().listen_addrs().await.is_ok());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_peers_is_enforced() {
    let mut config = Config::loopback(Identity::generate(), "limits");
    config.max_peers = 2;
    let mut registry = Registry::default();
    let hub = weft_net::start(config, &mut registry).await.unwrap();
    let hub_addr = first_addr(hub.handle()).await;

    let mut others = Vec::new();
    let mut accepted = 0;
    for _ in 0..4 {
        let n = node("limits", vec![], false).await;
        if n.handle().dial(hub_addr.clone()).await.is_ok() {
            accepted += 1;
        }
        others.push(n);
    }
    assert_eq!(accepted, 2, "exactly max_peers dials are accepted");
    let peers = hub.handle().peers().await.unwrap();
    assert_eq!(peers.len(), 2, "{peers:?}");
    for n in others {
        n.shutdown().await;
    }
    hub.shutdown().await;
}

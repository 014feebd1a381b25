//! App topics between real nodes on 127.0.0.1 (real sockets, one process):
//! delivery exactly once across twenty nodes, oversized and flooding
//! publishers stopped and penalised, late subscribers, and leaving a topic.
//!
//! The nodes run the DHT in client mode, so nobody enters a routing table
//! and the topology is exactly the connections each test dials. Waits poll
//! with deadlines; nothing sleeps for a fixed time.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use weft_testkit::wait_for;

use rand::{seq::SliceRandom, Rng};
use tokio::sync::broadcast;
use weft_apps::pubsub::{Envelope, Message, PubSub, PubSubError, MAX_MESSAGE};
use weft_net::{Config, DhtMode, Identity, Network, NetworkHandle, PeerId, Registry, Verdict};

const DEADLINE: Duration = Duration::from_secs(30);

async fn node(network: &str) -> Network {
    let mut config = Config::loopback(Identity::generate(), network);
    config.dht_mode = DhtMode::Client;
    weft_net::start(config, &mut Registry::default())
        .await
        .expect("node starts")
}

/// `a` dials `b` and waits until `b` has identified.
async fn connect(a: &NetworkHandle, b: &NetworkHandle) {
    let addr = b.listen_addrs().await.unwrap().remove(0);
    assert_eq!(a.dial(addr).await.expect("dial"), b.local_peer_id());
}

type Inbox = Arc<Mutex<Vec<Message>>>;

/// Records everything `rx` receives, in a task.
fn collect(mut rx: broadcast::Receiver<Message>) -> Inbox {
    let inbox: Inbox = Arc::default();
    let seen = inbox.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(m) => seen.lock().unwrap().push(m),
                Err(broadcast::error::RecvError::Lagged(n)) => panic!("subscriber lagged by {n}"),
                Err(broadcast::error::RecvError::Closed) => break,
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

/// The gossip view of an app topic: (mesh peers, subscribed peers).
async fn gossip_view(h: &NetworkHandle, topic: &str) -> (Vec<PeerId>, usize) {
    let wire = format!("app/{topic}");
    h.topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.topic == wire)
        .map(|t| (t.mesh_peers, t.subscribed_peers))
        .unwrap_or_default()
}

/// Waits until every node knows that all its neighbours joined `topic` and
/// the mesh links every node to every other.
async fn wait_for_mesh(handles: &[NetworkHandle], topic: &str) {
    let ok = wait_for(DEADLINE, || async {
        let mut edges: HashMap<PeerId, Vec<PeerId>> = HashMap::new();
        for h in handles {
            let neighbours = h.peers().await.unwrap().len();
            let (mesh, subscribed) = gossip_view(h, topic).await;
            if subscribed < neighbours || mesh.is_empty() {
                return false;
            }
            for p in mesh {
                edges.entry(h.local_peer_id()).or_default().push(p);
                edges.entry(p).or_default().push(h.local_peer_id());
            }
        }
        // Connected: a walk from the first node reaches every node.
        let mut reached = HashSet::from([handles[0].local_peer_id()]);
        let mut todo = vec![handles[0].local_peer_id()];
        while let Some(p) = todo.pop() {
            for q in edges.get(&p).into_iter().flatten() {
                if reached.insert(*q) {
                    todo.push(*q);
                }
            }
        }
        reached.len() == handles.len()
    })
    .await;
    if !ok {
        let mut views = Vec::new();
        for h in handles {
            views.push((h.peers().await.unwrap().len(), gossip_view(h, topic).await));
        }
        panic!("the mesh of {topic:?} never linked all {} nodes: (neighbours, (mesh, subscribed)) {views:?}", handles.len());
    }
}

/// Subscribes a bare network node (no PubSub) to an app topic, ignoring
/// whatever arrives: it only needs to be in the mesh.
async fn raw_subscribe(h: &NetworkHandle, topic: &str) {
    let mut rx = h.subscribe(&format!("app/{topic}"), 64).await.unwrap();
    let h = h.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let _ = h
                .report_message(m.id, m.propagation_source, Verdict::Ignore)
                .await;
        }
    });
}

fn raw_envelope(data: Vec<u8>) -> Vec<u8> {
    Envelope {
        timestamp_ms: 1,
        data,
    }
    .encode()
}

async fn penalties(at: &NetworkHandle, peer: PeerId) -> Option<u32> {
    at.peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer)
        .map(|p| p.penalties)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_nodes_get_every_message_exactly_once() {
    const N: usize = 20;
    const TOPIC: &str = "chat.lobby";
    let mut nodes = Vec::new();
    for _ in 0..N {
        nodes.push(node("apps-twenty").await);
    }
    let h: Vec<NetworkHandle> = nodes.iter().map(|n| n.handle().clone()).collect();
    // A sparse random connected graph: each node dials 2 or 3 earlier ones.
    let mut rng = rand::thread_rng();
    for i in 1..N {
        let k = rng.gen_range(2..=3).min(i);
        let mut earlier: Vec<usize> = (0..i).collect();
        earlier.shuffle(&mut rng);
        for &j in &earlier[..k] {
            connect(&h[i], &h[j]).await;
        }
    }
    let pubsubs: Vec<PubSub> = h.iter().map(|h| PubSub::new(h.clone())).collect();
    let mut inboxes = Vec::new();
    for ps in &pubsubs {
        inboxes.push(collect(ps.subscribe(TOPIC).await.unwrap()));
    }
    wait_for_mesh(&h, TOPIC).await;
    let info = pubsubs[0].topics().await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].topic, TOPIC);
    assert_eq!(info[0].subscribers, 1);
    assert!(!info[0].mesh_peers.is_empty());

    // Five publishers, four messages each, all at once.
    let mut publishers: Vec<usize> = (0..N).collect();
    publishers.shuffle(&mut rng);
    publishers.truncate(5);
    let mut tasks = tokio::task::JoinSet::new();
    for &p in &publishers {
        let ps = pubsubs[p].clone();
        tasks.spawn(async move {
            let mut sent = Vec::new();
            for j in 0..4 {
                let data = format!("message {j} from node {p}").into_bytes();
                sent.push((p, ps.publish(TOPIC, data).await.unwrap()));
            }
            sent
        });
    }
    let mut published: Vec<(usize, Message)> = Vec::new();
    while let Some(sent) = tasks.join_next().await {
        published.extend(sent.unwrap());
    }
    assert_eq!(published.len(), 20);
    for (p, m) in &published {
        assert_eq!(m.from, h[*p].local_peer_id().to_string());
        assert_eq!(m.topic, TOPIC);
    }

    for (i, inbox) in inboxes.iter().enumerate() {
        let all = wait_for(DEADLINE, || async {
            published.iter().all(|(_, m)| count(inbox, &m.data) > 0)
        })
        .await;
        assert!(
            all,
            "node {i} is missing messages: got {}",
            inbox.lock().unwrap().len()
        );
    }
    // A last message, after everything: once it is in, duplicates would be.
    let sentinel = pubsubs[N - 1]
        .publish(TOPIC, b"sentinel".to_vec())
        .await
        .unwrap();
    for (i, inbox) in inboxes.iter().enumerate() {
        assert!(
            wait_for(DEADLINE, || async { count(inbox, b"sentinel") > 0 }).await,
            "node {i} never got the sentinel"
        );
    }
    let expected: HashMap<String, &Message> = published
        .iter()
        .map(|(_, m)| (m.id.clone(), m))
        .chain([(sentinel.id.clone(), &sentinel)])
        .collect();
    for (i, inbox) in inboxes.iter().enumerate() {
        let got = inbox.lock().unwrap().clone();
        assert_eq!(
            got.len(),
            expected.len(),
            "node {i} got duplicates or strays"
        );
        let mut ids = HashSet::new();
        for m in &got {
            assert!(ids.insert(m.id.clone()), "node {i} got {} twice", m.id);
            let sent = expected.get(&m.id).expect("a message that was published");
            assert_eq!(*sent, m, "node {i}: as published, same id, author and time");
        }
    }
    // Honest publishers are never penalised.
    for node in &h {
        for p in node.peers().await.unwrap() {
            assert_eq!(p.penalties, 0, "{p:?}");
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_and_flooding_publishers_are_stopped_and_penalised() {
    const TOPIC: &str = "chat";
    let (big, flood, v, w) = (
        node("apps-abuse").await,
        node("apps-abuse").await,
        node("apps-abuse").await,
        node("apps-abuse").await,
    );
    let (hb, hf, hv, hw) = (big.handle(), flood.handle(), v.handle(), w.handle());
    // The bad publishers and W are all connected to V only.
    connect(hb, hv).await;
    connect(hf, hv).await;
    connect(hw, hv).await;
    let (ps_v, ps_w) = (PubSub::new(hv.clone()), PubSub::new(hw.clone()));
    let v_inbox = collect(ps_v.subscribe(TOPIC).await.unwrap());
    let w_inbox = collect(ps_w.subscribe(TOPIC).await.unwrap());
    raw_subscribe(hb, TOPIC).await;
    raw_subscribe(hf, TOPIC).await;
    wait_for_mesh(&[hv.clone(), hb.clone(), hf.clone(), hw.clone()], TOPIC).await;
    let (ib, i_f) = (hb.local_peer_id(), hf.local_peer_id());
    let wire = format!("app/{TOPIC}");

    // An envelope one byte over the limit, published bypassing PubSub.
    let too_big = raw_envelope(vec![b'x'; MAX_MESSAGE + 1]);
    assert!(hb.publish(&wire, too_big).await.unwrap());
    let penalised = wait_for(DEADLINE, || async { penalties(hv, ib).await >= Some(1) }).await;
    assert!(penalised, "V never penalised the oversized publisher");
    // Then a fine one from the same peer arrives, and only that.
    assert!(hb
        .publish(&wire, raw_envelope(b"fine".to_vec()))
        .await
        .unwrap());
    for inbox in [&v_inbox, &w_inbox] {
        assert!(wait_for(DEADLINE, || async { count(inbox, b"fine") == 1 }).await);
        assert!(inbox
            .lock()
            .unwrap()
            .iter()
            .all(|m| m.data.len() <= MAX_MESSAGE));
        assert_eq!(inbox.lock().unwrap().len(), 1);
    }

    // A flood: thousands of distinct valid messages as fast as possible.
    const FLOOD: usize = 3000;
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..FLOOD {
        if hf
            .publish(&wire, raw_envelope(format!("spam {i}").into_bytes()))
            .await
            .is_ok_and(|s| s)
        {
            sent += 1;
        }
    }
    let flood_time = started.elapsed();
    // Done when the flooder is banned, or V's penalties show it.
    let stopped = wait_for(DEADLINE, || async {
        match penalties(hv, i_f).await {
            None => true,
            Some(n) => n >= 1 && v_inbox.lock().unwrap().len() > 1,
        }
    })
    .await;
    assert!(stopped, "V never penalised the flooder");
    // A message after the flood from an honest node shows the flood is
    // over at V and W.
    ps_w.publish(TOPIC, b"after the flood".to_vec())
        .await
        .unwrap();
    assert!(
        wait_for(DEADLINE, || async {
            count(&v_inbox, b"after the flood") == 1
        })
        .await
    );
    let at_v = v_inbox.lock().unwrap().len() - 2;
    let at_w = w_inbox.lock().unwrap().len() - 2;
    let allowed = 100.0 + 20.0 * flood_time.as_secs_f64() + 20.0;
    println!(
        "flood: {sent} of {FLOOD} sent in {flood_time:?}; V delivered {at_v}, W {at_w} (allowance {allowed:.0}); flooder penalties at V: {:?}",
        penalties(hv, i_f).await
    );
    // Banned after its fifth offence (500 surplus messages), it cannot send
    // the rest.
    assert!(sent > 500, "the flooder could hardly send: {sent}");
    assert!(
        (at_v as f64) <= allowed && at_v < sent / 4,
        "V delivered {at_v} of {sent} flood messages"
    );
    assert!(at_w <= at_v, "W got messages V never forwarded");
    // Over five offences: banned, both ways.
    let banned = wait_for(DEADLINE, || async { penalties(hv, i_f).await.is_none() }).await;
    assert!(banned, "the flooder is still connected to V");
    let err = hv
        .dial(hf.listen_addrs().await.unwrap().remove(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    // Nobody else was penalised.
    assert_eq!(penalties(hv, hw.local_peer_id()).await, Some(0));
    assert_eq!(penalties(hw, hv.local_peer_id()).await, Some(0));
    for n in [big, flood, v, w] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_subscribers_get_new_messages_only() {
    const TOPIC: &str = "news";
    let (a, b) = (node("apps-late").await, node("apps-late").await);
    let (ha, hb) = (a.handle(), b.handle());
    connect(hb, ha).await;
    let (ps_a, ps_b) = (PubSub::new(ha.clone()), PubSub::new(hb.clone()));

    let first = collect(ps_a.subscribe(TOPIC).await.unwrap());
    let old = ps_a.publish(TOPIC, b"old".to_vec()).await.unwrap();
    assert!(wait_for(DEADLINE, || async { count(&first, b"old") == 1 }).await);

    // Late, on the same node and on another one.
    let late_local = collect(ps_a.subscribe(TOPIC).await.unwrap());
    let late_remote = collect(ps_b.subscribe(TOPIC).await.unwrap());
    assert_eq!(ps_a.topics().await[0].subscribers, 2);
    wait_for_mesh(&[ha.clone(), hb.clone()], TOPIC).await;
    let new = ps_a.publish(TOPIC, b"new".to_vec()).await.unwrap();
    assert_ne!(old.id, new.id);
    for inbox in [&first, &late_local, &late_remote] {
        assert!(wait_for(DEADLINE, || async { count(inbox, b"new") == 1 }).await);
    }
    // And the other way round, which also shows nothing else is on its way.
    ps_b.publish(TOPIC, b"reply".to_vec()).await.unwrap();
    for inbox in [&first, &late_local, &late_remote] {
        assert!(wait_for(DEADLINE, || async { count(inbox, b"reply") == 1 }).await);
    }
    let data = |inbox: &Inbox| -> Vec<Vec<u8>> {
        inbox
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.data.clone())
            .collect()
    };
    assert_eq!(data(&first), [&b"old"[..], b"new", b"reply"]);
    assert_eq!(data(&late_local), [&b"new"[..], b"reply"]);
    assert_eq!(data(&late_remote), [&b"new"[..], b"reply"]);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_subscriber_out_leaves_and_local_errors() {
    let (a, b) = (node("apps-leave").await, node("apps-leave").await);
    let (ha, hb) = (a.handle(), b.handle());
    connect(hb, ha).await;
    let (ps_a, ps_b) = (
        PubSub::new(ha.clone()),
        PubSub::with_linger(hb.clone(), Duration::ZERO),
    );
    let _rx_a = ps_a.subscribe("room").await.unwrap();
    let rx1 = ps_b.subscribe("room").await.unwrap();
    let rx2 = ps_b.subscribe("room").await.unwrap();
    wait_for_mesh(&[ha.clone(), hb.clone()], "room").await;
    drop(rx1);
    assert_eq!(ps_b.topics().await[0].subscribers, 1);
    drop(rx2);
    // B leaves: its table and its gossip subscription empty, and A sees it go.
    let left = wait_for(DEADLINE, || async {
        ps_b.topics().await.is_empty()
            && hb.topics().await.unwrap().is_empty()
            && gossip_view(ha, "room").await == (vec![], 0)
    })
    .await;
    assert!(left, "B never left the topic");
    // And can come back. Gossipsub keeps the two out of each other's mesh
    // for a while after a leave (the backoff), but A still publishes to
    // every peer it knows is subscribed.
    let back = collect(ps_b.subscribe("room").await.unwrap());
    assert!(wait_for(DEADLINE, || async { gossip_view(ha, "room").await.1 == 1 }).await);
    ps_a.publish("room", b"welcome back".to_vec())
        .await
        .unwrap();
    assert!(wait_for(DEADLINE, || async { count(&back, b"welcome back") == 1 }).await);

    // No peers on a topic is not an error.
    let alone = ps_a
        .publish("nobody-here", b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(alone.from, ha.local_peer_id().to_string());
    assert_eq!(alone.id.len(), 64);

    for bad in ["", "a/b", "space here", &"x".repeat(65)] {
        assert!(matches!(
            ps_a.publish(bad, b"x".to_vec()).await,
            Err(PubSubError::BadTopic(_))
        ));
        assert!(matches!(
            ps_a.subscribe(bad).await,
            Err(PubSubError::BadTopic(_))
        ));
    }
    assert_eq!(
        ps_a.publish("room", vec![0; MAX_MESSAGE + 1])
            .await
            .unwrap_err(),
        PubSubError::TooLarge {
            size: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        }
    );
    ps_a.publish("room", vec![0; MAX_MESSAGE]).await.unwrap();

    // Closing ends every local subscription and leaves every topic.
    let mut rx = ps_a.subscribe("room").await.unwrap();
    ps_a.close().await;
    assert!(matches!(
        rx.recv().await,
        Err(broadcast::error::RecvError::Closed)
    ));
    assert!(ps_a.topics().await.is_empty());
    assert!(ha.topics().await.unwrap().is_empty());
    assert!(matches!(
        ps_a.subscribe("room").await,
        Err(PubSubError::Net(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

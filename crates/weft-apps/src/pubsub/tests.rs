//! Unit tests of the parent module.
use weft_net::MessageId;

use super::{
    limits::{Allowance, Limiter},
    *,
};

fn id(n: u8) -> MessageId {
    MessageId::new(&[n; 32])
}

/// A received message: `data` by `source`, forwarded by `via`.
fn gossip(n: u8, data: &[u8], source: Option<PeerId>, via: PeerId) -> GossipMessage {
    GossipMessage {
        id: id(n),
        topic: wire_topic("chat"),
        data: data.to_vec(),
        source,
        propagation_source: via,
    }
}

fn envelope(data: &[u8]) -> Vec<u8> {
    Envelope {
        timestamp_ms: 1_700_000_000_000,
        data: data.to_vec(),
    }
    .encode()
}

#[test]
fn topic_names_are_checked() {
    for good in [
        "chat",
        "a",
        "chat.lobby",
        "my_app-v2.events",
        &"x".repeat(64),
        "ABC.123",
    ] {
        assert_eq!(check_topic(good), Ok(()), "{good:?}");
    }
    for bad in [
        "",
        "a/b",
        "with space",
        "émoji",
        "tab\t",
        "app/x",
        "a:b",
        &"x".repeat(65),
    ] {
        let err = check_topic(bad).unwrap_err();
        assert!(matches!(err, PubSubError::BadTopic(_)), "{bad:?}");
        assert!(err.to_string().contains("1 to 64 characters"), "{err}");
    }
    // Long names are cut in the message.
    let err = check_topic(&"y".repeat(500)).unwrap_err().to_string();
    assert!(err.len() < 200, "{err}");
}

#[test]
fn wire_topics_map_back_to_app_topics() {
    assert_eq!(wire_topic("chat"), "app/chat");
    assert_eq!(app_topic("app/chat"), Some("chat"));
    assert_eq!(app_topic("blocks"), None);
    assert_eq!(app_topic("app/"), None);
    assert_eq!(app_topic("app/a/b"), None);
}

#[test]
fn message_ids_match_the_network_layer() {
    let bytes = envelope(b"hello");
    let mut expected = b"/weft/net1/app/chat".to_vec();
    expected.push(0);
    expected.extend_from_slice(&bytes);
    assert_eq!(
        message_id("net1", "chat", &bytes),
        blake3::hash(&expected).to_hex().to_string()
    );
    assert_ne!(
        message_id("net1", "chat", &bytes),
        message_id("net2", "chat", &bytes)
    );
}

#[test]
fn envelopes_round_trip() {
    let e = Envelope {
        timestamp_ms: 42,
        data: vec![1, 2, 3],
    };
    assert_eq!(Envelope::decode(&e.encode()), Some(e.clone()));
    let mut trailing = e.encode();
    trailing.push(0);
    assert_eq!(Envelope::decode(&trailing), None);
    assert_eq!(Envelope::decode(&[1, 2, 3]), None);
    // A length prefix that lies does not allocate it.
    let mut lying = 7u64.to_le_bytes().to_vec();
    lying.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Envelope::decode(&lying), None);
}

#[test]
fn the_limiter_allows_a_burst_then_the_rate() {
    let mut l = Limiter::new(RATE, BURST, 16);
    let (a, b) = (PeerId::random(), PeerId::random());
    let t0 = Instant::now();
    for i in 0..100 {
        assert_eq!(l.check(a, t0, true), Allowance::Allowed, "message {i}");
    }
    assert_eq!(l.check(a, t0, true), Allowance::Excess { excess: 1 });
    assert_eq!(l.check(a, t0, true), Allowance::Excess { excess: 2 });
    // Another author has its own bucket.
    assert_eq!(l.check(b, t0, true), Allowance::Allowed);
    // A second refills 20 tokens.
    let t1 = t0 + Duration::from_secs(1);
    for i in 0..20 {
        assert_eq!(l.check(a, t1, true), Allowance::Allowed, "refilled {i}");
    }
    assert_eq!(l.check(a, t1, true), Allowance::Excess { excess: 3 });
    // The bucket never holds more than the burst.
    let later = t1 + Duration::from_secs(3600);
    for _ in 0..100 {
        assert_eq!(l.check(a, later, true), Allowance::Allowed);
    }
    assert!(matches!(l.check(a, later, true), Allowance::Excess { .. }));
}

#[test]
fn the_limiter_is_bounded() {
    let mut l = Limiter::new(RATE, BURST, 4);
    let t0 = Instant::now();
    let busy: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
    for p in &busy {
        assert_eq!(l.check(*p, t0, true), Allowance::Allowed);
    }
    // Full of active authors: a newcomer is not tracked.
    let newcomer = PeerId::random();
    assert_eq!(l.check(newcomer, t0, true), Allowance::Excess { excess: 0 });
    assert_eq!(l.tracked(), 4);
    // Once the others' buckets have refilled, they are forgotten.
    let later = t0 + Duration::from_secs(10);
    assert_eq!(l.check(newcomer, later, true), Allowance::Allowed);
    assert_eq!(l.tracked(), 1);
}

#[test]
fn a_flooder_is_throttled_and_penalised_every_hundred() {
    let mut v = Validator::new("chat");
    let author = PeerId::random();
    let t0 = Instant::now();
    let data = envelope(b"spam");
    let mut delivered = 0;
    let mut penalties = 0;
    for _ in 0..1000 {
        match v.check(&gossip(1, &data, Some(author), author), t0) {
            Check::Deliver(_) => delivered += 1,
            Check::Throttle { penalise, .. } => penalties += usize::from(penalise),
            Check::Reject(r) => panic!("rejected: {r}"),
        }
    }
    assert_eq!(delivered, 100);
    assert_eq!(penalties, 9, "900 surplus messages, one offence per 100");
}

#[test]
fn surplus_relayed_by_others_is_dropped_but_not_held_against_the_author() {
    let mut v = Validator::new("chat");
    let (author, relay) = (PeerId::random(), PeerId::random());
    let t0 = Instant::now();
    let data = envelope(b"old news");
    let mut delivered = 0;
    for _ in 0..1000 {
        match v.check(&gossip(1, &data, Some(author), relay), t0) {
            Check::Deliver(_) => delivered += 1,
            Check::Throttle {
                penalise, excess, ..
            } => assert!(!penalise && excess == 0),
            Check::Reject(r) => panic!("rejected: {r}"),
        }
    }
    assert_eq!(delivered, 100, "the author's rate applies whoever relays");
}

#[test]
fn invalid_messages_are_rejected() {
    let mut v = Validator::new("chat");
    let now = Instant::now();
    let peer = PeerId::random();
    let author = Some(peer);
    assert!(matches!(
        v.check(&gossip(1, &envelope(b"x"), None, peer), now),
        Check::Reject(_)
    ));
    assert!(matches!(
        v.check(&gossip(1, b"garbage", author, peer), now),
        Check::Reject(_)
    ));
    let big = envelope(&vec![0; MAX_MESSAGE + 1]);
    assert!(matches!(
        v.check(&gossip(1, &big, author, peer), now),
        Check::Reject(_)
    ));
    let max = envelope(&vec![7; MAX_MESSAGE]);
    match v.check(&gossip(2, &max, author, peer), now) {
        Check::Deliver(m) => {
            assert_eq!(m.data.len(), MAX_MESSAGE);
            assert_eq!(m.id, hex(&[2; 32]));
            assert_eq!(m.topic, "chat");
            assert_eq!(m.from, peer.to_string());
            assert_eq!(m.timestamp_ms, 1_700_000_000_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_own_publishing_is_paced_below_what_peers_accept() {
    let mut p = Pacer::default();
    let t0 = Instant::now();
    for i in 0..80 {
        assert_eq!(p.reserve("chat", t0), Ok(Duration::ZERO), "message {i}");
    }
    // Then one turn every 1/16 s, each caller further back in line.
    let first = p.reserve("chat", t0).unwrap();
    let second = p.reserve("chat", t0).unwrap();
    assert_eq!(first, Duration::from_secs_f64(1.0 / PUBLISH_RATE));
    assert_eq!(second, Duration::from_secs_f64(2.0 / PUBLISH_RATE));
    // Another topic has its own turns.
    assert_eq!(p.reserve("other", t0), Ok(Duration::ZERO));
    // A queue longer than ten seconds is refused, and reserves nothing.
    let mut last = second;
    while let Ok(w) = p.reserve("chat", t0) {
        last = w;
    }
    assert!(last <= MAX_PUBLISH_WAIT && last > MAX_PUBLISH_WAIT - Duration::from_millis(100));
    assert!(matches!(
        p.reserve("chat", t0),
        Err(PubSubError::TooFast(_))
    ));
    // Whatever the schedule, peers (RATE, BURST) never see a surplus:
    // simulate their bucket over our reserved send times.
    let mut p = Pacer::default();
    let mut peer = Limiter::new(RATE, BURST, 4);
    let me = PeerId::random();
    let mut t = t0;
    for _ in 0..2000 {
        match p.reserve("chat", t) {
            Ok(w) => assert_eq!(peer.check(me, t + w, true), Allowance::Allowed),
            Err(_) => t += Duration::from_millis(500),
        }
    }
}

#[test]
fn recent_ids_deliver_once_and_stay_bounded() {
    let mut r = RecentIds::new(3);
    assert!(r.insert("a"));
    assert!(!r.insert("a"));
    assert!(r.insert("b"));
    assert!(r.insert("c"));
    assert!(r.insert("d"));
    assert_eq!(r.order.len(), 3);
    assert!(r.insert("a"), "the oldest was forgotten");
    assert!(!r.insert("d"));
}

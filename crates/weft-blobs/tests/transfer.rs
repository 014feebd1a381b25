//! Real nodes on 127.0.0.1 sharing and fetching blobs through the blobs
//! service: verified transfer, many providers, bad providers, resume.

use std::{sync::atomic::Ordering, time::Duration};

use tokio_util::sync::CancellationToken;
use weft_blobs::{
    fetch::{FetchTarget, Progress},
    transfer::Fault,
    BlobKind, Blobs, Config, Hash,
};
use weft_net::{Identity, Network, Registry};

struct TestNode {
    net: Network,
    blobs: Blobs,
    _dir: tempfile::TempDir,
}

async fn node(network: &str, fault: Fault) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let net = weft_net::start(
        weft_net::Config::loopback(Identity::generate(), network),
        &mut registry,
    )
    .await
    .unwrap();
    let blobs = Blobs::start(
        Config {
            dir: dir.path().join("blobs"),
            quota: None,
            fault,
        },
        net.handle().clone(),
    )
    .await
    .unwrap();
    TestNode {
        net,
        blobs,
        _dir: dir,
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn fetch(
    node: &TestNode,
    target: FetchTarget,
) -> Result<weft_blobs::fetch::FetchOutcome, weft_blobs::fetch::FetchError> {
    node.blobs
        .fetcher()
        .fetch(target, Progress::default(), CancellationToken::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_travels_verified_between_two_nodes() {
    let a = node("blobs-two", Fault::None).await;
    let b = node("blobs-two", Fault::None).await;
    let data = random_bytes(5 * 1024 * 1024 + 123, 42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.bin");
    std::fs::write(&path, &data).unwrap();

    let added = a.blobs.add_path(path).await.unwrap();
    assert_eq!(
        added.hash,
        Hash::new(&data),
        "the content id is BLAKE3 of the bytes"
    );
    let ticket = a.blobs.ticket(added.hash).await.unwrap();

    let out = fetch(
        &b,
        FetchTarget {
            hash: ticket.hash,
            kind: Some(ticket.kind),
            providers: ticket.providers.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(out.size, data.len() as u64);
    let got = b.blobs.store().read_to_vec(&added.hash, u64::MAX).unwrap();
    assert_eq!(got, data);

    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("copy.bin");
    weft_blobs::export::export(b.blobs.store(), &added.hash, BlobKind::Blob, &target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), data);
    for n in [a, b] {
        n.blobs.shutdown().await;
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_provider_is_dropped_and_nothing_bad_is_stored() {
    let good = node("blobs-bad", Fault::None).await;
    let bad = node("blobs-bad", Fault::CorruptData).await;
    let fetcher = node("blobs-bad", Fault::None).await;
    let data = random_bytes(6 * 1024 * 1024, 7);
    let hash = good
        .blobs
        .add_bytes(data.clone(), Some("x".into()))
        .await
        .unwrap()
        .hash;
    bad.blobs
        .add_bytes(data.clone(), Some("x".into()))
        .await
        .unwrap();
    let bad_id = bad.net.handle().local_peer_id();
    let from_bad = bad.blobs.ticket(hash).await.unwrap().providers;
    let from_good = good.blobs.ticket(hash).await.unwrap().providers;

    // Only the corrupting peer can be found (the fetcher knows nobody
    // else), so it is surely asked: the fetch fails and stores nothing.
    let progress = Progress::default();
    let err = fetcher
        .blobs
        .fetcher()
        .fetch(
            FetchTarget {
                hash,
                kind: Some(BlobKind::Blob),
                providers: from_bad.clone(),
            },
            progress.clone(),
            CancellationToken::new(),
        )
        .await
        .expect_err("a fetch from a corrupting peer alone must fail");
    assert!(err.to_string().contains("bad data"), "{err}");
    assert!(
        fetcher.blobs.fetcher().offences(&bad_id) > 0,
        "the corrupting peer was penalised"
    );
    assert!(
        progress.snapshot().bad_peers.contains(&bad_id.to_string()),
        "the corrupting peer is reported: {:?}",
        progress.snapshot()
    );
    let kept = fetcher.blobs.store().info(&hash).unwrap();
    assert!(
        kept.as_ref().is_none_or(|i| i.verified_bytes == 0),
        "nothing from the corrupting peer was kept: {kept:?}"
    );

    // With an honest provider as well, the fetch completes from it and the
    // dropped peer is not asked again.
    let asked = bad.blobs.stats().requests.load(Ordering::Relaxed);
    let mut providers = from_bad;
    providers.extend(from_good);
    fetch(
        &fetcher,
        FetchTarget {
            hash,
            kind: Some(BlobKind::Blob),
            providers,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        fetcher.blobs.store().read_to_vec(&hash, u64::MAX).unwrap(),
        data
    );
    assert_eq!(
        bad.blobs.stats().requests.load(Ordering::Relaxed),
        asked,
        "the dropped peer was asked again"
    );
    for n in [good, bad, fetcher] {
        n.blobs.shutdown().await;
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_hash_finds_providers_in_the_dht() {
    let a = node("blobs-dht", Fault::None).await;
    let b = node("blobs-dht", Fault::None).await;
    let data = random_bytes(300_000, 3);
    let hash = a
        .blobs
        .add_bytes(data.clone(), Some("y".into()))
        .await
        .unwrap()
        .hash;
    // B knows A only as a DHT neighbour, not as a provider.
    let a_addr = a.net.handle().listen_addrs().await.unwrap().remove(0);
    b.net.handle().dial(a_addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = fetch(
            &b,
            FetchTarget {
                hash,
                kind: None,
                providers: vec![],
            },
        )
        .await;
        match r {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("bare-hash fetch failed: {e}"),
        }
    }
    assert_eq!(b.blobs.store().read_to_vec(&hash, u64::MAX).unwrap(), data);
    for n in [a, b] {
        n.blobs.shutdown().await;
        n.net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_downloaders_feed_each_other() {
    const SIZE: usize = 64 * 1024 * 1024;
    let seeder = node("blobs-swarm", Fault::None).await;
    let data = random_bytes(SIZE, 99);
    let hash = seeder
        .blobs
        .add_bytes(data.clone(), Some("swarm".into()))
        .await
        .unwrap()
        .hash;
    let ticket = seeder.blobs.ticket(hash).await.unwrap();
    let mut downloaders = Vec::new();
    for _ in 0..8 {
        downloaders.push(node("blobs-swarm", Fault::None).await);
    }
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, d) in downloaders.iter().enumerate() {
        let fetcher = d.blobs.fetcher().clone();
        let target = FetchTarget {
            hash,
            kind: Some(ticket.kind),
            providers: ticket.providers.clone(),
        };
        set.spawn(async move {
            let r = fetcher
                .fetch(target, Progress::default(), CancellationToken::new())
                .await;
            (i, r)
        });
    }
    while let Some(r) = set.join_next().await {
        let (i, r) = r.unwrap();
        r.unwrap_or_else(|e| panic!("downloader {i} failed: {e}"));
    }
    let elapsed = started.elapsed();
    for d in &downloaders {
        assert_eq!(d.blobs.store().read_to_vec(&hash, u64::MAX).unwrap(), data);
    }
    let sent = seeder.blobs.stats().bytes_sent.load(Ordering::Relaxed);
    let ratio = sent as f64 / SIZE as f64;
    println!(
        "1 seeder -> 8 downloaders, {} MiB: {:.2} s; seeder uploaded {:.2}x the file size",
        SIZE >> 20,
        elapsed.as_secs_f64(),
        ratio
    );
    assert!(ratio < 4.0, "the seeder uploaded {ratio:.2}x the file size");
    seeder.blobs.shutdown().await;
    seeder.net.shutdown().await;
    for d in downloaders {
        d.blobs.shutdown().await;
        d.net.shutdown().await;
    }
}

//! The read-only gateway end to end: real nodes on loopback, real HTTP.
//!
//! Each test starts its own nodes in a temporary folder and talks to their
//! API with reqwest (or a raw TCP request where reqwest would normalise the
//! path). Content held by one node is fetched through another's gateway.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bao_tree::{
    io::{sync::DecodeResponseIter, BaoContentItem},
    BaoTree, ChunkNum, ChunkRanges,
};
use reqwest::{header, Client, Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_blobs::{store::BLOCK_SIZE, Hash};
use weft_node::{Node, NodeConfig};

async fn start(dir: &Path, name: &str) -> Node {
    Node::start(NodeConfig::loopback(dir.join(name), "gw-test"))
        .await
        .unwrap()
}

/// `b` dials `a`, so `b`'s DHT can find what `a` provides.
async fn connect(b: &Node, a: &Node) {
    b.net()
        .dial(a.info().listen_addrs[0].clone())
        .await
        .unwrap();
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn url(node: &Node, path: &str) -> String {
    format!("{}{path}", node.info().api_url)
}

fn header(resp: &Response, name: header::HeaderName) -> &str {
    resp.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn get_range(client: &Client, url: &str, range: &str) -> Response {
    client
        .get(url)
        .header(header::RANGE, range)
        .send()
        .await
        .unwrap()
}

/// GETs `url` until it answers 200 (the DHT may not know the provider yet).
async fn get_eventually(client: &Client, url: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let resp = client.get(url).send().await.unwrap();
        if resp.status() == StatusCode::OK || Instant::now() > deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Sends a request with a path exactly as given (no URL normalisation).
async fn raw_get(node: &Node, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(node.info().api_addr)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad reply {reply:?}"));
    (status, reply)
}

async fn check_range(client: &Client, url: &str, whole: &[u8], range: &str, want: (u64, u64)) {
    let resp = get_range(client, url, range).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
    let size = whole.len();
    assert_eq!(
        header(&resp, header::CONTENT_RANGE),
        format!("bytes {}-{}/{size}", want.0, want.1),
        "{range}"
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        &body[..],
        &whole[want.0 as usize..=want.1 as usize],
        "{range}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_content_ranges_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let client = Client::new();
    let bytes = data(3 * 1024 * 1024 + 12_345, 1);
    let size = bytes.len() as u64;
    let added = a
        .blobs()
        .add_bytes(bytes.clone(), Some("clip.mp4".into()))
        .await
        .unwrap();
    let u = url(&a, &format!("/blob/{}", added.hash));

    let resp = client.get(&u).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = format!("\"{}\"", added.hash.to_hex());
    assert_eq!(header(&resp, header::ETAG), etag);
    assert_eq!(
        header(&resp, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&resp, header::ACCEPT_RANGES), "bytes");
    assert_eq!(header(&resp, header::CONTENT_TYPE), "video/mp4");
    assert_eq!(header(&resp, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&resp, header::CONTENT_LENGTH), size.to_string());
    assert!(resp.bytes().await.unwrap() == bytes, "full body differs");

    let m = 1024 * 1024;
    check_range(&client, &u, &bytes, "bytes=0-0", (0, 0)).await;
    check_range(&client, &u, &bytes, "bytes=100-199", (100, 199)).await;
    check_range(
        &client,
        &u,
        &bytes,
        "bytes=1048570-2097200",
        (m - 6, 2 * m + 48),
    )
    .await;
    check_range(&client, &u, &bytes, "bytes=-500", (size - 500, size - 1)).await;
    check_range(&client, &u, &bytes, "bytes=3000000-", (3_000_000, size - 1)).await;
    check_range(&client, &u, &bytes, "bytes=5-99999999999", (5, size - 1)).await;

    let resp = get_range(&client, &u, &format!("bytes={size}-")).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&resp, header::CONTENT_RANGE),
        format!("bytes */{size}")
    );
    // Malformed or multiple ranges are ignored: the whole content.
    for range in ["bytes=9-2", "bytes=0-1,5-6", "lines=1-2"] {
        let resp = get_range(&client, &u, range).await;
        assert_eq!(resp.status(), StatusCode::OK, "{range}");
        assert_eq!(resp.bytes().await.unwrap().len() as u64, size, "{range}");
    }

    let resp = client
        .get(&u)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&resp, header::ETAG), etag);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client
        .get(&u)
        .header(header::IF_NONE_MATCH, "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // HEAD: same headers, no body.
    let resp = client.head(&u).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, header::CONTENT_LENGTH), size.to_string());
    assert_eq!(header(&resp, header::ETAG), etag);
    assert_eq!(header(&resp, header::CONTENT_TYPE), "video/mp4");
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = client
        .head(&u)
        .header(header::RANGE, "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, header::CONTENT_LENGTH), "10");
    assert!(resp.bytes().await.unwrap().is_empty());

    // Without a name the type comes from the first bytes.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(data(100, 2));
    let png = a.blobs().add_bytes(png, None).await.unwrap();
    let resp = client
        .get(url(&a, &format!("/blob/{}", png.hash)))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, header::CONTENT_TYPE), "image/png");

    drop(client);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_streams_from_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let b = start(dir.path(), "b").await;
    let first = data(2 * 1024 * 1024 + 777, 3);
    let second = data(3 * 1024 * 1024 + 5, 4);
    let h1 = a.blobs().add_bytes(first.clone(), None).await.unwrap().hash;
    let h2 = a
        .blobs()
        .add_bytes(second.clone(), None)
        .await
        .unwrap()
        .hash;
    connect(&b, &a).await;
    let client = Client::new();

    let started = Instant::now();
    let resp = get_eventually(&client, &url(&b, &format!("/blob/{h1}"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, header::CONTENT_LENGTH),
        first.len().to_string()
    );
    assert!(
        resp.bytes().await.unwrap() == first,
        "streamed body differs"
    );
    println!(
        "{} bytes through B's gateway in {:?}",
        first.len(),
        started.elapsed()
    );

    // A range of content B does not have: only that part is fetched.
    let u2 = url(&b, &format!("/blob/{h2}"));
    check_range(
        &client,
        &u2,
        &second,
        "bytes=1500000-2600000",
        (1_500_000, 2_600_000),
    )
    .await;
    check_range(
        &client,
        &u2,
        &second,
        "bytes=-70000",
        (second.len() as u64 - 70_000, second.len() as u64 - 1),
    )
    .await;

    // The trustless form also works for content fetched on demand.
    let resp = client
        .get(format!("{u2}?format=bao&bytes=2200000-2300000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.bytes().await.unwrap();
    let leaves = decode_bao(&h2, &body).unwrap();
    assert_covers(&leaves, &second, 2_200_000..2_300_001);

    drop(client);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_segment_truncates_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let b = start(dir.path(), "b").await;
    let bytes = data(3 * 1024 * 1024, 6);
    let hash = a.blobs().add_bytes(bytes.clone(), None).await.unwrap().hash;
    connect(&b, &a).await;
    let client = Client::new();
    let u = url(&b, &format!("/blob/{hash}"));
    // B learns the size and the first segment, then the only provider goes.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let resp = get_range(&client, &u, "bytes=0-999").await;
        if resp.status() == StatusCode::PARTIAL_CONTENT || Instant::now() > deadline {
            assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(&resp.bytes().await.unwrap()[..], &bytes[..1000]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.shutdown().await;

    let started = Instant::now();
    let mut resp = client.get(&u).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, header::CONTENT_LENGTH),
        bytes.len().to_string()
    );
    let mut got = Vec::new();
    let outcome = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    println!(
        "body ended after {} of {} bytes in {:?}: {outcome:?}",
        got.len(),
        bytes.len(),
        started.elapsed()
    );
    assert!(outcome.is_err(), "a truncated body must end in an error");
    // Once its only provider is given up on and no search is left, the
    // body ends (it used to wait out a 30 s provider wait, twice).
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the body ended only after {:?}",
        started.elapsed()
    );
    assert!(got.len() >= 1024 * 1024 && got.len() < bytes.len());
    assert!(got[..] == bytes[..got.len()], "the bytes sent are wrong");
    drop(client);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_data_from_a_provider_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::loopback(dir.path().join("a"), "gw-test");
    config.fault = weft_blobs::transfer::Fault::CorruptData;
    let a = Node::start(config).await.unwrap();
    let b = start(dir.path(), "b").await;
    let hash = a
        .blobs()
        .add_bytes(data(100_000, 7), None)
        .await
        .unwrap()
        .hash;
    connect(&b, &a).await;
    let client = Client::new();
    let u = url(&b, &format!("/blob/{hash}"));
    // Until B has really asked A, then once more.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut asked = false;
    while !asked && Instant::now() < deadline {
        asked = a
            .blobs()
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0;
        let resp = client.get(&u).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(
            status == StatusCode::BAD_GATEWAY || status == StatusCode::NOT_FOUND,
            "{status} {body}"
        );
    }
    assert!(asked, "B never asked A");
    drop(client);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_hash_is_not_found_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let b = start(dir.path(), "b").await;
    connect(&b, &a).await;
    let unknown = Hash::new(b"nobody has this");
    let started = Instant::now();
    let resp = Client::new()
        .get(url(&b, &format!("/blob/{unknown}")))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!("404 for an unknown hash after {elapsed:?}");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not found in the network"),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_serve_paths_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let b = start(dir.path(), "b").await;
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    let index = "<!doctype html><title>weft</title>";
    std::fs::write(site.join("index.html"), index).unwrap();
    std::fs::write(site.join("sub/a.txt"), "hello from a").unwrap();
    let c = a.blobs().add_path(site).await.unwrap().hash;
    let client = Client::new();

    let resp = client
        .get(url(&a, &format!("/blob/{c}/sub/a.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, header::CONTENT_TYPE).starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "hello from a");

    for path in [format!("/blob/{c}"), format!("/blob/{c}/")] {
        let resp = client.get(url(&a, &path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(header(&resp, header::CONTENT_TYPE).starts_with("text/html"));
        assert_eq!(resp.text().await.unwrap(), index, "{path}");
    }
    // The manifest itself on request.
    let resp = client
        .get(url(&a, &format!("/blob/{c}?format=raw")))
        .send()
        .await
        .unwrap();
    assert!(resp
        .text()
        .await
        .unwrap()
        .starts_with("{\"weft_collection\":1"));

    let listing: Value = client
        .get(url(&a, &format!("/blob/{c}/sub/")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["entries"][0]["name"], "a.txt", "{listing}");
    let resp = client
        .get(url(&a, &format!("/blob/{c}/missing.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Unsafe paths are refused, as the server receives them.
    for path in [
        "sub/../index.html",
        "sub/%2e%2e/index.html",
        "..",
        "sub/a.txt%5C..",
        "a//b",
    ] {
        let (status, reply) = raw_get(&a, &format!("/blob/{c}/{path}")).await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert!(reply.contains("\"code\":\"bad_path\""), "{path}: {reply}");
    }

    // Through another node: the manifest, then a file found via the
    // collection's providers.
    connect(&b, &a).await;
    let resp = get_eventually(&client, &url(&b, &format!("/blob/{c}/sub/a.txt"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "hello from a");
    let resp = client
        .get(url(&b, &format!("/blob/{c}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), index);

    drop(client);
    b.shutdown().await;
    a.shutdown().await;
}

/// Decodes a `format=bao` body against `hash`: the leaves, or the first
/// verification error.
fn decode_bao(hash: &Hash, body: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let size = u64::from_le_bytes(body[..8].try_into().unwrap());
    let count = u16::from_le_bytes(body[8..10].try_into().unwrap()) as usize;
    let mut ranges = ChunkRanges::empty();
    for i in 0..count {
        let at = 10 + 16 * i;
        let start = u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
        let end = u64::from_le_bytes(body[at + 8..at + 16].try_into().unwrap());
        ranges |= ChunkRanges::from(ChunkNum(start)..ChunkNum(end));
    }
    let encoded = &body[10 + 16 * count..];
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let mut leaves = Vec::new();
    for item in DecodeResponseIter::new((*hash).into(), tree, encoded, &ranges) {
        match item.map_err(|e| format!("{e:?}"))? {
            BaoContentItem::Leaf(leaf) => leaves.push((leaf.offset, leaf.data.to_vec())),
            BaoContentItem::Parent(_) => {}
        }
    }
    Ok(leaves)
}

/// Every decoded leaf holds the blob's bytes, and together they cover
/// `wanted`.
fn assert_covers(leaves: &[(u64, Vec<u8>)], whole: &[u8], wanted: std::ops::Range<usize>) {
    let mut covered = Vec::new();
    for (offset, data) in leaves {
        let offset = *offset as usize;
        assert_eq!(&data[..], &whole[offset..offset + data.len()]);
        covered.push(offset..offset + data.len());
    }
    let last = wanted.end - 1;
    for i in wanted.step_by(1000).chain([last]) {
        assert!(covered.iter().any(|r| r.contains(&i)), "byte {i} not sent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bao_ranges_verify_against_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let bytes = data(300_000, 5);
    let hash = a.blobs().add_bytes(bytes.clone(), None).await.unwrap().hash;
    let client = Client::new();
    let base = url(&a, &format!("/blob/{hash}"));

    let resp = client
        .get(format!("{base}?format=bao&bytes=20000-50000"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, header::CONTENT_TYPE), "application/x-bao");
    let body = resp.bytes().await.unwrap().to_vec();
    assert_eq!(u64::from_le_bytes(body[..8].try_into().unwrap()), 300_000);
    let leaves = decode_bao(&hash, &body).unwrap();
    assert_covers(&leaves, &bytes, 20_000..50_001);

    // Any tampering is caught: a data byte, a parent hash byte.
    for at in [body.len() - 1, 10 + 16 + 3] {
        let mut bad = body.clone();
        bad[at] ^= 1;
        assert!(
            decode_bao(&hash, &bad).is_err(),
            "tampered byte {at} passed"
        );
    }

    // The whole blob, which also proves the size.
    let body = client
        .get(format!("{base}?format=bao"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut whole = Vec::new();
    for (offset, data) in decode_bao(&hash, &body).unwrap() {
        assert_eq!(offset as usize, whole.len());
        whole.extend(data);
    }
    assert!(whole == bytes, "decoded blob differs");
    // Past the end: the last chunk group.
    let body = client
        .get(format!("{base}?format=bao&bytes=999999999-"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let leaves = decode_bao(&hash, &body).unwrap();
    assert_eq!(
        leaves.last().map(|(o, d)| *o as usize + d.len()),
        Some(300_000)
    );

    drop(client);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "a").await;
    let hash = a.blobs().add_bytes(b"x".to_vec(), None).await.unwrap().hash;
    let client = Client::new();
    let cases = [
        (
            "/blob/not-a-hash".to_owned(),
            "bad_hash",
            "expected 64 hex characters",
        ),
        (
            format!("/blob/{}zz", &hash.to_hex()[..62]),
            "bad_hash",
            "not a hex digit",
        ),
        (
            format!("/blob/{hash}?format=zip"),
            "bad_format",
            "unknown format",
        ),
        (
            format!("/blob/{hash}?format=bao&bytes=9-1"),
            "bad_range",
            "START-END",
        ),
    ];
    for (path, code, message) in cases {
        let resp = client.get(url(&a, &path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{path}: {body}"
        );
    }
    // A path under a blob that is not a collection.
    let resp = client
        .get(url(&a, &format!("/blob/{hash}/x.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not_a_collection", "{body}");
    drop(client);
    a.shutdown().await;
}

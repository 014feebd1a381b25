//! Sharing content between real `weft` nodes on loopback: `share`, `get`,
//! `ls`, `pin`, the store quota, bad providers, resuming after a crash,
//! folders (collections), hostile manifests and bad arguments.

mod helpers;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{loopback_args, unique_network, wait_until, Daemon, WEFT};
use helpers::{
    api_get, args_with_bootstrap, assert_one_line_error, json_ok, ls, ls_entry, n, random_bytes,
    random_file, s, share, snapshot, ticket_with_kind, weft_within,
};

const MIB: usize = 1 << 20;
/// Longest a `weft get` may take in these tests.
const GET_DEADLINE: Duration = Duration::from_secs(120);

/// `weft get TARGET -o OUT --json` on `node`, with a deadline.
fn get(node: &Daemon, target: &str, out: &Path) -> std::process::Output {
    weft_within(
        &node.dir,
        &[
            "get",
            target,
            "-o",
            out.to_str().expect("utf-8 path"),
            "--json",
        ],
        GET_DEADLINE,
    )
}

/// Asserts `path` holds exactly `expected`, without printing megabytes.
fn assert_file_eq(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        got == expected,
        "{} differs: {} bytes (blake3 {}), expected {} bytes (blake3 {})",
        path.display(),
        got.len(),
        blake3::hash(&got).to_hex(),
        expected.len(),
        blake3::hash(expected).to_hex()
    );
}

fn peer_bytes(status: &Value, peer: &str) -> u64 {
    status["per_peer"]
        .as_array()
        .expect("per_peer array")
        .iter()
        .filter(|p| p["peer_id"] == peer)
        .map(|p| n(p, "bytes"))
        .sum()
}

#[test]
fn two_nodes_share_64_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("share64");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    // B knows nothing of A: the ticket carries A's addresses.
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&network));

    let size = 64 * MIB;
    let src = tmp.path().join("big.bin");
    let data = random_file(&src, size, 0x0123_4567_89ab_cdef);

    let t = Instant::now();
    let shared = share(&a, &src);
    let share_time = t.elapsed();
    assert_eq!(s(&shared, "hash"), blake3::hash(&data).to_hex().as_str());
    assert_eq!(n(&shared, "size"), size as u64);
    assert_eq!(s(&shared, "kind"), "blob");
    assert_eq!(s(&shared, "name"), "big.bin");
    let ticket = s(&shared, "ticket");
    assert!(ticket.starts_with("weft1"), "{ticket}");

    let out = tmp.path().join("downloads").join("big copy.bin");
    let t = Instant::now();
    let got = get(&b, ticket, &out);
    let get_time = t.elapsed();
    let status = json_ok(&got, "weft get");
    assert_eq!(s(&status, "state"), "complete", "{status}");
    assert_eq!(n(&status, "total"), size as u64, "{status}");
    assert_eq!(n(&status, "bytes_done"), size as u64, "{status}");
    // Everything came over the network in this run (a little more is
    // allowed: the size-proving first request may overlap later ones).
    let received = n(&status, "bytes_received");
    assert!(
        received >= size as u64 && received <= size as u64 + MIB as u64,
        "{status}"
    );
    assert!(peer_bytes(&status, &a.peer_id) > 0, "{status}");
    assert_file_eq(&out, &data);
    println!(
        "64 MiB: share {:.2}s, get {:.2}s ({:.0} MiB/s)",
        share_time.as_secs_f64(),
        get_time.as_secs_f64(),
        64.0 / get_time.as_secs_f64()
    );
}

#[test]
fn bad_provider_is_dropped_and_the_fetch_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("badpeer");
    let honest = Daemon::start(&tmp.path().join("honest"), &loopback_args(&network));
    let mut args = args_with_bootstrap(&network, &[&honest]);
    args.extend(["--test-fault".to_owned(), "corrupt-blobs".to_owned()]);
    let corrupt = Daemon::start(&tmp.path().join("corrupt"), &args);

    let size = 8 * MIB;
    let src = tmp.path().join("shared.bin");
    let data = random_file(&src, size, 0xbad_c0ffee);
    let from_honest = share(&honest, &src);
    let from_corrupt = share(&corrupt, &src);
    let hash = s(&from_honest, "hash").to_owned();
    assert_eq!(hash, s(&from_corrupt, "hash"));
    assert_eq!(hash, blake3::hash(&data).to_hex().as_str());

    // The corrupt node's ticket, so that it is asked (first); the honest
    // node comes from the DHT. A fetching node remembers offenders, so each
    // attempt uses a new one; another attempt is made only if the corrupt
    // node happened not to be asked at all.
    // (`requests` counts every blob request a node answered; `bytes_sent`
    // misses the ones whose stream the fetcher dropped.)
    let requests = |d: &Daemon| n(&api_get(d, "/v1/blobs/stats").expect("stats"), "requests");
    for attempt in 1..=3 {
        let b = Daemon::start(
            &tmp.path().join(format!("b{attempt}")),
            &args_with_bootstrap(&network, &[&honest, &corrupt]),
        );
        assert!(
            wait_until(Duration::from_secs(20), || {
                let ids = b.peer_ids();
                ids.contains(&honest.peer_id) && ids.contains(&corrupt.peer_id)
            }),
            "B did not connect to both providers: {:?}",
            b.peer_ids()
        );
        let corrupt_asked = requests(&corrupt);
        let out = tmp.path().join(format!("out{attempt}.bin"));
        let got = get(&b, s(&from_corrupt, "ticket"), &out);
        let status = json_ok(&got, "weft get");
        println!("attempt {attempt}: status with a corrupt provider: {status}");
        assert_eq!(s(&status, "state"), "complete", "{status}");
        assert_file_eq(&out, &data);
        assert!(peer_bytes(&status, &honest.peer_id) > 0, "{status}");
        let entry = ls_entry(&b, &hash).expect("the blob is listed on B");
        assert_eq!(entry["complete"], true, "{entry}");
        assert_eq!(n(&entry, "size"), size as u64, "{entry}");
        assert_eq!(n(&entry, "verified_bytes"), size as u64, "{entry}");

        let bad: Vec<&str> = status["bad_peers"]
            .as_array()
            .expect("bad_peers array")
            .iter()
            .map(|p| p.as_str().expect("peer id"))
            .collect();
        assert!(
            !bad.contains(&honest.peer_id.as_str()),
            "the honest node is in bad_peers: {status}"
        );
        if requests(&corrupt) == corrupt_asked {
            println!("attempt {attempt}: the corrupt node was never asked; again");
            continue;
        }
        assert!(
            bad.contains(&corrupt.peer_id.as_str()),
            "the corrupt node {} was asked but is not in bad_peers: {status}",
            corrupt.peer_id
        );
        return;
    }
    panic!("the corrupt node was never asked in 3 attempts");
}

#[test]
fn a_killed_fetch_resumes_with_only_the_missing_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("resume");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let b_dir = tmp.path().join("b");
    let mut b = Daemon::start(&b_dir, &loopback_args(&network));

    let size = 64 * MIB;
    let src = tmp.path().join("big.bin");
    let data = random_file(&src, size, 0x0005_eed0_f4e5);
    let shared = share(&a, &src);
    let hash = s(&shared, "hash").to_owned();
    let ticket = s(&shared, "ticket").to_owned();
    let out = tmp.path().join("out.bin");

    // Start the fetch in the background and watch B's store through its API
    // (a raw request costs about a millisecond, far less than `weft ls`).
    let mut first = Command::new(WEFT)
        .arg("--data-dir")
        .arg(&b_dir)
        .args(["get", &ticket, "-o"])
        .arg(&out)
        .arg("--json")
        .env_remove("WEFT_API")
        .env_remove("WEFT_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weft get");
    let quarter = size as u64 / 4;
    let until = Instant::now() + Duration::from_secs(60);
    let mut verified_before = 0;
    while Instant::now() < until {
        let entry = api_get(&b, "/v1/blobs").and_then(|list| {
            list.as_array()
                .and_then(|l| l.iter().find(|e| e["hash"] == hash.as_str()).cloned())
        });
        if let Some(e) = entry {
            verified_before = n(&e, "verified_bytes");
            if verified_before >= quarter {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SIGKILL, mid-transfer.
    b.child.kill().expect("kill B");
    b.child.wait().expect("wait for B");
    let _ = first.kill();
    let _ = first.wait();
    assert!(
        verified_before >= quarter,
        "B verified only {verified_before} of {size} bytes within 60 s"
    );
    assert!(
        verified_before < size as u64,
        "the transfer finished before B could be killed; use a larger file"
    );
    drop(b);

    let b = Daemon::start(&b_dir, &loopback_args(&network));
    let entry = ls_entry(&b, &hash).expect("the partial blob survives the crash");
    let verified_after_restart = n(&entry, "verified_bytes");
    assert_eq!(entry["complete"], false, "{entry}");
    assert!(
        verified_after_restart >= verified_before,
        "verified bytes went from {verified_before} to {verified_after_restart} over the restart"
    );

    let got = get(&b, &ticket, &out);
    let status = json_ok(&got, "weft get (resumed)");
    assert_eq!(s(&status, "state"), "complete", "{status}");
    assert_file_eq(&out, &data);
    let received = n(&status, "bytes_received");
    println!(
        "resume: {size} bytes, {verified_before} verified when killed, \
         {verified_after_restart} after restart, {received} received after restart"
    );
    let slack = 4 * MIB as u64;
    assert!(
        received <= size as u64 - verified_before + slack,
        "the resumed fetch received {received} bytes although {verified_before} of {size} were already verified"
    );
    assert!(
        received >= size as u64 - verified_after_restart,
        "the resumed fetch received {received} bytes, less than the {} missing",
        size as u64 - verified_after_restart
    );
    let entry = ls_entry(&b, &hash).expect("listed");
    assert_eq!(entry["complete"], true, "{entry}");
    assert_eq!(n(&entry, "verified_bytes"), size as u64, "{entry}");
}

#[test]
fn a_folder_round_trips_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("folder");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&network));

    let src = tmp.path().join("my folder");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a/b/c/deep.bin", random_bytes(300_000, 1)),
        ("a/b/sibling.txt", b"sibling\n".to_vec()),
        ("a/empty file.txt", Vec::new()),
        ("ünïcødé/日本.txt", "こんにちは\n".as_bytes().to_vec()),
        ("with spaces/a file name.txt", b"spaces".to_vec()),
        ("top.bin", random_bytes(4097, 2)),
        // The same bytes twice: one blob, two files.
        ("dup one.txt", b"duplicate".to_vec()),
        ("a/dup two.txt", b"duplicate".to_vec()),
    ];
    for (rel, bytes) in &files {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    for dir in ["a/empty dir", "only/nested/empty"] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
    }

    let shared = share(&a, &src);
    assert_eq!(s(&shared, "kind"), "collection", "{shared}");
    assert_eq!(n(&shared, "files"), files.len() as u64, "{shared}");
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(n(&shared, "size"), total as u64, "{shared}");

    let dest = tmp.path().join("received").join("new folder");
    let got = get(&b, s(&shared, "ticket"), &dest);
    let status = json_ok(&got, "weft get");
    assert_eq!(s(&status, "state"), "complete", "{status}");
    assert_eq!(n(&status, "files_total"), files.len() as u64, "{status}");

    let want = snapshot(&src);
    let have = snapshot(&dest);
    let want_keys: Vec<&String> = want.keys().collect();
    let have_keys: Vec<&String> = have.keys().collect();
    assert_eq!(have_keys, want_keys, "the received tree has other paths");
    for (rel, bytes) in &want {
        assert!(have[rel] == *bytes, "{rel} differs");
    }
    assert!(dest.join("a/empty dir").is_dir());
    assert!(dest.join("only/nested/empty").is_dir());
    assert_eq!(
        std::fs::metadata(dest.join("a/empty file.txt"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_folder_of_many_small_files_round_trips() {
    // The receiver fetches several files of a collection at once, each
    // from the one provider: every file must arrive.
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("manyfiles");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&network));
    let count = 600;
    let src = tmp.path().join("many");
    for i in 0..count {
        let dir = src.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i:03}.txt")), format!("file {i}\n")).unwrap();
    }
    let t = Instant::now();
    let shared = share(&a, &src);
    let share_time = t.elapsed();
    assert_eq!(n(&shared, "files"), count, "{shared}");
    let dest = tmp.path().join("copy");
    let t = Instant::now();
    let got = get(&b, s(&shared, "ticket"), &dest);
    let status = json_ok(&got, "weft get");
    println!(
        "{count} files: share {:.2}s, get {:.2}s",
        share_time.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(s(&status, "state"), "complete", "{status}");
    assert_eq!(n(&status, "files_done"), count, "{status}");
    assert!(snapshot(&dest) == snapshot(&src), "the copy differs");
}

/// A manifest in the collection format with one file entry at `path`.
fn hostile_manifest(path: &str, hash: &str, size: usize) -> Vec<u8> {
    format!(
        r#"{{"weft_collection":1,"entries":[{{"path":{},"hash":"{hash}","size":{size}}}]}}"#,
        serde_json::to_string(path).unwrap()
    )
    .into_bytes()
}

#[test]
fn hostile_collection_paths_write_nothing_outside_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("traversal");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let b = Daemon::start(&tmp.path().join("b"), &args_with_bootstrap(&network, &[&a]));

    // What the hostile entry names: A has it, so a fetch could succeed.
    let payload = b"owned\n";
    let payload_path = tmp.path().join("payload.txt");
    std::fs::write(&payload_path, payload).unwrap();
    let payload_hash = s(&share(&a, &payload_path), "hash").to_owned();
    assert_eq!(payload_hash, blake3::hash(payload).to_hex().as_str());

    // Everything B writes goes under `work`; snapshots of it show whether
    // anything escaped the target folder.
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let absolute = work.join("abs").join("x");
    let cases = [
        ("dotdot", "../x".to_owned()),
        ("nested-dotdot", "a/../../x".to_owned()),
        ("absolute", absolute.to_str().unwrap().to_owned()),
    ];
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for (name, path) in &cases {
        let bytes = hostile_manifest(path, &payload_hash, payload.len());
        let file = manifests.join(format!("{name}.json"));
        std::fs::write(&file, &bytes).unwrap();
        let shared = share(&a, &file);
        let hash = s(&shared, "hash").to_owned();
        assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
        assert_eq!(s(&shared, "kind"), "blob");
        let before = snapshot(&work);

        // 1. A ticket that says "collection": the fetch must fail.
        let forged = ticket_with_kind(s(&shared, "ticket"), 1);
        let target = work.join(format!("{name}-as-collection"));
        let got = get(&b, &forged, &target);
        let line = assert_one_line_error(&got, "unsafe path");
        println!("{name}: as a collection: {line}");
        let after = snapshot(&work);
        let leftover: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        let inside_target = format!("{name}-as-collection");
        assert!(
            leftover.iter().all(|k| **k == inside_target),
            "{name}: a rejected collection wrote {leftover:?}"
        );
        assert!(
            snapshot(&target).values().all(Option::is_none),
            "{name}: a rejected collection wrote files into the target"
        );

        // 2. The bare hash: providers from the DHT, kind detected.
        let target = work.join(format!("{name}-bare")).join("out");
        let got = get(&b, &hash, &target);
        if got.status.success() {
            // Not a valid collection, so it is a plain blob: the manifest's
            // bytes, written to the target file and nowhere else.
            println!("{name}: bare hash: fetched as a plain blob");
            assert!(target.is_file(), "{name}: expected a plain file");
            assert_file_eq(&target, &bytes);
        } else {
            let line = assert_one_line_error(&got, "");
            println!("{name}: bare hash: rejected: {line}");
        }
        let after = snapshot(&work);
        let prefix = format!("{name}-bare");
        for (k, v) in &after {
            if k == &prefix || k.starts_with(&format!("{prefix}/")) {
                continue;
            }
            assert_eq!(before.get(k), Some(v), "{name}: {k} was written");
        }
        for k in before.keys() {
            assert!(after.contains_key(k), "{name}: {k} disappeared");
        }
        assert!(!work.join("x").exists(), "{name}: ../x was written");
        assert!(
            !tmp.path().join("x").exists(),
            "{name}: ../../x was written"
        );
        assert!(!absolute.exists(), "{name}: the absolute path was written");
        assert!(
            !work.join(format!("{name}-bare")).join("x").exists(),
            "{name}: x next to the target"
        );
    }
}

#[test]
fn bad_content_arguments_fail_on_one_line_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("badargs");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));

    let folder = tmp.path().join("folder");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("sub/f.txt"), b"f").unwrap();
    let shared = share(&a, &folder);
    assert_eq!(s(&shared, "kind"), "collection");
    let collection_ticket = s(&shared, "ticket").to_owned();
    let existing_file = tmp.path().join("existing.txt");
    std::fs::write(&existing_file, b"keep me").unwrap();

    let short_hash = "a".repeat(63);
    let non_hex = format!("{}g", "0".repeat(63));
    let missing = tmp.path().join("missing file");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["get", "weft1!!!"], "malformed ticket"),
        (vec!["get", &short_hash], "64"),
        (vec!["get", &non_hex], "hex"),
        (vec!["share", missing.to_str().unwrap()], "does not exist"),
        (
            vec![
                "get",
                &collection_ticket,
                "-o",
                existing_file.to_str().unwrap(),
            ],
            "a folder is needed",
        ),
    ];
    // Against the running node, and against a data dir with no node: the
    // same argument error both times shows that it is found before any
    // request is made.
    let no_node = tmp.path().join("no-node");
    for (args, needle) in &cases {
        for (dir, what) in [(&a.dir, "running node"), (&no_node, "no node")] {
            for json in [false, true] {
                let mut args = args.clone();
                if json {
                    args.push("--json");
                }
                let out = weft_within(dir, &args, Duration::from_secs(30));
                let line = assert_one_line_error(&out, needle);
                assert!(
                    !line.contains("no running node"),
                    "{args:?} ({what}) contacted the node first: {line}"
                );
            }
        }
    }
    assert_eq!(std::fs::read(&existing_file).unwrap(), b"keep me");
    // The node is still fine and has only what was shared.
    let list = ls(&a);
    assert_eq!(list.len(), 2, "{list:?}");
}

#[test]
fn quota_evicts_least_recently_used_but_never_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("quota");
    let mut args = loopback_args(&network);
    args.extend(["--store-max".to_owned(), "3M".to_owned()]);
    let node = Daemon::start(&tmp.path().join("node"), &args);
    let quota = 3 * MIB as u64;

    let write = |name: &str, seed: u64| {
        let path = tmp.path().join(name);
        random_file(&path, MIB, seed);
        path
    };
    let p = share(&node, &write("P.bin", 10));
    // Four different files.
    assert_ne!(random_bytes(16, 20), random_bytes(16, 21));
    let p_hash = s(&p, "hash").to_owned();
    let pinned = json_ok(&node.weft(&["pin", &p_hash, "--json"]), "weft pin");
    assert_eq!(pinned["pinned"], true, "{pinned}");

    let mut unpinned = Vec::new();
    for (i, name) in ["U1.bin", "U2.bin", "U3.bin"].iter().enumerate() {
        let shared = share(&node, &write(name, 20 + i as u64));
        unpinned.push(s(&shared, "hash").to_owned());
    }

    let list = ls(&node);
    println!("after the imports: {list:#?}");
    let listed = |hash: &str| list.iter().find(|b| b["hash"] == hash);
    let p_entry = listed(&p_hash).expect("the pinned blob was evicted");
    assert_eq!(p_entry["pinned"], true, "{p_entry}");
    assert_eq!(p_entry["complete"], true, "{p_entry}");
    assert!(
        listed(&unpinned[2]).is_some(),
        "the newest import is missing"
    );
    let evicted: Vec<&String> = unpinned.iter().filter(|h| listed(h).is_none()).collect();
    assert!(
        !evicted.is_empty(),
        "nothing was evicted although 4 MiB were imported under a 3 MiB quota"
    );
    let total: u64 = list.iter().map(|b| n(b, "size")).sum();
    assert!(total <= quota, "{total} bytes listed, quota {quota}");

    let stats = api_get(&node, "/v1/blobs/stats").expect("stats");
    assert_eq!(stats["quota"], quota, "{stats}");
    assert!(n(&stats, "store_bytes") <= quota, "{stats}");
}

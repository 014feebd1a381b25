//! Helpers for the content-sharing tests: test data, JSON output of CLI
//! commands, a raw HTTP GET against a node's API, folder snapshots and
//! ticket re-encoding.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Output,
    time::Duration,
};

use serde_json::Value;

use crate::support::{loopback_args, stderr, Daemon};

/// `len` pseudo-random bytes (xorshift64), different for each seed.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // Spread the seed (splitmix64) so that nearby seeds give unrelated
    // streams; xorshift needs a non-zero state.
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    state = (state ^ (state >> 31)) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` pseudo-random bytes to `path` and returns them.
pub(crate) fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let bytes = random_bytes(len, seed);
    std::fs::write(path, &bytes).expect("write test file");
    bytes
}

/// Loopback daemon arguments that bootstrap from `peers`.
pub(crate) fn args_with_bootstrap(network: &str, peers: &[&Daemon]) -> Vec<String> {
    let mut args = loopback_args(network);
    for p in peers {
        args.push("--bootstrap".to_owned());
        args.push(p.addr("tcp"));
    }
    args
}

/// Parses a successful command's stdout as JSON.
pub(crate) fn json_ok(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `weft share PATH --json` on `node`.
pub(crate) fn share(node: &Daemon, path: &Path) -> Value {
    let out = node.weft(&["share", path.to_str().expect("utf-8 path"), "--json"]);
    json_ok(&out, &format!("weft share {}", path.display()))
}

/// `weft ls --json` on `node`.
pub(crate) fn ls(node: &Daemon) -> Vec<Value> {
    let out = node.weft(&["ls", "--json"]);
    json_ok(&out, "weft ls")
        .as_array()
        .expect("ls is an array")
        .clone()
}

/// The `ls` entry for `hash`, if listed.
pub(crate) fn ls_entry(node: &Daemon, hash: &str) -> Option<Value> {
    ls(node).into_iter().find(|b| b["hash"] == hash)
}

/// A string field of a JSON value.
pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {v}"))
}

/// A number field of a JSON value.
pub(crate) fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key:?} is not a number in {v}"))
}

/// `GET path` on the node's API with its token, over a plain TCP
/// connection (HTTP/1.1, `Connection: close`); returns the JSON body.
/// `None` when the node does not answer (e.g. it was just killed).
pub(crate) fn api_get(node: &Daemon, path: &str) -> Option<Value> {
    let token = std::fs::read_to_string(node.dir.join("api.token")).ok()?;
    let host = node
        .api_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return None;
    }
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    serde_json::from_slice(&body).ok()
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Every path under `root` (relative, `/`-separated): `Some(bytes)` for a
/// file, `None` for a folder. Symlinks are listed as files with their target.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .expect("utf-8 name")
                .replace(std::path::MAIN_SEPARATOR, "/");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("read_link");
                out.insert(rel, Some(target.to_string_lossy().as_bytes().to_vec()));
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read file")));
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// Asserts a command failed with exit code 1 and exactly one non-empty
/// stderr line containing `needle` (case-insensitive), without a panic.
pub(crate) fn assert_one_line_error(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {}; stderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{err}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
    lines[0].to_owned()
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE32
            .iter()
            .position(|&b| b == c.to_ascii_lowercase())
            .expect("base32 character") as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The same ticket with its kind byte changed (0 blob, 1 collection). The
/// ticket text is `weft1` + base32 of `version | kind | hash | providers`.
pub(crate) fn ticket_with_kind(ticket: &str, kind: u8) -> String {
    let body = ticket.strip_prefix("weft1").expect("ticket prefix");
    let mut bytes = base32_decode(body);
    assert_eq!(base32_encode(&bytes), body, "base32 round trip");
    assert_eq!(bytes[0], 1, "ticket version");
    bytes[1] = kind;
    format!("weft1{}", base32_encode(&bytes))
}

/// Runs `weft --data-dir DIR ARGS` like [`crate::support::weft`], but kills
/// it and panics if it has not finished within `deadline`.
pub(crate) fn weft_within(dir: &Path, args: &[&str], deadline: Duration) -> Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::support::WEFT)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WEFT_API")
        .env_remove("WEFT_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let until = std::time::Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "weft {args:?} did not finish within {deadline:?}; stderr: {}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

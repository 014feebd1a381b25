//! `weft pub` and `weft sub` between two daemons: a subscriber on B prints
//! what `weft pub` sends on A, once; bad topics and huge messages fail with
//! one line.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{loopback_args, stderr, unique_network, Daemon, WEFT};

const DEADLINE: Duration = Duration::from_secs(30);

/// A `weft sub` process whose stdout lines arrive on a channel; killed
/// when dropped.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sub {
    fn start(dir: &Path, topic: &str, json: bool) -> Sub {
        let mut command = Command::new(WEFT);
        command.arg("--data-dir").arg(dir).args(["sub", topic]);
        if json {
            command.arg("--json");
        }
        let mut child = command
            .env_remove("WEFT_API")
            .env_remove("WEFT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn weft sub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sub { child, lines }
    }

    /// Lines until one contains `needle` (included), or None by `deadline`.
    fn until(&self, needle: &str, deadline: Duration) -> Option<Vec<String>> {
        let until = Instant::now() + deadline;
        let mut seen = Vec::new();
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return Some(seen);
            }
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `weft --data-dir DIR pub ARGS` with `stdin` as its input.
fn publish_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(WEFT)
        .arg("--data-dir")
        .arg(dir)
        .arg("pub")
        .args(args)
        .env_remove("WEFT_API")
        .env_remove("WEFT_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft pub");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Write from a thread: the process may exit before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("weft pub");
    let _ = writer.join();
    out
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

fn published_id(out: &Output) -> String {
    assert!(out.status.success(), "weft pub failed: {}", stderr(out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 64, "not a message id: {id:?}");
    id
}

#[test]
fn sub_on_one_node_prints_what_pub_sends_on_another() {
    let tmp = tempfile::tempdir().unwrap();
    let net = unique_network("pubsub");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&net));
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&net));
    let out = b.weft(&["dial", &a.addr("tcp")]);
    assert!(out.status.success(), "dial: {}", stderr(&out));

    let json_sub = Sub::start(&b.dir, "chat.lobby", true);
    let text_sub = Sub::start(&b.dir, "chat.lobby", false);
    // A learns that B subscribed in a moment; until then its messages reach
    // nobody. Probe until both subscribers print one.
    let (mut probes, mut json_heard, mut text_heard) = (0, false, false);
    let reached = crate::support::wait_until(DEADLINE, || {
        probes += 1;
        let out = a.weft(&["pub", "chat.lobby", &format!("probe {probes}")]);
        published_id(&out);
        let wait = Duration::from_millis(300);
        json_heard |= json_sub.until("probe", wait).is_some();
        text_heard |= text_sub.until("probe", wait).is_some();
        json_heard && text_heard
    });
    assert!(reached, "B's subscribers never heard A");

    let id = published_id(&a.weft(&["pub", "chat.lobby", "hello from A"]));
    let out = publish_stdin(&a.dir, &["chat.lobby", "--json"], b"from stdin\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).expect("pub --json is JSON");
    assert_eq!(reply["from"], a.peer_id.as_str());
    assert_eq!(reply["topic"], "chat.lobby");
    let sentinel = published_id(&a.weft(&["pub", "chat.lobby", "sentinel"]));

    let lines = json_sub.until(&sentinel, DEADLINE).expect("the sentinel");
    let messages: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .filter(|m: &Value| !m["data"].as_str().unwrap_or("").starts_with("probe"))
        .collect();
    assert_eq!(messages.len(), 3, "{lines:?}");
    assert_eq!(messages[0]["id"], id.as_str());
    assert_eq!(messages[0]["data"], "hello from A");
    assert_eq!(messages[0]["from"], a.peer_id.as_str());
    assert_eq!(messages[0]["topic"], "chat.lobby");
    assert!(messages[0]["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        messages[1]["data"], "from stdin",
        "one trailing newline dropped"
    );
    assert_eq!(messages[1]["id"], reply["id"]);

    let lines = text_sub.until("sentinel", DEADLINE).expect("the sentinel");
    let hello: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("hello from A"))
        .collect();
    assert_eq!(hello.len(), 1, "{lines:?}");
    // <timestamp> <from> <data>
    let fields: Vec<&str> = hello[0].splitn(3, ' ').collect();
    assert!(
        fields[0].ends_with('Z') && fields[0].contains('T'),
        "{fields:?}"
    );
    assert_eq!(fields[1], a.peer_id);
    assert_eq!(fields[2], "hello from A");
}

#[test]
fn bad_topics_and_huge_messages_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let net = unique_network("pubsub-bad");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&net));

    for topic in ["bad topic!", "a/b", &"x".repeat(65)] {
        assert_one_line_error(&a.weft(&["pub", topic, "hi"]), "invalid topic name");
        assert_one_line_error(&a.weft(&["sub", topic]), "invalid topic name");
    }
    let out = publish_stdin(&a.dir, &["chat"], &vec![b'x'; 200_000]);
    assert_one_line_error(&out, "200000 bytes is larger than the limit of 65536 bytes");
    let out = publish_stdin(&a.dir, &["chat"], &vec![b'x'; 2 << 20]);
    assert_one_line_error(&out, "larger than 1 MiB");
    // Binary data goes as a raw body, with the same limit.
    let out = publish_stdin(&a.dir, &["chat"], &vec![0xff; 100_000]);
    assert_one_line_error(&out, "100000 bytes is larger than the limit");
    published_id(&publish_stdin(&a.dir, &["chat"], &[0xff, 0x00, 0x01]));

    // No node to talk to.
    let out = crate::support::weft(&tmp.path().join("nobody"), &["sub", "chat"]);
    assert_one_line_error(&out, "no running node");
}

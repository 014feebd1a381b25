//! Helpers for end-to-end tests: real `weft` processes on 127.0.0.1 with
//! ephemeral ports, each in its own temporary data dir.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub(crate) const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A `weft start` process; killed when dropped.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) dir: PathBuf,
    pub(crate) peer_id: String,
    pub(crate) listen_addrs: Vec<String>,
    pub(crate) api_url: String,
    _stdout: mpsc::Receiver<String>,
}

/// Arguments for a loopback daemon on an ephemeral port.
pub(crate) fn loopback_args(network: &str) -> Vec<String> {
    [
        "--api",
        "127.0.0.1:0",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--listen",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "--no-mdns",
        "--network",
        network,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Daemon {
    /// Starts `weft --data-dir DIR --json start ARGS` and waits for its
    /// start-up line.
    pub(crate) fn start(dir: &Path, args: &[String]) -> Daemon {
        let mut child = Command::new(WEFT)
            .arg("--data-dir")
            .arg(dir)
            .arg("--json")
            .arg("start")
            .args(args)
            .env_remove("WEFT_API")
            .env_remove("WEFT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn weft start");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("weft start printed nothing: {e}");
            }
        };
        let v: Value = serde_json::from_str(&line).expect("start-up line is JSON");
        Daemon {
            child,
            dir: dir.to_owned(),
            peer_id: v["peer_id"].as_str().expect("peer_id").to_owned(),
            listen_addrs: v["listen_addrs"]
                .as_array()
                .expect("listen_addrs")
                .iter()
                .map(|a| a.as_str().expect("addr").to_owned())
                .collect(),
            api_url: v["api_url"].as_str().expect("api_url").to_owned(),
            _stdout: rx,
        }
    }

    /// The listen address of the given transport ("tcp" or "quic-v1").
    pub(crate) fn addr(&self, transport: &str) -> String {
        self.listen_addrs
            .iter()
            .find(|a| a.contains(&format!("/{transport}")))
            .cloned()
            .expect("listen address of that transport")
    }

    /// Runs a CLI command against this daemon through its data dir.
    pub(crate) fn weft(&self, args: &[&str]) -> Output {
        weft(&self.dir, args)
    }

    /// `weft peers --json` as a list of peer ids.
    pub(crate) fn peer_ids(&self) -> Vec<String> {
        let out = self.weft(&["peers", "--json"]);
        assert!(out.status.success(), "weft peers failed: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("peers JSON");
        v.as_array()
            .expect("array")
            .iter()
            .map(|p| p["peer_id"].as_str().expect("peer_id").to_owned())
            .collect()
    }

    /// Sends a signal ("TERM", "INT") and waits for the exit, up to `deadline`.
    pub(crate) fn signal(
        &mut self,
        signal: &str,
        deadline: Duration,
    ) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `weft --data-dir DIR ARGS`.
pub(crate) fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(WEFT)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WEFT_API")
        .env_remove("WEFT_DATA_DIR")
        .output()
        .expect("run weft")
}

/// Runs `weft ARGS` with no data dir flag.
pub(crate) fn weft_raw(args: &[&str]) -> Output {
    Command::new(WEFT)
        .args(args)
        .env_remove("WEFT_API")
        .env_remove("WEFT_DATA_DIR")
        .output()
        .expect("run weft")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns true or `deadline` passes.
pub(crate) fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(50);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// A network name no other test uses.
pub(crate) fn unique_network(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("test-{tag}-{}-{nanos:x}", std::process::id())
}

//! Sharing benchmark: real weft nodes on 127.0.0.1 (QUIC + TCP, as
//! `weft_net::Config::loopback`), in this process unless noted. It prints a
//! report and asserts nothing. Run it with
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench nice -n 15 cargo bench -p weft-blobs --bench sharing
//! ```
//!
//! 1. **Two nodes, 1 GiB** (`WEFT_BENCH_BYTES`): one node imports a
//!    generated file (timed, for information), another fetches it from the
//!    ticket; only the fetch counts. Baselines from the same run, on the
//!    same byte count: raw loopback TCP (a tokio TcpListener/TcpStream pair,
//!    64 KiB writes) and single-threaded BLAKE3 (`Hasher::update` over 1 MiB
//!    slices of the file's bytes). The fetch is repeated by a fresh node with
//!    a ticket holding only the other transport's address.
//! 2. **Swarm** (`WEFT_BENCH_SWARM_BYTES`, 256 MiB): 1 seeder, 8 downloaders
//!    that all start together on the same ticket. Time until all completed;
//!    the seeder's egress (`bytes_sent`) as a multiple of the size.
//! 3. **Receiver memory**: the bench re-runs itself as a child
//!    (`WEFT_BENCH_ROLE=receiver`, ticket in `WEFT_BENCH_TICKET`) that starts
//!    its own node and fetches from a seeder in this process. Its RSS comes
//!    from /proc/<pid>/status: VmRSS of the idle node before the fetch, then
//!    the peak (VmHWM; VmRSS is also polled every 50 ms). Run for 1 GiB and
//!    for a quarter of it (256 MiB).
//! 4. **Many small files** (`WEFT_BENCH_FILES`, 10,000 files of 1–10 KiB,
//!    one folder): `add_path` of the folder, then the fetch of the collection
//!    by another node and its export to a folder, timed separately.
//!
//! Sizes take a byte count with an optional K, M or G suffix (binary).
//! `WEFT_BENCH_ONLY=fetch,swarm,rss,files` runs a subset (handy under
//! `perf`). Data goes under the system temp dir (`TMPDIR`): about 4 GiB at
//! the default sizes.

use std::{
    fs::{self, File},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{atomic::Ordering, mpsc},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;
use weft_blobs::{
    fetch::{FetchTarget, Progress},
    transfer::Fault,
    BlobKind, Blobs, Config, Hash, Ticket,
};
use weft_net::{Identity, Network, PeerId, Registry};

const MIB: f64 = 1024.0 * 1024.0;
const NETWORK: &str = "weft-bench";
const DOWNLOADERS: usize = 8;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var("WEFT_BENCH_ROLE").as_deref() == Ok("receiver") {
        runtime.block_on(receiver_child());
    } else {
        runtime.block_on(run());
    }
}

fn env_size(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let t = text.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.trim().parse::<u64>() {
        Ok(n) if n > 0 => n * mult,
        _ => panic!("{name}={text} is not a size"),
    }
}

fn runs(part: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

fn rate(bytes: u64, d: Duration) -> f64 {
    mib(bytes) / d.as_secs_f64()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            word.copy_from_slice(&x[..word.len()]);
        }
    }
}

/// Writes `len` pseudo-random bytes in 1 MiB blocks.
fn write_random_file(path: &Path, len: u64, seed: u64) {
    let mut rng = XorShift(seed | 1);
    let mut file = File::create(path).expect("create the input file");
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n]).expect("write the input file");
        left -= n as u64;
    }
}

struct Node {
    net: Network,
    blobs: Blobs,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry::default();
        let config = weft_net::Config::loopback(Identity::generate(), NETWORK);
        let net = weft_net::start(config, &mut registry)
            .await
            .expect("start the network");
        let config = Config {
            dir: dir.path().join("blobs"),
            quota: None,
            fault: Fault::None,
        };
        let blobs = Blobs::start(config, net.handle().clone())
            .await
            .expect("start the blobs service");
        Node {
            net,
            blobs,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.blobs.shutdown().await;
        self.net.shutdown().await;
    }

    /// Imports `path`; returns its ticket and the import time.
    async fn share(&self, path: PathBuf) -> (Ticket, Duration) {
        let t = Instant::now();
        let added = self.blobs.add_path(path).await.expect("import");
        let took = t.elapsed();
        (self.blobs.ticket(added.hash).await.expect("ticket"), took)
    }

    /// Fetches a ticket's content; returns the fetch time.
    async fn fetch(&self, ticket: &Ticket) -> Result<Duration, String> {
        let target = FetchTarget {
            hash: ticket.hash,
            kind: Some(ticket.kind),
            providers: ticket.providers.clone(),
        };
        let t = Instant::now();
        let fetcher = self.blobs.fetcher();
        let result = fetcher.fetch(target, Progress::default(), CancellationToken::new());
        result.await.map_err(|e| e.to_string())?;
        let took = t.elapsed();
        match self.blobs.info(ticket.hash).await {
            Ok(Some(info)) if info.complete => Ok(took),
            other => Err(format!(
                "fetch returned but the blob is not complete: {other:?}"
            )),
        }
    }

    /// The transport of our connection to `peer`.
    async fn transport_to(&self, peer: PeerId) -> &'static str {
        let peers = self.net.handle().peers().await.unwrap_or_default();
        match peers
            .iter()
            .find(|p| p.peer_id == peer)
            .and_then(|p| p.addrs.first())
        {
            Some(a) if a.to_string().contains("/quic") => "QUIC",
            Some(_) => "TCP",
            None => "?",
        }
    }
}

/// The ticket with only QUIC (or only non-QUIC, i.e. TCP) addresses.
fn only_transport(ticket: &Ticket, quic: bool) -> Ticket {
    let mut t = ticket.clone();
    for p in &mut t.providers {
        p.addrs.retain(|a| a.to_string().contains("/quic") == quic);
    }
    t
}

async fn raw_tcp(total: u64) -> std::io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await?;
        let buf = vec![0x5au8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            s.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        s.shutdown().await
    });
    let (mut reader, _) = listener.accept().await?;
    let mut buf = vec![0u8; 64 * 1024];
    while reader.read(&mut buf).await? > 0 {}
    writer.await.map_err(std::io::Error::other)??;
    Ok(start.elapsed())
}

/// BLAKE3 of the file's bytes, 1 MiB per update, one thread; only hashing is timed.
fn blake3_rate(path: &Path, expect: Hash) -> (Duration, bool) {
    let data = fs::read(path).expect("read the input file");
    let t = Instant::now();
    let mut hasher = blake3::Hasher::new();
    for slice in data.chunks(1 << 20) {
        hasher.update(slice);
    }
    let hash = hasher.finalize();
    (t.elapsed(), hash.as_bytes() == expect.as_bytes())
}

fn fetch_line(label: &str, size: u64, r: &Result<Duration, String>, tcp: f64, b3: f64) -> String {
    match r {
        Ok(d) => {
            let mbs = rate(size, *d);
            format!(
                "  {label:<28} {:>7.2} s {mbs:>8.1} MiB/s  = {:.2}x raw TCP, {:.2}x BLAKE3",
                d.as_secs_f64(),
                mbs / tcp,
                mbs / b3
            )
        }
        Err(e) => format!("  {label:<28} FAILED: {e}"),
    }
}

/// Measurement 1. A seeder already shares `ticket` (imported from `path`).
async fn two_nodes(ticket: &Ticket, path: &Path, size: u64, report: &mut Vec<String>) {
    eprintln!("[fetch] baselines");
    let tcp = raw_tcp(size).await.expect("raw TCP baseline");
    let tcp_rate = rate(size, tcp);
    let p = path.to_owned();
    let hash = ticket.hash;
    let (b3, same) = tokio::task::spawn_blocking(move || blake3_rate(&p, hash))
        .await
        .expect("blake3 task");
    let b3_rate = rate(size, b3);
    eprintln!("[fetch] two nodes, default ticket");
    let receiver = Node::start().await;
    let first = receiver.fetch(ticket).await;
    let used = receiver.transport_to(ticket.providers[0].peer).await;
    receiver.stop().await;
    let quic_first = used == "QUIC";
    let other_label = if quic_first { "TCP" } else { "QUIC" };
    eprintln!("[fetch] two nodes, {other_label} only");
    let receiver = Node::start().await;
    let second = receiver.fetch(&only_transport(ticket, !quic_first)).await;
    let used2 = receiver.transport_to(ticket.providers[0].peer).await;
    receiver.stop().await;
    report.push(format!(
        "1. Two nodes on loopback, {:.0} MiB blob (only the fetch is timed)",
        mib(size)
    ));
    report.push(fetch_line(
        &format!("fetch, full ticket (via {used})"),
        size,
        &first,
        tcp_rate,
        b3_rate,
    ));
    report.push(fetch_line(
        &format!("fetch, {other_label}-only ticket (via {used2})"),
        size,
        &second,
        tcp_rate,
        b3_rate,
    ));
    report.push(format!(
        "  {:<28} {:>7.2} s {:>8.1} MiB/s",
        "baseline: raw TCP, 64 KiB",
        tcp.as_secs_f64(),
        tcp_rate
    ));
    report.push(format!(
        "  {:<28} {:>7.2} s {:>8.1} MiB/s{}",
        "baseline: BLAKE3, 1 thread",
        b3.as_secs_f64(),
        b3_rate,
        if same {
            ""
        } else {
            "  (hash differs from the blob id!)"
        }
    ));
}

/// Measurement 2.
async fn swarm(size: u64, work: &Path, report: &mut Vec<String>) {
    eprintln!("[swarm] generating {:.0} MiB", mib(size));
    let path = work.join("swarm.bin");
    write_random_file(&path, size, 2);
    let seeder = Node::start().await;
    let (ticket, _) = seeder.share(path.clone()).await;
    let _ = fs::remove_file(&path);
    let mut nodes = Vec::new();
    for _ in 0..DOWNLOADERS {
        nodes.push(Node::start().await);
    }
    eprintln!("[swarm] {DOWNLOADERS} downloaders");
    let start = Instant::now();
    let fetches = nodes
        .iter()
        .map(|n| async { n.fetch(&ticket).await.map(|_| start.elapsed()) });
    let results = futures::future::join_all(fetches).await;
    let total = start.elapsed();
    let seeder_out = seeder.blobs.stats().bytes_sent.load(Ordering::Relaxed);
    let peers_out: u64 = nodes
        .iter()
        .map(|n| n.blobs.stats().bytes_sent.load(Ordering::Relaxed))
        .sum();
    let done: Vec<f64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|d| d.as_secs_f64())
        .collect();
    let first = done.iter().copied().fold(f64::INFINITY, f64::min);
    report.push(format!(
        "2. Swarm: 1 seeder -> {DOWNLOADERS} downloaders, {:.0} MiB, all started together",
        mib(size)
    ));
    report.push(format!(
        "  all completed in {:.2} s ({}/{DOWNLOADERS} ok; first done at {first:.2} s); aggregate {:.1} MiB/s delivered",
        total.as_secs_f64(),
        done.len(),
        rate(size * done.len() as u64, total)
    ));
    report.push(format!(
        "  seeder egress {:.0} MiB = {:.2}x the size; downloaders uploaded {:.0} MiB = {:.2}x",
        mib(seeder_out),
        seeder_out as f64 / size as f64,
        mib(peers_out),
        peers_out as f64 / size as f64
    ));
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        report.push(format!("  FAILED: {e}"));
    }
    seeder.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct ChildRss {
    idle_kib: u64,
    peak_kib: u64,
    sampled_kib: u64,
    fetch: Duration,
}

/// Runs a receiver child fetching `ticket` and watches its memory. Blocking.
fn measure_child(ticket: String) -> Result<ChildRss, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .env("WEFT_BENCH_ROLE", "receiver")
        .env("WEFT_BENCH_TICKET", ticket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = (|| {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "ready" => {}
            other => return Err(format!("child did not start: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(500)); // let the idle node settle
        let idle_kib = status_kib(pid, "VmRSS:");
        writeln!(stdin, "go").map_err(|e| e.to_string())?;
        let mut sampled_kib = idle_kib;
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    sampled_kib = sampled_kib.max(status_kib(pid, "VmRSS:"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("child exited".into()),
            }
        };
        let peak_kib = status_kib(pid, "VmHWM:");
        let secs: f64 = match line.strip_prefix("done ") {
            Some(s) => s.parse().map_err(|_| format!("child said {line:?}"))?,
            None => return Err(format!("child: {line}")),
        };
        Ok(ChildRss {
            idle_kib,
            peak_kib,
            sampled_kib,
            fetch: Duration::from_secs_f64(secs),
        })
    })();
    drop(stdin); // the child exits on end of input
    let _ = child.wait();
    result
}

/// The child side of measurement 3: an idle node, then one fetch.
async fn receiver_child() {
    let ticket: Ticket = std::env::var("WEFT_BENCH_TICKET")
        .expect("WEFT_BENCH_TICKET")
        .parse()
        .expect("a valid ticket");
    let node = Node::start().await;
    let read_line = || {
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
    };
    println!("ready");
    let _ = read_line().await;
    match node.fetch(&ticket).await {
        Ok(d) => println!("done {}", d.as_secs_f64()),
        Err(e) => println!("error {e}"),
    }
    let _ = read_line().await;
    node.stop().await;
}

/// Measurement 3. `seeder` shares `big` (of `size` bytes).
async fn rss(seeder: &Node, big: &Ticket, size: u64, work: &Path, report: &mut Vec<String>) {
    let small = size / 4;
    let path = work.join("small.bin");
    write_random_file(&path, small, 3);
    let (small_ticket, _) = seeder.share(path.clone()).await;
    let _ = fs::remove_file(&path);
    report.push("3. Receiving node's memory (child process, fetching from this process)".into());
    for (bytes, ticket) in [(size, big), (small, &small_ticket)] {
        eprintln!("[rss] child fetching {:.0} MiB", mib(bytes));
        let t = ticket.to_string();
        let r = tokio::task::spawn_blocking(move || measure_child(t))
            .await
            .expect("child task");
        report.push(match r {
            Ok(c) => format!(
                "  {:>6.0} MiB: idle {:.1} MiB, peak {:.1} MiB (VmHWM; polled VmRSS max {:.1}), growth {:.1} MiB; fetch {:.2} s = {:.1} MiB/s",
                mib(bytes),
                c.idle_kib as f64 / 1024.0,
                c.peak_kib as f64 / 1024.0,
                c.sampled_kib as f64 / 1024.0,
                c.peak_kib.saturating_sub(c.idle_kib) as f64 / 1024.0,
                c.fetch.as_secs_f64(),
                rate(bytes, c.fetch)
            ),
            Err(e) => format!("  {:>6.0} MiB: FAILED: {e}", mib(bytes)),
        });
    }
}

/// Measurement 4.
async fn small_files(count: u64, work: &Path, report: &mut Vec<String>) {
    eprintln!("[files] generating {count} files");
    let dir = work.join("many");
    fs::create_dir_all(&dir).expect("create the folder");
    let mut rng = XorShift(4);
    let mut buf = vec![0u8; 10 * 1024];
    let mut total = 0u64;
    for i in 0..count {
        let len = 1024 + (rng.next() % (9 * 1024 + 1)) as usize;
        rng.fill(&mut buf[..len]);
        fs::write(dir.join(format!("file-{i:06}.bin")), &buf[..len]).expect("write a file");
        total += len as u64;
    }
    let sharer = Node::start().await;
    let getter = Node::start().await;
    eprintln!("[files] add_path");
    let (ticket, add) = sharer.share(dir.clone()).await;
    eprintln!("[files] fetch");
    let fetched = getter.fetch(&ticket).await;
    eprintln!("[files] export");
    let store = getter.blobs.store().clone();
    let out = work.join("exported");
    let t = Instant::now();
    let hash = ticket.hash;
    let exported = tokio::task::spawn_blocking(move || {
        weft_blobs::export::export(&store, &hash, BlobKind::Collection, &out)
            .map_err(|e| e.to_string())
    })
    .await
    .expect("export task");
    let export_time = t.elapsed();
    let line = |label: &str, d: Duration| {
        format!(
            "  {label:<28} {:>7.2} s {:>8.0} files/s {:>7.2} MiB/s {:>7.0} us/file",
            d.as_secs_f64(),
            count as f64 / d.as_secs_f64(),
            rate(total, d),
            d.as_secs_f64() * 1e6 / count as f64
        )
    };
    report.push(format!(
        "4. Many small files: {count} files of 1-10 KiB, {:.1} MiB in one folder",
        mib(total)
    ));
    report.push(line("share: add_path(folder)", add));
    report.push(match &fetched {
        Ok(d) => line("get: fetch collection", *d),
        Err(e) => format!("  get: fetch collection FAILED: {e}"),
    });
    report.push(match exported {
        Ok(_) if fetched.is_ok() => line("get: export to a folder", export_time),
        Ok(_) => "  get: export skipped".into(),
        Err(e) => format!("  get: export FAILED: {e}"),
    });
    if let Ok(d) = fetched {
        report.push(line("get: fetch + export", d + export_time));
    }
    sharer.stop().await;
    getter.stop().await;
}

async fn run() {
    let size = env_size("WEFT_BENCH_BYTES", 1 << 30);
    let swarm_size = env_size("WEFT_BENCH_SWARM_BYTES", 256 << 20);
    let files = env_size("WEFT_BENCH_FILES", 10_000);
    let work = tempfile::tempdir().expect("tempdir");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = vec![format!(
        "weft-blobs sharing benchmark: {cpus} CPUs, loopback, data under {}",
        work.path().parent().unwrap_or(work.path()).display()
    )];
    if runs("fetch") || runs("rss") {
        eprintln!("[fetch] generating {:.0} MiB", mib(size));
        let path = work.path().join("big.bin");
        write_random_file(&path, size, 1);
        let seeder = Node::start().await;
        let (ticket, import) = seeder.share(path.clone()).await;
        if runs("fetch") {
            two_nodes(&ticket, &path, size, &mut report).await;
            report.push(format!(
                "  {:<28} {:>7.2} s {:>8.1} MiB/s  (sharing side, for information)",
                "import: add_path(file)",
                import.as_secs_f64(),
                rate(size, import)
            ));
        }
        let _ = fs::remove_file(&path);
        if runs("rss") {
            rss(&seeder, &ticket, size, work.path(), &mut report).await;
        }
        seeder.stop().await;
    }
    if runs("swarm") {
        swarm(swarm_size, work.path(), &mut report).await;
    }
    if runs("files") {
        small_files(files, work.path(), &mut report).await;
    }
    println!("\n==================== weft-blobs sharing ====================");
    for line in report {
        println!("{line}");
    }
    println!("=============================================================");
}

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
//!    a ticket holding only the other transport's address, then twice over
//!    TCP with direct I/O for the received data off and on (the ratio of the
//!    two is printed).
//! 2. **Swarm** (`WEFT_BENCH_SWARM_BYTES`, 256 MiB): 1 seeder, 8 downloaders
//!    that all start together on the same ticket. Time until all completed;
//!    the seeder's egress (`bytes_sent`) as a multiple of the size.
//! 3. **Receiver memory**: the bench re-runs itself as a child
//!    (`WEFT_BENCH_ROLE=receiver`, ticket in `WEFT_BENCH_TICKET`) that starts
//!    its own node and fetches from a seeder in this process. Its RSS comes
//!    from /proc/<pid>/status: VmRSS of the idle node before the fetch, and
//!    the peak (VmHWM) after it. Run for 1 GiB and for a quarter of it.
//! 4. **Many small files** (`WEFT_BENCH_FILES`, 10,000 files of 1–10 KiB,
//!    one folder): `add_path` of the folder, then the fetch of the collection
//!    by another node and its export to a folder, timed separately.
//!
//! Sizes take a byte count with an optional K, M or G suffix (binary).
//! `WEFT_BENCH_ONLY=fetch,swarm,rss,files` runs a subset (handy under
//! `perf`). Data goes under the system temp dir (`TMPDIR`): about 4 GiB at
//! the default sizes. `sync` runs before timed phases so that the dirty page
//! cache of generated inputs does not land in them; the 1-minute load
//! average is printed, since other work on the machine skews everything.

use std::{
    fs::{self, File},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use weft_blobs::{
    fetch::{FetchTarget, Progress},
    transfer::Fault,
    BlobKind, Blobs, Config, Hash, Ticket,
};
use weft_net::{Identity, Network, PeerId, Registry};

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
    let t = text.trim().to_ascii_uppercase();
    let unit = ["", "K", "M", "G"].iter().rposition(|u| t.ends_with(u));
    let n = t.trim_end_matches(['K', 'M', 'G']).parse::<u64>();
    n.map(|n| n << (10 * unit.unwrap_or(0)))
        .expect("a size, like 256M")
}

fn runs(part: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rate(bytes: u64, d: Duration) -> f64 {
    mib(bytes) / d.as_secs_f64()
}

/// `label`, seconds and MiB/s, aligned.
fn row(label: &str, d: Duration, bytes: u64) -> String {
    let (s, r) = (d.as_secs_f64(), rate(bytes, d));
    format!("  {label:<34} {s:>7.2} s {r:>8.1} MiB/s")
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
            word.copy_from_slice(&self.next().to_le_bytes()[..word.len()]);
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

/// Writing `len` bytes to a new file in `dir` (1 MiB writes, then one
/// fsync): what any receiver must at least do with what it downloads.
fn disk_write_time(dir: &Path, len: u64) -> Duration {
    let path = dir.join("disk-baseline.bin");
    let mut buf = vec![0u8; 1 << 20];
    XorShift(7).fill(&mut buf);
    let t = Instant::now();
    let mut file = File::create(&path).expect("create the disk baseline file");
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n])
            .expect("write the disk baseline file");
        left -= n as u64;
    }
    file.sync_data().expect("sync the disk baseline file");
    let took = t.elapsed();
    drop(file);
    let _ = fs::remove_file(&path);
    took
}

struct Node {
    net: Network,
    blobs: Blobs,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = weft_net::Config::loopback(Identity::generate(), NETWORK);
        let net = weft_net::start(config, &mut Registry::default()).await;
        let net = net.expect("start the network");
        let (blobs_dir, fault) = (dir.path().join("blobs"), Fault::None);
        let config = Config {
            dir: blobs_dir,
            quota: None,
            fault,
        };
        let blobs = Blobs::start(config, net.handle().clone()).await;
        let blobs = blobs.expect("start the blobs service");
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
        let (hash, kind) = (ticket.hash, Some(ticket.kind));
        let target = FetchTarget {
            hash,
            kind,
            providers: ticket.providers.clone(),
        };
        let t = Instant::now();
        let cpu_start = cpu_time();
        let fetch =
            self.blobs
                .fetcher()
                .fetch(target, Progress::default(), CancellationToken::new());
        fetch.await.map_err(|e| e.to_string())?;
        let took = t.elapsed();
        let cores = (cpu_time() - cpu_start).as_secs_f64() / took.as_secs_f64();
        eprintln!("[fetch] process CPU during the fetch: {cores:.2} cores");
        let complete = matches!(self.blobs.info(hash).await, Ok(Some(i)) if i.complete);
        complete
            .then_some(took)
            .ok_or("fetched, but not complete".into())
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

/// CPU time (user + system) used by this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn raw_tcp(total: u64) -> std::io::Result<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
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

/// BLAKE3 of the file's bytes, 1 MiB per update, one thread; only hashing
/// is timed. Also says whether the hash is `expect`.
fn blake3_time(path: &Path, expect: Hash) -> (Duration, bool) {
    let data = fs::read(path).expect("read the input file");
    let t = Instant::now();
    let mut hasher = blake3::Hasher::new();
    for slice in data.chunks(1 << 20) {
        hasher.update(slice);
    }
    let hash = hasher.finalize();
    (t.elapsed(), hash.as_bytes() == expect.as_bytes())
}

/// Measurement 1: a seeder shares `ticket`, imported from `path` in `import`.
async fn two_nodes(ticket: &Ticket, path: &Path, size: u64, import: Duration) -> Vec<String> {
    eprintln!("[fetch] baselines");
    let tcp = raw_tcp(size).await.expect("raw TCP baseline");
    let (p, hash) = (path.to_owned(), ticket.hash);
    let blake3 = tokio::task::spawn_blocking(move || blake3_time(&p, hash));
    let (blake3, same) = blake3.await.expect("blake3 task");
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    let disk = tokio::task::spawn_blocking(move || disk_write_time(&dir, size));
    let disk = disk.await.expect("disk baseline task");
    let mb = mib(size);
    let mut report = vec![format!(
        "1. Two nodes, {mb:.0} MiB blob (only the fetch is timed)"
    )];
    let seeder = ticket.providers[0].peer;
    let mut quic_first = true;
    let direct_default = weft_blobs::direct::enabled();
    // TCP fetch times with direct I/O off and on, compared below.
    let (mut buffered, mut direct) = (None, None);
    for i in 0..4 {
        eprintln!("[fetch] two nodes, run {}", i + 1);
        let mut ticket = ticket.clone();
        // The second run keeps only the addresses of the transport not used
        // by the first; the last two use TCP, with direct I/O off and on.
        match i {
            1 => ticket.providers[0]
                .addrs
                .retain(|a| a.to_string().contains("/quic") != quic_first),
            2 | 3 => ticket.providers[0]
                .addrs
                .retain(|a| a.to_string().contains("/tcp")),
            _ => {}
        }
        weft_blobs::direct::set_enabled(match i {
            2 => false,
            3 => true,
            _ => direct_default,
        });
        let receiver = Node::start().await;
        let fetched = receiver.fetch(&ticket).await;
        let via = receiver.transport_to(seeder).await;
        quic_first &= i > 0 || via == "QUIC";
        receiver.stop().await;
        let kind = [
            "full ticket",
            "only its address",
            "direct I/O off",
            "direct I/O on",
        ][i];
        let label = format!("fetch via {via}, {kind}");
        match (i, &fetched) {
            (2, Ok(d)) => buffered = Some(*d),
            (3, Ok(d)) => direct = Some(*d),
            _ => {}
        }
        report.push(match fetched {
            Ok(d) => format!(
                "{}  = {:.2}x raw TCP, {:.2}x disk write, {:.2}x BLAKE3",
                row(&label, d, size),
                tcp.as_secs_f64() / d.as_secs_f64(),
                disk.as_secs_f64() / d.as_secs_f64(),
                blake3.as_secs_f64() / d.as_secs_f64()
            ),
            Err(e) => format!("  {label:<34} FAILED: {e}"),
        });
    }
    weft_blobs::direct::set_enabled(direct_default);
    if let (Some(off), Some(on)) = (buffered, direct) {
        report.push(format!(
            "  direct I/O on vs off (TCP, same run): {:.2}x the throughput",
            off.as_secs_f64() / on.as_secs_f64()
        ));
    }
    report.push(row("baseline: raw TCP, 64 KiB writes", tcp, size));
    report.push(row("baseline: write a new file + fsync", disk, size));
    let check = ["  (hash differs from the blob id!)", ""][usize::from(same)];
    report.push(row("baseline: BLAKE3, 1 thread", blake3, size) + check);
    report.push(row("share: add_path(file), for info", import, size));
    report
}

/// Measurement 2.
async fn swarm(size: u64, work: &Path) -> Vec<String> {
    eprintln!("[swarm] generating {:.0} MiB", mib(size));
    let path = work.join("swarm.bin");
    write_random_file(&path, size, 2);
    let seeder = Node::start().await;
    let (ticket, _) = seeder.share(path.clone()).await;
    let _ = fs::remove_file(&path);
    settle();
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
    let sent = |n: &Node| n.blobs.stats().bytes_sent.load(Ordering::Relaxed);
    let seeder_out = sent(&seeder);
    let peers_out: u64 = nodes.iter().map(sent).sum();
    let ok: Vec<f64> = results.iter().flatten().map(|d| d.as_secs_f64()).collect();
    let first = ok.iter().copied().fold(f64::INFINITY, f64::min);
    let mut report = vec![
        format!("2. Swarm: 1 seeder -> {DOWNLOADERS} downloaders, {:.0} MiB, started together", mib(size)),
        format!(
            "  all completed in {:.2} s ({}/{DOWNLOADERS} ok, first at {first:.2} s), {:.1} MiB/s delivered in total",
            total.as_secs_f64(),
            ok.len(),
            rate(size * ok.len() as u64, total)
        ),
        format!(
            "  seeder egress {:.0} MiB = {:.2}x the size; downloaders uploaded {:.0} MiB = {:.2}x",
            mib(seeder_out),
            seeder_out as f64 / size as f64,
            mib(peers_out),
            peers_out as f64 / size as f64
        ),
    ];
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        report.push(format!("  FAILED: {e}"));
    }
    seeder.stop().await;
    for n in nodes {
        n.stop().await;
    }
    report
}

/// Flushes dirty page cache (the generated inputs) so it does not slow the
/// timed phases.
fn settle() {
    let _ = Command::new("sync").status();
}

/// The 1-minute load average: other work on the machine skews the results.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// A `/proc/<pid>/status` field in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with(field));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Runs a receiver child fetching `ticket`; returns its idle RSS, peak RSS
/// (MiB) and fetch time. Blocking.
fn measure_child(ticket: String) -> Result<(f64, f64, Duration), String> {
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
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let result = (|| {
        match lines.next() {
            Some(Ok(l)) if l == "ready" => {}
            other => return Err(format!("child did not start: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(500)); // let the idle node settle
        let idle = status_mib(pid, "VmRSS:");
        writeln!(stdin, "go").map_err(|e| e.to_string())?;
        let line = lines
            .next()
            .ok_or("child exited")?
            .map_err(|e| e.to_string())?;
        let peak = status_mib(pid, "VmHWM:"); // the child waits for us before exiting
        let secs = line
            .strip_prefix("done ")
            .and_then(|s| s.parse::<f64>().ok());
        let secs = secs.ok_or(format!("child: {line}"))?;
        Ok((idle, peak, Duration::from_secs_f64(secs)))
    })();
    drop(stdin); // the child exits at the end of its input
    let _ = child.wait();
    result
}

/// The child side of measurement 3: an idle node, then one fetch.
async fn receiver_child() {
    let ticket = std::env::var("WEFT_BENCH_TICKET").expect("WEFT_BENCH_TICKET");
    let ticket: Ticket = ticket.parse().expect("a valid ticket");
    let node = Node::start().await;
    let read_line =
        || tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()));
    println!("ready");
    let _ = read_line().await;
    match node.fetch(&ticket).await {
        Ok(d) => println!("done {}", d.as_secs_f64()),
        Err(e) => println!("error {e}"),
    }
    let _ = read_line().await;
    node.stop().await;
}

/// Measurement 3: `seeder` shares `big` (of `size` bytes).
async fn rss(seeder: &Node, big: &Ticket, size: u64, work: &Path) -> Vec<String> {
    let small = size / 4;
    let path = work.join("small.bin");
    write_random_file(&path, small, 3);
    let (small_ticket, _) = seeder.share(path.clone()).await;
    let _ = fs::remove_file(&path);
    settle();
    let mut report =
        vec!["3. Receiving node's RSS (a child process fetching from this one)".to_string()];
    for (bytes, ticket) in [(size, big), (small, &small_ticket)] {
        eprintln!("[rss] child fetching {:.0} MiB", mib(bytes));
        let t = ticket.to_string();
        let r = tokio::task::spawn_blocking(move || measure_child(t)).await;
        report.push(match r.expect("child task") {
            Ok((idle, peak, d)) => format!(
                "  {:>5.0} MiB blob: idle {idle:.1} MiB -> peak {peak:.1} MiB (+{:.1} MiB); fetch {:.2} s, {:.1} MiB/s",
                mib(bytes),
                peak - idle,
                d.as_secs_f64(),
                rate(bytes, d)
            ),
            Err(e) => format!("  {:>5.0} MiB blob: FAILED: {e}", mib(bytes)),
        });
    }
    report
}

/// Measurement 4.
async fn small_files(count: u64, work: &Path) -> Vec<String> {
    eprintln!("[files] generating {count} files");
    let dir = work.join("many");
    fs::create_dir_all(&dir).expect("create the folder");
    let (mut rng, mut buf, mut total) = (XorShift(4), vec![0u8; 10 * 1024], 0u64);
    for i in 0..count {
        let len = 1024 + (rng.next() % (9 * 1024 + 1)) as usize;
        rng.fill(&mut buf[..len]);
        fs::write(dir.join(format!("file-{i:06}.bin")), &buf[..len]).expect("write a file");
        total += len as u64;
    }
    let (sharer, getter) = (Node::start().await, Node::start().await);
    settle();
    eprintln!("[files] add_path, fetch, export");
    let (ticket, add) = sharer.share(dir.clone()).await;
    settle();
    let fetched = getter.fetch(&ticket).await;
    settle();
    let (store, hash, out) = (getter.blobs.store().clone(), ticket.hash, work.join("out"));
    let t = Instant::now();
    let exported = tokio::task::spawn_blocking(move || {
        weft_blobs::export::export(&store, &hash, BlobKind::Collection, &out)
    });
    let exported = exported.await.expect("export task").map(|_| t.elapsed());
    let line = |label: &str, r: Result<Duration, String>| match r {
        Ok(d) => format!(
            "{} {:>7.0} files/s {:>6.0} us/file",
            row(label, d, total),
            count as f64 / d.as_secs_f64(),
            d.as_secs_f64() * 1e6 / count as f64
        ),
        Err(e) => format!("  {label:<34} FAILED: {e}"),
    };
    let exported = exported.map_err(|e| e.to_string());
    let both = fetched.clone().and_then(|f| Ok(f + exported.clone()?));
    sharer.stop().await;
    getter.stop().await;
    vec![
        format!(
            "4. Many small files: {count} files of 1-10 KiB ({:.1} MiB), one folder",
            mib(total)
        ),
        line("share: add_path(folder)", Ok(add)),
        line("get: fetch the collection", fetched),
        line("get: export to a folder", exported),
        line("get: fetch + export", both),
    ]
}

async fn run() {
    let size = env_size("WEFT_BENCH_BYTES", 1 << 30);
    let swarm_size = env_size("WEFT_BENCH_SWARM_BYTES", 256 << 20);
    let files = env_size("WEFT_BENCH_FILES", 10_000);
    // WEFT_BENCH_DIRECT=0: direct I/O off for the whole run (the fetch
    // part still compares both).
    let direct = std::env::var("WEFT_BENCH_DIRECT").map_or(true, |v| v != "0");
    weft_blobs::direct::set_enabled(direct);
    let work = tempfile::tempdir().expect("tempdir");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let temp = std::env::temp_dir();
    let mut report = vec![format!(
        "weft-blobs sharing benchmark: {cpus} CPUs, 127.0.0.1, data under {}, 1-min load average at start: {}",
        temp.display(),
        load_average()
    )];
    let mut seeded = None;
    if runs("fetch") || runs("rss") {
        eprintln!("[fetch] generating {:.0} MiB", mib(size));
        let path = work.path().join("big.bin");
        write_random_file(&path, size, 1);
        let seeder = Node::start().await;
        settle();
        let (ticket, import) = seeder.share(path.clone()).await;
        settle();
        if runs("fetch") {
            report.extend(two_nodes(&ticket, &path, size, import).await);
        }
        let _ = fs::remove_file(&path);
        seeded = Some((seeder, ticket));
    }
    if runs("swarm") {
        report.extend(swarm(swarm_size, work.path()).await);
    }
    if let Some((seeder, ticket)) = seeded {
        if runs("rss") {
            report.extend(rss(&seeder, &ticket, size, work.path()).await);
        }
        seeder.stop().await;
    }
    if runs("files") {
        report.extend(small_files(files, work.path()).await);
    }
    report.push(format!("1-min load average at the end: {}", load_average()));
    println!("\n==================== weft-blobs sharing ====================");
    for line in report {
        println!("{line}");
    }
    println!("============================================================");
}

//! Helpers shared by the three measurements: settings, the report, timing, and a devnet genesis with prefunded keys.

use super::*;

pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

pub(crate) fn runs(part: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p.trim() == part))
}

pub(crate) fn phase(name: &'static str) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = name;
    eprintln!("[{name}] starting");
}

pub(crate) fn report(lines: impl IntoIterator<Item = String>) {
    REPORT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(lines);
}

pub(crate) fn take_report() -> Vec<String> {
    std::mem::take(&mut *REPORT.lock().unwrap_or_else(|e| e.into_inner()))
}

pub(crate) fn print_report(lines: &[String]) {
    println!("\n===================== weft-ledger ledger =====================");
    for line in lines {
        println!("{line}");
    }
    println!("==============================================================");
}

/// The 1-minute load average: other work on the machine skews the results.
pub(crate) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_owned()
}

/// CPU time (user + system) this process has used, from /proc/self/stat
/// (in clock ticks, taken as 100 Hz).
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces; the fields after it do not.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11) // utime and stime are fields 14 and 15
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Cores' worth of CPU this process used since `cpu` and `wall` were taken.
pub(crate) fn cores_since(cpu: Duration, wall: Instant) -> f64 {
    (cpu_time().saturating_sub(cpu)).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// `WEFT_BENCH_POLL_US`, or [`POLL_US`].
pub(crate) fn poll_interval() -> Duration {
    Duration::from_micros(env_u64("WEFT_BENCH_POLL_US", POLL_US).max(1))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorts `v` and returns (best, median).
pub(crate) fn best_median(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort_unstable();
    (v[0], v[v.len() / 2])
}

/// Nearest-rank percentile `p` (0..=100) of a sorted, non-empty slice.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `f` with a deadline, naming `what` when it runs out.
pub(crate) async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))
}

/// A genesis with `senders` prefunded keys; each measurement has its own,
/// so nodes of different measurements never share a network.
pub(crate) struct Devnet {
    /// The network name nodes check on connect (name and genesis hash).
    pub(crate) name: String,
    pub(crate) genesis: Genesis,
    pub(crate) genesis_hash: [u8; 32],
    pub(crate) keys: Vec<SigningKey>,
}

impl Devnet {
    pub(crate) fn new(label: &str, senders: usize) -> Self {
        let keys: Vec<SigningKey> = (0..senders)
            .map(|i| {
                let seed = blake3::hash(format!("weft bench {label} {i}").as_bytes());
                SigningKey::from(*seed.as_bytes())
            })
            .collect();
        let genesis = Genesis {
            name: format!("weft bench {label}"),
            timestamp: now_ms() - 60_000,
            alloc: keys
                .iter()
                .map(|k| Alloc {
                    address: address_of(k),
                    amount: PREFUND,
                })
                .collect(),
            block_interval_ms: 1,
            reward: 1_000,
            difficulty: 1,
        };
        let hash = genesis.hash();
        Devnet {
            name: format!("weft-bench-{label}@{}", &hash.to_string()[..16]),
            genesis,
            genesis_hash: hash.0,
            keys,
        }
    }

    /// A transfer from sender `from` to a fresh account.
    pub(crate) fn pay(&self, from: usize, nonce: u64) -> Transaction {
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&(from as u64).to_le_bytes());
        seed[8..].copy_from_slice(&nonce.to_le_bytes());
        let to = Address(*blake3::hash(&seed).as_bytes());
        let key = &self.keys[from];
        Transaction::sign(
            key,
            &self.genesis_hash,
            to,
            1 + nonce % 1000,
            FEE,
            nonce,
            Vec::new(),
        )
    }
}

//! Node configuration: flags beat environment beat `weft.toml` beat defaults.
//!
//! The CLI resolves flags and environment variables (clap does both) into an
//! [`Overrides`]; [`NodeConfig::resolve`] lays them over the data dir's
//! `weft.toml` and the defaults, and validates the result.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use weft_net::{DhtMode, Multiaddr};

use crate::data_dir::CONFIG_FILE;

/// Default API address.
pub const DEFAULT_API: &str = "127.0.0.1:4720";
pub const DEFAULT_NETWORK: &str = "main";
pub const DEFAULT_MAX_PEERS: u32 = 64;
/// Largest `weft.toml` we read.
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// `weft.toml`: every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub bootstrap: Option<Vec<String>>,
    pub api: Option<String>,
    pub mdns: Option<bool>,
    pub network: Option<String>,
    pub max_peers: Option<u32>,
    pub dht_mode: Option<String>,
    /// Blob store quota, e.g. "10G".
    pub store_max: Option<String>,
    /// Path of a genesis file (`weft genesis new`).
    pub genesis: Option<PathBuf>,
    pub mine: Option<bool>,
    /// Address the mining reward goes to.
    pub miner: Option<String>,
    pub mine_threads: Option<usize>,
}

/// Values given on the command line or in the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub api: Option<String>,
    /// `Some(false)` for `--no-mdns`.
    pub mdns: Option<bool>,
    pub network: Option<String>,
    pub max_peers: Option<u32>,
    pub dht_mode: Option<String>,
    pub store_max: Option<String>,
    pub genesis: Option<PathBuf>,
    /// `Some(true)` for `--mine`.
    pub mine: Option<bool>,
    pub miner: Option<String>,
    pub mine_threads: Option<usize>,
    /// Test-only fault injection (`corrupt-blobs`).
    pub test_fault: Option<String>,
}

/// A complete, validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub api: SocketAddr,
    pub mdns: bool,
    pub network: String,
    pub max_peers: u32,
    pub dht_mode: DhtMode,
    /// Most bytes the blob store keeps; unpinned content is evicted beyond.
    pub store_max: Option<u64>,
    pub fault: weft_blobs::transfer::Fault,
    /// The ledger's rules; the built-in genesis unless `--genesis`.
    pub genesis: weft_ledger::Genesis,
    pub mine: Option<Mining>,
}

/// `--mine`: who gets the reward (`None`: the node's default wallet) and
/// how many threads search.
#[derive(Debug, Clone)]
pub struct Mining {
    pub miner: Option<weft_ledger::Address>,
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is too large to be a config file")]
    TooLarge { path: PathBuf },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Addr(#[from] weft_net::AddrError),
    #[error("invalid API address {input:?}: expected HOST:PORT, for example 127.0.0.1:4720")]
    ApiAddr { input: String },
    #[error("the API must listen on a loopback address (127.0.0.1 or ::1), not {0}")]
    ApiNotLoopback(SocketAddr),
    #[error("invalid network name {0:?}: use 1-64 letters, digits, '-', '_' or '.'")]
    Network(String),
    #[error("--max-peers must be between 1 and 10000, not {0}")]
    MaxPeers(u32),
    #[error("{0}")]
    DhtMode(String),
    #[error(
        "invalid size {0:?}: use a number of bytes with an optional K, M, G or T suffix, e.g. 10G"
    )]
    Size(String),
    #[error("unknown test fault {0:?} (known: corrupt-blobs)")]
    Fault(String),
    #[error(transparent)]
    Genesis(#[from] weft_ledger::genesis::GenesisError),
    #[error("invalid --miner address: {0}")]
    Miner(weft_ledger::AddressError),
    #[error("--mine-threads must be between 1 and 256, not {0}")]
    MineThreads(usize),
}

impl FileConfig {
    /// Reads `weft.toml` from the data dir; a missing file is the default.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if meta.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge { path });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.message().to_owned(),
        })
    }
}

impl NodeConfig {
    /// Lays `overrides` over `file` over the defaults.
    pub fn resolve(
        data_dir: PathBuf,
        overrides: Overrides,
        file: FileConfig,
    ) -> Result<Self, ConfigError> {
        let listen = if !overrides.listen.is_empty() {
            parse_all(&overrides.listen)?
        } else if let Some(l) = &file.listen {
            parse_all(l)?
        } else {
            weft_net::default_listen_addrs()
        };
        for addr in &listen {
            weft_net::check_listen(addr)?;
        }
        let bootstrap_src = if !overrides.bootstrap.is_empty() {
            overrides.bootstrap
        } else {
            file.bootstrap.unwrap_or_default()
        };
        let bootstrap = bootstrap_src
            .iter()
            .map(|s| weft_net::parse_bootstrap(s))
            .collect::<Result<Vec<_>, _>>()?;

        let api_text = overrides
            .api
            .or(file.api)
            .unwrap_or_else(|| DEFAULT_API.to_owned());
        let api = parse_api_addr(&api_text)?;

        let network = overrides
            .network
            .or(file.network)
            .unwrap_or_else(|| DEFAULT_NETWORK.to_owned());
        if !valid_network_name(&network) {
            return Err(ConfigError::Network(network));
        }
        let max_peers = overrides
            .max_peers
            .or(file.max_peers)
            .unwrap_or(DEFAULT_MAX_PEERS);
        if !(1..=10_000).contains(&max_peers) {
            return Err(ConfigError::MaxPeers(max_peers));
        }
        let dht_mode = match overrides.dht_mode.or(file.dht_mode) {
            Some(s) => s.parse().map_err(ConfigError::DhtMode)?,
            None => DhtMode::default(),
        };
        let store_max = match overrides.store_max.or(file.store_max) {
            Some(s) => Some(parse_size(&s).ok_or(ConfigError::Size(s))?),
            None => None,
        };
        let fault = match overrides.test_fault.as_deref() {
            None | Some("") | Some("none") => weft_blobs::transfer::Fault::None,
            Some("corrupt-blobs") => weft_blobs::transfer::Fault::CorruptData,
            Some(other) => return Err(ConfigError::Fault(other.to_owned())),
        };
        let genesis = match overrides.genesis.or(file.genesis) {
            Some(path) => weft_ledger::Genesis::read(&path)?,
            None => weft_ledger::Genesis::builtin(),
        };
        let threads = overrides.mine_threads.or(file.mine_threads).unwrap_or(1);
        if !(1..=256).contains(&threads) {
            return Err(ConfigError::MineThreads(threads));
        }
        let miner = match overrides.miner.or(file.miner) {
            Some(s) => Some(s.parse().map_err(ConfigError::Miner)?),
            None => None,
        };
        let mine = overrides
            .mine
            .or(file.mine)
            .unwrap_or(false)
            .then_some(Mining { miner, threads });
        Ok(Self {
            data_dir,
            listen,
            bootstrap,
            api,
            mdns: overrides.mdns.or(file.mdns).unwrap_or(true),
            network,
            max_peers,
            dht_mode,
            store_max,
            fault,
            genesis,
            mine,
        })
    }

    /// Defaults for a loopback node with ephemeral ports: tests and devnets.
    pub fn loopback(data_dir: PathBuf, network: &str) -> Self {
        Self {
            data_dir,
            listen: vec![
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("static address"),
                "/ip4/127.0.0.1/tcp/0".parse().expect("static address"),
            ],
            bootstrap: Vec::new(),
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            mdns: false,
            network: network.to_owned(),
            max_peers: DEFAULT_MAX_PEERS,
            dht_mode: DhtMode::Server,
            store_max: None,
            fault: weft_blobs::transfer::Fault::None,
            genesis: weft_ledger::Genesis::builtin(),
            mine: None,
        }
    }
}

/// Parses "1048576", "512K", "10M", "2G", "1T" (binary units; "B", "iB"
/// suffixes allowed).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (num, shift) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

fn parse_all(items: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    Ok(items
        .iter()
        .map(|s| weft_net::parse_multiaddr(s))
        .collect::<Result<Vec<_>, _>>()?)
}

fn parse_api_addr(input: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = input
        .trim()
        .replace("localhost:", "127.0.0.1:")
        .parse()
        .map_err(|_| ConfigError::ApiAddr {
            input: input.to_owned(),
        })?;
    if !addr.ip().is_loopback() {
        return Err(ConfigError::ApiNotLoopback(addr));
    }
    Ok(addr)
}

fn valid_network_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: Overrides, f: FileConfig) -> Result<NodeConfig, ConfigError> {
        NodeConfig::resolve(PathBuf::from("/tmp/x"), o, f)
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let file = FileConfig {
            network: Some("fromfile".into()),
            max_peers: Some(7),
            api: Some("127.0.0.1:9999".into()),
            ..Default::default()
        };
        let o = Overrides {
            network: Some("fromflag".into()),
            ..Default::default()
        };
        let c = resolve(o, file).unwrap();
        assert_eq!(c.network, "fromflag");
        assert_eq!(c.max_peers, 7);
        assert_eq!(c.api.port(), 9999);
        assert!(c.mdns);
        assert_eq!(c.listen, weft_net::default_listen_addrs());
    }

    #[test]
    fn bad_values_are_named() {
        let o = Overrides {
            bootstrap: vec!["/ip4/127.0.0.1/tcp/1".into()],
            ..Default::default()
        };
        assert!(resolve(o, FileConfig::default())
            .unwrap_err()
            .to_string()
            .contains("/p2p"));
        let o = Overrides {
            api: Some("0.0.0.0:4720".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(o, FileConfig::default()),
            Err(ConfigError::ApiNotLoopback(_))
        ));
        let o = Overrides {
            network: Some("bad name!".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(o, FileConfig::default()),
            Err(ConfigError::Network(_))
        ));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn file_is_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "network = \"x\"\nmax_peers = 3\n",
        )
        .unwrap();
        let f = FileConfig::load(dir.path()).unwrap();
        assert_eq!(f.network.as_deref(), Some("x"));
        std::fs::write(dir.path().join(CONFIG_FILE), "netwrok = \"x\"\n").unwrap();
        assert!(FileConfig::load(dir.path()).is_err());
    }
}

//! A running node: the data directory, the network actor and the API server,
//! started in that order and stopped in reverse by [`Node::shutdown`].
//!
//! A node is a value, so several can run in one process (tests, devnets).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_net::{Identity, Multiaddr, NetworkHandle, PeerId, Registry};

use crate::{
    api,
    config::NodeConfig,
    data_dir::{self, DataDir, DataDirError, API_ADDR_FILE, IDENTITY_FILE},
};

/// Why a node could not start. Each message is one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Identity(#[from] weft_net::IdentityError),
    #[error(transparent)]
    Network(#[from] weft_net::StartError),
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] weft_blobs::StoreError),
    #[error("cannot start the ledger: {0}")]
    Ledger(#[from] weft_ledger::service::StartError),
    #[error("cannot mine: {0}")]
    Miner(String),
    #[error("cannot start the API on {addr}: {source}")]
    ApiBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a started node tells its owner.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub peer_id: PeerId,
    pub network: String,
    pub listen_addrs: Vec<Multiaddr>,
    pub api_addr: SocketAddr,
    pub api_url: String,
    pub api_token: String,
    pub data_dir: PathBuf,
}

pub struct Node {
    info: NodeInfo,
    data_dir: DataDir,
    blobs: weft_blobs::Blobs,
    ledger: weft_ledger::service::Ledger,
    pubsub: weft_apps::PubSub,
    network: weft_net::Network,
    api_task: JoinHandle<()>,
    cancel: CancellationToken,
}

impl Node {
    pub async fn start(config: NodeConfig) -> Result<Self, StartError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let identity = Identity::load_or_create(&data_dir.path(IDENTITY_FILE))?;
        let token = data_dir.api_token()?;

        // Bind the API first: a busy port fails before we join the network.
        let api_listener = tokio::net::TcpListener::bind(config.api)
            .await
            .map_err(|source| StartError::ApiBind {
                addr: config.api,
                source,
            })?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| StartError::ApiBind {
                addr: config.api,
                source,
            })?;

        let mut registry = Registry::default();
        let net_config = weft_net::Config {
            listen: config.listen.clone(),
            bootstrap: config.bootstrap.clone(),
            mdns: config.mdns,
            network: network_id(&config.network, &config.genesis),
            max_peers: config.max_peers,
            dht_mode: config.dht_mode,
            ..weft_net::Config::new(identity)
        };
        let network = weft_net::start(net_config, &mut registry).await?;
        let listen_addrs = match network.handle().listen_addrs().await {
            Ok(a) => a,
            Err(e) => {
                network.shutdown().await;
                return Err(StartError::Network(weft_net::StartError::Transport(
                    e.to_string(),
                )));
            }
        };

        let blobs = match weft_blobs::Blobs::start(
            weft_blobs::Config {
                dir: data_dir.path("blobs"),
                quota: config.store_max,
                fault: config.fault,
            },
            network.handle().clone(),
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                network.shutdown().await;
                return Err(e.into());
            }
        };

        let ledger = match start_ledger(&config, &data_dir, network.handle().clone()).await {
            Ok(l) => l,
            Err(e) => {
                blobs.shutdown().await;
                network.shutdown().await;
                return Err(e);
            }
        };

        let cancel = CancellationToken::new();
        let pubsub = weft_apps::PubSub::new(network.handle().clone());
        let state = api::ApiState {
            network: Arc::from(config.network.as_str()),
            ledger: ledger.clone(),
            pubsub: pubsub.clone(),
            apps: weft_apps::Apps::open(&config.data_dir),
            blobs: blobs.clone(),
            net: network.handle().clone(),
            token: Arc::from(token.as_str()),
            started: Instant::now(),
            registry: Arc::new(registry),
        };
        let api_task = tokio::spawn(api::serve(api_listener, api::router(state), cancel.clone()));
        let api_url = api::url_for(api_addr);
        if let Err(e) = data_dir::write_atomic(
            &data_dir.path(API_ADDR_FILE),
            format!("{api_url}\n").as_bytes(),
            false,
        ) {
            cancel.cancel();
            let _ = api_task.await;
            ledger.shutdown().await;
            blobs.shutdown().await;
            network.shutdown().await;
            return Err(e.into());
        }

        let info = NodeInfo {
            peer_id: network.handle().local_peer_id(),
            network: config.network,
            listen_addrs,
            api_addr,
            api_url,
            api_token: token,
            data_dir: config.data_dir,
        };
        Ok(Self {
            info,
            data_dir,
            blobs,
            ledger,
            pubsub,
            network,
            api_task,
            cancel,
        })
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    pub fn net(&self) -> &NetworkHandle {
        self.network.handle()
    }

    pub fn blobs(&self) -> &weft_blobs::Blobs {
        &self.blobs
    }

    pub fn ledger(&self) -> &weft_ledger::service::Ledger {
        &self.ledger
    }

    /// Stops the API, then the services, then the network; removes the API address file so
    /// clients do not try a stopped node.
    pub async fn shutdown(self) {
        // Ends open event streams first: the API's graceful shutdown waits
        // for every connection to finish.
        self.pubsub.close().await;
        self.cancel.cancel();
        let _ = self.api_task.await;
        self.ledger.shutdown().await;
        self.blobs.shutdown().await;
        self.network.shutdown().await;
        let _ = std::fs::remove_file(self.data_dir.path(API_ADDR_FILE));
    }
}

/// The network's identity on the wire: its name and its genesis, so peers
/// with another genesis are disconnected like peers of another network.
pub fn network_id(name: &str, genesis: &weft_ledger::Genesis) -> String {
    let hash = genesis.hash().to_string();
    format!("{name}@{}", &hash[..16])
}

/// Opens the chain and starts the ledger's tasks (and the miner).
async fn start_ledger(
    config: &NodeConfig,
    data_dir: &DataDir,
    net: NetworkHandle,
) -> Result<weft_ledger::service::Ledger, StartError> {
    let mine = match &config.mine {
        None => None,
        Some(m) => {
            let miner = match m.miner {
                Some(a) => a,
                None => default_miner(&data_dir.path("wallets"))?,
            };
            Some(weft_ledger::service::MineConfig {
                miner,
                threads: m.threads,
            })
        }
    };
    let ledger_config = weft_ledger::service::Config {
        genesis: config.genesis.clone(),
        db_path: data_dir.path("ledger.redb"),
        mine,
        mempool: weft_ledger::mempool::Config::default(),
        clock: weft_ledger::service::system_clock(),
    };
    Ok(weft_ledger::service::Ledger::start(ledger_config, net).await?)
}

/// The node's default wallet, created if there is none.
fn default_miner(dir: &std::path::Path) -> Result<weft_ledger::Address, StartError> {
    use weft_ledger::wallet;
    match wallet::load_default(dir) {
        Ok(w) => Ok(w.address()),
        Err(_) if wallet::list(dir).map(|l| l.is_empty()).unwrap_or(true) => {
            let w = wallet::create(dir, "default").map_err(|e| StartError::Miner(e.to_string()))?;
            tracing::info!(address = %w.address(), "created wallet \"default\" for mining rewards");
            Ok(w.address())
        }
        Err(e) => Err(StartError::Miner(format!(
            "{e}; name the reward address with --miner"
        ))),
    }
}

//! Bench nodes: weft-net plus a Ledger on loopback, each with its own redb file.

use super::*;

/// weft-net and a [`Ledger`] on it.
pub(crate) struct Node {
    pub(crate) net: Network,
    pub(crate) ledger: Ledger,
}

impl Node {
    /// Starts a node on `db`; retries while the file is still held by a
    /// ledger that is shutting down.
    pub(crate) async fn start(dev: &Devnet, db: &Path, mine: bool) -> Result<Node, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match Node::try_start(dev, db.to_owned(), mine).await {
                Ok(node) => return Ok(node),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub(crate) async fn try_start(
        dev: &Devnet,
        db_path: PathBuf,
        mine: bool,
    ) -> Result<Node, String> {
        let config = weft_net::Config::loopback(Identity::generate(), &dev.name);
        let net = within(Duration::from_secs(10), "start the network", async {
            weft_net::start(config, &mut Registry::default()).await
        })
        .await?
        .map_err(|e| e.to_string())?;
        let config = service::Config {
            genesis: dev.genesis.clone(),
            db_path,
            mine: mine.then_some(MineConfig {
                miner: MINER,
                threads: 1,
            }),
            mempool: mempool::Config::default(),
            clock: service::system_clock(),
        };
        let started = within(Duration::from_secs(10), "start the ledger", async {
            Ledger::start(config, net.handle().clone()).await
        })
        .await;
        match started {
            Ok(Ok(ledger)) => Ok(Node { net, ledger }),
            Ok(Err(e)) => {
                net.shutdown().await;
                Err(format!("start the ledger: {e}"))
            }
            Err(e) => {
                net.shutdown().await;
                Err(e)
            }
        }
    }

    pub(crate) async fn stop(self) {
        let Node { net, ledger } = self;
        let limit = Duration::from_secs(10);
        let _ = tokio::time::timeout(limit, ledger.shutdown()).await;
        let _ = tokio::time::timeout(limit, net.shutdown()).await;
    }

    /// The first listen address (QUIC), with `/p2p/<peer id>`.
    pub(crate) async fn addr(&self) -> Result<Multiaddr, String> {
        let addrs = within(Duration::from_secs(5), "listen addresses", async {
            self.net.handle().listen_addrs().await
        })
        .await?
        .map_err(|e| e.to_string())?;
        addrs.into_iter().next().ok_or("no listen address".into())
    }

    pub(crate) async fn dial(&self, other: &Node) -> Result<(), String> {
        let addr = other.addr().await?;
        within(
            Duration::from_secs(10),
            "dial",
            self.net.handle().dial(addr),
        )
        .await?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Indices (in `ids`) of the nodes we are connected to.
    pub(crate) async fn neighbours(&self, ids: &HashMap<weft_net::PeerId, usize>) -> Vec<usize> {
        let peers = within(Duration::from_secs(5), "peers", self.net.handle().peers()).await;
        let peers = peers.ok().and_then(Result::ok).unwrap_or_default();
        peers
            .iter()
            .filter_map(|p| ids.get(&p.peer_id).copied())
            .collect()
    }

    /// The transport of our connection to `other`.
    pub(crate) async fn transport_to(&self, other: &Node) -> &'static str {
        let peer = other.net.handle().local_peer_id();
        let peers = within(Duration::from_secs(5), "peers", self.net.handle().peers()).await;
        let peers = peers.ok().and_then(Result::ok).unwrap_or_default();
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

//! The composed libp2p behaviour: which protocols a weft node speaks.

use std::time::Duration;

use libp2p::{
    allow_block_list::{self, BlockedPeers},
    connection_limits::{self, ConnectionLimits},
    gossipsub, identify,
    identity::Keypair,
    kad, mdns, ping,
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
    StreamProtocol,
};

use crate::{Config, DhtMode, StartError};

/// The Kademlia protocol name: our own, so we never join the IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/kad/1.0.0");
/// The identify protocol version prefix; the network name follows it.
pub(crate) const IDENTIFY_PREFIX: &str = "/weft/1.0.0/";
/// Most connections to a single peer (QUIC and TCP can race).
const MAX_CONNECTIONS_PER_PEER: u32 = 2;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Banned peers: every connection to or from them is refused.
    pub(crate) blocked: allow_block_list::Behaviour<BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) peer_limit: crate::peer_limit::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) stream: libp2p_stream::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
}

/// The string a peer must report in identify to be on our network.
pub(crate) fn identify_version(network: &str) -> String {
    format!("{IDENTIFY_PREFIX}{network}")
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, config: &Config) -> Result<Self, StartError> {
        let peer_id = key.public().to_peer_id();

        let limits = ConnectionLimits::default()
            .with_max_pending_incoming(Some(64))
            .with_max_pending_outgoing(Some(128))
            .with_max_established_incoming(Some(config.max_peers.saturating_mul(2)))
            .with_max_established(Some(
                config.max_peers.saturating_mul(MAX_CONNECTIONS_PER_PEER),
            ))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER));

        let identify = identify::Behaviour::new(
            identify::Config::new(identify_version(&config.network), key.public())
                .with_agent_version(format!("weft/{}", env!("CARGO_PKG_VERSION")))
                .with_interval(Duration::from_secs(5 * 60))
                .with_cache_size(256),
        );

        let ping = ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(15)));

        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        // Peers enter the routing table only once identify has shown that they
        // are on our network and speak our DHT (see `actor`).
        kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        kad_config.set_query_timeout(Duration::from_secs(30));
        kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(5 * 60)));
        kad_config.set_max_packet_size(64 * 1024);
        // Sized for a node that seeds many blobs: one provided key per shared
        // file or collection root.
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_provided_keys: 100_000,
                max_providers_per_key: 32,
                ..Default::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(match config.dht_mode {
            DhtMode::Server => Some(kad::Mode::Server),
            DhtMode::Client => Some(kad::Mode::Client),
            DhtMode::Auto => None,
        });

        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(StartError::Mdns)?,
            )
        } else {
            None
        };

        let gossipsub = crate::gossip::behaviour(key, config).map_err(StartError::Gossip)?;

        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            peer_limit: crate::peer_limit::Behaviour::new(config.max_peers as usize),
            identify,
            ping,
            kad,
            mdns: mdns.into(),
            stream: libp2p_stream::Behaviour::new(),
            gossipsub,
        })
    }

    /// Number of peers in the routing table.
    pub(crate) fn dht_size(&mut self) -> usize {
        self.kad.kbuckets().map(|b| b.num_entries()).sum()
    }
}

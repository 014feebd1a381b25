//! weft's network layer.
//!
//! One actor task ([`actor`]) owns the libp2p `Swarm`: QUIC, and TCP with
//! Noise and Yamux, both encrypted and authenticated; identify, ping,
//! Kademlia on `/weft/kad/1.0.0`, optional mDNS, connection limits, raw
//! streams for bulk data and gossipsub (`gossip`) for pub/sub with
//! validation before forwarding. Misbehaving peers collect penalties
//! (`penalties`) and are banned for a while when they have too many.
//!
//! The rest of the node talks to the actor through a [`NetworkHandle`] and
//! never touches libp2p types other than [`PeerId`], [`Multiaddr`], gossip's
//! [`MessageId`] and, for bulk transfer, [`Stream`] / [`StreamProtocol`].
//!
//! [`start`] builds the swarm, binds every listen address (failing with a
//! clear error if one cannot be bound), dials the bootstrap peers and spawns
//! the actor. [`Network::shutdown`] stops it and closes every connection.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod actor;
mod behaviour;
mod config;
mod gossip;
mod handle;
mod identity;
mod peer_limit;
mod peers;
mod penalties;

use std::time::Duration;

pub use behaviour::KAD_PROTOCOL;
pub use config::{
    check_listen, default_listen_addrs, parse_bootstrap, parse_multiaddr, split_peer_id,
    with_peer_id, AddrError, Config, DhtMode, DEFAULT_GOSSIP_MAX_SIZE, DEFAULT_PORT,
};
pub use gossip::{
    GossipError, GossipMessage, MessageId, TopicInfo, Verdict, MAX_TOPICS, MAX_TOPIC_LEN,
};
pub use handle::{
    Bucket, DhtInfo, DialError, Direction, Lookup, NetError, NetworkEvent, NetworkHandle, PeerInfo,
    StreamError,
};
pub use identity::{private_file, Identity, IdentityError};
pub use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
pub use libp2p_stream::IncomingStreams;
pub use prometheus_client::registry::Registry;

use libp2p::{noise, tcp, yamux, SwarmBuilder};
use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    sync::{broadcast, mpsc},
    task::JoinHandle,
};

/// Capacity of the command channel from handles to the actor.
const COMMAND_QUEUE: usize = 256;
/// Capacity of the event broadcast to services.
const EVENT_QUEUE: usize = 256;
/// How long listeners get to report their addresses at start.
const LISTEN_DEADLINE: Duration = Duration::from_secs(5);

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot set up the transports: {0}")]
    Transport(String),
    #[error("cannot start mDNS: {0}")]
    Mdns(std::io::Error),
    #[error("cannot set up gossipsub: {0}")]
    Gossip(String),
}

/// A running network actor.
pub struct Network {
    handle: NetworkHandle,
    task: JoinHandle<()>,
}

impl Network {
    pub fn handle(&self) -> &NetworkHandle {
        &self.handle
    }

    /// Stops the actor and waits for it to finish.
    pub async fn shutdown(self) {
        let _ = self.handle.commands.send(handle::Command::Shutdown).await;
        let _ = self.task.await;
    }
}

/// Builds the swarm, binds the listeners, dials the bootstrap peers and
/// spawns the actor. Metrics are registered in `registry`.
pub async fn start(config: Config, registry: &mut Registry) -> Result<Network, StartError> {
    for addr in &config.listen {
        check_listen(addr)?;
    }
    let mut bootstrap = Vec::with_capacity(config.bootstrap.len());
    for addr in &config.bootstrap {
        let (transport, peer) =
            split_peer_id(addr).ok_or_else(|| AddrError::MissingPeerId(addr.clone()))?;
        bootstrap.push((addr.clone(), transport, peer));
    }

    let keypair = config.identity.keypair().clone();
    let mut behaviour_error = None;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| StartError::Transport(e.to_string()))?
        .with_quic()
        .with_dns()
        .map_err(|e| StartError::Transport(e.to_string()))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| match behaviour::Behaviour::new(key, &config) {
            Ok(b) => Ok(b),
            Err(e) => {
                behaviour_error = Some(e);
                Err("behaviour".into())
            }
        })
        .map_err(|e| match behaviour_error.take() {
            Some(e) => e,
            None => StartError::Transport(e.to_string()),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();

    let metrics = libp2p::metrics::Metrics::new(registry);
    let gauges = actor::Gauges {
        peers: Gauge::default(),
        dht_size: Gauge::default(),
    };
    let weft = registry.sub_registry_with_prefix("weft");
    weft.register("peers", "Connected peers", gauges.peers.clone());
    weft.register(
        "dht_routing_table_size",
        "Peers in the Kademlia routing table",
        gauges.dht_size.clone(),
    );

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, _) = broadcast::channel(EVENT_QUEUE);
    let streams = swarm.behaviour().stream.new_control();
    let local_peer_id = *swarm.local_peer_id();
    let network = config.network.clone();
    let gossip_max_size = config.gossip_max_size;
    let listen = config.listen.clone();

    let mut event_loop = actor::EventLoop::new(
        swarm,
        config,
        commands_rx,
        events_tx.clone(),
        metrics,
        gauges,
    );

    let mut listeners = Vec::new();
    for addr in listen {
        let id = event_loop
            .swarm_mut()
            .listen_on(addr.clone())
            .map_err(|e| StartError::Listen {
                addr: addr.clone(),
                reason: actor::one_line(&e),
            })?;
        listeners.push((id, addr));
    }
    let ids: Vec<_> = listeners.iter().map(|(id, _)| *id).collect();
    if let Err(reason) = event_loop.wait_listening(&ids, LISTEN_DEADLINE).await {
        let addr = listeners
            .first()
            .map(|(_, a)| a.clone())
            .unwrap_or_else(Multiaddr::empty);
        return Err(StartError::Listen { addr, reason });
    }

    {
        let swarm = event_loop.swarm_mut();
        for (full, transport, peer) in &bootstrap {
            swarm
                .behaviour_mut()
                .kad
                .add_address(peer, transport.clone());
            if let Err(e) = swarm.dial(full.clone()) {
                tracing::warn!("cannot dial bootstrap peer {full}: {}", actor::one_line(&e));
            }
        }
        if !bootstrap.is_empty() {
            if let Err(e) = swarm.behaviour_mut().kad.bootstrap() {
                tracing::warn!("DHT bootstrap: {e}");
            }
        }
    }

    let task = tokio::spawn(event_loop.run(commands_tx.downgrade()));
    let handle = NetworkHandle {
        commands: commands_tx,
        local_peer_id,
        network,
        gossip_max_size,
        streams,
        events: events_tx,
    };
    Ok(Network { handle, task })
}

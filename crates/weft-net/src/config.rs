//! Network configuration: what the swarm listens on, whom it bootstraps from,
//! which network it belongs to and how many peers it keeps.

use std::time::Duration;

use libp2p::{multiaddr::Protocol, Multiaddr, PeerId};

use crate::Identity;

/// Default port for QUIC and TCP.
pub const DEFAULT_PORT: u16 = 4719;
/// Default largest gossip payload: a 4 MiB block and 64 KiB to spare.
pub const DEFAULT_GOSSIP_MAX_SIZE: usize = 4 * 1024 * 1024 + 64 * 1024;

/// How the Kademlia behaviour decides between client and server mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DhtMode {
    /// Always answer DHT queries (right for LANs, devnets and public nodes).
    #[default]
    Server,
    /// Never answer; only query.
    Client,
    /// Server once the node has proof that it is reachable: a confirmed
    /// external address or an inbound connection on a listen address.
    Auto,
}

impl std::str::FromStr for DhtMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "server" => Ok(Self::Server),
            "client" => Ok(Self::Client),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown DHT mode {other:?} (expected server, client or auto)"
            )),
        }
    }
}

/// Everything the network actor needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub identity: Identity,
    /// Addresses to listen on (QUIC and/or TCP).
    pub listen: Vec<Multiaddr>,
    /// Peers to bootstrap from; each ends in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    pub mdns: bool,
    /// The network's identity. Peers that report another one are disconnected.
    pub network: String,
    /// Most peers connected at once.
    pub max_peers: u32,
    pub dht_mode: DhtMode,
    /// Interval between random walks that refresh the routing table.
    pub random_walk_interval: Duration,
    /// How long a connection with no active stream stays open.
    pub idle_timeout: Duration,
    /// Largest gossip message payload, in bytes. Gossipsub's transmit limit
    /// is this plus room for its envelope.
    pub gossip_max_size: usize,
    /// Interval of gossipsub's heartbeat (mesh upkeep and gossip).
    pub gossip_heartbeat: Duration,
    /// Offences within ten minutes that get a peer banned (disconnected and
    /// refused both ways) for ten minutes.
    pub max_penalties: u32,
}

impl Config {
    /// A configuration with the defaults for everything but the identity.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            listen: default_listen_addrs(),
            bootstrap: Vec::new(),
            mdns: true,
            network: "main".to_owned(),
            max_peers: 64,
            dht_mode: DhtMode::Server,
            random_walk_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            gossip_max_size: DEFAULT_GOSSIP_MAX_SIZE,
            gossip_heartbeat: Duration::from_secs(1),
            max_penalties: 5,
        }
    }

    /// Loopback-only, ephemeral ports, no mDNS: for tests and devnets.
    pub fn loopback(identity: Identity, network: &str) -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("static address"),
                "/ip4/127.0.0.1/tcp/0".parse().expect("static address"),
            ],
            mdns: false,
            network: network.to_owned(),
            // Meshes on loopback converge in a fraction of a second.
            gossip_heartbeat: Duration::from_millis(200),
            ..Self::new(identity)
        }
    }
}

/// QUIC and TCP on [`DEFAULT_PORT`], on all IPv4 interfaces.
pub fn default_listen_addrs() -> Vec<Multiaddr> {
    vec![
        format!("/ip4/0.0.0.0/udp/{DEFAULT_PORT}/quic-v1")
            .parse()
            .expect("static address"),
        format!("/ip4/0.0.0.0/tcp/{DEFAULT_PORT}")
            .parse()
            .expect("static address"),
    ]
}

/// Errors in an address given by a user.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("malformed multiaddr {input:?}: {reason}")]
    Malformed { input: String, reason: String },
    #[error("bootstrap address {0} must end in /p2p/<peer id>")]
    MissingPeerId(Multiaddr),
    #[error("cannot listen on {0}: only QUIC (/udp/PORT/quic-v1) and TCP (/tcp/PORT) addresses are supported")]
    UnsupportedListen(Multiaddr),
}

/// Parses a multiaddr, with an error that quotes the input.
pub fn parse_multiaddr(input: &str) -> Result<Multiaddr, AddrError> {
    input
        .trim()
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| AddrError::Malformed {
            input: input.to_owned(),
            reason: e.to_string(),
        })
}

/// Parses a bootstrap address, which must name its peer.
pub fn parse_bootstrap(input: &str) -> Result<Multiaddr, AddrError> {
    let addr = parse_multiaddr(input)?;
    split_peer_id(&addr).ok_or(AddrError::MissingPeerId(addr.clone()))?;
    Ok(addr)
}

/// Checks that a listen address is one our transports can bind.
pub fn check_listen(addr: &Multiaddr) -> Result<(), AddrError> {
    let mut it = addr.iter();
    let ip_ok = matches!(it.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)));
    let transport_ok = matches!(
        (it.next(), it.next(), it.next()),
        (Some(Protocol::Tcp(_)), None, None)
            | (Some(Protocol::Udp(_)), Some(Protocol::QuicV1), None)
    );
    if ip_ok && transport_ok {
        Ok(())
    } else {
        Err(AddrError::UnsupportedListen(addr.clone()))
    }
}

/// Splits `/…/p2p/<id>` into the transport address and the peer id.
pub fn split_peer_id(addr: &Multiaddr) -> Option<(Multiaddr, PeerId)> {
    let mut transport = addr.clone();
    match transport.pop() {
        Some(Protocol::P2p(peer)) => Some((transport, peer)),
        _ => None,
    }
}

/// Appends `/p2p/<peer>` unless the address already ends in it.
pub fn with_peer_id(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    match addr.iter().last() {
        Some(Protocol::P2p(_)) => addr.clone(),
        _ => addr.clone().with(Protocol::P2p(peer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_needs_peer_id() {
        let err = parse_bootstrap("/ip4/127.0.0.1/tcp/4719").unwrap_err();
        assert!(matches!(err, AddrError::MissingPeerId(_)));
        let peer = PeerId::random();
        let ok = parse_bootstrap(&format!("/ip4/127.0.0.1/tcp/4719/p2p/{peer}")).unwrap();
        assert_eq!(split_peer_id(&ok).unwrap().1, peer);
    }

    #[test]
    fn malformed_is_reported_with_input() {
        let err = parse_multiaddr("/ip4/999.1.1.1/tcp/1").unwrap_err();
        assert!(err.to_string().contains("999.1.1.1"), "{err}");
    }

    #[test]
    fn listen_addresses_are_checked() {
        assert!(check_listen(&"/ip4/0.0.0.0/tcp/1".parse().unwrap()).is_ok());
        assert!(check_listen(&"/ip4/0.0.0.0/udp/1/quic-v1".parse().unwrap()).is_ok());
        assert!(check_listen(&"/ip4/0.0.0.0/udp/1".parse().unwrap()).is_err());
        assert!(check_listen(&"/dns4/x/tcp/1".parse().unwrap()).is_err());
    }
}

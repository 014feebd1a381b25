//! The actor's book of connected peers: their connections, what identify
//! told us, their latest RTT. Bounded by the connection limits; entries go
//! when the last connection closes.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{core::ConnectedPoint, swarm::ConnectionId, Multiaddr, PeerId};

use crate::handle::{Direction, PeerInfo};

/// Most listen addresses we keep per peer.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 16;

pub(crate) struct Connection {
    pub(crate) id: ConnectionId,
    pub(crate) remote: Multiaddr,
    pub(crate) direction: Direction,
}

#[derive(Default)]
pub(crate) struct Identified {
    pub(crate) protocols: Vec<String>,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) agent_version: String,
}

pub(crate) struct Peer {
    pub(crate) connections: Vec<Connection>,
    pub(crate) since: Instant,
    pub(crate) rtt: Option<Duration>,
    /// Set once identify showed the peer is on our network.
    pub(crate) identified: Option<Identified>,
}

#[derive(Default)]
pub(crate) struct PeerBook {
    peers: HashMap<PeerId, Peer>,
}

impl PeerBook {
    pub(crate) fn connected(&mut self, peer: PeerId, id: ConnectionId, endpoint: &ConnectedPoint) {
        let (remote, direction) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Outbound),
            ConnectedPoint::Listener { send_back_addr, .. } => {
                (send_back_addr.clone(), Direction::Inbound)
            }
        };
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            connections: Vec::new(),
            since: Instant::now(),
            rtt: None,
            identified: None,
        });
        entry.connections.push(Connection {
            id,
            remote,
            direction,
        });
    }

    /// Returns true when that was the last connection of a peer in the book.
    pub(crate) fn closed(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let Some(entry) = self.peers.get_mut(peer) else {
            return false;
        };
        entry.connections.retain(|c| c.id != id);
        if entry.connections.is_empty() {
            self.peers.remove(peer);
            true
        } else {
            false
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&Peer> {
        self.peers.get(peer)
    }

    pub(crate) fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(peer)
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    pub(crate) fn is_ready(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.identified.is_some())
    }

    /// Peers that have been connected longer than `grace` without proving
    /// they are on our network.
    pub(crate) fn unidentified_since(&self, grace: Duration) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.identified.is_none() && p.since.elapsed() > grace)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn info(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(id, p)| {
                let mut addrs: Vec<Multiaddr> =
                    p.connections.iter().map(|c| c.remote.clone()).collect();
                if let Some(ident) = &p.identified {
                    for a in &ident.listen_addrs {
                        if !addrs.contains(a) {
                            addrs.push(a.clone());
                        }
                    }
                }
                PeerInfo {
                    peer_id: *id,
                    addrs,
                    direction: p
                        .connections
                        .first()
                        .map(|c| c.direction)
                        .unwrap_or(Direction::Outbound),
                    rtt: p.rtt,
                    protocols: p
                        .identified
                        .as_ref()
                        .map(|i| i.protocols.clone())
                        .unwrap_or_default(),
                    agent_version: p.identified.as_ref().map(|i| i.agent_version.clone()),
                    connected_for: p.since.elapsed(),
                    // Filled in by the actor, which keeps the offences.
                    penalties: 0,
                }
            })
            .collect();
        out.sort_by_key(|p| p.peer_id.to_bytes());
        out
    }
}

//! Refuses an inbound connection from a new peer once `max_peers` distinct
//! peers are connected, when the connection is established and before any
//! protocol runs on it.
//!
//! libp2p's `connection_limits` counts connections, not peers (a peer may
//! hold a QUIC and a TCP connection). Closing an over-limit connection after
//! it was established, as the actor used to, let the remote's identify
//! finish first now and then, so its dial looked accepted. Denying it here
//! leaves no such window.

use std::{
    collections::HashMap,
    convert::Infallible,
    fmt,
    task::{Context, Poll},
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    swarm::{
        dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};

/// The error of a denied connection.
#[derive(Debug)]
pub(crate) struct PeerLimitReached(usize);

impl fmt::Display for PeerLimitReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer limit of {} reached", self.0)
    }
}

impl std::error::Error for PeerLimitReached {}

pub(crate) struct Behaviour {
    max_peers: usize,
    /// Established connections per connected peer.
    connections: HashMap<PeerId, usize>,
}

impl Behaviour {
    pub(crate) fn new(max_peers: usize) -> Self {
        Self {
            max_peers,
            connections: HashMap::new(),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if !self.connections.contains_key(&peer) && self.connections.len() >= self.max_peers {
            return Err(ConnectionDenied::new(PeerLimitReached(self.max_peers)));
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Our own dials are limited where they are made.
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                *self.connections.entry(e.peer_id).or_default() += 1;
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(n) = self.connections.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.connections.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

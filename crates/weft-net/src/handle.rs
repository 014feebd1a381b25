//! The cloneable handle through which the rest of the node talks to the
//! network actor, and the plain data types it hands back.
//!
//! Every method sends one [`Command`] over a bounded channel and awaits the
//! reply on a oneshot. When the actor has stopped, methods return
//! [`NetError::Shutdown`].

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::gossip::{self, GossipError, GossipMessage, MessageId, TopicInfo, Verdict};

/// Replies from the actor.
pub(crate) type Reply<T> = oneshot::Sender<T>;

pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        reply: Reply<Result<PeerId, DialError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Peers {
        reply: Reply<Vec<PeerInfo>>,
    },
    Dht {
        reply: Reply<DhtInfo>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    FindPeer {
        peer: PeerId,
        reply: Reply<Lookup>,
    },
    Provide {
        key: Vec<u8>,
        reply: Reply<Result<(), String>>,
    },
    StopProviding {
        key: Vec<u8>,
    },
    FindProviders {
        key: Vec<u8>,
        found: mpsc::Sender<PeerId>,
    },
    Subscribe {
        topic: String,
        messages: mpsc::Sender<GossipMessage>,
        reply: Reply<Result<(), GossipError>>,
    },
    Unsubscribe {
        topic: String,
        reply: Reply<Result<(), GossipError>>,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: Reply<Result<bool, GossipError>>,
    },
    ReportMessage {
        id: MessageId,
        propagation_source: PeerId,
        verdict: Verdict,
        reply: Reply<()>,
    },
    Penalise {
        peer: PeerId,
        reason: String,
        reply: Reply<()>,
    },
    Topics {
        reply: Reply<Vec<TopicInfo>>,
    },
    Shutdown,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A connected peer, as the actor knows it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Addresses of our connections to it, then the listen addresses it reported.
    pub addrs: Vec<Multiaddr>,
    /// Direction of the oldest open connection.
    pub direction: Direction,
    /// Latest ping round-trip time.
    pub rtt: Option<Duration>,
    /// Protocols it reported through identify (empty until identified).
    pub protocols: Vec<String>,
    pub agent_version: Option<String>,
    pub connected_for: Duration,
    /// Offences recorded against it in the last ten minutes (see
    /// [`NetworkHandle::penalise`]).
    pub penalties: u32,
}

/// The routing table.
#[derive(Debug, Clone)]
pub struct DhtInfo {
    /// `server` or `client`.
    pub mode: &'static str,
    pub size: usize,
    /// Non-empty buckets only.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    /// log2 of the XOR distance covered by the bucket (0..=255).
    pub index: u32,
    pub peers: Vec<PeerId>,
}

/// Result of a Kademlia lookup of a peer id.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub target: PeerId,
    /// The target itself was among the closest peers found.
    pub found: bool,
    pub addrs: Vec<Multiaddr>,
    /// DHT requests sent during the lookup.
    pub requests: u32,
    /// Requests that got an answer.
    pub successes: u32,
    pub duration: Duration,
}

/// Something the network tells other services.
#[derive(Debug, Clone)]
pub enum NetworkEvent {
    /// A peer on our network completed identify.
    PeerReady(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DialError {
    #[error("cannot dial {addr}: {reason}")]
    Failed { addr: Multiaddr, reason: String },
    #[error("peer {peer} is on network {theirs:?}, not ours ({ours:?}); disconnected")]
    WrongNetwork {
        peer: PeerId,
        theirs: String,
        ours: String,
    },
    #[error("cannot dial {0}: that is this node's own address")]
    SelfDial(Multiaddr),
    #[error("too many dials in progress; try again")]
    Busy,
    #[error("the network service has shut down")]
    Shutdown,
}

/// Errors of handle calls that can only fail because the actor is gone.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("the network service has shut down")]
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot open stream to {peer}: {reason}")]
    Open { peer: PeerId, reason: String },
    #[error("protocol {0} already has an acceptor")]
    AlreadyAccepting(StreamProtocol),
}

/// Cloneable access to the network actor.
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) network: String,
    pub(crate) gossip_max_size: usize,
    pub(crate) streams: libp2p_stream::Control,
    pub(crate) events: broadcast::Sender<NetworkEvent>,
}

impl NetworkHandle {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Shutdown)?;
        rx.await.map_err(|_| NetError::Shutdown)
    }

    /// Dials an address and waits until the peer has identified itself as a
    /// member of our network.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, DialError> {
        self.call(|reply| Command::Dial { addr, reply })
            .await
            .map_err(|_| DialError::Shutdown)?
    }

    /// Closes every connection to `peer`. Returns false if it was not connected.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.call(|reply| Command::Disconnect { peer, reply }).await
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.call(|reply| Command::Peers { reply }).await
    }

    pub async fn dht(&self) -> Result<DhtInfo, NetError> {
        self.call(|reply| Command::Dht { reply }).await
    }

    /// Our listen addresses, each ending in `/p2p/<our peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Looks a peer up through the DHT.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Lookup, NetError> {
        self.call(|reply| Command::FindPeer { peer, reply }).await
    }

    /// Announces in the DHT that this node provides `key` (a content root
    /// hash). Kademlia re-announces it periodically.
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), String> {
        self.call(|reply| Command::Provide { key, reply })
            .await
            .map_err(|e| e.to_string())?
    }

    /// Withdraws a [`NetworkHandle::provide`] announcement.
    pub async fn stop_providing(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.commands
            .send(Command::StopProviding { key })
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// Searches the DHT for providers of `key`. Providers arrive on the
    /// returned channel as they are found (with their addresses known to the
    /// swarm, so they can be dialed by peer id); it closes when the search
    /// ends.
    pub async fn find_providers(&self, key: Vec<u8>) -> Result<mpsc::Receiver<PeerId>, NetError> {
        let (found, rx) = mpsc::channel(64);
        self.commands
            .send(Command::FindProviders { key, found })
            .await
            .map_err(|_| NetError::Shutdown)?;
        Ok(rx)
    }

    /// Events for other services. Slow receivers miss events (bounded buffer).
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Opens a raw stream to `peer` for bulk data, dialing it if needed.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<Stream, StreamError> {
        self.streams
            .clone()
            .open_stream(peer, protocol)
            .await
            .map_err(|e| StreamError::Open {
                peer,
                reason: e.to_string(),
            })
    }

    /// Accepts inbound streams of `protocol`. Only one acceptor per protocol.
    pub fn accept_streams(
        &self,
        protocol: StreamProtocol,
    ) -> Result<libp2p_stream::IncomingStreams, StreamError> {
        self.streams
            .clone()
            .accept(protocol.clone())
            .map_err(|_| StreamError::AlreadyAccepting(protocol))
    }

    /// Subscribes to `topic`; messages arrive on the returned receiver,
    /// which holds up to `capacity` of them (clamped to 1..=65536). Each
    /// message waits for a [`NetworkHandle::report_message`] before it is
    /// forwarded. When a message arrives while the receiver is full, the
    /// network ignores it (no forwarding, no penalty); once the receiver is
    /// dropped, the node leaves the topic.
    ///
    /// Subscribing to a topic that already has a live receiver is
    /// [`GossipError::AlreadySubscribed`]; at most [`crate::MAX_TOPICS`]
    /// topics at once.
    pub async fn subscribe(
        &self,
        topic: &str,
        capacity: usize,
    ) -> Result<mpsc::Receiver<GossipMessage>, GossipError> {
        gossip::check_topic(topic)?;
        let (messages, rx) = mpsc::channel(capacity.clamp(1, gossip::MAX_CAPACITY));
        let topic = topic.to_owned();
        self.call(|reply| Command::Subscribe {
            topic,
            messages,
            reply,
        })
        .await
        .map_err(|_| GossipError::Shutdown)??;
        Ok(rx)
    }

    pub async fn unsubscribe(&self, topic: &str) -> Result<(), GossipError> {
        let topic = topic.to_owned();
        self.call(|reply| Command::Unsubscribe { topic, reply })
            .await
            .map_err(|_| GossipError::Shutdown)?
    }

    /// Publishes `data` on `topic` (subscribed or not). Returns Ok(true) when
    /// it was sent to at least one peer, Ok(false) when no peer is subscribed
    /// or the same message (same topic and data) was already published or
    /// received. Data larger than [`crate::Config::gossip_max_size`] is
    /// [`GossipError::TooLarge`].
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<bool, GossipError> {
        gossip::check_topic(topic)?;
        if data.len() > self.gossip_max_size {
            return Err(GossipError::TooLarge {
                size: data.len(),
                max: self.gossip_max_size,
            });
        }
        let topic = topic.to_owned();
        self.call(|reply| Command::Publish { topic, data, reply })
            .await
            .map_err(|_| GossipError::Shutdown)?
    }

    /// Tells gossipsub whether to forward a received message; nothing is
    /// forwarded before this. [`Verdict::Reject`] also counts as one offence
    /// by `propagation_source` (see [`NetworkHandle::penalise`]).
    pub async fn report_message(
        &self,
        id: MessageId,
        propagation_source: PeerId,
        verdict: Verdict,
    ) -> Result<(), NetError> {
        self.call(|reply| Command::ReportMessage {
            id,
            propagation_source,
            verdict,
            reply,
        })
        .await
    }

    /// Records one offence by `peer`; `reason` is logged. A peer with
    /// [`crate::Config::max_penalties`] offences within ten minutes is
    /// disconnected and refused, inbound and outbound, for ten minutes.
    pub async fn penalise(&self, peer: PeerId, reason: &str) -> Result<(), NetError> {
        let reason: String = reason.chars().take(200).collect();
        self.call(|reply| Command::Penalise {
            peer,
            reason,
            reply,
        })
        .await
    }

    /// Our subscribed topics, each with its gossip mesh.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>, NetError> {
        self.call(|reply| Command::Topics { reply }).await
    }
}

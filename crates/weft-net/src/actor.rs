//! The network actor: the one task that owns the libp2p `Swarm`.
//!
//! It loops on `select!` over swarm events, commands from
//! [`NetworkHandle`](crate::NetworkHandle)s and two timers (maintenance and
//! random walks). Pending work lives in maps keyed by connection id, peer id
//! or query id, each bounded. It stops on [`Command::Shutdown`] or when every
//! handle has been dropped; dropping the swarm closes all connections.
//!
//! Network separation: a peer enters the routing table only after identify
//! shows it runs our network (`/weft/1.0.0/<network>`). A peer that reports
//! another network is disconnected, removed from the DHT and refused for a
//! while. Peers that collect too many penalties are banned the same way, and
//! more firmly (see `bans`). The DHT side lives in `dht`, gossip in
//! [`crate::gossip`].

mod bans;
mod dht;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::metrics::Recorder;
use libp2p::{
    core::ConnectedPoint,
    identify, kad, mdns,
    multiaddr::Protocol,
    swarm::{dial_opts::DialOpts, ConnectionId, SwarmEvent},
    Multiaddr, PeerId, Swarm,
};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{broadcast, mpsc};

use crate::{
    behaviour::{identify_version, Behaviour, BehaviourEvent, KAD_PROTOCOL},
    gossip::Gossip,
    handle::{Command, DialError, Lookup, NetworkEvent, Reply},
    peers::{Identified, PeerBook, MAX_ADDRS_PER_PEER},
    penalties::{Penalties, PENALTY_WINDOW},
    Config, DhtMode,
};
use bans::Rejected;
use dht::ProviderSearch;

/// Most dials from handles in flight at once.
const MAX_PENDING_DIALS: usize = 64;
/// Most DHT lookups from handles in flight at once.
const MAX_PENDING_LOOKUPS: usize = 256;
/// A connection must identify within this time or it is closed.
const IDENTIFY_GRACE: Duration = Duration::from_secs(30);
/// Below this many ready peers, maintenance dials peers from the routing table.
const TARGET_PEERS: usize = 8;
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Gauges {
    pub(crate) peers: Gauge,
    pub(crate) dht_size: Gauge,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: Config,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NetworkEvent>,
    metrics: libp2p::metrics::Metrics,
    gauges: Gauges,
    peers: PeerBook,
    /// Dials from handles, by the connection they will create.
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<Result<PeerId, DialError>>)>,
    /// Dials that connected and now wait for identify.
    awaiting_identify: HashMap<PeerId, Vec<Reply<Result<PeerId, DialError>>>>,
    pending_lookups: HashMap<kad::QueryId, (PeerId, Reply<Lookup>)>,
    /// Provider searches, by query.
    provider_searches: HashMap<kad::QueryId, ProviderSearch>,
    /// Lookups that resolve a found provider's addresses before it is
    /// handed out.
    resolving: HashMap<kad::QueryId, (PeerId, mpsc::Sender<PeerId>)>,
    /// Peers on another network or banned, and since when.
    rejected: HashMap<PeerId, Rejected>,
    /// Offences by peer (connected or not).
    penalties: Penalties,
    /// Local gossip subscriptions.
    gossip: Gossip,
    /// Lets timers send commands to this loop without keeping it alive.
    weak_commands: Option<mpsc::WeakSender<Command>>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        config: Config,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<NetworkEvent>,
        metrics: libp2p::metrics::Metrics,
        gauges: Gauges,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            metrics,
            gauges,
            peers: PeerBook::default(),
            pending_dials: HashMap::new(),
            awaiting_identify: HashMap::new(),
            pending_lookups: HashMap::new(),
            provider_searches: HashMap::new(),
            resolving: HashMap::new(),
            rejected: HashMap::new(),
            penalties: Penalties::new(config.max_penalties, PENALTY_WINDOW),
            gossip: Gossip::new(&config),
            weak_commands: None,
            config,
        }
    }

    pub(crate) async fn run(mut self, weak: mpsc::WeakSender<Command>) {
        self.weak_commands = Some(weak);
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut walk = tokio::time::interval_at(
            tokio::time::Instant::now() + self.config.random_walk_interval,
            self.config.random_walk_interval,
        );
        walk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                _ = maintenance.tick() => self.maintain(),
                _ = walk.tick() => self.random_walk(),
            }
        }
        tracing::debug!("network actor stopped");
    }

    /// Processes swarm events until every listener has reported an address
    /// or failed, or `deadline` passes. Used once, before the loop starts.
    pub(crate) async fn wait_listening(
        &mut self,
        listeners: &[libp2p::core::transport::ListenerId],
        deadline: Duration,
    ) -> Result<(), String> {
        let mut waiting: Vec<_> = listeners.to_vec();
        let sleep = tokio::time::sleep(deadline);
        tokio::pin!(sleep);
        while !waiting.is_empty() {
            tokio::select! {
                event = self.swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { listener_id, .. } => {
                        waiting.retain(|l| *l != listener_id);
                    }
                    SwarmEvent::ListenerClosed { listener_id, reason: Err(e), .. } |
                    SwarmEvent::ListenerError { listener_id, error: e } => {
                        if waiting.contains(&listener_id) {
                            return Err(e.to_string());
                        }
                    }
                    other => self.on_swarm_event(other),
                },
                _ = &mut sleep => return Err("no listen address was reported in time".into()),
            }
        }
        Ok(())
    }

    pub(crate) fn swarm_mut(&mut self) -> &mut Swarm<Behaviour> {
        &mut self.swarm
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::Disconnect { peer, reply } => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::Peers { reply } => {
                let now = Instant::now();
                let mut info = self.peers.info();
                for p in &mut info {
                    p.penalties = self.penalties.count(&p.peer_id, now);
                }
                let _ = reply.send(info);
            }
            Command::Dht { reply } => {
                let _ = reply.send(self.dht_info());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs());
            }
            command @ (Command::FindPeer { .. }
            | Command::Provide { .. }
            | Command::StopProviding { .. }
            | Command::FindProviders { .. }) => self.on_dht_command(command),
            Command::Subscribe {
                topic,
                messages,
                reply,
            } => {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = reply.send(self.gossip.subscribe(gs, topic, messages));
            }
            Command::Unsubscribe { topic, reply } => {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = reply.send(self.gossip.unsubscribe(gs, &topic));
            }
            Command::Publish { topic, data, reply } => {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = reply.send(self.gossip.publish(gs, &topic, data));
            }
            Command::ReportMessage {
                id,
                propagation_source,
                verdict,
                reply,
            } => {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                if !self.gossip.report(gs, &id, &propagation_source, verdict) {
                    tracing::debug!(%id, "verdict came after the message left the cache");
                }
                if verdict == crate::Verdict::Reject {
                    self.penalise(
                        propagation_source,
                        "sent a gossip message that was rejected",
                    );
                }
                let _ = reply.send(());
            }
            Command::Penalise {
                peer,
                reason,
                reply,
            } => {
                self.penalise(peer, &reason);
                let _ = reply.send(());
            }
            Command::Topics { reply } => {
                let _ = reply.send(self.gossip.topics(&self.swarm.behaviour().gossipsub));
            }
            Command::Shutdown => {}
        }
    }

    fn listen_addrs(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        self.swarm
            .listeners()
            .map(|a| crate::with_peer_id(a, me))
            .collect()
    }

    fn dial(&mut self, addr: Multiaddr, reply: Reply<Result<PeerId, DialError>>) {
        let waiting: usize = self.awaiting_identify.values().map(Vec::len).sum();
        if self.pending_dials.len() + waiting >= MAX_PENDING_DIALS {
            let _ = reply.send(Err(DialError::Busy));
            return;
        }
        let target = crate::split_peer_id(&addr).map(|(_, p)| p);
        if target == Some(*self.swarm.local_peer_id()) {
            let _ = reply.send(Err(DialError::SelfDial(addr)));
            return;
        }
        if let Some(peer) = target {
            if self.peers.is_ready(&peer) {
                let _ = reply.send(Ok(peer));
                return;
            }
            if let Some(left) = self.ban_left(&peer) {
                let _ = reply.send(Err(DialError::Failed {
                    addr,
                    reason: format!(
                        "peer {peer} is banned for misbehaviour for another {} s",
                        left.as_secs()
                    ),
                }));
                return;
            }
            // Dialed on purpose: give it another chance.
            self.forgive(&peer);
            if self.swarm.is_connected(&peer) {
                // Connected, not yet identified: wait for identify rather
                // than opening another connection.
                self.awaiting_identify.entry(peer).or_default().push(reply);
                return;
            }
        }
        let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
        let opts = match target {
            // Dial the given address even while another dial of this peer
            // runs: that one may be trying addresses the peer no longer
            // listens on (it restarted on new ports).
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(libp2p::swarm::dial_opts::PeerCondition::Disconnected)
                .build(),
            None => opts,
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, reply));
            }
            Err(libp2p::swarm::DialError::LocalPeerId { .. }) => {
                let _ = reply.send(Err(DialError::SelfDial(addr)));
            }
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) if target.is_some() => {
                // Connected meanwhile: wait for identify.
                if let Some(peer) = target {
                    self.awaiting_identify.entry(peer).or_default().push(reply);
                }
            }
            Err(e) => {
                let _ = reply.send(Err(DialError::Failed {
                    addr,
                    reason: one_line(&e),
                }));
            }
        }
    }

    /// Periodic upkeep: drop connections that never identified, forget old
    /// rejections, keep enough peers, refresh gauges.
    fn maintain(&mut self) {
        for peer in self.peers.unidentified_since(IDENTIFY_GRACE) {
            tracing::debug!(%peer, "closing connection that never identified");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        self.expire_rejections();
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        self.gossip.leave_closed(gs);

        let target = TARGET_PEERS.min(self.config.max_peers as usize);
        let ready = self.peers.ids().filter(|p| self.peers.is_ready(p)).count();
        if ready < target {
            let mut candidates = Vec::new();
            for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                for entry in bucket.iter() {
                    let peer = *entry.node.key.preimage();
                    if self.peers.get(&peer).is_none() {
                        candidates.push(peer);
                    }
                }
            }
            for peer in candidates.into_iter().take(target - ready) {
                // Addresses come from the routing table.
                let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
            }
        }
        self.refresh_gauges();
    }

    fn refresh_gauges(&mut self) {
        self.gauges.peers.set(self.peers.len() as i64);
        let size = self.swarm.behaviour_mut().dht_size();
        self.gauges.dht_size.set(size as i64);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => {
                self.metrics.record(&e);
                self.on_identify(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => {
                self.metrics.record(&e);
                self.on_kad(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => {
                self.metrics.record(&e);
                if let Ok(rtt) = e.result {
                    if let Some(p) = self.peers.get_mut(&e.peer) {
                        p.rtt = Some(rtt);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(e)) => self.on_mdns(e),
            SwarmEvent::Behaviour(BehaviourEvent::Limits(v)) => match v {},
            SwarmEvent::Behaviour(BehaviourEvent::Blocked(v)) => match v {},
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.metrics.record(&e);
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                self.gossip.on_event(gs, e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Stream(())) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint, num_established.get()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                if self.peers.closed(&peer_id, connection_id) {
                    if let Some(replies) = self.awaiting_identify.remove(&peer_id) {
                        for reply in replies {
                            let _ = reply.send(Err(DialError::Failed {
                                addr: Multiaddr::empty().with(Protocol::P2p(peer_id)),
                                reason: "connection closed before the peer identified".into(),
                            }));
                        }
                    }
                    let _ = self.events.send(NetworkEvent::PeerDisconnected(peer_id));
                }
                self.refresh_gauges();
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                peer_id,
            } => {
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(DialError::Failed {
                        addr,
                        reason: one_line(&error),
                    }));
                }
                // Dials that were waiting on someone else's attempt.
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        if let Some(replies) = self.awaiting_identify.remove(&peer) {
                            for reply in replies {
                                let _ = reply.send(Err(DialError::Failed {
                                    addr: Multiaddr::empty().with(Protocol::P2p(peer)),
                                    reason: one_line(&error),
                                }));
                            }
                        }
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(%send_back_addr, "incoming connection failed: {}", one_line(&error));
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                tracing::info!("listening on {}", crate::with_peer_id(&address, me));
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!("listener error: {error}");
            }
            _ => {}
        }
    }

    fn on_connected(
        &mut self,
        peer: PeerId,
        connection_id: ConnectionId,
        endpoint: &ConnectedPoint,
        num_established: u32,
    ) {
        let dialed_by_us = self.pending_dials.remove(&connection_id);
        if self.is_banned(&peer) {
            // The block list refuses these connections; in case one slips by.
            if let Some((addr, reply)) = dialed_by_us {
                let _ = reply.send(Err(DialError::Failed {
                    addr,
                    reason: format!("peer {peer} is banned for misbehaviour"),
                }));
            }
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        if dialed_by_us.is_some() {
            // Dialed on purpose: identify decides again.
            self.forgive(&peer);
        } else if self.rejected.contains_key(&peer) {
            // Let identify run so the other side learns why, then close.
            tracing::debug!(%peer, "refusing peer from another network");
            self.reject(peer);
            return;
        }
        if num_established == 1
            && dialed_by_us.is_none()
            && self.peers.len() >= self.config.max_peers as usize
        {
            tracing::debug!(%peer, "peer limit reached; closing connection");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.peers.connected(peer, connection_id, endpoint);
        if let Some((_, reply)) = dialed_by_us {
            if self.peers.is_ready(&peer) {
                let _ = reply.send(Ok(peer));
            } else {
                self.awaiting_identify.entry(peer).or_default().push(reply);
            }
        }
        if self.config.dht_mode == DhtMode::Auto {
            if let ConnectedPoint::Listener { local_addr, .. } = endpoint {
                // Someone reached us: the address they used works.
                self.swarm.add_external_address(local_addr.clone());
            }
        }
        self.refresh_gauges();
    }

    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        let ours = identify_version(&self.config.network);
        if info.protocol_version != ours {
            tracing::info!(
                peer = %peer_id,
                theirs = %info.protocol_version,
                "disconnecting peer from another network"
            );
            self.reject(peer_id);
            if let Some(replies) = self.awaiting_identify.remove(&peer_id) {
                for reply in replies {
                    let _ = reply.send(Err(DialError::WrongNetwork {
                        peer: peer_id,
                        theirs: network_name(&info.protocol_version),
                        ours: self.config.network.clone(),
                    }));
                }
            }
            return;
        }
        let listen_addrs: Vec<Multiaddr> = info
            .listen_addrs
            .into_iter()
            .filter(is_dialable)
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        let speaks_kad = info.protocols.contains(&KAD_PROTOCOL);
        if speaks_kad {
            let kad = &mut self.swarm.behaviour_mut().kad;
            for addr in &listen_addrs {
                kad.add_address(&peer_id, addr.clone());
            }
        }
        let newly_ready = match self.peers.get_mut(&peer_id) {
            Some(p) => {
                let was = p.identified.is_some();
                p.identified = Some(Identified {
                    protocols: info.protocols.iter().map(|p| p.to_string()).collect(),
                    listen_addrs,
                    agent_version: info.agent_version,
                });
                !was
            }
            None => false,
        };
        if let Some(replies) = self.awaiting_identify.remove(&peer_id) {
            for reply in replies {
                let _ = reply.send(Ok(peer_id));
            }
        }
        if newly_ready {
            let _ = self.events.send(NetworkEvent::PeerReady(peer_id));
        }
        self.refresh_gauges();
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                if self.rejected.contains_key(&peer) || self.peers.get(&peer).is_some() {
                    continue;
                }
                if self.peers.len() >= self.config.max_peers as usize {
                    break;
                }
                tracing::debug!(%peer, %addr, "found by mDNS");
                let _ = self
                    .swarm
                    .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
            }
        }
    }
}

/// The network name inside an identify protocol version, for messages.
fn network_name(protocol_version: &str) -> String {
    protocol_version
        .strip_prefix(crate::behaviour::IDENTIFY_PREFIX)
        .unwrap_or(protocol_version)
        .chars()
        .take(64)
        .collect()
}

/// Addresses a peer may usefully advertise: IP-based, not unspecified.
fn is_dialable(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) => true,
        _ => false,
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_name_is_extracted_and_bounded() {
        assert_eq!(network_name("/weft/1.0.0/main"), "main");
        assert_eq!(network_name(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn unspecified_addresses_are_not_dialable() {
        assert!(!is_dialable(&"/ip4/0.0.0.0/tcp/1".parse().unwrap()));
        assert!(is_dialable(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()));
    }
}

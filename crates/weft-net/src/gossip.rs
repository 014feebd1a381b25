//! Publish/subscribe over gossipsub, with validation before forwarding.
//!
//! The actor owns the gossipsub behaviour (inside the swarm) and one
//! [`Gossip`]: the table of local subscriptions, each a short topic name
//! (`"blocks"`) with the bounded sender its receiver reads from. On the wire
//! topics are namespaced per network (`/weft/<network>/<topic>`), so peers of
//! another network never share a mesh with us; the API only ever sees the
//! short name.
//!
//! Nothing received is forwarded until the service that owns the topic
//! reports a [`Verdict`] through
//! [`NetworkHandle::report_message`](crate::NetworkHandle::report_message)
//! (gossipsub's `validate_messages`). When a message arrives for a receiver
//! that is full, the actor reports [`Verdict::Ignore`] itself; when the
//! receiver has been dropped, it reports Ignore and leaves the topic.
//! Message ids are the BLAKE3 hash of the namespaced topic, a zero byte and
//! the data, so the same content published twice (by anyone) is one message.
//!
//! Peer scoring is on, kept simple: rejected messages (P4) weigh heavily,
//! time in mesh and first deliveries give a small bounded bonus, and the
//! penalties that misfire on quiet topics or many nodes on one host (mesh
//! delivery deficits, loopback IP colocation) are off, so honest peers are
//! never graylisted. Offences counted by the actor (see `penalties`) come on
//! top of this and lead to bans.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use libp2p::{
    gossipsub::{
        self, IdentTopic, MessageAcceptance, MessageAuthenticity, PeerScoreParams,
        PeerScoreThresholds, TopicHash, TopicScoreParams, ValidationMode,
    },
    identity::Keypair,
    PeerId,
};
use tokio::sync::mpsc;

pub use libp2p::gossipsub::MessageId;

use crate::Config;

/// Most topics a node subscribes to at once (gossipsub's default filter caps
/// a remote peer's subscriptions at the same number).
pub const MAX_TOPICS: usize = 100;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Largest receiver capacity `subscribe` grants.
pub(crate) const MAX_CAPACITY: usize = 1 << 16;
/// Room for gossipsub's envelope (signature, key, sequence number, topic,
/// protobuf framing) on top of the largest payload.
const ENVELOPE_ALLOWANCE: usize = 4 * 1024;
/// How long a received message waits in the cache for its verdict.
const VALIDATION_WINDOW: Duration = Duration::from_secs(5);

/// A message received on a subscribed topic, waiting for its [`Verdict`].
#[derive(Debug, Clone)]
pub struct GossipMessage {
    pub id: MessageId,
    /// The topic as the subscriber named it (without the network prefix).
    pub topic: String,
    pub data: Vec<u8>,
    /// The signed author (publisher) of the message.
    pub source: Option<PeerId>,
    /// The peer that forwarded it to us.
    pub propagation_source: PeerId,
}

/// What the subscriber thinks of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Not forwarded, no penalty (a duplicate, or not useful right now).
    Ignore,
    /// Invalid: not forwarded, and the forwarding peer is penalised.
    Reject,
}

/// A subscribed topic and the gossip mesh around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic: String,
    /// Peers we exchange full messages with on this topic.
    pub mesh_peers: Vec<PeerId>,
    /// Connected peers subscribed to the topic.
    pub subscribed_peers: usize,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GossipError {
    #[error("topic {0:?} already has a live subscriber")]
    AlreadySubscribed(String),
    #[error("not subscribed to topic {0:?}")]
    NotSubscribed(String),
    #[error("message of {size} bytes is larger than the gossip limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("cannot subscribe: already subscribed to the maximum of {max} topics")]
    TooManyTopics { max: usize },
    #[error("invalid topic name {0:?}: it must be 1 to 256 bytes long")]
    InvalidTopic(String),
    #[error("cannot publish: {0}")]
    Publish(String),
    #[error("the network service has shut down")]
    Shutdown,
}

/// Checks a topic name given by a caller.
pub(crate) fn check_topic(topic: &str) -> Result<(), GossipError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        let shown: String = topic.chars().take(64).collect();
        return Err(GossipError::InvalidTopic(shown));
    }
    Ok(())
}

/// BLAKE3 of the (namespaced) topic, a zero byte and the data.
fn message_id(message: &gossipsub::Message) -> MessageId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(message.topic.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&message.data);
    MessageId::new(hasher.finalize().as_bytes())
}

/// The gossipsub behaviour for `config`, signing with `key`.
pub(crate) fn behaviour(key: &Keypair, config: &Config) -> Result<gossipsub::Behaviour, String> {
    let heartbeat = config.gossip_heartbeat.max(Duration::from_millis(50));
    // Keep received messages long enough for their verdict, whatever the
    // heartbeat.
    let beats = VALIDATION_WINDOW.as_millis() / heartbeat.as_millis().max(1);
    let history = usize::try_from(beats).unwrap_or(5).clamp(5, 200);
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(config.gossip_max_size.saturating_add(ENVELOPE_ALLOWANCE))
        .heartbeat_interval(heartbeat)
        .heartbeat_initial_delay(heartbeat)
        .history_length(history)
        .build()
        .map_err(|e| format!("invalid gossipsub configuration: {e}"))?;
    let mut behaviour =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
    behaviour.with_peer_score(score_params(), PeerScoreThresholds::default())?;
    Ok(behaviour)
}

fn score_params() -> PeerScoreParams {
    PeerScoreParams {
        // Devnets and tests run many nodes on one host.
        ip_colocation_factor_whitelist: [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        // Tolerate a broken IWANT promise or two (a slow large message).
        behaviour_penalty_threshold: 2.0,
        ..PeerScoreParams::default()
    }
}

/// Score parameters of every subscribed topic.
fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // At most +10 for an hour or more in the mesh.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 1000.0,
        // At most +20 for delivering messages first.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            10 * 60,
        )),
        first_message_deliveries_cap: 20.0,
        // Off: a quiet topic must not make honest mesh peers look broken.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Rejected messages: -10, -40, -90, … (squared count), decaying over
        // about ten minutes. Four put a peer below the graylist threshold
        // whatever its bonuses.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            10 * 60,
        )),
        ..TopicScoreParams::default()
    }
}

impl From<Verdict> for MessageAcceptance {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject => MessageAcceptance::Reject,
        }
    }
}

struct Subscription {
    /// The name the subscriber used.
    topic: String,
    ident: IdentTopic,
    messages: mpsc::Sender<GossipMessage>,
}

/// The actor's local subscriptions. See the module header.
pub(crate) struct Gossip {
    network: String,
    max_size: usize,
    subscriptions: HashMap<TopicHash, Subscription>,
}

impl Gossip {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            network: config.network.clone(),
            max_size: config.gossip_max_size,
            subscriptions: HashMap::new(),
        }
    }

    fn ident(&self, topic: &str) -> IdentTopic {
        IdentTopic::new(format!("/weft/{}/{topic}", self.network))
    }

    pub(crate) fn subscribe(
        &mut self,
        gs: &mut gossipsub::Behaviour,
        topic: String,
        messages: mpsc::Sender<GossipMessage>,
    ) -> Result<(), GossipError> {
        check_topic(&topic)?;
        let ident = self.ident(&topic);
        let hash = ident.hash();
        if let Some(existing) = self.subscriptions.get_mut(&hash) {
            if !existing.messages.is_closed() {
                return Err(GossipError::AlreadySubscribed(topic));
            }
            // The old receiver is gone; gossipsub is still subscribed.
            existing.messages = messages;
            return Ok(());
        }
        if self.subscriptions.len() >= MAX_TOPICS {
            return Err(GossipError::TooManyTopics { max: MAX_TOPICS });
        }
        gs.subscribe(&ident).map_err(|e| match e {
            gossipsub::SubscriptionError::NotAllowed => {
                GossipError::TooManyTopics { max: MAX_TOPICS }
            }
            gossipsub::SubscriptionError::PublishError(e) => GossipError::Publish(e.to_string()),
        })?;
        // Only fails when scoring is off, which `behaviour` never leaves it.
        // The parameters stay after unsubscribing: one entry per topic name
        // ever used, and the names are the node's own constants.
        if let Err(e) = gs.set_topic_params(ident.clone(), topic_score_params()) {
            tracing::warn!(%topic, "cannot set topic score parameters: {e}");
        }
        tracing::debug!(%topic, "subscribed");
        self.subscriptions.insert(
            hash,
            Subscription {
                topic,
                ident,
                messages,
            },
        );
        Ok(())
    }

    pub(crate) fn unsubscribe(
        &mut self,
        gs: &mut gossipsub::Behaviour,
        topic: &str,
    ) -> Result<(), GossipError> {
        let hash = self.ident(topic).hash();
        let sub = self
            .subscriptions
            .remove(&hash)
            .ok_or_else(|| GossipError::NotSubscribed(topic.to_owned()))?;
        gs.unsubscribe(&sub.ident);
        tracing::debug!(%topic, "unsubscribed");
        Ok(())
    }

    /// Ok(true) when sent to at least one peer; Ok(false) when no peer is
    /// subscribed or the same message was already published.
    pub(crate) fn publish(
        &mut self,
        gs: &mut gossipsub::Behaviour,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<bool, GossipError> {
        check_topic(topic)?;
        let size = data.len();
        let too_large = GossipError::TooLarge {
            size,
            max: self.max_size,
        };
        if size > self.max_size {
            return Err(too_large);
        }
        match gs.publish(self.ident(topic), data) {
            Ok(id) => {
                tracing::trace!(%topic, %id, "published");
                Ok(true)
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(false),
            Err(gossipsub::PublishError::Duplicate) => Ok(false),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(too_large),
            Err(gossipsub::PublishError::AllQueuesFull(n)) => Err(GossipError::Publish(format!(
                "the send queues of all {n} subscribed peers are full"
            ))),
            Err(e) => Err(GossipError::Publish(e.to_string())),
        }
    }

    /// Passes a subscriber's verdict on to gossipsub. Returns false when the
    /// message had already left the cache (too late to forward).
    pub(crate) fn report(
        &mut self,
        gs: &mut gossipsub::Behaviour,
        id: &MessageId,
        propagation_source: &PeerId,
        verdict: Verdict,
    ) -> bool {
        gs.report_message_validation_result(id, propagation_source, verdict.into())
    }

    pub(crate) fn on_event(&mut self, gs: &mut gossipsub::Behaviour, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.deliver(gs, propagation_source, message_id, message),
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::debug!(peer = %peer_id, ?failed_messages, "slow gossip peer");
            }
            other => tracing::trace!(?other, "gossipsub event"),
        }
    }

    fn deliver(
        &mut self,
        gs: &mut gossipsub::Behaviour,
        propagation_source: PeerId,
        id: MessageId,
        message: gossipsub::Message,
    ) {
        let Some(sub) = self.subscriptions.get(&message.topic) else {
            gs.report_message_validation_result(
                &id,
                &propagation_source,
                MessageAcceptance::Ignore,
            );
            return;
        };
        let received = GossipMessage {
            id: id.clone(),
            topic: sub.topic.clone(),
            data: message.data,
            source: message.source,
            propagation_source,
        };
        match sub.messages.try_send(received) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(topic = %sub.topic, %id, "subscriber is behind; ignoring message");
                gs.report_message_validation_result(
                    &id,
                    &propagation_source,
                    MessageAcceptance::Ignore,
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                gs.report_message_validation_result(
                    &id,
                    &propagation_source,
                    MessageAcceptance::Ignore,
                );
                self.leave_closed(gs);
            }
        }
    }

    /// Leaves every topic whose receiver has been dropped.
    pub(crate) fn leave_closed(&mut self, gs: &mut gossipsub::Behaviour) {
        self.subscriptions.retain(|_, sub| {
            if sub.messages.is_closed() {
                tracing::debug!(topic = %sub.topic, "receiver dropped; leaving topic");
                gs.unsubscribe(&sub.ident);
                false
            } else {
                true
            }
        });
    }

    /// Our subscribed topics and their meshes, by topic name.
    pub(crate) fn topics(&self, gs: &gossipsub::Behaviour) -> Vec<TopicInfo> {
        let mut subscribed: HashMap<&TopicHash, usize> = HashMap::new();
        for (_, topics) in gs.all_peers() {
            for t in topics {
                *subscribed.entry(t).or_default() += 1;
            }
        }
        let mut out: Vec<TopicInfo> = self
            .subscriptions
            .iter()
            .map(|(hash, sub)| {
                let mut mesh_peers: Vec<PeerId> = gs.mesh_peers(hash).copied().collect();
                mesh_peers.sort_by_key(|p| p.to_bytes());
                TopicInfo {
                    topic: sub.topic.clone(),
                    mesh_peers,
                    subscribed_peers: subscribed.get(hash).copied().unwrap_or(0),
                }
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, data: &[u8], source: Option<PeerId>) -> gossipsub::Message {
        gossipsub::Message {
            source,
            data: data.to_vec(),
            sequence_number: Some(1),
            topic: TopicHash::from_raw(topic),
        }
    }

    #[test]
    fn message_id_depends_on_topic_and_data_only() {
        let a = message_id(&message("/weft/x/t", b"hello", Some(PeerId::random())));
        let b = message_id(&message("/weft/x/t", b"hello", Some(PeerId::random())));
        assert_eq!(
            a, b,
            "the same content is one message, whoever publishes it"
        );
        assert_ne!(a, message_id(&message("/weft/x/u", b"hello", None)));
        assert_ne!(a, message_id(&message("/weft/x/t", b"hellO", None)));
        // The separator keeps topic and data apart.
        assert_ne!(
            message_id(&message("/weft/x/ab", b"c", None)),
            message_id(&message("/weft/x/a", b"bc", None))
        );
        let mut expected = b"/weft/x/t".to_vec();
        expected.push(0);
        expected.extend_from_slice(b"hello");
        assert_eq!(a.0, blake3::hash(&expected).as_bytes().to_vec());
    }

    #[test]
    fn score_parameters_are_valid() {
        score_params().validate().unwrap();
        topic_score_params().validate().unwrap();
        assert!(topic_score_params().invalid_message_deliveries_weight < 0.0);
    }

    #[test]
    fn topic_names_are_checked() {
        assert!(check_topic("blocks").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
    }

    #[test]
    fn the_default_configuration_builds() {
        let config = Config::loopback(crate::Identity::generate(), "t");
        behaviour(crate::Identity::generate().keypair(), &config).unwrap();
    }
}

//! Topics that apps publish and subscribe to, over gossipsub.
//!
//! An app names a topic (`chat.lobby`: 1 to 64 characters of
//! `[A-Za-z0-9._-]`); on the wire it is the gossip topic `app/<name>`, which
//! the network layer namespaces per network. A message is a borsh
//! [`Envelope`] (the author's clock and the data, at most [`MAX_MESSAGE`]
//! bytes of data), signed by the publishing node: gossipsub verifies the
//! signature before we see the message, so its `source` is the author.
//!
//! **Who owns what.** [`PubSub`] is a cloneable handle on one table of
//! topics, each with a `broadcast` channel that its local subscribers (SSE
//! clients, the CLI) read, and a bounded set of recently delivered message
//! ids. The first local subscriber subscribes on the network and spawns the
//! topic's task; the task owns the network receiver and a `Validator`
//! (sans-IO: decoding, size, signature presence, a token bucket per author),
//! reports a verdict for every message (nothing is forwarded before it) and
//! broadcasts the accepted ones. Messages this node publishes are delivered
//! to its own subscribers directly, since gossipsub does not echo them.
//!
//! **Ending.** When the last local receiver has been gone for the linger
//! time ([`LINGER`] unless set with [`PubSub::with_linger`]; checked on
//! every message and every second), the task removes the topic from the
//! table and leaves it on the network, under the table's lock so a new
//! subscriber never races it. The linger spares the mesh when a client
//! reconnects: gossipsub keeps a peer that left a topic out of the meshes
//! around it for the unsubscribe backoff, and in practice for about a
//! minute longer, so a quick leave and rejoin would leave this node outside
//! every mesh meanwhile (it still gets messages through gossip, later).
//! When the network shuts down, or on [`PubSub::close`], each task leaves
//! and drops its topic's sender, which ends every local subscription.
//!
//! **Rates.** Each author may send [`RATE`] messages per second per topic
//! (burst [`BURST`]); the surplus is ignored (not delivered, not forwarded)
//! and every [`PENALTY_EVERY`]th surplus message the author sent us itself
//! counts as one offence against it, so a persistent flooder is eventually
//! disconnected and banned by its neighbours. (Surplus relayed by others
//! is only ignored: a relay could be replaying an innocent author's old
//! messages.) Our own publishing is paced below that limit (waiting for
//! its turn), so that peers never throttle us.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use borsh::{BorshDeserialize, BorshSerialize};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use weft_net::{GossipMessage, NetworkHandle, PeerId, Verdict};

mod limits;

use limits::{Check, Pacer, RecentIds, Validator};

/// Largest message data, in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest topic name, in characters.
pub const MAX_TOPIC_LEN: usize = 64;
/// Messages per second each author may send on a topic.
pub const RATE: f64 = 20.0;
/// How many messages an author may send at once before [`RATE`] applies.
pub const BURST: f64 = 100.0;
/// One offence per this many messages over an author's rate.
pub const PENALTY_EVERY: u64 = 100;

/// Prefix of app topics on the wire (before the network's namespace).
const WIRE_PREFIX: &str = "app/";
/// Room for the envelope's own fields around the data.
const ENVELOPE_OVERHEAD: usize = 8 + 4;
/// Messages waiting for the topic's task.
const NET_QUEUE: usize = 1024;
/// Messages a local subscriber may fall behind before it misses some.
const LOCAL_QUEUE: usize = 1024;
/// Ids of delivered messages remembered per topic, to deliver each once.
const RECENT_IDS: usize = 4096;
/// Authors tracked by a topic's rate limiter.
const MAX_AUTHORS: usize = 1024;
/// How often an idle topic checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long a topic nobody listens to stays joined, by default.
pub const LINGER: Duration = Duration::from_secs(15);
/// Our own publishing: a little under what peers accept, so that network
/// jitter never bunches our messages over their limit.
const PUBLISH_RATE: f64 = 16.0;
const PUBLISH_BURST: f64 = 80.0;
/// Longest a publish waits for its turn before it is refused.
const MAX_PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// Errors of [`PubSub`] calls.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PubSubError {
    #[error("invalid topic name {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    BadTopic(String),
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("publishing too fast on topic {0:?}: peers accept about {PUBLISH_RATE} messages per second; try again later")]
    TooFast(String),
    #[error("{0}")]
    Net(String),
}

/// A message on a topic, as local subscribers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Hex of the gossip message id (BLAKE3 of the wire topic and envelope).
    pub id: String,
    /// The app's topic name (without `app/`).
    pub topic: String,
    /// Peer id of the node that published (and signed) it.
    pub from: String,
    /// The author's clock when it published, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    pub data: Vec<u8>,
}

/// A topic this node is subscribed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    pub topic: String,
    /// Local receivers (SSE clients, CLI subscribers).
    pub subscribers: usize,
    /// Peers we exchange full messages with on this topic.
    pub mesh_peers: Vec<String>,
}

/// What travels in a gossip message on an app topic.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    pub timestamp_ms: u64,
    pub data: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        borsh::from_slice(bytes).ok()
    }
}

/// Checks an app's topic name.
pub fn check_topic(name: &str) -> Result<(), PubSubError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TOPIC_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        let mut shown: String = name.chars().take(MAX_TOPIC_LEN).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        Err(PubSubError::BadTopic(shown))
    }
}

/// The gossip topic of an app topic.
pub fn wire_topic(name: &str) -> String {
    format!("{WIRE_PREFIX}{name}")
}

/// The app topic of a gossip topic, if it is one.
fn app_topic(wire: &str) -> Option<&str> {
    wire.strip_prefix(WIRE_PREFIX)
        .filter(|name| check_topic(name).is_ok())
}

/// The gossip message id of `envelope` on `topic` in `network`, as the
/// network layer computes it: BLAKE3 of `/weft/<network>/app/<topic>`, a
/// zero byte and the envelope.
pub fn message_id(network: &str, topic: &str, envelope: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(format!("/weft/{network}/{}", wire_topic(topic)).as_bytes());
    hasher.update(&[0]);
    hasher.update(envelope);
    hex(hasher.finalize().as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One subscribed topic in the table.
struct Topic {
    /// Tells this subscription apart from an earlier one of the same name.
    generation: u64,
    sender: broadcast::Sender<Message>,
    recent: Arc<Mutex<RecentIds>>,
}

struct Inner {
    net: NetworkHandle,
    linger: Duration,
    /// Held across the network calls that subscribe and leave, so those
    /// never interleave for one topic.
    topics: tokio::sync::Mutex<HashMap<String, Topic>>,
    generations: std::sync::atomic::AtomicU64,
    /// Fired by [`PubSub::close`].
    closed: CancellationToken,
    /// The topics' tasks.
    tasks: TaskTracker,
    /// Pacing of our own publishing.
    pacing: Mutex<Pacer>,
}

/// Pub/sub topics for apps. See the module header.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

impl PubSub {
    pub fn new(net: NetworkHandle) -> Self {
        Self::with_linger(net, LINGER)
    }

    /// Like [`PubSub::new`], with how long a topic stays joined after its
    /// last local receiver is dropped.
    pub fn with_linger(net: NetworkHandle, linger: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                net,
                linger,
                topics: tokio::sync::Mutex::new(HashMap::new()),
                closed: CancellationToken::new(),
                tasks: TaskTracker::new(),
                generations: std::sync::atomic::AtomicU64::new(0),
                pacing: Mutex::new(Pacer::default()),
            }),
        }
    }

    /// A receiver of the messages on `topic` from now on (no replay). The
    /// first local subscriber joins the topic on the network; the node
    /// leaves it once every receiver has been dropped for the linger time. A receiver that falls more
    /// than 1024 messages behind misses some (`RecvError::Lagged`).
    pub async fn subscribe(
        &self,
        topic: &str,
    ) -> Result<broadcast::Receiver<Message>, PubSubError> {
        check_topic(topic)?;
        let mut topics = self.inner.topics.lock().await;
        if self.inner.closed.is_cancelled() {
            return Err(PubSubError::Net("pub/sub has shut down".into()));
        }
        if let Some(t) = topics.get(topic) {
            return Ok(t.sender.subscribe());
        }
        let rx = self
            .inner
            .net
            .subscribe(&wire_topic(topic), NET_QUEUE)
            .await
            .map_err(|e| PubSubError::Net(e.to_string()))?;
        let (sender, receiver) = broadcast::channel(LOCAL_QUEUE);
        let generation = self
            .inner
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let recent = Arc::new(Mutex::new(RecentIds::new(RECENT_IDS)));
        topics.insert(
            topic.to_owned(),
            Topic {
                generation,
                sender: sender.clone(),
                recent: recent.clone(),
            },
        );
        tracing::debug!(%topic, "joined app topic");
        let task = TopicTask {
            inner: self.inner.clone(),
            topic: topic.to_owned(),
            generation,
            sender,
            recent,
            validator: Validator::new(topic),
        };
        self.inner.tasks.spawn(task.run(rx));
        Ok(receiver)
    }

    /// Publishes `data` on `topic`, signed by this node, and delivers it to
    /// this node's own subscribers. Having no peers on the topic is not an
    /// error. Publishing faster than peers accept waits for its turn, up to
    /// ten seconds, then fails with [`PubSubError::TooFast`].
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<Message, PubSubError> {
        check_topic(topic)?;
        if data.len() > MAX_MESSAGE {
            return Err(PubSubError::TooLarge {
                size: data.len(),
                max: MAX_MESSAGE,
            });
        }
        let wait = lock(&self.inner.pacing).reserve(topic, Instant::now())?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let envelope = Envelope {
            timestamp_ms: now_ms(),
            data,
        };
        let bytes = envelope.encode();
        let id = message_id(self.inner.net.network(), topic, &bytes);
        match self.inner.net.publish(&wire_topic(topic), bytes).await {
            Ok(sent) => tracing::trace!(%topic, %id, sent, "published"),
            Err(e) => return Err(PubSubError::Net(e.to_string())),
        }
        let message = Message {
            id,
            topic: topic.to_owned(),
            from: self.inner.net.local_peer_id().to_string(),
            timestamp_ms: envelope.timestamp_ms,
            data: envelope.data,
        };
        let local = {
            let topics = self.inner.topics.lock().await;
            topics
                .get(topic)
                .map(|t| (t.sender.clone(), t.recent.clone()))
        };
        if let Some((sender, recent)) = local {
            if lock(&recent).insert(&message.id) {
                let _ = sender.send(message.clone());
            }
        }
        Ok(message)
    }

    /// Ends every local subscription (receivers see the channel close) and
    /// leaves every app topic; later subscriptions fail. For shutdown: an
    /// open event stream holds an HTTP response open, which would keep the
    /// API server from stopping gracefully.
    pub async fn close(&self) {
        {
            // Under the lock, so that no subscribe is half done.
            let _topics = self.inner.topics.lock().await;
            self.inner.closed.cancel();
            self.inner.tasks.close();
        }
        // Each topic's task leaves and drops its sender.
        self.inner.tasks.wait().await;
    }

    /// The app topics this node is subscribed to, with their local
    /// subscribers and gossip mesh.
    pub async fn topics(&self) -> Vec<TopicInfo> {
        let mut meshes: HashMap<String, Vec<String>> = HashMap::new();
        match self.inner.net.topics().await {
            Ok(list) => {
                for t in list {
                    if let Some(name) = app_topic(&t.topic) {
                        let peers = t.mesh_peers.iter().map(PeerId::to_string).collect();
                        meshes.insert(name.to_owned(), peers);
                    }
                }
            }
            Err(e) => tracing::debug!("cannot list gossip topics: {e}"),
        }
        let topics = self.inner.topics.lock().await;
        let mut out: Vec<TopicInfo> = topics
            .iter()
            .map(|(name, t)| TopicInfo {
                topic: name.clone(),
                subscribers: t.sender.receiver_count(),
                mesh_peers: meshes.remove(name).unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}

/// The task that owns one topic's network receiver. See the module header.
struct TopicTask {
    inner: Arc<Inner>,
    topic: String,
    generation: u64,
    sender: broadcast::Sender<Message>,
    recent: Arc<Mutex<RecentIds>>,
    validator: Validator,
}

impl TopicTask {
    async fn run(mut self, mut rx: mpsc::Receiver<GossipMessage>) {
        let check = IDLE_CHECK.min(self.inner.linger.max(Duration::from_millis(100)));
        let mut idle = tokio::time::interval(check);
        idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unused_since: Option<Instant> = None;
        loop {
            tokio::select! {
                message = rx.recv() => {
                    let Some(message) = message else {
                        tracing::debug!(topic = %self.topic, "network gone; ending app topic");
                        self.forget().await;
                        return;
                    };
                    self.handle(message).await;
                }
                _ = idle.tick() => {}
                _ = self.inner.closed.cancelled() => {
                    self.leave(&mut rx, true).await;
                    return;
                }
            }
            if self.sender.receiver_count() > 0 {
                unused_since = None;
                continue;
            }
            let since = *unused_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.inner.linger && self.leave_if_unused(&mut rx).await {
                return;
            }
        }
    }

    async fn handle(&mut self, message: GossipMessage) {
        let net = &self.inner.net;
        // Delivered already (a replay once gossipsub forgot it): no need to
        // look further, and it must not use up its author's rate.
        if lock(&self.recent).contains(&hex(&message.id.0)) {
            let _ = net
                .report_message(message.id, message.propagation_source, Verdict::Ignore)
                .await;
            return;
        }
        let verdict = match self.validator.check(&message, Instant::now()) {
            Check::Deliver(m) => {
                if lock(&self.recent).insert(&m.id) {
                    // No receivers is fine: the next check leaves the topic.
                    let _ = self.sender.send(m);
                    Verdict::Accept
                } else {
                    Verdict::Ignore
                }
            }
            Check::Throttle {
                author,
                excess,
                penalise,
            } => {
                if excess == 1 || penalise {
                    tracing::info!(topic = %self.topic, %author, excess, "throttling an author who floods the topic");
                } else {
                    tracing::trace!(topic = %self.topic, %author, "over the author's rate");
                }
                if penalise {
                    let reason = format!(
                        "flooding topic {:?} ({excess} messages over {RATE}/s)",
                        self.topic
                    );
                    let _ = net.penalise(author, &reason).await;
                }
                Verdict::Ignore
            }
            Check::Reject(reason) => {
                tracing::debug!(
                    topic = %self.topic,
                    peer = %message.propagation_source,
                    "rejecting app message: {reason}"
                );
                Verdict::Reject
            }
        };
        let _ = net
            .report_message(message.id, message.propagation_source, verdict)
            .await;
    }

    /// Leaves the topic if nobody listens any more (checked again under the
    /// table's lock, against a concurrent subscribe). Returns true if it left.
    async fn leave_if_unused(&self, rx: &mut mpsc::Receiver<GossipMessage>) -> bool {
        self.leave(rx, false).await
    }

    /// Leaves the topic, if nobody listens or when `anyway`. Returns true
    /// if it left.
    async fn leave(&self, rx: &mut mpsc::Receiver<GossipMessage>, anyway: bool) -> bool {
        let mut topics = self.inner.topics.lock().await;
        if !anyway && self.sender.receiver_count() > 0 {
            return false;
        }
        if topics.get(&self.topic).map(|t| t.generation) == Some(self.generation) {
            topics.remove(&self.topic);
        }
        // Messages still queued get a verdict: nobody here wants them.
        rx.close();
        while let Ok(m) = rx.try_recv() {
            let _ = self
                .inner
                .net
                .report_message(m.id, m.propagation_source, Verdict::Ignore)
                .await;
        }
        if let Err(e) = self.inner.net.unsubscribe(&wire_topic(&self.topic)).await {
            tracing::debug!(topic = %self.topic, "leaving: {e}");
        }
        tracing::debug!(topic = %self.topic, anyway, "left app topic");
        true
    }

    /// Removes this subscription from the table, so its sender is dropped
    /// with the task and local receivers see the end.
    async fn forget(&self) {
        let mut topics = self.inner.topics.lock().await;
        if topics.get(&self.topic).map(|t| t.generation) == Some(self.generation) {
            topics.remove(&self.topic);
        }
    }
}

#[cfg(test)]
mod tests;

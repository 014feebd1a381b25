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

/// A token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// Per-author token buckets for one topic, with the surplus counted.
/// Plain data: the caller passes the clock.
#[derive(Debug)]
pub(crate) struct Limiter {
    rate: f64,
    burst: f64,
    max_authors: usize,
    authors: HashMap<PeerId, (Bucket, u64)>,
}

/// What the limiter says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowance {
    Allowed,
    /// Over the rate; `excess` counts the author's surplus messages so far
    /// that were counted (see [`Limiter::check`]).
    Excess {
        excess: u64,
    },
}

impl Limiter {
    pub(crate) fn new(rate: f64, burst: f64, max_authors: usize) -> Self {
        Self {
            rate,
            burst,
            max_authors: max_authors.max(1),
            authors: HashMap::new(),
        }
    }

    /// Takes a token from `author`'s bucket. A message over the rate adds
    /// to the author's count of surplus messages only when `count`.
    pub(crate) fn check(&mut self, author: PeerId, now: Instant, count: bool) -> Allowance {
        if !self.authors.contains_key(&author) && self.authors.len() >= self.max_authors {
            // Forget authors whose bucket has refilled: they are as new.
            let (rate, burst) = (self.rate, self.burst);
            self.authors.retain(|_, (b, _)| {
                b.refill(rate, burst, now);
                b.tokens < burst
            });
            if self.authors.len() >= self.max_authors {
                // Full of active authors: nobody new gets in, uncounted.
                return Allowance::Excess { excess: 0 };
            }
        }
        let (bucket, excess) = self
            .authors
            .entry(author)
            .or_insert_with(|| (Bucket::full(self.burst, now), 0));
        bucket.refill(self.rate, self.burst, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Allowance::Allowed
        } else {
            *excess += u64::from(count);
            Allowance::Excess { excess: *excess }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.authors.len()
    }
}

/// Ids of the messages delivered lately, oldest first, at most `max`.
#[derive(Debug)]
pub(crate) struct RecentIds {
    max: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Whether `id` is there.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Records `id`; false if it was already there.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

/// Turns for our own publishing: a token bucket per topic, in which
/// tokens may go negative so that each waiting publisher holds its place.
/// Plain data: the caller passes the clock.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    topics: HashMap<String, Bucket>,
}

impl Pacer {
    /// Reserves a turn to publish on `topic`; returns how long to wait for
    /// it, or [`PubSubError::TooFast`] (reserving nothing) when that would
    /// be longer than [`MAX_PUBLISH_WAIT`].
    pub(crate) fn reserve(&mut self, topic: &str, now: Instant) -> Result<Duration, PubSubError> {
        if !self.topics.contains_key(topic) && self.topics.len() >= MAX_AUTHORS {
            self.topics.retain(|_, b| {
                b.refill(PUBLISH_RATE, PUBLISH_BURST, now);
                b.tokens < PUBLISH_BURST
            });
        }
        let bucket = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| Bucket::full(PUBLISH_BURST, now));
        bucket.refill(PUBLISH_RATE, PUBLISH_BURST, now);
        let wait = Duration::from_secs_f64(((1.0 - bucket.tokens) / PUBLISH_RATE).max(0.0));
        if wait > MAX_PUBLISH_WAIT {
            return Err(PubSubError::TooFast(topic.to_owned()));
        }
        bucket.tokens -= 1.0;
        Ok(wait)
    }
}

/// The decision on one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// Valid and within its author's rate: deliver it (once) and forward it.
    Deliver(Message),
    /// Over its author's rate: drop it without forwarding; when `penalise`,
    /// count one offence against the author.
    Throttle {
        author: PeerId,
        excess: u64,
        penalise: bool,
    },
    /// Invalid: reject it (the forwarding peer is penalised).
    Reject(String),
}

/// Validation of one topic's received messages. Plain data: the caller
/// passes the clock.
#[derive(Debug)]
pub(crate) struct Validator {
    topic: String,
    limiter: Limiter,
}

impl Validator {
    pub(crate) fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            limiter: Limiter::new(RATE, BURST, MAX_AUTHORS),
        }
    }

    /// Surplus messages count towards a penalty only when the author sent
    /// them to us itself: anyone can relay an author's old signed messages
    /// once gossipsub has forgotten them, and must not get it banned.
    pub(crate) fn check(&mut self, m: &GossipMessage, now: Instant) -> Check {
        let (id, data) = (&m.id, &m.data);
        let Some(author) = m.source else {
            return Check::Reject("unsigned message".into());
        };
        if data.len() > MAX_MESSAGE + ENVELOPE_OVERHEAD {
            return Check::Reject(format!("{} bytes on the wire", data.len()));
        }
        let Some(envelope) = Envelope::decode(data) else {
            return Check::Reject("undecodable envelope".into());
        };
        if envelope.data.len() > MAX_MESSAGE {
            return Check::Reject(format!("{} bytes of data", envelope.data.len()));
        }
        let direct = m.propagation_source == author;
        match self.limiter.check(author, now, direct) {
            Allowance::Allowed => Check::Deliver(Message {
                id: hex(&id.0),
                topic: self.topic.clone(),
                from: author.to_string(),
                timestamp_ms: envelope.timestamp_ms,
                data: envelope.data,
            }),
            Allowance::Excess { excess } => Check::Throttle {
                author,
                excess,
                penalise: excess > 0 && excess.is_multiple_of(PENALTY_EVERY),
            },
        }
    }
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
mod tests {
    use weft_net::MessageId;

    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId::new(&[n; 32])
    }

    /// A received message: `data` by `source`, forwarded by `via`.
    fn gossip(n: u8, data: &[u8], source: Option<PeerId>, via: PeerId) -> GossipMessage {
        GossipMessage {
            id: id(n),
            topic: wire_topic("chat"),
            data: data.to_vec(),
            source,
            propagation_source: via,
        }
    }

    fn envelope(data: &[u8]) -> Vec<u8> {
        Envelope {
            timestamp_ms: 1_700_000_000_000,
            data: data.to_vec(),
        }
        .encode()
    }

    #[test]
    fn topic_names_are_checked() {
        for good in [
            "chat",
            "a",
            "chat.lobby",
            "my_app-v2.events",
            &"x".repeat(64),
            "ABC.123",
        ] {
            assert_eq!(check_topic(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "a/b",
            "with space",
            "émoji",
            "tab\t",
            "app/x",
            "a:b",
            &"x".repeat(65),
        ] {
            let err = check_topic(bad).unwrap_err();
            assert!(matches!(err, PubSubError::BadTopic(_)), "{bad:?}");
            assert!(err.to_string().contains("1 to 64 characters"), "{err}");
        }
        // Long names are cut in the message.
        let err = check_topic(&"y".repeat(500)).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn wire_topics_map_back_to_app_topics() {
        assert_eq!(wire_topic("chat"), "app/chat");
        assert_eq!(app_topic("app/chat"), Some("chat"));
        assert_eq!(app_topic("blocks"), None);
        assert_eq!(app_topic("app/"), None);
        assert_eq!(app_topic("app/a/b"), None);
    }

    #[test]
    fn message_ids_match_the_network_layer() {
        let bytes = envelope(b"hello");
        let mut expected = b"/weft/net1/app/chat".to_vec();
        expected.push(0);
        expected.extend_from_slice(&bytes);
        assert_eq!(
            message_id("net1", "chat", &bytes),
            blake3::hash(&expected).to_hex().to_string()
        );
        assert_ne!(
            message_id("net1", "chat", &bytes),
            message_id("net2", "chat", &bytes)
        );
    }

    #[test]
    fn envelopes_round_trip() {
        let e = Envelope {
            timestamp_ms: 42,
            data: vec![1, 2, 3],
        };
        assert_eq!(Envelope::decode(&e.encode()), Some(e.clone()));
        let mut trailing = e.encode();
        trailing.push(0);
        assert_eq!(Envelope::decode(&trailing), None);
        assert_eq!(Envelope::decode(&[1, 2, 3]), None);
        // A length prefix that lies does not allocate it.
        let mut lying = 7u64.to_le_bytes().to_vec();
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Envelope::decode(&lying), None);
    }

    #[test]
    fn the_limiter_allows_a_burst_then_the_rate() {
        let mut l = Limiter::new(RATE, BURST, 16);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(l.check(a, t0, true), Allowance::Allowed, "message {i}");
        }
        assert_eq!(l.check(a, t0, true), Allowance::Excess { excess: 1 });
        assert_eq!(l.check(a, t0, true), Allowance::Excess { excess: 2 });
        // Another author has its own bucket.
        assert_eq!(l.check(b, t0, true), Allowance::Allowed);
        // A second refills 20 tokens.
        let t1 = t0 + Duration::from_secs(1);
        for i in 0..20 {
            assert_eq!(l.check(a, t1, true), Allowance::Allowed, "refilled {i}");
        }
        assert_eq!(l.check(a, t1, true), Allowance::Excess { excess: 3 });
        // The bucket never holds more than the burst.
        let later = t1 + Duration::from_secs(3600);
        for _ in 0..100 {
            assert_eq!(l.check(a, later, true), Allowance::Allowed);
        }
        assert!(matches!(l.check(a, later, true), Allowance::Excess { .. }));
    }

    #[test]
    fn the_limiter_is_bounded() {
        let mut l = Limiter::new(RATE, BURST, 4);
        let t0 = Instant::now();
        let busy: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for p in &busy {
            assert_eq!(l.check(*p, t0, true), Allowance::Allowed);
        }
        // Full of active authors: a newcomer is not tracked.
        let newcomer = PeerId::random();
        assert_eq!(l.check(newcomer, t0, true), Allowance::Excess { excess: 0 });
        assert_eq!(l.tracked(), 4);
        // Once the others' buckets have refilled, they are forgotten.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(l.check(newcomer, later, true), Allowance::Allowed);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn a_flooder_is_throttled_and_penalised_every_hundred() {
        let mut v = Validator::new("chat");
        let author = PeerId::random();
        let t0 = Instant::now();
        let data = envelope(b"spam");
        let mut delivered = 0;
        let mut penalties = 0;
        for _ in 0..1000 {
            match v.check(&gossip(1, &data, Some(author), author), t0) {
                Check::Deliver(_) => delivered += 1,
                Check::Throttle { penalise, .. } => penalties += usize::from(penalise),
                Check::Reject(r) => panic!("rejected: {r}"),
            }
        }
        assert_eq!(delivered, 100);
        assert_eq!(penalties, 9, "900 surplus messages, one offence per 100");
    }

    #[test]
    fn surplus_relayed_by_others_is_dropped_but_not_held_against_the_author() {
        let mut v = Validator::new("chat");
        let (author, relay) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let data = envelope(b"old news");
        let mut delivered = 0;
        for _ in 0..1000 {
            match v.check(&gossip(1, &data, Some(author), relay), t0) {
                Check::Deliver(_) => delivered += 1,
                Check::Throttle {
                    penalise, excess, ..
                } => assert!(!penalise && excess == 0),
                Check::Reject(r) => panic!("rejected: {r}"),
            }
        }
        assert_eq!(delivered, 100, "the author's rate applies whoever relays");
    }

    #[test]
    fn invalid_messages_are_rejected() {
        let mut v = Validator::new("chat");
        let now = Instant::now();
        let peer = PeerId::random();
        let author = Some(peer);
        assert!(matches!(
            v.check(&gossip(1, &envelope(b"x"), None, peer), now),
            Check::Reject(_)
        ));
        assert!(matches!(
            v.check(&gossip(1, b"garbage", author, peer), now),
            Check::Reject(_)
        ));
        let big = envelope(&vec![0; MAX_MESSAGE + 1]);
        assert!(matches!(
            v.check(&gossip(1, &big, author, peer), now),
            Check::Reject(_)
        ));
        let max = envelope(&vec![7; MAX_MESSAGE]);
        match v.check(&gossip(2, &max, author, peer), now) {
            Check::Deliver(m) => {
                assert_eq!(m.data.len(), MAX_MESSAGE);
                assert_eq!(m.id, hex(&[2; 32]));
                assert_eq!(m.topic, "chat");
                assert_eq!(m.from, peer.to_string());
                assert_eq!(m.timestamp_ms, 1_700_000_000_000);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn our_own_publishing_is_paced_below_what_peers_accept() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        for i in 0..80 {
            assert_eq!(p.reserve("chat", t0), Ok(Duration::ZERO), "message {i}");
        }
        // Then one turn every 1/16 s, each caller further back in line.
        let first = p.reserve("chat", t0).unwrap();
        let second = p.reserve("chat", t0).unwrap();
        assert_eq!(first, Duration::from_secs_f64(1.0 / PUBLISH_RATE));
        assert_eq!(second, Duration::from_secs_f64(2.0 / PUBLISH_RATE));
        // Another topic has its own turns.
        assert_eq!(p.reserve("other", t0), Ok(Duration::ZERO));
        // A queue longer than ten seconds is refused, and reserves nothing.
        let mut last = second;
        while let Ok(w) = p.reserve("chat", t0) {
            last = w;
        }
        assert!(last <= MAX_PUBLISH_WAIT && last > MAX_PUBLISH_WAIT - Duration::from_millis(100));
        assert!(matches!(
            p.reserve("chat", t0),
            Err(PubSubError::TooFast(_))
        ));
        // Whatever the schedule, peers (RATE, BURST) never see a surplus:
        // simulate their bucket over our reserved send times.
        let mut p = Pacer::default();
        let mut peer = Limiter::new(RATE, BURST, 4);
        let me = PeerId::random();
        let mut t = t0;
        for _ in 0..2000 {
            match p.reserve("chat", t) {
                Ok(w) => assert_eq!(peer.check(me, t + w, true), Allowance::Allowed),
                Err(_) => t += Duration::from_millis(500),
            }
        }
    }

    #[test]
    fn recent_ids_deliver_once_and_stay_bounded() {
        let mut r = RecentIds::new(3);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c"));
        assert!(r.insert("d"));
        assert_eq!(r.order.len(), 3);
        assert!(r.insert("a"), "the oldest was forgotten");
        assert!(!r.insert("d"));
    }
}

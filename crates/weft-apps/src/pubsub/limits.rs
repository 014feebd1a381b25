//! The sans-IO parts of pub/sub: token buckets per author, the set of
//! recently delivered ids, the pacing of our own publishing, and the
//! validation of one received message. The caller passes the clock.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    pub(super) fn tracked(&self) -> usize {
        self.authors.len()
    }
}

/// Ids of the messages delivered lately, oldest first, at most `max`.
#[derive(Debug)]
pub(crate) struct RecentIds {
    max: usize,
    pub(super) order: VecDeque<String>,
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

//! Offence counting: which peers misbehaved recently, and when one has done
//! so often enough to be banned.
//!
//! Plain data with no I/O: the caller passes the clock in. The actor owns the
//! one [`Penalties`] book; it records offences from
//! [`NetworkHandle::penalise`](crate::NetworkHandle::penalise) and from
//! rejected gossip, and bans a peer (see `actor`) when [`Penalties::offend`]
//! says so. The book is bounded: at most [`MAX_PENALISED`] peers, each with
//! at most `max` offences remembered, and offences older than the window are
//! forgotten.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use libp2p::PeerId;

/// Offences older than this no longer count.
pub(crate) const PENALTY_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Most peers with offences remembered at once.
pub(crate) const MAX_PENALISED: usize = 1024;

/// What recording an offence led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer now has this many offences in the window, under the limit.
    Counted(u32),
    /// The peer reached the limit; its offences were cleared, ban it.
    Ban,
}

pub(crate) struct Penalties {
    /// Offences within the window, oldest first.
    offences: HashMap<PeerId, VecDeque<Instant>>,
    /// Offences that get a peer banned.
    max: u32,
    window: Duration,
}

impl Penalties {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            offences: HashMap::new(),
            max: max.max(1),
            window,
        }
    }

    /// Records one offence by `peer` at `now`.
    pub(crate) fn offend(&mut self, peer: PeerId, now: Instant) -> Outcome {
        if !self.offences.contains_key(&peer) && self.offences.len() >= MAX_PENALISED {
            self.prune(now);
            if self.offences.len() >= MAX_PENALISED {
                // Forget the peer whose latest offence is the oldest.
                let quietest = self
                    .offences
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(p, _)| *p);
                if let Some(p) = quietest {
                    self.offences.remove(&p);
                }
            }
        }
        let window = self.window;
        let times = self.offences.entry(peer).or_default();
        times.retain(|t| now.saturating_duration_since(*t) < window);
        times.push_back(now);
        let count = u32::try_from(times.len()).unwrap_or(u32::MAX);
        if count >= self.max {
            self.offences.remove(&peer);
            Outcome::Ban
        } else {
            Outcome::Counted(count)
        }
    }

    /// Offences by `peer` within the window before `now`.
    pub(crate) fn count(&self, peer: &PeerId, now: Instant) -> u32 {
        self.offences.get(peer).map_or(0, |times| {
            let n = times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.window)
                .count();
            u32::try_from(n).unwrap_or(u32::MAX)
        })
    }

    /// Forgets offences older than the window.
    pub(crate) fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.offences.retain(|_, times| {
            times.retain(|t| now.saturating_duration_since(*t) < window);
            !times.is_empty()
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.offences.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_on_the_max_th_offence_then_starts_over() {
        let mut book = Penalties::new(3, PENALTY_WINDOW);
        let peer = PeerId::random();
        let t = Instant::now();
        assert_eq!(book.offend(peer, t), Outcome::Counted(1));
        assert_eq!(book.offend(peer, t), Outcome::Counted(2));
        assert_eq!(book.count(&peer, t), 2);
        assert_eq!(book.offend(peer, t), Outcome::Ban);
        assert_eq!(book.count(&peer, t), 0);
        assert_eq!(book.offend(peer, t), Outcome::Counted(1));
    }

    #[test]
    fn old_offences_do_not_count() {
        let mut book = Penalties::new(3, Duration::from_secs(60));
        let peer = PeerId::random();
        let t = Instant::now();
        book.offend(peer, t);
        book.offend(peer, t);
        let later = t + Duration::from_secs(61);
        assert_eq!(book.count(&peer, later), 0);
        assert_eq!(book.offend(peer, later), Outcome::Counted(1));
        book.prune(later + Duration::from_secs(61));
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = Penalties::new(5, PENALTY_WINDOW);
        let t = Instant::now();
        let first = PeerId::random();
        book.offend(first, t);
        for i in 0..MAX_PENALISED {
            book.offend(PeerId::random(), t + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(book.len(), MAX_PENALISED);
        assert_eq!(book.count(&first, t), 0, "the quietest peer is forgotten");
    }

    #[test]
    fn zero_max_still_needs_one_offence() {
        let mut book = Penalties::new(0, PENALTY_WINDOW);
        assert_eq!(book.offend(PeerId::random(), Instant::now()), Outcome::Ban);
    }
}

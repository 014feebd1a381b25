//! Refused peers: those on another network, and those banned for
//! misbehaviour. Both live in the actor's `rejected` map (bounded, entries
//! expire after [`REJECT_FOR`]); this module adds the methods that keep it.
//!
//! A peer on another network keeps its connection for a moment so identify
//! can tell both sides why they part, and an explicit dial gives it another
//! chance. A banned peer is refused outright: the swarm's block list closes
//! its connections and denies every new one, inbound or outbound, until the
//! ban expires; an explicit dial fails. Offences are counted in
//! [`Penalties`](crate::penalties::Penalties); the one that reaches
//! `Config::max_penalties` leads to [`EventLoop::ban`].

use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::EventLoop;
use crate::{handle::Command, penalties::Outcome};

/// Most peers remembered as refused.
const MAX_REJECTED: usize = 1024;
/// How long a refused peer stays refused.
pub(super) const REJECT_FOR: Duration = Duration::from_secs(10 * 60);
/// A peer on another network keeps its connection this long, so both sides
/// finish identify and learn why they are parting.
const REJECT_GRACE: Duration = Duration::from_millis(500);

/// Why and since when a peer is refused.
pub(super) struct Rejected {
    since: Instant,
    /// Banned for misbehaviour, rather than merely on another network.
    banned: bool,
}

impl EventLoop {
    pub(super) fn is_banned(&self, peer: &PeerId) -> bool {
        self.rejected.get(peer).is_some_and(|r| r.banned)
    }

    /// How long a ban on `peer` has left, if it is banned.
    pub(super) fn ban_left(&self, peer: &PeerId) -> Option<Duration> {
        self.rejected
            .get(peer)
            .filter(|r| r.banned)
            .map(|r| REJECT_FOR.saturating_sub(r.since.elapsed()))
    }

    /// Records one offence by `peer`, banning it on the last one allowed.
    pub(super) fn penalise(&mut self, peer: PeerId, reason: &str) {
        if peer == *self.swarm.local_peer_id() {
            tracing::warn!(%reason, "ignoring a penalty against this node itself");
            return;
        }
        match self.penalties.offend(peer, Instant::now()) {
            Outcome::Counted(n) => {
                tracing::info!(%peer, %reason, offences = n, "peer penalised");
            }
            Outcome::Ban => self.ban(peer, reason),
        }
    }

    /// Disconnects `peer` and refuses it, both ways, for [`REJECT_FOR`].
    pub(super) fn ban(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(
            %peer,
            %reason,
            offences = self.config.max_penalties,
            "banning peer for {} minutes",
            REJECT_FOR.as_secs() / 60
        );
        self.remember(peer, true);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.kad.remove_peer(&peer);
        // Closes its connections and denies new ones.
        behaviour.blocked.block_peer(peer);
    }

    /// Refuses a peer from another network: removed from the DHT now,
    /// disconnected after a short grace.
    pub(super) fn reject(&mut self, peer: PeerId) {
        self.remember(peer, false);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        let Some(weak) = self.weak_commands.clone() else {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(REJECT_GRACE).await;
            if let Some(commands) = weak.upgrade() {
                let (reply, _) = tokio::sync::oneshot::channel();
                let _ = commands.send(Command::Disconnect { peer, reply }).await;
            }
        });
    }

    /// A peer dialed on purpose gets another chance, unless it is banned.
    pub(super) fn forgive(&mut self, peer: &PeerId) {
        if !self.is_banned(peer) {
            self.rejected.remove(peer);
        }
    }

    /// Forgets refusals older than [`REJECT_FOR`] and old offences.
    pub(super) fn expire_rejections(&mut self) {
        let expired: Vec<PeerId> = self
            .rejected
            .iter()
            .filter(|(_, r)| r.since.elapsed() >= REJECT_FOR)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.forget(&peer);
        }
        self.penalties.prune(Instant::now());
    }

    fn remember(&mut self, peer: PeerId, banned: bool) {
        if !self.rejected.contains_key(&peer) && self.rejected.len() >= MAX_REJECTED {
            let oldest = self
                .rejected
                .iter()
                .min_by_key(|(_, r)| r.since)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.forget(&oldest);
            }
        }
        let banned = banned || self.is_banned(&peer);
        self.rejected.insert(
            peer,
            Rejected {
                since: Instant::now(),
                banned,
            },
        );
    }

    fn forget(&mut self, peer: &PeerId) {
        if let Some(r) = self.rejected.remove(peer) {
            if r.banned {
                self.swarm.behaviour_mut().blocked.unblock_peer(*peer);
                tracing::info!(%peer, "ban lifted");
            }
        }
    }
}

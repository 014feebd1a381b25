//! The fetch scheduler: which chunk ranges to ask which provider for. Plain,
//! deterministic state (sans-IO): the driver tells it about peers,
//! completions and failures, with the current time, and asks it for the
//! next request for an idle peer.
//!
//! - The blob is split into pieces of [`PIECE_CHUNKS`] chunks (1 MiB).
//! - Rarest first: a peer gets the missing pieces that the fewest known
//!   holders have, so a seeder hands out what only it has and downloaders
//!   feed each other the rest.
//! - Adaptive: a peer's request size follows its measured rate (about half
//!   a second of its bandwidth, 1 to [`MAX_PIECES_PER_REQUEST`] pieces), and
//!   each peer has at most [`MAX_IN_FLIGHT`] requests in flight.
//! - Endgame: when nothing is missing but pieces are still in flight, an
//!   idle peer duplicates the oldest piece that only one peer is working on.
//! - A peer that sends bad data is banned for this blob; one that fails
//!   three times is dropped; a busy one rests for a moment.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use weft_net::PeerId;

use crate::store::BLOCK_SIZE;

/// Chunks per piece: 1024 chunks of 1 KiB = 1 MiB (64 chunk groups of 16 KiB).
pub const PIECE_CHUNKS: u64 = 1024;
pub const MAX_PIECES_PER_REQUEST: usize = 8;
pub const MAX_IN_FLIGHT: u32 = 2;
/// Network failures (not bad data) before a peer is given up on. Streams
/// can be dropped by a busy peer, so this is lenient.
const MAX_FAILURES: u32 = 8;
const BUSY_BACKOFF: Duration = Duration::from_millis(300);
const TARGET_REQUEST_TIME: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Missing,
    InFlight { peers: Vec<PeerId>, since: Instant },
    Done,
}

#[derive(Debug, Clone)]
struct PeerStat {
    /// Chunk ranges the peer is known to have (`None`: assume everything).
    have: Option<ChunkRanges>,
    in_flight: u32,
    /// Bytes per second, smoothed.
    rate: Option<f64>,
    failures: u32,
    banned: bool,
    resting_until: Option<Instant>,
    bytes: u64,
}

/// One request handed to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: u64,
    pub peer: PeerId,
    pub ranges: ChunkRanges,
    pieces: Vec<usize>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Data failed verification: ban the peer.
    BadData,
    /// The peer does not have the blob.
    NotFound,
    Busy,
    /// Network trouble.
    Stream,
}

pub struct Scheduler {
    size: u64,
    chunks: u64,
    pieces: Vec<Piece>,
    peers: HashMap<PeerId, PeerStat>,
    assignments: HashMap<u64, Assignment>,
    next_id: u64,
    /// Where this fetch starts among equally rare pieces.
    start: usize,
}

impl Scheduler {
    /// A scheduler for a blob of `size` bytes of which `done` is verified.
    pub fn new(size: u64, done: &ChunkRanges, seed: u64) -> Self {
        let chunks = BaoTree::new(size, BLOCK_SIZE).chunks().0;
        let count = chunks.div_ceil(PIECE_CHUNKS).max(1) as usize;
        let mut s = Self {
            size,
            chunks,
            pieces: vec![Piece::Missing; count],
            peers: HashMap::new(),
            assignments: HashMap::new(),
            next_id: 0,
            start: (seed % count as u64) as usize,
        };
        for i in 0..count {
            if s.piece_ranges(i).is_subset(done) {
                s.pieces[i] = Piece::Done;
            }
        }
        s
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn piece_ranges(&self, i: usize) -> ChunkRanges {
        let start = i as u64 * PIECE_CHUNKS;
        let end = (start + PIECE_CHUNKS).min(self.chunks.max(1));
        ChunkRanges::from(ChunkNum(start)..ChunkNum(end))
    }

    fn piece_bytes(&self, i: usize) -> u64 {
        let start = i as u64 * PIECE_CHUNKS * 1024;
        let end = (start + PIECE_CHUNKS * 1024).min(self.size);
        end.saturating_sub(start)
    }

    /// Adds a provider. `have`: what it is known to have (`None` = all).
    pub fn add_peer(&mut self, peer: PeerId, have: Option<ChunkRanges>) {
        let stat = self.peers.entry(peer).or_insert(PeerStat {
            have: have.clone(),
            in_flight: 0,
            rate: None,
            failures: 0,
            banned: false,
            resting_until: None,
            bytes: 0,
        });
        if have.is_none() || stat.have.is_some() {
            stat.have = have;
        }
    }

    /// Counts bytes a peer delivered outside the scheduler (the first,
    /// size-proving request).
    pub fn credit(&mut self, peer: PeerId, bytes: u64) {
        if let Some(s) = self.peers.get_mut(&peer) {
            s.bytes += bytes;
        }
    }

    pub fn knows(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Updates what a peer has (from a `have` answer).
    pub fn update_have(&mut self, peer: PeerId, have: ChunkRanges) {
        if let Some(stat) = self.peers.get_mut(&peer) {
            stat.have = Some(have);
        }
    }

    pub fn is_done(&self) -> bool {
        self.pieces.iter().all(|p| *p == Piece::Done)
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.banned)
    }

    /// Peers that are neither banned nor dropped.
    pub fn usable_peers(&self) -> usize {
        self.peers.values().filter(|p| !p.banned).count()
    }

    /// Bytes each peer delivered.
    pub fn per_peer_bytes(&self) -> Vec<(PeerId, u64)> {
        let mut v: Vec<_> = self.peers.iter().map(|(p, s)| (*p, s.bytes)).collect();
        v.sort_by_key(|(p, _)| p.to_bytes());
        v
    }

    pub fn bytes_done(&self) -> u64 {
        (0..self.pieces.len())
            .filter(|&i| self.pieces[i] == Piece::Done)
            .map(|i| self.piece_bytes(i))
            .sum()
    }

    pub fn in_flight(&self) -> usize {
        self.assignments.len()
    }

    /// A per-fetch pseudo-random order of pieces (a bijection on indices
    /// seeded by `start`), used to break ties between equally rare pieces.
    fn scatter(&self, i: usize) -> usize {
        let x = (i as u64)
            .wrapping_add(self.start as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x ^ (x >> 29)) as usize
    }

    fn peer_has(&self, stat: &PeerStat, i: usize) -> bool {
        match &stat.have {
            None => true,
            Some(have) => self.piece_ranges(i).is_subset(have),
        }
    }

    fn availability(&self, i: usize) -> usize {
        self.peers
            .values()
            .filter(|s| !s.banned && self.peer_has(s, i))
            .count()
    }

    /// Peers that could take another request now.
    pub fn idle_peers(&self, now: Instant) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.banned && s.in_flight < MAX_IN_FLIGHT && s.resting_until.is_none_or(|t| t <= now)
            })
            .map(|(p, _)| *p)
            .collect();
        v.sort_by_key(|p| p.to_bytes());
        v
    }

    /// The next request for `peer`, if there is anything it can help with.
    pub fn next_request(&mut self, peer: PeerId, now: Instant) -> Option<Assignment> {
        let stat = self.peers.get(&peer)?.clone();
        if stat.banned
            || stat.in_flight >= MAX_IN_FLIGHT
            || stat.resting_until.is_some_and(|t| t > now)
        {
            return None;
        }
        let want = match stat.rate {
            Some(rate) => {
                ((rate * TARGET_REQUEST_TIME) / (PIECE_CHUNKS as f64 * 1024.0)).ceil() as usize
            }
            None => 1,
        }
        .clamp(1, MAX_PIECES_PER_REQUEST);
        // In a swarm, take small bites from full seeds so their upload is
        // spread over pieces the downloaders can then trade.
        let others = self
            .peers
            .iter()
            .filter(|(p, s)| **p != peer && !s.banned)
            .count();
        let want = if stat.have.is_none() && others >= 2 {
            1
        } else {
            want
        };

        // Rarest missing pieces this peer has. Ties are broken in a
        // per-fetch pseudo-random order, so downloaders of the same blob ask
        // for different pieces and have something to trade.
        let n = self.pieces.len();
        let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
        for i in 0..n {
            if self.pieces[i] == Piece::Missing && self.peer_has(&stat, i) {
                let order = self.scatter(i);
                candidates.push((self.availability(i), order, i));
            }
        }
        let mut chosen: Vec<usize> = Vec::new();
        if !candidates.is_empty() {
            candidates.sort_unstable();
            let first = candidates[0].2;
            chosen.push(first);
            // Extend with consecutive missing pieces, so one request reads
            // one contiguous range.
            let mut next = first + 1;
            while chosen.len() < want
                && next < self.pieces.len()
                && self.pieces[next] == Piece::Missing
                && self.peer_has(&stat, next)
            {
                chosen.push(next);
                next += 1;
            }
        } else {
            // Nothing missing that this peer has: help with the oldest piece
            // only one other peer is working on. Near the end this is the
            // endgame; in a swarm it also lets a peer take over work from a
            // slower one.
            let mut best: Option<(Instant, usize)> = None;
            for i in 0..self.pieces.len() {
                if let Piece::InFlight { peers, since } = &self.pieces[i] {
                    if peers.len() == 1
                        && !peers.contains(&peer)
                        && self.peer_has(&stat, i)
                        && best.is_none_or(|(t, _)| *since < t)
                    {
                        best = Some((*since, i));
                    }
                }
            }
            chosen.push(best?.1);
        }

        let mut ranges = ChunkRanges::empty();
        for &i in &chosen {
            ranges |= self.piece_ranges(i);
            match &mut self.pieces[i] {
                Piece::InFlight { peers, .. } => peers.push(peer),
                p => {
                    *p = Piece::InFlight {
                        peers: vec![peer],
                        since: now,
                    }
                }
            }
        }
        if let Some(s) = self.peers.get_mut(&peer) {
            s.in_flight += 1;
        }
        self.next_id += 1;
        let a = Assignment {
            id: self.next_id,
            peer,
            ranges,
            pieces: chosen,
        };
        self.assignments.insert(a.id, a.clone());
        Some(a)
    }

    fn release(&mut self, a: &Assignment) {
        if let Some(s) = self.peers.get_mut(&a.peer) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        for &i in &a.pieces {
            if let Piece::InFlight { peers, .. } = &mut self.pieces[i] {
                peers.retain(|p| *p != a.peer);
                if peers.is_empty() {
                    self.pieces[i] = Piece::Missing;
                }
            }
        }
    }

    /// A request finished; `received` is what verified (possibly less than
    /// asked, if the peer has only part). `elapsed` measures the peer.
    pub fn complete(&mut self, id: u64, received: &ChunkRanges, bytes: u64, elapsed: Duration) {
        let Some(a) = self.assignments.remove(&id) else {
            return;
        };
        for &i in &a.pieces {
            if self.piece_ranges(i).is_subset(received) {
                self.pieces[i] = Piece::Done;
            }
        }
        self.release(&a);
        if let Some(s) = self.peers.get_mut(&a.peer) {
            s.failures = 0;
            s.bytes += bytes;
            let secs = elapsed.as_secs_f64().max(1e-3);
            if bytes > 0 {
                let sample = bytes as f64 / secs;
                s.rate = Some(match s.rate {
                    Some(r) => 0.7 * r + 0.3 * sample,
                    None => sample,
                });
            }
            // It did not have everything we asked for: narrow what we think it has.
            if received != &a.ranges {
                let have = s.have.clone().unwrap_or_else(ChunkRanges::all);
                let lacking = a.ranges.clone() - received.clone();
                s.have = Some(have - lacking);
            }
        }
    }

    pub fn failed(&mut self, id: u64, failure: Failure, now: Instant) {
        let Some(a) = self.assignments.remove(&id) else {
            return;
        };
        self.release(&a);
        let Some(s) = self.peers.get_mut(&a.peer) else {
            return;
        };
        match failure {
            Failure::BadData => s.banned = true,
            Failure::NotFound => s.have = Some(ChunkRanges::empty()),
            Failure::Busy => s.resting_until = Some(now + BUSY_BACKOFF),
            Failure::Stream => {
                s.failures += 1;
                s.resting_until = Some(now + BUSY_BACKOFF * s.failures);
                if s.failures >= MAX_FAILURES {
                    s.banned = true;
                }
            }
        }
    }

    /// The chunk ranges still missing.
    pub fn missing(&self) -> ChunkRanges {
        let mut r = ChunkRanges::empty();
        for i in 0..self.pieces.len() {
            if self.pieces[i] != Piece::Done {
                r |= self.piece_ranges(i);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn run_to_end(s: &mut Scheduler, peers: &[PeerId], t: Instant) -> usize {
        let mut rounds = 0;
        while !s.is_done() && rounds < 10_000 {
            rounds += 1;
            let mut progressed = false;
            for &p in peers {
                if let Some(a) = s.next_request(p, t) {
                    let r = a.ranges.clone();
                    s.complete(a.id, &r, MIB, Duration::from_millis(10));
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        rounds
    }

    #[test]
    fn completes_with_one_peer() {
        let mut s = Scheduler::new(10 * MIB + 5, &ChunkRanges::empty(), 1);
        let p = PeerId::random();
        s.add_peer(p, None);
        run_to_end(&mut s, &[p], Instant::now());
        assert!(s.is_done());
        assert_eq!(s.missing(), ChunkRanges::empty());
    }

    #[test]
    fn resumes_from_done_ranges() {
        let done = ChunkRanges::from(ChunkNum(0)..ChunkNum(5 * PIECE_CHUNKS));
        let s = Scheduler::new(10 * MIB, &done, 1);
        assert_eq!(s.bytes_done(), 5 * MIB);
        assert_eq!(
            s.missing(),
            ChunkRanges::from(ChunkNum(5 * PIECE_CHUNKS)..ChunkNum(10 * PIECE_CHUNKS))
        );
    }

    #[test]
    fn bad_peer_is_banned_and_its_pieces_go_back() {
        let t = Instant::now();
        let mut s = Scheduler::new(4 * MIB, &ChunkRanges::empty(), 7);
        let (bad, good) = (PeerId::random(), PeerId::random());
        s.add_peer(bad, None);
        s.add_peer(good, None);
        let a = s.next_request(bad, t).unwrap();
        s.failed(a.id, Failure::BadData, t);
        assert!(s.is_banned(&bad));
        assert!(s.next_request(bad, t).is_none());
        run_to_end(&mut s, &[bad, good], t);
        assert!(s.is_done());
        assert_eq!(
            s.per_peer_bytes()
                .iter()
                .find(|(p, _)| *p == bad)
                .unwrap()
                .1,
            0
        );
    }

    #[test]
    fn rarest_first_sends_the_seeder_what_only_it_has() {
        let t = Instant::now();
        let mut s = Scheduler::new(8 * MIB, &ChunkRanges::empty(), 3);
        let (seeder, partial) = (PeerId::random(), PeerId::random());
        s.add_peer(seeder, None);
        // The partial peer has the first half.
        s.add_peer(
            partial,
            Some(ChunkRanges::from(ChunkNum(0)..ChunkNum(4 * PIECE_CHUNKS))),
        );
        let a = s.next_request(seeder, t).unwrap();
        assert!(
            a.pieces.iter().all(|&i| i >= 4),
            "seeder got a piece others have: {:?}",
            a.pieces
        );
    }

    #[test]
    fn endgame_duplicates_a_lone_piece() {
        let t = Instant::now();
        let mut s = Scheduler::new(MIB, &ChunkRanges::empty(), 3);
        let (slow, fast) = (PeerId::random(), PeerId::random());
        s.add_peer(slow, None);
        s.add_peer(fast, None);
        let a = s.next_request(slow, t).unwrap();
        let b = s
            .next_request(fast, t + Duration::from_secs(1))
            .expect("endgame request");
        assert_eq!(a.ranges, b.ranges);
        s.complete(b.id, &b.ranges, MIB, Duration::from_millis(5));
        assert!(s.is_done());
        s.failed(a.id, Failure::Stream, t);
        assert!(s.is_done());
    }

    #[test]
    fn fast_peers_get_larger_requests() {
        let t = Instant::now();
        let mut s = Scheduler::new(64 * MIB, &ChunkRanges::empty(), 9);
        let p = PeerId::random();
        s.add_peer(p, None);
        let a = s.next_request(p, t).unwrap();
        assert_eq!(a.pieces.len(), 1);
        let r = a.ranges.clone();
        s.complete(a.id, &r, MIB, Duration::from_millis(10)); // 100 MiB/s
        let b = s.next_request(p, t).unwrap();
        assert!(b.pieces.len() > 1, "{}", b.pieces.len());
    }

    #[test]
    fn partial_answers_narrow_what_a_peer_has() {
        let t = Instant::now();
        let mut s = Scheduler::new(2 * MIB, &ChunkRanges::empty(), 5);
        let p = PeerId::random();
        s.add_peer(p, None);
        let a = s.next_request(p, t).unwrap();
        s.complete(a.id, &ChunkRanges::empty(), 0, Duration::from_millis(1));
        // Asked again, it gets the other piece, not the same one.
        let b = s.next_request(p, t).unwrap();
        assert_ne!(a.pieces, b.pieces);
    }
}

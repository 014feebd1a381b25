//! Proof of work: difficulty, targets and retargeting.
//!
//! A block's difficulty is the expected number of header hashes needed to
//! find it; its target is `floor((2^256 - 1) / difficulty)` and the header
//! hash, read as a big-endian number, must not exceed it. Cumulative work is
//! the sum of difficulties, so fork choice compares plain integers.
//!
//! Retargeting is an exponential moving average per block: each block moves
//! the difficulty a sixteenth of the way toward what its solve time implies,
//! with the solve time clamped to [interval/8, 8·interval] so one block can
//! change the difficulty by at most −5.5 % to +44 %.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::block::Header;

/// The lowest difficulty (any hash wins).
pub const MIN_DIFFICULTY: u64 = 1;

/// `floor((2^256 - 1) / difficulty)` as big-endian bytes.
pub fn target_for(difficulty: u64) -> [u8; 32] {
    let d = u128::from(difficulty.max(MIN_DIFFICULTY));
    let mut out = [0u8; 32];
    let mut rem: u128 = 0;
    for i in 0..4 {
        let cur = (rem << 64) | u128::from(u64::MAX);
        let q = cur / d;
        rem = cur % d;
        out[i * 8..i * 8 + 8].copy_from_slice(&(q as u64).to_be_bytes());
    }
    out
}

/// Whether `hash` is at or below `target` (both big-endian).
pub fn meets(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    hash <= target
}

/// The difficulty of the block after one with `difficulty` that took
/// `solve_ms` after its parent, toward one block per `interval_ms`.
pub fn next_difficulty(difficulty: u64, solve_ms: u64, interval_ms: u64) -> u64 {
    let interval = u128::from(interval_ms.max(1));
    let solve = u128::from(solve_ms).clamp((interval / 8).max(1), interval * 8);
    let d = u128::from(difficulty);
    // d * (15 + interval/solve) / 16
    let next = (d * (15 * solve + interval)) / (16 * solve);
    next.clamp(u128::from(MIN_DIFFICULTY), u128::from(u64::MAX)) as u64
}

/// Tries nonces `start, start + step, …` on `header` until one meets its
/// target or `generation` differs from `current` (new work arrived). Checks
/// the generation every 1024 hashes. Returns the winning nonce.
pub fn search(
    header: &mut Header,
    start: u64,
    step: u64,
    generation: &AtomicU64,
    current: u64,
) -> Option<u64> {
    let target = header.target;
    let mut nonce = start;
    loop {
        for _ in 0..1024 {
            header.nonce = nonce;
            if meets(&header.hash().0, &target) {
                return Some(nonce);
            }
            nonce = nonce.wrapping_add(step.max(1));
        }
        if generation.load(Ordering::Relaxed) != current {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_shrink_with_difficulty() {
        assert_eq!(target_for(1), [0xff; 32]);
        let t2 = target_for(2);
        assert_eq!(t2[0], 0x7f);
        assert!(target_for(1000) < target_for(999));
        assert!(meets(&[0; 32], &target_for(u64::MAX)));
        assert!(!meets(&[0xff; 32], &target_for(2)));
    }

    #[test]
    fn retarget_moves_toward_the_interval_within_bounds() {
        let d = 1_000_000;
        assert_eq!(next_difficulty(d, 1000, 1000), d);
        let faster = next_difficulty(d, 500, 1000);
        assert!(faster > d && faster <= d * 110 / 100, "{faster}");
        let slower = next_difficulty(d, 2000, 1000);
        assert!(slower < d && slower >= d * 94 / 100, "{slower}");
        // Clamped: an instant block raises it by at most 44 %.
        assert_eq!(next_difficulty(d, 0, 1000), d * 23 / 16);
        assert!(next_difficulty(1, 1_000_000, 1000) >= MIN_DIFFICULTY);
    }
}

//! The genesis: the first block and the rules every block after it follows
//! (allocations, reward, block interval, starting difficulty).
//!
//! A genesis is a JSON file (`weft genesis new` writes one). Its hash — the
//! hash of block 0, whose header commits to the whole configuration — is the
//! network's identity: transactions sign over it, and peers with another
//! genesis are disconnected.

use std::{path::Path, time::Duration};

use borsh::BorshSerialize;
use serde::{Deserialize, Serialize};

use crate::{
    address::Address,
    block::{Block, BlockHash, Header},
    pow,
};

/// Longest genesis file read.
const MAX_FILE: u64 = 1 << 20;
/// Most allocations in a genesis.
pub const MAX_ALLOCS: usize = 10_000;
/// Domain tag of the configuration hash.
const CONFIG_DOMAIN: &[u8] = b"weft/genesis/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
pub struct Alloc {
    pub address: Address,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// A name, for people.
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    pub alloc: Vec<Alloc>,
    /// The block interval the difficulty aims for.
    pub block_interval_ms: u64,
    /// Base units paid to the miner of each block, plus its fees.
    pub reward: u64,
    /// The difficulty of block 1.
    pub difficulty: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl Genesis {
    /// The genesis weft uses without `--genesis`.
    pub fn builtin() -> Self {
        Genesis {
            name: "weft main".into(),
            timestamp: 1_793_491_200_000, // 2026-11-01T00:00:00Z
            alloc: Vec::new(),
            block_interval_ms: 10_000,
            reward: 50 * 100_000_000,
            difficulty: 1 << 20,
        }
    }

    pub fn read(path: &Path) -> Result<Self, GenesisError> {
        let err = |reason: String| GenesisError::File {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_FILE {
            return Err(err(format!("larger than {MAX_FILE} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let g: Genesis = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        g.check().map_err(|e| err(e.to_string()))?;
        Ok(g)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Rules a genesis must follow.
    pub fn check(&self) -> Result<(), GenesisError> {
        let bad = |m: &str| Err(GenesisError::Invalid(m.into()));
        if self.alloc.len() > MAX_ALLOCS {
            return bad("too many allocations");
        }
        if self.block_interval_ms == 0 {
            return bad("the block interval must be more than zero");
        }
        if self.difficulty == 0 {
            return bad("the difficulty must be at least 1");
        }
        let mut total: u64 = 0;
        let mut seen = std::collections::HashSet::new();
        for a in &self.alloc {
            if !seen.insert(a.address) {
                return bad(&format!("{} is allocated twice", a.address));
            }
            total = match total.checked_add(a.amount) {
                Some(t) => t,
                None => return bad("allocations overflow"),
            };
        }
        Ok(())
    }

    pub fn block_interval(&self) -> Duration {
        Duration::from_millis(self.block_interval_ms)
    }

    /// Total allocated at genesis.
    pub fn allocated(&self) -> u64 {
        self.alloc.iter().map(|a| a.amount).sum()
    }

    /// Block 0. Its `tx_root` is the hash of this configuration, so its
    /// hash commits to all of it.
    pub fn block(&self) -> Block {
        let mut h = blake3::Hasher::new();
        h.update(CONFIG_DOMAIN);
        h.update(&borsh::to_vec(self).unwrap_or_default());
        Block {
            header: Header {
                parent: BlockHash::default(),
                height: 0,
                timestamp: self.timestamp,
                tx_root: *h.finalize().as_bytes(),
                target: pow::target_for(self.difficulty),
                nonce: 0,
                miner: Address::default(),
            },
            txs: Vec::new(),
        }
    }

    /// The network's identity.
    pub fn hash(&self) -> BlockHash {
        self.block().hash()
    }
}

/// Parses `2s`, `500ms`, `1m` or a number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (examples: 2s, 500ms, 1m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("not a duration: {s:?} (examples: 2s, 500ms, 1m)")),
    };
    if d.is_zero() {
        return Err("the block interval must be more than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_everything() {
        let g = Genesis::builtin();
        let mut other = g.clone();
        other.alloc.push(Alloc {
            address: Address([1; 32]),
            amount: 5,
        });
        assert_ne!(g.hash(), other.hash());
        let mut r = g.clone();
        r.reward += 1;
        assert_ne!(g.hash(), r.hash());
        assert_eq!(g.hash(), Genesis::builtin().hash());
    }

    #[test]
    fn json_round_trip_and_checks() {
        let mut g = Genesis::builtin();
        g.alloc.push(Alloc {
            address: Address([1; 32]),
            amount: 5,
        });
        let back: Genesis = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(back, g);
        g.alloc.push(g.alloc[0].clone());
        assert!(g.check().is_err());
        assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_interval("2h").is_err());
        assert!(parse_interval("0s").is_err());
    }
}

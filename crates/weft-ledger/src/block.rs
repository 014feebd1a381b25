//! Blocks: a header that is hashed for proof of work, and transactions.
//!
//! The header commits to the transactions through a BLAKE3 merkle root over
//! their full encodings (signatures included). Leaves and inner nodes are
//! hashed with different prefixes, and an odd node is carried up unchanged
//! rather than paired with itself, so no two transaction lists share a root.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{address::Address, hex, tx::Transaction};

/// Largest encoded block.
pub const MAX_BLOCK_BYTES: usize = 4 << 20;
/// Most transactions in a block.
pub const MAX_BLOCK_TXS: usize = 25_000;
/// Domain tag of header hashes.
const HEADER_DOMAIN: &[u8] = b"weft/header/v1";

/// A block id: the hash of its header.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct BlockHash(pub [u8; 32]);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({})", &hex(&self.0)[..12])
    }
}

impl std::str::FromStr for BlockHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::parse_hex32(s.trim())
            .map(BlockHash)
            .ok_or_else(|| format!("not a block hash (64 hex characters): {s}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    pub parent: BlockHash,
    pub height: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Merkle root of the transactions ([`merkle_root`]).
    pub tx_root: [u8; 32],
    /// The header hash, read as a big-endian number, must not exceed this.
    pub target: [u8; 32],
    pub nonce: u64,
    /// Receives the reward and the fees.
    pub miner: Address,
}

impl Header {
    pub fn hash(&self) -> BlockHash {
        let mut h = blake3::Hasher::new();
        h.update(HEADER_DOMAIN);
        h.update(&self.encode());
        BlockHash(*h.finalize().as_bytes())
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<Transaction>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes is more than the largest block ({MAX_BLOCK_BYTES})")]
    TooLarge(usize),
    #[error("cannot decode: {0}")]
    Malformed(String),
}

impl Block {
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes exactly one block of at most [`MAX_BLOCK_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// Encoded size, without encoding.
    pub fn size(&self) -> usize {
        // Header: 32 + 8 + 8 + 32 + 32 + 8 + 32; then the u32 count.
        152 + 4 + self.txs.iter().map(Transaction::size).sum::<usize>()
    }

    pub fn fees(&self) -> Option<u64> {
        self.txs
            .iter()
            .try_fold(0u64, |acc, tx| acc.checked_add(tx.fee))
    }
}

/// Merkle root over the transactions' full encodings; all zeros when there
/// are none.
pub fn merkle_root(txs: &[Transaction]) -> [u8; 32] {
    if txs.is_empty() {
        return [0; 32];
    }
    let mut level: Vec<[u8; 32]> = txs
        .iter()
        .map(|tx| {
            let mut h = blake3::Hasher::new();
            h.update(&[0]);
            h.update(&tx.leaf_hash());
            *h.finalize().as_bytes()
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1]);
                    h.update(l);
                    h.update(r);
                    *h.finalize().as_bytes()
                }
                [one] => *one,
                _ => [0; 32],
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::address_of;
    use ed25519_zebra::SigningKey;

    fn tx(nonce: u64) -> Transaction {
        let k = SigningKey::from([1; 32]);
        let to = address_of(&SigningKey::from([2; 32]));
        Transaction::sign(&k, &[0; 32], to, 1, 1, nonce, vec![])
    }

    #[test]
    fn block_round_trips_exactly() {
        let txs = vec![tx(0), tx(1)];
        let b = Block {
            header: Header {
                parent: BlockHash([3; 32]),
                height: 7,
                timestamp: 1_700_000_000_000,
                tx_root: merkle_root(&txs),
                target: [0xff; 32],
                nonce: 42,
                miner: Address([4; 32]),
            },
            txs,
        };
        let bytes = b.encode();
        assert_eq!(bytes.len(), b.size());
        let back = Block::decode(&bytes).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.encode(), bytes);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Block::decode(&longer).is_err());
    }

    #[test]
    fn merkle_root_depends_on_order_and_count() {
        let (a, b, c) = (tx(0), tx(1), tx(2));
        let r1 = merkle_root(&[a.clone(), b.clone(), c.clone()]);
        assert_ne!(r1, merkle_root(&[b.clone(), a.clone(), c.clone()]));
        // Duplicating the odd last leaf must not give the same root.
        assert_ne!(
            r1,
            merkle_root(&[a.clone(), b.clone(), c.clone(), c.clone()])
        );
        assert_ne!(merkle_root(&[a]), [0; 32]);
        assert_eq!(merkle_root(&[]), [0; 32]);
    }
}

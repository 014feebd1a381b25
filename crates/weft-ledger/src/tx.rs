//! Transactions: a signed transfer of `amount` base units from one account
//! to another, paying `fee` to the miner, with the sender's next `nonce`.
//!
//! Encoding is borsh (a specified, canonical format that rejects trailing
//! bytes): decoding then re-encoding gives back the input exactly.
//!
//! - The signature covers [`SIGNING_DOMAIN`], the genesis hash (so a
//!   transaction cannot be replayed on another network) and every field but
//!   the signature.
//! - The [`TxId`] is the BLAKE3 hash of those same signed bytes. It does not
//!   cover the signature, so nobody can change a transaction's id by
//!   re-encoding its signature; the block's merkle root commits to the full
//!   encoding, signature included ([`Transaction::leaf_hash`]).
//! - Signatures are checked with ed25519-zebra (ZIP-215 rules): single and
//!   batch verification agree on every input, so a block's validity never
//!   depends on which was used.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_zebra::{Signature, SigningKey, VerificationKey, VerificationKeyBytes};

use crate::{address::Address, hex};

/// Domain tag of transaction signatures.
pub const SIGNING_DOMAIN: &[u8] = b"weft/tx/v1";
/// Longest memo a transaction may carry.
pub const MAX_MEMO: usize = 256;
/// Largest encoded transaction.
pub const MAX_TX_BYTES: usize = 32 + 32 + 8 + 8 + 8 + 4 + MAX_MEMO + 64;

/// A transaction id: BLAKE3 of the signed bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct TxId(pub [u8; 32]);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", &hex(&self.0)[..12])
    }
}

impl std::str::FromStr for TxId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::parse_hex32(s.trim())
            .map(TxId)
            .ok_or_else(|| format!("not a transaction id (64 hex characters): {s}"))
    }
}

/// A signed transfer.
#[derive(Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    pub from: Address,
    pub to: Address,
    pub amount: u64,
    pub fee: u64,
    pub nonce: u64,
    /// Free bytes for the recipient (at most [`MAX_MEMO`]).
    pub memo: Vec<u8>,
    pub signature: [u8; 64],
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id())
            .field("from", &self.from)
            .field("to", &self.to)
            .field("amount", &self.amount)
            .field("fee", &self.fee)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// The signed part of a transaction, as it is encoded for signing.
#[derive(BorshSerialize)]
struct SignedBytes<'a> {
    domain: &'a [u8],
    genesis: &'a [u8; 32],
    from: &'a Address,
    to: &'a Address,
    amount: u64,
    fee: u64,
    nonce: u64,
    memo: &'a [u8],
}

/// Why a transaction is invalid on its own (before looking at balances).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("the amount must be more than zero")]
    ZeroAmount,
    #[error("sender and recipient are the same account")]
    SelfTransfer,
    #[error("the memo is {0} bytes; at most {MAX_MEMO} are allowed")]
    MemoTooLong(usize),
    #[error("amount plus fee overflows")]
    Overflow,
    #[error("the sender is not a valid ed25519 public key")]
    BadKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("cannot decode the transaction: {0}")]
    Decode(String),
}

impl Transaction {
    /// Builds and signs a transfer with `key` (whose public key is `from`).
    pub fn sign(
        key: &SigningKey,
        genesis: &[u8; 32],
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
        memo: Vec<u8>,
    ) -> Self {
        let from = Address(VerificationKeyBytes::from(VerificationKey::from(key)).into());
        let mut tx = Transaction {
            from,
            to,
            amount,
            fee,
            nonce,
            memo,
            signature: [0; 64],
        };
        tx.signature = key.sign(&tx.signing_bytes(genesis)).into();
        tx
    }

    /// The bytes the signature covers.
    pub fn signing_bytes(&self, genesis: &[u8; 32]) -> Vec<u8> {
        let signed = SignedBytes {
            domain: SIGNING_DOMAIN,
            genesis,
            from: &self.from,
            to: &self.to,
            amount: self.amount,
            fee: self.fee,
            nonce: self.nonce,
            memo: &self.memo,
        };
        borsh::to_vec(&signed).unwrap_or_default()
    }

    /// The transaction id (independent of the network: the genesis is part
    /// of what is signed, not of the id).
    pub fn id(&self) -> TxId {
        TxId(*blake3::hash(&self.signing_bytes(&[0; 32])).as_bytes())
    }

    /// What the block's merkle tree commits to: the whole encoding.
    pub fn leaf_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes exactly one transaction; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::Decode(format!(
                "{} bytes is more than the largest transaction ({MAX_TX_BYTES})",
                bytes.len()
            )));
        }
        let tx: Transaction =
            borsh::from_slice(bytes).map_err(|e| TxError::Decode(e.to_string()))?;
        if tx.memo.len() > MAX_MEMO {
            return Err(TxError::MemoTooLong(tx.memo.len()));
        }
        Ok(tx)
    }

    /// Encoded size in bytes (the unit of the fee rate).
    pub fn size(&self) -> usize {
        32 + 32 + 8 + 8 + 8 + 4 + self.memo.len() + 64
    }

    /// Fee per 1000 bytes, for ordering.
    pub fn fee_rate(&self) -> u64 {
        (u128::from(self.fee) * 1000 / self.size() as u128) as u64
    }

    /// Checks that need no state and no signature.
    pub fn check_form(&self) -> Result<(), TxError> {
        if self.amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        if self.from == self.to {
            return Err(TxError::SelfTransfer);
        }
        if self.memo.len() > MAX_MEMO {
            return Err(TxError::MemoTooLong(self.memo.len()));
        }
        self.amount.checked_add(self.fee).ok_or(TxError::Overflow)?;
        Ok(())
    }

    /// Checks the form and the signature.
    pub fn verify(&self, genesis: &[u8; 32]) -> Result<(), TxError> {
        self.check_form()?;
        let key = VerificationKey::try_from(self.from.0).map_err(|_| TxError::BadKey)?;
        let sig = Signature::from(self.signature);
        key.verify(&sig, &self.signing_bytes(genesis))
            .map_err(|_| TxError::BadSignature)
    }
}

/// Verifies the signatures of many transactions at once. Falls back to
/// single checks when the batch fails, to name the first bad one; with
/// ed25519-zebra both give the same answer for every input.
pub fn verify_batch(txs: &[Transaction], genesis: &[u8; 32]) -> Result<(), (usize, TxError)> {
    let mut batch = ed25519_zebra::batch::Verifier::new();
    let mut messages = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        tx.check_form().map_err(|e| (i, e))?;
        messages.push(tx.signing_bytes(genesis));
    }
    for (tx, msg) in txs.iter().zip(&messages) {
        let key = VerificationKeyBytes::from(tx.from.0);
        batch.queue((key, Signature::from(tx.signature), msg));
    }
    if batch.verify(rand::thread_rng()).is_ok() {
        return Ok(());
    }
    for (i, tx) in txs.iter().enumerate() {
        tx.verify(genesis).map_err(|e| (i, e))?;
    }
    Ok(())
}

/// The public address of a signing key.
pub fn address_of(key: &SigningKey) -> Address {
    Address(VerificationKeyBytes::from(VerificationKey::from(key)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    const G: [u8; 32] = [9; 32];

    #[test]
    fn signs_verifies_and_round_trips() {
        let tx = Transaction::sign(&key(1), &G, address_of(&key(2)), 5, 1, 0, b"hi".to_vec());
        tx.verify(&G).unwrap();
        let bytes = tx.encode();
        assert_eq!(bytes.len(), tx.size());
        let back = Transaction::decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn other_genesis_or_changed_field_fails() {
        let tx = Transaction::sign(&key(1), &G, address_of(&key(2)), 5, 1, 0, vec![]);
        assert_eq!(tx.verify(&[8; 32]), Err(TxError::BadSignature));
        let mut more = tx.clone();
        more.amount = 6;
        assert_eq!(more.verify(&G), Err(TxError::BadSignature));
        assert_ne!(more.id(), tx.id());
    }

    #[test]
    fn trailing_bytes_and_long_memo_are_rejected() {
        let tx = Transaction::sign(&key(1), &G, address_of(&key(2)), 5, 1, 0, vec![]);
        let mut bytes = tx.encode();
        bytes.push(0);
        assert!(Transaction::decode(&bytes).is_err());
        let long = Transaction::sign(&key(1), &G, address_of(&key(2)), 5, 1, 0, vec![0; 300]);
        assert!(Transaction::decode(&long.encode()).is_err());
    }

    #[test]
    fn batch_agrees_with_single_checks() {
        let mut txs: Vec<_> = (0..20)
            .map(|i| Transaction::sign(&key(1), &G, address_of(&key(2)), 5, 1, i, vec![]))
            .collect();
        assert!(verify_batch(&txs, &G).is_ok());
        txs[13].signature[5] ^= 1;
        assert_eq!(verify_batch(&txs, &G), Err((13, TxError::BadSignature)));
    }

    #[test]
    fn form_checks() {
        let a = address_of(&key(2));
        let zero = Transaction::sign(&key(1), &G, a, 0, 1, 0, vec![]);
        assert_eq!(zero.verify(&G), Err(TxError::ZeroAmount));
        let own = Transaction::sign(&key(1), &G, address_of(&key(1)), 1, 1, 0, vec![]);
        assert_eq!(own.verify(&G), Err(TxError::SelfTransfer));
        let big = Transaction::sign(&key(1), &G, a, u64::MAX, 1, 0, vec![]);
        assert_eq!(big.verify(&G), Err(TxError::Overflow));
    }
}

//! weft's ledger: accounts, signed transfers, proof-of-work blocks.
//!
//! The core is sans-IO (STYLE.md habit 3): encoding, validation, the state
//! transition, fork choice and mempool policy are plain deterministic code
//! that is handed the clock, tested block by block without sockets.
//!
//! - [`address`]: accounts as checksummed `weft1…` addresses (bech32m).
//! - [`tx`] and [`block`]: the signed and hashed types, borsh-encoded.
//! - [`pow`]: difficulty, targets, retargeting and the nonce search.
//! - [`genesis`]: the first block and the network's rules.
//! - [`state`]: balances and nonces, applying and undoing blocks.
//! - [`chain`]: block validation, fork choice and reorganisations over a
//!   [`chain::ChainStore`]; [`store`] is its redb implementation.
//! - [`mempool`]: pending transactions.
//! - [`wallet`]: key files.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod address;
pub mod block;
pub mod chain;
pub mod genesis;
pub mod mempool;
pub mod pow;
pub mod service;
pub mod state;
pub mod store;
pub mod tx;
pub mod wallet;

pub use address::{Address, AddressError};
pub use block::{Block, BlockHash, Header};
pub use genesis::Genesis;
pub use tx::{Transaction, TxId};

/// Hex of 32 bytes, the way ids are shown.
pub fn hex(bytes: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Parses 64 hex characters into 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

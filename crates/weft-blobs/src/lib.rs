//! weft's content layer: verified blobs, collections, tickets, the blob
//! protocol and the multi-provider fetcher.
//!
//! - [`store`]: content on disk (data + BLAKE3 outboard), indexed in redb.
//! - [`protocol`] and [`transfer`]: `/weft/blobs/1.0.0`, request chunk
//!   ranges of a hash, receive their verified encoding.
//! - [`fetch`]: download from many providers at once, resumable.
//! - [`collection`], [`ticket`], [`hash`]: the formats users see.
//! - [`service`]: all of it wired to the network for one node.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod collection;
pub mod direct;
pub mod export;
pub mod fetch;
pub mod hash;
pub mod protocol;
pub mod service;
pub mod store;
pub mod ticket;
pub mod transfer;

pub use hash::{Hash, HashParseError};
pub use service::{Added, Blobs, Config};
pub use store::{BlobInfo, Store, StoreError};
pub use ticket::{BlobKind, Provider, Target, Ticket};

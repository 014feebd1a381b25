//! weft's app services.
//!
//! - [`pubsub`]: topics that apps publish and subscribe to, over gossipsub,
//!   with messages signed by the publishing node, validated (size, rate,
//!   signature) before they are forwarded, and delivered once.
//! - [`apps`]: the apps a node has served, their permissions, and the
//!   payment requests apps make, which wait for the user's approval in the
//!   dashboard.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apps;
pub mod pubsub;

pub use apps::Apps;
pub use pubsub::PubSub;

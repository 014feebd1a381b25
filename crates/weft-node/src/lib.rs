//! weft's node: reads configuration, opens the data directory, starts the
//! services (today the network; later blobs, ledger and apps) and serves the
//! local HTTP API. See [`Node`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod config;
pub mod data_dir;
mod node;

pub use config::{ConfigError, FileConfig, NodeConfig, Overrides};
pub use data_dir::{DataDir, DataDirError};
pub use node::{network_id, Node, NodeInfo, StartError};

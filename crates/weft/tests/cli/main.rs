//! End-to-end tests of the `weft` binary: real processes, real sockets,
//! loopback only, ephemeral ports.

mod apps;
mod bad_input;
mod daemon;
mod discovery;
mod garbage;
mod ledger;
mod payments;
mod pubsub;
mod sharing;
mod support;

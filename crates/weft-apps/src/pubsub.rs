//! Placeholder: being written.

use weft_net::NetworkHandle;

/// Pub/sub topics for apps.
#[derive(Clone)]
pub struct PubSub {
    #[allow(dead_code)]
    net: NetworkHandle,
}

impl PubSub {
    pub fn new(net: NetworkHandle) -> Self {
        Self { net }
    }
}

//! Helpers shared by weft's tests and benchmarks (a dev-dependency only).

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// How often [`wait_for`] checks its condition.
pub const POLL: Duration = Duration::from_millis(20);

/// Checks `check` every [`POLL`] until it holds (`true`) or `deadline`
/// has passed (`false`). Tests wait for conditions this way, never for a
/// fixed time.
pub async fn wait_for<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

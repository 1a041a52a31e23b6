//! The wall clock and deadlines as the engine's tasks read them.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sleeps until `at`, or forever when there is no deadline (a `select!` branch that never fires).
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

//! The wall clock and deadlines as the engine's tasks read them, and the [`Clock`] schedules
//! read local time from (injected, so a test sets the time).

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

/// Where the engine reads the local time and Unix time that schedules and timed pauses
/// follow: the system's, or a test's.
pub trait Clock: Send + Sync + 'static {
    /// The day and time of day in the local time zone.
    fn local(&self) -> crate::schedule::LocalTime;
    /// Seconds since the Unix epoch.
    fn unix(&self) -> u64;
}

/// The system clock in the system time zone (`TZ`, else `/etc/localtime`; UTC if neither is
/// readable).
pub struct SystemClock;

impl Clock for SystemClock {
    fn local(&self) -> crate::schedule::LocalTime {
        let now = jiff::Zoned::now();
        let day = crate::schedule::Day::from_monday(now.weekday().to_monday_zero_offset().unsigned_abs());
        let (h, m, s) = (now.hour(), now.minute(), now.second());
        crate::schedule::LocalTime::at(
            day,
            h.unsigned_abs().into(),
            m.unsigned_abs().into(),
            s.unsigned_abs().into(),
        )
    }

    fn unix(&self) -> u64 {
        unix_now()
    }
}

/// Unix time `unix` as local date and time, `2026-12-06 14:30`.
pub fn local_text(unix: u64) -> String {
    let Ok(at) = jiff::Timestamp::from_second(i64::try_from(unix).unwrap_or(i64::MAX)) else {
        return format!("Unix time {unix}");
    };
    at.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M").to_string()
}

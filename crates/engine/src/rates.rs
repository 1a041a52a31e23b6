//! Transfer rates: bytes per second over a short sliding window, sampled once a second from
//! counters that only grow — each folder's pulled bytes and each connection's bytes in and
//! out. It owns the per-folder counters (the folder tasks' pullers add to them) and the
//! windows; the engine's sampler task feeds it, status reads it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::FolderId;
use crate::identity::DeviceId;
use crate::model::ConnectionInfo;

/// How far back a rate looks: long enough to smooth bursts of blocks, short enough to show a
/// stall within seconds.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How often the engine samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples of one counter within [`WINDOW`].
#[derive(Debug, Default)]
struct Window(VecDeque<(Instant, u64)>);

impl Window {
    fn record(&mut self, at: Instant, total: u64) {
        // A counter that went back started over: the old samples say nothing about it.
        if self.0.back().is_some_and(|&(_, last)| total < last) {
            self.0.clear();
        }
        self.0.push_back((at, total));
        // One sample at or before the window's start is kept, so the window is always covered.
        while self.0.get(1).is_some_and(|&(t, _)| at.duration_since(t) >= WINDOW) {
            self.0.pop_front();
        }
    }

    /// Bytes per second between the oldest and newest sample; 0 with fewer than two.
    fn rate(&self) -> u64 {
        match (self.0.front(), self.0.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                (b1.saturating_sub(b0) as f64 / t1.duration_since(t0).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }
}

/// One connection's windows, and which connection they belong to.
#[derive(Debug, Default)]
struct ConnectionWindows {
    /// The connection's counters (their address), so a new connection starts afresh.
    counters: usize,
    read: Window,
    written: Window,
}

#[derive(Default)]
struct Inner {
    folders: HashMap<FolderId, Window>,
    connections: HashMap<DeviceId, ConnectionWindows>,
}

/// Rates of every folder and connection. Shared behind an `Arc`.
#[derive(Default)]
pub struct Rates {
    /// Bytes each folder's puller wrote into files (fetched or copied); kept across restarts
    /// of the folder's task.
    pulled: Mutex<HashMap<FolderId, Arc<AtomicU64>>>,
    inner: Mutex<Inner>,
}

impl Rates {
    /// The counter a folder's puller adds the bytes it writes to.
    pub fn pulled_counter(&self, folder: &FolderId) -> Arc<AtomicU64> {
        let mut pulled = self.pulled.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(pulled.entry(folder.clone()).or_default())
    }

    /// Takes one sample of every counter at `at`.
    pub fn sample(&self, at: Instant, connections: &[ConnectionInfo]) {
        let totals: Vec<(FolderId, u64)> = {
            let pulled = self.pulled.lock().unwrap_or_else(PoisonError::into_inner);
            pulled.iter().map(|(id, c)| (id.clone(), c.load(Relaxed))).collect()
        };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, total) in totals {
            inner.folders.entry(id).or_default().record(at, total);
        }
        inner.connections.retain(|d, _| connections.iter().any(|c| &c.device == d));
        for c in connections {
            let key = Arc::as_ptr(&c.counters) as usize;
            let w = inner.connections.entry(c.device).or_default();
            if w.counters != key {
                // The connection is new since the last sample, and its counters started at 0.
                let start = at.checked_sub(SAMPLE_EVERY).unwrap_or(at);
                *w = ConnectionWindows { counters: key, ..ConnectionWindows::default() };
                w.read.record(start, 0);
                w.written.record(start, 0);
            }
            w.read.record(at, c.counters.read.load(Relaxed));
            w.written.record(at, c.counters.written.load(Relaxed));
        }
    }

    /// Bytes per second the folder's puller wrote lately.
    pub fn folder(&self, folder: &FolderId) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.folders.get(folder).map_or(0, Window::rate)
    }

    /// Bytes per second (in, out) over the device's connection lately.
    pub fn connection(&self, device: &DeviceId) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.connections.get(device).map_or((0, 0), |w| (w.read.rate(), w.written.rate()))
    }
}

/// Seconds until `remaining` bytes are done at `rate` bytes per second; `None` when nothing
/// moves.
pub fn eta(remaining: u64, rate: u64) -> Option<u64> {
    (rate > 0).then(|| remaining.div_ceil(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_covers_the_last_ten_seconds_and_restarts_with_its_counter() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = Window::default();
        w.record(s(0), 0);
        assert_eq!(w.rate(), 0, "one sample is no rate");
        for n in 1..=20 {
            // 100 B/s for ten seconds, then 1000 B/s.
            let total = if n <= 10 { n * 100 } else { 1000 + (n - 10) * 1000 };
            w.record(s(n), total);
        }
        assert_eq!(w.rate(), 1000, "only the last ten seconds count");
        w.record(s(21), 5);
        assert_eq!(w.rate(), 0, "a counter that went back starts over");
        w.record(s(23), 205);
        assert_eq!(w.rate(), 100);
    }

    #[test]
    fn the_eta_is_remaining_bytes_over_the_rate() {
        assert_eq!(eta(1000, 0), None);
        assert_eq!(eta(1000, 300), Some(4));
        assert_eq!(eta(0, 300), Some(0));
    }
}

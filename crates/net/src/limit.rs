//! Bandwidth limits: token buckets whose rate can change while connections use them, and a
//! byte stream that passes every byte of each direction through a list of buckets.
//!
//! It owns the mechanism only. Which buckets a connection gets (the global one, its device's,
//! none on a LAN) is the engine's decision, made from the configuration; the engine changes a
//! bucket's rate with [`Limiter::set_rate`] and every stream holding it follows at once.
//!
//! The buckets run on debt: a read or write waits until every bucket it passes is out of debt,
//! moves at most [`CHUNK`] bytes, and then charges what it moved. Charging after the fact is
//! what a read needs (how much arrives is known only afterwards), and the small chunk bounds
//! both the burst and how long BEP's small messages (pings, index updates) wait behind data on
//! the same stream: one chunk. A waiting stream looks again at least every [`RECHECK`], so a
//! raised or lifted limit applies within that time even to a stream already waiting.
//!
//! Hand-written rather than `governor` (its quota is fixed at construction and it keeps its own
//! clock) or `async-speed-limit` (a rate change does not reach a wait already scheduled, and it
//! lets a whole write through before delaying): this follows tokio's clock, so the tests run on
//! paused time.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::BoxStream;

/// The most bytes one read or write moves through a limited stream before it waits again.
pub const CHUNK: usize = 16 << 10;
/// The longest a waiting stream sleeps before it reads the rate again.
pub const RECHECK: Duration = Duration::from_millis(100);

/// A token bucket: `rate` bytes per second (0: unlimited), at most a burst of a tenth of a
/// second's worth (and at least one [`CHUNK`]) saved up while idle. Clones share the bucket.
#[derive(Clone, Default)]
pub struct Limiter(Arc<Bucket>);

#[derive(Default)]
struct Bucket {
    rate: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes that may pass now; negative is debt.
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` until first used.
    at: Option<Instant>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("rate", &self.rate()).finish()
    }
}

impl Limiter {
    /// A bucket of `rate` bytes per second; 0 is unlimited.
    pub fn new(rate: u64) -> Self {
        let l = Self::default();
        l.set_rate(rate);
        l
    }

    /// Bytes per second; 0 is unlimited.
    pub fn rate(&self) -> u64 {
        self.0.rate.load(Relaxed)
    }

    /// Changes the rate for every stream using the bucket, at once.
    pub fn set_rate(&self, rate: u64) {
        let old = self.0.rate.swap(rate, Relaxed);
        if old != rate {
            // Debt run up under another rate says nothing about this one; a full bucket is
            // what a new limit starts from.
            let mut s = self.lock();
            s.tokens = burst(rate);
            s.at = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two numbers updated together: a poisoned lock still holds a sound pair.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long until the bucket is out of debt at `now` (zero: go ahead).
    fn wait(&self, now: Instant) -> Duration {
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let mut s = self.lock();
        refill(&mut s, rate, now);
        if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / rate as f64) }
    }

    /// Takes `n` bytes that just passed out of the bucket (it may go into debt).
    fn charge(&self, n: usize, now: Instant) {
        let rate = self.rate();
        if rate == 0 || n == 0 {
            return;
        }
        let mut s = self.lock();
        refill(&mut s, rate, now);
        s.tokens -= n as f64;
    }
}

fn burst(rate: u64) -> f64 {
    (rate as f64 / 10.0).max(CHUNK as f64)
}

fn refill(s: &mut State, rate: u64, now: Instant) {
    let elapsed = s.at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
    s.tokens = (s.tokens + elapsed.as_secs_f64() * rate as f64).min(burst(rate));
    s.at = Some(now);
}

/// Whether `ip` is on a local network, which limits leave alone unless told otherwise:
/// loopback, private (RFC 1918), link-local, or IPv6 unique-local.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => ip.is_private() || ip.is_link_local() || ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unicast_link_local() || ip.is_unique_local(),
    }
}

/// A switch that, while on, lets a stream's bytes past its buckets (a LAN connection while
/// limits leave the LAN alone). Clones share it.
pub type Exempt = Arc<AtomicBool>;

/// The buckets one direction of a stream passes, and its wait in progress.
#[derive(Default)]
struct Direction {
    limiters: Vec<Limiter>,
    exempt: Option<Exempt>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Direction {
    fn exempt(&self) -> bool {
        self.exempt.as_ref().is_some_and(|e| e.load(Relaxed))
    }

    /// Ready when every bucket is out of debt; otherwise sleeps (at most [`RECHECK`]) and
    /// looks again.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            if self.exempt() {
                return Poll::Ready(());
            }
            let now = Instant::now();
            let wait = self.limiters.iter().map(|l| l.wait(now)).max().unwrap_or_default();
            if wait.is_zero() {
                return Poll::Ready(());
            }
            self.sleep = Some(Box::pin(tokio::time::sleep_until(now + wait.min(RECHECK))));
        }
    }

    fn charge(&self, n: usize) {
        if self.exempt() {
            return;
        }
        let now = Instant::now();
        for l in &self.limiters {
            l.charge(n, now);
        }
    }

    /// How many bytes to move at once: a chunk when limited, anything otherwise.
    fn cap(&self, len: usize) -> usize {
        if !self.exempt() && self.limiters.iter().any(|l| l.rate() > 0) { len.min(CHUNK) } else { len }
    }
}

/// A byte stream whose reads pass the `recv` buckets and writes the `send` buckets.
pub struct LimitedStream {
    inner: BoxStream,
    recv: Direction,
    send: Direction,
}

impl LimitedStream {
    /// Wraps `inner`: every byte read passes each of `recv`, every byte written each of `send`,
    /// except while `exempt` is on.
    pub fn new(inner: BoxStream, recv: Vec<Limiter>, send: Vec<Limiter>, exempt: Option<Exempt>) -> Self {
        Self {
            inner,
            recv: Direction { limiters: recv, exempt: exempt.clone(), sleep: None },
            send: Direction { limiters: send, exempt, sleep: None },
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.recv.poll_ready(cx));
        let room = this.recv.cap(buf.remaining());
        if room == buf.remaining() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            this.recv.charge(buf.filled().len() - before);
            return Poll::Ready(Ok(()));
        }
        // A chunk of the caller's buffer, initialised first so that taking it back is safe.
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        buf.advance(n);
        this.recv.charge(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.send.poll_ready(cx));
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..this.send.cap(data.len())]))?;
        this.send.charge(n);
        Poll::Ready(Ok(n))
    }

    /// Passed on whole when the slices fit what may go at once (always, unlimited), so that a
    /// TLS stream puts them in the same records; else a chunk of the first, as `poll_write`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.send.poll_ready(cx));
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        let n = if this.send.cap(total) == total {
            ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?
        } else {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
            ready!(Pin::new(&mut this.inner).poll_write(cx, &first[..this.send.cap(first.len())]))?
        };
        this.send.charge(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Writes `total` bytes through a stream limited to `rate` on the send side (and reads them
    /// at the other end); returns how long it took on the paused clock.
    async fn send_through(send: Vec<Limiter>, total: usize) -> Duration {
        let (a, mut b) = tokio::io::duplex(64 << 10);
        let mut a = LimitedStream::new(Box::new(a), Vec::new(), send, None);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            b.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        let start = Instant::now();
        a.write_all(&vec![7u8; total]).await.unwrap();
        a.shutdown().await.unwrap();
        let took = start.elapsed();
        assert_eq!(reader.await.unwrap().unwrap(), total);
        took
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_holds_the_rate_after_the_first_burst() {
        // 1 MiB at 100 KiB/s: ten seconds, less the burst (one chunk) the bucket starts with.
        let took = send_through(vec![Limiter::new(100 << 10)], 1 << 20).await;
        let nominal = Duration::from_secs(10);
        assert!(took >= nominal - Duration::from_millis(200) && took <= nominal, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_takes_no_time_and_the_slowest_bucket_wins() {
        assert_eq!(send_through(vec![Limiter::new(0)], 1 << 20).await, Duration::ZERO);
        assert_eq!(send_through(Vec::new(), 1 << 20).await, Duration::ZERO);
        let (fast, slow) = (Limiter::new(1 << 20), Limiter::new(64 << 10));
        let took = send_through(vec![fast, slow], 640 << 10).await;
        // Less the first burst and the last chunk, which goes before it is paid for.
        assert!(took >= Duration::from_millis(9400) && took <= Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_limited_and_a_shared_bucket_is_shared() {
        let shared = Limiter::new(64 << 10);
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (a, mut b) = tokio::io::duplex(1 << 20);
            let mut a = LimitedStream::new(Box::new(a), vec![shared.clone()], Vec::new(), None);
            tokio::spawn(async move {
                b.write_all(&vec![1u8; 320 << 10]).await.unwrap();
                b.shutdown().await.unwrap();
            });
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                a.read_to_end(&mut got).await.unwrap();
                got.len()
            }));
        }
        let start = Instant::now();
        for r in readers {
            assert_eq!(r.await.unwrap(), 320 << 10);
        }
        // 640 KiB through one 64 KiB/s bucket: ten seconds, whichever stream reads.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(9500) && took <= Duration::from_millis(10300), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_change_reaches_a_stream_that_is_waiting() {
        let limiter = Limiter::new(1 << 10);
        let l = limiter.clone();
        let writer = tokio::spawn(async move { send_through(vec![l], 1 << 20).await });
        // At 1 KiB/s this would take 17 minutes; lifted after a second, it ends at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        limiter.set_rate(0);
        let took = writer.await.unwrap();
        assert!(took <= Duration::from_secs(1) + RECHECK, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exempt_stream_passes_while_the_switch_is_on() {
        let exempt = Exempt::default();
        exempt.store(true, Relaxed);
        let limiter = Limiter::new(1 << 10);
        let (a, _b) = tokio::io::duplex(1 << 20);
        let mut a = LimitedStream::new(Box::new(a), Vec::new(), vec![limiter.clone()], Some(exempt.clone()));
        let start = Instant::now();
        a.write_all(&[0u8; 64 << 10]).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        exempt.store(false, Relaxed);
        // A chunk from the full bucket, a chunk into debt, then 16 s to pay it at 1 KiB/s.
        a.write_all(&[0u8; 40 << 10]).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(16), "limited again");
    }

    #[test]
    fn the_lan_is_loopback_private_and_link_local() {
        for lan in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_lan(lan.parse().unwrap()), "{lan}");
        }
        for wan in ["8.8.8.8", "203.0.113.5", "2001:db8::1", "100.64.0.1"] {
            assert!(!is_lan(wan.parse().unwrap()), "{wan}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn vectored_writes_arrive_in_order_and_are_limited() {
        let parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 30_000 + usize::from(i)]).collect();
        let total: usize = parts.iter().map(Vec::len).sum();
        for rate in [0, 100 << 10] {
            let (a, mut b) = tokio::io::duplex(64 << 10);
            let mut a = LimitedStream::new(Box::new(a), Vec::new(), vec![Limiter::new(rate)], None);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.map(|_| got)
            });
            let start = Instant::now();
            let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
            let mut slices = &mut slices[..];
            while !slices.is_empty() {
                let n = a.write_vectored(slices).await.unwrap();
                assert!(n > 0 && (rate == 0 || n <= CHUNK), "{n} bytes at once at {rate} B/s");
                io::IoSlice::advance_slices(&mut slices, n);
            }
            a.shutdown().await.unwrap();
            let took = start.elapsed();
            assert_eq!(reader.await.unwrap().unwrap(), parts.concat());
            if rate > 0 {
                // Less the burst the bucket starts with, as for plain writes.
                let nominal = Duration::from_secs_f64((total - CHUNK) as f64 / rate as f64);
                assert!(took >= nominal - Duration::from_millis(200), "{took:?}");
            } else {
                assert_eq!(took, Duration::ZERO);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_message_waits_at_most_one_chunk() {
        let limiter = Limiter::new(16 << 10);
        let d = Direction { limiters: vec![limiter.clone()], ..Direction::default() };
        assert_eq!(d.cap(1 << 20), CHUNK, "data moves a chunk at a time");
        // The bucket starts with one chunk; a chunk of data takes it, and the next message
        // (a ping) goes once that chunk has been paid for: one second at 16 KiB/s.
        d.charge(CHUNK);
        d.charge(CHUNK);
        assert_eq!(limiter.wait(Instant::now()), Duration::from_secs(1));
    }
}

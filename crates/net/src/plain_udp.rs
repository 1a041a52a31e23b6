//! The degraded QUIC socket: a plain UDP socket for quinn where the system refuses what
//! quinn's own socket (`quinn-udp`) asks of it.
//!
//! `quinn-udp` turns on per-packet ECN and destination-address reporting and forbids
//! fragmentation. Wine 8 refuses two of those requests (reading `IPV6_V6ONLY` on an IPv4
//! socket fails with WSAEOPNOTSUPP, OS error 10045; `IP_RECVECN` and `IPV6_RECVECN` with
//! WSAENOPROTOOPT, 10042), and a locked-down Windows may refuse more. QUIC needs none of them
//! to work: this socket sends and receives one datagram per call with `send_to`/`recv_from`,
//! reports no ECN, no GSO or GRO, and says that datagrams may fragment, so quinn keeps to its
//! initial 1200-byte packets instead of probing the path's MTU. What is lost is throughput, not
//! correctness; the first use is logged once as a warning.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Whether the warning that QUIC runs on the degraded socket was logged (once per process: a
/// device makes one per listen address and dialling family, all for the same reason).
static WARNED: AtomicBool = AtomicBool::new(false);

/// Windows' WSAENETRESET: an ICMP "time exceeded" for an earlier datagram, reported by a later
/// `recv_from` like WSAECONNRESET (which maps to `ConnectionReset`).
#[cfg(windows)]
const WSAENETRESET: i32 = 10052;

/// A UDP socket quinn drives with plain `send_to`/`recv_from` (see the module docs).
pub(super) struct PlainUdpSocket {
    io: tokio::net::UdpSocket,
}

impl fmt::Debug for PlainUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainUdpSocket").field("local", &self.io.local_addr().ok()).finish()
    }
}

impl PlainUdpSocket {
    /// Wraps `socket` (bound already); `why` is what refused quinn's own socket, for the log.
    /// Must run inside a tokio runtime.
    pub(super) fn new(socket: std::net::UdpSocket, why: &io::Error) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let io = tokio::net::UdpSocket::from_std(socket)?;
        let local = io.local_addr().ok();
        if WARNED.swap(true, Ordering::Relaxed) {
            tracing::debug!(?local, error = %why, "QUIC uses a plain UDP socket");
        } else {
            tracing::warn!(
                ?local,
                error = %why,
                "the system refuses a UDP socket option QUIC uses: QUIC runs on a plain UDP socket \
                 (no ECN, no segmentation offload, no path MTU discovery), slower but working"
            );
        }
        Ok(Self { io })
    }
}

/// Whether a receive error is the system reporting an ICMP error for an earlier datagram we
/// sent (Windows does so on unconnected UDP sockets: "port unreachable" as WSAECONNRESET).
/// It says nothing about the socket, which keeps working; ending the endpoint on it would let
/// any host that sends an ICMP error stop QUIC.
fn is_icmp_report(e: &io::Error) -> bool {
    #[cfg(windows)]
    if e.raw_os_error() == Some(WSAENETRESET) {
        return true;
    }
    e.kind() == io::ErrorKind::ConnectionReset
}

impl AsyncUdpSocket for PlainUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable { socket: self, wait: None })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // One datagram per Transmit (`max_transmit_segments` is 1); a segment size is honoured
        // anyway rather than sent as one oversized datagram.
        let size = transmit.segment_size.unwrap_or(transmit.contents.len()).max(1);
        for datagram in transmit.contents.chunks(size) {
            match self.io.try_send_to(datagram, transmit.destination) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                // Like quinn-udp: a datagram the system will not send is a lost packet, which
                // QUIC recovers from; an error here would close every connection on the socket.
                Err(e) => {
                    tracing::debug!(destination = %transmit.destination, error = %e, "UDP send failed");
                }
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(meta)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        loop {
            ready!(self.io.poll_recv_ready(cx))?;
            match self.io.try_recv_from(buf) {
                Ok((len, addr)) => {
                    *meta = RecvMeta { addr, len, stride: len, ecn: None, dst_ip: None };
                    return Poll::Ready(Ok(1));
                }
                // Readiness was stale: poll again, which registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if is_icmp_report(&e) => {
                    tracing::trace!(error = %e, "skipping an ICMP error reported on the UDP socket");
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn may_fragment(&self) -> bool {
        true
    }
}

/// Waits for the socket to be writable. Each of quinn's tasks has its own, since tokio's
/// `poll_send_ready` keeps only the last waker.
struct Writable {
    socket: Arc<PlainUdpSocket>,
    wait: Option<Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>>,
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writable").finish_non_exhaustive()
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wait = this.wait.get_or_insert_with(|| {
            let socket = Arc::clone(&this.socket);
            Box::pin(async move { socket.io.writable().await })
        });
        let result = ready!(wait.as_mut().poll(cx));
        this.wait = None;
        Poll::Ready(result)
    }
}

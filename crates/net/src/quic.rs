//! BEP over QUIC v1: endpoints, the listener task, the dialer, and the stream wrapper that
//! carries one bidirectional stream as the connection's whole byte stream.
//!
//! As in Syncthing, the dialer opens one bidirectional stream and the listener accepts it; no
//! other stream is allowed either way. Keep-alives every 15 s and a 30 s idle timeout match
//! Syncthing v2 (1.19's exact values are unknown; it keeps connections alive too).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::plain_udp::PlainUdpSocket;
use super::stun::Demux;
use super::tls::{SERVER_NAME, TlsIdentity, peer_device};
use super::{
    Connection, HANDSHAKE_TIMEOUT, Handshakes, Incoming, NetError, Protocol, QUIC_STREAM_TIMEOUT, Transport,
    check_alpn, deliver, log_failed_handshake, stopped,
};
use crate::identity::DeviceId;

/// Keep-alive interval: well inside the idle timeout and typical NAT UDP mapping lifetimes.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// A connection with no packets for this long is dead.
const MAX_IDLE_TIMEOUT_MS: u32 = 30_000;
/// The application close code and reason Syncthing uses when it closes a connection.
pub(super) const CLOSE_CODE: VarInt = VarInt::from_u32(0);
pub(super) const CLOSE_REASON: &[u8] = b"closing";
/// How long a dropped stream waits for the peer to acknowledge what was written before the
/// connection is closed anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Flow-control window of the one BEP stream. The puller keeps up to 64 MiB of blocks
/// requested at once, and all of it comes back on this one stream; quinn's
/// default (1.25 MB) let through less than one round of small-block responses at a time, so
/// the sender stalled on window updates. These are limits, not allocations: the connection
/// task reads as data arrives, so little is ever buffered.
const STREAM_RECEIVE_WINDOW: u32 = 32 << 20;
/// The connection's window: the stream is the only one, so the same.
const RECEIVE_WINDOW: u32 = STREAM_RECEIVE_WINDOW;
/// How much unacknowledged data we keep in flight: enough to fill the peer's window.
const SEND_WINDOW: u64 = STREAM_RECEIVE_WINDOW as u64;

/// Packets the peer may receive before it must acknowledge them (the QUIC acknowledgement
/// frequency extension; a peer without it, such as Syncthing's quic-go, acknowledges every
/// other packet as usual). A bulk transfer is hundreds of thousands of packets, and an
/// acknowledgement for every second one cost both sides a packet to build, encrypt, send,
/// receive and process.
const ACK_ELICITING_THRESHOLD: u32 = 10;

/// The UDP socket buffers we ask for (the system caps them at its maximum, 4 MiB on this
/// Debian: `net.core.rmem_max`). With the default (208 KiB) a fast sender's bursts overflowed
/// the receiver's buffer even on loopback (the kernel's `UdpRcvbufErrors`), and every dropped
/// packet is a retransmission and a congestion-window cut. quic-go (Syncthing) asks for 7 MiB
/// for the same reason.
const SOCKET_BUFFER: usize = 8 << 20;

/// Which UDP socket quinn drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SocketKind {
    /// quinn's own (`quinn-udp`: ECN, segmentation offload, no fragmentation), falling back to
    /// [`SocketKind::Plain`] where the system refuses one of its options.
    Best,
    /// The degraded socket ([`PlainUdpSocket`]) at once: how tests run it on any system.
    #[cfg_attr(not(test), allow(dead_code))]
    Plain,
}

/// An endpoint on `socket`, with larger socket buffers, and the STUN side of the socket.
fn endpoint(
    server: Option<quinn::ServerConfig>,
    socket: std::net::UdpSocket,
) -> io::Result<(quinn::Endpoint, Arc<Demux>)> {
    endpoint_on(server, socket, SocketKind::Best)
}

/// [`endpoint`] on the socket `kind` says.
pub(super) fn endpoint_on(
    server: Option<quinn::ServerConfig>,
    socket: std::net::UdpSocket,
    kind: SocketKind,
) -> io::Result<(quinn::Endpoint, Arc<Demux>)> {
    let sock = socket2::SockRef::from(&socket);
    // Best effort: a smaller buffer than asked for is still a working socket.
    if let Err(e) =
        sock.set_recv_buffer_size(SOCKET_BUFFER).and_then(|()| sock.set_send_buffer_size(SOCKET_BUFFER))
    {
        tracing::debug!(error = %e, "cannot enlarge the UDP socket buffers");
    }
    let mut config = quinn::EndpointConfig::default();
    // Peers keep the fixed bit set towards us, which is what tells QUIC from STUN (`stun`).
    config.grease_quic_bit(false);
    let runtime = Arc::new(quinn::TokioRuntime);
    // quinn-udp sets its options when it wraps the socket and drops the socket when one is
    // refused, so they are tried first on the socket we keep; wrapping sets them again.
    let refused = match kind {
        SocketKind::Best => quinn::udp::UdpSocketState::new((&socket).into()).err(),
        SocketKind::Plain => Some(io::Error::other("the plain UDP socket was asked for")),
    };
    let inner: Arc<dyn quinn::AsyncUdpSocket> = match refused {
        None => quinn::Runtime::wrap_udp_socket(&*runtime, socket)?,
        Some(why) => Arc::new(PlainUdpSocket::new(socket, &why)?),
    };
    let demux = Demux::new(inner);
    let socket: Arc<dyn quinn::AsyncUdpSocket> = Arc::clone(&demux) as _;
    let endpoint = quinn::Endpoint::new_with_abstract_socket(config, server, socket, runtime)?;
    Ok((endpoint, demux))
}

/// A dialing-only endpoint on `addr` (an unspecified address and port 0).
pub(super) fn client_endpoint(addr: SocketAddr) -> io::Result<quinn::Endpoint> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        // Dual-stack where the system allows it, as quinn's own client endpoint does.
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    endpoint(None, socket.into()).map(|(endpoint, _)| endpoint)
}

/// Transport parameters; `incoming_bidi` is how many streams the peer may open (one for the
/// listener, where the dialer opens the BEP stream; none for the dialer).
fn transport_config(incoming_bidi: u32) -> Arc<TransportConfig> {
    let mut config = TransportConfig::default();
    config
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(MAX_IDLE_TIMEOUT_MS))))
        .max_concurrent_bidi_streams(VarInt::from_u32(incoming_bidi))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD));
    config.ack_frequency_config(Some(acks));
    Arc::new(config)
}

/// A listening endpoint on `addr`, and the STUN side of its socket. It also dials (see
/// `Net::dial`).
pub(super) fn listen_endpoint(
    tls: &TlsIdentity,
    addr: SocketAddr,
    kind: SocketKind,
) -> io::Result<(quinn::Endpoint, Arc<Demux>)> {
    let mut config = quinn::ServerConfig::with_crypto(tls.quic_server_config());
    config.transport_config(transport_config(1));
    endpoint_on(Some(config), std::net::UdpSocket::bind(addr)?, kind)
}

/// Accepts connections on `endpoint` until `stop` is set or the endpoint is closed, running each
/// handshake in its own task and passing the authenticated connections to `tx`.
pub(super) async fn listen(
    endpoint: quinn::Endpoint,
    tls: TlsIdentity,
    tx: Incoming,
    mut stop: watch::Receiver<bool>,
) {
    let local = endpoint.local_addr().ok();
    let mut handshakes = Handshakes::default();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = handshakes.reap() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let (tls, tx) = (tls.clone(), tx.clone());
                handshakes.start(incoming.remote_address().ip(), async move {
                    match accept(incoming, local).await {
                        Ok(conn) => deliver(conn, tls.device_id(), &tx).await,
                        Err(e) => log_failed_handshake(Transport::Quic, &e),
                    }
                });
            }
        }
    }
}

/// The server side: the QUIC handshake, then the dialer's stream.
async fn accept(
    incoming: quinn::Incoming,
    endpoint_addr: Option<SocketAddr>,
) -> Result<Connection, NetError> {
    let remote = incoming.remote_address();
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming)
        .await
        .map_err(|_| NetError::Timeout { what: format!("quic handshake with {remote}") })?
        .map_err(|e| NetError::Handshake { remote, source: e.into() })?;
    let (device, protocol) = connection_device(&conn, remote)?;
    let (send, recv) = tokio::time::timeout(QUIC_STREAM_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| NetError::Timeout { what: format!("waiting for the stream from {remote}") })?
        .map_err(|e| NetError::Stream { remote, source: e.into() })?;
    Ok(Connection {
        device,
        remote,
        local: local_addr(&conn, endpoint_addr, remote),
        transport: Transport::Quic,
        outgoing: false,
        protocol,
        stream: Box::new(QuicStream::new(conn, send, recv)),
    })
}

/// The client side from `endpoint`, accepting only `expected`. The caller bounds the time it
/// takes.
pub(super) async fn dial(
    endpoint: &quinn::Endpoint,
    tls: &TlsIdentity,
    remote: SocketAddr,
    expected: DeviceId,
    protocol: Protocol,
) -> Result<Connection, NetError> {
    let (tls_config, answered) = tls.client_config(expected, protocol);
    let crypto = QuicClientConfig::try_from(tls_config).map_err(NetError::tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config(0));
    let connecting = endpoint
        .connect_with(config, remote, SERVER_NAME)
        .map_err(|e| NetError::Connect { remote, source: io::Error::other(e) })?;
    let conn = connecting.await.map_err(|e| NetError::handshake(remote, expected, &answered, e))?;
    let (device, negotiated) = connection_device(&conn, remote)?;
    // Opening is local bookkeeping; the peer sees the stream with the first bytes written.
    let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Stream { remote, source: e.into() })?;
    Ok(Connection {
        device,
        remote,
        local: local_addr(&conn, endpoint.local_addr().ok(), remote),
        transport: Transport::Quic,
        outgoing: true,
        protocol: negotiated,
        stream: Box::new(QuicStream::new(conn, send, recv)),
    })
}

/// The peer's device ID and what the connection carries (by ALPN).
fn connection_device(conn: &quinn::Connection, remote: SocketAddr) -> Result<(DeviceId, Protocol), NetError> {
    let protocol = conn.handshake_data().and_then(|data| data.downcast::<HandshakeData>().ok()?.protocol);
    let protocol = check_alpn(protocol.as_deref(), remote);
    let certs =
        conn.peer_identity().and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    let device = peer_device(certs.as_deref().map(Vec::as_slice))
        .ok_or_else(|| NetError::Handshake { remote, source: "the peer sent no certificate".into() })?;
    Ok((device, protocol))
}

/// Our address on a connection: the endpoint's port with the IP the packets actually use when
/// the endpoint is bound to an unspecified address.
fn local_addr(conn: &quinn::Connection, endpoint_addr: Option<SocketAddr>, remote: SocketAddr) -> SocketAddr {
    let port = endpoint_addr.map_or(0, |a| a.port());
    let ip = conn.local_ip().or(endpoint_addr.map(|a| a.ip())).unwrap_or(match remote.ip() {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    SocketAddr::new(ip, port)
}

/// One bidirectional QUIC stream as a byte stream, owning its connection: dropping it closes
/// the connection, after the peer has acknowledged what was written (see `Drop`).
struct QuicStream {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// Whether the send side was finished; quinn reports a second `finish` as an error, but
    /// `shutdown()` on a byte stream may be called again.
    finished: bool,
}

impl QuicStream {
    fn new(conn: quinn::Connection, send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self { conn, send, recv, finished: false }
    }
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        self.finished = true;
        Poll::Ready(self.send.finish().map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e)))
    }
}

impl Drop for QuicStream {
    /// Closing a QUIC connection discards data not yet sent, so the close waits (in a task, at
    /// most [`CLOSE_LINGER`]) until the peer has acknowledged the finished send stream. Without
    /// a runtime (process exit) it closes at once.
    fn drop(&mut self) {
        let stats = self.conn.stats();
        tracing::debug!(
            remote = %self.conn.remote_address(),
            mtu = stats.path.current_mtu,
            datagrams_out = stats.udp_tx.datagrams,
            bytes_out = stats.udp_tx.bytes,
            packets_lost = stats.path.lost_packets,
            congestion_events = stats.path.congestion_events,
            black_holes = stats.path.black_holes_detected,
            "quic connection done"
        );
        if !self.finished {
            // An error means the peer stopped the stream: nothing left to deliver.
            let _ = self.send.finish();
        }
        let delivered = self.send.stopped();
        let conn = self.conn.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_LINGER, delivered).await;
                    conn.close(CLOSE_CODE, CLOSE_REASON);
                });
            }
            Err(_) => conn.close(CLOSE_CODE, CLOSE_REASON),
        }
    }
}

//! STUN (RFC 5389) on the QUIC socket: the Binding request that asks a STUN server which
//! public address our UDP packets come from, and the socket wrapper that lets STUN and QUIC
//! share one UDP socket.
//!
//! The mapped address is only useful if it is the address of the socket that QUIC listens and
//! dials on (a NAT maps each socket on its own), so STUN runs on that very socket, as in
//! Syncthing. [`Demux`] wraps the socket quinn reads from: a datagram that looks like STUN (the
//! two top bits 00 and the magic cookie at bytes 4..8) goes to the STUN query waiting for its
//! transaction ID; everything else goes to quinn. QUIC packets have the fixed bit 0x40 set:
//! our endpoints never announce `grease_quic_bit`, so peers never clear it towards us.
//!
//! Only the Binding exchange is coded (a request without attributes, the success response's
//! XOR-MAPPED-ADDRESS or MAPPED-ADDRESS), by hand: it is a 20-byte header and one attribute,
//! and the crates for STUN messages (`stun_codec`, `stun-rs`) bring their own codec frameworks
//! and most of RFC 5389/8489 besides. A response is parsed without allocating and is accepted
//! only for a transaction ID we sent, from the server we sent it to.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::oneshot;

/// The fixed value at bytes 4..8 of every STUN message (RFC 5389 §6).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// A STUN header: type, length, cookie, transaction ID.
const HEADER: usize = 20;
/// Binding request and Binding success response (method 1, classes request and success).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
/// The attributes that carry the mapped address.
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// XOR-MAPPED-ADDRESS as some servers still send it (the pre-RFC 5389 draft's number).
const XOR_MAPPED_ADDRESS_OLD: u16 = 0x8020;
/// Queries waiting for an answer on one socket; past it a query fails at once, so nothing a
/// caller (or a peer) does grows the table.
const MAX_PENDING: usize = 16;
/// When a request is sent again while no answer came (RFC 5389's 500 ms, doubling).
const RETRANSMIT: [Duration; 4] =
    [Duration::ZERO, Duration::from_millis(500), Duration::from_millis(1500), Duration::from_millis(3500)];

/// A transaction ID: 96 random bits naming one request.
pub type TransactionId = [u8; 12];

/// Why a STUN query gave no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("the message is shorter than a STUN header")]
    Short,
    #[error("not a STUN message (no magic cookie)")]
    NotStun,
    #[error("the message length does not match the datagram")]
    BadLength,
    #[error("an attribute runs past the end of the message")]
    BadAttribute,
    #[error("the server answered with an error")]
    ErrorResponse,
    #[error("the response has no mapped address")]
    NoAddress,
    #[error("the message is not a Binding response")]
    NotResponse,
    #[error("no answer")]
    Timeout,
    #[error("too many STUN queries at once")]
    Busy,
    #[error("the socket could not send the request")]
    Send,
}

/// Whether `packet` looks like a STUN message: what Syncthing checks to tell STUN from QUIC.
pub fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= HEADER && packet[0] & 0xC0 == 0 && packet[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// A Binding request with transaction ID `id` and no attributes.
pub fn binding_request(id: &TransactionId) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    out[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    out[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out[8..].copy_from_slice(id);
    out
}

/// The transaction ID of a STUN message (checked with [`is_stun`] first).
fn transaction_id(packet: &[u8]) -> Option<TransactionId> {
    packet.get(8..HEADER)?.try_into().ok()
}

/// The mapped address of a Binding success response: XOR-MAPPED-ADDRESS, else the older
/// MAPPED-ADDRESS. Returns the transaction ID with it, for the caller to match.
pub fn parse_binding_response(packet: &[u8]) -> Result<(TransactionId, SocketAddr), StunError> {
    if packet.len() < HEADER {
        return Err(StunError::Short);
    }
    if !is_stun(packet) {
        return Err(StunError::NotStun);
    }
    let kind = u16::from_be_bytes([packet[0], packet[1]]);
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if length % 4 != 0 || HEADER + length != packet.len() {
        return Err(StunError::BadLength);
    }
    let id = transaction_id(packet).ok_or(StunError::Short)?;
    match kind {
        BINDING_SUCCESS => {}
        BINDING_ERROR => return Err(StunError::ErrorResponse),
        _ => return Err(StunError::NotResponse),
    }
    let mut plain = None;
    let mut rest = &packet[HEADER..];
    while !rest.is_empty() {
        let [t0, t1, l0, l1, ..] = *rest else { return Err(StunError::BadAttribute) };
        let (kind, len) = (u16::from_be_bytes([t0, t1]), usize::from(u16::from_be_bytes([l0, l1])));
        let padded = len.div_ceil(4) * 4;
        let value = rest.get(4..4 + len).ok_or(StunError::BadAttribute)?;
        rest = rest.get(4 + padded..).ok_or(StunError::BadAttribute)?;
        match kind {
            XOR_MAPPED_ADDRESS | XOR_MAPPED_ADDRESS_OLD => {
                if let Some(addr) = address(value, Some(&id)) {
                    return Ok((id, addr));
                }
            }
            MAPPED_ADDRESS => plain = plain.or_else(|| address(value, None)),
            _ => {}
        }
    }
    plain.map(|addr| (id, addr)).ok_or(StunError::NoAddress)
}

/// A (XOR-)MAPPED-ADDRESS value; `xor` carries the transaction ID for the XOR form.
fn address(value: &[u8], xor: Option<&TransactionId>) -> Option<SocketAddr> {
    let [_, family, p0, p1, ref ip @ ..] = *value else { return None };
    let mut port = u16::from_be_bytes([p0, p1]);
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    if let Some(id) = xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        mask[4..].copy_from_slice(id);
    } else {
        mask = [0; 16];
    }
    let ip = match (family, ip.len()) {
        (0x01, 4) => {
            let b: [u8; 4] = std::array::from_fn(|i| ip[i] ^ mask[i]);
            IpAddr::V4(Ipv4Addr::from(b))
        }
        (0x02, 16) => {
            let b: [u8; 16] = std::array::from_fn(|i| ip[i] ^ mask[i]);
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// What a query waits for: its server, and where its answer goes.
struct Waiting {
    server: SocketAddr,
    answer: oneshot::Sender<SocketAddr>,
}

/// A UDP socket shared by quinn and STUN: quinn reads and writes through it as through the
/// plain socket, except that STUN responses are taken out of what it reads (see the module
/// docs).
pub(super) struct Demux {
    inner: Arc<dyn AsyncUdpSocket>,
    waiting: Mutex<HashMap<TransactionId, Waiting>>,
}

impl fmt::Debug for Demux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demux").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Demux {
    pub(super) fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        Arc::new(Self { inner, waiting: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TransactionId, Waiting>> {
        // Single inserts and removes: a poisoned lock is still sound.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a STUN datagram from `from` to the query it answers; anything else is dropped.
    fn deliver(&self, packet: &[u8], from: SocketAddr) {
        let Ok((id, mapped)) = parse_binding_response(packet) else {
            tracing::debug!(%from, "dropping a STUN message that is no usable Binding response");
            return;
        };
        let mut waiting = self.lock();
        // Only the server asked may answer: the ID is random, but a check costs nothing.
        if waiting.get(&id).is_some_and(|w| same_host(w.server, from))
            && let Some(w) = waiting.remove(&id)
        {
            let _ = w.answer.send(mapped);
        }
    }

    /// Asks `server` for the address it sees this socket at, sending the request again a few
    /// times (over about four seconds) while no answer comes.
    pub(super) async fn query(&self, server: SocketAddr) -> Result<SocketAddr, StunError> {
        let id: TransactionId = rand::random();
        let (answer, mut answered) = oneshot::channel();
        {
            let mut waiting = self.lock();
            if waiting.len() >= MAX_PENDING {
                return Err(StunError::Busy);
            }
            waiting.insert(id, Waiting { server, answer });
        }
        // Removes the entry however this ends (an answer removed it already).
        struct Forget<'a>(&'a Demux, TransactionId);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(&self.1);
            }
        }
        let _forget = Forget(self, id);
        let request = binding_request(&id);
        let destination = self.destination(server);
        let mut sent_any = false;
        let start = tokio::time::Instant::now();
        for (i, at) in RETRANSMIT.iter().enumerate() {
            let wait = tokio::time::sleep_until(start + *at);
            tokio::select! {
                mapped = &mut answered => return mapped.map_err(|_| StunError::Timeout),
                () = wait => {}
            }
            let transmit =
                Transmit { destination, ecn: None, contents: &request, segment_size: None, src_ip: None };
            // A full send buffer loses this copy; the next one is not far behind.
            match self.inner.try_send(&transmit) {
                Ok(()) => sent_any = true,
                Err(e) => tracing::debug!(%server, attempt = i, error = %e, "cannot send a STUN request"),
            }
        }
        if !sent_any {
            return Err(StunError::Send);
        }
        match tokio::time::timeout(Duration::from_secs(2), answered).await {
            Ok(Ok(mapped)) => Ok(mapped),
            _ => Err(StunError::Timeout),
        }
    }

    /// `server` as this socket sends to it: a dual-stack IPv6 socket reaches IPv4 addresses
    /// as IPv4-mapped ones.
    fn destination(&self, server: SocketAddr) -> SocketAddr {
        match (self.inner.local_addr(), server) {
            (Ok(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => server,
        }
    }
}

fn same_host(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

impl AsyncUdpSocket for Demux {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let n = ready!(self.inner.poll_recv(cx, bufs, meta))?;
            let mut kept = 0;
            for i in 0..n {
                let m = meta[i];
                let len = m.len.min(bufs[i].len());
                let stride = m.stride.clamp(1, len.max(1));
                // Datagrams coalesced by GRO come from one sender with one size: if the first
                // is STUN, they all are.
                if is_stun(&bufs[i][..stride.min(len)]) {
                    for packet in bufs[i][..len].chunks(stride) {
                        self.deliver(packet, m.addr);
                    }
                    continue;
                }
                if kept != i {
                    let (head, tail) = bufs.split_at_mut(i);
                    head[kept][..len].copy_from_slice(&tail[0][..len]);
                    meta[kept] = m;
                }
                kept += 1;
            }
            // All of them were STUN: read on (the inner socket registers the waker when empty).
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::{SocketKind, endpoint_on};

    /// RFC 5769 §2.2: a Binding success response for IPv4, with XOR-MAPPED-ADDRESS
    /// 192.0.2.1:32853 (and SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT, which are skipped).
    const RFC5769_IPV4: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae\
        8022000b7465737420766563746f7220\
        002000080001a147e112a643\
        000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
        80280004c07d4c96";

    /// RFC 5769 §2.3: the same for IPv6, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    const RFC5769_IPV6: &str = "010100482112a442b7e7a701bc34d686fa87dfae\
        8022000b7465737420766563746f7220\
        002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9\
        00080014a382954e4be67bf11784c97c8292c275bfe3ed41\
        80280004c8fb0b4c";

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }

    #[test]
    fn rfc_5769_responses_give_their_mapped_addresses() {
        let (id, addr) = parse_binding_response(&hex(RFC5769_IPV4)).unwrap();
        assert_eq!(addr, "192.0.2.1:32853".parse().unwrap());
        assert_eq!(id, hex("b7e7a701bc34d686fa87dfae")[..]);
        let (_, addr) = parse_binding_response(&hex(RFC5769_IPV6)).unwrap();
        assert_eq!(addr, "[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().unwrap());
    }

    #[test]
    fn a_request_is_a_header_with_the_cookie_and_the_id() {
        let id = [7u8; 12];
        let req = binding_request(&id);
        assert_eq!(req[..8], [0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(req[8..], id);
        assert!(is_stun(&req));
    }

    #[test]
    fn quic_packets_are_not_stun() {
        // A long-header Initial (0xC0 | …) and a short-header packet (fixed bit 0x40).
        let mut initial = vec![0xC3u8; 1200];
        initial[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(!is_stun(&initial));
        let mut short = vec![0x41u8; 40];
        short[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(!is_stun(&short));
    }

    #[test]
    fn hostile_responses_are_errors_not_panics() {
        let good = hex(RFC5769_IPV4);
        assert_eq!(parse_binding_response(&good[..19]), Err(StunError::Short));
        // Every truncation and every single-byte change either parses or is an error.
        for cut in 0..good.len() {
            let _ = parse_binding_response(&good[..cut]);
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                let _ = parse_binding_response(&bad);
            }
        }
        // An attribute claiming more than the message holds.
        let mut long = good.clone();
        long[HEADER + 2..HEADER + 4].copy_from_slice(&0xFFF0u16.to_be_bytes());
        assert_eq!(parse_binding_response(&long), Err(StunError::BadAttribute));
        // A length field that disagrees with the datagram.
        let mut extra = good.clone();
        extra.extend_from_slice(&[0; 4]);
        assert_eq!(parse_binding_response(&extra), Err(StunError::BadLength));
        // An error response, and a success with no address.
        let mut error = binding_request(&[1; 12]).to_vec();
        error[..2].copy_from_slice(&BINDING_ERROR.to_be_bytes());
        assert_eq!(parse_binding_response(&error), Err(StunError::ErrorResponse));
        let mut empty = binding_request(&[1; 12]).to_vec();
        empty[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        assert_eq!(parse_binding_response(&empty), Err(StunError::NoAddress));
        // Our own request is not a response.
        assert_eq!(parse_binding_response(&binding_request(&[1; 12])), Err(StunError::NotResponse));
    }

    #[test]
    fn plain_mapped_address_is_the_fallback() {
        let mut msg = binding_request(&[9; 12]).to_vec();
        msg[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        msg.extend_from_slice(&[0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x1F, 0x90, 198, 51, 100, 7]);
        msg[2..4].copy_from_slice(&12u16.to_be_bytes());
        let (_, addr) = parse_binding_response(&msg).unwrap();
        assert_eq!(addr, "198.51.100.7:8080".parse().unwrap());
    }

    /// The demultiplexer end to end on loopback: a fake STUN server answers the query on the
    /// socket a quinn endpoint reads from (quinn's reads are what deliver the answer), after
    /// noise and an answer to a transaction nobody asked about. On quinn's own socket where the
    /// system allows it (under Wine that is the plain one too) and on the plain one.
    #[tokio::test]
    async fn stun_and_quic_share_one_socket() {
        for kind in [SocketKind::Best, SocketKind::Plain] {
            stun_on_a_quic_socket(kind).await;
        }
    }

    async fn stun_on_a_quic_socket(kind: SocketKind) {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = server.recv_from(&mut buf).await else { return };
                let Some(id) = transaction_id(&buf[..n]) else { continue };
                // Noise first (not STUN, not ours), then the answer.
                let _ = server.send_to(&[0u8; 30], from).await;
                let mut resp = binding_request(&[0xEE; 12]).to_vec();
                resp[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
                let _ = server.send_to(&resp, from).await;
                let mut resp = binding_request(&id).to_vec();
                resp[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
                resp[2..4].copy_from_slice(&12u16.to_be_bytes());
                let port = from.port() ^ 0x2112;
                let SocketAddr::V4(v4) = from else { unreachable!() };
                let ip: [u8; 4] =
                    std::array::from_fn(|i| v4.ip().octets()[i] ^ MAGIC_COOKIE.to_be_bytes()[i]);
                resp.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
                resp.extend_from_slice(&port.to_be_bytes());
                resp.extend_from_slice(&ip);
                let _ = server.send_to(&resp, from).await;
            }
        });
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = socket.local_addr().unwrap();
        let (endpoint, demux) = endpoint_on(None, socket, kind).unwrap();
        let mapped = tokio::time::timeout(Duration::from_secs(10), demux.query(server_addr)).await.unwrap();
        assert_eq!(mapped, Ok(local), "{kind:?}");
        assert!(demux.lock().is_empty(), "the answered query is forgotten");
        // A server that never answers: a timeout, and nothing left behind.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = demux.query(silent.local_addr().unwrap()).await;
        assert_eq!(got, Err(StunError::Timeout));
        assert!(demux.lock().is_empty());
        drop(endpoint);
    }
}

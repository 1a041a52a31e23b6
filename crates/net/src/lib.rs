//! The transport layer: TLS over TCP and QUIC, listening and dialling, peers authenticated by
//! certificate.
//!
//! This crate owns every socket Peerfold opens for BEP and is the only one that names rustls
//! or quinn types. It hands out a [`Connection`]: a byte stream whose far end has proven that it
//! holds the key of the certificate that hashes to [`Connection::device`]. It knows nothing of
//! BEP messages, the configuration or the database; which devices may connect, and what is said
//! over the stream, is decided by the caller.
//!
//! * [`Address`] (`addr`): `tcp://host:port`, `quic://host:port` and their `4`/`6` variants;
//! * [`TlsIdentity`] (`tls`): this device's TLS configuration and the verifiers that derive and
//!   pin device IDs;
//! * [`Net`]: the listeners (one task per bound address feeding one queue of authenticated
//!   connections) and the dialer. The TCP side lives in `tcp`, the QUIC side in `quic`.
//!
//! * STUN (`stun`): [`Net::stun`] asks a STUN server for the public address of a listening
//!   QUIC socket, on that socket (STUN and QUIC share it as in Syncthing).
//!
//! * [`identity`]: the device's certificate and key on disk (`cert.pem`, `key.pem`), from which
//!   its TLS configuration is made, with the device ID codec of `peerfold-proto` re-exported;
//! * [`fsutil`] and [`errors`]: the one atomic file write and the one error sentence, leaf
//!   helpers kept in the lowest crate that touches the filesystem so every crate above shares
//!   them.
//!
//! It depends on neither the index nor the engine (`.ci/crate-graph.py` checks it).
//!
//! Nothing here makes network traffic the caller did not ask for: no UPnP, no relays,
//! no discovery.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

mod addr;
pub mod errors;
pub mod fsutil;
pub mod identity;
pub mod limit;
mod plain_udp;
mod quic;
pub mod relay;
mod stun;
mod tcp;
#[cfg(test)]
mod tests;
mod tls;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use addr::{Address, DEFAULT_PORT, DeviceAddress, Family};
pub use stun::StunError;
pub use tls::{ALPN_BEP, ALPN_INVITE, TlsIdentity};

use crate::identity::DeviceId;

/// How long an incoming or outgoing TLS (or QUIC) handshake may take, as in Syncthing.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Net::dial`] may take from name resolution to a usable stream.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a QUIC listener waits for the dialer's stream once the handshake is done
/// (Syncthing's `quicOperationTimeout`).
pub const QUIC_STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Authenticated incoming connections waiting for [`Net::accept`]. When it is full, handshakes
/// wait, and past [`MAX_PENDING_HANDSHAKES`] listeners stop accepting: backpressure instead of
/// an unbounded queue.
const INCOMING_QUEUE: usize = 16;
/// Authenticated invitation connections waiting for [`Net::accept_invite`]. Past it they are
/// dropped: invitations are rare, and a flood of them must not hold handshake slots.
const INVITE_QUEUE: usize = 4;
/// Handshakes in progress per listener; a flood of half-open connections cannot grow it further.
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Handshakes in progress per listener from one IP address: one host cannot take every slot.
const MAX_HANDSHAKES_PER_IP: usize = 8;

/// A listener's handshakes in progress. Listeners always accept: a connection from an address
/// that already has [`MAX_HANDSHAKES_PER_IP`] handshakes running is dropped at once, and when
/// [`MAX_PENDING_HANDSHAKES`] are running the oldest is abandoned for the new one. So
/// connections that stall their handshake (until [`HANDSHAKE_TIMEOUT`]) cannot keep a device
/// out: its handshake starts at once and, taking milliseconds, completes before it is oldest.
#[derive(Default)]
struct Handshakes {
    tasks: tokio::task::JoinSet<()>,
    /// Oldest first.
    order: std::collections::VecDeque<(IpAddr, tokio::task::AbortHandle)>,
}

impl Handshakes {
    /// Runs `handshake` for a connection from `ip`, unless that address has too many running.
    fn start(&mut self, ip: IpAddr, handshake: impl std::future::Future<Output = ()> + Send + 'static) {
        self.order.retain(|(_, h)| !h.is_finished());
        if self.order.iter().filter(|(i, _)| *i == ip).count() >= MAX_HANDSHAKES_PER_IP {
            tracing::debug!(%ip, "too many handshakes from one address; dropping a connection");
            return;
        }
        if self.order.len() >= MAX_PENDING_HANDSHAKES
            && let Some((old, h)) = self.order.pop_front()
        {
            tracing::debug!(ip = %old, "too many handshakes; abandoning the oldest");
            h.abort();
        }
        let handle = self.tasks.spawn(handshake);
        self.order.push_back((ip, handle));
    }

    /// Reaps a finished handshake task; pending while none is running.
    async fn reap(&mut self) {
        if self.tasks.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
/// How long [`Net::shutdown`] waits for closed QUIC endpoints to tell their peers.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// TCP+TLS, QUIC, or TLS through a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TLS 1.3 over TCP.
    Tcp,
    /// QUIC v1, one bidirectional stream.
    Quic,
    /// TLS 1.3 inside a session of a relay (Syncthing relay protocol v1). Never an [`Address`]
    /// transport: relays have their own URL, [`relay::RelayUrl`].
    Relay,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Quic => "quic",
            Self::Relay => "relay",
        })
    }
}

/// What a connection carries, as negotiated by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// BEP (`bep/1.0`, or no ALPN at all, which Syncthing also lets through).
    Bep,
    /// Peerfold's invitation exchange (`peerfold-invite/1`, see `crate::invite`).
    Invite,
}

/// Where listeners hand authenticated connections: BEP and invitations apart, so that the
/// model never sees an invitation and an invitation never waits behind BEP.
#[derive(Clone)]
struct Incoming {
    bep: mpsc::Sender<Connection>,
    invite: mpsc::Sender<Connection>,
}

/// The byte stream of a [`Connection`]: tokio's read and write halves in one object.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxStream = Box<dyn ByteStream>;

/// An authenticated connection: the peer proved possession of the key of the certificate whose
/// hash is `device`.
///
/// How to drive the stream:
///
/// * **The dialer must write first.** On QUIC the dialer opens the stream, and quinn makes a
///   stream visible to the peer only once data is sent on it, so the listener's
///   [`Net::accept`] returns only after the dialer's first write. BEP satisfies this: both sides
///   send their Hello at once, without waiting for the other's.
/// * `shutdown()` of the stream ends the write direction: TLS sends close_notify and shuts down
///   the TCP write half; QUIC finishes the send stream. The peer reads EOF; reading from it goes
///   on until the peer shuts down too.
/// * Dropping the stream closes the connection. On QUIC, data already written is still
///   delivered: the connection is closed once the peer has acknowledged it (at most a few
///   seconds later, in a background task). On TCP, unflushed TLS data is lost, so flush (or
///   shut down) before dropping.
/// * The peer's device ID is authenticated, not authorised: whether this device is known,
///   paused or allowed is the caller's decision.
pub struct Connection {
    /// The peer's device ID: the SHA-256 of the certificate it presented.
    pub device: DeviceId,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our end's address.
    pub local: SocketAddr,
    /// TCP+TLS, QUIC, or TLS through a relay.
    pub transport: Transport,
    /// Whether we dialled (true) or accepted (false).
    pub outgoing: bool,
    /// What the stream carries.
    pub protocol: Protocol,
    /// The authenticated byte stream.
    pub stream: BoxStream,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("device", &self.device.to_string())
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("outgoing", &self.outgoing)
            .finish_non_exhaustive()
    }
}

/// What can go wrong in the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An address string that is not `scheme://host:port`, or an address that cannot be used
    /// the way it was asked to be.
    #[error("bad address {input}: {reason}")]
    BadAddress { input: String, reason: String },
    /// The certificate or key cannot be used for TLS.
    #[error("cannot set up TLS with this device's certificate")]
    Tls(#[source] Box<dyn StdError + Send + Sync>),
    /// A listen address cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: Address,
        #[source]
        source: io::Error,
    },
    /// A host name cannot be resolved.
    #[error("cannot resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    /// A host name resolves, but to no address of the family the scheme allows.
    #[error("{addr} resolves to no usable IP address")]
    NoAddress { addr: Address },
    /// The connection attempt itself failed (refused, unreachable, …).
    #[error("cannot connect to {remote}")]
    Connect {
        remote: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// No socket could be opened to dial QUIC from.
    #[error("cannot open a UDP socket to dial QUIC from")]
    QuicSocket(#[source] io::Error),
    /// The TLS (or QUIC) handshake failed.
    #[error("tls handshake with {remote} failed")]
    Handshake {
        remote: SocketAddr,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The QUIC connection is up, but its stream could not be opened or accepted.
    #[error("cannot open the stream of the QUIC connection with {remote}")]
    Stream {
        remote: SocketAddr,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The peer that answered a dial presented another device's certificate.
    #[error("expected device {expected} but {answered} answered")]
    WrongDevice { expected: DeviceId, answered: DeviceId },
    /// A handshake or dial took too long.
    #[error("{what} timed out")]
    Timeout { what: String },
    /// A STUN server gave no mapped address.
    #[error("STUN server {server}")]
    Stun {
        server: String,
        #[source]
        source: StunError,
    },
    /// No listening QUIC socket could ask: STUN maps the listening socket, so there must be
    /// one (not on loopback) of the server's address family.
    #[error("no QUIC listener to ask STUN server {server} from")]
    NoQuicListener { server: String },
    /// Dialling this device's own ID (a configuration or discovery loop).
    #[error("refusing to dial this device's own ID")]
    DialSelf,
    /// The [`Net`] was shut down.
    #[error("the network layer is shut down")]
    ShutDown,
}

impl NetError {
    fn tls(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Tls(e.into())
    }

    /// A failed client handshake, told apart from "the peer is another device", which the
    /// pinned verifier records in `answered`.
    fn handshake(
        remote: SocketAddr,
        expected: DeviceId,
        answered: &Mutex<Option<DeviceId>>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        match *answered.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(answered) => Self::WrongDevice { expected, answered },
            None => Self::Handshake { remote, source: source.into() },
        }
    }
}

/// A QUIC listen address this device could not use, and why. The [`Net`] listens on its other
/// addresses: the system refused a UDP socket there, or the address is taken. (A system that
/// refuses only the options quinn's own socket sets gets QUIC on a plain socket instead:
/// `plain_udp`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicUnavailable {
    pub addr: Address,
    /// The error as one sentence ([`errors::error_chain`]).
    pub reason: String,
}

/// The listening and dialling side of this device.
///
/// Dropping a `Net` shuts it down without waiting (see [`Net::shutdown`]).
pub struct Net {
    tls: TlsIdentity,
    local: Vec<Address>,
    /// Listening QUIC endpoints, which also dial (one UDP socket, like Syncthing).
    quic_listeners: Vec<quinn::Endpoint>,
    /// The STUN side of each listener's socket, in the same order.
    quic_stun: Vec<std::sync::Arc<stun::Demux>>,
    /// QUIC listen addresses that could not be used.
    quic_unavailable: Vec<QuicUnavailable>,
    /// Client-only QUIC endpoints for families no listener serves, made on first use.
    quic_dialers: Mutex<QuicDialers>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Connection>>,
    /// Invitation connections, until [`Net::take_invites`] hands them to their server.
    invites: Mutex<Option<mpsc::Receiver<Connection>>>,
    /// The queue's sending side, for relay reservations started after `bind`.
    incoming_tx: Incoming,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct QuicDialers {
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("device", &self.tls.device_id().to_string())
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Binds every listen address (port 0 picks a free port) and starts accepting on each.
    ///
    /// Fails on the first TCP address that cannot be bound (or resolved), closing what was
    /// already bound. A QUIC address that cannot be used is logged as a warning and listed in
    /// [`Net::quic_unavailable`] instead: TCP carries the same connections. (A system that
    /// refuses only the options quinn's socket sets gets QUIC on a plain UDP socket, logged
    /// once as a warning: see `plain_udp`.) It fails the call only when nothing at all
    /// listens then. An empty host (`tcp://:22000`) listens on every address: `0.0.0.0` for the `4`
    /// schemes, `[::]` (dual-stack where the system allows) otherwise. An empty `listen` gives
    /// a `Net` that only dials.
    pub async fn bind(tls: TlsIdentity, listen: &[Address]) -> Result<Self, NetError> {
        Self::bind_on(tls, listen, quic::SocketKind::Best).await
    }

    /// [`Net::bind`] with its QUIC listeners on the UDP socket `kind` says.
    async fn bind_on(tls: TlsIdentity, listen: &[Address], kind: quic::SocketKind) -> Result<Self, NetError> {
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let (invite_tx, invite_rx) = mpsc::channel(INVITE_QUEUE);
        let tx = Incoming { bep: tx, invite: invite_tx };
        let (stop, _) = watch::channel(false);
        let mut net = Self {
            tls,
            local: Vec::new(),
            quic_listeners: Vec::new(),
            quic_stun: Vec::new(),
            quic_unavailable: Vec::new(),
            quic_dialers: Mutex::default(),
            incoming: tokio::sync::Mutex::new(rx),
            invites: Mutex::new(Some(invite_rx)),
            incoming_tx: tx.clone(),
            stop,
            tasks: Mutex::default(),
        };
        let mut first_quic_error = None;
        for addr in listen {
            let listen_err = |source| NetError::Listen { addr: addr.clone(), source };
            let socket_addr = listen_socket_addr(addr).await.map_err(listen_err)?;
            let (local, task) = match addr.transport {
                Transport::Tcp => {
                    let listener = tokio::net::TcpListener::bind(socket_addr).await.map_err(listen_err)?;
                    let local = listener.local_addr().map_err(listen_err)?;
                    let task = tcp::listen(listener, net.tls.clone(), tx.clone(), net.stop.subscribe());
                    (local, tokio::spawn(task))
                }
                Transport::Quic => {
                    let (endpoint, demux) = match quic::listen_endpoint(&net.tls, socket_addr, kind) {
                        Ok(bound) => bound,
                        Err(source) => {
                            let error = listen_err(source);
                            let reason = errors::error_chain(&error);
                            tracing::warn!("{reason}; QUIC is unavailable there, TCP still listens");
                            net.quic_unavailable.push(QuicUnavailable { addr: addr.clone(), reason });
                            first_quic_error.get_or_insert(error);
                            continue;
                        }
                    };
                    net.quic_listeners.push(endpoint.clone());
                    net.quic_stun.push(demux);
                    let local = endpoint.local_addr().map_err(listen_err)?;
                    let task = quic::listen(endpoint, net.tls.clone(), tx.clone(), net.stop.subscribe());
                    (local, tokio::spawn(task))
                }
                Transport::Relay => return Err(relay_is_no_address(addr)),
            };
            tracing::debug!(%local, transport = %addr.transport, "listening");
            // Kept in `net` at once: if a later address fails, dropping `net` stops this one.
            net.tasks.get_mut().unwrap_or_else(PoisonError::into_inner).push(task);
            net.local.push(Address::bound(addr.transport, addr.family, local));
        }
        match first_quic_error {
            Some(error) if net.local.is_empty() => Err(error),
            _ => Ok(net),
        }
    }

    /// Starts keeping a reservation on a relay; connections that devices open to us through
    /// it arrive on [`Net::accept`] like those of the listeners. The reservation lasts until
    /// the returned client is dropped or stopped.
    pub fn join_relay(&self, url: relay::RelayUrl) -> relay::RelayClient {
        relay::RelayClient::spawn(self.tls.clone(), url, self.incoming_tx.clone())
    }

    /// Reaches `expected` through a relay where it holds a reservation, pinned to `expected`
    /// as [`Net::dial`] is.
    pub async fn dial_relay(
        &self,
        url: &relay::RelayUrl,
        expected: DeviceId,
    ) -> Result<Connection, relay::RelayError> {
        if *self.stop.borrow() {
            return Err(relay::RelayError::ShutDown);
        }
        if expected == self.tls.device_id() {
            return Err(relay::RelayError::DialSelf);
        }
        relay::dial(&self.tls, url, expected).await
    }

    /// Asks the STUN server `server` (`host:port`) at which public address it sees the
    /// listening QUIC socket that dials it: the address a NAT maps that socket to, which peers
    /// can dial (or punch) back. The request goes out from that very socket, so the answer is
    /// its mapping; it is sent a few times over about four seconds and the whole query is
    /// bounded by about six. Returned as a `quic://` address.
    pub async fn stun(&self, server: &str) -> Result<Address, NetError> {
        if *self.stop.borrow() {
            return Err(NetError::ShutDown);
        }
        let resolved = tokio::net::lookup_host(server)
            .await
            .map_err(|source| NetError::Resolve { host: server.to_owned(), source })?;
        let mut last = None;
        for remote in resolved {
            let Some(demux) = self.stun_socket_for(remote) else { continue };
            match demux.query(remote).await {
                Ok(mapped) => {
                    let ip = mapped.ip().to_canonical();
                    return Ok(Address {
                        transport: Transport::Quic,
                        host: ip.to_string(),
                        port: mapped.port(),
                        family: Family::Any,
                    });
                }
                Err(source) => last = Some(NetError::Stun { server: server.to_owned(), source }),
            }
        }
        Err(last.unwrap_or_else(|| NetError::NoQuicListener { server: server.to_owned() }))
    }

    /// The STUN side of the listener that dials `remote` (see `quic_endpoint_for`).
    fn stun_socket_for(&self, remote: SocketAddr) -> Option<&std::sync::Arc<stun::Demux>> {
        self.quic_listeners.iter().zip(&self.quic_stun).find_map(|(endpoint, demux)| {
            let local = endpoint.local_addr().ok()?;
            let serves = local.is_ipv4() == remote.is_ipv4() && !local.ip().is_loopback();
            serves.then_some(demux)
        })
    }

    /// This device's ID.
    pub fn device_id(&self) -> DeviceId {
        self.tls.device_id()
    }

    /// The QUIC listen addresses that could not be used, in the order given to [`Net::bind`].
    pub fn quic_unavailable(&self) -> &[QuicUnavailable] {
        &self.quic_unavailable
    }

    /// The bound listen addresses, with the ports actually bound, in the order given to
    /// [`Net::bind`].
    pub fn local_addresses(&self) -> Vec<Address> {
        self.local.clone()
    }

    /// The next authenticated incoming connection from any listener.
    ///
    /// Handshakes run concurrently, each with [`HANDSHAKE_TIMEOUT`] (QUIC also waits up to
    /// [`QUIC_STREAM_TIMEOUT`] for the dialer's stream). A failed handshake, and a peer
    /// presenting this device's own certificate, are logged at debug level and skipped; they
    /// never end the listener. Returns `None` once the `Net` is shut down (and only then).
    /// Concurrent callers take turns.
    pub async fn accept(&self) -> Option<Connection> {
        let mut stop = self.stop.subscribe();
        if *stop.borrow_and_update() {
            return None;
        }
        let mut incoming = self.incoming.lock().await;
        tokio::select! {
            biased;
            () = stopped(&mut stop) => None,
            // `None` (every listener has ended, or there were none) disables this branch, so
            // the call waits for shutdown: `None` from `accept` always means "shut down".
            Some(conn) = incoming.recv() => Some(conn),
        }
    }

    /// The queue of incoming invitation connections (ALPN `peerfold-invite/1`), once: the
    /// caller that serves invitations takes it before the `Net` goes to the model. Untaken,
    /// invitation connections are dropped when the small queue is full.
    pub fn take_invites(&self) -> Option<mpsc::Receiver<Connection>> {
        self.invites.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Dials `addr` for the invitation exchange (ALPN `peerfold-invite/1`) with `expected`,
    /// otherwise as [`Net::dial`]. A peer that does not offer the protocol (Syncthing, an
    /// older Peerfold) fails the handshake.
    pub async fn dial_invite(&self, addr: &Address, expected: DeviceId) -> Result<Connection, NetError> {
        if *self.stop.borrow() {
            return Err(NetError::ShutDown);
        }
        if expected == self.tls.device_id() {
            return Err(NetError::DialSelf);
        }
        match tokio::time::timeout(DIAL_TIMEOUT, self.dial_inner(addr, expected, Protocol::Invite)).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout { what: format!("dialling {addr}") }),
        }
    }

    /// Dials `addr`, accepting only the device `expected`.
    ///
    /// Host names are resolved now; the resolved addresses of the right family are tried in
    /// order until one answers. Another device answering is [`NetError::WrongDevice`] (the
    /// handshake is aborted before anything is sent over it). The whole dial is bounded by
    /// [`DIAL_TIMEOUT`]. QUIC dials go out from a listening QUIC endpoint of the same IP family
    /// if there is one (so peers see our listening port), else from a client-only endpoint on
    /// an unspecified address and port 0, made on first use and kept.
    pub async fn dial(&self, addr: &Address, expected: DeviceId) -> Result<Connection, NetError> {
        if *self.stop.borrow() {
            return Err(NetError::ShutDown);
        }
        if expected == self.tls.device_id() {
            return Err(NetError::DialSelf);
        }
        self.dial_within(DIAL_TIMEOUT, addr, expected).await
    }

    async fn dial_within(
        &self,
        limit: Duration,
        addr: &Address,
        expected: DeviceId,
    ) -> Result<Connection, NetError> {
        match tokio::time::timeout(limit, self.dial_inner(addr, expected, Protocol::Bep)).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout { what: format!("dialling {addr}") }),
        }
    }

    async fn dial_inner(
        &self,
        addr: &Address,
        expected: DeviceId,
        protocol: Protocol,
    ) -> Result<Connection, NetError> {
        let mut last_error = None;
        for remote in resolve(addr).await? {
            let result = match addr.transport {
                Transport::Tcp => tcp::dial(&self.tls, remote, expected, protocol).await,
                Transport::Quic => {
                    let endpoint = self.quic_endpoint_for(remote)?;
                    quic::dial(&endpoint, &self.tls, remote, expected, protocol).await
                }
                Transport::Relay => Err(relay_is_no_address(addr)),
            };
            match result {
                // Nobody answered at this address; another may work. Any other error came from
                // the peer that did answer, so it is the answer.
                Err(e @ NetError::Connect { .. }) => last_error = Some(e),
                other => return other,
            }
        }
        Err(last_error.unwrap_or_else(|| NetError::NoAddress { addr: addr.clone() }))
    }

    /// The endpoint a QUIC dial to `remote` goes out from.
    fn quic_endpoint_for(&self, remote: SocketAddr) -> Result<quinn::Endpoint, NetError> {
        let listener = self.quic_listeners.iter().find(|endpoint| {
            endpoint.local_addr().is_ok_and(|local| {
                // A socket bound to loopback cannot reach anything else.
                local.is_ipv4() == remote.is_ipv4()
                    && (!local.ip().is_loopback() || remote.ip().is_loopback())
            })
        });
        if let Some(endpoint) = listener {
            return Ok(endpoint.clone());
        }
        let mut dialers = self.quic_dialers.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `close_endpoints` takes, so that a dial racing with
        // `shutdown` cannot leave a fresh endpoint open behind it.
        if *self.stop.borrow() {
            return Err(NetError::ShutDown);
        }
        let (slot, unspecified) = if remote.is_ipv4() {
            (&mut dialers.v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        } else {
            (&mut dialers.v6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        };
        if let Some(endpoint) = slot {
            return Ok(endpoint.clone());
        }
        let endpoint =
            quic::client_endpoint(SocketAddr::new(unspecified, 0)).map_err(NetError::QuicSocket)?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Stops the listeners, abandons handshakes in progress and closes the QUIC endpoints,
    /// which also closes every QUIC connection (ours and those handed out; their streams then
    /// fail). TCP connections already handed out are not touched: they belong to their holders.
    /// Waits briefly for the QUIC close to reach peers. Later [`Net::accept`] calls return
    /// `None` and [`Net::dial`] calls fail.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            // The listeners return as soon as they see the stop signal.
            let _ = task.await;
        }
        let endpoints = self.close_endpoints();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_LINGER;
        for endpoint in endpoints {
            let _ = tokio::time::timeout_at(deadline, endpoint.wait_idle()).await;
        }
    }

    fn close_endpoints(&self) -> Vec<quinn::Endpoint> {
        let mut endpoints = self.quic_listeners.clone();
        let mut dialers = self.quic_dialers.lock().unwrap_or_else(PoisonError::into_inner);
        endpoints.extend(dialers.v4.take());
        endpoints.extend(dialers.v6.take());
        for endpoint in &endpoints {
            endpoint.close(quic::CLOSE_CODE, quic::CLOSE_REASON);
        }
        endpoints
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for task in self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
        self.close_endpoints();
    }
}

fn relay_is_no_address(addr: &Address) -> NetError {
    NetError::BadAddress { input: addr.to_string(), reason: "relays are reached by relay URL".into() }
}

/// Resolves once `stop` is set (or its sender, the `Net`, is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The socket address to bind for a listen address.
async fn listen_socket_addr(addr: &Address) -> io::Result<SocketAddr> {
    if addr.host.is_empty() {
        let ip = match addr.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::Any | Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        return Ok(SocketAddr::new(ip, addr.port));
    }
    let mut candidates = tokio::net::lookup_host((addr.host.as_str(), addr.port)).await?;
    candidates.find(|candidate| addr.family.admits(candidate.ip())).ok_or_else(|| {
        io::Error::new(io::ErrorKind::AddrNotAvailable, "the host has no address of the scheme's family")
    })
}

/// The socket addresses to try when dialling `addr`, in resolver order.
async fn resolve(addr: &Address) -> Result<Vec<SocketAddr>, NetError> {
    if addr.host.is_empty() {
        return Err(NetError::BadAddress {
            input: addr.to_string(),
            reason: "an address without a host can only be listened on".into(),
        });
    }
    let candidates: Vec<SocketAddr> = match addr.ip() {
        Some(ip) => vec![SocketAddr::new(ip, addr.port)],
        None => tokio::net::lookup_host((addr.host.as_str(), addr.port))
            .await
            .map_err(|source| NetError::Resolve { host: addr.host.clone(), source })?
            .collect(),
    };
    let usable: Vec<SocketAddr> =
        candidates.into_iter().filter(|candidate| addr.family.admits(candidate.ip())).collect();
    if usable.is_empty() {
        return Err(NetError::NoAddress { addr: addr.clone() });
    }
    Ok(usable)
}

/// Hands an accepted connection to [`Net::accept`], unless the peer is this device itself
/// (a loop through discovery or a misconfigured address), which Syncthing also refuses.
async fn deliver(conn: Connection, own: DeviceId, tx: &Incoming) {
    if conn.device == own {
        tracing::debug!(remote = %conn.remote, transport = %conn.transport, "dropping a connection from this device itself");
        return;
    }
    tracing::debug!(
        remote = %conn.remote, transport = %conn.transport, device = %conn.device.short(),
        "accepted a connection"
    );
    if conn.protocol == Protocol::Invite {
        // Never waits: a full queue drops the connection (see INVITE_QUEUE).
        let _ = tx.invite.try_send(conn);
        return;
    }
    // A closed queue means the Net is shutting down; the connection just closes.
    let _ = tx.bep.send(conn).await;
}

/// What the negotiated ALPN protocol says the connection carries. A peer that did not
/// negotiate `bep/1.0` is logged and taken as BEP: Syncthing only logs it too, and refusing
/// would gain nothing, since the peer proved its identity anyway.
fn check_alpn(protocol: Option<&[u8]>, remote: SocketAddr) -> Protocol {
    if protocol == Some(ALPN_INVITE) {
        return Protocol::Invite;
    }
    if protocol != Some(ALPN_BEP) {
        tracing::debug!(%remote, "peer did not negotiate ALPN bep/1.0");
    }
    Protocol::Bep
}

/// Logs a failed incoming handshake: routine on the Internet, never fatal to the listener.
fn log_failed_handshake(transport: Transport, error: &NetError) {
    tracing::debug!(%transport, error = error as &(dyn StdError + 'static), "incoming connection failed");
}

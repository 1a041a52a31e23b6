//! Relays: Syncthing's relay protocol v1 on the client side.
//!
//! This module owns talking to a relay: its URL (`relay://host:port/?id=RELAY-ID`), the
//! protocol-mode connection (TLS, ALPN `bep-relay`, the relay pinned to its `?id=` like a
//! device), the permanent reservation that lets other devices reach us ([`RelayClient`]), the
//! temporary request for a session with a device that holds one ([`dial`]), and joining a
//! session. A session is a plain byte pipe through the relay; normal TLS+BEP runs inside it,
//! pinned to the device exactly as a direct dial, so the relay sees only ciphertext.
//!
//! Everything a relay sends goes through [`protocol`], which bounds it; a relay that sends
//! garbage, stalls or closes ends only its own connection or session.

pub mod protocol;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use self::protocol::{HEADER_LEN, Message, ProtocolError, SessionInvitation};
use super::tls::{SERVER_NAME, TlsIdentity, peer_device};
use super::{Connection, HANDSHAKE_TIMEOUT, Incoming, Protocol, Transport, check_alpn};
use crate::identity::DeviceId;

/// The ALPN protocol name of a relay's protocol mode.
pub const ALPN_RELAY: &[u8] = b"bep-relay";
/// The relay port when the URL has none (Syncthing's default).
pub const DEFAULT_RELAY_PORT: u16 = 22067;
/// How long one exchange with a relay (connect, handshake, request and answer) may take.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the permanent connection pings the relay (Syncthing relays drop a client that
/// says nothing for their network timeout, 2 minutes by default).
pub const PING_INTERVAL: Duration = Duration::from_secs(45);
/// Silence from the relay after which the permanent connection is considered dead.
pub const RELAY_SILENCE: Duration = Duration::from_secs(150);
/// The first and the longest wait before reconnecting to a relay.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How many sessions a dial asks for while their joins are refused as "already connected" or
/// the invited device never joins, and the first pause between them (it grows linearly).
const SESSION_ATTEMPTS: u32 = 4;
const SESSION_RETRY: Duration = Duration::from_millis(50);
/// How long a dialler waits inside a session for the first byte of the invited device before it
/// takes the device for absent and asks for a new session (on all but the last attempt, which
/// waits the whole [`HANDSHAKE_TIMEOUT`]). The device joins as soon as its invitation arrives;
/// its answer takes two round trips through the relay, far less than this even on poor links.
const PEER_ANSWER: Duration = Duration::from_secs(3);
/// Sessions being joined at once from invitations; more are refused, so a relay cannot make
/// us open unbounded sockets.
const MAX_PENDING_SESSIONS: usize = 16;

/// What can go wrong with a relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Not `relay://host:port/?id=DEVICE-ID`.
    #[error("bad relay address {input}: {reason}")]
    BadUrl { input: String, reason: String },
    /// The relay's host name does not resolve.
    #[error("cannot resolve relay {host}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    /// Connecting, reading or writing failed.
    #[error("relay i/o with {remote} failed")]
    Io {
        remote: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The TLS handshake with the relay, or with the device inside a session, failed.
    #[error("tls handshake via relay {remote} failed")]
    Handshake {
        remote: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The relay presented another certificate than its URL's `?id=`, or the device in the
    /// session is not the one invited.
    #[error("expected {expected} but {answered} answered")]
    WrongDevice { expected: DeviceId, answered: DeviceId },
    /// The relay sent something the protocol does not allow.
    #[error("relay {remote} sent a bad message")]
    Protocol {
        remote: SocketAddr,
        #[source]
        source: ProtocolError,
    },
    /// The relay answered with a message we did not expect here.
    #[error("relay {remote} sent an unexpected {got}")]
    Unexpected { remote: SocketAddr, got: String },
    /// The relay refused the request.
    #[error("relay {remote} refused: {code} {message}")]
    Refused { remote: SocketAddr, code: i32, message: String },
    /// The relay has no room.
    #[error("relay {remote} is full")]
    Full { remote: SocketAddr },
    /// An exchange took longer than [`RELAY_TIMEOUT`].
    #[error("{what} timed out")]
    Timeout { what: String },
    /// The relay let us into a session, but nothing came from the invited device within
    /// `PEER_ANSWER` (3 s): the relay refused or lost its join.
    #[error("the invited device did not answer in the session at {remote}")]
    PeerAbsent { remote: SocketAddr },
    /// Dialling this device's own ID through a relay.
    #[error("refusing to dial this device's own ID")]
    DialSelf,
    /// The `Net` was shut down.
    #[error("the network layer is shut down")]
    ShutDown,
}

/// A relay's address: host, port, and the device ID its certificate must hash to.
///
/// Syncthing's URLs carry more query parameters (`pingInterval`, `networkTimeout`,
/// `sessionLimitBps`, …); they are informational and ignored here. `Display` prints the form
/// Peerfold announces, `relay://host:port/?id=ID`, which parses back to the same value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayUrl {
    /// A host name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// The relay's device ID.
    pub id: DeviceId,
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "relay://[{}]:{}/?id={}", self.host, self.port, self.id)
        } else {
            write!(f, "relay://{}:{}/?id={}", self.host, self.port, self.id)
        }
    }
}

impl FromStr for RelayUrl {
    type Err = RelayError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| RelayError::BadUrl { input: input.to_owned(), reason: reason.to_owned() };
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad("expected relay://host:port/?id=RELAY-DEVICE-ID"));
        };
        if !scheme.eq_ignore_ascii_case("relay") {
            return Err(bad("the scheme must be relay"));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a.strip_suffix('/').unwrap_or(a), q),
            None => (rest.strip_suffix('/').unwrap_or(rest), ""),
        };
        if authority.contains(['/', '#', '@']) {
            return Err(bad("only relay://host:port/?id=… is allowed (no path or user)"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((ip, after)) = bracketed.split_once(']') else {
                return Err(bad("missing ] after the IPv6 address"));
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address between [ and ]"));
            }
            (ip, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the relay's host is missing"));
        }
        let port = match port {
            None | Some("") => DEFAULT_RELAY_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        let mut id = None;
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("id=") {
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                id = Some(value.parse::<DeviceId>().map_err(|_| bad("?id= is not a device ID"))?);
            }
        }
        // Without the ID the relay could be anyone; Syncthing's pool URLs always carry it.
        let Some(id) = id else {
            return Err(bad("?id=RELAY-DEVICE-ID is required to authenticate the relay"));
        };
        Ok(Self { host: host.to_owned(), port, id })
    }
}

impl RelayUrl {
    async fn resolve(&self) -> Result<Vec<SocketAddr>, RelayError> {
        if let Ok(ip) = self.host.parse() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| RelayError::Resolve { host: self.host.clone(), source })?
            .collect();
        if addrs.is_empty() {
            return Err(RelayError::Resolve {
                host: self.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        }
        Ok(addrs)
    }
}

/// Reads one message; a relay can make this allocate at most [`protocol::MAX_BODY`] bytes.
async fn read_message<R: AsyncRead + Unpin>(r: &mut R, remote: SocketAddr) -> Result<Message, RelayError> {
    let io = |source| RelayError::Io { remote, source };
    let proto = |source| RelayError::Protocol { remote, source };
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head).await.map_err(io)?;
    let header = protocol::decode_header(&head).map_err(proto)?;
    let mut body = vec![0u8; header.len];
    r.read_exact(&mut body).await.map_err(io)?;
    protocol::decode_body(header, &body).map_err(proto)
}

async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &Message,
    remote: SocketAddr,
) -> Result<(), RelayError> {
    let bytes = protocol::encode(msg).map_err(|source| RelayError::Protocol { remote, source })?;
    w.write_all(&bytes).await.map_err(|source| RelayError::Io { remote, source })?;
    w.flush().await.map_err(|source| RelayError::Io { remote, source })
}

async fn within<T>(
    what: impl FnOnce() -> String,
    f: impl Future<Output = Result<T, RelayError>>,
) -> Result<T, RelayError> {
    tokio::time::timeout(RELAY_TIMEOUT, f).await.unwrap_or_else(|_| Err(RelayError::Timeout { what: what() }))
}

type RelayStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens a protocol-mode connection: TLS with ALPN `bep-relay`, the relay pinned to `url.id`.
async fn connect_protocol(
    tls: &TlsIdentity,
    url: &RelayUrl,
) -> Result<(RelayStream, SocketAddr), RelayError> {
    let mut last = None;
    for remote in url.resolve().await? {
        let socket = match TcpStream::connect(remote).await {
            Ok(s) => s,
            Err(source) => {
                last = Some(RelayError::Io { remote, source });
                continue;
            }
        };
        let (config, answered) = tls.relay_client_config(url.id);
        let name = ServerName::try_from(SERVER_NAME)
            .map_err(|e| RelayError::Handshake { remote, source: e.into() })?;
        let stream = TlsConnector::from(config).connect(name, socket).await.map_err(|e| {
            match *answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                Some(answered) => RelayError::WrongDevice { expected: url.id, answered },
                None => RelayError::Handshake { remote, source: e.into() },
            }
        })?;
        return Ok((stream, remote));
    }
    Err(last.unwrap_or_else(|| RelayError::Timeout { what: format!("connecting to {url}") }))
}

/// Reads a `Response` and turns anything but success into an error.
async fn expect_success<R: AsyncRead + Unpin>(r: &mut R, remote: SocketAddr) -> Result<(), RelayError> {
    match read_message(r, remote).await? {
        Message::Response { code: protocol::CODE_SUCCESS, .. } => Ok(()),
        Message::Response { code, message } => Err(RelayError::Refused { remote, code, message }),
        Message::RelayFull => Err(RelayError::Full { remote }),
        other => Err(RelayError::Unexpected { remote, got: format!("{other:?}") }),
    }
}

/// Reaches `expected` through the relay `url`, where it must hold a reservation: asks the
/// relay for a session (temporary protocol mode), joins it and runs TLS inside it, pinned to
/// `expected` exactly as a direct dial. The whole dial is bounded by a few [`RELAY_TIMEOUT`]s.
pub async fn dial(tls: &TlsIdentity, url: &RelayUrl, expected: DeviceId) -> Result<Connection, RelayError> {
    fresh_sessions(|last| dial_once(tls, url, expected, (!last).then_some(PEER_ANSWER))).await
}

/// Runs `attempt` (ask for a session and join it; its argument says whether it is the last)
/// again while a join is refused as "already connected". `strelaysrv` starts a session's
/// goroutine as it sends the invitations, and that goroutine takes a join only while it waits
/// in its `select`: a join that comes before it runs, or while it stores the other side's
/// join, is refused, and has used up the session's key (`findSession` deletes it), so joining
/// again gets "not found". When our join is the refused one we see it; when the invited
/// device's is, we see only silence ([`RelayError::PeerAbsent`]). Both were seen in CI
/// (`relay::two_devices_without_listeners_connect_through_the_real_relay`); a new session is
/// what works.
async fn fresh_sessions<T, F, Fut>(mut attempt: F) -> Result<T, RelayError>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, RelayError>>,
{
    let mut tries = 1;
    loop {
        match attempt(tries == SESSION_ATTEMPTS).await {
            Err(
                RelayError::Refused { code: protocol::CODE_ALREADY_CONNECTED, .. }
                | RelayError::PeerAbsent { .. },
            ) if tries < SESSION_ATTEMPTS => {
                tokio::time::sleep(SESSION_RETRY * tries).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

async fn dial_once(
    tls: &TlsIdentity,
    url: &RelayUrl,
    expected: DeviceId,
    answer_within: Option<Duration>,
) -> Result<Connection, RelayError> {
    let invitation = within(|| format!("asking {url} for a session"), async {
        let (mut stream, remote) = connect_protocol(tls, url).await?;
        let request = Message::ConnectRequest { id: expected.as_bytes().to_vec() };
        write_message(&mut stream, &request, remote).await?;
        match read_message(&mut stream, remote).await? {
            Message::SessionInvitation(inv) => Ok((inv, remote)),
            Message::Response { code, message } => Err(RelayError::Refused { remote, code, message }),
            Message::RelayFull => Err(RelayError::Full { remote }),
            other => Err(RelayError::Unexpected { remote, got: format!("{other:?}") }),
        }
    })
    .await?;
    let (inv, relay) = invitation;
    if inv.from.as_slice() != expected.as_bytes() {
        return Err(RelayError::Unexpected {
            remote: relay,
            got: "an invitation from another device".into(),
        });
    }
    session(tls, relay, &inv, expected, answer_within).await
}

/// Joins the session of `inv` (at the relay's own address `relay` unless the invitation names
/// another) and runs TLS over it in the role the invitation gives, accepting only `expected`.
/// As TLS client, with `answer_within`, a session where nothing at all comes back within that
/// time is [`RelayError::PeerAbsent`]; once a byte came, the handshake has the rest of
/// [`HANDSHAKE_TIMEOUT`].
async fn session(
    tls: &TlsIdentity,
    relay: SocketAddr,
    inv: &SessionInvitation,
    expected: DeviceId,
    answer_within: Option<Duration>,
) -> Result<Connection, RelayError> {
    let ip = inv.ip().map_err(|source| RelayError::Protocol { remote: relay, source })?;
    let remote = SocketAddr::new(ip.unwrap_or(relay.ip()), inv.port);
    // One join per key: a refused join has used the key up (see `fresh_sessions`).
    let socket = within(|| format!("joining a session at {remote}"), async {
        let mut socket =
            TcpStream::connect(remote).await.map_err(|source| RelayError::Io { remote, source })?;
        let join = Message::JoinSessionRequest { key: inv.key.clone() };
        write_message(&mut socket, &join, remote).await?;
        expect_success(&mut socket, remote).await?;
        Ok(socket)
    })
    .await?;
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().map_err(|source| RelayError::Io { remote, source })?;
    let handshake = |e: io::Error| RelayError::Handshake { remote, source: e.into() };
    let tls_timeout = || RelayError::Timeout { what: format!("tls handshake via {remote}") };
    // As TLS server the peer may also ask for an invitation exchange, which `deliver` routes.
    let (device, protocol, stream, outgoing): (Option<DeviceId>, Protocol, super::BoxStream, bool) =
        if inv.server_socket {
            let acceptor = TlsAcceptor::from(tls.server_config());
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                .await
                .map_err(|_| tls_timeout())?
                .map_err(handshake)?;
            let session = stream.get_ref().1;
            let protocol = check_alpn(session.alpn_protocol(), remote);
            (peer_device(session.peer_certificates()), protocol, Box::new(stream), false)
        } else {
            let (config, answered) = tls.client_config(expected, Protocol::Bep);
            let name = ServerName::try_from(SERVER_NAME)
                .map_err(|e| RelayError::Handshake { remote, source: e.into() })?;
            let heard = Arc::new(AtomicBool::new(false));
            let socket = Heard { inner: socket, heard: Arc::clone(&heard) };
            let connect = TlsConnector::from(config).connect(name, socket);
            tokio::pin!(connect);
            let first = answer_within.unwrap_or(HANDSHAKE_TIMEOUT);
            let connected = match tokio::time::timeout(first, &mut connect).await {
                Ok(connected) => connected,
                Err(_) if !heard.load(Ordering::Relaxed) && answer_within.is_some() => {
                    return Err(RelayError::PeerAbsent { remote });
                }
                Err(_) => tokio::time::timeout(HANDSHAKE_TIMEOUT.saturating_sub(first), connect)
                    .await
                    .map_err(|_| tls_timeout())?,
            };
            let stream = connected.map_err(|e| {
                match *answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    Some(answered) => RelayError::WrongDevice { expected, answered },
                    None => handshake(e),
                }
            })?;
            (peer_device(stream.get_ref().1.peer_certificates()), Protocol::Bep, Box::new(stream), true)
        };
    let device = device
        .ok_or_else(|| RelayError::Handshake { remote, source: "the peer sent no certificate".into() })?;
    // As TLS server we accept any certificate; the invitation named who should be there.
    if device != expected {
        return Err(RelayError::WrongDevice { expected, answered: device });
    }
    Ok(Connection { device, remote, local, transport: Transport::Relay, outgoing, protocol, stream })
}

/// Whether a [`RelayClient`] holds its reservation now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayState {
    /// Connecting, or waiting to reconnect after the last error.
    Connecting { last_error: Option<String> },
    /// Joined: devices can reach us through this relay.
    Joined,
}

/// A permanent reservation on one relay, kept by a background task: it connects, joins,
/// pings, answers pings, accepts session invitations (passing the authenticated connections
/// on), and reconnects with exponential backoff after any error. Dropping it (or calling
/// [`RelayClient::stop`]) ends the task and closes the reservation.
#[derive(Debug)]
pub struct RelayClient {
    url: RelayUrl,
    state: watch::Receiver<RelayState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayClient {
    /// Starts keeping a reservation on `url`; connections from invitations go to `incoming`.
    pub(super) fn spawn(tls: TlsIdentity, url: RelayUrl, incoming: Incoming) -> Self {
        let (state_tx, state) = watch::channel(RelayState::Connecting { last_error: None });
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(permanent(tls, url.clone(), incoming, state_tx, stop_rx));
        Self { url, state, stop: Some(stop), task }
    }

    /// The relay this client holds (or tries to hold) a reservation on.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// The reservation's state, to watch (announce the relay address only while joined).
    pub fn state(&self) -> watch::Receiver<RelayState> {
        self.state.clone()
    }

    /// Ends the reservation and waits for the task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RelayClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn permanent(
    tls: TlsIdentity,
    url: RelayUrl,
    incoming: Incoming,
    state: watch::Sender<RelayState>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            _ = &mut stop => return,
            r = reservation(&tls, &url, &incoming, &state) => r,
        };
        let error = match result {
            Ok(()) => return, // the Net is gone
            Err(e) => e,
        };
        tracing::debug!(relay = %url, error = &error as &dyn std::error::Error, "relay connection ended");
        state.send_replace(RelayState::Connecting { last_error: Some(error.to_string()) });
        // A reservation that lasted a while was healthy: start the backoff over.
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One protocol-mode connection: join, then serve it until an error. `Ok` only when the
/// connection queue is closed (the `Net` shut down).
async fn reservation(
    tls: &TlsIdentity,
    url: &RelayUrl,
    incoming: &Incoming,
    state: &watch::Sender<RelayState>,
) -> Result<(), RelayError> {
    let (stream, remote) = within(|| format!("joining {url}"), async {
        let (mut stream, remote) = connect_protocol(tls, url).await?;
        write_message(&mut stream, &Message::JoinRelayRequest { token: String::new() }, remote).await?;
        expect_success(&mut stream, remote).await?;
        Ok((stream, remote))
    })
    .await?;
    tracing::info!(relay = %url, "joined relay");
    state.send_replace(RelayState::Joined);
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Messages are read by their own task so that a read is never cancelled half-way.
    let (msg_tx, mut msgs) = mpsc::channel::<Result<Message, RelayError>>(4);
    let read_task = tokio::spawn(async move {
        loop {
            let msg = read_message(&mut reader, remote).await;
            let end = msg.is_err();
            if msg_tx.send(msg).await.is_err() || end {
                return;
            }
        }
    });
    let _abort_reader = AbortOnDrop(read_task);
    let mut sessions = tokio::task::JoinSet::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            msg = msgs.recv() => {
                let Some(msg) = msg else { return Err(RelayError::Timeout { what: "relay reader".into() }) };
                last_heard = tokio::time::Instant::now();
                match msg? {
                    Message::Ping => write_message(&mut writer, &Message::Pong, remote).await?,
                    Message::Pong => {}
                    Message::RelayFull => return Err(RelayError::Full { remote }),
                    Message::SessionInvitation(inv) => {
                        while sessions.try_join_next().is_some() {}
                        if sessions.len() >= MAX_PENDING_SESSIONS {
                            tracing::debug!(relay = %url, "too many relay sessions being joined; dropping an invitation");
                            continue;
                        }
                        let Ok(from) = <[u8; 32]>::try_from(inv.from.as_slice()) else {
                            return Err(RelayError::Unexpected { remote, got: "an invitation without a device ID".into() });
                        };
                        let from = DeviceId::from_bytes(from);
                        let (tls, incoming) = (tls.clone(), incoming.clone());
                        sessions.spawn(async move {
                            match session(&tls, remote, &inv, from, None).await {
                                Ok(conn) => super::deliver(conn, tls.device_id(), &incoming).await,
                                Err(e) => tracing::debug!(error = &e as &dyn std::error::Error, "relay session failed"),
                            }
                        });
                    }
                    other => return Err(RelayError::Unexpected { remote, got: format!("{other:?}") }),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > RELAY_SILENCE {
                    return Err(RelayError::Timeout { what: format!("waiting for {url}") });
                }
                within(|| format!("pinging {url}"), write_message(&mut writer, &Message::Ping, remote)).await?;
            }
            () = incoming.bep.closed() => return Ok(()),
        }
    }
}

/// A session's socket that notes its first byte from the relay, so that a dialler can tell a
/// device that never joined (silence) from one that is slow to finish the handshake.
struct Heard<S> {
    inner: S,
    heard: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard.store(true, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ARUBOQ3-2O3G3YO-43FRTGR-6XLPNLX-2AW7H5L-A5T4HY6-Z7UAWCP-QYJDGAR";

    #[test]
    fn relay_urls() {
        let full = format!(
            "relay://127.0.0.1:22067/?id={ID}&pingInterval=1m0s&networkTimeout=2m0s&sessionLimitBps=0&globalLimitBps=0&statusAddr=&providedBy="
        );
        let url: RelayUrl = full.parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 22067));
        assert_eq!(url.id.to_string(), ID);
        assert_eq!(url.to_string(), format!("relay://127.0.0.1:22067/?id={ID}"));
        assert_eq!(url.to_string().parse::<RelayUrl>().unwrap(), url);

        let v6: RelayUrl = format!("relay://[::1]:1/?id={ID}").parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1));
        assert_eq!(v6.to_string().parse::<RelayUrl>().unwrap(), v6);
        let default: RelayUrl = format!("relay://relay.example/?id={ID}").parse().unwrap();
        assert_eq!(default.port, DEFAULT_RELAY_PORT);

        for bad in [
            "relay://127.0.0.1:22067/".to_owned(),
            format!("tcp://127.0.0.1:22067/?id={ID}"),
            format!("relay://:22067/?id={ID}"),
            format!("relay://127.0.0.1:0/?id={ID}"),
            format!("relay://127.0.0.1:22067/path?id={ID}"),
            "relay://127.0.0.1:22067/?id=NOT-AN-ID".to_owned(),
        ] {
            assert!(bad.parse::<RelayUrl>().is_err(), "{bad}");
        }
    }

    fn refused(code: i32) -> RelayError {
        RelayError::Refused { remote: "127.0.0.1:22067".parse().unwrap(), code, message: String::new() }
    }

    /// [`fresh_sessions`] over attempts whose n-th (from 1) answers `answer(n)`: its result,
    /// and how many attempts it made.
    /// Also checks that only the last attempt is told it is the last.
    async fn attempts(answer: impl Fn(u32) -> Result<u32, RelayError>) -> (Result<u32, RelayError>, u32) {
        let calls = std::cell::Cell::new(0);
        let result = fresh_sessions(|last| {
            calls.set(calls.get() + 1);
            assert_eq!(last, calls.get() == SESSION_ATTEMPTS);
            std::future::ready(answer(calls.get()))
        })
        .await;
        (result, calls.get())
    }

    /// A join refused as "already connected" used up its session's key at `strelaysrv`, and a
    /// session where the invited device never answers will stay silent: the dial asks for a new
    /// session, a bounded number of times; any other refusal ends it at once.
    #[tokio::test(start_paused = true)]
    async fn a_refused_or_silent_session_asks_for_a_new_session() {
        let already = || refused(protocol::CODE_ALREADY_CONNECTED);
        let (twice_refused, calls) = attempts(|n| if n < 3 { Err(already()) } else { Ok(n) }).await;
        assert_eq!((twice_refused.unwrap(), calls), (3, 3));

        let (always, calls) = attempts(|_| Err(already())).await;
        assert!(matches!(always, Err(RelayError::Refused { code: protocol::CODE_ALREADY_CONNECTED, .. })));
        assert_eq!(calls, SESSION_ATTEMPTS);

        let absent = || RelayError::PeerAbsent { remote: "127.0.0.1:22067".parse().unwrap() };
        let (absent_once, calls) = attempts(|n| if n < 2 { Err(absent()) } else { Ok(n) }).await;
        assert_eq!((absent_once.unwrap(), calls), (2, 2));
        let (always_absent, calls) = attempts(|_| Err(absent())).await;
        assert!(matches!(always_absent, Err(RelayError::PeerAbsent { .. })));
        assert_eq!(calls, SESSION_ATTEMPTS);

        let (not_found, calls) = attempts(|_| Err(refused(protocol::CODE_NOT_FOUND))).await;
        assert!(matches!(not_found, Err(RelayError::Refused { code: protocol::CODE_NOT_FOUND, .. })));
        assert_eq!(calls, 1);
    }
}

//! BEP over TLS 1.3 over TCP: the listener task and the dialer.

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::tls::{SERVER_NAME, TlsIdentity, peer_device};
use super::{
    Connection, HANDSHAKE_TIMEOUT, Handshakes, Incoming, NetError, Protocol, Transport, check_alpn, deliver,
    log_failed_handshake, stopped,
};
use crate::identity::DeviceId;

/// How long to pause after a failed `accept()` (typically out of file descriptors), so that the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Accepts connections on `listener` until `stop` is set, running each TLS handshake in its own
/// task and passing the authenticated connections to `tx`. Handshakes still running when it
/// returns are abandoned.
pub(super) async fn listen(
    listener: TcpListener,
    tls: TlsIdentity,
    tx: Incoming,
    mut stop: watch::Receiver<bool>,
) {
    let mut handshakes = Handshakes::default();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = handshakes.reap() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, remote)) => {
                    let (tls, tx) = (tls.clone(), tx.clone());
                    handshakes.start(remote.ip(), async move {
                        match accept(&tls, socket, remote).await {
                            Ok(conn) => deliver(conn, tls.device_id(), &tx).await,
                            Err(e) => log_failed_handshake(Transport::Tcp, &e),
                        }
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "accepting a TCP connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

/// The server side of the TLS handshake on an accepted socket.
async fn accept(tls: &TlsIdentity, socket: TcpStream, remote: SocketAddr) -> Result<Connection, NetError> {
    let local = socket.local_addr().map_err(|e| NetError::Handshake { remote, source: e.into() })?;
    set_nodelay(&socket);
    let acceptor = TlsAcceptor::from(tls.server_config());
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
        .await
        .map_err(|_| NetError::Timeout { what: format!("tls handshake with {remote}") })?
        .map_err(|e| NetError::Handshake { remote, source: e.into() })?;
    let session = stream.get_ref().1;
    let protocol = check_alpn(session.alpn_protocol(), remote);
    // The verifier made the certificate mandatory; this only guards against a rustls surprise.
    let device = peer_device(session.peer_certificates())
        .ok_or_else(|| NetError::Handshake { remote, source: "the peer sent no certificate".into() })?;
    Ok(Connection {
        device,
        remote,
        local,
        transport: Transport::Tcp,
        outgoing: false,
        protocol,
        stream: Box::new(stream),
    })
}

/// Connects to `remote` and runs the client side of the TLS handshake, accepting only
/// `expected`. The caller bounds the time it takes.
pub(super) async fn dial(
    tls: &TlsIdentity,
    remote: SocketAddr,
    expected: DeviceId,
    protocol: Protocol,
) -> Result<Connection, NetError> {
    let socket = TcpStream::connect(remote).await.map_err(|source| NetError::Connect { remote, source })?;
    let local = socket.local_addr().map_err(|source| NetError::Connect { remote, source })?;
    set_nodelay(&socket);
    let (config, answered) = tls.client_config(expected, protocol);
    let name = ServerName::try_from(SERVER_NAME).map_err(NetError::tls)?;
    let stream = TlsConnector::from(config)
        .connect(name, socket)
        .await
        .map_err(|e| NetError::handshake(remote, expected, &answered, e))?;
    let session = stream.get_ref().1;
    let negotiated = check_alpn(session.alpn_protocol(), remote);
    let device = peer_device(session.peer_certificates())
        .ok_or_else(|| NetError::Handshake { remote, source: "the peer sent no certificate".into() })?;
    Ok(Connection {
        device,
        remote,
        local,
        transport: Transport::Tcp,
        outgoing: true,
        protocol: negotiated,
        stream: Box::new(stream),
    })
}

/// BEP sends small request and response messages whose latency matters more than packet
/// count, so Nagle's algorithm is off (as in Syncthing).
fn set_nodelay(socket: &TcpStream) {
    if let Err(error) = socket.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

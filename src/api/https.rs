//! HTTPS for the GUI address (`[gui] tls = true`): the certificate and a listener that hands
//! axum connections whose TLS handshake is done.
//!
//! The certificate is `https-cert.pem` / `https-key.pem` in the home, generated self-signed on
//! first use (as Syncthing does) for the names a browser uses for this machine; replace the
//! two files with a certificate of your own and it is used instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::ApiError;

pub const CERT_FILE: &str = "https-cert.pem";
pub const KEY_FILE: &str = "https-key.pem";

/// A browser that opens a connection and never finishes the handshake holds nothing past this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS configuration for the GUI address, from the home's certificate files (generated
/// first if there are none).
pub fn server_config(home: &Path) -> Result<Arc<ServerConfig>, ApiError> {
    let (cert_path, key_path) = (home.join(CERT_FILE), home.join(KEY_FILE));
    if !cert_path.exists() && !key_path.exists() {
        generate(&cert_path, &key_path)?;
    }
    let bad = |path: &PathBuf, reason: String| ApiError::Certificate { path: path.clone(), reason };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&cert_path, "no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&cert_path, format!("it does not go with {}: {e}", key_path.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate for the names this machine is reached by: localhost, the loopback
/// addresses and the host name. The key is written owner-only.
fn generate(cert_path: &Path, key_path: &Path) -> Result<(), ApiError> {
    let bad = |reason: String| ApiError::Certificate { path: cert_path.to_owned(), reason };
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Some(host) = gethostname::gethostname().to_str().filter(|h| !h.is_empty()) {
        names.push(host.to_owned());
    }
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).map_err(|e| bad(e.to_string()))?;
    let write =
        |path: &Path, text: String, mode: u32| crate::fsutil::write_atomic(path, text.as_bytes(), mode);
    write(key_path, signing_key.serialize_pem(), 0o600).map_err(|e| bad(crate::errors::error_chain(&e)))?;
    write(cert_path, cert.pem(), 0o644).map_err(|e| bad(crate::errors::error_chain(&e)))?;
    Ok(())
}

/// Accepts TCP connections and completes their TLS handshakes off the accept path, so one slow
/// or silent client cannot hold up the others.
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (send, handshaken) = mpsc::channel(16);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait instead of spinning.
                        tracing::debug!(error = %e, "GUI accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (tls, send) = (tls.clone(), send.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = send.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "GUI TLS handshake"),
                        Err(_) => tracing::debug!(%peer, "GUI TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { handshaken, addr, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The acceptor task ended, which it does only when aborted: nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

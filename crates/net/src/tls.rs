//! The TLS side of BEP: this device's rustls configurations and the verifiers that turn a peer
//! certificate into a [`DeviceId`].
//!
//! Syncthing's trust model has no certificate authority: every device presents one self-signed
//! certificate, and a device *is* the SHA-256 of that certificate. So the verifiers here skip
//! chains, names and expiry on purpose, and check only two things:
//!
//! * the TLS 1.3 CertificateVerify signature, against the certificate's public key, so the peer
//!   has proven that it holds the key (without it anyone could replay a public certificate);
//! * when dialling, that the certificate hashes to the device we meant to reach.
//!
//! (Both also refuse a chain of more than one certificate, which Syncthing would close anyway.)
//!
//! Everything else follows Syncthing 1.19: TLS 1.3 only, ALPN `bep/1.0`, a mandatory client
//! certificate, no session resumption, no SNI. The ring provider is passed explicitly, so no
//! process-wide default provider is needed or installed.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use quinn::crypto::rustls::QuicServerConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ServerConfig};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::NetError;
use crate::identity::{DeviceId, Identity};

/// The ALPN protocol name BEP offers on TCP and QUIC.
pub const ALPN_BEP: &[u8] = b"bep/1.0";
/// The ALPN protocol name of Peerfold's invitation exchange (`crate::invite`), offered by our
/// listeners beside BEP. Syncthing never offers it, so it always gets `bep/1.0`.
pub const ALPN_INVITE: &[u8] = b"peerfold-invite/1";

/// The server name the client side uses. It is never sent (SNI is off, as in Syncthing) and
/// never checked: the peer is pinned by device ID instead.
pub(crate) const SERVER_NAME: &str = "syncthing";

/// This device's TLS configuration, built once from its [`Identity`] and shared by every
/// listener and dial. Cloning is cheap.
#[derive(Clone)]
pub struct TlsIdentity {
    device: DeviceId,
    provider: Arc<CryptoProvider>,
    server: Arc<ServerConfig>,
    /// The client side without a usable server verifier: each dial clones it and pins the
    /// device it expects (see [`TlsIdentity::client_config`]).
    client: Arc<ClientConfig>,
    quic_server: Arc<QuicServerConfig>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("device", &self.device.to_string()).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Builds the server and client configurations for this device's certificate and key.
    pub fn new(identity: &Identity) -> Result<Self, NetError> {
        Self::from_parts(identity.cert().clone(), identity.key_der().clone_key())
    }

    /// The same from a certificate and key that need not be on disk (tests use other key types).
    pub(crate) fn from_parts(
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, NetError> {
        let device = DeviceId::from_cert_der(&cert);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;

        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(NetError::tls)?
            .with_client_cert_verifier(Arc::new(AnyDeviceVerifier { algorithms }))
            .with_single_cert(vec![cert.clone()], key.clone_key())
            .map_err(NetError::tls)?;
        server.alpn_protocols = vec![ALPN_BEP.to_vec(), ALPN_INVITE.to_vec()];
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(NetError::tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedDeviceVerifier::new(None, algorithms)))
            .with_client_auth_cert(vec![cert], key)
            .map_err(NetError::tls)?;
        client.alpn_protocols = vec![ALPN_BEP.to_vec()];
        client.resumption = Resumption::disabled();
        client.enable_sni = false;

        let server = Arc::new(server);
        let quic_server = Arc::new(QuicServerConfig::try_from(server.clone()).map_err(NetError::tls)?);
        Ok(Self { device, provider, server, client: Arc::new(client), quic_server })
    }

    /// This device's ID (the hash of the certificate it presents).
    pub fn device_id(&self) -> DeviceId {
        self.device
    }

    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    pub(crate) fn quic_server_config(&self) -> Arc<QuicServerConfig> {
        self.quic_server.clone()
    }

    /// A client configuration for one dial that accepts only `expected`, and the slot where its
    /// verifier records the device that answered instead, if another one did.
    pub(crate) fn client_config(
        &self,
        expected: DeviceId,
        protocol: super::Protocol,
    ) -> (Arc<ClientConfig>, Arc<Mutex<Option<DeviceId>>>) {
        let verifier =
            PinnedDeviceVerifier::new(Some(expected), self.provider.signature_verification_algorithms);
        let answered = verifier.wrong_device.clone();
        let mut config = (*self.client).clone();
        config.dangerous().set_certificate_verifier(Arc::new(verifier));
        if protocol == super::Protocol::Invite {
            config.alpn_protocols = vec![ALPN_INVITE.to_vec()];
        }
        (Arc::new(config), answered)
    }

    /// [`TlsIdentity::client_config`] for a relay's protocol mode: the relay is pinned to the
    /// `?id=` of its URL like a device, and the ALPN is `bep-relay` instead of `bep/1.0`.
    pub(crate) fn relay_client_config(
        &self,
        relay: DeviceId,
    ) -> (Arc<ClientConfig>, Arc<Mutex<Option<DeviceId>>>) {
        let (config, answered) = self.client_config(relay, super::Protocol::Bep);
        let mut config = (*config).clone();
        config.alpn_protocols = vec![super::relay::ALPN_RELAY.to_vec()];
        (Arc::new(config), answered)
    }
}

/// The device a peer's certificate chain identifies: the hash of its first (leaf) certificate.
pub(crate) fn peer_device(certs: Option<&[CertificateDer<'_>]>) -> Option<DeviceId> {
    certs.and_then(<[_]>::first).map(|cert| DeviceId::from_cert_der(cert))
}

/// Syncthing closes a connection whose peer sent more than one certificate; refusing it in the
/// handshake gives the peer a TLS alert instead of a silent close.
fn single_certificate(intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
    if intermediates.is_empty() {
        Ok(())
    } else {
        Err(rustls::Error::General(format!(
            "peer sent {} certificates; a device presents exactly one",
            intermediates.len() + 1
        )))
    }
}

/// The server side: requires a client certificate and accepts any device, since which devices
/// may connect is decided after the handshake, from the device ID.
#[derive(Debug)]
struct AnyDeviceVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyDeviceVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        single_certificate(intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client side: accepts exactly one device. With `expected == None` (the template
/// configuration, never used to dial) it accepts nothing.
#[derive(Debug)]
struct PinnedDeviceVerifier {
    expected: Option<DeviceId>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The device that answered when it was not the expected one, for the dial error.
    wrong_device: Arc<Mutex<Option<DeviceId>>>,
}

impl PinnedDeviceVerifier {
    fn new(expected: Option<DeviceId>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { expected, algorithms, wrong_device: Arc::default() }
    }
}

impl ServerCertVerifier for PinnedDeviceVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        single_certificate(intermediates)?;
        let answered = DeviceId::from_cert_der(end_entity);
        match self.expected {
            Some(expected) if expected == answered => Ok(ServerCertVerified::assertion()),
            Some(_) => {
                // The dial turns this into `NetError::WrongDevice`; the peer gets access_denied.
                *self.wrong_device.lock().unwrap_or_else(PoisonError::into_inner) = Some(answered);
                Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
            }
            None => Err(rustls::Error::General("no device to expect was configured".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    macro_rules! vector_path {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $name)
        };
    }

    const M4OZKWP: &str = "M4OZKWP-JW5L7WR-VKC4Y3Q-7AOVC5M-NZNR5GE-K6UINM2-FYHD55N-3NOEVQZ";
    const OM3WNIV: &str = "OM3WNIV-PFCX3O5-PKDHWWZ-RLDF7EU-CAZXKB6-VTNVLAJ-OQP3MZ6-KNJTZAV";

    fn vector_cert(path: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    fn algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    fn verify(verifier: &PinnedDeviceVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    /// Syncthing 1.19.2's own certificates (public parts only; the vectors hold no keys, so
    /// they cannot complete a handshake) pass or fail the pinned verifier by their device IDs.
    #[test]
    fn pinned_verifier_accepts_exactly_the_expected_syncthing_device() {
        let m = vector_cert(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem"));
        let o = vector_cert(vector_path!("syncthing_1.19.2_cert_OM3WNIV.pem"));
        let m_id: DeviceId = M4OZKWP.parse().unwrap();
        let o_id: DeviceId = OM3WNIV.parse().unwrap();
        assert_eq!(peer_device(Some(std::slice::from_ref(&m))), Some(m_id));
        assert_eq!(peer_device(Some(&[o.clone(), m.clone()])), Some(o_id));
        assert_eq!(peer_device(None), None);

        let pinned = PinnedDeviceVerifier::new(Some(m_id), algorithms());
        verify(&pinned, &m).unwrap();
        assert_eq!(*pinned.wrong_device.lock().unwrap(), None);

        let err = verify(&pinned, &o).unwrap_err();
        assert_eq!(err, rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        assert_eq!(*pinned.wrong_device.lock().unwrap(), Some(o_id));

        let template = PinnedDeviceVerifier::new(None, algorithms());
        assert!(verify(&template, &m).is_err());
    }

    #[test]
    fn verifiers_refuse_a_chain() {
        let m = vector_cert(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem"));
        let o = vector_cert(vector_path!("syncthing_1.19.2_cert_OM3WNIV.pem"));
        let any = AnyDeviceVerifier { algorithms: algorithms() };
        any.verify_client_cert(&m, &[], UnixTime::now()).unwrap();
        let err = any.verify_client_cert(&m, std::slice::from_ref(&o), UnixTime::now()).unwrap_err();
        assert!(err.to_string().contains("2 certificates"), "{err}");

        let pinned = PinnedDeviceVerifier::new(Some(DeviceId::from_cert_der(&m)), algorithms());
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        assert!(pinned.verify_server_cert(&m, &[o], &name, &[], UnixTime::now()).is_err());
    }

    #[test]
    fn verifiers_offer_the_schemes_syncthing_certificates_need() {
        let any = AnyDeviceVerifier { algorithms: algorithms() };
        let pinned = PinnedDeviceVerifier::new(None, algorithms());
        assert!(any.offer_client_auth() && any.client_auth_mandatory());
        assert!(any.root_hint_subjects().is_empty());
        for schemes in [any.supported_verify_schemes(), pinned.supported_verify_schemes()] {
            for needed in [
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::ED25519,
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PSS_SHA384,
                SignatureScheme::RSA_PSS_SHA512,
            ] {
                assert!(schemes.contains(&needed), "{needed:?} missing from {schemes:?}");
            }
        }
    }

    /// Runs a handshake between two in-memory connections; the first error either side sees.
    fn handshake(
        client: &mut rustls::ClientConnection,
        server: &mut rustls::ServerConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..10 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            let mut rd = &flight[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            let mut rd = &flight[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    fn identity() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_generate(dir.path()).unwrap();
        (dir, identity)
    }

    fn connections(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> (rustls::ClientConnection, rustls::ServerConnection) {
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        (rustls::ClientConnection::new(client, name).unwrap(), rustls::ServerConnection::new(server).unwrap())
    }

    #[test]
    fn handshake_is_tls13_with_alpn_mutual_certificates_and_no_sni() {
        let ((_a_home, a), (_b_home, b)) = (identity(), identity());
        let (a_tls, b_tls) = (TlsIdentity::new(&a).unwrap(), TlsIdentity::new(&b).unwrap());
        let (client_config, _) = a_tls.client_config(b.device_id(), super::super::Protocol::Bep);
        let (mut client, mut server) = connections(client_config, b_tls.server_config());
        handshake(&mut client, &mut server).unwrap();

        assert_eq!(client.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(client.alpn_protocol(), Some(ALPN_BEP));
        assert_eq!(server.alpn_protocol(), Some(ALPN_BEP));
        assert_eq!(server.server_name(), None); // no SNI, as Syncthing's TCP dials
        assert_eq!(peer_device(client.peer_certificates()), Some(b.device_id()));
        assert_eq!(peer_device(server.peer_certificates()), Some(a.device_id()));
    }

    #[test]
    fn listener_refuses_tls12_and_clients_without_a_certificate() {
        let ((_a_home, a), (_b_home, b)) = (identity(), identity());
        let b_tls = TlsIdentity::new(&b).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedDeviceVerifier::new(Some(b.device_id()), algorithms()));

        let tls12 = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(vec![a.cert().clone()], a.key_der().clone_key())
            .unwrap();
        let (mut client, mut server) = connections(Arc::new(tls12), b_tls.server_config());
        let err = handshake(&mut client, &mut server).unwrap_err();
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");

        let anonymous = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let (mut client, mut server) = connections(Arc::new(anonymous), b_tls.server_config());
        let err = handshake(&mut client, &mut server).unwrap_err();
        assert_eq!(err, rustls::Error::NoCertificatesPresented);
    }

    #[test]
    fn configurations_follow_syncthing() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_generate(dir.path()).unwrap();
        let tls = TlsIdentity::new(&identity).unwrap();
        assert_eq!(tls.device_id(), identity.device_id());
        assert!(format!("{tls:?}").contains(&identity.device_id().to_string()));

        let server = tls.server_config();
        assert_eq!(server.alpn_protocols, [ALPN_BEP.to_vec(), ALPN_INVITE.to_vec()]);
        assert_eq!(server.send_tls13_tickets, 0);
        assert_eq!(server.max_early_data_size, 0);
        let (client, _) = tls.client_config(identity.device_id(), super::super::Protocol::Bep);
        assert_eq!(client.alpn_protocols, [ALPN_BEP.to_vec()]);
        assert!(!client.enable_sni);
    }
}

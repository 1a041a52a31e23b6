//! Loopback tests of the whole layer: real certificates, real sockets, port 0.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::SERVER_NAME;
use super::*;
use crate::identity::Identity;

/// Long enough for any loopback handshake on a loaded machine; short enough to fail fast.
const WAIT: Duration = Duration::from_secs(10);

const TRANSPORTS: &[Transport] = &[Transport::Tcp, Transport::Quic];

macro_rules! vector_path {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $name)
    };
}

// A 2048-bit RSA key (PKCS#8) and a self-signed certificate with Syncthing's names, made once
// with `openssl req -x509 -newkey rsa:2048 -nodes -subj "/O=Syncthing/OU=Automatically
// Generated/CN=syncthing"`: rcgen with ring cannot generate RSA keys. Very old Syncthing
// installs still have RSA device certificates.
const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCqwweu9Afh5LSC
X0ldqYzmujZlUkt6BBoWlDwPh+4QO+xdcWr+4VpP21iU+4bqW0fxNj4BT6sdLLf0
I/Zz6I/oP8kfu6xxJWPUP3lTcfvvw/0Q2i5+tAPxkJsA6YqFsgTaTULfaVV9CIlC
GAoFbERM+YwbgUnQN7+CAKqisJdi6gIAhVXdAowYO5hg8ajSIvW949UiTQB6XMkI
wDMW/5pqVIaFOi6sjItvCwIbJzEK+K37cAWUtQgPgDuhhWmOCWZs/GMOrxkMmna7
35j8diGCdpn9hfOiw7/eNggtxJoB0PbdzIq2h9dBlM4+F1pSAvLTUzyH7/RFK5wT
+hR5x6ZzAgMBAAECggEAHLZRVuoCX0mwzlEOSXjmT69U0SGOvlPtPQmstaHR9hnV
Svr0lim3IUFM+jP2wfYaOSU5NMg8CdpIjfz0BhY/CDqda0AHpTi3uer4T/8U8QI/
zXMaKUTEevwpC/S4zXUa2sft7BnOfYkPZzUajkHflB/Lnp5VFnUhNs884cEWm1Ne
F55djuso5lnkc5+mJNotK3vM3f+Hh9IzwpyId977BIX4JrNAWwc9Kz10MXchJgKj
ESCLfSgwR7Dhphm9jBZtpikdvE5IBpISS/S3P/f1T0eXx5s/MdEopSYMBB8NEI9I
TAxavRKryydTsXnEWhQAAhve9+8OAiM8mbn+cXiI7QKBgQDdl7ci01lZw1KijMZg
Dpe56o0GjhHX6mwWoK5ja4rzq6TR2bPl5RE0k7m0fMkTwn9SvgqBTntiddL5LnWk
zsJ57DlJ0P2mrHoiYd57XweGNxu6HSzhGjJFeWbypbhXaDkD9E1prMIR2KyC61Hr
F2REZhF0/myI/0AnKQ8l+pRzfwKBgQDFRsujyRJ5fVltwuHprVa055YI+egGESAc
T9UPEiPpptD1KCcFpSqmzARKzEEJl1OvRhgbQ1chETAOj+3qsDNJpdVfY/SCMCCu
WZX9gTNt7eKXgWZmeqrn6Wj9QCULPJP3zme0epZG/9n/r5303ES0HbEUeROVbxSS
Lbq73VK3DQKBgAYXx9dTTF+leT4y9LlrbUyVYG9PtLnlHje5D1J4gIeWrp9+hu3J
UKHLdg26aKT8chfKVeucRtQ8PSLQ3jc74CkOD70x2+ebUnhjjISD5mcQWNjTOIqv
97XlUqlVWS4+FWNAcmh3cZagCI5I/iWirQUccVpwLHfP3Om2vU3kB/TtAoGAUZil
tBn/xTZenfKkhIXIvkynlxDeslu0/2DZzEEBj6wK88vm0APv70ulXta689+eonmI
kQY6bJfyW6OWkaLNo+GurqTmRk7nxZWSX2doQUjKl0XTeAG23PODFHTKnaoxvaam
6FRoAffjUElwOQ4+cI1zZ/dobT+jr46wlPHHO6UCgYBQ8ToQhdajapu0fwla3905
GBFQDXwVDpcCYJoTJIM44Jxr5nsUsCkDh2/e2IId3MYunG7CxI88iUFutzVZYd01
DFLR6Qox/M2Js8D0jthO6lxA8GppEANLmBQKLLJC8NDJ94jaf9KnQ8OPFhpBhv9T
mB3PyVh/+yphEzxhxt9ljw==
-----END PRIVATE KEY-----
";
const RSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDizCCAnOgAwIBAgIUPvLlnMGD0x3GS9ErSQZxEkA+Q5YwDQYJKoZIhvcNAQEL
BQAwSjESMBAGA1UECgwJU3luY3RoaW5nMSAwHgYDVQQLDBdBdXRvbWF0aWNhbGx5
IEdlbmVyYXRlZDESMBAGA1UEAwwJc3luY3RoaW5nMB4XDTI2MTEyMTE2MzkxOFoX
DTQ2MTExNjE2MzkxOFowSjESMBAGA1UECgwJU3luY3RoaW5nMSAwHgYDVQQLDBdB
dXRvbWF0aWNhbGx5IEdlbmVyYXRlZDESMBAGA1UEAwwJc3luY3RoaW5nMIIBIjAN
BgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqsMHrvQH4eS0gl9JXamM5ro2ZVJL
egQaFpQ8D4fuEDvsXXFq/uFaT9tYlPuG6ltH8TY+AU+rHSy39CP2c+iP6D/JH7us
cSVj1D95U3H778P9ENoufrQD8ZCbAOmKhbIE2k1C32lVfQiJQhgKBWxETPmMG4FJ
0De/ggCqorCXYuoCAIVV3QKMGDuYYPGo0iL1vePVIk0AelzJCMAzFv+aalSGhTou
rIyLbwsCGycxCvit+3AFlLUID4A7oYVpjglmbPxjDq8ZDJp2u9+Y/HYhgnaZ/YXz
osO/3jYILcSaAdD23cyKtofXQZTOPhdaUgLy01M8h+/0RSucE/oUecemcwIDAQAB
o2kwZzAdBgNVHQ4EFgQUeMwHBKq1fzNbSZyf9MUyq+6CAygwHwYDVR0jBBgwFoAU
eMwHBKq1fzNbSZyf9MUyq+6CAygwDwYDVR0TAQH/BAUwAwEB/zAUBgNVHREEDTAL
gglzeW5jdGhpbmcwDQYJKoZIhvcNAQELBQADggEBAG1+is6Km4w12LUrBgmEw5lY
s6F/ZfB65Ege9IJhDcaBfEz+44dqI/H9eJqbCkHzNWEXxCiYGbIDY/LP98tRPqAg
676iK472BkhlhB4HuZp1F0xmHUK3SjKrIV7tqfR/vjNIWKlewE9dyJCQ4rWjiFV+
AIFvQIDBECquaZz7i6QoWmYxmpZbp0edJQ7Pg5PcFuxK06wPCCy87jHUI/QyQlC3
I0312dL5A3vByH1p7SYg7cHiqGopVdWvBts2/V7ZEWo4vysDXZtURFM1pgxkBiuY
0ilKUYqL2weodrwdKhdlYeEOMHyD/ZqCmCmKTmH236htrtA3VbNU1wOIIUNyAr8=
-----END CERTIFICATE-----
";

/// A node: its home (kept alive for the identity files) and its TLS identity.
struct Node {
    _home: tempfile::TempDir,
    tls: TlsIdentity,
}

fn node() -> Node {
    let home = tempfile::tempdir().unwrap();
    let identity = Identity::load_or_generate(home.path()).unwrap();
    let tls = TlsIdentity::new(&identity).unwrap();
    assert_eq!(tls.device_id(), identity.device_id());
    Node { _home: home, tls }
}

fn loopback(transport: Transport) -> Address {
    format!("{transport}://127.0.0.1:0").parse().unwrap()
}

async fn bind(tls: &TlsIdentity, transport: Transport) -> (Net, Address) {
    let net = Net::bind(tls.clone(), &[loopback(transport)]).await.unwrap();
    let addr = net.local_addresses().remove(0);
    (net, addr)
}

async fn accept(net: &Net) -> Connection {
    tokio::time::timeout(WAIT, net.accept()).await.expect("no connection came in").expect("shut down")
}

/// `n` bytes of a pattern that does not repeat at any power-of-two period.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Writes `data` and shuts down the write half, reading everything the peer sends meanwhile.
async fn write_and_read(stream: BoxStream, data: Vec<u8>) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = tokio::spawn(async move {
        writer.write_all(&data).await.unwrap();
        writer.shutdown().await.unwrap();
        writer.shutdown().await.unwrap(); // a second shutdown is harmless
        writer
    });
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, reader.read_to_end(&mut received)).await.unwrap().unwrap();
    drop(write.await.unwrap());
    received
}

/// Dials `listener` from `dialer`, writes first (QUIC shows the stream to the listener only
/// then), and checks that 1 MiB goes each way with EOF after it.
async fn connect_and_exchange(dialer: &Net, listener: &Net, addr: &Address) -> (Connection, Connection) {
    let mut out = dialer.dial(addr, listener.device_id()).await.unwrap();
    let to_listener = pattern(1 << 20, 0x5a);
    let to_dialer = pattern(1 << 20, 0xa5);

    out.stream.write_all(b"hello").await.unwrap();
    let mut inc = accept(listener).await;
    let mut hello = [0u8; 5];
    inc.stream.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, b"hello");

    let (at_listener, at_dialer) = tokio::join!(
        write_and_read(take_stream(&mut inc), to_dialer.clone()),
        write_and_read(take_stream(&mut out), to_listener.clone()),
    );
    assert!(
        at_listener == to_listener,
        "the listener received {} bytes, not the dialer's",
        at_listener.len()
    );
    assert!(at_dialer == to_dialer, "the dialer received {} bytes, not the listener's", at_dialer.len());
    (out, inc)
}

/// The connection's stream, leaving a placeholder so the metadata can still be checked.
fn take_stream(conn: &mut Connection) -> BoxStream {
    std::mem::replace(&mut conn.stream, Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())))
}

/// Checks that `dialer` can reach `listener` at `addr` (a short exchange, dialer first).
async fn assert_reachable(dialer: &Net, listener: &Net, addr: &Address) {
    let mut out = dialer.dial(addr, listener.device_id()).await.unwrap();
    out.stream.write_all(b"ping").await.unwrap();
    let mut inc = accept(listener).await;
    assert_eq!(inc.device, dialer.device_id());
    let mut buf = [0u8; 4];
    inc.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    inc.stream.write_all(b"pong").await.unwrap();
    inc.stream.flush().await.unwrap();
    out.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn both_transports_carry_bytes_both_ways_between_authenticated_devices() {
    for &transport in TRANSPORTS {
        let (a, b) = (node(), node());
        let (net_a, addr_a) = bind(&a.tls, transport).await;
        let (net_b, addr_b) = bind(&b.tls, transport).await;
        assert_ne!(addr_b.port, 0);
        assert_eq!(addr_b.transport, transport);
        assert_eq!(addr_b.host, "127.0.0.1");

        let (out, inc) = connect_and_exchange(&net_a, &net_b, &addr_b).await;
        assert_eq!(out.device, b.tls.device_id(), "{transport}");
        assert_eq!(inc.device, a.tls.device_id(), "{transport}");
        assert_eq!((out.transport, inc.transport), (transport, transport));
        assert!(out.outgoing && !inc.outgoing);
        assert_eq!(out.remote.port(), addr_b.port);
        assert_eq!(inc.local.port(), addr_b.port);
        assert_eq!(inc.remote, out.local, "{transport}");
        if transport == Transport::Quic {
            // The dial went out from A's listening socket, as Syncthing's do.
            assert_eq!(out.local.port(), addr_a.port);
        }
        assert!(format!("{out:?}").contains(&b.tls.device_id().to_string()));
        net_a.shutdown().await;
        net_b.shutdown().await;
    }
}

#[tokio::test]
async fn quic_dial_without_a_quic_listener_uses_a_client_endpoint() {
    let (a, b) = (node(), node());
    let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
    assert!(net_a.local_addresses().is_empty());
    let (net_b, addr_b) = bind(&b.tls, Transport::Quic).await;
    assert_reachable(&net_a, &net_b, &addr_b).await;
    assert_reachable(&net_a, &net_b, &addr_b).await; // the kept endpoint works again
    net_a.shutdown().await;
    net_b.shutdown().await;
}

#[tokio::test]
async fn wrong_device_is_refused_and_the_listener_keeps_accepting() {
    for &transport in TRANSPORTS {
        let (a, b, c) = (node(), node(), node());
        let (net_a, _) = bind(&a.tls, transport).await;
        let (net_b, addr_b) = bind(&b.tls, transport).await;

        let err = net_a.dial(&addr_b, c.tls.device_id()).await.unwrap_err();
        match &err {
            NetError::WrongDevice { expected, answered } => {
                assert_eq!(*expected, c.tls.device_id());
                assert_eq!(*answered, b.tls.device_id());
            }
            other => panic!("{transport}: expected WrongDevice, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&c.tls.device_id().to_string()), "{message}");
        assert!(message.contains(&b.tls.device_id().to_string()), "{message}");

        // The refused handshake never reaches accept(); the next dial does.
        assert_reachable(&net_a, &net_b, &addr_b).await;
        net_a.shutdown().await;
        net_b.shutdown().await;
    }
}

#[tokio::test]
async fn ed25519_p256_and_rsa_peers_are_accepted_both_ways() {
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut peers = Vec::new();
    for key in [ed25519, p256] {
        let cert =
            rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()]).unwrap().self_signed(&key).unwrap();
        peers.push((cert.der().clone(), PrivateKeyDer::Pkcs8(key.serialize_der().into())));
    }
    peers.push((
        CertificateDer::from_pem_slice(RSA_CERT.as_bytes()).unwrap(),
        PrivateKeyDer::from_pem_slice(RSA_KEY.as_bytes()).unwrap(),
    ));

    let home = node();
    for &transport in TRANSPORTS {
        let (net_home, addr_home) = bind(&home.tls, transport).await;
        for (cert, key) in &peers {
            let peer = TlsIdentity::from_parts(cert.clone(), key.clone_key()).unwrap();
            assert_eq!(peer.device_id(), DeviceId::from_cert_der(cert));
            let (net_peer, addr_peer) = bind(&peer, transport).await;
            // The peer's certificate checked by our server verifier, then by our client verifier.
            assert_reachable(&net_peer, &net_home, &addr_home).await;
            assert_reachable(&net_home, &net_peer, &addr_peer).await;
            net_peer.shutdown().await;
        }
        net_home.shutdown().await;
    }
}

/// Syncthing 1.19.2's device certificate with a key that is not its own.
fn impostor_key(provider: &rustls::crypto::CryptoProvider) -> Arc<rustls::sign::CertifiedKey> {
    let cert = CertificateDer::from_pem_file(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let signer =
        provider.key_provider.load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into())).unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signer))
}

/// Reads until the peer closes the connection (EOF or an error such as a TLS alert).
async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) {
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut sink)).await.expect("the peer kept it open");
}

/// Presenting someone else's certificate is not enough: the handshake signature must verify.
/// The certificate is Syncthing 1.19.2's real one (`M4OZKWP…`), whose key nobody here has.
#[tokio::test]
async fn a_certificate_without_its_key_is_refused_both_ways() {
    let provider = rustls::crypto::ring::default_provider();
    let syncthing: DeviceId =
        "M4OZKWP-JW5L7WR-VKC4Y3Q-7AOVC5M-NZNR5GE-K6UINM2-FYHD55N-3NOEVQZ".parse().unwrap();
    let (home, other) = (node(), node());
    let (net_home, addr_home) = bind(&home.tls, Transport::Tcp).await;

    // An impostor client: our listener must drop it during the handshake.
    let (config, _) = other.tls.client_config(home.tls.device_id(), super::Protocol::Bep);
    let mut config = (*config).clone();
    config.client_auth_cert_resolver =
        Arc::new(rustls::sign::SingleCertAndKey::from(impostor_key(&provider)));
    let socket = TcpStream::connect(("127.0.0.1", addr_home.port)).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    // TLS 1.3 clients finish before the server has checked them; the refusal arrives as an alert.
    if let Ok(mut stream) = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, socket).await {
        read_until_closed(&mut stream).await;
    }
    // Had it been accepted, it would come out of accept() before this one.
    let net_other = Net::bind(other.tls.clone(), &[]).await.unwrap();
    assert_reachable(&net_other, &net_home, &addr_home).await;

    // An impostor server: a dial expecting Syncthing's device must fail although the
    // certificate hashes to it.
    let mut config = (*home.tls.server_config()).clone();
    config.cert_resolver = Arc::new(rustls::sign::SingleCertAndKey::from(impostor_key(&provider)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        acceptor.accept(socket).await.is_err()
    });
    let addr: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let err = net_home.dial(&addr, syncthing).await.unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err:?}");
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("BadSignature"), "{cause}");
    assert!(server.await.unwrap(), "the impostor server's handshake succeeded");
    net_home.shutdown().await;
}

#[tokio::test]
async fn garbage_and_silence_do_not_stop_the_listeners() {
    let (a, b) = (node(), node());
    let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
    let net_b =
        Net::bind(b.tls.clone(), &[loopback(Transport::Tcp), loopback(Transport::Quic)]).await.unwrap();
    let [tcp, quic] = <[Address; 2]>::try_from(net_b.local_addresses()).unwrap();

    let silent = TcpStream::connect(("127.0.0.1", tcp.port)).await.unwrap();
    let mut garbage = TcpStream::connect(("127.0.0.1", tcp.port)).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: peerfold\r\n\r\n").await.unwrap();
    read_until_closed(&mut garbage).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&[0xff; 1200], ("127.0.0.1", quic.port)).await.unwrap();
    udp.send_to(b"not quic", ("127.0.0.1", quic.port)).await.unwrap();

    // The silent client's handshake is still pending: others are not held up by it.
    assert_reachable(&net_a, &net_b, &tcp).await;
    assert_reachable(&net_a, &net_b, &quic).await;
    drop(silent); // held open until the real dials were through
    net_a.shutdown().await;
    net_b.shutdown().await;
}

#[tokio::test]
async fn a_connection_from_this_device_itself_is_dropped() {
    let (a, b) = (node(), node());
    let (net_a, addr_a) = bind(&a.tls, Transport::Tcp).await;
    let err = net_a.dial(&addr_a, a.tls.device_id()).await.unwrap_err();
    assert!(matches!(err, NetError::DialSelf), "{err:?}");

    // The same certificate from elsewhere (say, a copied home): the handshake succeeds, then
    // the listener drops the connection instead of handing it out.
    let (config, _) = a.tls.client_config(a.tls.device_id(), super::Protocol::Bep);
    let socket = TcpStream::connect(("127.0.0.1", addr_a.port)).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config).connect(name, socket).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    read_until_closed(&mut stream).await;

    let net_b = Net::bind(b.tls.clone(), &[]).await.unwrap();
    assert_reachable(&net_b, &net_a, &addr_a).await;
    net_a.shutdown().await;
}

#[tokio::test]
async fn dropping_a_stream_still_delivers_what_was_written() {
    for &transport in TRANSPORTS {
        let (a, b) = (node(), node());
        let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
        let (net_b, addr_b) = bind(&b.tls, transport).await;
        let data = pattern(1 << 20, 0x33);

        let mut out = net_a.dial(&addr_b, b.tls.device_id()).await.unwrap();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            out.stream.write_all(&sent).await.unwrap();
            // TLS needs a flush (or shutdown) before the drop; a QUIC stream delivers anyway.
            if transport == Transport::Tcp {
                out.stream.shutdown().await.unwrap();
            }
        });
        let mut inc = accept(&net_b).await;
        writer.await.unwrap();
        // Let the QUIC close reach B before it reads: buffered data must survive it. A fixed
        // wait on purpose: B cannot observe the close without reading, which is what is tested;
        // should the close come later, the test still passes, never flakes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut received = Vec::new();
        tokio::time::timeout(WAIT, inc.stream.read_to_end(&mut received)).await.unwrap().unwrap();
        assert!(received == data, "{transport}: received {} of {} bytes", received.len(), data.len());
        net_b.shutdown().await;
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_dialling() {
    let (a, b) = (node(), node());
    let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
    let net_b = Arc::new(
        Net::bind(b.tls.clone(), &[loopback(Transport::Tcp), loopback(Transport::Quic)]).await.unwrap(),
    );
    let [tcp, quic] = <[Address; 2]>::try_from(net_b.local_addresses()).unwrap();

    let mut quic_conn = net_a.dial(&quic, b.tls.device_id()).await.unwrap();
    quic_conn.stream.write_all(b"hi").await.unwrap();
    let _quic_inc = accept(&net_b).await;

    let waiting = tokio::spawn({
        let net_b = net_b.clone();
        async move { net_b.accept().await.is_none() }
    });
    // On this single-threaded runtime, yielding once runs the spawned accept up to where it
    // waits (nothing else holds the listener), so the shutdown below meets a waiting accept.
    tokio::task::yield_now().await;
    tokio::time::timeout(WAIT, net_b.shutdown()).await.unwrap();
    assert!(tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap(), "a waiting accept got a connection");
    assert!(net_b.accept().await.is_none());
    let err = net_b.dial(&tcp, a.tls.device_id()).await.unwrap_err();
    assert!(matches!(err, NetError::ShutDown), "{err:?}");

    // The listeners are gone, and the QUIC connection is closed with the endpoint.
    let refused = TcpStream::connect(("127.0.0.1", tcp.port)).await;
    assert!(refused.is_err(), "the TCP listener still accepts");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, quic_conn.stream.read(&mut buf)).await.unwrap();
    assert!(!matches!(read, Ok(n) if n > 0), "{read:?}");
    net_a.shutdown().await;
}

#[tokio::test]
async fn bind_reports_an_address_in_use() {
    let a = node();
    let (net_a, tcp) = bind(&a.tls, Transport::Tcp).await;
    let (_net_q, quic) = bind(&a.tls, Transport::Quic).await;
    // TCP is the transport that must work; a QUIC address is fatal only when nothing else
    // listens (see `a_quic_address_that_cannot_be_used_leaves_tcp_listening`).
    for (taken, listen) in [(tcp.clone(), vec![loopback(Transport::Quic), tcp]), (quic.clone(), vec![quic])] {
        let err = Net::bind(a.tls.clone(), &listen).await.unwrap_err();
        assert!(matches!(&err, NetError::Listen { addr, .. } if *addr == taken), "{err:?}");
        assert_eq!(err.to_string(), format!("cannot listen on {taken}"));
    }
    net_a.shutdown().await;
}

/// A system that refuses QUIC's UDP socket (Wine refuses one of its options with OS error
/// 10045; a locked-down system may refuse the socket) leaves the device on TCP, saying why,
/// instead of not starting. An address in use fails the same call, so it stands in here.
#[tokio::test]
async fn a_quic_address_that_cannot_be_used_leaves_tcp_listening() {
    let (a, b) = (node(), node());
    let (_holder, quic) = bind(&a.tls, Transport::Quic).await;
    let net = Net::bind(a.tls.clone(), &[quic.clone(), loopback(Transport::Tcp)]).await.unwrap();
    let local = net.local_addresses();
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local[0].transport, Transport::Tcp);
    let failed = net.quic_unavailable();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].addr, quic);
    // The system's own words follow (they differ between systems).
    let prefix = format!("cannot listen on {quic}: ");
    assert!(failed[0].reason.starts_with(&prefix), "{}", failed[0].reason);
    assert!(failed[0].reason.len() > prefix.len() + 4, "{}", failed[0].reason);
    let dialer = Net::bind(b.tls.clone(), &[]).await.unwrap();
    assert_reachable(&dialer, &net, &local[0]).await;
    // A QUIC dial still goes out from a client endpoint of its own.
    let (quic_peer, quic_addr) = bind(&b.tls, Transport::Quic).await;
    assert_reachable(&net, &quic_peer, &quic_addr).await;
    net.shutdown().await;
    quic_peer.shutdown().await;
}

#[tokio::test]
async fn dial_errors_say_what_failed() {
    let (a, b) = (node(), node());
    let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();

    // Nothing listens on a port that was just freed.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let addr: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let err = net_a.dial(&addr, b.tls.device_id()).await.unwrap_err();
    assert!(matches!(err, NetError::Connect { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot connect to 127.0.0.1:{port}"));

    let any: Address = "tcp://:22000".parse().unwrap();
    let err = net_a.dial(&any, b.tls.device_id()).await.unwrap_err();
    assert!(matches!(err, NetError::BadAddress { .. }), "{err:?}");

    let v6_only = Address { family: Family::V6, ..addr.clone() };
    let err = net_a.dial(&v6_only, b.tls.device_id()).await.unwrap_err();
    assert!(matches!(err, NetError::NoAddress { .. }), "{err:?}");

    // A TCP server that accepts and never speaks: the dial gives up (after DIAL_TIMEOUT in
    // real use; a shorter limit here).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: Address = format!("tcp://{}", silent.local_addr().unwrap()).parse().unwrap();
    let err = net_a.dial_within(Duration::from_millis(300), &addr, b.tls.device_id()).await.unwrap_err();
    assert_eq!(err.to_string(), format!("dialling {addr} timed out"));
    drop(silent);
    net_a.shutdown().await;
}

#[tokio::test]
async fn ipv6_loopback_works_on_both_transports() {
    let (a, b) = (node(), node());
    let listen: Vec<Address> =
        ["tcp6://[::1]:0", "quic://[::1]:0"].iter().map(|s| s.parse().unwrap()).collect();
    let net_b = match Net::bind(b.tls.clone(), &listen).await {
        Ok(net) => net,
        // A machine without IPv6 cannot run this test; it can run all the others.
        Err(NetError::Listen { source, .. }) if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
            return;
        }
        Err(e) => panic!("{e:?}"),
    };
    let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
    let addrs = net_b.local_addresses();
    assert!(addrs[0].to_string().starts_with("tcp6://[::1]:"), "{}", addrs[0]);
    assert!(addrs[1].to_string().starts_with("quic://[::1]:"), "{}", addrs[1]);
    for addr in &addrs {
        assert_reachable(&net_a, &net_b, addr).await;
    }
    net_a.shutdown().await;
    net_b.shutdown().await;
}

#[test]
fn transport_serializes_lowercase() {
    assert_eq!(serde_json::to_string(&[Transport::Tcp, Transport::Quic]).unwrap(), r#"["tcp","quic"]"#);
    assert_eq!(Transport::Quic.to_string(), "quic");
}

/// An invitation dial (ALPN `peerfold-invite/1`) reaches the invitation queue, never
/// `accept` (the model), and a BEP dial never reaches the invitation queue.
#[tokio::test]
async fn invitation_connections_are_kept_apart_from_bep() {
    for &transport in TRANSPORTS {
        let (a, b) = (node(), node());
        let net_a = Net::bind(a.tls.clone(), &[]).await.unwrap();
        let (net_b, addr_b) = bind(&b.tls, transport).await;
        let mut invites = net_b.take_invites().unwrap();
        assert!(net_b.take_invites().is_none(), "taken once");

        let mut out = net_a.dial_invite(&addr_b, b.tls.device_id()).await.unwrap();
        assert_eq!(out.protocol, Protocol::Invite, "{transport}");
        // QUIC shows the stream to the listener with the first bytes.
        out.stream.write_all(b"x").await.unwrap();
        out.stream.flush().await.unwrap();
        let inc = tokio::time::timeout(WAIT, invites.recv()).await.unwrap().unwrap();
        assert_eq!((inc.protocol, inc.device), (Protocol::Invite, a.tls.device_id()), "{transport}");
        assert!(tokio::time::timeout(Duration::from_millis(200), net_b.accept()).await.is_err());

        let (bep_out, bep_in) = connect_and_exchange(&net_a, &net_b, &addr_b).await;
        assert_eq!((bep_out.protocol, bep_in.protocol), (Protocol::Bep, Protocol::Bep));
        assert!(invites.try_recv().is_err(), "{transport}");
        net_a.shutdown().await;
        net_b.shutdown().await;
    }
}

/// QUIC on the degraded socket (what it runs on where the system refuses one of quinn-udp's
/// options; forced here on any system): two devices connect and carry a stream both ways, a
/// dial going out from the listening socket.
#[tokio::test]
async fn quic_works_on_the_plain_udp_socket() {
    let (a, b) = (node(), node());
    let plain = quic::SocketKind::Plain;
    let net_a = Net::bind_on(a.tls.clone(), &[loopback(Transport::Quic)], plain).await.unwrap();
    let net_b = Net::bind_on(b.tls.clone(), &[loopback(Transport::Quic)], plain).await.unwrap();
    assert!(net_a.quic_unavailable().is_empty() && net_b.quic_unavailable().is_empty());
    let (addr_a, addr_b) = (net_a.local_addresses().remove(0), net_b.local_addresses().remove(0));
    let (out, inc) = connect_and_exchange(&net_a, &net_b, &addr_b).await;
    assert_eq!((out.transport, inc.transport), (Transport::Quic, Transport::Quic));
    assert_eq!((out.device, inc.device), (b.tls.device_id(), a.tls.device_id()));
    assert_eq!(out.local.port(), addr_a.port);
    // Datagrams to a port nobody listens on (Windows reports the ICMP errors they cause on a
    // later receive) and garbage leave the endpoint working.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr: Address = format!("quic://{}", closed.local_addr().unwrap()).parse().unwrap();
    drop(closed);
    let err = net_b.dial_within(Duration::from_millis(500), &closed_addr, a.tls.device_id()).await;
    assert!(err.is_err());
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(&[0xff; 1200], ("127.0.0.1", addr_a.port)).await.unwrap();
    assert_reachable(&net_b, &net_a, &addr_a).await;
    net_a.shutdown().await;
    net_b.shutdown().await;
}

/// Under Wine the system itself refuses quinn-udp's socket options (reading `IPV6_V6ONLY` on an
/// IPv4 socket: OS error 10045; `IP_RECVECN`: 10042): QUIC listens there all the same, on the
/// plain socket, and carries a connection.
#[cfg(peerfold_wine)]
#[tokio::test]
async fn under_wine_quic_listens_on_the_plain_socket() {
    let refused =
        quinn::udp::UdpSocketState::new((&std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).into());
    let error = refused.expect_err("Wine now accepts quinn-udp's options: this test is moot");
    assert_eq!(error.raw_os_error(), Some(10045), "{error}");
    let (a, b) = (node(), node());
    let net = Net::bind(a.tls.clone(), &[loopback(Transport::Quic), loopback(Transport::Tcp)]).await.unwrap();
    assert!(net.quic_unavailable().is_empty(), "{:?}", net.quic_unavailable());
    let local = net.local_addresses();
    assert_eq!(local.iter().map(|a| a.transport).collect::<Vec<_>>(), [Transport::Quic, Transport::Tcp]);
    let dialer = Net::bind(b.tls.clone(), &[]).await.unwrap();
    assert_reachable(&dialer, &net, &local[0]).await;
    net.shutdown().await;
    dialer.shutdown().await;
}

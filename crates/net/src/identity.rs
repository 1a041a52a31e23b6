//! Device identity on disk: the device's TLS certificate and private key in the home, and the
//! device IDs derived from certificates (the codec is `peerfold-proto`'s, re-exported here so
//! that `identity::DeviceId` and `identity::Identity` sit side by side).
//!
//! This module owns [`Identity`]: `cert.pem` and `key.pem` in the home directory, loaded if
//! present or generated the way Syncthing 1.19.2 generates them (ECDSA P-384,
//! `O=Syncthing, OU=Automatically Generated, CN=syncthing`, 7300 days from today 00:00 UTC).
//!
//! File handling decisions:
//!
//! * Both files are written atomically (temporary file in the same directory, fsync, rename,
//!   fsync of the directory). The key file is created with mode 0600 from the start on Unix.
//! * A lone `cert.pem` or `key.pem` is an error; nothing is ever generated over half an identity.
//! * Generated keys are written as PKCS#8 (`PRIVATE KEY`), which Syncthing also reads. On load,
//!   SEC1 (`EC PRIVATE KEY`, what Syncthing 1.19 writes), PKCS#8 and PKCS#1 (`RSA PRIVATE KEY`)
//!   are accepted.
//! * On load, a key file that is group- or world-accessible on Unix is tightened to 0600. This is
//!   best effort: if it fails (read-only mount, file owned by someone else) the identity is still
//!   loaded, because refusing to start would not make the key any less exposed.
//! * On load, the key is checked against the certificate's public key where the key format allows
//!   it without extra crypto (SEC1 and PKCS#1 keys carry the public part; PKCS#8 keys are parsed
//!   with `rcgen`); a key that cannot be checked this way is accepted as is.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::string::PrintableString;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use peerfold_proto::identity::*;

/// Name of the certificate file in the home directory.
pub const CERT_FILE: &str = "cert.pem";
/// Name of the private key file in the home directory.
pub const KEY_FILE: &str = "key.pem";

/// Validity of a generated certificate, as in Syncthing (20 × 365 days).
const CERT_LIFETIME_DAYS: i64 = 7300;

// ---------------------------------------------------------------------------------------------
// Identity on disk
// ---------------------------------------------------------------------------------------------

/// Why the identity could not be loaded or generated.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file or directory could not be read, written, renamed or synced.
    #[error("cannot access {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file is not the PEM we expect.
    #[error("{} is not usable: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    /// Key or certificate generation failed.
    #[error("could not generate the device certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A new certificate or key could not be written.
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
    /// Only one of cert.pem and key.pem exists.
    #[error(
        "found {} but not {}; refusing to create a new identity over half of an existing one \
         (restore the missing file, or remove both to get a new device ID)",
        present.display(), missing.display()
    )]
    HalfIdentity { present: PathBuf, missing: PathBuf },
    /// The private key does not belong to the certificate.
    #[error("the private key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_path_buf(), source }
}

/// This device's certificate and private key, and the device ID derived from them.
pub struct Identity {
    device_id: DeviceId,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("device_id", &self.device_id.to_string()).finish_non_exhaustive()
    }
}

impl Identity {
    /// Uses `<home>/cert.pem` + `key.pem` if both exist (e.g. made by `syncthing generate`);
    /// generates them if neither exists (creating `home` if needed); a lone cert.pem or key.pem
    /// is an error (never overwrite half an identity).
    pub fn load_or_generate(home: &Path) -> Result<Self, IdentityError> {
        let cert_path = home.join(CERT_FILE);
        let key_path = home.join(KEY_FILE);
        let cert_exists = cert_path.try_exists().map_err(io_err(&cert_path))?;
        let key_exists = key_path.try_exists().map_err(io_err(&key_path))?;
        match (cert_exists, key_exists) {
            (true, true) => Self::load(home),
            (false, false) => Self::generate(home),
            (true, false) => Err(IdentityError::HalfIdentity { present: cert_path, missing: key_path }),
            (false, true) => Err(IdentityError::HalfIdentity { present: key_path, missing: cert_path }),
        }
    }

    /// Loads `<home>/cert.pem` (the first certificate in it) and `<home>/key.pem` (SEC1, PKCS#8
    /// or PKCS#1). Tightens a group/world-accessible key file to 0600 on Unix (best effort).
    pub fn load(home: &Path) -> Result<Self, IdentityError> {
        let cert_path = home.join(CERT_FILE);
        let key_path = home.join(KEY_FILE);

        let cert_pem = fs::read(&cert_path).map_err(io_err(&cert_path))?;
        let cert = CertificateDer::from_pem_slice(&cert_pem).map_err(|e| IdentityError::Pem {
            path: cert_path.clone(),
            reason: pem_reason(e, "CERTIFICATE"),
        })?;

        let key_pem = fs::read(&key_path).map_err(io_err(&key_path))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| IdentityError::Pem {
            path: key_path.clone(),
            reason: pem_reason(e, "EC PRIVATE KEY, PRIVATE KEY or RSA PRIVATE KEY"),
        })?;
        tighten_key_permissions(&key_path);

        if key_matches_cert(&key, &cert) == Some(false) {
            return Err(IdentityError::KeyMismatch { cert: cert_path, key: key_path });
        }

        Ok(Self { device_id: DeviceId::from_cert_der(&cert), cert, key })
    }

    /// Generates a new certificate and key like Syncthing 1.19.2 and writes them atomically.
    fn generate(home: &Path) -> Result<Self, IdentityError> {
        create_home(home)?;
        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let cert = device_cert_params()?.self_signed(&key_pair)?;

        // Key first: a crash between the two writes leaves a lone key.pem, which the next
        // start reports instead of silently replacing.
        crate::fsutil::write_atomic(&home.join(KEY_FILE), key_pair.serialize_pem().as_bytes(), 0o600)?;
        crate::fsutil::write_atomic(&home.join(CERT_FILE), cert.pem().as_bytes(), 0o644)?;

        let cert_der = cert.der().clone();
        Ok(Self {
            device_id: DeviceId::from_cert_der(&cert_der),
            cert: cert_der,
            key: PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        })
    }

    /// This device's ID.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The certificate's DER (what is sent in the TLS handshake).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The certificate, ready for rustls.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The private key, ready for rustls.
    pub fn key_der(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

fn pem_reason(e: rustls_pki_types::pem::Error, expected: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("no {expected} section found"),
        other => other.to_string(),
    }
}

/// The certificate Syncthing 1.19.2 generates, minus the key and serial randomness.
fn device_cert_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for (ty, value) in [
        (DnType::OrganizationName, "Syncthing"),
        (DnType::OrganizationalUnitName, "Automatically Generated"),
        (DnType::CommonName, "syncthing"),
    ] {
        dn.push(ty, DnValue::PrintableString(PrintableString::try_from(value)?));
    }
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::DnsName("syncthing".try_into()?)];
    params.serial_number = Some(SerialNumber::from(random_serial()));
    let not_before = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    params.not_before = not_before;
    params.not_after = not_before + time::Duration::days(CERT_LIFETIME_DAYS);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    // rcgen's IsCa::ExplicitNoCa writes BasicConstraints critical CA:FALSE but also adds a
    // SubjectKeyIdentifier, which Syncthing's certificates do not have. Write the extension
    // ourselves instead: critical, value SEQUENCE {} (cA defaults to FALSE).
    params.is_ca = IsCa::NoCa;
    let mut basic_constraints = CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
    basic_constraints.set_criticality(true);
    params.custom_extensions = vec![basic_constraints];
    Ok(params)
}

/// A random, positive, non-zero 64-bit serial number.
fn random_serial() -> u64 {
    loop {
        let serial: u64 = rand::random();
        if serial != 0 {
            return serial;
        }
    }
}

fn create_home(home: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(home).map_err(io_err(home))
}

#[cfg(unix)]
fn tighten_key_permissions(key_path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(key_path)
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = fs::set_permissions(key_path, fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn tighten_key_permissions(_key_path: &Path) {}

// ---------------------------------------------------------------------------------------------
// Key/certificate consistency (minimal DER reading, no extra crypto)
// ---------------------------------------------------------------------------------------------

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xa0;
const TAG_CONTEXT_1: u8 = 0xa1;

/// Reads DER TLVs one after another (single-byte tags only, which is all we need).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, content))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (t, content) = self.next()?;
        (t == tag).then_some(content)
    }
}

/// The contents of a BIT STRING without its unused-bits byte (which must be 0).
fn bit_string_bytes(bits: &[u8]) -> Option<&[u8]> {
    let (&unused, bytes) = bits.split_first()?;
    (unused == 0).then_some(bytes)
}

/// The subjectPublicKey bits of a certificate.
fn cert_public_key(cert_der: &[u8]) -> Option<&[u8]> {
    let cert = Der(cert_der).expect(TAG_SEQUENCE)?;
    let mut tbs = Der(Der(cert).expect(TAG_SEQUENCE)?);
    let (tag, _) = tbs.next()?;
    if tag == TAG_CONTEXT_0 {
        tbs.expect(TAG_INTEGER)?; // serial, after the explicit version
    }
    for _ in 0..4 {
        tbs.next()?; // signature algorithm, issuer, validity, subject
    }
    let mut spki = Der(tbs.expect(TAG_SEQUENCE)?);
    spki.expect(TAG_SEQUENCE)?;
    bit_string_bytes(spki.expect(TAG_BIT_STRING)?)
}

/// The public key bits stored in a SEC1 ECPrivateKey, if present.
fn sec1_public_key(sec1: &[u8]) -> Option<&[u8]> {
    let mut fields = Der(Der(sec1).expect(TAG_SEQUENCE)?);
    fields.expect(TAG_INTEGER)?;
    fields.expect(TAG_OCTET_STRING)?;
    while let Some((tag, content)) = fields.next() {
        if tag == TAG_CONTEXT_1 {
            return bit_string_bytes(Der(content).expect(TAG_BIT_STRING)?);
        }
    }
    None
}

/// Whether a PKCS#1 RSAPrivateKey has the modulus and exponent of a DER RSAPublicKey.
fn pkcs1_matches(pkcs1: &[u8], rsa_public_key: &[u8]) -> Option<bool> {
    let mut private = Der(Der(pkcs1).expect(TAG_SEQUENCE)?);
    private.expect(TAG_INTEGER)?; // version
    let (n, e) = (private.expect(TAG_INTEGER)?, private.expect(TAG_INTEGER)?);
    // A certificate key that is not an RSAPublicKey (e.g. an EC point) cannot match.
    let mut public = Der(rsa_public_key);
    let mut public = Der(public.expect(TAG_SEQUENCE).unwrap_or_default());
    Some(public.expect(TAG_INTEGER) == Some(n) && public.expect(TAG_INTEGER) == Some(e))
}

/// `Some(true)` if the key belongs to the certificate, `Some(false)` if it does not, `None` if
/// this cannot be told (unparseable certificate or key, or a key without its public part).
fn key_matches_cert(key: &PrivateKeyDer<'_>, cert_der: &[u8]) -> Option<bool> {
    let cert_key = cert_public_key(cert_der)?;
    match key {
        PrivateKeyDer::Sec1(sec1) => Some(sec1_public_key(sec1.secret_sec1_der())? == cert_key),
        PrivateKeyDer::Pkcs1(pkcs1) => pkcs1_matches(pkcs1.secret_pkcs1_der(), cert_key),
        PrivateKeyDer::Pkcs8(_) => {
            let key_pair = KeyPair::try_from(key).ok()?;
            Some(key_pair.public_key_raw() == cert_key)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Permission bits are Unix's: on Windows the key is private through the profile
    // directory's ACL, so the tests of modes below are Unix-only.
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA384,
        OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    };
    use x509_parser::prelude::{GeneralName, X509Certificate, parse_x509_certificate};

    macro_rules! vector_path {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $name)
        };
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn vector_cert(path: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(&fs::read(path).unwrap()).unwrap()
    }

    // A P-384 key made once with `openssl ecparam -name secp384r1 -genkey -noout` (SEC1, as
    // Syncthing 1.19 writes it), the same key as PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`), and
    // a self-signed certificate for it (`openssl req -x509`, Syncthing-like names/extensions).
    const EC_SEC1_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDCYjEEfYChbz2m4mq/33wRLIqRKOexP7YdSW7jcuiADxvlSu5lBE46E
Eb1X20o4JiagBwYFK4EEACKhZANiAASGWeBXVj0+vgQ/Q0EFyEHjt6tYYyZ7CLIv
N3QwDZA5Yzph3aBT1m8XrCGq1HCDqMK3FneaagC9WBZZg5sKWmuBrIf0t8E8ao/5
rRjJtIFTioyq3aUa5Mr7LEFDU9/sEBs=
-----END EC PRIVATE KEY-----
";
    const EC_PKCS8_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCYjEEfYChbz2m4mq/3
3wRLIqRKOexP7YdSW7jcuiADxvlSu5lBE46EEb1X20o4JiahZANiAASGWeBXVj0+
vgQ/Q0EFyEHjt6tYYyZ7CLIvN3QwDZA5Yzph3aBT1m8XrCGq1HCDqMK3FneaagC9
WBZZg5sKWmuBrIf0t8E8ao/5rRjJtIFTioyq3aUa5Mr7LEFDU9/sEBs=
-----END PRIVATE KEY-----
";
    const EC_CERT: &str = "-----BEGIN CERTIFICATE-----
MIICajCCAfCgAwIBAgIUc2NVo9/sgqH3ZVpJHiXZ2ZLj5uMwCgYIKoZIzj0EAwIw
SjESMBAGA1UECgwJU3luY3RoaW5nMSAwHgYDVQQLDBdBdXRvbWF0aWNhbGx5IEdl
bmVyYXRlZDESMBAGA1UEAwwJc3luY3RoaW5nMB4XDTI2MTEyMTE0MjgwMVoXDTQ2
MTExNjE0MjgwMVowSjESMBAGA1UECgwJU3luY3RoaW5nMSAwHgYDVQQLDBdBdXRv
bWF0aWNhbGx5IEdlbmVyYXRlZDESMBAGA1UEAwwJc3luY3RoaW5nMHYwEAYHKoZI
zj0CAQYFK4EEACIDYgAEhlngV1Y9Pr4EP0NBBchB47erWGMmewiyLzd0MA2QOWM6
Yd2gU9ZvF6whqtRwg6jCtxZ3mmoAvVgWWYObClprgayH9LfBPGqP+a0YybSBU4qM
qt2lGuTK+yxBQ1Pf7BAbo4GWMIGTMB0GA1UdDgQWBBTh+9cwuiHrNVUK56yA9bBG
Ns+PkzAfBgNVHSMEGDAWgBTh+9cwuiHrNVUK56yA9bBGNs+PkzAUBgNVHREEDTAL
gglzeW5jdGhpbmcwDgYDVR0PAQH/BAQDAgWgMB0GA1UdJQQWMBQGCCsGAQUFBwMB
BggrBgEFBQcDAjAMBgNVHRMBAf8EAjAAMAoGCCqGSM49BAMCA2gAMGUCMBSdLWjV
9BtIz+pIqXa1L8EK2HhacW9JEZVe05FvpI5csguEe0TQ6lTPya9ISX3LnAIxAODH
ffGoudAmFwparCxfAxEM9s0aTah0tZtkorhWKI8AGg7AwvajJZRgGtg8EPFBIg==
-----END CERTIFICATE-----
";
    /// `openssl x509 -in ec_cert.pem -outform DER | sha256sum`
    const EC_CERT_SHA256: &str = "c0f62c52f59d3a11200a434b1673a3f85fd173bf5a99f59d42ce9a781d9712df";

    // A 2048-bit RSA key in PKCS#1 (`openssl genrsa -traditional`) and a certificate for it.
    const RSA_PKCS1_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEArEERiE/EuPZF2GecjjnqjfhdLC9tYBjjY5WA2T/pTC0PE0Wg
DUMTfWKCdJ3ao8o/9vww2RPSMO5e/RWtAy1guUc8o2s6oEvNPEUiZsO3SPm1IQB4
cWxF8zlNU1N2EnGnA3M7uAPiXMI7g2eF/ThLd/Mp4IFQ0mt7f86SfZCToLs7kUVv
pXis+C0QvgmD1TNNlAEumd8eMpvi8or7wjs/p1OsPwOyfO3fnzmwy36ysA0YwDX4
BRKFNFSVmApKm9/VVjCa3V3Hm9ojkYji1VmBrUOUzV42p/z6J2ey/XWZAlABl0XA
6zwqW2Cu3HhWpilELriv9FkbEP7zunuKK/spywIDAQABAoIBAAcPXspCCA425yqf
0d2i55y+P80nQyZC1DcT534qsTVSaT3hFTorQmnLiQ0QHlngA3p6YFTVYUChuA+g
kl1Waufpl+HiXY//sniJzxW1LzL01nat7F5I2Mkc781pD8LS4CHd9R77kcXl9BwN
cdiQUR3EscQmNu8KsyzMMCGMQuKE/DhCUG7XUvSdq9L9YNy72szr7ZCpAwBdGcup
fuAD+QFD+NaWI1nRy7Mxmzk2rJ3Np6IdZfCfT5/1quPBtxsxmOaVoJgvqsqzHA5u
/YaHEqmKflWBJuCcO4fx8o4XRODH2+wj6DwwHDwdB3atBi2vu//m5RdZ2YdO5bB7
DxKXL+kCgYEA8RBVZKeWI/y+wkdUyhq9oiMLkyQNmKMVZ4ZcWzK32lU7pkgDXUlN
HeRAZ9SIE3jMirjHqx/WEN42loUeO8EDN5X6cRjgT50OpW2St5gX8asGG6gd4c7N
6U/EXSd/UBHfaaaiqvdZ3uUIYxVSlP+wrhaR0o+Wo982TfMNy1Z9Ll8CgYEAtu1N
NN5qP2mQo06S5U3JMNN9BWpI1WP4xP0qlXInEzKtWIqGdEZxKR2+gWxz1lSs8v1Y
wZbZrHS0EujuItMgwsvtFueBc9SYQKCl33xlnLMvhITOesgCA/AjhqDZ/ixGKy+2
pqtuBlAiWe6vM0KkWcTlomsutj1WsdjENWJvJBUCgYEA1TcrMGICLEZquw+4cSIB
xJzWqghjdjQYxH5Uxd0wPI7SuZpMT4B8EwpF5RBYY1CfKbuR70uzXSwOgEexnAx1
uf6PiuUD0acKw0sNUBHYa8pnFqM1+vmdqtUAy5wZwUptntbiXfF1re5J4smDR4J4
VSJlTCXwiXTuZTerZcRT6GUCgYBJ6e7lau2Be/VOl2QxtVGTIhGFS6HsX33YkvdO
9ZYmYra6bRbRCtmUpIkioKDZvNM5R/dCGeMQlQNiFK6MccTuERpWw+qB1ChFDOSZ
PhmMzLZplIQeBo0R7Elej8YlttwPfTMPe3t0n5KRxikSzF2+TBoBm89/IZ/TMuRt
Mb341QKBgQDZTVK2u51QT/52S6uuYCMjoQ3QCKX3WS9OulOV6CjteztMYL4cZYAN
01aCXJnEVkv9A5H4gzzdhk6HfW6f6Nr0M9ne8bJu03lsKkcpm6GWZ7GbFlI5J1ZJ
0v89RigoTe8KexNXkYeE3QOTFIGZ3brKQQ54TPnsBxRW3Ijicfa6PQ==
-----END RSA PRIVATE KEY-----
";
    const RSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIDCTCCAfGgAwIBAgIUET8oyrtekwMKiK7W7qfQpIpgVwIwDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJc3luY3RoaW5nMB4XDTI2MTEyMTE0MjgwMloXDTQ2MTEx
NjE0MjgwMlowFDESMBAGA1UEAwwJc3luY3RoaW5nMIIBIjANBgkqhkiG9w0BAQEF
AAOCAQ8AMIIBCgKCAQEArEERiE/EuPZF2GecjjnqjfhdLC9tYBjjY5WA2T/pTC0P
E0WgDUMTfWKCdJ3ao8o/9vww2RPSMO5e/RWtAy1guUc8o2s6oEvNPEUiZsO3SPm1
IQB4cWxF8zlNU1N2EnGnA3M7uAPiXMI7g2eF/ThLd/Mp4IFQ0mt7f86SfZCToLs7
kUVvpXis+C0QvgmD1TNNlAEumd8eMpvi8or7wjs/p1OsPwOyfO3fnzmwy36ysA0Y
wDX4BRKFNFSVmApKm9/VVjCa3V3Hm9ojkYji1VmBrUOUzV42p/z6J2ey/XWZAlAB
l0XA6zwqW2Cu3HhWpilELriv9FkbEP7zunuKK/spywIDAQABo1MwUTAdBgNVHQ4E
FgQUbVqIi/HtqzfjrCR+ewScfuJCwowwHwYDVR0jBBgwFoAUbVqIi/HtqzfjrCR+
ewScfuJCwowwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAFO8L
F4iKmHFLiPhCazS4Oef9vZH3TKrkOMG1qM5mgcYmYsCZNsglWlkD74ZK78Lv1UMu
AinmbPtWuTNk/ye9cZDYN6WMNAE7QsKmmb3dJQgaUCkSq1STNYQKbemLpYfvnE16
HEoh0m0evTjulojzayTHYeonKmUOqeSY7lHhfVuZ3ls+IwjqHqILCMeFaLSvZ9rI
dUibnAf+6ZWYQNyoqzf+01gISBPLT1I/oxAD/nqdd8YjrmQtNUaWzSsdTneEibeK
RWsKZqMVpgEvpU5yiyRIKQ+7z6rMvjahuSgIMag2uLO96T1uCKJo7Vh/oVbEA+60
jAxXXgP3nBEEPMN8Wg==
-----END CERTIFICATE-----
";
    const RSA_CERT_SHA256: &str = "fc7649f05ab9d37f94cfc4172a24b3a6170732f8ccbae4f1aca809939d6c06a4";

    fn home_with(cert: &str, key: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CERT_FILE), cert).unwrap();
        fs::write(dir.path().join(KEY_FILE), key).unwrap();
        #[cfg(unix)]
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    // --- device ID vectors (notes §2) ---

    // --- identity on disk ---

    #[test]
    fn generate_then_load_gives_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("config"); // created on demand
        let generated = Identity::load_or_generate(&home).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&home), 0o700);
        let loaded = Identity::load(&home).unwrap();
        assert_eq!(loaded.device_id(), generated.device_id());
        assert_eq!(loaded.cert_der(), generated.cert_der());
        assert_eq!(loaded.key_der(), generated.key_der());
        assert_eq!(generated.device_id(), DeviceId::from_cert_der(generated.cert_der()));
        assert!(matches!(loaded.key_der(), PrivateKeyDer::Pkcs8(_)));
        let again = Identity::load_or_generate(&home).unwrap();
        assert_eq!(again.device_id(), generated.device_id());

        let mut names: Vec<_> =
            fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [CERT_FILE, KEY_FILE]); // no temp files left behind
        let cert_pem = fs::read_to_string(home.join(CERT_FILE)).unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key_pem = fs::read_to_string(home.join(KEY_FILE)).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(format!("{generated:?}").contains(&generated.device_id().to_string()));
        assert!(!format!("{generated:?}").contains("key"));
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_generate(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
    }

    #[test]
    fn generated_certificate_matches_syncthing_1_19() {
        let midnight = || time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        let before = midnight();
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::load_or_generate(dir.path()).unwrap();
        let after = midnight();

        let (rest, cert) = parse_x509_certificate(identity.cert_der()).unwrap();
        assert!(rest.is_empty());
        let reference_der = vector_cert(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem"));
        let (_, reference) = parse_x509_certificate(&reference_der).unwrap();

        // Names: byte-identical to Syncthing's (same order, PrintableString).
        assert_eq!(cert.subject().to_string(), "O=Syncthing, OU=Automatically Generated, CN=syncthing");
        assert_eq!(cert.subject().as_raw(), reference.subject().as_raw());
        assert_eq!(cert.issuer().as_raw(), reference.issuer().as_raw());
        assert_eq!(cert.version().0, 2); // X.509 v3

        // Serial: positive, non-zero, at most 64 bits.
        let serial = cert.raw_serial();
        assert!(!serial.is_empty() && serial.len() <= 9 && serial[0] & 0x80 == 0);
        assert!(serial.len() < 9 || serial[0] == 0);
        assert!(serial.iter().any(|&b| b != 0));

        // Validity: today 00:00:00 UTC, plus 7300 days.
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        assert!(not_before == before || not_before == after, "{not_before}");
        assert_eq!(not_after - not_before, time::Duration::days(7300));
        let ref_validity = reference.validity();
        assert_eq!(
            ref_validity.not_after.to_datetime() - ref_validity.not_before.to_datetime(),
            time::Duration::days(7300)
        );

        // Key: ECDSA P-384; signature ECDSA with SHA-384.
        let spki = cert.public_key();
        assert_eq!(spki.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
        let curve = spki.algorithm.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve, OID_NIST_EC_P384);
        assert_eq!(cert.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA384);

        // Extensions: exactly KeyUsage, EKU, BasicConstraints, SAN (no SKI/AKI).
        assert_eq!(cert.extensions().len(), 4);
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.digital_signature() && ku.value.key_encipherment());
        assert_eq!(ku.value.flags, 0b101);
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(!eku.critical);
        assert!(eku.value.server_auth && eku.value.client_auth);
        assert!(!eku.value.any && eku.value.other.is_empty() && !eku.value.code_signing);
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(!bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, None);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(!san.critical);
        assert_eq!(san.value.general_names, [GeneralName::DNSName("syncthing")]);

        // Every extension is byte-identical (value and criticality) to Syncthing's.
        for oid in [
            OID_X509_EXT_KEY_USAGE,
            OID_X509_EXT_EXTENDED_KEY_USAGE,
            OID_X509_EXT_BASIC_CONSTRAINTS,
            OID_X509_EXT_SUBJECT_ALT_NAME,
        ] {
            let get = |c: &X509Certificate<'_>| {
                let ext = c.get_extension_unique(&oid).unwrap().unwrap();
                (ext.critical, ext.value.to_vec())
            };
            assert_eq!(get(&cert), get(&reference), "extension {oid}");
        }
    }

    #[test]
    fn lone_cert_is_an_error_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join(CERT_FILE);
        let original = fs::read(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")).unwrap();
        fs::write(&cert_path, &original).unwrap();
        let err = Identity::load_or_generate(dir.path()).unwrap_err();
        match &err {
            IdentityError::HalfIdentity { present, missing } => {
                assert_eq!(present, &cert_path);
                assert_eq!(missing, &dir.path().join(KEY_FILE));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("refusing"), "{err}");
        assert_eq!(fs::read(&cert_path).unwrap(), original);
        assert!(!dir.path().join(KEY_FILE).exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn lone_key_is_an_error_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join(KEY_FILE);
        fs::write(&key_path, EC_SEC1_KEY).unwrap();
        let err = Identity::load_or_generate(dir.path()).unwrap_err();
        assert!(matches!(&err, IdentityError::HalfIdentity { present, .. } if present == &key_path));
        assert_eq!(fs::read_to_string(&key_path).unwrap(), EC_SEC1_KEY);
        assert!(!dir.path().join(CERT_FILE).exists());
    }

    #[test]
    fn loads_sec1_pkcs8_and_pkcs1_keys() {
        for key in [EC_SEC1_KEY, EC_PKCS8_KEY] {
            let home = home_with(EC_CERT, key);
            let identity = Identity::load_or_generate(home.path()).unwrap();
            assert_eq!(identity.device_id().as_bytes(), &hex32(EC_CERT_SHA256));
            assert_eq!(identity.cert_der(), identity.cert().as_ref());
            assert_eq!(fs::read_to_string(home.path().join(KEY_FILE)).unwrap(), key); // untouched
        }
        let home = home_with(EC_CERT, EC_SEC1_KEY);
        let identity = Identity::load(home.path()).unwrap();
        assert!(matches!(identity.key_der(), PrivateKeyDer::Sec1(_)));

        let home = home_with(RSA_CERT, RSA_PKCS1_KEY);
        let identity = Identity::load(home.path()).unwrap();
        assert!(matches!(identity.key_der(), PrivateKeyDer::Pkcs1(_)));
        assert_eq!(identity.device_id().as_bytes(), &hex32(RSA_CERT_SHA256));
    }

    #[test]
    fn device_id_comes_from_the_first_certificate() {
        let vector = fs::read_to_string(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")).unwrap();
        let home = home_with(&format!("{EC_CERT}{vector}"), EC_SEC1_KEY);
        let identity = Identity::load(home.path()).unwrap();
        assert_eq!(identity.device_id().as_bytes(), &hex32(EC_CERT_SHA256));
    }

    #[test]
    fn key_of_another_certificate_is_rejected() {
        let vector = fs::read_to_string(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")).unwrap();
        for (cert, key) in [
            (vector.as_str(), EC_SEC1_KEY),
            (vector.as_str(), EC_PKCS8_KEY),
            (EC_CERT, RSA_PKCS1_KEY),
            (RSA_CERT, EC_SEC1_KEY),
        ] {
            let home = home_with(cert, key);
            let err = Identity::load(home.path()).unwrap_err();
            assert!(matches!(err, IdentityError::KeyMismatch { .. }), "{err:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_key_is_tightened_to_0600() {
        let home = home_with(EC_CERT, EC_SEC1_KEY);
        let key_path = home.path().join(KEY_FILE);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        Identity::load(home.path()).unwrap();
        assert_eq!(mode(&key_path), 0o600);
    }

    #[test]
    fn bad_pem_files_are_reported() {
        let home = home_with("not a certificate", EC_SEC1_KEY);
        let err = Identity::load(home.path()).unwrap_err();
        match &err {
            IdentityError::Pem { path, reason } => {
                assert_eq!(path, &home.path().join(CERT_FILE));
                assert_eq!(reason, "no CERTIFICATE section found");
            }
            other => panic!("unexpected {other:?}"),
        }
        let home = home_with(EC_CERT, EC_CERT); // a certificate where the key should be
        let err = Identity::load(home.path()).unwrap_err();
        assert!(matches!(&err, IdentityError::Pem { path, .. } if path == &home.path().join(KEY_FILE)));
        let empty = tempfile::tempdir().unwrap();
        let err = Identity::load(empty.path()).unwrap_err();
        assert!(matches!(err, IdentityError::Io { .. }));
    }

    // --- QR codes ---
}

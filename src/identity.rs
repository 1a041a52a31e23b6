//! Device identity: the device's TLS certificate and private key on disk, and the device IDs
//! derived from certificates.
//!
//! This module owns:
//!
//! * [`DeviceId`]: the SHA-256 of a certificate's DER, with Syncthing's string form
//!   (`XXXXXXX-XXXXXXX-…`, base32 with Luhn mod 32 check characters) and the raw 32-byte wire form;
//! * [`ShortId`]: the first 8 bytes of a device ID as a big-endian `u64` (used in version vectors
//!   and `modified_by`);
//! * [`Identity`]: `cert.pem` and `key.pem` in the home directory, loaded if present or
//!   generated the way Syncthing 1.19.2 generates them (ECDSA P-384,
//!   `O=Syncthing, OU=Automatically Generated, CN=syncthing`, 7300 days from today 00:00 UTC).
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
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use rcgen::string::PrintableString;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Name of the certificate file in the home directory.
pub const CERT_FILE: &str = "cert.pem";
/// Name of the private key file in the home directory.
pub const KEY_FILE: &str = "key.pem";

/// Validity of a generated certificate, as in Syncthing (20 × 365 days).
const CERT_LIFETIME_DAYS: i64 = 7300;

/// The RFC 4648 base32 alphabet used by device IDs.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

// ---------------------------------------------------------------------------------------------
// Device IDs
// ---------------------------------------------------------------------------------------------

/// A device ID: the SHA-256 of the device certificate's DER.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId([u8; 32]);

/// The first 8 bytes of a device ID as a big-endian `u64`.
///
/// `Display` gives the first 7 base32 characters, which equal the first group of the device ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortId(pub u64);

/// Why a string or byte slice is not a device ID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceIdError {
    /// Nothing left after removing dashes, spaces and trailing `=`.
    #[error("device ID is empty")]
    Empty,
    /// Neither 52 characters (no check characters) nor 56 (with check characters).
    #[error("device ID has {len} characters without dashes and spaces, but must have 52 or 56")]
    Length { len: usize },
    /// A character outside the base32 alphabet (after the 0→O, 1→I, 8→B substitutions).
    #[error("device ID contains the invalid character {ch:?}")]
    InvalidChar { ch: char },
    /// A check character does not match its group (groups are numbered 1 to 4).
    #[error("device ID has a wrong check character in group {group} (typo?)")]
    CheckChar { group: usize },
    /// A raw (wire) device ID that is not 32 bytes long.
    #[error("raw device ID has {len} bytes, but must have 32")]
    RawLength { len: usize },
}

impl DeviceId {
    /// A device ID from its 32 raw bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The device ID of a certificate: SHA-256 over its DER.
    pub fn from_cert_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The 32 raw bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short ID: the first 8 bytes read as a big-endian `u64`.
    pub fn short(&self) -> ShortId {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        ShortId(u64::from_be_bytes(first))
    }
}

/// The value of a base32 character, if it is one (upper case only).
fn b32_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'2'..=b'7' => Some(u32::from(c - b'2') + 26),
        _ => None,
    }
}

/// Syncthing's Luhn mod 32 check character over base32 characters, computed left to right.
/// `None` if `group` contains a character outside the alphabet.
fn luhn32(group: &[u8]) -> Option<u8> {
    let mut factor = 1;
    let mut sum = 0;
    for &c in group {
        let addend = factor * b32_value(c)?;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / 32 + addend % 32;
    }
    Some(ALPHABET[((32 - sum % 32) % 32) as usize])
}

/// Decodes 52 base32 characters into 32 bytes. The 4 padding bits of the last character are
/// ignored, as Go's base32 decoder (used by Syncthing) does.
fn decode_b32_52(data: &[u8]) -> Result<[u8; 32], DeviceIdError> {
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut nbits = 0;
    let mut i = 0;
    for &c in data {
        let v = b32_value(c).ok_or(DeviceIdError::InvalidChar { ch: char::from(c) })?;
        acc = (acc << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            if let Some(slot) = out.get_mut(i) {
                // Truncation intended: the top bits were already emitted.
                *slot = (acc >> nbits) as u8;
            }
            i += 1;
            acc &= (1 << nbits) - 1;
        }
    }
    Ok(out)
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = BASE32_NOPAD.encode(&self.0); // 52 characters
        let mut with_check = Vec::with_capacity(56);
        for group in b32.as_bytes().chunks(13) {
            with_check.extend_from_slice(group);
            with_check.push(luhn32(group).ok_or(fmt::Error)?);
        }
        for (i, chunk) in with_check.chunks(7).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.short())
    }
}

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b32 = BASE32_NOPAD.encode(&self.0.to_be_bytes());
        f.write_str(b32.get(..7).unwrap_or(&b32))
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    /// Parses the 63-, 56- or 52-character form: upper or lower case, dashes and spaces
    /// ignored, trailing `=` trimmed, `0`/`1`/`8` read as `O`/`I`/`B`. Check characters of the
    /// 56-character form are verified. Unlike Syncthing, the empty string is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cleaned = Vec::with_capacity(56);
        for ch in s.trim_end_matches('=').chars() {
            let c = match ch.to_ascii_uppercase() {
                '-' | ' ' => continue,
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            };
            if !matches!(c, 'A'..='Z' | '2'..='7') {
                return Err(DeviceIdError::InvalidChar { ch });
            }
            cleaned.push(c as u8); // ASCII, checked above
        }
        match cleaned.len() {
            0 => Err(DeviceIdError::Empty),
            52 => decode_b32_52(&cleaned).map(Self),
            56 => {
                let mut data = Vec::with_capacity(52);
                for (i, group) in cleaned.chunks(14).enumerate() {
                    let (body, check) = group.split_at(13);
                    if luhn32(body) != check.first().copied() {
                        return Err(DeviceIdError::CheckChar { group: i + 1 });
                    }
                    data.extend_from_slice(body);
                }
                decode_b32_52(&data).map(Self)
            }
            len => Err(DeviceIdError::Length { len }),
        }
    }
}

impl TryFrom<&[u8]> for DeviceId {
    type Error = DeviceIdError;

    /// The raw 32-byte form, as found on the wire.
    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(b).map(Self).map_err(|_| DeviceIdError::RawLength { len: b.len() })
    }
}

impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DeviceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device ID string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DeviceId, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

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

        let key_tmp = TempFile::write(home, KEY_FILE, key_pair.serialize_pem().as_bytes(), 0o600)?;
        let cert_tmp = TempFile::write(home, CERT_FILE, cert.pem().as_bytes(), 0o644)?;
        // Key first: a crash between the two renames leaves a lone key.pem, which the next
        // start reports instead of silently replacing.
        key_tmp.persist(&home.join(KEY_FILE))?;
        cert_tmp.persist(&home.join(CERT_FILE))?;
        sync_dir(home)?;

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

/// A fully written and synced temporary file next to its destination; removed on drop unless
/// persisted.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn write(dir: &Path, name: &str, contents: &[u8], mode: u32) -> Result<Self, IdentityError> {
        let path = dir.join(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&path).map_err(io_err(&path))?;
        let tmp = Self { path: Some(path.clone()) };
        file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_err(&path))?;
        Ok(tmp)
    }

    fn persist(mut self, dest: &Path) -> Result<(), IdentityError> {
        if let Some(path) = self.path.take()
            && let Err(e) = fs::rename(&path, dest)
        {
            self.path = Some(path); // removed on drop
            return Err(io_err(dest)(e));
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// QR codes
// ---------------------------------------------------------------------------------------------

fn qr_code(id: &DeviceId) -> Option<qrcode::QrCode> {
    // 63 upper-case alphanumeric characters always fit (version 4 at level M).
    qrcode::QrCode::with_error_correction_level(id.to_string(), qrcode::EcLevel::M).ok()
}

/// The device ID as a QR code drawn with Unicode half blocks for a terminal (dark-on-light with
/// a quiet zone).
///
/// Light modules and the 4-module quiet zone are drawn as filled blocks and dark modules as
/// blanks, so on the usual light-text-on-dark-background terminal the code appears dark on
/// light. Each line covers two module rows; lines are joined with `\n` (no trailing newline).
pub fn qr_terminal(id: &DeviceId) -> String {
    use qrcode::render::unicode::Dense1x2;
    qr_code(id).map_or_else(String::new, |code| {
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build()
    })
}

/// The device ID as a QR code in SVG (for the web UI later): black on white, with a quiet zone.
pub fn qr_svg(id: &DeviceId) -> String {
    use qrcode::render::svg;
    qr_code(id).map_or_else(String::new, |code| {
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA384,
        OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    };
    use x509_parser::prelude::{GeneralName, X509Certificate, parse_x509_certificate};

    macro_rules! vector_path {
        ($name:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/bep/", $name)
        };
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn parse(s: &str) -> Result<DeviceId, DeviceIdError> {
        s.parse()
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
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    // --- device ID vectors (notes §2) ---

    #[test]
    fn docs_vector_asdl() {
        let raw: [u8; 32] = b"asdlasdlasdlasdlasdlasdlasdlasdl".to_owned();
        let id = DeviceId::from_bytes(raw);
        let s = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
        assert_eq!(id.to_string(), s);
        assert_eq!(parse(s), Ok(id));
        assert_eq!(parse("MFZWI3DBONSGYYLTMRWGC43ENRQXGZDMMFZWI3DBONSGYYLTMRWA"), Ok(id));
        assert_eq!(id.short().to_string(), "MFZWI3D");
    }

    #[test]
    fn repo_vector_p56ioi7() {
        let raw = hex32("7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205");
        let id = DeviceId::from_bytes(raw);
        let s = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        assert_eq!(id.to_string(), s);
        assert_eq!(parse(s), Ok(id));
        assert_eq!(parse("p56ioi7mzjnu2iqgdreydm2mgtmgl3bxnpq6w5btbbz4tjxzwicq"), Ok(id));
        assert_eq!(parse("P561017MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMT88Z4TJXZWICQ2"), Ok(id));
        // Spaces, lower case, trailing '='.
        assert_eq!(parse("p56ioi7 mzjnu2y iqgdrey dm2mgti mgl3bxn pq6w5bm tbbz4tj xzwicq2=="), Ok(id));
        assert_eq!(id.short(), ShortId(9186365928295258957));
        assert_eq!(id.short().to_string(), "P56IOI7");
        assert_eq!(format!("{id:?}"), "DeviceId(P56IOI7)");
    }

    #[test]
    fn computed_vectors() {
        let mut raw = [0u8; 32];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = "AAAQEAY-EAUDAOB-CAJBIFQ-YDIOB4B-IBCEQTC-QKRMFYX-YDENBWH-A5DYPQG";
        assert_eq!(DeviceId::from_bytes(raw).to_string(), s);
        assert_eq!(parse(s), Ok(DeviceId::from_bytes(raw)));

        // SHA-256("") taken as a raw ID (= the ID of an empty "certificate").
        let empty = hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(DeviceId::from_cert_der(b"").as_bytes(), &empty);
        let s = "4OYMIQU-Y7QOBJR-GX36TEJ-S35ZEQD-T24QPEM-SNZGTFB-ESWMRW6-CSXBKQD";
        assert_eq!(DeviceId::from_bytes(empty).to_string(), s);
        assert_eq!(parse(s), Ok(DeviceId::from_bytes(empty)));
    }

    #[test]
    fn luhn32_vector() {
        assert_eq!(luhn32(b"AB725E4GHIQPL3ZFGT"), Some(b'G'));
        assert_eq!(luhn32(b"MFZWI3DBONSGY"), Some(b'C'));
        assert_eq!(luhn32(b"ab"), None);
    }

    #[test]
    fn real_syncthing_certificates() {
        for (path, sha, s, short) in [
            (
                vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem"),
                "671d9559e9b757fb5542e6370f81d5175b96c7a622bd443585c1c7deb76d712b",
                "M4OZKWP-JW5L7WR-VKC4Y3Q-7AOVC5M-NZNR5GE-K6UINM2-FYHD55N-3NOEVQZ",
                7430259173636921339u64,
            ),
            (
                vector_path!("syncthing_1.19.2_cert_OM3WNIV.pem"),
                "733766a2af28afb73d433dad98ac65f9040cdd41f566daac0e83f6ccf94d4cf2",
                "OM3WNIV-PFCX3O5-PKDHWWZ-RLDF7EU-CAZXKB6-VTNVLAJ-OQP3MZ6-KNJTZAV",
                8302217286990213047u64,
            ),
        ] {
            let der = vector_cert(path);
            assert_eq!(der.len(), 545);
            let id = DeviceId::from_cert_der(&der);
            assert_eq!(id.as_bytes(), &hex32(sha));
            assert_eq!(id.to_string(), s);
            assert_eq!(parse(s), Ok(id));
            assert_eq!(id.short(), ShortId(short));
            assert_eq!(id.short().to_string(), &s[..7]);
            assert_eq!(DeviceId::try_from(&id.as_bytes()[..]), Ok(id));
        }
    }

    // --- parsing errors ---

    #[test]
    fn wrong_check_character_is_rejected() {
        let good = "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2";
        assert!(parse(good).is_ok());
        for group in 1..=4 {
            let mut bad = good.as_bytes().to_vec();
            let pos = group * 14 - 1;
            bad[pos] = if bad[pos] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert_eq!(parse(&bad), Err(DeviceIdError::CheckChar { group }));
        }
        // A typo in the data (not the check char) is caught as well.
        let typo = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3";
        assert_eq!(parse(typo), Err(DeviceIdError::CheckChar { group: 4 }));
        assert_eq!(
            DeviceIdError::CheckChar { group: 2 }.to_string(),
            "device ID has a wrong check character in group 2 (typo?)"
        );
    }

    #[test]
    fn wrong_length_and_bad_input_are_rejected() {
        let good56 = "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2";
        assert_eq!(parse(&good56[..55]), Err(DeviceIdError::Length { len: 55 }));
        assert_eq!(parse(&good56[..51]), Err(DeviceIdError::Length { len: 51 }));
        assert_eq!(parse(&good56[..53]), Err(DeviceIdError::Length { len: 53 }));
        assert_eq!(parse(&format!("{good56}A")), Err(DeviceIdError::Length { len: 57 }));
        assert_eq!(parse("ABC"), Err(DeviceIdError::Length { len: 3 }));
        assert_eq!(parse(""), Err(DeviceIdError::Empty));
        assert_eq!(parse("-- --"), Err(DeviceIdError::Empty));
        assert_eq!(parse("===="), Err(DeviceIdError::Empty));
        assert_eq!(parse("P56IOI9"), Err(DeviceIdError::InvalidChar { ch: '9' }));
        assert_eq!(parse("P56_IOI"), Err(DeviceIdError::InvalidChar { ch: '_' }));
        assert_eq!(parse("P56é"), Err(DeviceIdError::InvalidChar { ch: 'é' }));
        assert_eq!(DeviceId::try_from(&[0u8; 31][..]), Err(DeviceIdError::RawLength { len: 31 }));
        assert_eq!(DeviceId::try_from(&[0u8; 33][..]), Err(DeviceIdError::RawLength { len: 33 }));
    }

    #[test]
    fn padding_bits_of_52_char_form_are_ignored_like_go() {
        // The last char of the 52-char form carries 1 data bit and 4 padding bits:
        // 'Q' = 10000b, 'R' = 10001b decode to the same bytes.
        let q = parse("P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ").unwrap();
        let r = parse("P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICR").unwrap();
        assert_eq!(q, r);
    }

    #[test]
    fn random_ids_round_trip() {
        for _ in 0..500 {
            let id = DeviceId::from_bytes(rand::random());
            let s = id.to_string();
            assert_eq!(s.len(), 63);
            assert_eq!(s.matches('-').count(), 7);
            assert_eq!(parse(&s), Ok(id));
            assert_eq!(parse(&s.to_lowercase()), Ok(id));
            let compact: String = s.chars().filter(|&c| c != '-').collect();
            // Drop the check chars to get the 52-char form.
            let no_check: String =
                compact.as_bytes().chunks(14).map(|g| std::str::from_utf8(&g[..13]).unwrap()).collect();
            assert_eq!(parse(&no_check), Ok(id));
            assert_eq!(id.short().to_string(), &s[..7]);
            let mut first = [0u8; 8];
            first.copy_from_slice(&id.as_bytes()[..8]);
            assert_eq!(id.short().0, u64::from_be_bytes(first));
        }
    }

    #[test]
    fn serde_deserializes_from_string() {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error as DeError, StrDeserializer};
        let s = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        let de: StrDeserializer<'_, DeError> = s.into_deserializer();
        let id = DeviceId::deserialize(de).unwrap();
        assert_eq!(id.to_string(), s);
        let de: StrDeserializer<'_, DeError> = "nope".into_deserializer();
        let err = DeviceId::deserialize(de).unwrap_err();
        assert!(err.to_string().contains("4 characters"), "{err}");
    }

    // --- identity on disk ---

    #[test]
    fn generate_then_load_gives_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("config"); // created on demand
        let generated = Identity::load_or_generate(&home).unwrap();
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

    #[test]
    fn qr_terminal_has_the_dimensions_of_a_version_4_code() {
        let id = DeviceId::from_cert_der(&vector_cert(vector_path!("syncthing_1.19.2_cert_M4OZKWP.pem")));
        let code = qr_code(&id).unwrap();
        // 63 alphanumeric chars at level M need version 4 (capacity 90; version 3 holds 61).
        assert_eq!(code.version(), qrcode::Version::Normal(4));
        assert_eq!(code.width(), 33);

        let text = qr_terminal(&id);
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let size: usize = 33 + 2 * 4; // modules plus a 4-module quiet zone on each side
        assert_eq!(lines.len(), size.div_ceil(2)); // two module rows per line: 21
        assert!(lines.iter().all(|l| l.len() == size)); // 41 columns each

        // Reconstruct: light modules (and the quiet zone) are filled, dark modules blank.
        let colors = code.to_colors();
        let light = |x: usize, y: usize| {
            if !(4..37).contains(&x) || !(4..37).contains(&y) {
                return true;
            }
            colors[(y - 4) * 33 + (x - 4)] == qrcode::Color::Light
        };
        for (row, line) in lines.iter().enumerate() {
            for (x, &ch) in line.iter().enumerate() {
                let top = light(x, 2 * row);
                let bottom = 2 * row + 1 < size && light(x, 2 * row + 1);
                let expected = match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                };
                assert_eq!(ch, expected, "line {row} column {x}");
            }
        }
        // Top-left finder pattern: its dark outer ring starts at module (4, 4), so line 2
        // (module rows 4 and 5) is blank from column 4 and filled in the quiet zone before it.
        assert_eq!(lines[2][..5], ['█', '█', '█', '█', ' ']);
        assert!(lines[0].iter().all(|&c| c == '█'));
    }

    #[test]
    fn qr_svg_is_an_svg_document() {
        let id = DeviceId::from_bytes([7; 32]);
        let svg = qr_svg(&id);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#000000") && svg.contains("#ffffff"));
    }
}

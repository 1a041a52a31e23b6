//! Device IDs: the SHA-256 of a device's certificate, with Syncthing's string form, and the
//! short IDs taken from them. Pure codec, no I/O: the certificate files are `peerfold-net`'s
//! (`peerfold_net::identity`).
//!
//! This module owns:
//!
//! * [`DeviceId`]: the SHA-256 of a certificate's DER, with Syncthing's string form
//!   (`XXXXXXX-XXXXXXX-…`, base32 with Luhn mod 32 check characters) and the raw 32-byte wire form;
//! * [`ShortId`]: the first 8 bytes of a device ID as a big-endian `u64` (used in version vectors
//!   and `modified_by`).

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

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

    fn parse(s: &str) -> Result<DeviceId, DeviceIdError> {
        s.parse()
    }

    fn vector_cert(path: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(&fs::read(path).unwrap()).unwrap()
    }

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
}

//! Peer and listen addresses in Syncthing's URL form: `tcp://host:port`, `quic://[::1]:22000`.
//!
//! This module owns parsing and printing them, and the IP-family restriction that the `tcp4`,
//! `tcp6`, `quic4` and `quic6` schemes carry. It does not resolve host names: that happens at
//! dial (or bind) time, so that a name in the configuration follows DNS changes.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::{NetError, Transport};

/// The port used when an address has none (Syncthing's default for both TCP and QUIC).
pub const DEFAULT_PORT: u16 = 22000;

/// Which IP family an address may resolve to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// `tcp://`, `quic://`: either.
    #[default]
    Any,
    /// `tcp4://`, `quic4://`: IPv4 only.
    V4,
    /// `tcp6://`, `quic6://`: IPv6 only.
    V6,
}

impl Family {
    /// Whether `ip` is of this family.
    pub fn admits(self, ip: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::V4 => ip.is_ipv4(),
            Self::V6 => ip.is_ipv6(),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Any => "",
            Self::V4 => "4",
            Self::V6 => "6",
        }
    }
}

/// A parsed peer or listen address.
///
/// The text form is `scheme://host[:port]` with scheme `tcp`, `tcp4`, `tcp6`, `quic`, `quic4` or
/// `quic6`; a missing (or empty) port means [`DEFAULT_PORT`]; an IPv6 literal is written in
/// brackets. An empty host (`tcp://:22000`) means every local address, which only makes sense
/// for listening. The keyword `dynamic` (find the device by discovery) is not an address:
/// callers handle it before parsing. `Display` prints the canonical form, which parses back to
/// the same value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// TCP+TLS or QUIC.
    pub transport: Transport,
    /// A host name, an IPv4 literal, an IPv6 literal without brackets, or empty (any address).
    pub host: String,
    /// The port; 0 lets the system pick one when listening.
    pub port: u16,
    /// The IP family the scheme restricts the address to.
    pub family: Family,
}

impl Address {
    /// The address of a bound socket, keeping the scheme of the address it was bound for.
    pub(crate) fn bound(transport: Transport, family: Family, addr: SocketAddr) -> Self {
        Self { transport, host: addr.ip().to_string(), port: addr.port(), family }
    }

    /// The host as an IP address, if it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
            // Never parsed into an `Address`; printed only if a caller builds one by hand.
            Transport::Relay => "relay",
        };
        write!(f, "{scheme}{}://", self.family.suffix())?;
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Address {
    type Err = NetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input, 0)
    }
}

impl Address {
    /// Parses the text form with ports below `min_port` refused (1 for an address to dial).
    fn parse(input: &str, min_port: u16) -> Result<Self, NetError> {
        let bad = |reason: &str| NetError::BadAddress { input: input.to_owned(), reason: reason.to_owned() };

        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad("expected scheme://host:port, e.g. tcp://192.0.2.1:22000"));
        };
        let (transport, family) = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => (Transport::Tcp, Family::Any),
            "tcp4" => (Transport::Tcp, Family::V4),
            "tcp6" => (Transport::Tcp, Family::V6),
            "quic" => (Transport::Quic, Family::Any),
            "quic4" => (Transport::Quic, Family::V4),
            "quic6" => (Transport::Quic, Family::V6),
            "relay" => return Err(bad("relay addresses are not supported")),
            _ => return Err(bad("unknown scheme; expected tcp, tcp4, tcp6, quic, quic4 or quic6")),
        };
        // Go's URL parser, which Syncthing uses, accepts a trailing slash; nothing else may follow.
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only scheme://host:port is allowed (no path, query or user)"));
        }

        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let Some((ip, after)) = bracketed.split_once(']') else {
                return Err(bad("missing ] after the IPv6 address"));
            };
            if ip.contains('%') {
                return Err(bad("IPv6 zone IDs are not supported"));
            }
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address between [ and ]"));
            }
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return Err(bad("unexpected text after ]")),
                },
            };
            (ip, port)
        } else {
            match authority.split_once(':') {
                Some((_, port)) if port.contains(':') => {
                    return Err(bad("IPv6 addresses must be in brackets, e.g. tcp://[::1]:22000"));
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };

        if !host.contains(':') && !is_host_name(host) {
            return Err(bad("the host is not a valid name or IP address"));
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port >= min_port && digits.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(bad(&format!("the port is not a number from {min_port} to 65535"))),
            },
        };
        if let Ok(ip) = host.parse::<IpAddr>()
            && !family.admits(ip)
        {
            return Err(bad("the IP address is not of the family the scheme requires"));
        }
        Ok(Self { transport, host: host.to_owned(), port, family })
    }
}

/// A device's address as configured: `dynamic` or an address to dial. The one parser of
/// device addresses, shared by the configuration (which checks them) and the dialer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceAddress {
    /// Find the device by discovery.
    Dynamic,
    /// Dial this address: it has a host and a port other than 0.
    Dial(Address),
    /// Reach the device through this relay, where it holds a reservation.
    Relay(super::relay::RelayUrl),
}

impl DeviceAddress {
    /// The keyword for [`DeviceAddress::Dynamic`]; matched exactly, as Syncthing does.
    pub const DYNAMIC: &str = "dynamic";
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dynamic => f.write_str(Self::DYNAMIC),
            Self::Dial(address) => address.fmt(f),
            Self::Relay(url) => url.fmt(f),
        }
    }
}

impl FromStr for DeviceAddress {
    type Err = NetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input == Self::DYNAMIC {
            return Ok(Self::Dynamic);
        }
        let bad = |reason: &str| NetError::BadAddress { input: input.to_owned(), reason: reason.to_owned() };
        if !input.contains("://") {
            return Err(bad("expected dynamic or scheme://host:port, e.g. tcp://192.0.2.1:22000"));
        }
        if input.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("relay://")) {
            return match input.parse::<super::relay::RelayUrl>() {
                Ok(url) => Ok(Self::Relay(url)),
                Err(super::relay::RelayError::BadUrl { reason, .. }) => Err(bad(&reason)),
                Err(e) => Err(bad(&e.to_string())),
            };
        }
        let address = Address::parse(input, 1)?;
        if address.host.is_empty() {
            return Err(bad("a device's address needs a host"));
        }
        Ok(Self::Dial(address))
    }
}

/// A DNS name or IPv4 literal: letters, digits, `-`, `.` and `_`; empty means "any address".
fn is_host_name(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Address {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn reason(s: &str) -> String {
        match s.parse::<Address>() {
            Err(NetError::BadAddress { input, reason }) => {
                assert_eq!(input, s);
                reason
            }
            other => panic!("{s}: expected a bad-address error, got {other:?}"),
        }
    }

    #[test]
    fn canonical_forms_round_trip() {
        for s in [
            "tcp://127.0.0.1:22000",
            "tcp4://192.0.2.7:1",
            "tcp6://[2001:db8::1]:22001",
            "quic://example.com:443",
            "quic4://0.0.0.0:0",
            "quic6://[::]:22000",
            "tcp://[::1]:65535",
            "tcp://:22000",
            "quic://my-nas.local:22000",
        ] {
            let a = parse(s);
            assert_eq!(a.to_string(), s);
            assert_eq!(parse(&a.to_string()), a);
        }
    }

    #[test]
    fn fields_are_parsed() {
        assert_eq!(
            parse("quic6://[fe80::1]:1234"),
            Address { transport: Transport::Quic, host: "fe80::1".into(), port: 1234, family: Family::V6 }
        );
        assert_eq!(
            parse("TCP://Example.COM"),
            Address {
                transport: Transport::Tcp,
                host: "Example.COM".into(),
                port: DEFAULT_PORT,
                family: Family::Any
            }
        );
    }

    #[test]
    fn missing_or_empty_port_is_22000() {
        assert_eq!(parse("tcp://192.0.2.1").port, 22000);
        assert_eq!(parse("tcp://192.0.2.1:").port, 22000);
        assert_eq!(parse("quic://[::1]").port, 22000);
        assert_eq!(parse("quic://[::1]:").port, 22000);
        assert_eq!(parse("tcp://host/").to_string(), "tcp://host:22000");
    }

    #[test]
    fn bad_addresses_are_rejected_with_a_reason() {
        assert!(reason("192.0.2.1:22000").contains("scheme://"));
        assert!(reason("dynamic").contains("scheme://"));
        assert!(reason("udp://192.0.2.1:22000").contains("unknown scheme"));
        assert!(reason("relay://192.0.2.1:22067/?id=X").contains("relay"));
        assert!(reason("tcp://::1:22000").contains("brackets"));
        assert!(reason("tcp://[::1:22000").contains("]"));
        assert!(reason("tcp://[::1]x").contains("after ]"));
        assert!(reason("tcp://[not-v6]:1").contains("IPv6"));
        assert!(reason("tcp://[fe80::1%eth0]:1").contains("zone"));
        assert!(reason("tcp://host:70000").contains("port"));
        assert!(reason("tcp://host:+1").contains("port"));
        assert!(reason("tcp://host:abc").contains("port"));
        assert!(reason("tcp://host:1/path").contains("no path"));
        assert!(reason("tcp://user@host:1").contains("no path"));
        assert!(reason("tcp://ho st:1").contains("host"));
        assert!(reason("tcp4://[::1]:1").contains("family"));
        assert!(reason("quic6://127.0.0.1:1").contains("family"));
        let err = "udp://x".parse::<Address>().unwrap_err();
        assert!(err.to_string().starts_with("bad address udp://x: unknown scheme"), "{err}");
    }

    #[test]
    fn device_addresses_are_dynamic_or_dialable() {
        let device = |s: &str| s.parse::<DeviceAddress>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(device("dynamic"), DeviceAddress::Dynamic);
        assert_eq!(device("dynamic").to_string(), "dynamic");
        // The scheme is case-insensitive, as Go's URL parser (and so Syncthing) has it.
        for (input, canonical) in [
            ("tcp://192.0.2.1:22000", "tcp://192.0.2.1:22000"),
            ("TCP://nas", "tcp://nas:22000"),
            ("Quic://nas:1", "quic://nas:1"),
            ("quic://[2001:db8::1]:22001", "quic://[2001:db8::1]:22001"),
            ("tcp6://[::1]", "tcp6://[::1]:22000"),
            ("tcp://nas:", "tcp://nas:22000"),
        ] {
            assert_eq!(device(input).to_string(), canonical, "{input}");
            assert_eq!(device(canonical), device(input));
        }
        let reason = |s: &str| match s.parse::<DeviceAddress>() {
            Err(NetError::BadAddress { reason, .. }) => reason,
            other => panic!("{s}: expected a bad-address error, got {other:?}"),
        };
        for (input, want) in [
            ("", "expected dynamic or scheme://"),
            ("Dynamic", "expected dynamic or scheme://"),
            ("nas:22000", "expected dynamic or scheme://"),
            ("tcp://:22000", "needs a host"),
            ("tcp://nas:0", "port is not a number from 1 to 65535"),
            ("tcp://nas:65536", "port"),
            ("tcp://2001:db8::1", "brackets"),
            ("tcp://[fe80::1%eth0]:22000", "zone"),
            ("smtp://nas", "unknown scheme"),
        ] {
            assert!(reason(input).contains(want), "{input:?}: {}", reason(input));
        }
    }

    #[test]
    fn family_admits() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(Family::Any.admits(v4) && Family::Any.admits(v6));
        assert!(Family::V4.admits(v4) && !Family::V4.admits(v6));
        assert!(Family::V6.admits(v6) && !Family::V6.admits(v4));
    }
}

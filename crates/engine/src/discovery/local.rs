//! Syncthing's local discovery v4: announcing this device on the LAN and hearing others.
//!
//! A packet is the magic `0x2EA7D90B` (big-endian) followed by the protobuf `Announce { bytes
//! id = 1; repeated string addresses = 2; int64 instance_id = 3; }`, sent to UDP port 21027 as
//! an IPv4 broadcast on every interface and as an IPv6 multicast to `ff12::8384`. The codec
//! ([`encode`], [`decode`], [`resolve`]) and the rate bound ([`RateLimit`]) are pure; [`run`] is
//! the task that owns the two sockets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Cache, DiscoveryError, Source};
use crate::identity::DeviceId;
use crate::net::Address;
use crate::net::relay::RelayUrl;

/// Every announcement starts with this (the same value as the BEP Hello magic).
pub const MAGIC: u32 = 0x2EA7_D90B;
/// Syncthing's local discovery port.
pub const DEFAULT_PORT: u16 = 21027;
/// The IPv6 multicast group announcements go to.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0, 0x8384);
/// How often this device announces itself.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// How long a heard announcement counts (three intervals, as Syncthing).
pub const LIFETIME: Duration = Duration::from_secs(90);
/// The least time between two announcements that something heard triggered.
const MIN_GAP: Duration = Duration::from_secs(2);
/// Announcements are never longer than this; a larger datagram is not one.
const MAX_PACKET: usize = 4096;

#[derive(Clone, PartialEq, prost::Message)]
struct WireAnnounce {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
    #[prost(string, repeated, tag = "2")]
    addresses: Vec<String>,
    #[prost(int64, tag = "3")]
    instance_id: i64,
}

/// One announcement: who, where, and which run of it (random per process start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    pub device: DeviceId,
    pub addresses: Vec<String>,
    pub instance_id: i64,
}

/// The datagram announcing `a`.
pub fn encode(a: &Announce) -> Vec<u8> {
    let wire = WireAnnounce {
        id: a.device.as_bytes().to_vec(),
        addresses: a.addresses.clone(),
        instance_id: a.instance_id,
    };
    let mut out = MAGIC.to_be_bytes().to_vec();
    out.extend(wire.encode_to_vec());
    out
}

/// The announcement in a datagram.
pub fn decode(packet: &[u8]) -> Result<Announce, DiscoveryError> {
    let (magic, body) = packet.split_first_chunk::<4>().ok_or(DiscoveryError::Short)?;
    if u32::from_be_bytes(*magic) != MAGIC {
        return Err(DiscoveryError::BadMagic);
    }
    let wire = WireAnnounce::decode(body).map_err(DiscoveryError::Decode)?;
    let device = DeviceId::try_from(wire.id.as_slice()).map_err(|_| DiscoveryError::BadDeviceId)?;
    Ok(Announce { device, addresses: wire.addresses, instance_id: wire.instance_id })
}

/// The addresses an announcement heard from `source` names, as they can be dialled: an empty
/// or unspecified host (`tcp://0.0.0.0:22000`, `tcp://:22000`) is the sender's own IP, as
/// Syncthing does it. Addresses we cannot dial (relays, unknown schemes, a family that does not
/// fit) are left out; duplicates too.
pub fn resolve(addresses: &[String], source: IpAddr) -> Vec<Address> {
    let source = source.to_canonical();
    let mut out: Vec<Address> = Vec::new();
    for text in addresses {
        let Ok(mut addr) = text.parse::<Address>() else { continue };
        let unspecified =
            addr.host.is_empty() || addr.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
        if unspecified {
            if !addr.family.admits(source) {
                continue;
            }
            addr.host = source.to_string();
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// A token bucket: at most `burst` packets at once, `per_second` on average, so a flood of
/// datagrams costs a bounded amount of decoding.
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        Self { tokens: burst, burst, per_second, last: now }
    }

    /// Whether a packet arriving at `now` may be processed.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A UDP socket on `addr` that other processes may share (every listener on the port hears
/// a broadcast), able to broadcast.
fn shared_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    } else {
        socket.set_broadcast(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The interfaces' IPv4 broadcast addresses and the indexes of interfaces with IPv6, loopback
/// left out.
fn interfaces() -> (Vec<Ipv4Addr>, Vec<u32>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if iface.is_loopback() {
            continue;
        }
        match &iface.addr {
            if_addrs::IfAddr::V4(a) => v4.extend(a.broadcast),
            if_addrs::IfAddr::V6(_) => v6.extend(iface.index),
        }
    }
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    (v4, v6)
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

struct Announcer {
    me: DeviceId,
    instance_id: i64,
    port: u16,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    cache: Arc<Cache>,
    /// The relays to announce besides the addresses.
    relays: Vec<RelayUrl>,
    /// The last instance ID heard per device, to notice restarts (bounded like the cache).
    instances: HashMap<DeviceId, i64>,
    limit: RateLimit,
    next: Instant,
    last_sent: Option<Instant>,
}

impl Announcer {
    /// What this device announces: its addresses, then its relays, as Syncthing lists them.
    fn announcement(&self, addresses: &[Address]) -> Announce {
        let relays = self.relays.iter().map(ToString::to_string);
        Announce {
            device: self.me,
            addresses: addresses.iter().map(ToString::to_string).chain(relays).collect(),
            instance_id: self.instance_id,
        }
    }

    async fn send(&mut self, addresses: &[Address]) {
        let packet = encode(&self.announcement(addresses));
        let (broadcasts, v6_interfaces) = interfaces();
        if let Some(s) = &self.v4 {
            let targets = if broadcasts.is_empty() { vec![Ipv4Addr::BROADCAST] } else { broadcasts };
            for b in targets {
                if let Err(e) = s.send_to(&packet, (b, self.port)).await {
                    tracing::debug!(to = %b, error = %e, "local announcement not sent");
                }
            }
        }
        if let Some(s) = &self.v6 {
            for index in v6_interfaces {
                let sent = match socket2::SockRef::from(s).set_multicast_if_v6(index) {
                    Ok(()) => {
                        s.send_to(&packet, SocketAddr::new(MULTICAST_V6.into(), self.port)).await.map(drop)
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    tracing::debug!(interface = index, error = %e, "local announcement not sent");
                }
            }
        }
        let now = Instant::now();
        self.last_sent = Some(now);
        self.next = now + INTERVAL;
    }

    fn heard(&mut self, packet: &[u8], from: SocketAddr) {
        let now = Instant::now();
        if !self.limit.allow(now) {
            return;
        }
        let announce = match decode(packet) {
            Ok(a) => a,
            Err(e) => return tracing::debug!(%from, error = %e, "not a local announcement"),
        };
        if announce.device == self.me || announce.instance_id == self.instance_id {
            return;
        }
        let addresses = resolve(&announce.addresses, from.ip());
        let relays: Vec<RelayUrl> = announce.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        if self.instances.len() >= super::MAX_DEVICES && !self.instances.contains_key(&announce.device) {
            self.instances.clear();
        }
        let restarted = self
            .instances
            .insert(announce.device, announce.instance_id)
            .is_some_and(|old| old != announce.instance_id);
        let new = self.cache.insert(announce.device, Source::Lan, addresses, LIFETIME, now.into_std());
        self.cache.set_relays(announce.device, Source::Lan, relays);
        if new || restarted {
            tracing::info!(device = %announce.device, %from, "heard on the LAN");
            // Answer at once, so it learns of us without waiting for our next interval.
            let soonest = self.last_sent.map_or(now, |t| t + MIN_GAP);
            self.next = self.next.min(soonest.max(now));
        }
    }
}

/// Announces this device every [`INTERVAL`] (at once on start, when `addresses` changes and
/// when a new or restarted device is heard) and records what others announce in `cache`,
/// until `shutdown` turns true.
pub async fn run(
    me: DeviceId,
    port: u16,
    relays: Vec<RelayUrl>,
    cache: Arc<Cache>,
    mut addresses: watch::Receiver<Vec<Address>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = |addr: SocketAddr| match shared_socket(addr) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %DiscoveryError::Socket(e), %addr, "no local discovery over this family");
            None
        }
    };
    let v4 = open(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    let v6 = open(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
    if let Some(s) = &v6 {
        for index in interfaces().1 {
            if let Err(e) = s.join_multicast_v6(&MULTICAST_V6, index) {
                tracing::debug!(interface = index, error = %e, "cannot join the local discovery group");
            }
        }
    }
    if v4.is_none() && v6.is_none() {
        return;
    }
    let now = Instant::now();
    let mut announcer = Announcer {
        me,
        instance_id: rand::random(),
        port,
        v4,
        v6,
        cache,
        relays,
        instances: HashMap::new(),
        limit: RateLimit::new(20.0, 50.0, now),
        next: now,
        last_sent: None,
    };
    let (mut buf4, mut buf6) = (vec![0u8; MAX_PACKET], vec![0u8; MAX_PACKET]);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(announcer.next) => {
                let current = addresses.borrow().clone();
                announcer.send(&current).await;
            }
            changed = addresses.changed() => {
                if changed.is_err() { break; }
                announcer.next = Instant::now();
            }
            got = recv(announcer.v4.as_ref(), &mut buf4) => match got {
                Ok((n, from)) => announcer.heard(&buf4[..n], from),
                Err(e) => tracing::debug!(error = %e, "local discovery receive failed"),
            },
            got = recv(announcer.v6.as_ref(), &mut buf6) => match got {
                Ok((n, from)) => announcer.heard(&buf6[..n], from),
                Err(e) => tracing::debug!(error = %e, "local discovery receive failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> Announce {
        Announce {
            device: DeviceId::from_bytes([7; 32]),
            addresses: vec!["tcp://0.0.0.0:22000".into(), "quic://:22000".into()],
            instance_id: -42,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let packet = encode(&announce());
        assert_eq!(&packet[..4], &[0x2E, 0xA7, 0xD9, 0x0B]);
        // Field 1, length-delimited, 32 bytes: the raw device ID.
        assert_eq!(&packet[4..6], &[0x0A, 32]);
        assert_eq!(&packet[6..38], &[7; 32]);
        assert_eq!(decode(&packet).unwrap(), announce());
    }

    #[test]
    fn bad_packets_are_errors() {
        assert!(matches!(decode(&[0x2E, 0xA7]), Err(DiscoveryError::Short)));
        // The v0.13 magic.
        let mut old = encode(&announce());
        old[..4].copy_from_slice(&0x7D79_BC40u32.to_be_bytes());
        assert!(matches!(decode(&old), Err(DiscoveryError::BadMagic)));
        let mut short_id = MAGIC.to_be_bytes().to_vec();
        short_id.extend_from_slice(&[0x0A, 3, 1, 2, 3]);
        assert!(matches!(decode(&short_id), Err(DiscoveryError::BadDeviceId)));
        let mut garbage = MAGIC.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xFF; 8]);
        assert!(matches!(decode(&garbage), Err(DiscoveryError::Decode(_))));
    }

    #[test]
    fn unspecified_hosts_become_the_sender() {
        let addresses: Vec<String> = [
            "tcp://0.0.0.0:22000",
            "quic://:22001",
            "tcp://192.0.2.9:22002",
            "tcp6://[::]:22003",
            "relay://relay.example:22067/?id=X",
            "tcp://0.0.0.0:22000",
        ]
        .map(String::from)
        .to_vec();
        let got: Vec<String> =
            resolve(&addresses, "10.1.2.3".parse().unwrap()).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["tcp://10.1.2.3:22000", "quic://10.1.2.3:22001", "tcp://192.0.2.9:22002"]);
        // An IPv4 sender heard on an IPv6 socket.
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(resolve(&addresses[..1], mapped)[0].to_string(), "tcp://10.1.2.3:22000");
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(resolve(&addresses[3..4], v6)[0].to_string(), "tcp6://[fd00::5]:22003");
    }

    #[test]
    fn relays_are_announced_after_the_addresses_and_heard_bounded() {
        let relay = |n: u16| -> RelayUrl {
            format!("relay://192.0.2.{n}:22067/?id=MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD")
                .parse()
                .unwrap()
        };
        let now = Instant::now();
        let mut announcer = Announcer {
            me: DeviceId::from_bytes([1; 32]),
            instance_id: 1,
            port: DEFAULT_PORT,
            v4: None,
            v6: None,
            cache: Arc::new(Cache::default()),
            relays: vec![relay(1)],
            instances: HashMap::new(),
            limit: RateLimit::new(10.0, 5.0, now),
            next: now,
            last_sent: None,
        };
        let ours = announcer.announcement(&["tcp://0.0.0.0:22000".parse().unwrap()]);
        assert_eq!(ours.addresses, ["tcp://0.0.0.0:22000".to_owned(), relay(1).to_string()]);

        let mut theirs = announce();
        theirs.addresses.extend((1..=20).map(|n| relay(n).to_string()));
        theirs.addresses.push("relay://192.0.2.99:22067/?id=NOT-AN-ID".into());
        announcer.heard(&encode(&theirs), "10.1.2.3:21027".parse().unwrap());
        let heard = announcer.cache.lookup_relays(&theirs.device, now.into_std());
        assert_eq!(heard, (1..=8).map(relay).collect::<Vec<_>>(), "bounded, in order, bad ones left out");
        let direct = announcer.cache.lookup(&theirs.device, now.into_std());
        assert_eq!(direct.len(), 2, "{direct:?}");
    }

    #[test]
    fn the_rate_is_bounded() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10.0, 5.0, start);
        assert_eq!((0..100).filter(|_| limit.allow(start)).count(), 5);
        assert!(limit.allow(start + Duration::from_millis(100)));
        assert!(!limit.allow(start + Duration::from_millis(100)));
    }
}

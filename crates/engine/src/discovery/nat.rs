//! Port mapping: asking the router to forward the listening ports, so devices outside the LAN
//! can dial in, and announcing the mapped external address. NAT-PMP first, UPnP-IGD (through
//! the `igd-next` crate: SSDP search, SOAP `AddPortMapping`) when no NAT-PMP gateway answers.
//!
//! NAT-PMP (RFC 6886) is a small UDP protocol: its codec ([`encode_external_address_request`],
//! [`encode_map_request`], [`decode_response`]) is pure, as is finding the default gateway in
//! `/proc/net/route` ([`default_gateway`]). [`run`] is the task that maps each listening port,
//! renews the lease at half its lifetime and publishes the result in the announced addresses.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::net::{Address, Family, Transport};

/// The NAT-PMP server port on the gateway.
pub const NAT_PMP_PORT: u16 = 5351;
/// The lease asked for (RFC 6886 recommends two hours).
const LEASE: u32 = 7200;
/// How long after a failure mapping is tried again.
const RETRY: Duration = Duration::from_secs(5 * 60);
/// The first wait for an answer; it doubles on each of the [`TRIES`] (RFC 6886 §3.1).
const FIRST_WAIT: Duration = Duration::from_millis(250);
const TRIES: u32 = 4;

/// Why a port could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("the answer is not a NAT-PMP response")]
    Malformed,
    #[error("the gateway refused (NAT-PMP result code {0})")]
    Refused(u16),
    #[error("the gateway did not answer")]
    NoAnswer,
    #[error("cannot talk to the gateway")]
    Io(#[source] std::io::Error),
    #[error("no UPnP gateway was found")]
    UpnpSearch(#[source] igd_next::SearchError),
    #[error("the UPnP gateway did not tell its external address")]
    UpnpExternalIp(#[source] igd_next::GetExternalIpError),
    #[error("the UPnP gateway refused to map the port")]
    UpnpAddPort(#[source] igd_next::AddPortError),
}

/// Which router to ask.
#[derive(Clone, Copy, Debug)]
pub enum Router {
    /// NAT-PMP at the default gateway; UPnP-IGD found by SSDP multicast if that maps nothing.
    Auto,
    /// NAT-PMP at this address only.
    NatPmp(SocketAddr),
    /// UPnP-IGD only, searched for at this SSDP address instead of the multicast group.
    Upnp(SocketAddr),
}

/// The SSDP multicast group UPnP devices are searched in.
const SSDP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);
/// How long the UPnP search waits for a gateway.
const UPNP_SEARCH: Duration = Duration::from_secs(3);

/// What NAT-PMP maps: TCP or UDP (QUIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp = 1,
    Tcp = 2,
}

/// A NAT-PMP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    ExternalAddress { epoch: u32, ip: Ipv4Addr },
    Mapping { protocol: Protocol, epoch: u32, internal: u16, external: u16, lifetime: u32 },
}

/// The request for the gateway's external address.
pub fn encode_external_address_request() -> [u8; 2] {
    [0, 0]
}

/// The request to map `internal` (suggesting the same external port) for `lifetime` seconds;
/// a lifetime of 0 removes the mapping.
pub fn encode_map_request(protocol: Protocol, internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[1] = protocol as u8;
    out[4..6].copy_from_slice(&internal.to_be_bytes());
    out[6..8].copy_from_slice(&external.to_be_bytes());
    out[8..12].copy_from_slice(&lifetime.to_be_bytes());
    out
}

/// A gateway's answer.
pub fn decode_response(bytes: &[u8]) -> Result<Response, NatError> {
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let u32_at = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (&[version, op], Some(code), Some(epoch)) =
        (bytes.first_chunk::<2>().ok_or(NatError::Malformed)?, u16_at(2), u32_at(4))
    else {
        return Err(NatError::Malformed);
    };
    if version != 0 || op < 128 {
        return Err(NatError::Malformed);
    }
    if code != 0 {
        return Err(NatError::Refused(code));
    }
    match op - 128 {
        0 => {
            Ok(Response::ExternalAddress { epoch, ip: Ipv4Addr::from(u32_at(8).ok_or(NatError::Malformed)?) })
        }
        n @ (1 | 2) => {
            let (Some(internal), Some(external), Some(lifetime)) = (u16_at(8), u16_at(10), u32_at(12)) else {
                return Err(NatError::Malformed);
            };
            let protocol = if n == 1 { Protocol::Udp } else { Protocol::Tcp };
            Ok(Response::Mapping { protocol, epoch, internal, external, lifetime })
        }
        _ => Err(NatError::Malformed),
    }
}

/// The default route's gateway in the text of Linux's `/proc/net/route`.
pub fn default_gateway(route_table: &str) -> Option<Ipv4Addr> {
    route_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway) = (fields.get(1)?, fields.get(2)?);
        if *destination != "00000000" {
            return None;
        }
        // The kernel prints the address in host byte order (little-endian here).
        let raw = u32::from_str_radix(gateway, 16).ok()?;
        Some(Ipv4Addr::from(raw.swap_bytes())).filter(|ip| !ip.is_unspecified())
    })
}

/// Sends `request` to `gateway` until an answer that `accept` takes comes, waiting 250 ms,
/// then twice as long each time.
async fn ask<T>(
    socket: &UdpSocket,
    gateway: SocketAddr,
    request: &[u8],
    accept: impl Fn(Response) -> Option<T>,
) -> Result<T, NatError> {
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 64];
    for _ in 0..TRIES {
        socket.send_to(request, gateway).await.map_err(NatError::Io)?;
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(NatError::Io(e)),
                // Only the gateway may answer (RFC 6886 §3.1).
                Ok(Ok((n, from))) if from == gateway => match decode_response(&buf[..n]) {
                    Ok(response) => {
                        if let Some(done) = accept(response) {
                            return Ok(done);
                        }
                    }
                    Err(NatError::Malformed) => {}
                    Err(e) => return Err(e),
                },
                Ok(Ok(_)) => {}
            }
        }
        wait *= 2;
    }
    Err(NatError::NoAnswer)
}

/// A port mapped on the router: where the world reaches `transport`'s listening port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub address: Address,
    pub lifetime: Duration,
}

/// Maps `internal` for `transport` through the NAT-PMP gateway at `gateway`.
pub async fn map_nat_pmp(
    gateway: SocketAddr,
    transport: Transport,
    internal: u16,
) -> Result<Mapped, NatError> {
    let bind: SocketAddr = if gateway.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await.map_err(NatError::Io)?;
    let ip = ask(&socket, gateway, &encode_external_address_request(), |r| match r {
        Response::ExternalAddress { ip, .. } => Some(ip),
        Response::Mapping { .. } => None,
    })
    .await?;
    let protocol = match transport {
        Transport::Tcp => Protocol::Tcp,
        Transport::Quic => Protocol::Udp,
        // A relay session needs no port of ours; nothing to map.
        Transport::Relay => return Err(NatError::Malformed),
    };
    let (external, lifetime) =
        ask(&socket, gateway, &encode_map_request(protocol, internal, internal, LEASE), |r| match r {
            Response::Mapping { protocol: p, internal: i, external, lifetime, .. }
                if p == protocol && i == internal =>
            {
                Some((external, lifetime))
            }
            _ => None,
        })
        .await?;
    let address = Address { transport, host: ip.to_string(), port: external, family: Family::Any };
    Ok(Mapped { address, lifetime: Duration::from_secs(lifetime.into()) })
}

/// Maps every port of `listen` through the UPnP-IGD gateway that answers a search at `ssdp`.
pub async fn map_upnp(ssdp: SocketAddr, listen: &[Address]) -> Result<Vec<Mapped>, NatError> {
    use igd_next::PortMappingProtocol;
    let bind: SocketAddr =
        if ssdp.ip().is_loopback() { ([127, 0, 0, 1], 0).into() } else { ([0, 0, 0, 0], 0).into() };
    let mut options = igd_next::SearchOptions::default();
    options.bind_addr = bind;
    options.broadcast_address = ssdp;
    options.timeout = Some(UPNP_SEARCH);
    if ssdp != SSDP {
        // Searched for at one address, the gateway is that host, even on loopback (which
        // igd-next distrusts in answers to a multicast search).
        options.allowed_gateway_ips = vec![ssdp.ip()];
    }
    let gateway = igd_next::aio::tokio::search_gateway(options).await.map_err(NatError::UpnpSearch)?;
    let external = gateway.get_external_ip().await.map_err(NatError::UpnpExternalIp)?;
    // The mapping names this device's address on the gateway's side: the one a socket
    // "connected" to the gateway gets.
    let probe = UdpSocket::bind(bind).await.map_err(NatError::Io)?;
    probe.connect(gateway.addr).await.map_err(NatError::Io)?;
    let local = probe.local_addr().map_err(NatError::Io)?.ip();
    let mut mapped = Vec::new();
    for addr in listen.iter().filter(|a| a.port != 0) {
        let protocol = match addr.transport {
            Transport::Tcp => PortMappingProtocol::TCP,
            Transport::Quic => PortMappingProtocol::UDP,
            // Listen addresses are never relays.
            Transport::Relay => continue,
        };
        gateway
            .add_port(protocol, addr.port, SocketAddr::new(local, addr.port), LEASE, "Peerfold")
            .await
            .map_err(NatError::UpnpAddPort)?;
        let address = Address {
            transport: addr.transport,
            host: external.to_string(),
            port: addr.port,
            family: Family::Any,
        };
        mapped.push(Mapped { address, lifetime: Duration::from_secs(LEASE.into()) });
    }
    Ok(mapped)
}

/// The default route's NAT-PMP gateway.
fn default_nat_pmp() -> Option<SocketAddr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    Some(SocketAddr::new(default_gateway(&table)?.into(), NAT_PMP_PORT))
}

/// Maps what NAT-PMP at `gateway` maps of `listen`.
async fn map_all_nat_pmp(gateway: SocketAddr, listen: &[Address]) -> Vec<Mapped> {
    let mut mapped = Vec::new();
    for addr in listen.iter().filter(|a| a.port != 0) {
        match map_nat_pmp(gateway, addr.transport, addr.port).await {
            Ok(m) => mapped.push(m),
            Err(e) => tracing::debug!(listening = %addr, %gateway, error = %e, "no NAT-PMP mapping"),
        }
    }
    mapped
}

async fn map_all_upnp(ssdp: SocketAddr, listen: &[Address]) -> Vec<Mapped> {
    map_upnp(ssdp, listen).await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "no UPnP mapping");
        Vec::new()
    })
}

/// What `router` maps of `listen`.
async fn map(router: Router, listen: &[Address]) -> Vec<Mapped> {
    match router {
        Router::NatPmp(gateway) => map_all_nat_pmp(gateway, listen).await,
        Router::Upnp(ssdp) => map_all_upnp(ssdp, listen).await,
        Router::Auto => {
            let by_nat_pmp = match default_nat_pmp() {
                Some(gateway) => map_all_nat_pmp(gateway, listen).await,
                None => Vec::new(),
            };
            if by_nat_pmp.is_empty() { map_all_upnp(SSDP, listen).await } else { by_nat_pmp }
        }
    }
}

/// Maps every listening port in `listen` on the router and keeps the leases renewed (at half
/// their lifetime), publishing `listen` plus the mapped addresses in `announced`, until
/// `shutdown` turns true.
pub async fn run(
    listen: Vec<Address>,
    router: Router,
    announced: Arc<watch::Sender<Vec<Address>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next = Instant::now();
    // What this task added to `announced`, replaced on each renewal (STUN adds its own).
    let mut published: Vec<Address> = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep_until(next) => {}
        }
        let mapped = tokio::select! {
            _ = shutdown.changed() => None,
            mapped = map(router, &listen) => Some(mapped),
        };
        let Some(mapped) = mapped else { break };
        let renew =
            mapped.iter().map(|m| (m.lifetime / 2).max(Duration::from_secs(1))).min().unwrap_or(RETRY);
        let mut now = Vec::new();
        for m in mapped {
            tracing::info!(external = %m.address, "port mapped on the router");
            now.push(m.address);
        }
        super::republish(&announced, &published, &now);
        published = now;
        next = Instant::now() + renew;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rfc_6886_says() {
        assert_eq!(encode_external_address_request(), [0, 0]);
        assert_eq!(
            encode_map_request(Protocol::Tcp, 22000, 22000, 7200),
            [0, 2, 0, 0, 0x55, 0xF0, 0x55, 0xF0, 0, 0, 0x1C, 0x20]
        );
    }

    #[test]
    fn responses_decode_and_refusals_are_errors() {
        let external = [0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 7];
        assert_eq!(
            decode_response(&external).unwrap(),
            Response::ExternalAddress { epoch: 9, ip: Ipv4Addr::new(203, 0, 113, 7) }
        );
        let mapping = [0, 129, 0, 0, 0, 0, 0, 1, 0x55, 0xF0, 0x9C, 0x40, 0, 0, 0x1C, 0x20];
        assert_eq!(
            decode_response(&mapping).unwrap(),
            Response::Mapping {
                protocol: Protocol::Udp,
                epoch: 1,
                internal: 22000,
                external: 40000,
                lifetime: 7200
            }
        );
        assert!(matches!(decode_response(&[0, 130, 0, 2, 0, 0, 0, 1]), Err(NatError::Refused(2))));
        assert!(matches!(decode_response(&[0, 0, 0, 0, 0, 0, 0, 0]), Err(NatError::Malformed)));
        assert!(matches!(decode_response(&mapping[..12]), Err(NatError::Malformed)));
    }

    #[test]
    fn the_default_gateway_comes_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(default_gateway(table), Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(default_gateway("Iface\tDestination\tGateway\n"), None);
    }
}

//! Global discovery with no server: the BitTorrent mainline DHT (through the `mainline` crate).
//!
//! A device announces itself with BEP 5 `announce_peer` under one key per transport,
//! [`key`]`(device, transport)`: the first 20 bytes of SHA-256 of `peerfold/1 TRANSPORT
//! DEVICE-ID`. The DHT nodes record the IP the announcement came from (so a device behind NAT
//! is announced at its public IP) and the port given: the port mapped on the router if there
//! is one, else the listening port. Looking a device up is `get_peers` under the same keys.
//! Whatever comes back is only a hint — anyone can announce under any key — and the dial that
//! follows still checks the device's certificate. This task owns the DHT node.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use mainline::{Dht, Id};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Cache, Source};
use crate::config::Config;
use crate::identity::DeviceId;
use crate::net::{Address, DeviceAddress, Family, Transport};

/// How often this device announces itself (DHT nodes forget announcements after about 30
/// minutes).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How soon a failed announcement or a lookup that found nothing is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How often devices that were found are looked up again.
const LOOKUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How long a looked-up address counts.
const LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The longest one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest the first announcement waits for STUN's first answer.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The DHT key `device` is announced under for `transport`.
pub fn key(device: &DeviceId, transport: Transport) -> [u8; 20] {
    let digest = Sha256::digest(format!("peerfold/1 {transport} {device}"));
    let mut key = [0u8; 20];
    key.copy_from_slice(&digest[..20]);
    key
}

/// The port to announce per transport: a port mapped on the router (an address on a public
/// IP) before the listening one.
pub fn announced_ports(addresses: &[Address]) -> Vec<(Transport, u16)> {
    let mut out = Vec::new();
    for transport in [Transport::Tcp, Transport::Quic] {
        let of_transport = || addresses.iter().filter(move |a| a.transport == transport && a.port != 0);
        let public = of_transport().find(|a| a.host.parse::<std::net::IpAddr>().is_ok_and(is_public));
        if let Some(a) = public.or_else(|| of_transport().next()) {
            out.push((transport, a.port));
        }
    }
    out
}

fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => {
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast())
        }
        std::net::IpAddr::V6(ip) => {
            !(ip.is_loopback() || ip.is_unspecified() || ip.is_unique_local() || ip.is_unicast_link_local())
        }
    }
}

/// The addresses to dial for peers `get_peers` returned under a `transport` key.
pub fn to_addresses(transport: Transport, peers: &[SocketAddrV4]) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for peer in peers.iter().filter(|p| p.port() != 0 && !p.ip().is_unspecified()) {
        let addr = Address { transport, host: peer.ip().to_string(), port: peer.port(), family: Family::Any };
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Runs `work` unless `shutdown` turns true first.
async fn unless_shutdown<T>(
    shutdown: &mut watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        _ = shutdown.changed() => None,
        done = work => Some(done),
    }
}

async fn announce(dht: &mainline::async_dht::AsyncDht, me: &DeviceId, addresses: &[Address]) -> bool {
    let mut ok = true;
    for (transport, port) in announced_ports(addresses) {
        let Ok(id) = Id::from_bytes(key(me, transport)) else { continue };
        match dht.announce_peer(id, Some(port)).await {
            Ok(_) => tracing::debug!(%transport, port, "announced on the DHT"),
            Err(e) => {
                tracing::debug!(%transport, error = %e, "DHT announcement failed");
                ok = false;
            }
        }
    }
    ok
}

/// Looks up every device configured as `dynamic`; true if each was found.
async fn lookup(dht: &mainline::async_dht::AsyncDht, me: &DeviceId, config: &Config, cache: &Cache) -> bool {
    let mut all_found = true;
    let wanted = config.devices.iter().filter(|d| {
        !d.paused
            && d.id != *me
            && d.addresses.iter().any(|a| matches!(a.parse(), Ok(DeviceAddress::Dynamic)))
    });
    for device in wanted {
        let mut found = Vec::new();
        for transport in [Transport::Tcp, Transport::Quic] {
            let Ok(id) = Id::from_bytes(key(&device.id, transport)) else { continue };
            let peers: Vec<Vec<SocketAddrV4>> =
                tokio::time::timeout(LOOKUP_TIMEOUT, dht.get_peers(id).collect()).await.unwrap_or_default();
            found.extend(to_addresses(transport, &peers.concat()));
        }
        if found.is_empty() {
            all_found = false;
        } else {
            tracing::debug!(device = %device.id, addresses = ?found, "found on the DHT");
            cache.insert(device.id, Source::Dht, found, LIFETIME, std::time::Instant::now());
        }
    }
    all_found
}

/// Joins the DHT through `bootstrap` (the public nodes if empty), announces `addresses` every
/// ten minutes (and at once when they change; the first time once `settled` is true, or after
/// ten seconds) and looks up the `dynamic` devices of `config`, recording what it finds
/// in `cache`, until `shutdown` turns true.
pub async fn run(
    me: DeviceId,
    bootstrap: Vec<String>,
    cache: Arc<Cache>,
    mut addresses: watch::Receiver<Vec<Address>>,
    mut settled: watch::Receiver<bool>,
    config: watch::Receiver<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Building resolves the bootstrap names, which blocks.
    let built = tokio::task::spawn_blocking(move || {
        let mut builder = Dht::builder();
        if !bootstrap.is_empty() {
            builder.bootstrap(&bootstrap);
        }
        builder.build()
    })
    .await;
    let dht = match built {
        Ok(Ok(dht)) => dht.as_async(),
        Ok(Err(e)) => return tracing::warn!(error = %e, "cannot join the DHT"),
        Err(e) => return tracing::warn!(error = %e, "cannot join the DHT"),
    };
    let (mut announce_at, mut lookup_at) = (Instant::now(), Instant::now());
    // Until STUN's first round is over (or the wait is), nothing is announced.
    let mut settle_by = Some(Instant::now() + SETTLE_TIMEOUT);
    loop {
        if settle_by.is_some_and(|by| *settled.borrow() || Instant::now() >= by) {
            settle_by = None;
        }
        let due = settle_by.map_or(announce_at, |by| announce_at.max(by));
        tokio::select! {
            _ = shutdown.changed() => break,
            changed = addresses.changed() => {
                if changed.is_err() { break; }
                announce_at = Instant::now();
            }
            changed = settled.changed(), if settle_by.is_some() => {
                if changed.is_err() { settle_by = None; }
            }
            () = tokio::time::sleep_until(due) => {
                let current = addresses.borrow().clone();
                let Some(ok) = unless_shutdown(&mut shutdown, announce(&dht, &me, &current)).await else { break };
                announce_at = Instant::now() + if ok { ANNOUNCE_INTERVAL } else { RETRY };
            }
            () = tokio::time::sleep_until(lookup_at) => {
                let current = config.borrow().clone();
                let Some(all) = unless_shutdown(&mut shutdown, lookup(&dht, &me, &current, &cache)).await else { break };
                lookup_at = Instant::now() + if all { LOOKUP_INTERVAL } else { RETRY };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_device_and_transport_and_are_stable() {
        let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        assert_ne!(key(&a, Transport::Tcp), key(&a, Transport::Quic));
        assert_ne!(key(&a, Transport::Tcp), key(&b, Transport::Tcp));
        assert_eq!(key(&a, Transport::Tcp), key(&a, Transport::Tcp));
    }

    #[test]
    fn a_mapped_port_is_announced_before_the_listening_one() {
        let parse = |list: &[&str]| list.iter().map(|a| a.parse::<Address>().unwrap()).collect::<Vec<_>>();
        let listening = parse(&["tcp://0.0.0.0:22000", "quic://0.0.0.0:22001"]);
        assert_eq!(announced_ports(&listening), [(Transport::Tcp, 22000), (Transport::Quic, 22001)]);
        let mapped = parse(&["tcp://0.0.0.0:22000", "tcp://203.0.113.7:40000"]);
        assert_eq!(announced_ports(&mapped), [(Transport::Tcp, 40000)]);
    }

    #[test]
    fn peers_become_addresses_of_the_transport() {
        let peers =
            ["127.0.0.1:5000", "127.0.0.1:5000", "0.0.0.0:1", "10.0.0.1:0"].map(|p| p.parse().unwrap());
        let got: Vec<String> =
            to_addresses(Transport::Quic, &peers).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["quic://127.0.0.1:5000"]);
    }
}

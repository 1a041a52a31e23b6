//! Discovery: finding the addresses of devices configured as `dynamic`, and making this device
//! findable, with no server of our own or anyone else's.
//!
//! This module owns the cache of what was found ([`Cache`]: device → addresses, each with where
//! it came from and when it expires) and the long-lived tasks that fill it. `local` is
//! Syncthing's local discovery v4 (UDP 21027, IPv4 broadcast and IPv6 multicast): its packet
//! codec is pure functions on bytes, its task owns the sockets. What is found is only a hint:
//! a dial still checks the certificate, so a forged announcement costs a failed dial at most.
//! The model's dialer reads the cache; front-ends read it to offer unknown devices seen on the
//! LAN as candidates.
//!
//! It also owns what this device announces: the listening addresses, plus what `nat` (a port
//! mapped on the router) and `stun` (the QUIC socket's public address, for hole punching) add.

pub mod dht;
pub mod local;
pub mod nat;
pub mod stun;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::identity::DeviceId;
use crate::net::Address;
use crate::net::relay::RelayUrl;

/// Why discovery could not start or a packet was not understood.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the packet is too short to be an announcement")]
    Short,
    #[error("the packet does not start with the local discovery magic")]
    BadMagic,
    #[error("the announcement is not valid protobuf")]
    Decode(#[source] prost::DecodeError),
    #[error("the announcement carries no valid device ID")]
    BadDeviceId,
    #[error("cannot open the local discovery socket")]
    Socket(#[source] std::io::Error),
}

/// How a device's address became known.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Written in the configuration.
    Configured,
    /// Heard in a local discovery announcement.
    Lan,
    /// Looked up on the DHT.
    Dht,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Configured => "configured",
            Self::Lan => "lan",
            Self::Dht => "dht",
        })
    }
}

/// A device seen by discovery, as front-ends show it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Seen {
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// `tcp://…`/`quic://…` addresses, best first.
    pub addresses: Vec<String>,
    /// `lan` or `dht`.
    pub source: Source,
    /// Seconds since it was last heard of.
    pub age_s: u64,
}

struct Entry {
    addresses: Vec<Address>,
    /// Relays the device said it holds a reservation on (LAN announcements only: DHT peer
    /// records carry an IP and a port, nothing more). At most [`MAX_RELAYS`].
    relays: Vec<RelayUrl>,
    heard: Instant,
    expires: Instant,
}

/// At most this many devices are remembered, so a flood of forged announcements cannot grow
/// memory without bound; the oldest entry makes room.
const MAX_DEVICES: usize = 1024;
/// At most this many relays are kept per announcement.
pub const MAX_RELAYS: usize = 8;

/// What discovery found: per device, the addresses of its latest announcement.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<(DeviceId, Source), Entry>>,
    /// Signalled when a device's addresses changed, so the dialer tries them at once.
    changed: Notify,
}

impl Cache {
    /// Records `device`'s addresses as heard now from `source` (replacing what that source said
    /// before), valid for `ttl`. Returns true if they are new or changed.
    pub fn insert(
        &self,
        device: DeviceId,
        source: Source,
        addresses: Vec<Address>,
        ttl: Duration,
        now: Instant,
    ) -> bool {
        let mut entries = self.lock();
        entries.retain(|_, e| e.expires > now);
        let key = (device, source);
        if entries.len() >= MAX_DEVICES
            && !entries.contains_key(&key)
            && let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.heard).map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        let new = entries.get(&key).is_none_or(|e| e.addresses != addresses);
        entries.insert(key, Entry { addresses, relays: Vec::new(), heard: now, expires: now + ttl });
        drop(entries);
        if new {
            self.changed.notify_waiters();
        }
        new
    }

    /// Records the relays of the announcement just [`Cache::insert`]ed for `device` (bounded
    /// by [`MAX_RELAYS`]); nothing if there is no such entry.
    pub fn set_relays(&self, device: DeviceId, source: Source, mut relays: Vec<RelayUrl>) {
        relays.truncate(MAX_RELAYS);
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&(device, source)) else { return };
        let new = entry.relays != relays;
        entry.relays = relays;
        drop(entries);
        if new {
            self.changed.notify_waiters();
        }
    }

    /// The relays `device` announced that have not expired (LAN first).
    pub fn lookup_relays(&self, device: &DeviceId, now: Instant) -> Vec<RelayUrl> {
        let entries = self.lock();
        let mut out: Vec<RelayUrl> = Vec::new();
        for source in [Source::Lan, Source::Dht] {
            if let Some(e) = entries.get(&(*device, source)).filter(|e| e.expires > now) {
                out.extend(e.relays.iter().filter(|r| !out.contains(r)).cloned().collect::<Vec<_>>());
            }
        }
        out
    }

    /// The addresses of `device` that have not expired, with where they came from (LAN first).
    pub fn lookup(&self, device: &DeviceId, now: Instant) -> Vec<(Address, Source)> {
        let entries = self.lock();
        let mut out = Vec::new();
        for source in [Source::Lan, Source::Dht] {
            if let Some(e) = entries.get(&(*device, source)).filter(|e| e.expires > now) {
                out.extend(e.addresses.iter().map(|a| (a.clone(), source)));
            }
        }
        out
    }

    /// Every device heard of and not expired, once per source.
    pub fn seen(&self, now: Instant) -> Vec<Seen> {
        let mut seen: Vec<Seen> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.expires > now)
            .map(|((device, source), e)| Seen {
                device: *device,
                addresses: e.addresses.iter().map(ToString::to_string).collect(),
                source: *source,
                age_s: now.saturating_duration_since(e.heard).as_secs(),
            })
            .collect();
        seen.sort_by_key(|s| (s.device, s.source));
        seen
    }

    /// Waits until some device's addresses changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(DeviceId, Source), Entry>> {
        // Every update is one insert or remove: a poisoned lock is still sound.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the discovery tasks need to run, and which of them do.
#[derive(Clone, Debug)]
pub struct Settings {
    pub me: DeviceId,
    /// Local discovery, on this UDP port (21027; tests in namespaces use it too).
    pub local: Option<u16>,
    /// The DHT, joined through these `host:port`s (empty: the public bootstrap nodes).
    pub dht: Option<Vec<String>>,
    /// Port mapping on the router (NAT-PMP, else UPnP-IGD).
    pub port_mapping: bool,
    /// The relays this device holds reservations on, announced on the LAN with its addresses.
    pub relays: Vec<RelayUrl>,
    /// STUN servers (`host:port`) to learn the QUIC listener's public address from; empty:
    /// none is asked.
    pub stun: Vec<String>,
}

impl Settings {
    /// The settings `options` ask for.
    pub fn new(me: DeviceId, options: &crate::config::Options) -> Self {
        let on = |switch: bool| options.discovery && switch;
        Self {
            me,
            local: on(options.local_discovery).then_some(local::DEFAULT_PORT),
            dht: on(options.global_discovery).then(|| options.dht_bootstrap.clone()),
            port_mapping: on(options.port_mapping),
            // Validated with the configuration; an unparsable one is not announced.
            relays: options.relays.iter().filter_map(|r| r.parse().ok()).collect(),
            stun: if !options.discovery {
                Vec::new()
            } else if !options.stun.is_empty() {
                options.stun.clone()
            } else if options.global_discovery {
                stun::DEFAULT_SERVERS.iter().map(|s| (*s).to_owned()).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// Replaces `old` (what one source published before) with `new` in the announced addresses,
/// leaving the others' alone; tells the announcers only if something changed.
pub fn republish(announced: &watch::Sender<Vec<Address>>, old: &[Address], new: &[Address]) {
    announced.send_if_modified(|current| {
        let before = current.clone();
        current.retain(|a| !old.contains(a) || new.contains(a));
        for a in new {
            if !current.contains(a) {
                current.push(a.clone());
            }
        }
        *current != before
    });
}

/// Starts the discovery tasks `settings` ask for into `tasks`; they end when `shutdown` turns
/// true. This device announces `listen` plus what port mapping and STUN (through `net`, whose
/// QUIC listener it maps) add; `config` says which devices to look up (those with a `dynamic`
/// address). Returns the announced addresses, which must be kept while the tasks run.
pub fn spawn(
    settings: Settings,
    net: Option<std::sync::Arc<crate::net::Net>>,
    cache: std::sync::Arc<Cache>,
    listen: Vec<Address>,
    config: watch::Receiver<std::sync::Arc<crate::config::Config>>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> std::sync::Arc<watch::Sender<Vec<Address>>> {
    let (announced, addresses) = watch::channel(listen.clone());
    let announced = std::sync::Arc::new(announced);
    if settings.port_mapping {
        tasks.spawn(nat::run(listen, nat::Router::Auto, std::sync::Arc::clone(&announced), shutdown.clone()));
    }
    // Set once STUN's first round is over, so that the first DHT announcement carries the
    // mapped port: a device that looks us up meanwhile would keep the listening port for
    // minutes.
    let (settled_tx, settled) = watch::channel(true);
    if let Some(net) = net.filter(|_| !settings.stun.is_empty()) {
        settled_tx.send_replace(false);
        let announced = std::sync::Arc::clone(&announced);
        tasks.spawn(stun::run(net, settings.stun.clone(), announced, settled_tx, shutdown.clone()));
    }
    if let Some(port) = settings.local {
        tasks.spawn(local::run(
            settings.me,
            port,
            settings.relays.clone(),
            std::sync::Arc::clone(&cache),
            addresses.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(bootstrap) = settings.dht {
        tasks.spawn(dht::run(settings.me, bootstrap, cache, addresses, settled, config, shutdown));
    }
    announced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    #[test]
    fn entries_expire_and_changes_are_reported() {
        let cache = Cache::default();
        let now = Instant::now();
        let a: Address = "tcp://192.0.2.1:22000".parse().unwrap();
        assert!(cache.insert(id(1), Source::Lan, vec![a.clone()], Duration::from_secs(90), now));
        assert!(!cache.insert(id(1), Source::Lan, vec![a.clone()], Duration::from_secs(90), now));
        assert_eq!(cache.lookup(&id(1), now + Duration::from_secs(89)), vec![(a, Source::Lan)]);
        assert!(cache.lookup(&id(1), now + Duration::from_secs(90)).is_empty());
        assert!(cache.seen(now + Duration::from_secs(91)).is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = Cache::default();
        let now = Instant::now();
        for i in 0..(MAX_DEVICES + 10) {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let device = DeviceId::from_bytes(bytes);
            cache.insert(
                device,
                Source::Lan,
                vec![],
                Duration::from_secs(90),
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(cache.seen(now).len(), MAX_DEVICES);
    }
}

//! The model: this device's side of every BEP connection. It decides who may connect, what
//! each peer is told (ClusterConfig, our indexes), what it may ask for (Requests), and records
//! what peers announce (their indexes, pending devices and folder offers) in the index.
//!
//! It owns the registry of live connections ([`Peers`]), through which the puller asks peers for
//! blocks, and the service task that accepts and dials connections (through [`crate::net`]).
//! One task per connection (`connection.rs`) drives a sans-IO [`crate::bep::session::Session`]
//! over the connection's byte stream. It also keeps the download progress of both sides
//! (`progress.rs`): what this device's puller has in temporary files, which connections announce
//! with DownloadProgress, and what peers announced, which the puller may fetch `from_temporary`.

mod auto_accept;
mod connection;
mod introduce;
mod progress;

pub use progress::{DownloadGuard, MIN_BLOCKS, PROGRESS_INTERVAL, PeerDownload};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::bep::BlockHash;
use crate::bep::wire::ErrorCode;
use crate::config::{Config, FolderId};
use crate::db::Index;
use crate::discovery::{Cache, Source};
use crate::identity::DeviceId;
use crate::net::relay::RelayUrl;
use crate::net::{Address, DeviceAddress, Net, Transport};

/// How often devices that are not connected are dialled.
const DIAL_INTERVAL: Duration = Duration::from_secs(10);

/// Why a block could not be fetched from a peer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("device {0} is not connected")]
    NotConnected(DeviceId),
    #[error("the connection closed before the answer came")]
    Closed,
    #[error("the device answered {0:?}")]
    Peer(ErrorCode),
}

/// A block to ask a peer for.
#[derive(Clone, Debug)]
pub struct BlockRequest {
    pub folder: FolderId,
    pub name: String,
    pub offset: u64,
    pub size: u32,
    pub hash: BlockHash,
    pub block_no: u32,
    /// Read from the peer's temporary file first: the peer is downloading the file itself and
    /// announced that it has this block.
    pub from_temporary: bool,
}

/// A live connection, as status shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionInfo {
    pub device: DeviceId,
    /// The name the peer gave in its Hello.
    pub name: String,
    pub client: String,
    pub address: SocketAddr,
    pub transport: Transport,
    pub outgoing: bool,
    /// How the address we dialled was found; `None` when the peer dialled us.
    pub found: Option<Source>,
    /// Unix seconds.
    pub since: u64,
    /// Bytes read from and written to the connection so far (after TLS, before BEP framing).
    #[serde(skip)]
    pub counters: Arc<Counters>,
}

/// Byte counters of one connection.
#[derive(Debug, Default)]
pub struct Counters {
    pub read: std::sync::atomic::AtomicU64,
    pub written: std::sync::atomic::AtomicU64,
}

/// Where the answer to one of our block requests goes.
type Reply = oneshot::Sender<Result<bytes::Bytes, RequestError>>;

enum Command {
    Request(BlockRequest, Reply),
    /// The configuration changed: send a new ClusterConfig, or close if the device was removed.
    Reconfigure,
}

struct Live {
    serial: u64,
    commands: mpsc::Sender<Command>,
    info: ConnectionInfo,
}

/// The registry of live connections, one per device.
#[derive(Default)]
pub struct Peers {
    live: Mutex<HashMap<DeviceId, Live>>,
    next_serial: std::sync::atomic::AtomicU64,
    /// Bytes read and written by connections that have ended, so totals never go down.
    closed: Counters,
    /// This device's downloads in progress, for DownloadProgress.
    downloads: progress::LocalDownloads,
    /// What connected peers announced of their downloads; dropped when they disconnect.
    remote_progress: Mutex<HashMap<DeviceId, progress::RemoteDownloads>>,
    /// Woken by every new registration, for [`Peers::connected_within`].
    registered: Notify,
}

impl Peers {
    /// Every live connection.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.lock().values().map(|l| l.info.clone()).collect()
    }

    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    /// Whether `device` is connected, or gets connected within `limit`: a request whose
    /// connection closed under it waits this long for the connection that replaced it.
    pub async fn connected_within(&self, device: &DeviceId, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let registered = self.registered.notified();
            tokio::pin!(registered);
            // Listening before looking, so a registration in between is not missed.
            registered.as_mut().enable();
            if self.is_connected(device) {
                return true;
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return false;
            }
        }
    }

    /// The [`priority`] of the live connection to `device`, if there is one.
    fn connected_rank(&self, device: &DeviceId) -> Option<u8> {
        self.lock().get(device).map(|l| rank(&l.info))
    }

    /// Total bytes (read, written) over all connections since start.
    pub fn total_bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let live = self.lock();
        let read = live.values().map(|l| l.info.counters.read.load(Relaxed)).sum::<u64>();
        let written = live.values().map(|l| l.info.counters.written.load(Relaxed)).sum::<u64>();
        (read + self.closed.read.load(Relaxed), written + self.closed.written.load(Relaxed))
    }

    /// Asks `device` for a block and waits for the answer. The data is not checked here; it is
    /// a view of the connection's receive buffer, so it is best not held longer than needed.
    pub async fn request(
        &self,
        device: &DeviceId,
        request: BlockRequest,
    ) -> Result<bytes::Bytes, RequestError> {
        let commands = self.lock().get(device).map(|l| l.commands.clone());
        let commands = commands.ok_or(RequestError::NotConnected(*device))?;
        let (reply, answer) = oneshot::channel();
        commands.send(Command::Request(request, reply)).await.map_err(|_| RequestError::Closed)?;
        answer.await.map_err(|_| RequestError::Closed)?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Live>> {
        // A panic while holding this lock cannot leave the map half-updated (every update is
        // one insert or remove), so a poisoned lock is still usable.
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection. A connection of a better [`priority`] replaces one of a
    /// worse; with two equal connections to one device in opposite directions (both sides
    /// dialled at once), both ends keep the one dialled by the device with the smaller ID, so
    /// they agree without talking. Returns the serial to unregister with, or `None` if this connection
    /// must close; a replaced connection is told to close.
    fn register(&self, me: &DeviceId, info: ConnectionInfo, commands: mpsc::Sender<Command>) -> Option<u64> {
        let serial = self.next_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut live = self.lock();
        if let Some(old) = live.get(&info.device) {
            // A better connection replaces a worse one and a worse one is refused; both ends
            // rank a connection alike (same transport, same pair of addresses).
            let (old_rank, new_rank) = (rank(&old.info), rank(&info));
            if new_rank > old_rank {
                return None;
            }
            // In the same direction the newer connection wins: the peer restarted, and the old
            // one is dead but not yet noticed (QUIC notices only after its idle timeout).
            let preferred_outgoing = me < &info.device;
            if new_rank == old_rank
                && info.outgoing != old.info.outgoing
                && info.outgoing != preferred_outgoing
            {
                return None;
            }
        }
        let device = info.device;
        if let Some(old) = live.insert(device, Live { serial, commands, info }) {
            // Dropping its command sender is not enough (requests hold clones); the old task
            // notices the new registration when it unregisters, and closes on Reconfigure.
            let _ = old.commands.try_send(Command::Reconfigure);
        }
        drop(live);
        self.registered.notify_waiters();
        Some(serial)
    }

    fn unregister(&self, device: &DeviceId, serial: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut live = self.lock();
        if live.get(device).is_some_and(|l| l.serial == serial)
            && let Some(l) = live.remove(device)
        {
            self.closed.read.fetch_add(l.info.counters.read.load(Relaxed), Relaxed);
            self.closed.written.fetch_add(l.info.counters.written.load(Relaxed), Relaxed);
            // One lock at a time: `temp_holders` takes them in the other order.
            drop(live);
            // Its temporary files are out of reach now, and may be gone when it is back.
            self.remote_downloads().remove(device);
        }
    }

    fn serial_of(&self, device: &DeviceId) -> Option<u64> {
        self.lock().get(device).map(|l| l.serial)
    }

    fn reconfigure_all(&self) {
        for l in self.lock().values() {
            let _ = l.commands.try_send(Command::Reconfigure);
        }
    }
}

/// What connection tasks share with the rest of the engine.
pub struct Context {
    pub me: DeviceId,
    pub config: watch::Receiver<Arc<Config>>,
    pub index: Index,
    pub peers: Arc<Peers>,
    /// Signalled (per folder) when a peer's index changed, so the folder pulls.
    pub remote_changed: Arc<FolderSignals>,
    /// Bumped whenever any folder's local index changed, so connections send updates.
    pub local_changed: watch::Receiver<u64>,
    /// The engine's events: who connects, asks to connect or offers a folder.
    pub events: tokio::sync::broadcast::Sender<crate::events::Event>,
    /// What discovery found: where devices configured as `dynamic` are.
    pub discovered: Arc<Cache>,
    /// Backoff of devices that could not be reached.
    pub redial: Redial,
    /// Configuration edits a peer's ClusterConfig calls for (a folder an auto-accept device
    /// offers), for the engine to make. Bounded: a full queue drops the edit, and the next
    /// ClusterConfig asks again.
    pub peer_edits: mpsc::Sender<Vec<crate::config::Edit>>,
    /// The buckets every connection's bytes pass.
    pub bandwidth: Arc<crate::bandwidth::Bandwidth>,
}

impl Context {
    fn notify_remote_changed(&self, folder: &FolderId) {
        self.remote_changed.notify(folder);
    }

    /// Tells subscribers; nobody listening is not an error.
    fn emit(&self, event: crate::events::Event) {
        let _ = self.events.send(event);
    }
}

/// One signal per running folder, registered when its task starts and dropped when it stops.
#[derive(Default)]
pub struct FolderSignals(std::sync::Mutex<HashMap<FolderId, Arc<Notify>>>);

impl FolderSignals {
    /// The signal of `folder`, created for a folder task starting.
    pub fn register(&self, folder: &FolderId) -> Arc<Notify> {
        Arc::clone(self.lock().entry(folder.clone()).or_default())
    }

    pub fn unregister(&self, folder: &FolderId) {
        self.lock().remove(folder);
    }

    fn notify(&self, folder: &FolderId) {
        if let Some(n) = self.lock().get(folder) {
            n.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FolderId, Arc<Notify>>> {
        // Updates are single inserts and removes: a poisoned lock is still sound.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Accepts connections and dials configured devices until `shutdown` turns true.
pub async fn serve(ctx: Arc<Context>, net: Arc<Net>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut config = ctx.config.clone();
    let mut dial_tick = tokio::time::interval(DIAL_INTERVAL);
    dial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = net.accept() => match accepted {
                Some(conn) => { tasks.spawn(connection::run(Arc::clone(&ctx), conn, None, shutdown.clone())); }
                None => break,
            },
            _ = dial_tick.tick() => dial_all(&ctx, &net, &mut tasks, &shutdown),
            // A device found (or moved) is dialled at once, not at the next tick.
            () = ctx.discovered.changed() => {
                ctx.redial.reset();
                dial_all(&ctx, &net, &mut tasks, &shutdown);
            }
            changed = config.changed() => {
                if changed.is_err() { break; }
                ctx.peers.reconfigure_all();
                ctx.redial.reset();
                dial_all(&ctx, &net, &mut tasks, &shutdown);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    net.shutdown().await;
    // Connection tasks see the same shutdown signal, send Close and end.
    while tasks.join_next().await.is_some() {}
}

/// Syncthing's ranking of connections, lower is better: TCP 10, QUIC 100, one less on a local
/// network.
pub fn priority(transport: Transport, remote: std::net::IpAddr) -> u8 {
    let base = match transport {
        Transport::Tcp => 10,
        Transport::Quic => 100,
        // Syncthing's relay priority: any direct connection is preferred.
        Transport::Relay => 200,
    };
    if is_local_ip(remote) { base - 1 } else { base }
}

fn rank(info: &ConnectionInfo) -> u8 {
    priority(info.transport, info.address.ip())
}

/// How long after failing to reach a device it is dialled again: doubling from the dial
/// interval up to five minutes, reset by a connection or by discovery finding new addresses.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// When each device that could not be reached may be dialled again, and which are being
/// dialled now.
#[derive(Default)]
pub struct Redial(Mutex<HashMap<DeviceId, Backoff>>);

#[derive(Clone, Copy)]
struct Backoff {
    next: std::time::Instant,
    delay: Duration,
    in_flight: bool,
}

impl Redial {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Backoff>> {
        // Single inserts and removes: a poisoned lock is still sound.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims a dial of `device` if one is due and none is running.
    fn start(&self, device: DeviceId, now: std::time::Instant) -> bool {
        let mut map = self.lock();
        match map.get_mut(&device) {
            Some(b) if b.in_flight || b.next > now => false,
            Some(b) => {
                b.in_flight = true;
                true
            }
            None => {
                map.insert(device, Backoff { next: now, delay: DIAL_INTERVAL, in_flight: true });
                true
            }
        }
    }

    /// A dial ended; `reached` resets the backoff, else the wait doubles.
    fn finish(&self, device: DeviceId, reached: bool, now: std::time::Instant) {
        let mut map = self.lock();
        if reached {
            map.remove(&device);
        } else if let Some(b) = map.get_mut(&device) {
            *b = Backoff { next: now + b.delay, delay: (b.delay * 2).min(MAX_BACKOFF), in_flight: false };
        }
    }

    /// New addresses are worth trying at once.
    fn reset(&self) {
        self.lock().retain(|_, b| b.in_flight);
    }
}

/// Dials every configured, unpaused device that is not connected, or connected worse than an
/// address it has, each in a task of its own (a slow address must not delay the others), with
/// backoff for devices that cannot be reached.
fn dial_all(
    ctx: &Arc<Context>,
    net: &Arc<Net>,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
) {
    let config = ctx.config.borrow().clone();
    let now = std::time::Instant::now();
    for device in config.devices.iter().filter(|d| !d.paused && d.id != ctx.me) {
        let mut addresses = dial_order(&device.addresses, || ctx.discovered.lookup(&device.id, now));
        let mut relays: Vec<RelayUrl> = device
            .addresses
            .iter()
            .filter_map(|a| match a.parse() {
                Ok(DeviceAddress::Relay(url)) => Some(url),
                _ => None,
            })
            .collect();
        if device.addresses.iter().any(|a| a == DeviceAddress::DYNAMIC) {
            for url in ctx.discovered.lookup_relays(&device.id, now) {
                if !relays.contains(&url) {
                    relays.push(url);
                }
            }
        }
        if let Some(current) = ctx.peers.connected_rank(&device.id) {
            // Connected: only an address that would make a better connection is worth a dial.
            // So while relayed, the direct addresses are retried (with the backoff below), and
            // a direct connection that succeeds replaces the relayed one.
            addresses.retain(|(a, _)| a.ip().is_some_and(|ip| priority(a.transport, ip) < current));
            relays.clear();
        }
        if (addresses.is_empty() && relays.is_empty()) || !ctx.redial.start(device.id, now) {
            continue;
        }
        let (ctx, net, id, shutdown) = (Arc::clone(ctx), Arc::clone(net), device.id, shutdown.clone());
        tasks.spawn(async move {
            let mut direct: Vec<Attempt<_>> = Vec::new();
            for (addr, found) in addresses {
                let net = Arc::clone(&net);
                direct.push(Box::pin(async move {
                    let conn = net.dial(&addr, id).await;
                    let conn = conn.inspect_err(|e| tracing::debug!(device = %id, address = %addr, error = %e, "dial failed"));
                    conn.ok().map(|conn| (conn, found))
                }));
            }
            let mut relayed: Vec<Attempt<_>> = Vec::new();
            for url in relays {
                let net = Arc::clone(&net);
                relayed.push(Box::pin(async move {
                    let conn = net.dial_relay(&url, id).await;
                    let conn = conn.inspect_err(|e| tracing::debug!(device = %id, relay = %url, error = %e, "dial through relay failed"));
                    conn.ok().map(|conn| (conn, Source::Configured))
                }));
            }
            let reached = race(direct, relayed).await;
            ctx.redial.finish(id, reached.is_some(), std::time::Instant::now());
            if let Some((conn, found)) = reached {
                connection::run(ctx, conn, Some(found), shutdown).await;
            }
        });
    }
}

/// How long a dial runs alone before the next address is tried beside it (Happy Eyeballs,
/// RFC 8305): a NAT that drops packets silently makes a dial wait its whole timeout (10 s),
/// and each such address used to hold up the next, the relay last.
const DIAL_STAGGER: Duration = Duration::from_millis(500);
/// How long the direct dials have to themselves before the relays join them: a relayed
/// connection is the slowest path, taken only when no direct one comes up soon.
const RELAY_GRACE: Duration = Duration::from_secs(2);

/// One dial: a connection, or `None` when it failed (it logs why).
type Attempt<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<T>> + Send>>;

/// Races dial attempts in preference order: the first starts at once, each next one
/// [`DIAL_STAGGER`] after the one before it, the first relay [`RELAY_GRACE`] after the last
/// direct one, and any of them at once when every attempt started so far has failed. The
/// first connection wins and the attempts still running are dropped; a better address that
/// lost the race is tried again by the next round while connected (see [`dial_all`]).
async fn race<T: Send + 'static>(direct: Vec<Attempt<T>>, relayed: Vec<Attempt<T>>) -> Option<T> {
    use futures_util::StreamExt as _;
    use futures_util::stream::FuturesUnordered;

    let direct_count = direct.len();
    let mut waiting: std::collections::VecDeque<Attempt<T>> = direct.into_iter().chain(relayed).collect();
    let mut running: FuturesUnordered<Attempt<T>> = FuturesUnordered::new();
    let (mut started, mut last_start) = (0, tokio::time::Instant::now());
    loop {
        let due = if waiting.is_empty() {
            if running.is_empty() {
                return None;
            }
            None
        } else if running.is_empty() {
            Some(tokio::time::Instant::now())
        } else if started == direct_count {
            Some(last_start + RELAY_GRACE)
        } else {
            Some(last_start + DIAL_STAGGER)
        };
        let next_start = tokio::time::sleep_until(due.unwrap_or(last_start));
        tokio::select! {
            biased;
            Some(result) = running.next(), if !running.is_empty() => {
                if result.is_some() {
                    return result;
                }
            }
            () = next_start, if due.is_some() => {
                if let Some(attempt) = waiting.pop_front() {
                    running.push(attempt);
                    (started, last_start) = (started + 1, tokio::time::Instant::now());
                }
            }
        }
    }
}

/// The addresses to dial a device at, in order: the configured ones as written, then — for
/// `dynamic` — what discovery found, addresses on the local network before others (a LAN
/// path is faster and stays inside the network), and TCP before QUIC at equal footing, as
/// Syncthing ranks them.
fn dial_order(
    configured: &[String],
    discovered: impl FnOnce() -> Vec<(Address, Source)>,
) -> Vec<(Address, Source)> {
    let parsed: Vec<DeviceAddress> = configured.iter().filter_map(|a| a.parse().ok()).collect();
    let mut out: Vec<(Address, Source)> = parsed
        .iter()
        .filter_map(|a| match a {
            DeviceAddress::Dial(a) => Some((a.clone(), Source::Configured)),
            DeviceAddress::Dynamic | DeviceAddress::Relay(_) => None,
        })
        .collect();
    if parsed.contains(&DeviceAddress::Dynamic) {
        let mut found = discovered();
        found.sort_by_key(|(a, source)| (*source, !is_local_network(a), a.transport != Transport::Tcp));
        for f in found {
            if !out.iter().any(|(a, _)| *a == f.0) {
                out.push(f);
            }
        }
    }
    out
}

/// Whether an address is on a local network: private, link-local, unique-local or loopback.
fn is_local_network(addr: &Address) -> bool {
    addr.host.parse().is_ok_and(is_local_ip)
}

fn is_local_ip(ip: std::net::IpAddr) -> bool {
    crate::net::limit::is_lan(ip)
}

#[cfg(test)]
mod dial_tests {
    use super::*;

    #[test]
    fn tcp_beats_quic_and_a_lan_beats_the_internet() {
        let (lan, wan) = ("10.0.0.2".parse().unwrap(), "203.0.113.5".parse().unwrap());
        let ranks = [
            priority(Transport::Tcp, lan),
            priority(Transport::Tcp, wan),
            priority(Transport::Quic, lan),
            priority(Transport::Quic, wan),
        ];
        assert!(ranks.is_sorted() && ranks[0] < ranks[1] && ranks[2] < ranks[3], "{ranks:?}");
    }

    /// An attempt that answers `result` after `after`, noting when it started.
    fn attempt(
        started: &Arc<Mutex<Vec<(&'static str, Duration)>>>,
        t0: tokio::time::Instant,
        name: &'static str,
        after: Option<Duration>,
        result: bool,
    ) -> Attempt<&'static str> {
        let started = Arc::clone(started);
        Box::pin(async move {
            started.lock().unwrap().push((name, t0.elapsed()));
            match after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
            result.then_some(name)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_address_does_not_hold_up_the_next_one() {
        let (started, t0) = (Arc::default(), tokio::time::Instant::now());
        let silent = attempt(&started, t0, "silent", None, true);
        let good = attempt(&started, t0, "good", Some(Duration::from_millis(100)), true);
        let relay = attempt(&started, t0, "relay", Some(Duration::ZERO), true);
        assert_eq!(race(vec![silent, good], vec![relay]).await, Some("good"));
        assert_eq!(t0.elapsed(), DIAL_STAGGER + Duration::from_millis(100));
        assert_eq!(*started.lock().unwrap(), [("silent", Duration::ZERO), ("good", DIAL_STAGGER)]);
    }

    #[tokio::test(start_paused = true)]
    async fn relays_join_after_a_grace_or_once_every_direct_dial_failed() {
        let (started, t0) = (Arc::default(), tokio::time::Instant::now());
        let silent = attempt(&started, t0, "silent", None, true);
        let relay = attempt(&started, t0, "relay", Some(Duration::from_millis(300)), true);
        assert_eq!(race(vec![silent], vec![relay]).await, Some("relay"));
        assert_eq!(*started.lock().unwrap(), [("silent", Duration::ZERO), ("relay", RELAY_GRACE)]);

        let (started, t0) = (Arc::default(), tokio::time::Instant::now());
        let refused = attempt(&started, t0, "refused", Some(Duration::from_millis(50)), false);
        let relay_down = attempt(&started, t0, "relay-down", Some(Duration::from_millis(10)), false);
        let relay = attempt(&started, t0, "relay", Some(Duration::from_millis(10)), true);
        assert_eq!(race(vec![refused], vec![relay_down, relay]).await, Some("relay"));
        let ms = Duration::from_millis;
        assert_eq!(*started.lock().unwrap(), [("refused", ms(0)), ("relay-down", ms(50)), ("relay", ms(60))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_race_of_failures_ends_when_the_last_fails() {
        let (started, t0) = (Arc::default(), tokio::time::Instant::now());
        let a = attempt(&started, t0, "a", Some(Duration::from_secs(10)), false);
        let b = attempt(&started, t0, "b", Some(Duration::from_secs(1)), false);
        assert_eq!(race(vec![a, b], Vec::new()).await, None);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
        assert_eq!(race::<()>(Vec::new(), Vec::new()).await, None);
    }

    #[test]
    fn failed_dials_back_off_until_reset() {
        let redial = Redial::default();
        let (id, t0) = (DeviceId::from_bytes([3; 32]), std::time::Instant::now());
        assert!(redial.start(id, t0));
        assert!(!redial.start(id, t0), "one dial at a time");
        redial.finish(id, false, t0);
        assert!(!redial.start(id, t0 + DIAL_INTERVAL / 2));
        assert!(redial.start(id, t0 + DIAL_INTERVAL));
        redial.finish(id, false, t0 + DIAL_INTERVAL);
        assert!(!redial.start(id, t0 + DIAL_INTERVAL * 2), "the wait doubled");
        assert!(redial.start(id, t0 + DIAL_INTERVAL * 3));
        redial.finish(id, false, t0 + DIAL_INTERVAL * 3);
        redial.reset();
        assert!(redial.start(id, t0 + DIAL_INTERVAL * 3), "new addresses are tried at once");
        redial.finish(id, true, t0);
        assert!(redial.start(id, t0));
    }

    #[test]
    fn configured_first_then_lan_before_wan_and_tcp_before_quic() {
        let found = || {
            [
                "quic://203.0.113.5:22000",
                "tcp://203.0.113.5:22000",
                "quic://10.0.0.2:22000",
                "tcp://10.0.0.2:22000",
            ]
            .map(|a| (a.parse::<Address>().unwrap(), Source::Lan))
            .to_vec()
        };
        let order: Vec<String> = dial_order(&["tcp://192.0.2.1:1".into(), "dynamic".into()], found)
            .iter()
            .map(|(a, _)| a.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "tcp://192.0.2.1:1",
                "tcp://10.0.0.2:22000",
                "quic://10.0.0.2:22000",
                "tcp://203.0.113.5:22000",
                "quic://203.0.113.5:22000"
            ]
        );
        // Without `dynamic`, discovery is not asked.
        assert_eq!(dial_order(&["tcp://192.0.2.1:1".into()], || unreachable!()).len(), 1);
    }
}

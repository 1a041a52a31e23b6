//! The task driving one connection: socket bytes into the [`Session`], its events into the
//! index and the registry, commands (block requests) into the session, its bytes out.
//!
//! Block data is not copied between the socket and the session: the socket is read straight
//! into the session's receive buffer (a Response's data comes out as a view of it), and a
//! served block goes to the writer as the chunk it was read into, written with the bytes
//! around it in one vectored write.
//!
//! Writing happens in a task of its own, fed without blocking, so that reading never waits for
//! the peer to read (two peers writing to each other with full buffers would otherwise stall
//! forever). What may pile up is bounded at the sources: served requests run a few at a time,
//! index batches go out only while little is queued, and the puller's requests are bounded
//! by its window.
//!
//! Every [`PROGRESS_INTERVAL`] it tells the peer what changed in this device's downloads of
//! folders shared with it (DownloadProgress: APPEND for new blocks, FORGET for downloads that
//! ended), unless the peer's ClusterConfig asked not to be told for that folder.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{
    BlockRequest, Command, ConnectionInfo, Context, Counters, PROGRESS_INTERVAL, Reply, RequestError,
};
use crate::beneath::{Beneath, Open};
use crate::bep::session::{Event, Session, SessionConfig};
use crate::bep::wire::{self, ErrorCode};
use crate::bep::{FileInfo, MAX_BLOCK_SIZE, Vector};
use crate::clock::{sleep_until, unix_now};
use crate::config::{Config, FolderConfig, FolderId, FolderType};
use crate::db::{DeviceIdx, FolderIdx, PendingDevice, PendingFolder};
use crate::identity::DeviceId;
use crate::net::Connection;

/// Index entries per Index/IndexUpdate message (Syncthing sends at most 1000).
const INDEX_BATCH: u32 = 1000;
/// Queued outgoing bytes above which no new index batch or served block is started.
const MAX_QUEUED: usize = 8 << 20;
/// Peer requests served at once.
const MAX_SERVING: usize = 32;
/// How long an unknown device gets to send its Hello (for the pending entry's name).
const UNKNOWN_HELLO_WAIT: Duration = Duration::from_secs(2);
/// The longest name (in characters) kept for a pending device.
const MAX_PENDING_NAME: usize = 64;
/// The room made in the receive buffer before each read.
const READ_BUF: usize = 256 << 10;
/// Chunks gathered into one vectored write at most (Linux takes up to 1024).
const MAX_WRITE_CHUNKS: usize = 64;

/// Our index for one folder, as sent to this peer.
struct Outgoing {
    folder: FolderIdx,
    /// Highest sequence sent (or that the peer already had).
    sent: i64,
    /// The first batch is an Index (the peer replaces what it held of ours).
    replace_next: bool,
    receive_only: bool,
}

pub(super) async fn run(
    ctx: Arc<Context>,
    conn: Connection,
    found: Option<crate::discovery::Source>,
    mut shutdown: watch::Receiver<bool>,
) {
    let device = conn.device;
    let config = ctx.config.borrow().clone();
    let known = config.devices.iter().any(|d| d.id == device && !d.paused);
    let counters = Arc::new(Counters::default());
    let (remote, transport, outgoing) = (conn.remote, conn.transport, conn.outgoing);
    let stream = ctx.bandwidth.stream(device, remote, transport, conn.stream);
    let (mut reader, writer) = tokio::io::split(stream);
    let queued = Arc::new(AtomicUsize::new(0));
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
    let write_task = tokio::spawn(write_loop(writer, out_rx, Arc::clone(&queued), Arc::clone(&counters)));

    let mut session = Session::new(SessionConfig::new(hello(&config)), Instant::now());
    let mut conn_state = ConnState {
        ctx: Arc::clone(&ctx),
        device,
        device_idx: None,
        out: out_tx,
        queued,
        counters: Arc::clone(&counters),
        outgoing: HashMap::new(),
        requests: HashMap::new(),
        serving: JoinSet::new(),
        waiting: VecDeque::new(),
        parked: Vec::new(),
        shared_with_peer: Vec::new(),
        last_cluster_config: None,
        progress_folders: HashSet::new(),
        progress_sent: HashMap::new(),
        serial: None,
        index_dirty: true,
    };
    conn_state.flush(&mut session);

    if !known {
        conn_state.refuse_unknown(&mut session, &mut reader, remote, transport, &config).await;
    } else {
        let info = ConnectionInfo {
            device,
            name: String::new(),
            client: String::new(),
            address: remote,
            transport,
            outgoing,
            found,
            since: unix_now(),
            counters: Arc::clone(&counters),
        };
        let (commands_tx, commands) = mpsc::channel(64);
        match ctx.peers.register(&ctx.me, info, commands_tx) {
            None => {
                session.close("already connected");
                conn_state.flush(&mut session);
            }
            Some(serial) => {
                conn_state.serial = Some(serial);
                tracing::info!(device = %device, address = %remote, %transport, "connected");
                ctx.emit(crate::events::Event::DeviceConnected { device, address: remote, transport });
                let reason = conn_state.main_loop(&mut session, &mut reader, commands, &mut shutdown).await;
                tracing::info!(device = %device, %reason, "disconnected");
                ctx.peers.unregister(&device, serial);
                ctx.emit(crate::events::Event::DeviceDisconnected { device, reason });
            }
        }
    }
    // Dropping the sender ends the writer after it wrote everything queued (the Close).
    drop(conn_state);
    let _ = tokio::time::timeout(Duration::from_secs(10), write_task).await;
}

fn hello(config: &Config) -> wire::Hello {
    wire::Hello {
        device_name: config.name.clone(),
        client_name: String::from("peerfold"),
        client_version: format!("v{}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

async fn write_loop(
    mut writer: tokio::io::WriteHalf<crate::net::BoxStream>,
    mut rx: mpsc::UnboundedReceiver<Vec<Bytes>>,
    queued: Arc<AtomicUsize>,
    counters: Arc<Counters>,
) {
    let mut chunks = VecDeque::new();
    while let Some(more) = rx.recv().await {
        chunks.extend(more);
        // What else is queued goes in the same writes: a Response's head with its data and the
        // small messages around it end up in the same TLS records.
        while chunks.len() < MAX_WRITE_CHUNKS
            && let Ok(more) = rx.try_recv()
        {
            chunks.extend(more);
        }
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let result = write_chunks(&mut writer, &mut chunks).await;
        queued.fetch_sub(len, Relaxed);
        if result.is_err() {
            return;
        }
        counters.written.fetch_add(len as u64, Relaxed);
        if rx.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes all of `chunks`, as many at once as the writer takes.
async fn write_chunks(
    writer: &mut tokio::io::WriteHalf<crate::net::BoxStream>,
    chunks: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !chunks.is_empty() {
        let slices: Vec<std::io::IoSlice<'_>> =
            chunks.iter().take(MAX_WRITE_CHUNKS).map(|c| std::io::IoSlice::new(c)).collect();
        let mut n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while let Some(front) = chunks.front_mut() {
            if n < front.len() {
                front.advance(n);
                break;
            }
            n -= front.len();
            chunks.pop_front();
        }
    }
    Ok(())
}

struct ConnState {
    ctx: Arc<Context>,
    device: DeviceId,
    device_idx: Option<DeviceIdx>,
    out: mpsc::UnboundedSender<Vec<Bytes>>,
    queued: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    outgoing: HashMap<FolderId, Outgoing>,
    requests: HashMap<i32, Reply>,
    serving: JoinSet<(i32, Result<Vec<u8>, ErrorCode>)>,
    waiting: VecDeque<wire::Request>,
    /// Our requests that came before our ClusterConfig was sent (see `main_loop`).
    parked: Vec<(BlockRequest, Reply)>,
    /// Folders both sides share, as of the peer's last ClusterConfig.
    shared_with_peer: Vec<FolderId>,
    /// The peer's last ClusterConfig, read again against our configuration when ours changes
    /// (a folder shared with the peer here that it already offered starts syncing at once).
    last_cluster_config: Option<wire::ClusterConfig>,
    /// Of those, the folders the peer wants DownloadProgress for (it did not set
    /// `disable_temp_indexes`).
    progress_folders: HashSet<FolderId>,
    /// Downloads this peer was told about: (download serial, version, blocks sent).
    progress_sent: HashMap<(FolderId, String), (u64, Vector, usize)>,
    serial: Option<u64>,
    /// Set when our index may have entries this peer has not been sent (a local change, a
    /// new ClusterConfig); cleared once a check finds none.
    index_dirty: bool,
}

impl ConnState {
    fn flush(&mut self, session: &mut Session) {
        let chunks = session.take_transmit_chunks();
        if !chunks.is_empty() {
            self.queued.fetch_add(chunks.iter().map(Bytes::len).sum(), Relaxed);
            let _ = self.out.send(chunks);
        }
    }

    /// An unconfigured device: it gets our Hello, then we note its name and address as pending
    /// and hang up, as Syncthing does.
    async fn refuse_unknown(
        &mut self,
        session: &mut Session,
        reader: &mut tokio::io::ReadHalf<crate::net::BoxStream>,
        remote: std::net::SocketAddr,
        transport: crate::net::Transport,
        config: &Config,
    ) {
        let mut name = String::new();
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UNKNOWN_HELLO_WAIT;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            session.receive(&buf[..n], Instant::now());
            if let Some(Event::Hello(h)) = session.poll_event() {
                // A stranger's name is shown to the user and stored: up to 32 KiB would do.
                name = h.device_name.chars().take(MAX_PENDING_NAME).collect();
                break;
            }
        }
        let paused = config.devices.iter().any(|d| d.id == self.device);
        if paused {
            tracing::info!(device = %self.device, "refused a paused device");
        } else {
            tracing::info!(device = %self.device, address = %remote, "refused an unknown device; it is pending");
            let pending = PendingDevice {
                device: self.device,
                name,
                address: format!("{transport}://{remote}"),
                seen_at: unix_now() as i64,
            };
            match self.ctx.index.add_pending_device(&pending).await {
                Ok(()) => self.ctx.emit(crate::events::Event::DevicePending {
                    device: pending.device,
                    name: pending.name,
                    address: pending.address,
                }),
                Err(e) => {
                    tracing::warn!(error = %crate::errors::error_chain(&e), "cannot record a pending device")
                }
            }
        }
    }

    async fn main_loop(
        &mut self,
        session: &mut Session,
        reader: &mut tokio::io::ReadHalf<crate::net::BoxStream>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> String {
        let mut local_changed = self.ctx.local_changed.clone();
        let mut cc_sent = false;
        let mut progress_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
        progress_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Events first: they may queue answers.
            while let Some(event) = session.poll_event() {
                if let Some(reason) = self.handle_event(session, event, &mut cc_sent).await {
                    self.flush(session);
                    return reason;
                }
            }
            if cc_sent {
                for (req, reply) in std::mem::take(&mut self.parked) {
                    self.request(session, req, reply);
                }
            }
            self.start_serving(session);
            self.flush(session);
            if session.is_closed() {
                return String::from("closed");
            }
            let room = self.queued.load(Relaxed) < MAX_QUEUED;
            // The index is read only after something changed, not on every socket read.
            let mut index_work = false;
            if room && cc_sent && self.index_dirty {
                index_work = self.outgoing_pending().await;
                self.index_dirty = index_work;
            }
            let timeout = session.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                read = reader.read_buf(session.receive_buffer(READ_BUF)) => match read {
                    Ok(0) => return String::from("connection closed by peer"),
                    Ok(n) => {
                        self.counters.read.fetch_add(n as u64, Relaxed);
                        session.received(Instant::now());
                    }
                    Err(e) => return format!("reading: {e}"),
                },
                Some(command) = commands.recv() => match command {
                    // A connection is registered once the peer's Hello is in, a moment before
                    // our ClusterConfig goes out; a request can only follow it (a connection
                    // that replaced another gets the requests that closed with that one).
                    Command::Request(req, reply) if !cc_sent => self.parked.push((req, reply)),
                    Command::Request(req, reply) => self.request(session, req, reply),
                    Command::Reconfigure => {
                        if self.ctx.peers.serial_of(&self.device) != self.serial {
                            session.close("replacing connection");
                        } else if !self.ctx.config.borrow().devices.iter().any(|d| d.id == self.device && !d.paused) {
                            session.close("device has been removed or paused");
                        } else if cc_sent {
                            self.send_cluster_config(session).await;
                            if let Some(cc) = self.last_cluster_config.clone()
                                && let Err(reason) = self.on_cluster_config(cc).await
                            {
                                session.close(&reason);
                            }
                        }
                    }
                },
                Some(done) = self.serving.join_next(), if !self.serving.is_empty() => {
                    if let Ok((id, result)) = done {
                        let _ = session.respond(id, result, Instant::now());
                    }
                }
                _ = local_changed.changed() => self.index_dirty = true,
                () = std::future::ready(()), if index_work => {
                    if let Err(reason) = self.send_index_batch(session).await {
                        session.close(&reason);
                    }
                }
                _ = progress_tick.tick(), if cc_sent => self.send_progress(session),
                () = sleep_until(timeout) => session.handle_timeout(Instant::now()),
                _ = shutdown.changed() => {
                    session.close("peerfold is being stopped");
                    self.flush(session);
                    return String::from("shutting down");
                }
            }
        }
    }

    /// Handles one event; `Some(reason)` ends the connection.
    async fn handle_event(
        &mut self,
        session: &mut Session,
        event: Event,
        cc_sent: &mut bool,
    ) -> Option<String> {
        match event {
            Event::Hello(h) => {
                if let Some(l) = self.ctx.peers.lock().get_mut(&self.device) {
                    l.info.name = h.device_name;
                    l.info.client = format!("{} {}", h.client_name, h.client_version);
                }
                // Syncthing sends its ClusterConfig right after the Hellos, without waiting.
                self.send_cluster_config(session).await;
                *cc_sent = true;
            }
            Event::ClusterConfig(cc) => {
                self.last_cluster_config = Some(cc.clone());
                if let Err(reason) = self.on_cluster_config(cc).await {
                    session.close(&reason);
                }
            }
            Event::Index { folder, files, replace } => {
                if let Err(reason) = self.on_index(&folder, files, replace).await {
                    session.close(&reason);
                }
            }
            Event::Request(req) => self.waiting.push_back(req),
            Event::Response { id, result } => {
                if let Some(reply) = self.requests.remove(&id) {
                    let _ = reply.send(result.map_err(RequestError::Peer));
                }
            }
            Event::DownloadProgress(p) => self.on_download_progress(p),
            Event::Closed { reason, by_peer } => {
                for (_, reply) in self.requests.drain() {
                    let _ = reply.send(Err(RequestError::Closed));
                }
                return Some(if by_peer { format!("closed by peer: {reason}") } else { reason });
            }
        }
        None
    }

    /// Folders shared with this peer, per the current configuration.
    fn our_folders(&self) -> Vec<FolderConfig> {
        let config = self.ctx.config.borrow();
        config.folders.iter().filter(|f| !f.paused && f.devices.contains(&self.device)).cloned().collect()
    }

    async fn send_cluster_config(&mut self, session: &mut Session) {
        let config = self.ctx.config.borrow().clone();
        let mut folders = Vec::new();
        for f in self.our_folders() {
            let Ok(idx) = self.ctx.index.register_folder(f.id.as_str()).await else { continue };
            let (Ok(sequence), Ok(index_id)) =
                (self.ctx.index.folder_sequence(idx).await, self.ctx.index.folder_index_id(idx).await)
            else {
                continue;
            };
            let mut peer_entry = wire::Device {
                id: self.device.as_bytes().to_vec(),
                name: config
                    .devices
                    .iter()
                    .find(|d| d.id == self.device)
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                addresses: vec![String::from("dynamic")],
                ..Default::default()
            };
            if let Some(idx_dev) = self.device_idx().await
                && let Ok(Some(remote)) = self.ctx.index.remote_index(idx, idx_dev).await
            {
                peer_entry.index_id = remote.index_id;
                peer_entry.max_sequence = remote.max_sequence;
            }
            folders.push(wire::Folder {
                id: f.id.to_string(),
                label: f.label.clone(),
                read_only: f.folder_type == FolderType::SendOnly,
                devices: vec![
                    wire::Device {
                        id: self.ctx.me.as_bytes().to_vec(),
                        name: config.name.clone(),
                        // Our relays too, so that a device this one introduces can reach us
                        // through them (Syncthing copies an introduced device's addresses).
                        addresses: std::iter::once(String::from("dynamic"))
                            .chain(config.options.relays.iter().cloned())
                            .collect(),
                        max_sequence: sequence,
                        index_id,
                        ..Default::default()
                    },
                    peer_entry,
                ]
                .into_iter()
                // The other devices it is shared with, as Syncthing lists them: what a peer
                // that has us as its introducer adds.
                .chain(
                    config.devices.iter().filter(|d| d.id != self.device && f.devices.contains(&d.id)).map(
                        |d| wire::Device {
                            id: d.id.as_bytes().to_vec(),
                            name: d.name.clone(),
                            addresses: d.addresses.clone(),
                            introducer: d.introducer,
                            skip_introduction_removals: d.skip_introduction_removals,
                            ..Default::default()
                        },
                    ),
                )
                .collect(),
                ..Default::default()
            });
        }
        let _ = session
            .send_cluster_config(wire::ClusterConfig { folders, ..Default::default() }, Instant::now());
    }

    async fn device_idx(&mut self) -> Option<DeviceIdx> {
        if self.device_idx.is_none() {
            self.device_idx = self.ctx.index.device(&self.device).await.ok();
        }
        self.device_idx
    }

    async fn on_cluster_config(&mut self, cc: wire::ClusterConfig) -> Result<(), String> {
        let ours = self.our_folders();
        let config = self.ctx.config.borrow().clone();
        let device_idx = self.device_idx().await.ok_or("cannot record the device in the index")?;
        let mut shared = Vec::new();
        let mut progress = HashSet::new();
        for folder in cc.folders {
            let Some(mine) = ours.iter().find(|f| f.id.as_str() == folder.id) else {
                if !folder.paused && self.auto_accept(&config, &folder.id, &folder.label) {
                    continue;
                }
                // Offered but not shared with this device here: the user decides.
                let configured_elsewhere = config.folders.iter().any(|f| f.id.as_str() == folder.id);
                if !configured_elsewhere || !folder.paused {
                    let offer = PendingFolder {
                        device: self.device,
                        folder: folder.id.clone(),
                        label: folder.label.clone(),
                        seen_at: unix_now() as i64,
                    };
                    match self.ctx.index.add_pending_folder(&offer).await {
                        Ok(()) => self.ctx.emit(crate::events::Event::FolderOffered {
                            folder: offer.folder,
                            label: offer.label,
                            device: offer.device,
                        }),
                        Err(e) => {
                            tracing::warn!(error = %crate::errors::error_chain(&e), "cannot record a folder offer");
                        }
                    }
                }
                continue;
            };
            let mut theirs: Option<&wire::Device> = None;
            let mut about_us: Option<&wire::Device> = None;
            for d in &folder.devices {
                match d.device_id() {
                    Ok(id) if id == self.device => theirs = Some(d),
                    Ok(id) if id == self.ctx.me => about_us = Some(d),
                    Ok(_) => {}
                    Err(e) => return Err(format!("handling cluster-config: {e}")),
                }
            }
            if about_us.is_none() {
                return Err(String::from("handling cluster-config: local device missing in cluster config"));
            }
            if theirs.is_none() {
                return Err(String::from("handling cluster-config: remote device missing in cluster config"));
            }
            if folder.paused {
                continue;
            }
            if !folder.disable_temp_indexes {
                progress.insert(mine.id.clone());
            }
            let folder_idx =
                self.ctx.index.register_folder(mine.id.as_str()).await.map_err(|e| e.to_string())?;
            // Their index: a new ID (or none) means what we hold of it is stale.
            let their_id = theirs.map_or(0, |d| d.index_id);
            self.ctx
                .index
                .set_remote_index_id(folder_idx, device_idx, their_id)
                .await
                .map_err(|e| crate::errors::error_chain(&e))?;
            // Our index: continue from what they hold if it is our current index.
            let receive_only = mine.folder_type == FolderType::ReceiveOnly;
            if let Some(o) = self.outgoing.get_mut(&mine.id) {
                if o.receive_only != receive_only {
                    // The folder changed type: what the peer holds of ours is announced anew.
                    *o = Outgoing { folder: folder_idx, sent: 0, replace_next: true, receive_only };
                }
            } else {
                let our_id = self.ctx.index.folder_index_id(folder_idx).await.map_err(|e| e.to_string())?;
                let our_seq = self.ctx.index.folder_sequence(folder_idx).await.map_err(|e| e.to_string())?;
                let (held_id, held_seq) = about_us.map_or((0, 0), |d| (d.index_id, d.max_sequence));
                let (sent, replace_next) =
                    if held_id == our_id && held_seq <= our_seq { (held_seq, false) } else { (0, true) };
                self.outgoing.insert(
                    mine.id.clone(),
                    Outgoing { folder: folder_idx, sent, replace_next, receive_only },
                );
            }
            shared.push(mine.id.clone());
        }
        // Folders the peer stopped sharing get no more updates.
        self.outgoing.retain(|id, _| shared.contains(id));
        self.shared_with_peer = shared;
        // What it was told of other folders' downloads no longer matters to it.
        self.progress_sent.retain(|(folder, _), _| progress.contains(folder));
        self.progress_folders = progress;
        self.index_dirty = true;
        for id in &self.shared_with_peer {
            self.ctx.notify_remote_changed(id);
        }
        self.introductions(&config);
        Ok(())
    }

    /// If this device is an introducer, asks the engine for the changes its last ClusterConfig
    /// calls for (see [`super::introduce`]).
    fn introductions(&self, config: &Config) {
        let Some(cc) = &self.last_cluster_config else { return };
        let edits = super::introduce::edits(config, self.ctx.me, self.device, cc);
        if edits.is_empty() {
            return;
        }
        tracing::info!(device = %self.device, changes = edits.len(), "introducer: changing the configuration");
        if self.ctx.peer_edits.try_send(edits).is_err() {
            tracing::debug!(device = %self.device, "introductions queued already; the next ClusterConfig asks again");
        }
    }

    /// Accepts an offer of folder `id` if this device is marked `auto_accept_folders`: asks
    /// the engine to add or share it. False if it is not marked so, or the offer cannot be
    /// accepted (it is then pending, for the user).
    fn auto_accept(&self, config: &Config, id: &str, label: &str) -> bool {
        if !config.devices.iter().any(|d| d.id == self.device && d.auto_accept_folders) {
            return false;
        }
        let Some(base) = config.options.folder_base() else { return false };
        let Some(edit) = super::auto_accept::accept(config, &base, self.device, id, label) else {
            tracing::info!(device = %self.device, folder = id, "cannot auto-accept the folder: no free directory for it");
            return false;
        };
        match self.ctx.peer_edits.try_send(vec![edit]) {
            Ok(()) => {
                tracing::info!(device = %self.device, folder = id, "auto-accepting the folder");
                true
            }
            Err(_) => false,
        }
    }

    async fn on_index(&mut self, folder: &str, files: Vec<FileInfo>, replace: bool) -> Result<(), String> {
        let Some(id) = self.shared_with_peer.iter().find(|f| f.as_str() == folder).cloned() else {
            return Err(format!("handling index for {folder}: {folder}: no such folder"));
        };
        let device_idx = self.device_idx().await.ok_or("cannot record the device in the index")?;
        let folder_idx = self.ctx.index.register_folder(id.as_str()).await.map_err(|e| e.to_string())?;
        self.ctx
            .index
            .apply_remote(folder_idx, device_idx, &files, replace)
            .await
            .map_err(|e| format!("handling index for {folder}: {}", crate::errors::error_chain(&e)))?;
        self.ctx.notify_remote_changed(&id);
        Ok(())
    }

    /// Remembers what the peer says it has in its temporary files, for folders shared with it
    /// (anything else is ignored, as Syncthing does).
    fn on_download_progress(&mut self, p: wire::DownloadProgress) {
        let Some(folder) = self.shared_with_peer.iter().find(|f| f.as_str() == p.folder).cloned() else {
            return;
        };
        let updates: Vec<_> = p.updates.into_iter().filter(|u| wire::check_name(&u.name).is_ok()).collect();
        self.ctx.peers.remote_downloads().entry(self.device).or_default().apply(&folder, updates);
    }

    /// Tells the peer what changed in this device's downloads since the last time: APPEND
    /// with the blocks it was not told of, FORGET for downloads that ended (or were replaced by
    /// another of the same name).
    fn send_progress(&mut self, session: &mut Session) {
        use wire::FileDownloadProgressUpdateType::{Append, Forget};
        let mut updates: HashMap<FolderId, Vec<wire::FileDownloadProgressUpdate>> = HashMap::new();
        let update = |kind: wire::FileDownloadProgressUpdateType, name: &str, version: &Vector| {
            wire::FileDownloadProgressUpdate {
                update_type: kind as i32,
                name: name.to_owned(),
                version: Some(version.into()),
                ..Default::default()
            }
        };
        let now = self.ctx.peers.downloads.snapshot();
        let current: HashSet<&(FolderId, String)> = now.iter().map(|(k, _)| k).collect();
        self.progress_sent.retain(|key, (_, version, _)| {
            let ended = !current.contains(key);
            if ended {
                updates.entry(key.0.clone()).or_default().push(update(Forget, &key.1, version));
            }
            !ended
        });
        for (key, d) in &now {
            if !self.progress_folders.contains(&key.0) {
                continue;
            }
            let sent = match self.progress_sent.get(key) {
                Some((serial, _, n)) if *serial == d.serial => *n,
                Some(_) => {
                    // Another download of the name: the peer forgets the old one once.
                    if let Some((_, version, _)) = self.progress_sent.remove(key) {
                        updates.entry(key.0.clone()).or_default().push(update(Forget, &key.1, &version));
                    }
                    0
                }
                None => 0,
            };
            if d.blocks.len() > sent {
                let mut u = update(Append, &key.1, &d.version);
                u.block_indexes = d.blocks[sent..].iter().map(|&i| i as i32).collect();
                u.block_size = d.block_size as i32;
                updates.entry(key.0.clone()).or_default().push(u);
                self.progress_sent.insert(key.clone(), (d.serial, d.version.clone(), d.blocks.len()));
            }
        }
        for (folder, updates) in updates {
            let p = wire::DownloadProgress { folder: folder.to_string(), updates };
            if session.send_download_progress(p, Instant::now()).is_err() {
                return;
            }
        }
    }

    /// True when some shared folder has local changes not yet sent.
    async fn outgoing_pending(&self) -> bool {
        for o in self.outgoing.values() {
            if let Ok(seq) = self.ctx.index.folder_sequence(o.folder).await
                && (seq > o.sent || (o.replace_next && seq > 0))
            {
                return true;
            }
        }
        false
    }

    async fn send_index_batch(&mut self, session: &mut Session) -> Result<(), String> {
        let me_short = self.ctx.me.short();
        for (id, o) in &mut self.outgoing {
            let seq = self.ctx.index.folder_sequence(o.folder).await.map_err(|e| e.to_string())?;
            if seq <= o.sent && !(o.replace_next && seq > 0) {
                continue;
            }
            let mut files = self
                .ctx
                .index
                .local_since(o.folder, o.sent, INDEX_BATCH)
                .await
                .map_err(|e| crate::errors::error_chain(&e))?;
            let Some(last) = files.last().map(|f| f.sequence) else {
                o.sent = seq;
                continue;
            };
            if o.receive_only {
                // Local changes in a receive-only folder are not for others: announced as
                // Syncthing does, invalid and without a version.
                for f in files.iter_mut().filter(|f| f.modified_by == me_short) {
                    f.invalid = true;
                    f.version = Vector::new();
                }
            }
            session
                .send_index(id.as_str(), &files, o.replace_next, Instant::now())
                .map_err(|e| e.to_string())?;
            o.replace_next = false;
            o.sent = last;
            return Ok(());
        }
        Ok(())
    }

    fn request(&mut self, session: &mut Session, req: BlockRequest, reply: Reply) {
        let wire_req = wire::Request {
            id: 0,
            folder: req.folder.to_string(),
            name: req.name,
            offset: req.offset as i64,
            size: req.size as i32,
            hash: req.hash.to_vec(),
            from_temporary: req.from_temporary,
            weak_hash: 0,
            block_no: req.block_no as i32,
        };
        match session.request(wire_req, Instant::now()) {
            Ok(id) => {
                self.requests.insert(id, reply);
            }
            Err(_) => {
                let _ = reply.send(Err(RequestError::Closed));
            }
        }
    }

    /// Starts serving waiting requests while there is room.
    fn start_serving(&mut self, session: &mut Session) {
        while self.serving.len() < MAX_SERVING
            && self.queued.load(Relaxed) < MAX_QUEUED
            && let Some(req) = self.waiting.pop_front()
        {
            match self.check_request(&req) {
                Ok((folder, root)) => {
                    let index = self.ctx.index.clone();
                    self.serving.spawn(async move {
                        let id = req.id;
                        (id, serve(index, folder, root, req).await)
                    });
                }
                Err(code) => {
                    tracing::debug!(device = %self.device, folder = %req.folder, name = %req.name, "request refused");
                    let _ = session.respond(req.id, Err(code), Instant::now());
                }
            }
        }
    }

    /// The folder and its root, if this peer may read from it.
    fn check_request(&self, req: &wire::Request) -> Result<(FolderId, PathBuf), ErrorCode> {
        let config = self.ctx.config.borrow();
        let folder = config
            .folders
            .iter()
            .find(|f| f.id.as_str() == req.folder && !f.paused && f.devices.contains(&self.device))
            .ok_or(ErrorCode::Generic)?;
        if crate::layout::is_internal(&req.name) {
            return Err(ErrorCode::InvalidFile);
        }
        if req.size < 0 || req.size as u32 > MAX_BLOCK_SIZE || req.offset < 0 {
            return Err(ErrorCode::Generic);
        }
        Ok((folder.id.clone(), folder.path.clone()))
    }
}

/// Reads a requested block from the folder, if the index lists the file (as a file, not
/// deleted, not ignored) and the range is inside it. A `from_temporary` request is tried on the
/// file's temporary file first (the peer learnt from our DownloadProgress that the block is
/// there), then on the file itself, as Syncthing does: the download may have finished in
/// between.
///
/// Data read from the file itself is not hashed here. The requester checks every block
/// against the hash it asked for (Peerfold and Syncthing both do) and asks another device when
/// it does not match, so a file that changed since its scan costs a retry there, while hashing
/// here cost a SHA-256 pass over everything sent, the largest single item of a busy sender's
/// profile. The watcher rescans the changed file either way.
async fn serve(
    index: crate::db::Index,
    folder: FolderId,
    root: PathBuf,
    req: wire::Request,
) -> Result<Vec<u8>, ErrorCode> {
    // Only with a hash to check: a temporary file holds blocks not yet verified as a whole.
    if req.from_temporary && !req.hash.is_empty() {
        let tmp = crate::layout::temp_name(&req.name);
        let (offset, size, hash) = (req.offset as u64, req.size as usize, req.hash.clone());
        let root = root.clone();
        let data = tokio::task::spawn_blocking(move || {
            // A regular file beneath the folder only: nothing a link points to, on the way or
            // at the end.
            let file = Beneath::new(&root).open(&tmp, Open::Read).ok()?;
            if offset + size as u64 > file.metadata().ok()?.len() {
                return None;
            }
            crate::positional_io::read_block_at(&file, offset, size)
                .ok()
                .filter(|d| Sha256::digest(d)[..] == hash[..])
        })
        .await
        .map_err(|_| ErrorCode::Generic)?;
        if let Some(data) = data {
            return Ok(data);
        }
    }
    let idx =
        index.folder(folder.as_str()).await.map_err(|_| ErrorCode::Generic)?.ok_or(ErrorCode::NoSuchFile)?;
    let file = index.local_file_head(idx, &req.name).await.map_err(|_| ErrorCode::Generic)?;
    let Some(file) = file.filter(|f| !f.deleted && !f.invalid && f.file_type == crate::bep::FileType::File)
    else {
        return Err(ErrorCode::NoSuchFile);
    };
    let (offset, size) = (req.offset as u64, req.size as usize);
    if offset + size as u64 > file.size {
        return Err(ErrorCode::NoSuchFile);
    }
    // Opening a file the index lists is a look-up in the kernel's cache of names; reading it
    // here is only tried on data the page cache holds, else on a blocking thread.
    // Never through a symlink: the index lists what the scanner saw, and a directory on the way
    // or the file itself may have become a link to anywhere since.
    let file = Beneath::new(&root).open(&req.name, Open::Read).map_err(|_| ErrorCode::NoSuchFile)?;
    if let Some(data) = crate::positional_io::read_cached(&file, offset, size) {
        return Ok(data);
    }
    tokio::task::spawn_blocking(move || crate::positional_io::read_block_at(&file, offset, size))
        .await
        .map_err(|_| ErrorCode::Generic)?
        .map_err(|_| ErrorCode::NoSuchFile)
}

//! The engine: the long-lived tasks of one Peerfold home, and the handle that front-ends (the
//! CLI, later the control API and the desktop app) drive it through — commands in, events out.
//!
//! Task topology: one folder task per configured, unpaused folder, and (with networking) the
//! model's service task with one task per connection ([`crate::model`]). A folder task owns
//! its [`Scanner`], its [`FolderWatcher`] and its [`Puller`], and serialises the scans and pulls
//! of its folder, so that the puller never races the scanner over the same files. It scans
//! - at start (a full scan),
//! - when the watcher reports paths (just those paths) or lost events (a full scan),
//! - every rescan interval, with ±1/8 jitter so folders (and devices) do not scan in lockstep,
//! - when asked through the handle,
//!
//! and pulls when a peer's index changed (the connection task signals it), after each scan, and
//! again after a while when something could not be pulled. Every change it records bumps a
//! counter the connection tasks watch, so they send index updates.
//!
//! A scan that would delete more than half of the folder's files records none of those
//! deletions ([`crate::scan::MassDelete`]): the folder waits for the user
//! ([`FolderState::WaitingForConfirmation`], [`Event::MassDeleteHeld`]), neither recording
//! deletions nor pulling, until [`Engine::confirm_deletes`] or a scan that finds the files back.
//!
//! A receive-only folder keeps local changes to itself (announced as Syncthing does: invalid,
//! without a version) until [`Engine::revert`] drops them and pulls the global versions back.
//!
//! Changes the user makes to a folder's files ([`crate::folder_files`]: ignore patterns,
//! conflict resolutions, restored versions) run in the folder's task too, followed by a scan of
//! what they touched. Each folder's failed items (what its last pull could not apply) are kept
//! in memory, and transfer rates are sampled every second ([`crate::rates`]).
//!
//! A folder's state is published on a `watch` channel, so reading it never waits for a scan.
//! Events go to every subscriber on a broadcast channel; a slow subscriber loses old events
//! rather than slowing the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::{Clock as _, sleep_until};
use crate::config::{Change, ChangeError, Config, ConfigError, Edit, FolderConfig, FolderId, FolderType};
use crate::db::{DbError, FolderIdx, Index, NeededItem};
pub use crate::errors::error_chain;
pub use crate::events::{Event, FolderState};
use crate::folder_files::{self, ConflictView, FilesError, Keep, VersionedFile};
use crate::identity::{DeviceId, ShortId};
use crate::model::{self, Peers};
use crate::net::Net;
use crate::pull::{PullOutcome, Puller, RevertOutcome, Versioning};
use crate::rates::Rates;
use crate::scan::{MassDelete, ScanError, ScanSummary, Scanner};
use crate::watch::{FolderWatcher, WatchEvent};

/// Events buffered per subscriber before the oldest are dropped.
const EVENT_BUFFER: usize = 1024;

/// Errors from engine commands.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no folder with ID {0:?}")]
    UnknownFolder(String),
    #[error("folder {0:?} is paused")]
    Paused(String),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the engine is shutting down")]
    Stopped,
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create folder {}", path.display())]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("folder {0:?} has no deletions waiting to be confirmed")]
    NoDeletesHeld(String),
    #[error("folder {0:?} is not receive-only; only local changes in a receive-only folder can be reverted")]
    NotReceiveOnly(String),
    #[error("cannot revert the local changes")]
    Revert(#[source] crate::pull::PullError),
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// Needed items listed at most per folder.
pub const NEEDED_LISTED: u32 = 500;

/// A change to a folder's files the user asks for ([`crate::folder_files`]).
#[derive(Debug)]
enum FilesOp {
    SetIgnores(Vec<String>),
    Resolve {
        conflict: String,
        keep: Keep,
    },
    Restore {
        path: String,
        version: String,
    },
    /// New `.stignore` lines (a selective-sync change), then local copies moved to the trash.
    Select {
        lines: Vec<String>,
        trash: Vec<String>,
    },
}

impl FilesOp {
    /// Does it on disk; returns the paths to rescan (empty: all of the folder).
    fn apply(self, root: &std::path::Path, versioning: bool) -> Result<Vec<String>, FilesError> {
        match self {
            // Newly ignored and unignored files anywhere: a full scan.
            Self::SetIgnores(lines) => folder_files::write_ignores(root, &lines).map(|()| Vec::new()),
            Self::Resolve { conflict, keep } => {
                folder_files::resolve_conflict(root, &conflict, keep, versioning, SystemTime::now())
            }
            Self::Restore { path, version } => {
                folder_files::restore_version(root, &path, &version, SystemTime::now()).map(|p| vec![p])
            }
            // The patterns first: the scan that follows finds the moved files ignored, which is
            // no deletion to announce.
            Self::Select { lines, trash } => {
                folder_files::write_ignores(root, &lines)?;
                let now = SystemTime::now();
                for path in &trash {
                    folder_files::trash_subtree(root, path, now)?;
                }
                Ok(Vec::new())
            }
        }
    }
}

/// An entry the puller could not apply, until a pull no longer fails on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FailedItem {
    /// Folder-relative; empty when the pull as a whole failed.
    pub path: String,
    /// Why, as a sentence.
    pub error: String,
    /// When it first failed for this reason (RFC 3339).
    pub at: String,
}

/// Each folder's failed items, by path.
type FailedItems = std::sync::Mutex<BTreeMap<FolderId, BTreeMap<String, FailedItem>>>;

enum FolderCommand {
    Scan { paths: Vec<String>, reply: oneshot::Sender<Result<ScanSummary, ScanError>> },
    Files { op: FilesOp, reply: oneshot::Sender<Result<(), EngineError>> },
    ConfirmDeletes { reply: oneshot::Sender<Result<ScanSummary, EngineError>> },
    Revert { reply: oneshot::Sender<Result<RevertOutcome, EngineError>> },
}

/// A running folder task.
struct FolderHandle {
    /// The configuration it runs with: a change to it restarts the task.
    config: FolderConfig,
    commands: mpsc::Sender<FolderCommand>,
    state: watch::Receiver<FolderState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What every folder task shares with the engine.
#[derive(Clone)]
struct Shared {
    index: Index,
    me: DeviceId,
    events: broadcast::Sender<Event>,
    shutdown: watch::Receiver<bool>,
    local_changed: Arc<watch::Sender<u64>>,
    remote_changed: Arc<model::FolderSignals>,
    peers: Arc<Peers>,
    config: watch::Receiver<Arc<Config>>,
    rates: Arc<Rates>,
    failed: Arc<FailedItems>,
    discovered: Arc<crate::discovery::Cache>,
    bandwidth: Arc<crate::bandwidth::Bandwidth>,
}

/// The handle to a running engine. Cheap to share behind an `Arc`.
pub struct Engine {
    folders: std::sync::Mutex<BTreeMap<FolderId, FolderHandle>>,
    /// Held while a configuration edit is applied, so edits happen one at a time, and while
    /// the start-up drop of removed folders runs: the configuration and the folder tasks stand
    /// still while either decides which folders the index keeps.
    editing: Arc<tokio::sync::Mutex<()>>,
    /// Where edits are saved, if anywhere.
    config_file: Option<PathBuf>,
    shared: Shared,
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
    config: watch::Sender<Arc<Config>>,
    /// What discovery announces, once it runs; a change is announced at once.
    announced: Option<Arc<watch::Sender<Vec<crate::net::Address>>>>,
    /// The network layer (without networking, none): its listen addresses go into invitation
    /// links, and joining an invitation dials with it.
    net: Option<Arc<Net>>,
    /// Edits peers' ClusterConfigs call for, until [`Engine::accept_peer_edits`] takes them.
    peer_edits: std::sync::Mutex<Option<mpsc::Receiver<Vec<Edit>>>>,
}

/// How many batches of edits from peers may wait to be made; more are dropped (and asked for
/// again by the next ClusterConfig).
const PEER_EDITS_QUEUED: usize = 16;

/// How long after a pull that left something undone the folder tries again.
const PULL_RETRY: Duration = Duration::from_secs(30);
/// How long after a scan that failed (the folder or its marker missing: an unmounted disk)
/// the folder is scanned again, so a disk mounted again is noticed even with no watcher (a
/// watcher on the empty mount point sees nothing of the mounted disk).
const ERROR_RESCAN: Duration = Duration::from_secs(60);

impl Engine {
    /// Starts a folder task for every configured folder that is not paused, without
    /// networking: folders are scanned and watched only.
    pub fn start(config: &Config, index: Index, me: DeviceId) -> Self {
        Self::start_inner(config, index, me, None)
    }

    /// Starts the engine with networking: the folder tasks, and the model serving and dialling
    /// peers through `net` as device `me`.
    pub fn start_networked(config: &Config, index: Index, me: DeviceId, net: Net) -> Self {
        Self::start_inner(config, index, me, Some((net, crate::power::system_source())))
    }

    /// [`Engine::start_networked`], learning of metered networks and battery from `power`
    /// instead of the system (a test's own D-Bus).
    pub fn start_networked_with_power(
        config: &Config,
        index: Index,
        me: DeviceId,
        net: Net,
        power: Arc<dyn crate::power::PowerNetworkSource>,
    ) -> Self {
        Self::start_inner(config, index, me, Some((net, power)))
    }

    /// Starts discovery: this device announces `addresses` and finds the devices configured as
    /// `dynamic` (see [`crate::discovery`]). Without it only configured addresses are dialled.
    pub fn start_discovery(
        &mut self,
        settings: crate::discovery::Settings,
        addresses: Vec<crate::net::Address>,
    ) {
        let announced = crate::discovery::spawn(
            settings,
            self.net.clone(),
            Arc::clone(&self.shared.discovered),
            addresses,
            self.shared.config.clone(),
            self.shutdown.subscribe(),
            &mut self.tasks,
        );
        self.announced = Some(announced);
    }

    /// The addresses this device listens on, as bound (empty without networking).
    pub fn listening(&self) -> Vec<crate::net::Address> {
        self.net.as_ref().map(|n| n.local_addresses()).unwrap_or_default()
    }

    /// Why QUIC is unavailable on a listen address, one sentence each (the system refused its
    /// UDP socket, or the address is taken); empty while QUIC listens everywhere it was asked to.
    pub fn quic_unavailable(&self) -> Vec<String> {
        let Some(net) = &self.net else { return Vec::new() };
        net.quic_unavailable().iter().map(|q| q.reason.clone()).collect()
    }

    /// The network layer, to dial with outside BEP (an invitation); none without networking.
    pub fn net(&self) -> Option<&Arc<Net>> {
        self.net.as_ref()
    }

    /// What this device announces (listening addresses and those mapped on the router); empty
    /// without discovery.
    pub fn announced(&self) -> Vec<String> {
        self.announced
            .as_ref()
            .map(|a| a.borrow().iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// The devices discovery has heard of lately, known or not (unknown ones are candidates to
    /// add).
    pub fn discovered(&self) -> Vec<crate::discovery::Seen> {
        self.shared.discovered.seen(std::time::Instant::now())
    }

    /// The devices discovery heard of that are neither configured nor this one: candidates to
    /// add.
    pub fn candidates(&self) -> Vec<crate::discovery::Seen> {
        let config = self.config();
        let mut seen = self.discovered();
        seen.retain(|s| s.device != self.shared.me && !config.devices.iter().any(|d| d.id == s.device));
        seen
    }

    /// Saves every configuration edit made through [`Engine::edit_config`] to `path`.
    pub fn with_config_file(mut self, path: PathBuf) -> Self {
        self.config_file = Some(path);
        self
    }

    fn start_inner(
        config: &Config,
        index: Index,
        me: DeviceId,
        network: Option<(Net, Arc<dyn crate::power::PowerNetworkSource>)>,
    ) -> Self {
        let (network, power_source) = network.unzip();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (local_changed, local_changed_rx) = watch::channel(0u64);
        let (peer_edits, peer_edits_rx) = mpsc::channel(PEER_EDITS_QUEUED);
        let mut engine = Self {
            folders: std::sync::Mutex::new(BTreeMap::new()),
            editing: Arc::new(tokio::sync::Mutex::new(())),
            config_file: None,
            shared: Shared {
                index,
                me,
                events,
                shutdown: shutdown_rx,
                local_changed: Arc::new(local_changed),
                remote_changed: Arc::new(model::FolderSignals::default()),
                peers: Arc::new(Peers::default()),
                config: config_rx.clone(),
                rates: Arc::new(Rates::default()),
                failed: Arc::default(),
                discovered: Arc::default(),
                bandwidth: Arc::new(crate::bandwidth::Bandwidth::new()),
            },
            tasks: JoinSet::new(),
            shutdown,
            config: config_tx,
            announced: None,
            net: network.map(Arc::new),
            peer_edits: std::sync::Mutex::new(Some(peer_edits_rx)),
        };
        {
            let mut folders = engine.lock_folders();
            for folder in config.folders.iter().filter(|f| !f.paused) {
                folders.insert(folder.id.clone(), engine.spawn_folder(folder, config));
            }
        }
        // Taken now, before any edit can be made, so the drop goes first: a folder removed
        // while stopped and added back at once starts afresh.
        let no_edits = Arc::clone(&engine.editing).try_lock_owned().ok();
        engine.tasks.spawn(drop_removed_folders(
            engine.shared.index.clone(),
            no_edits,
            Arc::clone(&engine.editing),
            config_rx.clone(),
        ));
        engine.tasks.spawn(sample_rates(
            Arc::clone(&engine.shared.rates),
            Arc::clone(&engine.shared.peers),
            engine.shutdown.subscribe(),
        ));
        if let Some(net) = engine.net.clone() {
            // The model works from the configuration with the pauses in force applied, applied
            // once before it starts so that a pause holds from the start.
            let clock = Arc::new(crate::clock::SystemClock);
            let first = engine.shared.bandwidth.apply_now(
                &Arc::new(config.clone()),
                &*clock,
                crate::power::PowerNetwork::default(),
            );
            let (model_config, model_config_rx) = watch::channel(first);
            let (power, power_rx) = watch::channel(crate::power::PowerNetwork::default());
            if let Some(source) = power_source {
                engine.tasks.spawn(crate::power::run(
                    source,
                    config_rx.clone(),
                    power,
                    engine.shutdown.subscribe(),
                ));
            }
            engine.tasks.spawn(crate::bandwidth::run(
                Arc::clone(&engine.shared.bandwidth),
                clock,
                config_rx.clone(),
                power_rx,
                model_config,
                engine.shutdown.subscribe(),
            ));
            let ctx = Arc::new(model::Context {
                me,
                config: model_config_rx,
                index: engine.shared.index.clone(),
                peers: Arc::clone(&engine.shared.peers),
                remote_changed: Arc::clone(&engine.shared.remote_changed),
                local_changed: local_changed_rx,
                events: engine.shared.events.clone(),
                discovered: Arc::clone(&engine.shared.discovered),
                redial: model::Redial::default(),
                peer_edits,
                bandwidth: Arc::clone(&engine.shared.bandwidth),
            });
            engine.tasks.spawn(model::serve(ctx, net, engine.shutdown.subscribe()));
        }
        engine
    }

    fn spawn_folder(&self, folder: &FolderConfig, config: &Config) -> FolderHandle {
        let (commands, command_rx) = mpsc::channel(16);
        let (state_tx, state) = watch::channel(FolderState::Idle);
        let (stop, stop_rx) = watch::channel(false);
        let shared = &self.shared;
        let task = FolderTask {
            id: folder.id.clone(),
            config: folder.clone(),
            watch_delay: Duration::from_millis(config.options.watch_delay_ms),
            rescan_interval: match folder.rescan_interval_s(&config.options) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            watch: folder.watch(&config.options),
            index: shared.index.clone(),
            me: shared.me.short(),
            commands: command_rx,
            state: state_tx,
            events: shared.events.clone(),
            shutdown: shared.shutdown.clone(),
            stop: stop_rx,
            remote_changed: shared.remote_changed.register(&folder.id),
            local_changed: Arc::clone(&shared.local_changed),
            peers: Arc::clone(&shared.peers),
            all_config: shared.config.clone(),
            held_deletes: None,
            pulled: shared.rates.pulled_counter(&folder.id),
            failed: Arc::clone(&shared.failed),
            pull_refused: false,
        };
        let task = tokio::spawn(task.run());
        FolderHandle { config: folder.clone(), commands, state, stop, task }
    }

    fn lock_folders(&self) -> std::sync::MutexGuard<'_, BTreeMap<FolderId, FolderHandle>> {
        // Every update of the map is one insert or remove, so a poisoned lock is still sound.
        self.folders.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// What each running (unpaused) folder is doing now.
    pub fn folder_states(&self) -> Vec<(FolderId, FolderState)> {
        self.lock_folders().iter().map(|(id, h)| (id.clone(), h.state.borrow().clone())).collect()
    }

    /// The index the engine records into (for read-only queries by front-ends).
    pub fn index(&self) -> &Index {
        &self.shared.index
    }

    /// Live connections.
    pub fn connections(&self) -> Vec<model::ConnectionInfo> {
        self.shared.peers.connections()
    }

    /// The downloads connected peers announced (DownloadProgress): per file, the blocks in their
    /// temporary files, which the puller may fetch from them.
    pub fn peer_downloads(&self) -> Vec<model::PeerDownload> {
        self.shared.peers.peer_downloads()
    }

    /// Transfer rates of folders and connections.
    pub fn rates(&self) -> &Rates {
        &self.shared.rates
    }

    /// The folder's configuration; an error if it is not configured.
    fn folder_config(&self, folder: &FolderId) -> Result<FolderConfig, EngineError> {
        self.config().folder(folder).cloned().ok_or_else(|| EngineError::UnknownFolder(folder.to_string()))
    }

    /// The lines of the folder's `.stignore`.
    pub async fn ignores(&self, folder: &FolderId) -> Result<Vec<String>, EngineError> {
        let root = self.folder_config(folder)?.path;
        Ok(blocking(move || folder_files::read_ignores(&root)).await??)
    }

    /// Replaces the folder's ignore patterns after checking every line (on an error nothing is
    /// written), then rescans the folder so newly ignored and unignored files take effect.
    pub async fn set_ignores(&self, folder: &FolderId, lines: Vec<String>) -> Result<(), EngineError> {
        self.files_op(folder, FilesOp::SetIgnores(lines)).await
    }

    /// Replaces the folder's ignore patterns with a selective-sync change (`lines`, checked
    /// first) and moves the local copies of `trash` (deselected paths) to the trash can, then
    /// rescans the folder.
    pub async fn set_selection(
        &self,
        folder: &FolderId,
        lines: Vec<String>,
        trash: Vec<String>,
    ) -> Result<(), EngineError> {
        self.files_op(folder, FilesOp::Select { lines, trash }).await
    }

    /// The folder's conflict copies (from the index), each with the file it belongs to.
    pub async fn conflicts(&self, folder: &FolderId) -> Result<Vec<ConflictView>, EngineError> {
        self.folder_config(folder)?;
        let Some(idx) = self.shared.index.folder(folder.as_str()).await? else { return Ok(Vec::new()) };
        Ok(folder_files::conflicts(&self.shared.index, idx, &self.config(), self.shared.me.short()).await?)
    }

    /// Resolves a conflict copy (see [`folder_files::resolve_conflict`]) and rescans both
    /// names, so peers get the result.
    pub async fn resolve_conflict(
        &self,
        folder: &FolderId,
        conflict: String,
        keep: Keep,
    ) -> Result<(), EngineError> {
        self.files_op(folder, FilesOp::Resolve { conflict, keep }).await
    }

    /// The old versions the folder's trash can keeps.
    pub async fn versions(&self, folder: &FolderId) -> Result<Vec<VersionedFile>, EngineError> {
        let root = self.folder_config(folder)?.path;
        Ok(blocking(move || folder_files::list_versions(&root)).await??)
    }

    /// Puts an old version back in place (the current file becomes a version) and rescans it.
    pub async fn restore_version(
        &self,
        folder: &FolderId,
        path: String,
        version: String,
    ) -> Result<(), EngineError> {
        self.files_op(folder, FilesOp::Restore { path, version }).await
    }

    /// The first names the folder still needs, in name order.
    pub async fn needed(&self, folder: &FolderId) -> Result<Vec<NeededItem>, EngineError> {
        self.folder_config(folder)?;
        let idx = self.shared.index.folder(folder.as_str()).await?.unwrap_or(FolderIdx::NONE);
        Ok(self.shared.index.needed_items(idx, NEEDED_LISTED).await?)
    }

    /// What the folder's last pull could not apply, and why.
    pub fn failed_items(&self, folder: &FolderId) -> Result<Vec<FailedItem>, EngineError> {
        self.folder_config(folder)?;
        let failed = self.shared.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(failed.get(folder).map(|m| m.values().cloned().collect()).unwrap_or_default())
    }

    /// Runs `op` in the folder's task (so it never races a scan or pull), which rescans what it
    /// changed. A paused folder's files are changed directly; it scans all when resumed.
    async fn files_op(&self, folder: &FolderId, op: FilesOp) -> Result<(), EngineError> {
        let config = self.folder_config(folder)?;
        if config.paused {
            let versioning = versioning_of(&config) != Versioning::Off;
            blocking(move || op.apply(&config.path, versioning)).await??;
            return Ok(());
        }
        let commands = self.folder_commands(folder)?;
        let (reply, answer) = oneshot::channel();
        commands.send(FolderCommand::Files { op, reply }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Bytes (read, written) over all connections since start.
    pub fn traffic(&self) -> (u64, u64) {
        self.shared.peers.total_bytes()
    }

    /// The limits and pauses in force (without networking: as the configuration says now).
    pub fn bandwidth(&self) -> crate::bandwidth::InForce {
        if self.net.is_none() {
            let clock = crate::clock::SystemClock;
            let unknown = crate::power::PowerNetwork::default();
            return crate::bandwidth::in_force(&self.config(), clock.local(), clock.unix(), unknown);
        }
        self.shared.bandwidth.current()
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Makes the configuration edits peers call for (auto-accepted folders) from now on, as
    /// [`Engine::edit_config`] makes the user's, until the engine is dropped. Until this is
    /// called (an engine in a test, say) they wait, and then are dropped: the offers stay
    /// pending.
    pub fn accept_peer_edits(self: &Arc<Self>) {
        let taken = self.peer_edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some(mut edits) = taken else { return };
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(batch) = edits.recv().await {
                let Some(engine) = engine.upgrade() else { break };
                for edit in batch {
                    match engine.edit_config(edit).await {
                        Ok(change) if change.changed() => {
                            tracing::info!(%change, "changed the configuration as a peer offered");
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %error_chain(&e), "cannot make a change a peer offered")
                        }
                    }
                }
            }
        });
    }

    /// Makes a change to the configuration, saves it (see [`Engine::with_config_file`]) and
    /// applies it while running: folders added, removed, paused or changed start, stop or
    /// restart; connections announce the new set of shared folders and devices are dialled
    /// or dropped. On an error nothing changed.
    pub async fn edit_config(&self, edit: Edit) -> Result<Change, EngineError> {
        let _one_at_a_time = self.editing.lock().await;
        let mut next = (*self.config()).clone();
        let me = self.shared.me;
        let change = next.edit(me, edit)?;
        if !change.changed() {
            return Ok(change);
        }
        if let Change::FolderAdded { path, .. } = &change {
            crate::config::create_folder_root(path)
                .map_err(|source| EngineError::CreateFolder { path: path.clone(), source })?;
        }
        if let Some(file) = &self.config_file {
            next.save(file)?;
        }
        settle_pending(&self.shared.index, &change).await;
        self.apply_config(next).await;
        Ok(change)
    }

    /// Runs `next`: stops the folder tasks whose folder is gone, paused or changed, publishes
    /// the configuration (so connections re-announce), then starts the new and changed ones.
    async fn apply_config(&self, next: Config) {
        // Engine-wide options (watch delay, rescan interval) are read when a task starts.
        let options_changed = self.config().options.for_folders() != next.options.for_folders();
        let stopped: Vec<FolderHandle> = {
            let mut folders = self.lock_folders();
            let outdated: Vec<FolderId> = folders
                .iter()
                .filter(|(id, h)| options_changed || next.folder(id).filter(|f| !f.paused) != Some(&h.config))
                .map(|(id, _)| id.clone())
                .collect();
            outdated.iter().filter_map(|id| folders.remove(id)).collect()
        };
        for handle in stopped {
            let _ = handle.stop.send(true);
            // A scan finishes its current batch, a pull its current files.
            let _ = handle.task.await;
            self.shared.remote_changed.unregister(&handle.config.id);
        }
        // A folder that no longer runs has no pull that could fail.
        self.shared
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| next.folder(id).is_some_and(|f| !f.paused));
        let before = self.config.send_replace(Arc::new(next.clone()));
        // A removed folder's rows go (its task has stopped), as in Syncthing.
        for gone in before.folders.iter().filter(|f| next.folder(&f.id).is_none()) {
            if let Err(e) = self.shared.index.drop_folder(gone.id.as_str()).await {
                tracing::warn!(folder = %gone.id, error = %error_chain(&e), "cannot drop the removed folder's index");
            }
        }
        let mut folders = self.lock_folders();
        for folder in next.folders.iter().filter(|f| !f.paused) {
            if !folders.contains_key(&folder.id) {
                let handle = self.spawn_folder(folder, &next);
                folders.insert(folder.id.clone(), handle);
            }
        }
    }

    /// Where to send commands for `folder`'s task; an error if it is unknown or paused.
    fn folder_commands(&self, folder: &FolderId) -> Result<mpsc::Sender<FolderCommand>, EngineError> {
        let commands = self.lock_folders().get(folder).map(|h| h.commands.clone());
        commands.ok_or_else(|| match self.config().folder(folder) {
            Some(f) if f.paused => EngineError::Paused(folder.to_string()),
            _ => EngineError::UnknownFolder(folder.to_string()),
        })
    }

    /// Scans a folder now — all of it, or just `paths` — and waits for the result.
    pub async fn scan(&self, folder: &FolderId, paths: Vec<String>) -> Result<ScanSummary, EngineError> {
        let commands = self.folder_commands(folder)?;
        let (reply, answer) = oneshot::channel();
        commands.send(FolderCommand::Scan { paths, reply }).await.map_err(|_| EngineError::Stopped)?;
        Ok(answer.await.map_err(|_| EngineError::Stopped)??)
    }

    /// Confirms the deletions a folder holds back as a mass delete
    /// ([`FolderState::WaitingForConfirmation`]): the folder is scanned with every deletion
    /// recorded, and syncs again. An error if the folder is not waiting for that.
    pub async fn confirm_deletes(&self, folder: &FolderId) -> Result<ScanSummary, EngineError> {
        let commands = self.folder_commands(folder)?;
        let (reply, answer) = oneshot::channel();
        commands.send(FolderCommand::ConfirmDeletes { reply }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Reverts a receive-only folder's local changes (Syncthing's "Revert Local Changes"): the
    /// folder is scanned (every deletion recorded, since they are about to be undone), files
    /// modified or deleted here get the global version back (pulled next; a replaced copy goes
    /// to the trash can when versioning is on), and files only this device has are deleted (to
    /// the trash can when versioning is on). Returns once the revert is recorded; the pull
    /// follows. An error for a folder that is not receive-only.
    pub async fn revert(&self, folder: &FolderId) -> Result<RevertOutcome, EngineError> {
        let commands = self.folder_commands(folder)?;
        let (reply, answer) = oneshot::channel();
        commands.send(FolderCommand::Revert { reply }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Stops every task (a scan in progress finishes its current batch first) and closes the
    /// index.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let folders = std::mem::take(&mut *self.lock_folders());
        for handle in folders.into_values() {
            let _ = handle.task.await;
        }
        while self.tasks.join_next().await.is_some() {}
        self.shared.index.close().await;
    }
}

/// Drops the index rows of folders removed from the configuration while no engine ran (as
/// Syncthing does on start). What `peerfold scan` indexed for a path that is no configured
/// folder (`path:…`) is kept: it is that command's incremental index.
///
/// It holds the edit lock (`no_edits`, taken when the engine started) while it runs, and keeps
/// the folders of the configuration it then finds: a folder added meanwhile has a task that
/// registered it, and dropping its rows under that task would leave the task a row number that
/// no longer exists.
async fn drop_removed_folders(
    index: Index,
    no_edits: Option<tokio::sync::OwnedMutexGuard<()>>,
    editing: Arc<tokio::sync::Mutex<()>>,
    config: watch::Receiver<Arc<Config>>,
) {
    let _no_edits = match no_edits {
        Some(guard) => guard,
        None => editing.lock_owned().await,
    };
    let config = config.borrow().clone();
    let mut keep: Vec<String> = config.folders.iter().map(|f| f.id.to_string()).collect();
    match index.folder_ids().await {
        Ok(ids) => keep.extend(ids.into_iter().filter(|id| id.starts_with("path:"))),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot list the index's folders");
            return;
        }
    }
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    match index.drop_folders_except(&keep).await {
        Ok(dropped) if !dropped.is_empty() => {
            tracing::info!(?dropped, "dropped the index of removed folders")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %error_chain(&e), "cannot drop the index of removed folders"),
    }
}

/// One folder's task: owns its scanner and watcher, serialises scans.
struct FolderTask {
    id: FolderId,
    config: FolderConfig,
    watch_delay: Duration,
    rescan_interval: Option<Duration>,
    watch: bool,
    index: Index,
    me: ShortId,
    commands: mpsc::Receiver<FolderCommand>,
    state: watch::Sender<FolderState>,
    events: broadcast::Sender<Event>,
    shutdown: watch::Receiver<bool>,
    /// Turns true when this folder alone stops (removed, paused or reconfigured).
    stop: watch::Receiver<bool>,
    remote_changed: Arc<Notify>,
    local_changed: Arc<watch::Sender<u64>>,
    peers: Arc<Peers>,
    /// The whole configuration, for the other folders' roots (the puller copies blocks from
    /// them).
    all_config: watch::Receiver<Arc<Config>>,
    /// Deletions held back as a mass delete, until confirmed or found undone by a scan.
    held_deletes: Option<MassDelete>,
    /// Bytes the puller writes, for the folder's rate.
    pulled: Arc<std::sync::atomic::AtomicU64>,
    failed: Arc<FailedItems>,
    /// The folder is in error because a pull found it could not run (no marker, a disk below
    /// its minimum of free space): each pull checks again, where a scan's error waits for a
    /// scan.
    pull_refused: bool,
}

impl FolderTask {
    async fn run(mut self) {
        let (scanner, puller) = match self.index.register_folder(self.id.as_str()).await {
            Ok(idx) => (
                Scanner::new(self.index.clone(), idx, self.config.path.clone(), self.me)
                    .with_ignore_permissions(self.config.ignores_permissions()),
                Arc::new(Puller {
                    index: self.index.clone(),
                    folder: idx,
                    id: self.id.clone(),
                    root: self.config.path.clone(),
                    peers: Arc::clone(&self.peers),
                    config: self.all_config.clone(),
                    versioning: versioning_of(&self.config),
                    trashed: Default::default(),
                    pulled: Arc::clone(&self.pulled),
                    case_locks: Default::default(),
                    reserved: Default::default(),
                    sources: Default::default(),
                }),
            ),
            Err(e) => {
                self.set_state(FolderState::Error { message: error_chain(&e) });
                return;
            }
        };
        let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
        let mut watcher = self.start_watcher(&watch_tx);

        let mut full_scan_due = true;
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut next_full = self.next_full_scan();
        let mut pull_due = false;
        let mut retry_pull: Option<Instant> = None;
        loop {
            if *self.stop.borrow() || *self.shutdown.borrow() {
                break;
            }
            if full_scan_due || !dirty.is_empty() {
                let paths: Vec<String> =
                    if full_scan_due { Vec::new() } else { std::mem::take(&mut dirty).into_iter().collect() };
                full_scan_due = false;
                dirty.clear();
                let was_error = self.in_error();
                let result = self.scan(&scanner, &paths, false).await;
                if paths.is_empty() {
                    next_full = self.next_full_scan();
                    self.clean_versions().await;
                }
                if result.is_err() {
                    let soon = Instant::now() + ERROR_RESCAN;
                    next_full = Some(next_full.map_or(soon, |t| t.min(soon)));
                }
                // A folder that was missing (an unmounted disk) gets a watcher once it is back.
                if watcher.is_none() && result.is_ok() {
                    watcher = self.start_watcher(&watch_tx);
                }
                // A full scan, or one that ended an error (a disk mounted again), may have made
                // the folder usable again; a change may settle something the puller skipped.
                if result.as_ref().is_ok_and(|s| s.changed > 0 || paths.is_empty() || was_error) {
                    pull_due = true;
                }
                continue;
            }
            if pull_due {
                pull_due = false;
                if let Some(outcome) = self.pull(&puller).await {
                    // Temporaries a scan kept for files the pull no longer needs.
                    if let Err(e) = scanner.drop_unneeded_temps().await {
                        tracing::warn!(folder = %self.id, error = %error_chain(&e), "cannot tidy temporary files");
                    }
                    // Entries that changed on disk under the puller: scan them, then pull again.
                    dirty.extend(outcome.rescan.iter().cloned());
                    retry_pull = (!outcome.issues.is_empty()).then(|| Instant::now() + PULL_RETRY);
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.changed() => break,
                _ = self.stop.changed() => break,
                command = self.commands.recv() => match command {
                    Some(FolderCommand::Scan { paths, reply }) => {
                        let was_held = self.held_deletes.is_some();
                        let was_error = self.in_error();
                        let result = self.scan(&scanner, &paths, false).await;
                        // Pulls waited while deletions were held, or the folder was in error.
                        pull_due |= was_held && self.held_deletes.is_none();
                        pull_due |= was_error && result.is_ok();
                        let _ = reply.send(result);
                    }
                    Some(FolderCommand::Files { op, reply }) => {
                        let result = self.files_op(&scanner, op).await;
                        // Unignored files or a restored version may be what a peer has.
                        pull_due |= result.is_ok();
                        let _ = reply.send(result);
                    }
                    Some(FolderCommand::ConfirmDeletes { reply }) => {
                        if self.held_deletes.is_none() {
                            let _ = reply.send(Err(EngineError::NoDeletesHeld(self.id.to_string())));
                            continue;
                        }
                        let result = self.scan(&scanner, &[], true).await;
                        pull_due |= result.is_ok();
                        let _ = reply.send(result.map_err(EngineError::from));
                    }
                    Some(FolderCommand::Revert { reply }) => {
                        let result = self.revert(&scanner, &puller).await;
                        pull_due |= result.is_ok();
                        let _ = reply.send(result);
                    }
                    None => break,
                },
                Some(event) = watch_rx.recv() => {
                    // Take everything already queued too, so one scan covers the burst.
                    let mut next = Some(event);
                    while let Some(event) = next {
                        match event {
                            WatchEvent::Paths(paths) => dirty.extend(paths),
                            WatchEvent::Rescan => full_scan_due = true,
                        }
                        next = watch_rx.try_recv().ok();
                    }
                    // While deletions are held only a full scan can tell whether the files are
                    // back: a scan of just the restored paths would find nothing missing.
                    if dirty.contains("") || self.held_deletes.is_some() {
                        full_scan_due = true;
                    }
                }
                () = self.remote_changed.notified() => pull_due = true,
                () = sleep_until(retry_pull) => {
                    retry_pull = None;
                    pull_due = true;
                }
                () = sleep_until(next_full) => full_scan_due = true,
            }
        }
    }

    /// Pulls what the folder needs, unless it is send-only, in error after a scan or waiting
    /// for the user to confirm deletions (the puller would otherwise restore the deleted files
    /// from peers, and the user's answer would come too late to matter). `None` if it did not
    /// run. A folder whose marker is gone (an unmounted disk: peers' files would fill the
    /// empty mount point) or whose disk, or the home's, is below its minimum of free space
    /// is put in error instead, with the reason as a failed item, and checked again at the
    /// next try.
    async fn pull(&mut self, puller: &Arc<Puller>) -> Option<PullOutcome> {
        if self.config.folder_type == FolderType::SendOnly
            || self.held_deletes.is_some()
            || (self.in_error() && !self.pull_refused)
        {
            return None;
        }
        if let Some(reason) = self.pull_blocked(puller).await {
            if !self.pull_refused
                || !matches!(&*self.state.borrow(), FolderState::Error { message } if *message == reason)
            {
                tracing::warn!(folder = %self.id, %reason, "not pulling");
            }
            self.pull_refused = true;
            self.set_state(FolderState::Error { message: reason.clone() });
            let issues = vec![(String::new(), reason)];
            self.record_failed(issues.clone());
            return Some(PullOutcome { issues, ..PullOutcome::default() });
        }
        self.pull_refused = false;
        self.set_state(FolderState::Syncing);
        let result = puller.pull().await;
        self.set_state(FolderState::Idle);
        let issues = match &result {
            Ok(outcome) => outcome.issues.clone(),
            Err(e) => vec![(String::new(), error_chain(e))],
        };
        self.record_failed(issues);
        match result {
            Ok(outcome) => {
                for (path, reason) in &outcome.issues {
                    self.emit(Event::PullIssue {
                        folder: self.id.clone(),
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                }
                if outcome.ignored > 0 && outcome.applied == 0 {
                    self.local_changed.send_modify(|n| *n += 1);
                }
                if outcome.applied > 0 {
                    self.local_changed.send_modify(|n| *n += 1);
                    self.emit(Event::Pulled {
                        folder: self.id.clone(),
                        applied: outcome.applied,
                        fetched_bytes: outcome.fetched_bytes,
                        copied_bytes: outcome.copied_bytes,
                        conflicts: outcome.conflicts.clone(),
                    });
                }
                Some(outcome)
            }
            Err(e) => {
                tracing::warn!(folder = %self.id, error = %error_chain(&e), "pull failed");
                Some(PullOutcome { issues: vec![(String::new(), error_chain(&e))], ..PullOutcome::default() })
            }
        }
    }

    fn in_error(&self) -> bool {
        matches!(*self.state.borrow(), FolderState::Error { .. })
    }

    /// Why the folder cannot pull now: its marker is missing, or its disk or the home's is
    /// below its minimum of free space.
    async fn pull_blocked(&self, puller: &Arc<Puller>) -> Option<String> {
        if let Err(e) = self.check_marker().await {
            return Some(error_chain(&e));
        }
        let root = self.config.path.clone();
        let min = self.config.min_disk_free;
        let home_min = self.all_config.borrow().options.min_home_disk_free;
        let home = puller.index.file().and_then(std::path::Path::parent).map(std::path::Path::to_path_buf);
        let check = move || crate::disks::pull_blocked(&root, min, home.as_deref().map(|h| (h, home_min)));
        blocking(check).await.unwrap_or(None)
    }

    /// Replaces the folder's failed items with what the last pull could not apply: a pull tries
    /// every needed entry, so one missing now succeeded (or is no longer needed). An entry that
    /// still fails for the same reason keeps the time it first failed.
    fn record_failed(&self, issues: Vec<(String, String)>) {
        let now = folder_files::rfc3339(crate::clock::unix_now() as i64);
        let mut failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = failed.remove(&self.id).unwrap_or_default();
        let items: BTreeMap<String, FailedItem> = issues
            .into_iter()
            .map(|(path, error)| {
                let at = match before.get(&path) {
                    Some(old) if old.error == error => old.at.clone(),
                    _ => now.clone(),
                };
                (path.clone(), FailedItem { path, error, at })
            })
            .collect();
        if !items.is_empty() {
            failed.insert(self.id.clone(), items);
        }
    }

    /// Applies a change the user asked for to the folder's files, then scans what it touched.
    async fn files_op(&mut self, scanner: &Scanner, op: FilesOp) -> Result<(), EngineError> {
        let root = self.config.path.clone();
        let versioning = versioning_of(&self.config) != Versioning::Off;
        let paths = blocking(move || op.apply(&root, versioning)).await??;
        self.scan(scanner, &paths, false).await?;
        Ok(())
    }

    /// Scans (recording every deletion: they are about to be undone) and reverts the local
    /// changes; the caller pulls next.
    async fn revert(
        &mut self,
        scanner: &Scanner,
        puller: &Arc<Puller>,
    ) -> Result<RevertOutcome, EngineError> {
        if self.config.folder_type != FolderType::ReceiveOnly {
            return Err(EngineError::NotReceiveOnly(self.id.to_string()));
        }
        self.scan(scanner, &[], true).await?;
        let outcome = puller.revert(self.me).await.map_err(EngineError::Revert)?;
        for (path, reason) in &outcome.issues {
            self.emit(Event::PullIssue {
                folder: self.id.clone(),
                path: path.clone(),
                reason: reason.clone(),
            });
        }
        if outcome.reverted + outcome.deleted > 0 {
            self.local_changed.send_modify(|n| *n += 1);
        }
        self.emit(Event::Reverted {
            folder: self.id.clone(),
            reverted: outcome.reverted,
            deleted: outcome.deleted,
        });
        Ok(outcome)
    }

    fn start_watcher(&self, tx: &mpsc::UnboundedSender<WatchEvent>) -> Option<FolderWatcher> {
        if !self.watch {
            return None;
        }
        match FolderWatcher::start(&self.config.path, self.watch_delay, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                // Not fatal: the periodic rescan still finds every change.
                tracing::warn!(folder = %self.id, error = %error_chain(&e), "watching for changes is off");
                None
            }
        }
    }

    /// When the next periodic full scan is due: the interval ±1/8, at random.
    fn next_full_scan(&self) -> Option<Instant> {
        let interval = self.rescan_interval?;
        let eighth = interval / 8;
        let jitter = eighth.mul_f64(rand::random::<f64>() * 2.0);
        Some(Instant::now() + interval - eighth + jitter)
    }

    /// Scans `paths` (all of the folder while deletions are held); `confirmed` records every
    /// deletion, however many.
    async fn scan(
        &mut self,
        scanner: &Scanner,
        paths: &[String],
        confirmed: bool,
    ) -> Result<ScanSummary, ScanError> {
        self.set_state(FolderState::Scanning);
        // Whatever error the folder showed, the scan's result replaces it.
        self.pull_refused = false;
        let paths: &[String] = if self.held_deletes.is_some() { &[] } else { paths };
        let result = match self.check_marker().await {
            Ok(()) if confirmed => scanner.scan_confirmed(paths).await,
            Ok(()) => scanner.scan(paths).await,
            Err(e) => Err(e),
        };
        match &result {
            Ok(summary) => {
                for issue in &summary.issues {
                    self.emit(Event::ScanIssue {
                        folder: self.id.clone(),
                        path: issue.path.clone(),
                        reason: issue.reason.clone(),
                    });
                }
                if summary.changed > 0 {
                    self.local_changed.send_modify(|n| *n += 1);
                    self.emit(Event::LocalIndexUpdated {
                        folder: self.id.clone(),
                        changed: summary.changed,
                        sequence: summary.sequence,
                    });
                }
                match summary.held_deletes {
                    Some(held) => {
                        if self.held_deletes != Some(held) {
                            self.emit(Event::MassDeleteHeld {
                                folder: self.id.clone(),
                                deleted: held.deleted,
                                total: held.total,
                            });
                        }
                        self.held_deletes = Some(held);
                        self.set_state(FolderState::WaitingForConfirmation {
                            deleted: held.deleted,
                            total: held.total,
                        });
                    }
                    None => {
                        self.held_deletes = None;
                        self.set_state(FolderState::Idle);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(folder = %self.id, error = %error_chain(e), "scan failed");
                self.set_state(FolderState::Error { message: error_chain(e) });
            }
        }
        result
    }

    /// Deletes trash-can versions older than the folder keeps them (with every full scan).
    async fn clean_versions(&self) {
        let Versioning::TrashCan { keep_days } = versioning_of(&self.config) else { return };
        let root = self.config.path.clone();
        let cleaned = tokio::task::spawn_blocking(move || {
            crate::pull::clean_versions(&root, keep_days, SystemTime::now())
        })
        .await;
        if let Ok(Err(e)) = cleaned {
            tracing::warn!(folder = %self.id, error = %e, "cannot clean old versions");
        }
    }

    /// The folder marker `.stfolder` tells a folder from an empty mount point: a folder that
    /// has been indexed and lost its marker (an unmounted disk) is not scanned, or every file
    /// would be announced deleted. A folder never indexed gets the marker.
    async fn check_marker(&self) -> Result<(), ScanError> {
        let marker = self.config.path.join(crate::layout::MARKER);
        if marker.exists() {
            return Ok(());
        }
        if !self.config.path.is_dir() {
            return Err(ScanError::FolderMissing(self.config.path.clone()));
        }
        let indexed = match self.index.folder(self.id.as_str()).await? {
            Some(idx) => self.index.folder_sequence(idx).await? > 0,
            None => false,
        };
        if indexed {
            return Err(ScanError::MarkerMissing(marker));
        }
        std::fs::create_dir(&marker).map_err(|source| ScanError::Root { path: marker, source })
    }

    fn set_state(&self, state: FolderState) {
        if *self.state.borrow() != state {
            self.state.send_replace(state.clone());
            self.emit(Event::StateChanged { folder: self.id.clone(), state });
        }
    }

    fn emit(&self, event: Event) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}

fn versioning_of(folder: &FolderConfig) -> Versioning {
    match folder.versioning {
        crate::config::Versioning::None => Versioning::Off,
        crate::config::Versioning::Trashcan { keep_days } => Versioning::TrashCan { keep_days },
    }
}

/// Drops what a configuration change answered: an added device is no longer pending, nor is
/// a folder offer once the folder is shared with the device that offered it. Failing to is
/// logged only: the change itself is made.
pub async fn settle_pending(index: &Index, change: &Change) {
    let done = match change {
        Change::DeviceAdded { id, .. } => index.remove_pending_device(id).await.map(drop),
        Change::Shared { folder, device } => index.remove_pending_folder(folder.as_str(), Some(device)).await,
        Change::FolderAdded { id, devices, .. } => {
            let mut result = Ok(());
            for device in devices {
                result = result.and(index.remove_pending_folder(id.as_str(), Some(device)).await);
            }
            result
        }
        _ => Ok(()),
    };
    if let Err(e) = done {
        tracing::warn!(error = %error_chain(&e), "cannot update the pending devices and folders");
    }
}

/// Samples the transfer counters every [`crate::rates::SAMPLE_EVERY`] until shutdown.
async fn sample_rates(rates: Arc<Rates>, peers: Arc<Peers>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::rates::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            at = tick.tick() => rates.sample(at, &peers.connections()),
        }
    }
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| EngineError::Stopped)
}

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
//! A folder's state is published on a `watch` channel, so reading it never waits for a scan.
//! Events go to every subscriber on a broadcast channel; a slow subscriber loses old events
//! rather than slowing the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::{Config, FolderConfig, FolderId, FolderType};
use crate::db::{DbError, Index};
use crate::identity::{DeviceId, ShortId};
use crate::model::{self, Peers};
use crate::net::Net;
use crate::pull::{PullOutcome, Puller, RevertOutcome, Versioning};
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
    #[error("folder {0:?} has no deletions waiting to be confirmed")]
    NoDeletesHeld(String),
    #[error("folder {0:?} is not receive-only; only local changes in a receive-only folder can be reverted")]
    NotReceiveOnly(String),
    #[error("cannot revert the local changes")]
    Revert(#[source] crate::pull::PullError),
}

/// What a folder is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FolderState {
    Idle,
    Scanning,
    Syncing,
    Error {
        message: String,
    },
    /// A scan found `deleted` of the folder's `total` files gone at once and recorded none of
    /// those deletions: the user confirms them ([`Engine::confirm_deletes`]) or restores the
    /// files. Meanwhile every scan is a full scan and nothing is pulled.
    WaitingForConfirmation {
        deleted: u64,
        total: u64,
    },
}

/// Something that happened, for front-ends to show.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    StateChanged {
        folder: FolderId,
        state: FolderState,
    },
    /// A scan finished; `changed` entries were recorded and the folder is at `sequence`.
    LocalIndexUpdated {
        folder: FolderId,
        changed: u64,
        sequence: i64,
    },
    /// A pull finished: `applied` entries were created, changed or deleted.
    Pulled {
        folder: FolderId,
        applied: u64,
        fetched_bytes: u64,
        copied_bytes: u64,
        conflicts: Vec<String>,
    },
    /// An entry the puller could not apply (it tries again later).
    PullIssue {
        folder: FolderId,
        path: String,
        reason: String,
    },
    /// A file or directory the scanner had to pass over.
    ScanIssue {
        folder: FolderId,
        path: String,
        reason: String,
    },
    /// A receive-only folder's local changes were reverted: `reverted` entries get the global
    /// version back (pulled next), `deleted` entries only this device had were deleted.
    Reverted {
        folder: FolderId,
        reverted: u64,
        deleted: u64,
    },
    /// A scan found `deleted` of the folder's `total` files gone and held the deletions back;
    /// the folder waits for the user (see [`FolderState::WaitingForConfirmation`]).
    MassDeleteHeld {
        folder: FolderId,
        deleted: u64,
        total: u64,
    },
}

enum FolderCommand {
    Scan { paths: Vec<String>, reply: oneshot::Sender<Result<ScanSummary, ScanError>> },
    ConfirmDeletes { reply: oneshot::Sender<Result<ScanSummary, EngineError>> },
    Revert { reply: oneshot::Sender<Result<RevertOutcome, EngineError>> },
}

struct FolderHandle {
    commands: mpsc::Sender<FolderCommand>,
    state: watch::Receiver<FolderState>,
}

/// The handle to a running engine. Cheap to share behind an `Arc`.
pub struct Engine {
    folders: BTreeMap<FolderId, FolderHandle>,
    paused: BTreeSet<FolderId>,
    events: broadcast::Sender<Event>,
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
    index: Index,
    peers: Arc<Peers>,
    config: watch::Sender<Arc<Config>>,
}

/// How long after a pull that left something undone the folder tries again.
const PULL_RETRY: Duration = Duration::from_secs(30);

impl Engine {
    /// Starts a folder task for every configured folder that is not paused, without
    /// networking: folders are scanned and watched only.
    pub fn start(config: &Config, index: Index, me: ShortId) -> Self {
        Self::start_inner(config, index, me, None)
    }

    /// Starts the engine with networking: the folder tasks, and the model serving and dialling
    /// peers through `net` as device `me`.
    pub fn start_networked(config: &Config, index: Index, me: DeviceId, net: Net) -> Self {
        Self::start_inner(config, index, me.short(), Some((me, net)))
    }

    fn start_inner(config: &Config, index: Index, me: ShortId, network: Option<(DeviceId, Net)>) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (shutdown, _) = watch::channel(false);
        let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
        let (local_changed, local_changed_rx) = watch::channel(0u64);
        let local_changed = Arc::new(local_changed);
        let mut engine = Self {
            folders: BTreeMap::new(),
            paused: BTreeSet::new(),
            events,
            tasks: JoinSet::new(),
            shutdown,
            index,
            peers: Arc::new(Peers::default()),
            config: config_tx,
        };
        let roots: HashMap<String, PathBuf> =
            config.folders.iter().map(|f| (f.id.to_string(), f.path.clone())).collect();
        let mut remote_changed = HashMap::new();
        for folder in &config.folders {
            if folder.paused {
                engine.paused.insert(folder.id.clone());
            } else {
                let notify = Arc::new(Notify::new());
                remote_changed.insert(folder.id.clone(), Arc::clone(&notify));
                engine.spawn_folder(folder, config, me, notify, Arc::clone(&local_changed), roots.clone());
            }
        }
        if let Some((me, net)) = network {
            let ctx = Arc::new(model::Context {
                me,
                config: config_rx,
                index: engine.index.clone(),
                peers: Arc::clone(&engine.peers),
                remote_changed,
                local_changed: local_changed_rx,
            });
            engine.tasks.spawn(model::serve(ctx, Arc::new(net), engine.shutdown.subscribe()));
        }
        engine
    }

    fn spawn_folder(
        &mut self,
        folder: &FolderConfig,
        config: &Config,
        me: ShortId,
        remote_changed: Arc<Notify>,
        local_changed: Arc<watch::Sender<u64>>,
        roots: HashMap<String, PathBuf>,
    ) {
        let (commands, command_rx) = mpsc::channel(16);
        let (state_tx, state) = watch::channel(FolderState::Idle);
        let task = FolderTask {
            id: folder.id.clone(),
            config: folder.clone(),
            watch_delay: Duration::from_millis(config.options.watch_delay_ms),
            rescan_interval: match folder.rescan_interval_s(&config.options) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            watch: folder.watch(&config.options),
            index: self.index.clone(),
            me,
            commands: command_rx,
            state: state_tx,
            events: self.events.clone(),
            shutdown: self.shutdown.subscribe(),
            remote_changed,
            local_changed,
            peers: Arc::clone(&self.peers),
            roots,
            held_deletes: None,
        };
        self.tasks.spawn(task.run());
        self.folders.insert(folder.id.clone(), FolderHandle { commands, state });
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// What each folder is doing now.
    pub fn folder_states(&self) -> Vec<(FolderId, FolderState)> {
        self.folders.iter().map(|(id, h)| (id.clone(), h.state.borrow().clone())).collect()
    }

    /// The index the engine records into (for read-only queries by front-ends).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Live connections.
    pub fn connections(&self) -> Vec<model::ConnectionInfo> {
        self.peers.connections()
    }

    /// The downloads connected peers announced (DownloadProgress): per file, the blocks in their
    /// temporary files, which the puller may fetch from them.
    pub fn peer_downloads(&self) -> Vec<model::PeerDownload> {
        self.peers.peer_downloads()
    }

    /// Bytes (read, written) over all connections since start.
    pub fn traffic(&self) -> (u64, u64) {
        self.peers.total_bytes()
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Scans a folder now — all of it, or just `paths` — and waits for the result.
    pub async fn scan(&self, folder: &FolderId, paths: Vec<String>) -> Result<ScanSummary, EngineError> {
        if self.paused.contains(folder) {
            return Err(EngineError::Paused(folder.to_string()));
        }
        let handle =
            self.folders.get(folder).ok_or_else(|| EngineError::UnknownFolder(folder.to_string()))?;
        let (reply, answer) = oneshot::channel();
        handle.commands.send(FolderCommand::Scan { paths, reply }).await.map_err(|_| EngineError::Stopped)?;
        Ok(answer.await.map_err(|_| EngineError::Stopped)??)
    }

    /// Confirms the deletions a folder holds back as a mass delete
    /// ([`FolderState::WaitingForConfirmation`]): the folder is scanned with every deletion
    /// recorded, and syncs again. An error if the folder is not waiting for that.
    pub async fn confirm_deletes(&self, folder: &FolderId) -> Result<ScanSummary, EngineError> {
        if self.paused.contains(folder) {
            return Err(EngineError::Paused(folder.to_string()));
        }
        let handle =
            self.folders.get(folder).ok_or_else(|| EngineError::UnknownFolder(folder.to_string()))?;
        let (reply, answer) = oneshot::channel();
        handle
            .commands
            .send(FolderCommand::ConfirmDeletes { reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Reverts a receive-only folder's local changes (Syncthing's "Revert Local Changes"): the
    /// folder is scanned (every deletion recorded, since they are about to be undone), files
    /// modified or deleted here get the global version back (pulled next; a replaced copy goes
    /// to the trash can when versioning is on), and files only this device has are deleted (to
    /// the trash can when versioning is on). Returns once the revert is recorded; the pull
    /// follows. An error for a folder that is not receive-only.
    pub async fn revert(&self, folder: &FolderId) -> Result<RevertOutcome, EngineError> {
        if self.paused.contains(folder) {
            return Err(EngineError::Paused(folder.to_string()));
        }
        let handle =
            self.folders.get(folder).ok_or_else(|| EngineError::UnknownFolder(folder.to_string()))?;
        let (reply, answer) = oneshot::channel();
        handle.commands.send(FolderCommand::Revert { reply }).await.map_err(|_| EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// Stops every task (a scan in progress finishes its current batch first) and closes the
    /// index.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.index.close().await;
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
    remote_changed: Arc<Notify>,
    local_changed: Arc<watch::Sender<u64>>,
    peers: Arc<Peers>,
    roots: HashMap<String, PathBuf>,
    /// Deletions held back as a mass delete, until confirmed or found undone by a scan.
    held_deletes: Option<MassDelete>,
}

impl FolderTask {
    async fn run(mut self) {
        let (scanner, puller) = match self.index.folder(self.id.as_str()).await {
            Ok(idx) => (
                Scanner::new(self.index.clone(), idx, self.config.path.clone(), self.me),
                Arc::new(Puller {
                    index: self.index.clone(),
                    folder: idx,
                    id: self.id.clone(),
                    root: self.config.path.clone(),
                    peers: Arc::clone(&self.peers),
                    roots: std::mem::take(&mut self.roots),
                    versioning: versioning_of(&self.config),
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
            if full_scan_due || !dirty.is_empty() {
                let paths: Vec<String> =
                    if full_scan_due { Vec::new() } else { std::mem::take(&mut dirty).into_iter().collect() };
                full_scan_due = false;
                dirty.clear();
                let result = self.scan(&scanner, &paths, false).await;
                if paths.is_empty() {
                    next_full = self.next_full_scan();
                    self.clean_versions().await;
                }
                // A folder that was missing (an unmounted disk) gets a watcher once it is back.
                if watcher.is_none() && result.is_ok() {
                    watcher = self.start_watcher(&watch_tx);
                }
                // A full scan may have made the folder usable again; a change may settle
                // something the puller skipped.
                if result.as_ref().is_ok_and(|s| s.changed > 0 || paths.is_empty()) {
                    pull_due = true;
                }
                continue;
            }
            if pull_due {
                pull_due = false;
                if let Some(outcome) = self.pull(&puller).await {
                    // Entries that changed on disk under the puller: scan them, then pull again.
                    dirty.extend(outcome.rescan.iter().cloned());
                    retry_pull = (!outcome.issues.is_empty()).then(|| Instant::now() + PULL_RETRY);
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.changed() => break,
                command = self.commands.recv() => match command {
                    Some(FolderCommand::Scan { paths, reply }) => {
                        let was_held = self.held_deletes.is_some();
                        let result = self.scan(&scanner, &paths, false).await;
                        // Pulls waited while deletions were held.
                        pull_due |= was_held && self.held_deletes.is_none();
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

    /// Pulls what the folder needs, unless it is send-only, in error or waiting for the user to
    /// confirm deletions (the puller would otherwise restore the deleted files from peers, and
    /// the user's answer would come too late to matter). `None` if it did not run.
    async fn pull(&self, puller: &Arc<Puller>) -> Option<PullOutcome> {
        if self.config.folder_type == FolderType::SendOnly
            || self.held_deletes.is_some()
            || matches!(*self.state.borrow(), FolderState::Error { .. })
        {
            return None;
        }
        self.set_state(FolderState::Syncing);
        let result = puller.pull().await;
        self.set_state(FolderState::Idle);
        match result {
            Ok(outcome) => {
                for (path, reason) in &outcome.issues {
                    self.emit(Event::PullIssue {
                        folder: self.id.clone(),
                        path: path.clone(),
                        reason: reason.clone(),
                    });
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
        let marker = self.config.path.join(MARKER);
        if marker.exists() {
            return Ok(());
        }
        if !self.config.path.is_dir() {
            return Err(ScanError::FolderMissing(self.config.path.clone()));
        }
        let idx = self.index.folder(self.id.as_str()).await?;
        if self.index.folder_sequence(idx).await? > 0 {
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

/// The folder marker Syncthing uses, at the folder root.
pub const MARKER: &str = ".stfolder";

fn versioning_of(folder: &FolderConfig) -> Versioning {
    match folder.versioning {
        crate::config::Versioning::None => Versioning::Off,
        crate::config::Versioning::Trashcan { keep_days } => Versioning::TrashCan { keep_days },
    }
}

/// Sleeps until `at`, or forever when there is no deadline (a `select!` branch that never fires).
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An error and its causes as one sentence: "a: b: c".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

//! The engine: the long-lived tasks of one Peerfold home, and the handle that front-ends (the
//! CLI, later the control API and the desktop app) drive it through — commands in, events out.
//!
//! Task topology: one folder task per configured, unpaused folder. A folder task owns its
//! [`Scanner`] and its [`FolderWatcher`], and serialises all scans of its folder. It scans
//! - at start (a full scan),
//! - when the watcher reports paths (just those paths) or lost events (a full scan),
//! - every rescan interval, with ±1/8 jitter so folders (and devices) do not scan in lockstep,
//! - when asked through the handle.
//!
//! A folder's state is published on a `watch` channel, so reading it never waits for a scan.
//! Events go to every subscriber on a broadcast channel; a slow subscriber loses old events
//! rather than slowing the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{Config, FolderConfig, FolderId};
use crate::db::{DbError, Index};
use crate::identity::ShortId;
use crate::scan::{ScanError, ScanSummary, Scanner};
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
}

/// What a folder is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FolderState {
    Idle,
    Scanning,
    Error { message: String },
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
    /// A file or directory the scanner had to pass over.
    ScanIssue {
        folder: FolderId,
        path: String,
        reason: String,
    },
}

enum FolderCommand {
    Scan { paths: Vec<String>, reply: oneshot::Sender<Result<ScanSummary, ScanError>> },
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
}

impl Engine {
    /// Starts a folder task for every configured folder that is not paused.
    pub fn start(config: &Config, index: Index, me: ShortId) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (shutdown, _) = watch::channel(false);
        let mut engine = Self {
            folders: BTreeMap::new(),
            paused: BTreeSet::new(),
            events,
            tasks: JoinSet::new(),
            shutdown,
            index,
        };
        for folder in &config.folders {
            if folder.paused {
                engine.paused.insert(folder.id.clone());
            } else {
                engine.spawn_folder(folder, config, me);
            }
        }
        engine
    }

    fn spawn_folder(&mut self, folder: &FolderConfig, config: &Config, me: ShortId) {
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
}

impl FolderTask {
    async fn run(mut self) {
        let scanner = match self.index.folder(self.id.as_str()).await {
            Ok(idx) => Scanner::new(self.index.clone(), idx, self.config.path.clone(), self.me),
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
        loop {
            if full_scan_due || !dirty.is_empty() {
                let paths: Vec<String> =
                    if full_scan_due { Vec::new() } else { std::mem::take(&mut dirty).into_iter().collect() };
                full_scan_due = false;
                dirty.clear();
                let result = self.scan(&scanner, &paths).await;
                if paths.is_empty() {
                    next_full = self.next_full_scan();
                }
                // A folder that was missing (an unmounted disk) gets a watcher once it is back.
                if watcher.is_none() && result.is_ok() {
                    watcher = self.start_watcher(&watch_tx);
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.changed() => break,
                command = self.commands.recv() => match command {
                    Some(FolderCommand::Scan { paths, reply }) => {
                        let result = self.scan(&scanner, &paths).await;
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
                    if dirty.contains("") {
                        full_scan_due = true;
                    }
                }
                () = sleep_until(next_full) => full_scan_due = true,
            }
        }
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

    async fn scan(&self, scanner: &Scanner, paths: &[String]) -> Result<ScanSummary, ScanError> {
        self.set_state(FolderState::Scanning);
        let result = scanner.scan(paths).await;
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
                    self.emit(Event::LocalIndexUpdated {
                        folder: self.id.clone(),
                        changed: summary.changed,
                        sequence: summary.sequence,
                    });
                }
                self.set_state(FolderState::Idle);
            }
            Err(e) => {
                tracing::warn!(folder = %self.id, error = %error_chain(e), "scan failed");
                self.set_state(FolderState::Error { message: error_chain(e) });
            }
        }
        result
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

async fn sleep_until(at: Option<Instant>) {
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

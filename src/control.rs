//! The control socket: how a command reaches the daemon running on the same home.
//!
//! `peerfold serve` listens on `<home>/control.sock` (a Unix socket, mode 0600, so only the
//! owner can talk to it). A client sends one JSON request per line and reads one JSON reply per
//! line. The daemon answers from the one engine handle front-ends use; with no daemon running,
//! the CLI answers the same requests itself through [`answer`] with [`Target::Offline`], so
//! every command behaves the same either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::config::{Change, Config, Edit, FolderId};
use crate::db::{Index, PendingDevice, PendingFolder};
use crate::engine::Engine;
use crate::folder_files::{self, ConflictView, Keep};
use crate::identity::DeviceId;

/// The socket's file name in the home.
pub const SOCKET_FILE: &str = "control.sock";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on the control socket {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the running daemon at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon's answer is not valid: {0}")]
    BadReply(String),
    /// The daemon's answer to a request it could not carry out, as it would be said without
    /// a daemon.
    #[error("{0}")]
    Refused(String),
}

/// What a client can ask. [`answer`] gives the same answer from a running daemon and, for the
/// CLI when no daemon runs, from the configuration file and the index.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Answered with a [`crate::status::Status`].
    Status,
    /// A configuration change, answered with an [`Edited`].
    Edit { edit: Edit },
    /// Answered with a [`Pending`].
    Pending,
    /// Forgets a pending device; answered with an [`Edited`].
    DismissDevice { device: DeviceId },
    /// Forgets a folder offer (from `device`, or from every device); answered with an [`Edited`].
    DismissFolder { folder: String, device: Option<DeviceId> },
    /// Lets a folder's held mass delete go ahead; answered with an [`Edited`]. Daemon only.
    ConfirmDeletes { folder: FolderId },
    /// Reverts a receive-only folder's local changes; answered with an [`Edited`]. Daemon only.
    Revert { folder: FolderId },
    /// The folder's `.stignore` lines; answered with a list of strings.
    Ignores { folder: FolderId },
    /// Replaces the folder's `.stignore` (every line checked first); answered with an [`Edited`].
    SetIgnores { folder: FolderId, lines: Vec<String> },
    /// Conflict copies in one folder or all; answered with a list of [`FolderConflict`].
    Conflicts { folder: Option<FolderId> },
    /// Resolves a conflict copy; answered with an [`Edited`].
    ResolveConflict { folder: FolderId, conflict: String, keep: Keep },
    /// The folder's old versions; answered with a list of
    /// [`crate::folder_files::VersionedFile`].
    Versions { folder: FolderId },
    /// Puts an old version back; answered with an [`Edited`].
    Restore { folder: FolderId, path: String, version: String },
    /// What the folder's last pull could not apply; answered with a list of
    /// [`crate::engine::FailedItem`] (none without a daemon: they are kept in memory).
    FailedItems { folder: FolderId },
    /// The first names the folder needs; answered with a list of [`crate::db::NeededItem`].
    Needed { folder: FolderId },
}

/// A conflict copy and the folder it is in.
#[derive(Debug, Serialize, Deserialize)]
pub struct FolderConflict {
    pub folder: FolderId,
    #[serde(flatten)]
    pub conflict: ConflictView,
}

/// The answer to a change: whether something changed, and the line to show.
#[derive(Debug, Serialize, Deserialize)]
pub struct Edited {
    pub changed: bool,
    pub message: String,
}

/// Devices and folder offers waiting for the user.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    pub devices: Vec<PendingDevice>,
    pub folders: Vec<PendingFolder>,
}

/// Who answers a request.
pub enum Target<'a> {
    /// The running daemon: changes apply at once.
    Daemon(&'a Engine),
    /// No daemon runs (the caller holds the home lock): changes go to the configuration file
    /// and the index, for the next start.
    Offline { config_file: &'a Path, index: &'a Index },
}

/// Why a request that acts on a running folder cannot be answered without the daemon.
fn needs_daemon(folder: &FolderId) -> String {
    format!(
        "folder \"{folder}\" can be changed this way only while Peerfold runs: start `peerfold serve` and try again"
    )
}

/// Answers `request` for device `me`. Errors are one sentence for the user.
pub async fn answer(request: Request, me: DeviceId, target: Target<'_>) -> Result<serde_json::Value, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::engine::error_chain(e);
    let index = match &target {
        Target::Daemon(engine) => engine.index(),
        Target::Offline { index, .. } => index,
    };
    let value = match request {
        Request::Ignores { .. }
        | Request::SetIgnores { .. }
        | Request::Conflicts { .. }
        | Request::ResolveConflict { .. }
        | Request::Versions { .. }
        | Request::Restore { .. }
        | Request::FailedItems { .. }
        | Request::Needed { .. } => return folder_details(request, me, &target).await,
        Request::ConfirmDeletes { folder } => {
            let Target::Daemon(engine) = target else { return Err(needs_daemon(&folder)) };
            let summary = engine.confirm_deletes(&folder).await.map_err(|e| chain(&e))?;
            let message = format!(
                "Confirmed: folder \"{folder}\" recorded {} deletions and syncs again.",
                summary.deleted
            );
            serde_json::to_value(Edited { changed: true, message })
        }
        Request::Revert { folder } => {
            let Target::Daemon(engine) = target else { return Err(needs_daemon(&folder)) };
            let outcome = engine.revert(&folder).await.map_err(|e| chain(&e))?;
            let message = format!(
                "Reverting folder \"{folder}\": {} entries get the other devices' version back, {} added here are removed (to the trash can if it keeps versions).",
                outcome.reverted, outcome.deleted
            );
            serde_json::to_value(Edited { changed: outcome.reverted + outcome.deleted > 0, message })
        }
        Request::Status => {
            let (config, engine) = match &target {
                Target::Daemon(engine) => (engine.config(), Some(*engine)),
                Target::Offline { config_file, .. } => {
                    (Arc::new(Config::load(config_file).map_err(|e| chain(&e))?), None)
                }
            };
            let status = crate::status::status(me, &config, index, engine).await.map_err(|e| chain(&e))?;
            serde_json::to_value(status)
        }
        Request::Edit { edit } => {
            let change = match &target {
                Target::Daemon(engine) => engine.edit_config(edit).await.map_err(|e| chain(&e))?,
                Target::Offline { config_file, index } => {
                    let mut config = Config::load(config_file).map_err(|e| chain(&e))?;
                    let change = config.edit(me, edit).map_err(|e| chain(&e))?;
                    if change.changed() {
                        if let Change::FolderAdded { path, .. } = &change {
                            crate::config::create_folder_root(path)
                                .map_err(|e| format!("cannot create folder {}: {e}", path.display()))?;
                        }
                        config.save(config_file).map_err(|e| chain(&e))?;
                        crate::engine::settle_pending(index, &change).await;
                    }
                    change
                }
            };
            serde_json::to_value(Edited { changed: change.changed(), message: change.to_string() })
        }
        Request::Pending => {
            let devices = index.pending_devices().await.map_err(|e| chain(&e))?;
            let folders = index.pending_folders().await.map_err(|e| chain(&e))?;
            serde_json::to_value(Pending { devices, folders })
        }
        Request::DismissDevice { device } => {
            let changed = index.remove_pending_device(&device).await.map_err(|e| chain(&e))?;
            let message = if changed {
                format!("Dismissed device {device}; it is asked about again if it connects again.")
            } else {
                format!("Device {device} is not pending; nothing changed.")
            };
            serde_json::to_value(Edited { changed, message })
        }
        Request::DismissFolder { folder, device } => {
            let before = index.pending_folders().await.map_err(|e| chain(&e))?.len();
            index.remove_pending_folder(&folder, device.as_ref()).await.map_err(|e| chain(&e))?;
            let changed = index.pending_folders().await.map_err(|e| chain(&e))?.len() < before;
            let from = device.map(|d| format!(" from device {d}")).unwrap_or_default();
            let message = if changed {
                format!("Dismissed the offer of folder \"{folder}\"{from}.")
            } else {
                format!("No offer of folder \"{folder}\"{from} is pending; nothing changed.")
            };
            serde_json::to_value(Edited { changed, message })
        }
    };
    value.map_err(|e| e.to_string())
}

/// Answers the requests about a folder's details: from the engine, or without a daemon from
/// the folder's files and the index directly (the next start scans what changed).
async fn folder_details(
    request: Request,
    me: DeviceId,
    target: &Target<'_>,
) -> Result<serde_json::Value, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::engine::error_chain(e);
    let config = match target {
        Target::Daemon(engine) => engine.config(),
        Target::Offline { config_file, .. } => Arc::new(Config::load(config_file).map_err(|e| chain(&e))?),
    };
    let folder_config = |id: &FolderId| {
        config.folder(id).cloned().ok_or_else(|| format!("there is no folder with ID \"{id}\""))
    };
    let done = |message: String| serde_json::to_value(Edited { changed: true, message });
    let value = match (request, target) {
        (Request::Ignores { folder }, Target::Daemon(engine)) => {
            serde_json::to_value(engine.ignores(&folder).await.map_err(|e| chain(&e))?)
        }
        (Request::Ignores { folder }, Target::Offline { .. }) => {
            let root = folder_config(&folder)?.path;
            serde_json::to_value(folder_files::read_ignores(&root).map_err(|e| chain(&e))?)
        }
        (Request::SetIgnores { folder, lines }, target) => {
            let n = lines.len();
            match target {
                Target::Daemon(engine) => engine.set_ignores(&folder, lines).await.map_err(|e| chain(&e))?,
                Target::Offline { .. } => {
                    let root = folder_config(&folder)?.path;
                    folder_files::write_ignores(&root, &lines).map_err(|e| chain(&e))?;
                }
            }
            done(format!("Folder \"{folder}\" has {n} ignore lines now."))
        }
        (Request::Conflicts { folder }, target) => {
            let ids: Vec<FolderId> = match folder {
                Some(id) => vec![folder_config(&id)?.id],
                None => config.folders.iter().map(|f| f.id.clone()).collect(),
            };
            let mut all = Vec::new();
            for id in ids {
                let list = match target {
                    Target::Daemon(engine) => engine.conflicts(&id).await.map_err(|e| chain(&e))?,
                    Target::Offline { index, .. } => {
                        let idx = index.folder(id.as_str()).await.map_err(|e| chain(&e))?;
                        folder_files::conflicts(index, idx, &config, me.short())
                            .await
                            .map_err(|e| chain(&e))?
                    }
                };
                all.extend(list.into_iter().map(|conflict| FolderConflict { folder: id.clone(), conflict }));
            }
            serde_json::to_value(all)
        }
        (Request::ResolveConflict { folder, conflict, keep }, target) => {
            match target {
                Target::Daemon(engine) => {
                    engine.resolve_conflict(&folder, conflict.clone(), keep).await.map_err(|e| chain(&e))?;
                }
                Target::Offline { .. } => {
                    let f = folder_config(&folder)?;
                    let versioning = f.versioning != crate::config::Versioning::None;
                    let now = std::time::SystemTime::now();
                    folder_files::resolve_conflict(&f.path, &conflict, keep, versioning, now)
                        .map_err(|e| chain(&e))?;
                }
            }
            done(match keep {
                Keep::Current => format!("Kept the current file; removed the conflict copy {conflict:?}."),
                Keep::Copy => format!("The conflict copy {conflict:?} replaced its file."),
            })
        }
        (Request::Versions { folder }, Target::Daemon(engine)) => {
            serde_json::to_value(engine.versions(&folder).await.map_err(|e| chain(&e))?)
        }
        (Request::Versions { folder }, Target::Offline { .. }) => {
            let root = folder_config(&folder)?.path;
            serde_json::to_value(folder_files::list_versions(&root).map_err(|e| chain(&e))?)
        }
        (Request::Restore { folder, path, version }, target) => {
            match target {
                Target::Daemon(engine) => engine
                    .restore_version(&folder, path.clone(), version.clone())
                    .await
                    .map_err(|e| chain(&e))?,
                Target::Offline { .. } => {
                    let root = folder_config(&folder)?.path;
                    folder_files::restore_version(&root, &path, &version, std::time::SystemTime::now())
                        .map_err(|e| chain(&e))?;
                }
            }
            done(format!("Restored {path:?} as it was at version {version}."))
        }
        (Request::FailedItems { folder }, Target::Daemon(engine)) => {
            serde_json::to_value(engine.failed_items(&folder).map_err(|e| chain(&e))?)
        }
        (Request::FailedItems { folder }, Target::Offline { .. }) => {
            folder_config(&folder)?;
            serde_json::to_value(Vec::<crate::engine::FailedItem>::new())
        }
        (Request::Needed { folder }, Target::Daemon(engine)) => {
            serde_json::to_value(engine.needed(&folder).await.map_err(|e| chain(&e))?)
        }
        (Request::Needed { folder }, Target::Offline { index, .. }) => {
            folder_config(&folder)?;
            let idx = index.folder(folder.as_str()).await.map_err(|e| chain(&e))?;
            serde_json::to_value(
                index.needed_items(idx, crate::engine::NEEDED_LISTED).await.map_err(|e| chain(&e))?,
            )
        }
        (request, _) => return Err(format!("not a request about a folder's details: {request:?}")),
    };
    value.map_err(|e| e.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Reply {
    Ok(serde_json::Value),
    Error(String),
}

/// Serves the control socket of the home at `home` until `shutdown` turns true.
pub async fn serve(
    home: &Path,
    me: DeviceId,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    let path = home.join(SOCKET_FILE);
    // The caller holds the home lock, so a socket file left here belongs to a dead daemon.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|source| ControlError::Listen { path: path.clone(), source })?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|source| ControlError::Listen { path: path.clone(), source })?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let engine = Arc::clone(&engine);
                tokio::spawn(async move { let _ = handle(stream, me, &engine).await; });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn handle(stream: UnixStream, me: DeviceId, engine: &Engine) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Error(format!("bad request: {e}")),
            Ok(request) => match answer(request, me, Target::Daemon(engine)).await {
                Ok(value) => Reply::Ok(value),
                Err(e) => Reply::Error(e),
            },
        };
        let mut text =
            serde_json::to_string(&reply).unwrap_or_else(|_| String::from("{\"error\":\"internal\"}"));
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

/// Sends one request to the daemon running on the home at `home` and returns its answer.
pub async fn request(home: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    let path = home.join(SOCKET_FILE);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::Connect { path: path.clone(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|source| ControlError::Connect { path: path.clone(), source })?;
    let reply = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .map_err(|source| ControlError::Connect { path, source })?
        .ok_or_else(|| ControlError::BadReply(String::from("no answer")))?;
    match serde_json::from_str::<Reply>(&reply).map_err(|e| ControlError::BadReply(e.to_string()))? {
        Reply::Ok(v) => Ok(v),
        Reply::Error(e) => Err(ControlError::Refused(e)),
    }
}

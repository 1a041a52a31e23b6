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
    /// Devices discovery heard of that are not configured, answered with a list of
    /// [`crate::discovery::Seen`]. Daemon only.
    Candidates,
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
        Request::Candidates => {
            let Target::Daemon(engine) = target else {
                return Err(String::from(
                    "candidates are the devices heard on the LAN while Peerfold runs: start `peerfold serve` \
                     and try again",
                ));
            };
            serde_json::to_value(engine.candidates())
        }
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

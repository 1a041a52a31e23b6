//! The control socket: how a command reaches the daemon running on the same home.
//!
//! `peerfold serve` serves its control API (`crate::api`, the same routes and answers as on
//! the GUI address) on `<home>/control.sock` too: a Unix socket, mode 0600, so only the owner
//! can talk to it, and no API key is needed. The CLI turns each command into a [`Request`] and
//! sends it as that API call ([`Request::route`], [`request`]); with no daemon running, it
//! answers the same requests itself from the configuration file and the index
//! ([`answer_offline`]), so every command behaves the same either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{Change, Config, Edit, FolderConfig, FolderId};
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

/// What a client can ask: a running daemon answers it as its control-API call
/// ([`Request::route`]), and [`answer_offline`] gives the same answer when no daemon runs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// Answered with a [`crate::status::Status`].
    Status,
    /// A configuration change, answered with an [`Edited`].
    Edit { edit: Edit },
    /// Answered with a [`Pending`].
    Pending,
    /// Adds a pending device (its announced name unless `name` is given); answered with an
    /// [`Edited`].
    AcceptDevice { device: DeviceId, name: Option<String>, addresses: Option<Vec<String>> },
    /// Accepts `device`'s offer of `folder`: adds it at `path` (created if `create`), or shares
    /// it if it is configured here already; answered with an [`Edited`].
    AcceptFolder { folder: String, device: DeviceId, path: Option<PathBuf>, create: bool },
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
    /// Devices discovery heard of that are not configured, answered with a list of
    /// [`crate::discovery::Seen`]. Daemon only.
    Candidates,
}

/// A conflict copy and the folder it is in.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FolderConflict {
    #[schema(value_type = String)]
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

/// Why a request that acts on a running folder cannot be answered without the daemon.
fn needs_daemon(folder: &FolderId) -> String {
    format!(
        "folder \"{folder}\" can be changed this way only while Peerfold runs: start `peerfold serve` and try again"
    )
}

/// Answers `request` for device `me` when no daemon runs: from the configuration file and the
/// index, changes saved for the next start. The answers match the API's. Errors are one
/// sentence for the user.
pub async fn answer_offline(
    request: Request,
    me: DeviceId,
    config_file: &Path,
    index: &Index,
) -> Result<serde_json::Value, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::engine::error_chain(e);
    let value = match request {
        Request::ConfirmDeletes { folder } | Request::Revert { folder } => return Err(needs_daemon(&folder)),
        Request::Ignores { .. }
        | Request::SetIgnores { .. }
        | Request::Conflicts { .. }
        | Request::ResolveConflict { .. }
        | Request::Versions { .. }
        | Request::Restore { .. }
        | Request::FailedItems { .. }
        | Request::Needed { .. } => return folder_details_offline(request, me, config_file, index).await,
        Request::Candidates => {
            return Err(String::from(
                "candidates are the devices heard on the LAN while Peerfold runs: start `peerfold serve` \
                 and try again",
            ));
        }
        Request::Status => {
            let config = Config::load(config_file).map_err(|e| chain(&e))?;
            let status = crate::status::status(me, &config, index, None).await.map_err(|e| chain(&e))?;
            serde_json::to_value(status)
        }
        Request::Edit { edit } => {
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
            serde_json::to_value(Edited { changed: change.changed(), message: change.to_string() })
        }
        Request::Pending => {
            let devices = index.pending_devices().await.map_err(|e| chain(&e))?;
            let folders = index.pending_folders().await.map_err(|e| chain(&e))?;
            serde_json::to_value(Pending { devices, folders })
        }
        Request::AcceptDevice { device, name, addresses } => {
            let pending = index.pending_devices().await.map_err(|e| chain(&e))?;
            let edit = accept_device(&pending, device, name, addresses).map_err(|e| e.to_string())?;
            return Box::pin(answer_offline(Request::Edit { edit }, me, config_file, index)).await;
        }
        Request::AcceptFolder { folder, device, path, create } => {
            let config = Config::load(config_file).map_err(|e| chain(&e))?;
            let offers = index.pending_folders().await.map_err(|e| chain(&e))?;
            let edit =
                accept_folder(&config, &offers, &folder, device, path, create).map_err(|e| e.to_string())?;
            return Box::pin(answer_offline(Request::Edit { edit }, me, config_file, index)).await;
        }
        Request::DismissDevice { device } => {
            if !index.remove_pending_device(&device).await.map_err(|e| chain(&e))? {
                return Err(not_pending(&device));
            }
            serde_json::to_value(dismissed_device(&device))
        }
        Request::DismissFolder { folder, device } => {
            let before = index.pending_folders().await.map_err(|e| chain(&e))?.len();
            index.remove_pending_folder(&folder, device.as_ref()).await.map_err(|e| chain(&e))?;
            if index.pending_folders().await.map_err(|e| chain(&e))?.len() == before {
                return Err(no_offer(&folder));
            }
            serde_json::to_value(dismissed_folder(&folder))
        }
    };
    value.map_err(|e| e.to_string())
}

/// Answers the requests about a folder's details without a daemon: from the folder's files and
/// the index directly (the next start scans what changed). The answers have the API's shapes.
async fn folder_details_offline(
    request: Request,
    me: DeviceId,
    config_file: &Path,
    index: &Index,
) -> Result<serde_json::Value, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| crate::engine::error_chain(e);
    let config = Config::load(config_file).map_err(|e| chain(&e))?;
    let folder_config = |id: &FolderId| {
        config.folder(id).cloned().ok_or_else(|| format!("there is no folder with ID \"{id}\""))
    };
    let value = match request {
        Request::Ignores { folder } => {
            let root = folder_config(&folder)?.path;
            let lines = folder_files::read_ignores(&root).map_err(|e| chain(&e))?;
            serde_json::to_value(IgnoreLines { lines })
        }
        Request::SetIgnores { folder, lines } => {
            let root = folder_config(&folder)?.path;
            folder_files::write_ignores(&root, &lines).map_err(|e| chain(&e))?;
            let lines = folder_files::read_ignores(&root).map_err(|e| chain(&e))?;
            serde_json::to_value(IgnoreLines { lines })
        }
        Request::Conflicts { folder } => {
            let ids: Vec<FolderId> = match folder {
                Some(id) => vec![folder_config(&id)?.id],
                None => config.folders.iter().map(|f| f.id.clone()).collect(),
            };
            let mut all = Vec::new();
            for id in ids {
                let idx = index.folder(id.as_str()).await.map_err(|e| chain(&e))?;
                let list =
                    folder_files::conflicts(index, idx, &config, me.short()).await.map_err(|e| chain(&e))?;
                all.extend(list.into_iter().map(|conflict| FolderConflict { folder: id.clone(), conflict }));
            }
            serde_json::to_value(all)
        }
        Request::ResolveConflict { folder, conflict, keep } => {
            let f = folder_config(&folder)?;
            let versioning = f.versioning != crate::config::Versioning::None;
            let now = std::time::SystemTime::now();
            folder_files::resolve_conflict(&f.path, &conflict, keep, versioning, now)
                .map_err(|e| chain(&e))?;
            serde_json::to_value(resolved(&conflict, keep))
        }
        Request::Versions { folder } => {
            let root = folder_config(&folder)?.path;
            serde_json::to_value(folder_files::list_versions(&root).map_err(|e| chain(&e))?)
        }
        Request::Restore { folder, path, version } => {
            let root = folder_config(&folder)?.path;
            folder_files::restore_version(&root, &path, &version, std::time::SystemTime::now())
                .map_err(|e| chain(&e))?;
            serde_json::to_value(restored(&path, &version))
        }
        Request::FailedItems { folder } => {
            // Failed items live in the daemon's memory: none without it.
            folder_config(&folder)?;
            serde_json::to_value(Vec::<crate::engine::FailedItem>::new())
        }
        Request::Needed { folder } => {
            folder_config(&folder)?;
            let idx = index.folder(folder.as_str()).await.map_err(|e| chain(&e))?;
            serde_json::to_value(
                index.needed_items(idx, crate::engine::NEEDED_LISTED).await.map_err(|e| chain(&e))?,
            )
        }
        request => return Err(format!("not a request about a folder's details: {request:?}")),
    };
    value.map_err(|e| e.to_string())
}

/// A folder's `.stignore`, line by line (the API's body for it, both ways).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IgnoreLines {
    pub lines: Vec<String>,
}

/// What resolving a conflict says it did.
pub fn resolved(conflict: &str, keep: Keep) -> Edited {
    let message = match keep {
        Keep::Current => format!("Kept the current file; removed the conflict copy {conflict:?}."),
        Keep::Copy => format!("The conflict copy {conflict:?} replaced its file."),
    };
    Edited { changed: true, message }
}

/// What restoring a version says it did.
pub fn restored(path: &str, version: &str) -> Edited {
    Edited { changed: true, message: format!("Restored {path:?} as it was at version {version}.") }
}

/// Why a pending device or folder offer cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// There is no such request or offer.
    #[error("{0}")]
    NotPending(String),
    /// The request names something wrong, like a folder path that does not exist.
    #[error("{0}")]
    Bad(String),
}

/// The edit that accepts pending device `device`: it is added with the name it announced
/// unless `name` is given.
pub fn accept_device(
    pending: &[PendingDevice],
    device: DeviceId,
    name: Option<String>,
    addresses: Option<Vec<String>>,
) -> Result<Edit, AcceptError> {
    let Some(request) = pending.iter().find(|d| d.device == device) else {
        return Err(AcceptError::NotPending(not_pending(&device)));
    };
    let name = name.or_else(|| Some(request.name.clone()).filter(|n| !n.is_empty()));
    // Adding it settles the pending entry (engine::settle_pending).
    Ok(Edit::AddDevice { id: device, name, addresses })
}

/// The edit that accepts `device`'s offer of `folder`: the folder is shared with it if it is
/// configured here, else added at `path` (absolute; created if `create`) shared with it.
pub fn accept_folder(
    config: &Config,
    offers: &[PendingFolder],
    folder: &str,
    device: DeviceId,
    path: Option<PathBuf>,
    create: bool,
) -> Result<Edit, AcceptError> {
    let id: FolderId = folder
        .parse()
        .map_err(|e: String| AcceptError::Bad(format!("{folder:?} is not a folder ID: {e}")))?;
    let Some(offer) = offers.iter().find(|o| o.folder == folder && o.device == device) else {
        return Err(AcceptError::NotPending(format!(
            "device {device} has no pending offer of folder \"{id}\""
        )));
    };
    // Adding or sharing settles the offer (engine::settle_pending).
    if config.folder(&id).is_some() {
        return Ok(Edit::Share { folder: id, device });
    }
    let Some(path) = path else {
        return Err(AcceptError::Bad(format!("folder \"{id}\" is new here: give the path to keep it at")));
    };
    let folder = FolderConfig {
        label: offer.label.clone(),
        devices: vec![device],
        ..FolderConfig::new(id, folder_root(path, create)?)
    };
    Ok(Edit::AddFolder { folder: Box::new(folder) })
}

/// `path` as a folder root: an existing directory, or one to create if `create`. A relative
/// path is left for the configuration to refuse.
pub fn folder_root(path: PathBuf, create: bool) -> Result<PathBuf, AcceptError> {
    if !path.is_absolute() {
        return Ok(path);
    }
    if !create && !path.is_dir() {
        let what = if path.exists() { "is not a directory" } else { "does not exist" };
        return Err(AcceptError::Bad(format!(
            "folder path {} {what} (send \"create\": true to create it)",
            path.display()
        )));
    }
    crate::config::resolve_folder_path(&path)
        .map_err(|e| AcceptError::Bad(format!("cannot resolve folder path {}: {e}", path.display())))
}

/// Why an offer cannot be dismissed: the API's 404 and the offline answer say the same.
pub fn not_pending(device: &DeviceId) -> String {
    format!("device {device} is not pending")
}

/// See [`not_pending`].
pub fn no_offer(folder: &str) -> String {
    format!("no offer of folder \"{folder}\" is pending")
}

pub fn dismissed_device(device: &DeviceId) -> Edited {
    Edited {
        changed: true,
        message: format!("Dismissed device {device}; it is asked about again if it connects again."),
    }
}

pub fn dismissed_folder(folder: &str) -> Edited {
    Edited { changed: true, message: format!("Dismissed the offer of folder \"{folder}\".") }
}

/// Characters escaped in a path segment: everything but RFC 3986's unreserved ones.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn segment(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, SEGMENT)
}

/// A query parameter's value: the same escaping serves.
fn query(s: &str) -> percent_encoding::PercentEncode<'_> {
    segment(s)
}

fn folder_path(folder: &FolderId) -> String {
    format!("/api/folders/{}", segment(folder.as_str()))
}

impl Request {
    /// The control API call that answers this request: method, path and JSON body.
    pub fn route(&self) -> (http::Method, String, Option<serde_json::Value>) {
        use http::Method;
        match self {
            Self::Status => (Method::GET, "/api/status".into(), None),
            Self::Pending => (Method::GET, "/api/pending".into(), None),
            Self::Edit { edit } => {
                (Method::POST, "/api/config/edits".into(), serde_json::to_value(edit).ok())
            }
            Self::AcceptDevice { device, name, addresses } => (
                Method::POST,
                format!("/api/pending/devices/{device}/accept"),
                Some(serde_json::json!({ "name": name, "addresses": addresses })),
            ),
            Self::AcceptFolder { folder, device, path, create } => (
                Method::POST,
                format!("/api/pending/folders/{}/accept", segment(folder)),
                Some(serde_json::json!({ "device": device.to_string(), "path": path, "create": create })),
            ),
            Self::Ignores { folder } => (Method::GET, format!("{}/ignores", folder_path(folder)), None),
            Self::SetIgnores { folder, lines } => (
                Method::PUT,
                format!("{}/ignores", folder_path(folder)),
                Some(serde_json::json!({ "lines": lines })),
            ),
            Self::Conflicts { folder } => {
                let only =
                    folder.as_ref().map(|f| format!("?folder={}", query(f.as_str()))).unwrap_or_default();
                (Method::GET, format!("/api/conflicts{only}"), None)
            }
            Self::ResolveConflict { folder, conflict, keep } => (
                Method::POST,
                format!("{}/conflicts/resolve", folder_path(folder)),
                Some(serde_json::json!({ "conflict": conflict, "keep": keep })),
            ),
            Self::Versions { folder } => (Method::GET, format!("{}/versions", folder_path(folder)), None),
            Self::Restore { folder, path, version } => (
                Method::POST,
                format!("{}/versions/restore", folder_path(folder)),
                Some(serde_json::json!({ "path": path, "version": version })),
            ),
            Self::FailedItems { folder } => (Method::GET, format!("{}/errors", folder_path(folder)), None),
            Self::Needed { folder } => (Method::GET, format!("{}/needed", folder_path(folder)), None),
            // Answered with every device discovery knows of; the CLI shows those not added.
            Self::Candidates => (Method::GET, "/api/discovery".into(), None),
            Self::DismissDevice { device } => {
                (Method::POST, format!("/api/pending/devices/{device}/dismiss"), None)
            }
            Self::DismissFolder { folder, device } => {
                let only = device.map(|d| format!("?device={d}")).unwrap_or_default();
                (Method::POST, format!("/api/pending/folders/{}/dismiss{only}", segment(folder)), None)
            }
            Self::ConfirmDeletes { folder } => {
                (Method::POST, format!("{}/confirm-deletes", folder_path(folder)), None)
            }
            Self::Revert { folder } => (Method::POST, format!("{}/revert", folder_path(folder)), None),
        }
    }
}

/// Serves the control API on the control socket of the home at `home` until `shutdown` turns
/// true. The socket is the owner's alone (mode 0600), which is the whole of its authentication.
#[cfg(unix)]
pub async fn serve(
    home: &Path,
    me: DeviceId,
    engine: Arc<Engine>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    use tokio::net::UnixListener;
    let path = home.join(SOCKET_FILE);
    let listen_error = |source| ControlError::Listen { path: path.clone(), source };
    // The caller holds the home lock, so a socket file left here belongs to a dead daemon.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(listen_error)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(listen_error)?;
    let served = crate::api::serve_local(listener, engine, me, shutdown).await.map_err(listen_error);
    let _ = std::fs::remove_file(&path);
    served
}

/// Without Unix sockets there is no control socket yet (a named pipe would be Windows' way): the
/// daemon serves none, and the CLI says that a running daemon cannot be reached.
#[cfg(not(unix))]
pub async fn serve(
    _home: &Path,
    _me: DeviceId,
    _engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    let _ = shutdown.wait_for(|stop| *stop).await;
    Ok(())
}

/// See the other [`serve`].
#[cfg(not(unix))]
pub async fn request(home: &Path, _request: &Request) -> Result<serde_json::Value, ControlError> {
    Err(ControlError::Connect {
        path: home.join(SOCKET_FILE),
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this system has no control socket yet; stop the daemon to change its home",
        ),
    })
}

/// Sends one request to the daemon running on the home at `home`, through the control API on
/// its socket, and returns its answer.
#[cfg(unix)]
pub async fn request(home: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    use http_body_util::BodyExt as _;
    use tokio::net::UnixStream;
    let path = home.join(SOCKET_FILE);
    let connect_error = |source| ControlError::Connect { path: path.clone(), source };
    let stream = UnixStream::connect(&path).await.map_err(connect_error)?;
    let bad = |e: &dyn std::fmt::Display| ControlError::BadReply(e.to_string());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| bad(&e))?;
    let connection = tokio::spawn(connection);
    let (method, uri, body) = request.route();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let call = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| bad(&e))?;
    let response = sender.send_request(call).await.map_err(|e| bad(&e))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| bad(&e))?.to_bytes();
    connection.abort();
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
    if status.is_success() {
        Ok(value)
    } else {
        let message =
            value["error"].as_str().map_or_else(|| format!("the daemon answered {status}"), str::to_owned);
        Err(ControlError::Refused(message))
    }
}

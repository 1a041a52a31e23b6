//! The one typed service every front-end drives: what can be asked ([`Request`]), what is
//! answered ([`Response`]) and why it can fail ([`ServiceError`], mapped once to HTTP status
//! codes and once to CLI exit codes).
//!
//! Two backends implement [`Service`]: [`Running`] wraps the running [`crate::engine::Engine`]
//! (the daemon, the desktop app), and [`Offline`] answers from a home's configuration file and
//! index when no daemon runs (the CLI). Every request is dispatched once, by one exhaustive
//! match over the crate-private `Backend` trait, which both implement; what they do alike —
//! pending devices and folder offers, accepting and dismissing them, the resource-style
//! configuration changes, the lists of devices and folders, refusing an unknown folder — is
//! written once here, and a backend supplies only what differs. Operations only a running
//! engine can do are a [`ServiceError::NeedsDaemon`] offline.
//!
//! The front-ends are thin adapters: the CLI turns its arguments into a `Request` and prints the
//! typed answer, the control socket and `POST /api/call` carry `Request` and `Response` as
//! JSON, the REST routes convert their paths and bodies into a `Request`, and the desktop app
//! calls [`Running`] directly. None of them sees a `db` type: the answers below are the
//! service's own.

mod offline;
mod running;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use offline::Offline;
pub use running::Running;

use crate::config::{Config, Edit, FolderConfig, FolderId, FolderType, Versioning};
use crate::db::Index;
use crate::engine::{EngineError, FailedItem, error_chain};
use crate::folder_files::{ConflictView, FilesError, Keep, VersionedFile};
use crate::identity::DeviceId;
use crate::recent_log::LogLine;
use crate::scan::ScanSummary;
use crate::status::{DeviceView, Status};

/// Everything a front-end can ask. Serialized as `{"command": "kebab-case-name", ...fields}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// This device: answered with [`Response::System`].
    System,
    /// Every folder's and device's state: [`Response::Status`].
    Status,
    /// The configured devices: [`Response::Devices`].
    Devices,
    /// The configured folders: [`Response::Folders`].
    Folders,
    /// One configuration change as the CLI makes it: [`Response::Edited`].
    Edit { edit: Edit },
    /// Adds a device that is not configured yet (a configured one is refused: use
    /// `update-device`): [`Response::Edited`].
    AddDevice {
        #[schema(value_type = String)]
        device: DeviceId,
        name: Option<String>,
        /// `tcp://host[:port]`, `quic://host[:port]` or `dynamic` (the default).
        addresses: Option<Vec<String>>,
        /// KiB/s sent to it; 0 or absent: unlimited.
        #[serde(default)]
        max_send_kibps: Option<u64>,
        /// KiB/s received from it; 0 or absent: unlimited.
        #[serde(default)]
        max_recv_kibps: Option<u64>,
    },
    /// Changes a configured device's name, addresses or limits, or pauses or resumes it:
    /// [`Response::Edited`].
    UpdateDevice {
        #[schema(value_type = String)]
        device: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
        paused: Option<bool>,
        /// KiB/s sent to it; 0: unlimited.
        #[serde(default)]
        max_send_kibps: Option<u64>,
        /// KiB/s received from it; 0: unlimited.
        #[serde(default)]
        max_recv_kibps: Option<u64>,
    },
    /// Removes a configured device and stops sharing every folder with it: [`Response::Edited`].
    RemoveDevice {
        #[schema(value_type = String)]
        device: DeviceId,
    },
    /// Adds a folder at `path` (absolute; created if `create`): [`Response::Edited`].
    AddFolder {
        #[schema(value_type = String)]
        folder: FolderId,
        #[schema(value_type = String)]
        path: PathBuf,
        #[serde(default)]
        label: String,
        #[serde(default, rename = "type")]
        folder_type: FolderType,
        #[serde(default)]
        #[schema(value_type = Vec<String>)]
        devices: Vec<DeviceId>,
        /// `{"type": "trashcan", "keep_days": 30}` (the default) or `{"type": "none"}`.
        versioning: Option<Versioning>,
        #[serde(default)]
        create: bool,
    },
    /// Changes a configured folder's settings, or pauses or resumes it: [`Response::Edited`].
    UpdateFolder {
        #[schema(value_type = String)]
        folder: FolderId,
        label: Option<String>,
        /// The full list of devices to share it with.
        #[schema(value_type = Option<Vec<String>>)]
        devices: Option<Vec<DeviceId>>,
        versioning: Option<Versioning>,
        paused: Option<bool>,
        rescan_interval_s: Option<u64>,
        watch: Option<bool>,
    },
    /// Removes a configured folder (its files stay): [`Response::Edited`].
    RemoveFolder {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// Scans a folder now: [`Response::Scanned`]. Daemon only.
    Scan {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// Lets a folder's held mass delete go ahead: [`Response::Edited`]. Daemon only.
    ConfirmDeletes {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// Reverts a receive-only folder's local changes: [`Response::Edited`]. Daemon only.
    Revert {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// The folder's `.stignore` lines: [`Response::Ignores`].
    Ignores {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// Replaces the folder's `.stignore` (every line checked first): [`Response::Ignores`].
    SetIgnores {
        #[schema(value_type = String)]
        folder: FolderId,
        lines: Vec<String>,
    },
    /// Conflict copies in one folder or all: [`Response::Conflicts`].
    Conflicts {
        #[schema(value_type = Option<String>)]
        folder: Option<FolderId>,
    },
    /// Resolves a conflict copy: [`Response::Edited`].
    ResolveConflict {
        #[schema(value_type = String)]
        folder: FolderId,
        conflict: String,
        keep: Keep,
    },
    /// The folder's old versions: [`Response::Versions`].
    Versions {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// Puts an old version back: [`Response::Edited`].
    Restore {
        #[schema(value_type = String)]
        folder: FolderId,
        path: String,
        version: String,
    },
    /// What the folder's last pull could not apply: [`Response::FailedItems`] (none without a
    /// daemon: they are kept in memory).
    FailedItems {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// The first names the folder needs: [`Response::Needed`].
    Needed {
        #[schema(value_type = String)]
        folder: FolderId,
    },
    /// The children of directory `dir` (`""`: the root) in the folder's global tree, from
    /// every device's index: a page of at most `limit` (default 200, at most 1000) after the
    /// child named `after`: [`Response::Browse`].
    Browse {
        #[schema(value_type = String)]
        folder: FolderId,
        #[serde(default)]
        dir: String,
        after: Option<String>,
        limit: Option<u32>,
    },
    /// Selective sync: takes `paths` (folder-relative, with what is below them) again:
    /// [`Response::Edited`].
    Select {
        #[schema(value_type = String)]
        folder: FolderId,
        paths: Vec<String>,
    },
    /// Selective sync: leaves `paths` out. A local copy is kept (the answer says so), or with
    /// `delete_local` moved to the trash can (`.stversions`): [`Response::Edited`].
    Deselect {
        #[schema(value_type = String)]
        folder: FolderId,
        paths: Vec<String>,
        #[serde(default)]
        delete_local: bool,
    },
    /// Devices asking to connect and folder offers: [`Response::Pending`].
    Pending,
    /// Adds a pending device (its announced name unless `name` is given): [`Response::Edited`].
    AcceptDevice {
        #[schema(value_type = String)]
        device: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    },
    /// Accepts `device`'s offer of `folder`: adds it at `path` (created if `create`), or shares
    /// it if it is configured here already: [`Response::Edited`].
    AcceptFolder {
        folder: String,
        #[schema(value_type = String)]
        device: DeviceId,
        #[schema(value_type = Option<String>)]
        path: Option<PathBuf>,
        #[serde(default)]
        create: bool,
    },
    /// Forgets a pending device: [`Response::Edited`].
    DismissDevice {
        #[schema(value_type = String)]
        device: DeviceId,
    },
    /// Forgets a folder offer, from `device` or from every device: [`Response::Edited`].
    DismissFolder {
        #[schema(value_type = String)]
        folder: FolderId,
        #[schema(value_type = Option<String>)]
        device: Option<DeviceId>,
    },
    /// Devices discovery heard of, and what this device announces: [`Response::Discovery`].
    /// Daemon only.
    Discovery,
    /// The daemon's recent log lines after line `since`: [`Response::Log`]. Daemon only.
    Log {
        #[serde(default)]
        since: u64,
    },
    /// Makes an invitation link offering `folders` (each configured), valid for `expires_s`
    /// seconds (default a day) and `uses` joins (default one): [`Response::Invite`]. Daemon
    /// only: the link holds the addresses it listens on.
    Invite {
        #[serde(default)]
        #[schema(value_type = Vec<String>)]
        folders: Vec<FolderId>,
        expires_s: Option<u64>,
        uses: Option<u32>,
    },
    /// Joins the device that made invitation `link`: proves its secret to it, then adds it and
    /// the folders it shared, each at `paths[folder ID]` or in a directory named after its
    /// label under the home folder: [`Response::Edited`].
    Join {
        link: String,
        /// Folder ID → where to keep it (absolute).
        #[serde(default)]
        #[schema(value_type = std::collections::BTreeMap<String, String>)]
        paths: std::collections::BTreeMap<String, PathBuf>,
    },
}

impl Request {
    /// Whether answering it only reads the home. A front-end may answer these from the files
    /// without the home lock (the CLI does, so `peerfold status` never stops a daemon from
    /// starting); anything else changes the configuration, the index or the folders.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Self::System
                | Self::Status
                | Self::Devices
                | Self::Folders
                | Self::Ignores { .. }
                | Self::Conflicts { .. }
                | Self::Versions { .. }
                | Self::FailedItems { .. }
                | Self::Needed { .. }
                | Self::Browse { .. }
                | Self::Pending
                | Self::Discovery
                | Self::Log { .. }
        )
    }
}

/// The answer to a [`Request`]. Serialized as `{"type": "kebab-case-name", "body": ...}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "body", rename_all = "kebab-case")]
pub enum Response {
    System(SystemInfo),
    Status(Box<Status>),
    Devices(Vec<DeviceView>),
    Folders(Vec<FolderView>),
    Edited(Edited),
    Scanned(Box<ScanSummary>),
    Ignores(IgnoreLines),
    Conflicts(Vec<FolderConflict>),
    Versions(Vec<VersionedFile>),
    FailedItems(Vec<FailedItem>),
    Needed(Vec<NeededItem>),
    Browse(BrowsePage),
    Pending(Pending),
    Discovery(Discovery),
    Log(Vec<LogLine>),
    Invite(InviteLink),
}

impl Response {
    /// The variant's name, for saying which answer came when another was expected.
    fn kind(&self) -> &'static str {
        match self {
            Self::System(_) => "system",
            Self::Status(_) => "status",
            Self::Devices(_) => "devices",
            Self::Folders(_) => "folders",
            Self::Edited(_) => "edited",
            Self::Scanned(_) => "scanned",
            Self::Ignores(_) => "ignores",
            Self::Conflicts(_) => "conflicts",
            Self::Versions(_) => "versions",
            Self::FailedItems(_) => "failed-items",
            Self::Needed(_) => "needed",
            Self::Browse(_) => "browse",
            Self::Pending(_) => "pending",
            Self::Discovery(_) => "discovery",
            Self::Log(_) => "log",
            Self::Invite(_) => "invite",
        }
    }
}

/// A [`Response`]'s payload, taken out of it: how a caller that knows which answer its request
/// gets reads it typed (see [`call`]).
pub trait FromResponse: Sized {
    fn from_response(response: Response) -> Result<Self, ServiceError>;
}

macro_rules! from_response {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl FromResponse for $ty {
            fn from_response(response: Response) -> Result<Self, ServiceError> {
                match response {
                    Response::$variant(v) => Ok(v),
                    other => Err(ServiceError::Failed(format!(
                        "the answer is {} where {} was expected",
                        other.kind(),
                        stringify!($variant)
                    ))),
                }
            }
        }
    )*};
}

from_response!(
    System(SystemInfo),
    Status(Box<Status>),
    Devices(Vec<DeviceView>),
    Folders(Vec<FolderView>),
    Edited(Edited),
    Scanned(Box<ScanSummary>),
    Ignores(IgnoreLines),
    Conflicts(Vec<FolderConflict>),
    Versions(Vec<VersionedFile>),
    FailedItems(Vec<FailedItem>),
    Needed(Vec<NeededItem>),
    Browse(BrowsePage),
    Pending(Pending),
    Discovery(Discovery),
    Log(Vec<LogLine>),
    Invite(InviteLink),
);

/// Why a request was not carried out. Each is one sentence for the user; nothing changed.
/// Serialized as `{"kind": "...", "error": "the sentence"}`, so the control socket carries it
/// whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "error", rename_all = "kebab-case")]
pub enum ServiceError {
    /// The request is wrong: a malformed value, a change the configuration refuses, a bad
    /// pattern or path.
    #[error("{0}")]
    BadRequest(String),
    /// The folder, device, offer or file it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Only a running daemon can do it.
    #[error("{0}")]
    NeedsDaemon(String),
    /// It could not be done (the index, the disk, the engine stopping).
    #[error("{0}")]
    Failed(String),
}

impl ServiceError {
    /// The HTTP status code the API answers it with: the one mapping.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::NeedsDaemon(_) => 409,
            Self::Failed(_) => 500,
        }
    }

    /// The CLI's exit code for it: the one mapping. Every failure is 1 today (`check`, which
    /// is not a service call, uses 2 for "could not tell").
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadRequest(_) | Self::NotFound(_) | Self::NeedsDaemon(_) | Self::Failed(_) => 1,
        }
    }

    /// An error with no better kind, as one sentence with its causes.
    pub(crate) fn failed(e: &(dyn std::error::Error + 'static)) -> Self {
        Self::Failed(error_chain(e))
    }

    fn unknown_folder(id: &impl std::fmt::Display) -> Self {
        Self::NotFound(format!("there is no folder with ID \"{id}\""))
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Change(c) => Self::BadRequest(error_chain(&c)),
            EngineError::UnknownFolder(id) => Self::unknown_folder(&id),
            EngineError::Paused(id) => {
                Self::BadRequest(format!("folder \"{id}\" is paused; resume it first"))
            }
            e @ (EngineError::NoDeletesHeld(_) | EngineError::NotReceiveOnly(_)) => {
                Self::BadRequest(e.to_string())
            }
            EngineError::Files(e) => e.into(),
            e => Self::Failed(format!("the engine could not do it: {}", error_chain(&e))),
        }
    }
}

impl From<FilesError> for ServiceError {
    fn from(e: FilesError) -> Self {
        match e {
            e @ (FilesError::BadPattern { .. } | FilesError::BadPath(_)) => Self::BadRequest(e.to_string()),
            FilesError::NotFound(what) => Self::NotFound(what),
            e => Self::failed(&e),
        }
    }
}

impl From<crate::db::DbError> for ServiceError {
    fn from(e: crate::db::DbError) -> Self {
        Self::failed(&e)
    }
}

/// Answers every [`Request`].
pub trait Service: Send + Sync {
    fn handle(&self, request: Request) -> impl Future<Output = Result<Response, ServiceError>> + Send;
}

/// Asks `service` and reads the answer as the type `request` is answered with.
pub async fn call<T: FromResponse>(service: &impl Service, request: Request) -> Result<T, ServiceError> {
    T::from_response(service.handle(request).await?)
}

/// This device, as `GET /api/system` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// This device's ID.
    pub id: String,
    pub name: String,
    pub version: String,
    /// Seconds the engine has run (0 without a daemon).
    pub uptime_s: u64,
    /// The addresses it listens on for devices, as bound (empty without a daemon).
    #[serde(default)]
    pub listening: Vec<String>,
    /// Why QUIC is unavailable on a listen address, one sentence each; the daemon then listens
    /// on TCP alone there. Empty while QUIC works (and without a daemon).
    #[serde(default)]
    pub quic_unavailable: Vec<String>,
}

/// The answer to a change: whether something changed, and the line to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Edited {
    pub changed: bool,
    pub message: String,
}

impl Edited {
    /// Several edits' answers as one.
    fn merged(answers: Vec<Edited>) -> Edited {
        Edited {
            changed: answers.iter().any(|a| a.changed),
            message: answers.into_iter().map(|a| a.message).collect::<Vec<_>>().join(" "),
        }
    }
}

/// A folder's `.stignore`, line by line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IgnoreLines {
    pub lines: Vec<String>,
}

/// A conflict copy and the folder it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FolderConflict {
    #[schema(value_type = String)]
    pub folder: FolderId,
    #[serde(flatten)]
    pub conflict: ConflictView,
}

/// A name the folder needs from other devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NeededItem {
    pub path: String,
    /// Bytes to fetch (0 for a deletion).
    pub size: u64,
    /// The file is deleted elsewhere: this device deletes its copy.
    pub deleted: bool,
}

impl From<crate::db::NeededItem> for NeededItem {
    fn from(i: crate::db::NeededItem) -> Self {
        Self { path: i.path, size: i.size, deleted: i.deleted }
    }
}

/// What kind of entry a browsed child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
}

/// One child of a browsed directory, as the folder's global state has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrowseItem {
    /// Its name in the directory.
    pub name: String,
    /// Folder-relative.
    pub path: String,
    pub kind: EntryKind,
    /// A file's size; a directory's is the total of the files below it.
    pub size: u64,
    /// It is on this device's disk.
    pub local: bool,
    /// This device takes it (its `.stignore` does not leave it out).
    pub selected: bool,
    /// Some of what is below it is chosen otherwise (selective sync).
    pub partial: bool,
    /// Connected devices that have its current version.
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<DeviceId>,
}

/// A page of a directory's children, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrowsePage {
    /// The directory browsed (`""`: the folder root).
    pub dir: String,
    pub items: Vec<BrowseItem>,
    /// The name to ask for the next page after; `null` when this is the last page.
    pub next: Option<String>,
}

/// A device that tried to connect without being configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingDevice {
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// The name it announced.
    pub name: String,
    /// Where it connected from.
    pub address: String,
    /// Unix seconds.
    pub seen_at: i64,
}

/// A folder a configured device offered that is not shared with it here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingFolder {
    #[schema(value_type = String)]
    pub device: DeviceId,
    pub folder: String,
    pub label: String,
    /// Unix seconds.
    pub seen_at: i64,
}

/// Devices and folder offers waiting for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pending {
    pub devices: Vec<PendingDevice>,
    pub folders: Vec<PendingFolder>,
}

/// A configured folder as front-ends list it, with the options it inherits filled in.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FolderView {
    pub id: String,
    pub label: String,
    pub path: String,
    #[serde(rename = "type")]
    pub folder_type: FolderType,
    pub devices: Vec<String>,
    pub versioning: Versioning,
    pub paused: bool,
    /// Whether changes are watched for as they happen, its own setting or the default.
    pub watch: bool,
    /// Seconds between full rescans (0: none), its own or the default.
    pub rescan_interval_s: u64,
}

/// Every configured folder as front-ends list it.
pub fn folder_views(config: &Config) -> Vec<FolderView> {
    config
        .folders
        .iter()
        .map(|f| FolderView {
            id: f.id.to_string(),
            label: f.label.clone(),
            path: f.path.to_string_lossy().into_owned(),
            folder_type: f.folder_type,
            devices: f.devices.iter().map(ToString::to_string).collect(),
            versioning: f.versioning,
            paused: f.paused,
            watch: f.watch(&config.options),
            rescan_interval_s: f.rescan_interval_s(&config.options),
        })
        .collect()
}

/// What discovery knows: every device heard of lately, and what this device announces.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Discovery {
    /// The addresses this device announces (empty with discovery off).
    pub announced: Vec<String>,
    pub devices: Vec<DiscoveredDevice>,
}

/// A device discovery heard of.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DiscoveredDevice {
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// `tcp://…`/`quic://…` addresses, best first.
    pub addresses: Vec<String>,
    /// `lan` or `dht`.
    pub source: crate::discovery::Source,
    /// Seconds since it was last heard of.
    pub age_s: u64,
    /// Whether it is a configured device (the others are candidates to add).
    pub known: bool,
}

/// An invitation just made.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteLink {
    /// `peerfold://invite/…`: give it to the device that joins (`peerfold join LINK`).
    pub link: String,
    /// The link as a QR code, SVG.
    pub qr_svg: String,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
    pub uses: u32,
    /// The addresses the link gives for this device.
    pub addresses: Vec<String>,
    pub folders: Vec<crate::invite::OfferedFolder>,
}

/// A day, as `peerfold invite` defaults to.
const INVITE_EXPIRY_S: u64 = 24 * 3600;

/// Makes an invitation on a running engine (see [`Request::Invite`]).
async fn invite(
    engine: &crate::engine::Engine,
    me: DeviceId,
    folders: Vec<FolderId>,
    expires_s: Option<u64>,
    uses: Option<u32>,
) -> Result<InviteLink, ServiceError> {
    let config = engine.config();
    if folders.len() > crate::invite::MAX_FOLDERS {
        return Err(ServiceError::BadRequest(format!(
            "an invitation offers at most {} folders",
            crate::invite::MAX_FOLDERS
        )));
    }
    let mut offered = Vec::new();
    for id in &folders {
        let folder = folder_config(&config, id)?;
        offered.push(crate::invite::OfferedFolder { id: id.to_string(), label: folder.label.clone() });
    }
    let uses = uses.unwrap_or(1);
    if uses == 0 {
        return Err(ServiceError::BadRequest("an invitation needs at least one use".into()));
    }
    let expires_s = expires_s.unwrap_or(INVITE_EXPIRY_S);
    if expires_s == 0 {
        return Err(ServiceError::BadRequest("an invitation must be valid for some time".into()));
    }
    if engine.listening().is_empty() {
        return Err(ServiceError::BadRequest(
            "this device listens on no address, so nobody could reach it to join".into(),
        ));
    }
    let (link, expires_at) = crate::invite::create(
        engine.index(),
        me,
        &config.name,
        &engine.listening(),
        offered,
        expires_s,
        uses,
    )
    .await
    .map_err(|e| ServiceError::failed(&e))?;
    let text = link.encode();
    Ok(InviteLink {
        qr_svg: crate::identity::qr_text_svg(&text),
        link: text,
        expires_at,
        uses,
        addresses: link.addresses,
        folders: link.folders,
    })
}

impl From<crate::invite::InviteError> for ServiceError {
    fn from(e: crate::invite::InviteError) -> Self {
        use crate::invite::InviteError as E;
        match e {
            e @ (E::BadLink(_) | E::Refused(_)) => Self::BadRequest(e.to_string()),
            e => Self::failed(&e),
        }
    }
}

/// Joins invitation `link` over `net` (this device's identity): the exchange with the inviter,
/// then the inviter and its folders added here. Nothing is added if the inviter refuses.
async fn join(
    b: &impl Backend,
    net: &crate::net::Net,
    link: String,
    paths: std::collections::BTreeMap<String, PathBuf>,
) -> Result<Edited, ServiceError> {
    let link = crate::invite::Link::parse(&link)?;
    for path in paths.values() {
        if !path.is_absolute() {
            return Err(ServiceError::BadRequest(format!("folder path {} is not absolute", path.display())));
        }
    }
    let config = b.config()?;
    let joined = crate::invite::join_over(net, &link, &config.name).await?;
    let inviter = joined.inviter;
    let mut answers =
        vec![Edited { changed: true, message: format!("Joined device {inviter} \"{}\".", joined.name) }];
    if config.device(&inviter).is_none() {
        let name = Some(joined.name.clone()).filter(|n| !n.is_empty());
        answers.push(
            b.edit(Edit::AddDevice { id: inviter, name, addresses: Some(joined.addresses.clone()) }).await?,
        );
    }
    let home = || {
        directories::BaseDirs::new().map(|d| d.home_dir().to_owned()).ok_or_else(|| {
            ServiceError::BadRequest("cannot tell the home folder: give a path for each folder".into())
        })
    };
    for folder in &joined.folders {
        let id: FolderId = folder.id.parse().map_err(ServiceError::BadRequest)?;
        // The ID comes from the inviter: sharing a folder of ours just because it has the same
        // ID would hand our data to whoever made the link. The user shares it if it is the same.
        if b.config()?.folder(&id).is_some() {
            answers.push(Edited {
                changed: false,
                message: format!(
                    "Folder \"{id}\" is already configured here, so it was not shared with {inviter}: \
                     share it yourself if it is the same folder."
                ),
            });
            continue;
        }
        let path = match paths.get(&folder.id) {
            Some(p) => p.clone(),
            None => crate::invite::free_folder_path(&home()?, folder).ok_or_else(|| {
                ServiceError::BadRequest(format!("no free directory name for folder \"{id}\": give its path"))
            })?,
        };
        let label = folder.label.clone();
        answers.push(add_folder(b, id, path, label, FolderType::default(), vec![inviter], None, true).await?);
    }
    Ok(Edited::merged(answers))
}

/// What a backend provides: the configuration, the index, how a change is applied (the
/// engine's way, or saved for the next start), and the operations that differ between a
/// running engine and a home on disk. Everything else is written once, in [`handle`].
pub(crate) trait Backend: Sync {
    fn config(&self) -> Result<Arc<Config>, ServiceError>;
    fn index(&self) -> &Index;
    fn edit(&self, edit: Edit) -> impl Future<Output = Result<Edited, ServiceError>> + Send;
    /// This device.
    fn me(&self) -> DeviceId;
    /// The running engine, if any (for what only it knows: connections, rates, progress).
    fn engine(&self) -> Option<&crate::engine::Engine>;
    /// Seconds since the engine started; 0 without one.
    fn uptime_s(&self) -> u64;
    fn scan(&self, folder: &FolderConfig) -> impl Future<Output = Result<ScanSummary, ServiceError>> + Send;
    fn confirm_deletes(
        &self,
        folder: &FolderConfig,
    ) -> impl Future<Output = Result<Edited, ServiceError>> + Send;
    fn revert(&self, folder: &FolderConfig) -> impl Future<Output = Result<Edited, ServiceError>> + Send;
    fn ignores(
        &self,
        folder: &FolderConfig,
    ) -> impl Future<Output = Result<Vec<String>, ServiceError>> + Send;
    fn set_ignores(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
    ) -> impl Future<Output = Result<Vec<String>, ServiceError>> + Send;
    /// Writes a selective-sync change's `.stignore` lines and moves the local copies of
    /// `trash` to the trash can.
    fn set_selection(
        &self,
        folder: &FolderConfig,
        lines: Vec<String>,
        trash: Vec<String>,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
    fn conflicts(
        &self,
        config: &Config,
        folder: &FolderConfig,
    ) -> impl Future<Output = Result<Vec<ConflictView>, ServiceError>> + Send;
    fn resolve_conflict(
        &self,
        folder: &FolderConfig,
        conflict: String,
        keep: Keep,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
    fn versions(
        &self,
        folder: &FolderConfig,
    ) -> impl Future<Output = Result<Vec<VersionedFile>, ServiceError>> + Send;
    fn restore(
        &self,
        folder: &FolderConfig,
        path: String,
        version: String,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send;
    fn failed_items(&self, folder: &FolderConfig) -> Result<Vec<FailedItem>, ServiceError>;
    fn needed(
        &self,
        folder: &FolderConfig,
    ) -> impl Future<Output = Result<Vec<NeededItem>, ServiceError>> + Send;
    fn discovery(&self) -> Result<Discovery, ServiceError>;
    fn log(&self, since: u64) -> Result<Vec<LogLine>, ServiceError>;
    fn join(
        &self,
        link: String,
        paths: std::collections::BTreeMap<String, PathBuf>,
    ) -> impl Future<Output = Result<Edited, ServiceError>> + Send;
    fn invite(
        &self,
        folders: Vec<FolderId>,
        expires_s: Option<u64>,
        uses: Option<u32>,
    ) -> impl Future<Output = Result<InviteLink, ServiceError>> + Send;
}

/// Answers `request` over backend `b`: the one dispatch of every request, for both backends.
/// A request that names a folder is refused here, once, when the folder is not configured.
async fn handle(b: &impl Backend, request: Request) -> Result<Response, ServiceError> {
    let configured =
        |id: &FolderId| -> Result<FolderConfig, ServiceError> { folder_config(&*b.config()?, id) };
    Ok(match request {
        Request::System => Response::System(SystemInfo {
            id: b.me().to_string(),
            name: b.config()?.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: b.uptime_s(),
            listening: b
                .engine()
                .map(|e| e.listening().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            quic_unavailable: b.engine().map(crate::engine::Engine::quic_unavailable).unwrap_or_default(),
        }),
        Request::Status => {
            let status = crate::status::status(b.me(), &*b.config()?, b.index(), b.engine()).await?;
            Response::Status(Box::new(status))
        }
        Request::Devices => Response::Devices(crate::status::device_views(&*b.config()?)),
        Request::Folders => Response::Folders(folder_views(&*b.config()?)),
        Request::Edit { edit } => Response::Edited(b.edit(edit).await?),
        Request::AddDevice { device, name, addresses, max_send_kibps, max_recv_kibps } => {
            Response::Edited(add_device(b, device, name, addresses, (max_send_kibps, max_recv_kibps)).await?)
        }
        Request::UpdateDevice { device, name, addresses, paused, max_send_kibps, max_recv_kibps } => {
            let limits = (max_send_kibps, max_recv_kibps);
            Response::Edited(update_device(b, device, name, addresses, paused, limits).await?)
        }
        Request::RemoveDevice { device } => Response::Edited(remove_device(b, device).await?),
        Request::AddFolder { folder, path, label, folder_type, devices, versioning, create } => {
            Response::Edited(
                add_folder(b, folder, path, label, folder_type, devices, versioning, create).await?,
            )
        }
        Request::UpdateFolder { folder, label, devices, versioning, paused, rescan_interval_s, watch } => {
            Response::Edited(
                update_folder(b, folder, label, devices, versioning, paused, rescan_interval_s, watch)
                    .await?,
            )
        }
        Request::RemoveFolder { folder } => Response::Edited(remove_folder(b, folder).await?),
        Request::Scan { folder: id } => Response::Scanned(Box::new(b.scan(&configured(&id)?).await?)),
        Request::ConfirmDeletes { folder: id } => {
            Response::Edited(b.confirm_deletes(&configured(&id)?).await?)
        }
        Request::Revert { folder: id } => Response::Edited(b.revert(&configured(&id)?).await?),
        Request::Ignores { folder: id } => {
            Response::Ignores(IgnoreLines { lines: b.ignores(&configured(&id)?).await? })
        }
        Request::SetIgnores { folder: id, lines } => {
            Response::Ignores(IgnoreLines { lines: b.set_ignores(&configured(&id)?, lines).await? })
        }
        Request::Conflicts { folder: id } => {
            let config = b.config()?;
            let folders = match id {
                Some(id) => vec![folder_config(&config, &id)?],
                None => config.folders.clone(),
            };
            let mut all = Vec::new();
            for f in folders {
                let list = b.conflicts(&config, &f).await?;
                all.extend(
                    list.into_iter().map(|conflict| FolderConflict { folder: f.id.clone(), conflict }),
                );
            }
            Response::Conflicts(all)
        }
        Request::ResolveConflict { folder: id, conflict, keep } => {
            b.resolve_conflict(&configured(&id)?, conflict.clone(), keep).await?;
            Response::Edited(resolved(&conflict, keep))
        }
        Request::Versions { folder: id } => Response::Versions(b.versions(&configured(&id)?).await?),
        Request::Restore { folder: id, path, version } => {
            b.restore(&configured(&id)?, path.clone(), version.clone()).await?;
            Response::Edited(restored(&path, &version))
        }
        Request::FailedItems { folder: id } => Response::FailedItems(b.failed_items(&configured(&id)?)?),
        Request::Needed { folder: id } => Response::Needed(b.needed(&configured(&id)?).await?),
        Request::Browse { folder: id, dir, after, limit } => {
            Response::Browse(browse(b, &configured(&id)?, dir, after, limit).await?)
        }
        Request::Select { folder: id, paths } => {
            Response::Edited(change_selection(b, &configured(&id)?, paths, None).await?)
        }
        Request::Deselect { folder: id, paths, delete_local } => {
            Response::Edited(change_selection(b, &configured(&id)?, paths, Some(delete_local)).await?)
        }
        Request::Pending => Response::Pending(pending(b).await?),
        Request::AcceptDevice { device, name, addresses } => {
            Response::Edited(accept_device(b, device, name, addresses).await?)
        }
        Request::AcceptFolder { folder, device, path, create } => {
            Response::Edited(accept_folder(b, folder, device, path, create).await?)
        }
        Request::DismissDevice { device } => Response::Edited(dismiss_device(b, device).await?),
        Request::DismissFolder { folder, device } => {
            Response::Edited(dismiss_folder(b, folder, device).await?)
        }
        Request::Discovery => Response::Discovery(b.discovery()?),
        Request::Log { since } => Response::Log(b.log(since)?),
        Request::Join { link, paths } => Response::Edited(b.join(link, paths).await?),
        Request::Invite { folders, expires_s, uses } => {
            Response::Invite(b.invite(folders, expires_s, uses).await?)
        }
    })
}

/// Children listed per browse page unless asked otherwise.
const BROWSE_PAGE: u32 = 200;

async fn browse(
    b: &impl Backend,
    folder: &FolderConfig,
    dir: String,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<BrowsePage, ServiceError> {
    let dir = dir.trim_matches('/').to_owned();
    if !dir.is_empty() && !crate::bep::is_canonical_name(&dir) {
        return Err(ServiceError::BadRequest(format!("{dir:?} is not a directory inside the folder")));
    }
    if after.as_deref().is_some_and(|a| a.contains('/')) {
        return Err(ServiceError::BadRequest(String::from(
            "`after` is a name in the directory, without '/'",
        )));
    }
    let idx = b.index().folder(folder.id.as_str()).await?.unwrap_or(crate::db::FolderIdx::NONE);
    let after = after.map(|a| if dir.is_empty() { a } else { format!("{dir}/{a}") });
    let page = b.index().browse(idx, &dir, after.as_deref(), limit.unwrap_or(BROWSE_PAGE)).await?;
    let lines = b.ignores(folder).await?;
    let root = folder.path.clone();
    let ignores = tokio::task::spawn_blocking(move || crate::ignore::Ignores::load(&root))
        .await
        .map_err(|e| ServiceError::Failed(format!("reading the ignore patterns did not finish: {e}")))?
        .map_err(|e| ServiceError::failed(&e))?;
    let selection = crate::selection::Split::of(&lines)
        .map(|s| crate::selection::Selection::parse(&s.block))
        .unwrap_or_default();
    let connected: std::collections::HashSet<DeviceId> =
        b.engine().map(|e| e.connections().into_iter().map(|c| c.device).collect()).unwrap_or_default();
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    // What is on this disk (an ignored file kept here is, though its entry is only "ignored"):
    // one stat per listed child, on a blocking thread.
    let entries: Vec<crate::db::BrowseEntry> = page.entries.into_iter().filter(|e| !e.deleted).collect();
    let (root, names) = (folder.path.clone(), entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>());
    let on_disk: Vec<bool> = tokio::task::spawn_blocking(move || {
        names.iter().map(|n| std::fs::symlink_metadata(root.join(n)).is_ok()).collect()
    })
    .await
    .map_err(|e| ServiceError::Failed(format!("looking at the folder did not finish: {e}")))?;
    let items = entries
        .into_iter()
        .zip(on_disk)
        .map(|(e, here)| BrowseItem {
            name: base(&e.name),
            kind: match e.file_type {
                crate::bep::FileType::File => EntryKind::File,
                crate::bep::FileType::Directory => EntryKind::Directory,
                crate::bep::FileType::Symlink => EntryKind::Symlink,
            },
            size: e.size,
            local: here,
            selected: !ignores.is_ignored(&e.name),
            partial: selection
                .rules()
                .any(|(p, _)| p.strip_prefix(e.name.as_str()).is_some_and(|r| r.starts_with('/'))),
            devices: e.holders.into_iter().filter(|d| connected.contains(d)).collect(),
            path: e.name,
        })
        .collect();
    Ok(BrowsePage { dir, items, next: page.next.map(|n| base(&n)) })
}

/// Selects `paths` (`deselect` `None`) or deselects them (`Some(delete_local)`): the folder's
/// selective-sync block in `.stignore` rewritten, the user's own lines left as they are.
async fn change_selection(
    b: &impl Backend,
    folder: &FolderConfig,
    paths: Vec<String>,
    deselect: Option<bool>,
) -> Result<Edited, ServiceError> {
    use crate::selection::{Selection, Split};
    if paths.is_empty() {
        return Err(ServiceError::BadRequest(String::from("name at least one path in the folder")));
    }
    let bad = |e: crate::selection::SelectionError| ServiceError::BadRequest(e.to_string());
    let lines = b.ignores(folder).await?;
    let split = Split::of(&lines).map_err(bad)?;
    let mut selection = Selection::parse(&split.block);
    let before = selection.clone();
    let paths: Vec<String> = paths.iter().map(|p| p.trim_end_matches('/').to_owned()).collect();
    for p in &paths {
        match deselect {
            None => selection.select(p),
            Some(_) => selection.deselect(p),
        }
        .map_err(bad)?;
    }
    let idx = b.index().folder(folder.id.as_str()).await?.unwrap_or(crate::db::FolderIdx::NONE);
    let (mut notes, mut trash) = (Vec::new(), Vec::new());
    if let Some(delete_local) = deselect {
        for p in &paths {
            let on_disk = crate::folder_files::inside(&folder.path, p)
                .ok()
                .is_some_and(|abs| std::fs::symlink_metadata(abs).is_ok());
            if !on_disk {
                continue;
            }
            let (files, bytes) = b.index().local_subtree(idx, p).await?;
            let what = if files > 0 {
                let s = if files == 1 { "" } else { "s" };
                format!("{files} file{s}, {}", crate::units::binary_bytes(bytes))
            } else {
                String::from("what is on disk")
            };
            if delete_local {
                trash.push(p.clone());
                notes.push(format!(
                    "The local copy of \"{p}\" ({what}) was moved to the trash can (.stversions)."
                ));
            } else {
                notes.push(format!(
                    "The local copy of \"{p}\" ({what}) is kept; deselect it with --delete-local to move it to the trash can."
                ));
            }
        }
    }
    let changed = selection != before || !trash.is_empty();
    if changed {
        b.set_selection(folder, split.join(selection.lines()), trash).await?;
    }
    let list = paths.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let mut message = match (selection != before, deselect.is_some()) {
        (true, true) => format!("Deselected {list} in folder \"{}\": not synced here.", folder.id),
        (true, false) => format!("Selected {list} in folder \"{}\": synced here again.", folder.id),
        (false, true) => format!("{list} in folder \"{}\" was not synced here already.", folder.id),
        (false, false) => format!("{list} in folder \"{}\" was synced here already.", folder.id),
    };
    for n in notes {
        message.push(' ');
        message.push_str(&n);
    }
    Ok(Edited { changed, message })
}

fn folder_config(config: &Config, id: &FolderId) -> Result<FolderConfig, ServiceError> {
    config.folder(id).cloned().ok_or_else(|| ServiceError::unknown_folder(id))
}

fn known_device(config: &Config, id: &DeviceId) -> Result<(), ServiceError> {
    match config.device(id) {
        Some(_) => Ok(()),
        None => Err(ServiceError::NotFound(format!("device {id} is not a configured device"))),
    }
}

async fn pending(b: &impl Backend) -> Result<Pending, ServiceError> {
    let devices = b.index().pending_devices().await?;
    let folders = b.index().pending_folders().await?;
    Ok(Pending {
        devices: devices
            .into_iter()
            .map(|d| PendingDevice { device: d.device, name: d.name, address: d.address, seen_at: d.seen_at })
            .collect(),
        folders: folders
            .into_iter()
            .map(|f| PendingFolder { device: f.device, folder: f.folder, label: f.label, seen_at: f.seen_at })
            .collect(),
    })
}

/// A device's (send, receive) limits as a request gives them, each `None` to leave alone.
type Limits = (Option<u64>, Option<u64>);

async fn add_device(
    b: &impl Backend,
    id: DeviceId,
    name: Option<String>,
    addresses: Option<Vec<String>>,
    (max_send_kibps, max_recv_kibps): Limits,
) -> Result<Edited, ServiceError> {
    if b.config()?.device(&id).is_some() {
        return Err(ServiceError::BadRequest(format!(
            "device {id} is already configured; change it with PATCH"
        )));
    }
    let mut answers = vec![b.edit(Edit::AddDevice { id, name, addresses }).await?];
    if max_send_kibps.is_some_and(|n| n > 0) || max_recv_kibps.is_some_and(|n| n > 0) {
        answers.push(b.edit(Edit::DeviceLimits { id, max_send_kibps, max_recv_kibps }).await?);
    }
    Ok(Edited::merged(answers))
}

async fn update_device(
    b: &impl Backend,
    id: DeviceId,
    name: Option<String>,
    addresses: Option<Vec<String>>,
    paused: Option<bool>,
    (max_send_kibps, max_recv_kibps): Limits,
) -> Result<Edited, ServiceError> {
    known_device(&*b.config()?, &id)?;
    let mut answers = Vec::new();
    if name.is_some() || addresses.is_some() {
        answers.push(b.edit(Edit::UpdateDevice { id, name, addresses }).await?);
    }
    if let Some(paused) = paused {
        answers.push(b.edit(Edit::PauseDevice { id, paused }).await?);
    }
    if max_send_kibps.is_some() || max_recv_kibps.is_some() {
        answers.push(b.edit(Edit::DeviceLimits { id, max_send_kibps, max_recv_kibps }).await?);
    }
    if answers.is_empty() {
        return Err(ServiceError::BadRequest(
            "nothing to change: give name, addresses, paused, max_send_kibps or max_recv_kibps".into(),
        ));
    }
    Ok(Edited::merged(answers))
}

async fn remove_device(b: &impl Backend, id: DeviceId) -> Result<Edited, ServiceError> {
    known_device(&*b.config()?, &id)?;
    b.edit(Edit::RemoveDevice { id }).await
}

#[allow(clippy::too_many_arguments)] // One per field of the request.
async fn add_folder(
    b: &impl Backend,
    id: FolderId,
    path: PathBuf,
    label: String,
    folder_type: FolderType,
    devices: Vec<DeviceId>,
    versioning: Option<Versioning>,
    create: bool,
) -> Result<Edited, ServiceError> {
    let path = folder_root(path, create)?;
    let folder = FolderConfig {
        label,
        folder_type,
        devices,
        versioning: versioning.unwrap_or_default(),
        ..FolderConfig::new(id, path)
    };
    b.edit(Edit::AddFolder { folder: Box::new(folder) }).await
}

#[allow(clippy::too_many_arguments)] // One per field of the request.
async fn update_folder(
    b: &impl Backend,
    id: FolderId,
    label: Option<String>,
    devices: Option<Vec<DeviceId>>,
    versioning: Option<Versioning>,
    paused: Option<bool>,
    rescan_interval_s: Option<u64>,
    watch: Option<bool>,
) -> Result<Edited, ServiceError> {
    folder_config(&*b.config()?, &id)?;
    let mut answers = Vec::new();
    if label.is_some()
        || devices.is_some()
        || versioning.is_some()
        || rescan_interval_s.is_some()
        || watch.is_some()
    {
        let update =
            Edit::UpdateFolder { id: id.clone(), label, versioning, devices, rescan_interval_s, watch };
        answers.push(b.edit(update).await?);
    }
    if let Some(paused) = paused {
        answers.push(b.edit(Edit::PauseFolder { id, paused }).await?);
    }
    if answers.is_empty() {
        return Err(ServiceError::BadRequest(
            "nothing to change: give label, devices, versioning, rescan_interval_s, watch or paused".into(),
        ));
    }
    Ok(Edited::merged(answers))
}

async fn remove_folder(b: &impl Backend, id: FolderId) -> Result<Edited, ServiceError> {
    folder_config(&*b.config()?, &id)?;
    b.edit(Edit::RemoveFolder { id }).await
}

async fn accept_device(
    b: &impl Backend,
    device: DeviceId,
    name: Option<String>,
    addresses: Option<Vec<String>>,
) -> Result<Edited, ServiceError> {
    let pending = b.index().pending_devices().await?;
    let Some(request) = pending.iter().find(|d| d.device == device) else {
        return Err(ServiceError::NotFound(not_pending(&device)));
    };
    let name = name.or_else(|| Some(request.name.clone()).filter(|n| !n.is_empty()));
    // Adding it settles the pending entry (engine::settle_pending).
    b.edit(Edit::AddDevice { id: device, name, addresses }).await
}

async fn accept_folder(
    b: &impl Backend,
    folder: String,
    device: DeviceId,
    path: Option<PathBuf>,
    create: bool,
) -> Result<Edited, ServiceError> {
    let id: FolderId = folder
        .parse()
        .map_err(|e: String| ServiceError::BadRequest(format!("{folder:?} is not a folder ID: {e}")))?;
    let offers = b.index().pending_folders().await?;
    let Some(offer) = offers.iter().find(|o| o.folder == folder && o.device == device) else {
        return Err(ServiceError::NotFound(format!(
            "device {device} has no pending offer of folder \"{id}\""
        )));
    };
    // Adding or sharing settles the offer (engine::settle_pending).
    if b.config()?.folder(&id).is_some() {
        return b.edit(Edit::Share { folder: id, device }).await;
    }
    let Some(path) = path else {
        return Err(ServiceError::BadRequest(format!(
            "folder \"{id}\" is new here: give the path to keep it at"
        )));
    };
    let folder = FolderConfig {
        label: offer.label.clone(),
        devices: vec![device],
        ..FolderConfig::new(id, folder_root(path, create)?)
    };
    b.edit(Edit::AddFolder { folder: Box::new(folder) }).await
}

async fn dismiss_device(b: &impl Backend, device: DeviceId) -> Result<Edited, ServiceError> {
    if !b.index().remove_pending_device(&device).await? {
        return Err(ServiceError::NotFound(not_pending(&device)));
    }
    Ok(Edited {
        changed: true,
        message: format!("Dismissed device {device}; it is asked about again if it connects again."),
    })
}

/// Checks first, so that an offer that is not there is a "not found" and nothing is written.
async fn dismiss_folder(
    b: &impl Backend,
    id: FolderId,
    device: Option<DeviceId>,
) -> Result<Edited, ServiceError> {
    let offered =
        |o: &crate::db::PendingFolder| o.folder == id.as_str() && device.is_none_or(|d| o.device == d);
    if !b.index().pending_folders().await?.iter().any(offered) {
        return Err(ServiceError::NotFound(format!("no offer of folder \"{id}\" is pending")));
    }
    b.index().remove_pending_folder(id.as_str(), device.as_ref()).await?;
    Ok(Edited { changed: true, message: format!("Dismissed the offer of folder \"{id}\".") })
}

fn not_pending(device: &DeviceId) -> String {
    format!("device {device} is not pending")
}

/// What resolving a conflict says it did.
fn resolved(conflict: &str, keep: Keep) -> Edited {
    let message = match keep {
        Keep::Current => format!("Kept the current file; removed the conflict copy {conflict:?}."),
        Keep::Copy => format!("The conflict copy {conflict:?} replaced its file."),
    };
    Edited { changed: true, message }
}

/// What restoring a version says it did.
fn restored(path: &str, version: &str) -> Edited {
    Edited { changed: true, message: format!("Restored {path:?} as it was at version {version}.") }
}

/// `path` as a folder root: an existing directory, or one to create if `create`. A relative
/// path is left for the configuration to refuse, with its own sentence.
fn folder_root(path: PathBuf, create: bool) -> Result<PathBuf, ServiceError> {
    if !path.is_absolute() {
        return Ok(path);
    }
    if !create && !path.is_dir() {
        let what = if path.exists() { "is not a directory" } else { "does not exist" };
        return Err(ServiceError::BadRequest(format!(
            "folder path {} {what} (send \"create\": true to create it)",
            path.display()
        )));
    }
    crate::config::resolve_folder_path(&path)
        .map_err(|e| ServiceError::BadRequest(format!("cannot resolve folder path {}: {e}", path.display())))
}

//! Configuration: this device's name, its folders and devices, and options — a TOML file in the
//! home that a person can write by hand before the first start.
//!
//! It owns the file's format, its validation (IDs are parsed once here, so the rest of the
//! engine sees only typed values) and saving it atomically: a new file is written beside the
//! old one, synced and renamed over it, so a crash leaves either the old or the new file.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::DeviceId;
use crate::net::DeviceAddress;
use crate::schedule::{PauseAll, ScheduleRule};

/// Errors loading or saving the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration is not valid: {0}")]
    Invalid(String),
    #[error("cannot save the configuration")]
    Write(#[source] crate::fsutil::FsError),
}

/// Why a change to the configuration was refused. The configuration is then as it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("{0} is this device's own ID; add the devices it should sync with")]
    OwnDevice(DeviceId),
    #[error("device {0} is not a configured device")]
    UnknownDevice(DeviceId),
    #[error("there is no folder with ID \"{0}\"")]
    UnknownFolder(FolderId),
    #[error("folder ID \"{id}\" is already used by the folder at {}", path.display())]
    DuplicateFolder { id: FolderId, path: PathBuf },
    #[error("{}", overlap_message(path, *overlap, other, other_path))]
    Overlap { path: PathBuf, overlap: Overlap, other: FolderId, other_path: PathBuf },
    #[error("folder path {} is not absolute", .0.display())]
    RelativePath(PathBuf),
    #[error("address {address:?} {reason}")]
    Address { address: String, reason: String },
    #[error("a device needs at least one address (dynamic: find it by discovery)")]
    NoAddresses,
    #[error("the device name must not be empty")]
    EmptyName,
    /// A check of [`Config::validate`] that the change's own checks did not make first.
    #[error("the changed configuration would not be valid: {0}")]
    Invalid(String),
}

/// How a new folder's path meets an existing folder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// The same directory.
    Same,
    /// Inside the other folder.
    Inside,
    /// Contains the other folder.
    Contains,
}

fn overlap_message(path: &Path, overlap: Overlap, other: &FolderId, other_path: &Path) -> String {
    let (path, other_path) = (path.display(), other_path.display());
    match overlap {
        Overlap::Same => format!("{path} is already the path of folder \"{other}\""),
        Overlap::Inside => format!("{path} is inside folder \"{other}\" at {other_path}"),
        Overlap::Contains => format!("{path} contains folder \"{other}\" at {other_path}"),
    }
}

/// What a change to the configuration did: its `Display` is the one line a front-end shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    DeviceAdded {
        id: DeviceId,
        name: String,
        addresses: Vec<String>,
    },
    /// A configured device got a new name or new addresses (`Some` for each that changed).
    DeviceUpdated {
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    },
    /// The device was already configured as asked.
    DeviceUnchanged {
        id: DeviceId,
    },
    /// The device is gone, and so are its shares of the `unshared` folders.
    DeviceRemoved {
        id: DeviceId,
        unshared: Vec<FolderId>,
    },
    FolderAdded {
        id: FolderId,
        path: PathBuf,
        folder_type: FolderType,
        versioning: Versioning,
        /// The devices it is shared with.
        devices: Vec<DeviceId>,
    },
    /// The folder is no longer configured; its files are untouched.
    FolderRemoved {
        id: FolderId,
        path: PathBuf,
    },
    Shared {
        folder: FolderId,
        device: DeviceId,
    },
    AlreadyShared {
        folder: FolderId,
        device: DeviceId,
    },
    Unshared {
        folder: FolderId,
        device: DeviceId,
    },
    NotShared {
        folder: FolderId,
        device: DeviceId,
    },
    FolderPaused {
        id: FolderId,
        paused: bool,
    },
    DevicePaused {
        id: DeviceId,
        paused: bool,
    },
    /// A folder's settings changed; `what` names the ones that did.
    FolderUpdated {
        id: FolderId,
        what: Vec<&'static str>,
    },
    /// The folder already was configured as asked.
    FolderUnchanged {
        id: FolderId,
    },
    /// The folder or device already was paused or running as asked.
    PauseUnchanged {
        what: String,
        paused: bool,
    },
    /// This device's name, as peers are told it.
    Renamed {
        name: String,
    },
    NameUnchanged {
        name: String,
    },
    /// Whether the device introduces others.
    Introducer {
        id: DeviceId,
        introducer: bool,
        /// False when it already was so.
        changed: bool,
    },
    /// Whether the device's folder offers are accepted without asking.
    AutoAccept {
        id: DeviceId,
        auto_accept: bool,
        /// False when it already was so.
        changed: bool,
    },
    /// A device's limits, in KiB/s (0 = unlimited).
    DeviceLimits {
        id: DeviceId,
        max_send_kibps: u64,
        max_recv_kibps: u64,
        changed: bool,
    },
    /// The global limits, as they now are.
    Limits {
        max_send_kibps: u64,
        max_recv_kibps: u64,
        limit_lan: bool,
        schedule_rules: usize,
        pause_on_metered: bool,
        pause_on_battery: bool,
        changed: bool,
    },
    /// Every device paused (until a Unix time, or until resumed), or resumed (`None`).
    PausedAll {
        pause: Option<PauseAll>,
        changed: bool,
    },
}

/// `512 KiB/s`, or `unlimited` for 0.
pub fn kibps(n: u64) -> String {
    if n == 0 { "unlimited".to_owned() } else { format!("{n} KiB/s") }
}

/// A change to the configuration as a front-end asks for it, for sending to the daemon: each
/// is one of the [`Config`] methods below, applied by [`Config::edit`].
// IDs are strings in the API document (`value_type`): their own types parse and check them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum Edit {
    AddDevice {
        #[schema(value_type = String)]
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    },
    RemoveDevice {
        #[schema(value_type = String)]
        id: DeviceId,
    },
    AddFolder {
        folder: Box<FolderConfig>,
    },
    RemoveFolder {
        #[schema(value_type = String)]
        id: FolderId,
    },
    Share {
        #[schema(value_type = String)]
        folder: FolderId,
        #[schema(value_type = String)]
        device: DeviceId,
    },
    Unshare {
        #[schema(value_type = String)]
        folder: FolderId,
        #[schema(value_type = String)]
        device: DeviceId,
    },
    PauseFolder {
        #[schema(value_type = String)]
        id: FolderId,
        paused: bool,
    },
    PauseDevice {
        #[schema(value_type = String)]
        id: DeviceId,
        paused: bool,
    },
    /// Like `AddDevice` for a device that must already be configured (an edit, never an add).
    UpdateDevice {
        #[schema(value_type = String)]
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    },
    /// Sets the given settings of a configured folder; `None` keeps one as it is.
    UpdateFolder {
        #[schema(value_type = String)]
        id: FolderId,
        label: Option<String>,
        versioning: Option<Versioning>,
        #[schema(value_type = Option<Vec<String>>)]
        devices: Option<Vec<DeviceId>>,
        /// Seconds between full rescans; 0 turns periodic rescans off.
        #[serde(default)]
        rescan_interval_s: Option<u64>,
        /// Whether to watch the folder for changes.
        #[serde(default)]
        watch: Option<bool>,
    },
    /// Names this device (peers see it at their next connection).
    SetName {
        name: String,
    },
    /// Whether folders a configured device offers are added (under
    /// [`Options::default_folder_path`]) and shared with it without asking.
    AutoAcceptFolders {
        #[schema(value_type = String)]
        id: DeviceId,
        auto_accept: bool,
    },
    /// Whether a configured device introduces the devices it shares our folders with.
    Introducer {
        #[schema(value_type = String)]
        id: DeviceId,
        introducer: bool,
    },
    /// Adds a device an introducer named (an introducer's introducers introduce too); a device
    /// already configured is left as it is.
    AddIntroduced {
        #[schema(value_type = String)]
        id: DeviceId,
        name: String,
        addresses: Vec<String>,
        #[schema(value_type = String)]
        by: DeviceId,
        introducer: bool,
        skip_introduction_removals: bool,
    },
    /// Sets a configured device's limits (each that is `Some`; 0 = unlimited), in KiB/s.
    DeviceLimits {
        #[schema(value_type = String)]
        id: DeviceId,
        #[serde(default)]
        max_send_kibps: Option<u64>,
        #[serde(default)]
        max_recv_kibps: Option<u64>,
    },
    /// Sets the global limits (each that is `Some`; 0 = unlimited), whether they apply on the
    /// LAN, and the schedule (the whole list).
    SetLimits {
        #[serde(default)]
        max_send_kibps: Option<u64>,
        #[serde(default)]
        max_recv_kibps: Option<u64>,
        #[serde(default)]
        limit_lan: Option<bool>,
        #[serde(default)]
        schedule: Option<Vec<ScheduleRule>>,
        /// Whether every device pauses on a metered network.
        #[serde(default)]
        pause_on_metered: Option<bool>,
        /// Whether every device pauses on battery.
        #[serde(default)]
        pause_on_battery: Option<bool>,
    },
    /// Pauses every device until a moment or until resumed; `None` resumes.
    PauseAll {
        #[serde(default)]
        pause: Option<PauseAll>,
    },
}

/// The settings [`Config::update_folder`] sets: each `Some` one; `None` keeps it as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderUpdate {
    pub label: Option<String>,
    pub versioning: Option<Versioning>,
    /// The full list of devices to share it with.
    pub devices: Option<Vec<DeviceId>>,
    pub rescan_interval_s: Option<u64>,
    pub watch: Option<bool>,
}

impl Change {
    /// Whether the configuration differs from before (else there is nothing to save).
    pub fn changed(&self) -> bool {
        !matches!(
            self,
            Self::DeviceUnchanged { .. }
                | Self::FolderUnchanged { .. }
                | Self::AlreadyShared { .. }
                | Self::NotShared { .. }
                | Self::PauseUnchanged { .. }
                | Self::NameUnchanged { .. }
                | Self::AutoAccept { changed: false, .. }
                | Self::Introducer { changed: false, .. }
                | Self::DeviceLimits { changed: false, .. }
                | Self::Limits { changed: false, .. }
                | Self::PausedAll { changed: false, .. }
        )
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |name: &str| if name.is_empty() { String::new() } else { format!(" {name:?}") };
        match self {
            Self::DeviceAdded { id, name, addresses } => {
                write!(f, "Added device {id}{} (addresses: {}).", quoted(name), addresses.join(", "))
            }
            Self::DeviceUpdated { id, name, addresses } => {
                write!(f, "Device {id} was already configured; set its ")?;
                match (name, addresses) {
                    (Some(n), Some(a)) => write!(f, "name to {n:?} and its addresses to {}.", a.join(", ")),
                    (Some(n), None) => write!(f, "name to {n:?}."),
                    (None, a) => write!(f, "addresses to {}.", a.as_deref().unwrap_or_default().join(", ")),
                }
            }
            Self::DeviceUnchanged { id } => {
                write!(f, "Device {id} is already configured; nothing changed.")
            }
            Self::DeviceRemoved { id, unshared } if unshared.is_empty() => write!(f, "Removed device {id}."),
            Self::DeviceRemoved { id, unshared } => {
                let folders: Vec<String> = unshared.iter().map(|f| format!("\"{f}\"")).collect();
                let s = if folders.len() == 1 { "" } else { "s" };
                write!(f, "Removed device {id} and stopped sharing folder{s} {} with it.", folders.join(", "))
            }
            Self::FolderAdded { id, path, folder_type, versioning, devices } => {
                let shared = match devices.len() {
                    0 => "shared with no device yet".to_owned(),
                    1 => "shared with 1 device".to_owned(),
                    n => format!("shared with {n} devices"),
                };
                write!(
                    f,
                    "Added {folder_type} folder \"{id}\" at {} ({versioning}), {shared}.",
                    path.display()
                )
            }
            Self::FolderRemoved { id, path } => write!(
                f,
                "Removed folder \"{id}\" from the configuration; its files in {} are untouched.",
                path.display()
            ),
            Self::Shared { folder, device } => write!(f, "Shared folder \"{folder}\" with device {device}."),
            Self::AlreadyShared { folder, device } => {
                write!(f, "Folder \"{folder}\" is already shared with device {device}.")
            }
            Self::Unshared { folder, device } => {
                write!(f, "Stopped sharing folder \"{folder}\" with device {device}.")
            }
            Self::NotShared { folder, device } => {
                write!(f, "Folder \"{folder}\" was not shared with device {device}; nothing changed.")
            }
            Self::FolderPaused { id, paused: true } => write!(f, "Paused folder \"{id}\"."),
            Self::FolderPaused { id, paused: false } => write!(f, "Resumed folder \"{id}\"."),
            Self::DevicePaused { id, paused: true } => write!(f, "Paused device {id}."),
            Self::DevicePaused { id, paused: false } => write!(f, "Resumed device {id}."),
            Self::FolderUpdated { id, what } => {
                write!(f, "Folder \"{id}\": set its {}.", what.join(", "))
            }
            Self::FolderUnchanged { id } => {
                write!(f, "Folder \"{id}\" is already configured so; nothing changed.")
            }
            Self::PauseUnchanged { what, paused } => {
                write!(
                    f,
                    "{what} is already {}; nothing changed.",
                    if *paused { "paused" } else { "running" }
                )
            }
            Self::Renamed { name } => write!(f, "This device is now called {name:?}."),
            Self::Introducer { id, introducer, changed } => {
                let how = if *introducer { "adds" } else { "no longer adds" };
                let already = if *changed { "" } else { " (as before)" };
                write!(f, "Device {id} {how} the devices it shares folders with{already}.")
            }
            Self::AutoAccept { id, auto_accept, changed } => {
                let how = if *auto_accept { "accepted" } else { "offered for you to accept" };
                let already = if *changed { "" } else { " (as before)" };
                write!(f, "Folders device {id} offers are {how}{already}.")
            }
            Self::NameUnchanged { name } => {
                write!(f, "This device is already called {name:?}; nothing changed.")
            }
            Self::DeviceLimits { id, max_send_kibps, max_recv_kibps, changed } => {
                let already = if *changed { "" } else { " (as before)" };
                write!(
                    f,
                    "Device {id}: sending {}, receiving {}{already}.",
                    kibps(*max_send_kibps),
                    kibps(*max_recv_kibps)
                )
            }
            Self::Limits {
                max_send_kibps,
                max_recv_kibps,
                limit_lan,
                schedule_rules,
                pause_on_metered,
                pause_on_battery,
                changed,
            } => {
                let already = if *changed { "" } else { " (as before)" };
                let lan = if *limit_lan { "also on the LAN" } else { "not on the LAN" };
                let rules = match schedule_rules {
                    0 => String::new(),
                    1 => ", 1 schedule rule".to_owned(),
                    n => format!(", {n} schedule rules"),
                };
                let pauses = match (pause_on_metered, pause_on_battery) {
                    (false, false) => "",
                    (true, false) => ", paused on metered networks",
                    (false, true) => ", paused on battery",
                    (true, true) => ", paused on metered networks and on battery",
                };
                write!(
                    f,
                    "Limits: sending {}, receiving {}, {lan}{rules}{pauses}{already}.",
                    kibps(*max_send_kibps),
                    kibps(*max_recv_kibps)
                )
            }
            Self::PausedAll { pause, changed } => {
                let already = if *changed { "" } else { " (as before)" };
                match pause {
                    None => write!(f, "Resumed every device{already}."),
                    Some(PauseAll::UntilResumed) => write!(f, "Paused every device until resumed{already}."),
                    Some(PauseAll::Until(t)) => {
                        write!(f, "Paused every device until {}{already}.", crate::clock::local_text(*t))
                    }
                }
            }
        }
    }
}

/// A folder's ID: the name peers know it by. Any non-empty string without control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FolderId(String);

impl FolderId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FolderId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("a folder ID must not be empty".into())
        } else if s.chars().any(char::is_control) {
            Err(format!("folder ID {s:?} contains a control character"))
        } else if s.len() > 256 {
            Err("a folder ID must be at most 256 bytes".into())
        } else {
            Ok(Self(s))
        }
    }
}

impl std::str::FromStr for FolderId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::try_from(s.to_owned())
    }
}

impl From<FolderId> for String {
    fn from(id: FolderId) -> Self {
        id.0
    }
}

impl std::fmt::Display for FolderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a folder takes part in syncing (Syncthing's folder types).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FolderType {
    #[default]
    SendReceive,
    /// Announces local changes, never applies remote ones.
    SendOnly,
    /// Applies remote changes, never announces local ones.
    ReceiveOnly,
}

impl FolderType {
    /// The name used in `config.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendReceive => "send-receive",
            Self::SendOnly => "send-only",
            Self::ReceiveOnly => "receive-only",
        }
    }
}

impl std::fmt::Display for FolderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This device's name, shown to peers.
    #[serde(default = "default_device_name")]
    pub name: String,
    #[serde(default)]
    pub options: Options,
    #[serde(default, rename = "folder", skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<FolderConfig>,
    #[serde(default, rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceConfig>,
    #[serde(default, skip_serializing_if = "Gui::is_default")]
    pub gui: Gui,
}

/// Where the control API and the web UI listen, and who may use it: the `[gui]`
/// table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gui {
    /// `HOST:PORT`; loopback unless a password is set.
    pub address: String,
    /// The key every API call carries in `X-API-Key`; generated on the first `serve` and saved.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_key: String,
    /// The user name a browser signs in with, with the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The GUI password as an Argon2id PHC string (`peerfold gui password` sets it); required
    /// before listening on anything but loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Serve the API and web UI over HTTPS, with `https-cert.pem` / `https-key.pem` from the
    /// home (a self-signed pair is generated on first use).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
}

/// Where the API listens unless told otherwise (Syncthing's GUI port, on loopback).
pub const DEFAULT_GUI_ADDRESS: &str = "127.0.0.1:8384";

impl Default for Gui {
    fn default() -> Self {
        Self {
            address: DEFAULT_GUI_ADDRESS.to_owned(),
            api_key: String::new(),
            user: None,
            password_hash: None,
            tls: false,
        }
    }
}

impl Gui {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Sets a new random API key (32 characters of base32) if there is none; true if it did.
    pub fn ensure_api_key(&mut self) -> bool {
        if !self.api_key.is_empty() {
            return false;
        }
        let bytes: [u8; 20] = rand::random();
        self.api_key = data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase();
        true
    }
}

/// Engine-wide options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Seconds between full rescans of each folder (the watcher is only a hint); 0 = never.
    pub rescan_interval_s: u64,
    /// Whether folders watch for changes by default.
    pub watch: bool,
    /// Milliseconds the watcher waits for a burst of changes to settle before scanning. A burst
    /// whose files were all closed after writing, or renamed into place, is scanned sooner (25
    /// ms after its last event, or this delay if shorter).
    pub watch_delay_ms: u64,
    /// Whether `serve` finds devices by itself and makes itself findable: LAN announcements,
    /// the DHT and port mapping on the router. Off, only configured addresses are dialled and
    /// nothing is sent anywhere but to them. When on, the three switches below choose.
    pub discovery: bool,
    /// Syncthing's local discovery: announcements on the LAN (UDP 21027).
    pub local_discovery: bool,
    /// Announcing and looking up addresses on the BitTorrent mainline DHT.
    pub global_discovery: bool,
    /// Asking the router (UPnP-IGD, NAT-PMP) to forward the listening port.
    pub port_mapping: bool,
    /// `host:port` of the DHT nodes to join through; empty means the well-known public ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dht_bootstrap: Vec<String>,
    /// Free space the disk holding the home (and so the index) keeps: below it no folder
    /// pulls (Syncthing's `minHomeDiskFree`).
    #[serde(skip_serializing_if = "MinFree::is_default")]
    pub min_home_disk_free: MinFree,
    /// Relays to hold a reservation on (`relay://HOST:PORT/?id=RELAY-DEVICE-ID`), so that
    /// devices that cannot reach us directly can through them. Empty: no relay is contacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
    /// STUN servers (`host:port`) the QUIC listener asks for its public address, which is
    /// then announced for hole punching. Asked only while `discovery` is on; empty means a few
    /// well-known public servers, and those only while `global_discovery` is on too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stun: Vec<String>,
    /// Where folders accepted without a path go, each in a directory named after its label
    /// (or ID): Syncthing's default folder path. Unset, the user's home directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_folder_path: Option<PathBuf>,
    /// KiB/s sent over all connections together; 0 = unlimited. A schedule rule in force
    /// replaces it.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_send_kibps: u64,
    /// KiB/s received over all connections together; 0 = unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_recv_kibps: u64,
    /// Whether limits (the global and each device's) apply to devices on the LAN too: a
    /// connection from or to a loopback, private or link-local address. Relayed connections
    /// are never LAN. Off, as in Syncthing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub limit_lan: bool,
    /// `[[options.schedule]]`: windows of the week with other limits, or paused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduleRule>,
    /// Every device paused by the user (`peerfold pause --for 2h`), until then or until resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_all: Option<PauseAll>,
    /// Every device paused while the system is on a metered network (NetworkManager's
    /// `Metered`: yes or guess-yes). Off by default; the desktop app's first run offers it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause_on_metered: bool,
    /// Every device paused while the system runs on battery (UPower's `OnBattery`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause_on_battery: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Options {
    /// The options with those that only the connections' limits read cleared: folder tasks
    /// restart when the rest differ, not when a limit or a pause changes.
    pub fn for_folders(&self) -> Self {
        Self {
            max_send_kibps: 0,
            max_recv_kibps: 0,
            limit_lan: false,
            schedule: Vec::new(),
            pause_all: None,
            pause_on_metered: false,
            pause_on_battery: false,
            ..self.clone()
        }
    }

    /// [`Options::default_folder_path`], or the user's home directory; `None` when neither is
    /// known.
    pub fn folder_base(&self) -> Option<PathBuf> {
        self.default_folder_path
            .clone()
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_owned()))
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rescan_interval_s: 3600,
            watch: true,
            watch_delay_ms: 200,
            discovery: true,
            local_discovery: true,
            global_discovery: true,
            port_mapping: true,
            dht_bootstrap: Vec::new(),
            min_home_disk_free: MinFree::default(),
            relays: Vec::new(),
            stun: Vec::new(),
            default_folder_path: None,
            max_send_kibps: 0,
            max_recv_kibps: 0,
            limit_lan: false,
            schedule: Vec::new(),
            pause_all: None,
            pause_on_metered: false,
            pause_on_battery: false,
        }
    }
}

/// One shared folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    #[schema(value_type = String)]
    pub id: FolderId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[schema(value_type = String)]
    pub path: PathBuf,
    #[serde(default, rename = "type")]
    pub folder_type: FolderType,
    /// The devices this folder is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<DeviceId>,
    /// Overrides [`Options::rescan_interval_s`] for this folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan_interval_s: Option<u64>,
    /// Overrides [`Options::watch`] for this folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// What becomes of files that peers' changes replace or delete; trash can for 30 days
    /// unless the folder says otherwise.
    #[serde(default)]
    pub versioning: Versioning,
    /// Free space the folder's disk keeps: the puller starts no download that would leave
    /// less (Syncthing's `minDiskFree`).
    #[serde(default, skip_serializing_if = "MinFree::is_default")]
    #[schema(value_type = String)]
    pub min_disk_free: MinFree,
    /// Whether permission bits are neither recorded from disk nor applied to it (Syncthing's
    /// `ignorePerms`); unset, they are ignored on Windows, whose files have none, and synced
    /// elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_permissions: Option<bool>,
}

/// Whether a folder ignores permission bits when it does not say: on Windows, whose files have
/// none ([`FolderConfig::ignore_permissions`]); also what the scanner and puller of a folder not
/// in the configuration do.
pub const IGNORE_PERMISSIONS_BY_DEFAULT: bool = cfg!(windows);

/// A minimum of free space on a disk: a share of its size (`"1%"`, the default, as in
/// Syncthing) or a size (`"500 MB"`, `"2GiB"`, `"1048576"`; k, M, G, T are powers of 1000,
/// Ki, Mi, Gi, Ti of 1024, and the `B` is optional). `"0"` turns the check off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MinFree {
    /// Percent of the disk's size, 0 to 100.
    Percent(u8),
    Bytes(u64),
}

impl MinFree {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The bytes to keep free on a disk of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Self::Percent(p) => (u128::from(total) * u128::from(p) / 100) as u64,
            Self::Bytes(b) => b,
        }
    }
}

impl Default for MinFree {
    fn default() -> Self {
        Self::Percent(1)
    }
}

impl std::str::FromStr for MinFree {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a free space (like \"1%\" or \"500 MB\")");
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                _ => Err(bad()),
            };
        }
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(digits);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let unit = unit.strip_suffix(['B', 'b']).unwrap_or(unit);
        let factor: u64 = match unit {
            "" => 1,
            "k" | "K" => 1000,
            "M" => 1000_u64.pow(2),
            "G" => 1000_u64.pow(3),
            "T" => 1000_u64.pow(4),
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(Self::Bytes).ok_or_else(bad)
    }
}

impl TryFrom<String> for MinFree {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<MinFree> for String {
    fn from(m: MinFree) -> Self {
        m.to_string()
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Bytes(b) => write!(f, "{b} B"),
        }
    }
}

/// What becomes of a file that a peer's change replaces or deletes (Syncthing's file
/// versioning). The puller that applies it is still to come.
///
/// In `config.toml` it is a folder's `versioning` table, chosen by its `type`:
///
/// ```toml
/// [[folder]]
/// id = "photos"
/// path = "/srv/photos"
///
/// [folder.versioning]
/// type = "trashcan"  # keep the old copy in the folder's .stversions directory…
/// keep_days = 30     # …for 30 days (the default); 0 keeps it forever
/// ```
///
/// `versioning = { type = "none" }` turns it off. A folder without the table gets
/// `Trashcan { keep_days: 30 }`, and a table without `keep_days` gets 30 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", try_from = "VersioningTable")]
pub enum Versioning {
    /// The old file is gone.
    None,
    /// The old file is moved to `.stversions` in the folder (as Syncthing's trash can does)
    /// and deleted from there after `keep_days` days; 0 = never.
    Trashcan { keep_days: u32 },
}

/// How long the trash can keeps a file by default.
pub const DEFAULT_KEEP_DAYS: u32 = 30;

/// [`Versioning`] as written, so that a key the chosen type does not use (`keep_days` with
/// `type = "none"`) is an error, as unknown keys are everywhere else; serde's internally tagged
/// enums ignore extra keys of unit variants.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table like { type = \"trashcan\", keep_days = 30 }")]
struct VersioningTable {
    #[serde(rename = "type")]
    kind: VersioningType,
    keep_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum VersioningType {
    None,
    Trashcan,
}

impl TryFrom<VersioningTable> for Versioning {
    type Error = &'static str;
    fn try_from(t: VersioningTable) -> Result<Self, Self::Error> {
        match (t.kind, t.keep_days) {
            (VersioningType::None, None) => Ok(Self::None),
            (VersioningType::None, Some(_)) => Err("keep_days applies to type \"trashcan\" only"),
            (VersioningType::Trashcan, days) => {
                Ok(Self::Trashcan { keep_days: days.unwrap_or(DEFAULT_KEEP_DAYS) })
            }
        }
    }
}

impl Default for Versioning {
    fn default() -> Self {
        Self::Trashcan { keep_days: DEFAULT_KEEP_DAYS }
    }
}

impl std::fmt::Display for Versioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("no versioning"),
            Self::Trashcan { keep_days: 0 } => f.write_str("trash can forever"),
            Self::Trashcan { keep_days: 1 } => f.write_str("trash can for 1 day"),
            Self::Trashcan { keep_days } => write!(f, "trash can for {keep_days} days"),
        }
    }
}

/// A remote device this device may talk to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: DeviceId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `tcp://host:port`, `quic://host:port` or `dynamic` (find it by discovery).
    #[serde(default = "dynamic_address")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Folders it offers are added under [`Options::default_folder_path`] and shared with it,
    /// with no user step (Syncthing's `autoAcceptFolders`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_accept_folders: bool,
    /// Add the devices it shares our folders with, share those folders with them, and remove
    /// them when it stops (Syncthing's introducer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub introducer: bool,
    /// As an introducer, add devices but never remove them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_introduction_removals: bool,
    /// The introducer that added it; `None` for a device the user added, which no introducer
    /// removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_by: Option<DeviceId>,
    /// KiB/s sent to this device; 0 = unlimited. Its bytes pass the global limit too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_send_kibps: u64,
    /// KiB/s received from this device; 0 = unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_recv_kibps: u64,
}

/// Longest name kept for a device an introducer names, in characters.
const MAX_INTRODUCED_NAME: usize = 256;

fn dynamic_address() -> Vec<String> {
    vec![DeviceAddress::DYNAMIC.into()]
}

fn default_device_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: default_device_name(),
            options: Options::default(),
            folders: Vec::new(),
            devices: Vec::new(),
            gui: Gui::default(),
        }
    }
}

impl FolderConfig {
    /// A send-receive folder at `path`, shared with no one, with the engine-wide defaults and
    /// trash-can versioning for [`DEFAULT_KEEP_DAYS`].
    pub fn new(id: FolderId, path: PathBuf) -> Self {
        Self {
            id,
            label: String::new(),
            path,
            folder_type: FolderType::default(),
            devices: Vec::new(),
            rescan_interval_s: None,
            watch: None,
            paused: false,
            versioning: Versioning::default(),
            min_disk_free: MinFree::default(),
            ignore_permissions: None,
        }
    }

    /// [`FolderConfig::ignore_permissions`], with this system's default.
    pub fn ignores_permissions(&self) -> bool {
        self.ignore_permissions.unwrap_or(IGNORE_PERMISSIONS_BY_DEFAULT)
    }

    pub fn rescan_interval_s(&self, options: &Options) -> u64 {
        self.rescan_interval_s.unwrap_or(options.rescan_interval_s)
    }

    pub fn watch(&self, options: &Options) -> bool {
        self.watch.unwrap_or(options.watch)
    }
}

impl Config {
    /// Loads the configuration at `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot: unique IDs, absolute folder paths, shares with
    /// known devices.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for f in &self.folders {
            if !ids.insert(&f.id) {
                return Err(format!("folder ID {:?} is used twice", f.id.as_str()));
            }
            if !f.path.is_absolute() {
                return Err(format!("folder {:?}: path {} is not absolute", f.id.as_str(), f.path.display()));
            }
            for d in &f.devices {
                if !self.devices.iter().any(|k| &k.id == d) {
                    return Err(format!(
                        "folder {:?} is shared with {d}, which is not a known device",
                        f.id.as_str()
                    ));
                }
            }
        }
        let mut devs = std::collections::HashSet::new();
        for d in &self.devices {
            if !devs.insert(d.id) {
                return Err(format!("device {} is listed twice", d.id));
            }
            for a in &d.addresses {
                check_address(a).map_err(|reason| format!("device {}: address {a:?} {reason}", d.id))?;
            }
        }
        for r in &self.options.relays {
            if let Err(e) = r.parse::<crate::net::relay::RelayUrl>() {
                return Err(format!("[options] relays: {e}"));
            }
        }
        for server in &self.options.stun {
            let port =
                server.rsplit_once(':').filter(|(host, _)| !host.is_empty()).map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p != 0) {
                return Err(format!("[options] stun: {server:?} is not HOST:PORT"));
            }
        }
        for rule in &self.options.schedule {
            rule.check().map_err(|e| format!("[[options.schedule]]: {e}"))?;
        }
        Ok(())
    }

    pub fn folder(&self, id: &FolderId) -> Option<&FolderConfig> {
        self.folders.iter().find(|f| &f.id == id)
    }

    pub fn device(&self, id: &DeviceId) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| &d.id == id)
    }

    // The changes front-ends make. Each checks its own preconditions first, for errors that
    // name what is wrong, then the result as a whole with `validate`; on any error the
    // configuration is as it was. None of them saves: the caller does, when `changed()`.

    /// Adds device `id` (with addresses `["dynamic"]` unless given), or gives an already
    /// configured one the `name` and `addresses` that are `Some`. `this_device` (our own ID)
    /// cannot be added.
    pub fn add_device(
        &mut self,
        this_device: DeviceId,
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    ) -> Result<Change, ChangeError> {
        if id == this_device {
            return Err(ChangeError::OwnDevice(id));
        }
        if let Some(addresses) = &addresses {
            if addresses.is_empty() {
                return Err(ChangeError::NoAddresses);
            }
            for a in addresses {
                check_address(a).map_err(|reason| ChangeError::Address { address: a.clone(), reason })?;
            }
        }
        self.apply(|c| {
            let Some(device) = c.devices.iter_mut().find(|d| d.id == id) else {
                let device = DeviceConfig {
                    id,
                    name: name.unwrap_or_default(),
                    addresses: addresses.unwrap_or_else(dynamic_address),
                    paused: false,
                    auto_accept_folders: false,
                    introducer: false,
                    skip_introduction_removals: false,
                    introduced_by: None,
                    max_send_kibps: 0,
                    max_recv_kibps: 0,
                };
                let change = Change::DeviceAdded {
                    id,
                    name: device.name.clone(),
                    addresses: device.addresses.clone(),
                };
                c.devices.push(device);
                return Ok(change);
            };
            let name = name.filter(|n| *n != device.name);
            let addresses = addresses.filter(|a| *a != device.addresses);
            if name.is_none() && addresses.is_none() {
                return Ok(Change::DeviceUnchanged { id });
            }
            if let Some(n) = &name {
                device.name.clone_from(n);
            }
            if let Some(a) = &addresses {
                device.addresses.clone_from(a);
            }
            Ok(Change::DeviceUpdated { id, name, addresses })
        })
    }

    /// Removes device `id` and stops sharing every folder with it.
    pub fn remove_device(&mut self, id: DeviceId) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let before = c.devices.len();
            c.devices.retain(|d| d.id != id);
            if c.devices.len() == before {
                return Err(ChangeError::UnknownDevice(id));
            }
            let mut unshared = Vec::new();
            for f in &mut c.folders {
                let before = f.devices.len();
                f.devices.retain(|d| *d != id);
                if f.devices.len() != before {
                    unshared.push(f.id.clone());
                }
            }
            Ok(Change::DeviceRemoved { id, unshared })
        })
    }

    /// Adds `folder`. Its ID must be new, its path absolute and neither equal to, inside nor
    /// containing another folder's path (compared with symlinks resolved, see
    /// [`resolve_folder_path`]), and the devices it is shared with must be configured (each is
    /// kept once). Creating the directory is [`create_folder_root`]'s job.
    pub fn add_folder(&mut self, mut folder: FolderConfig) -> Result<Change, ChangeError> {
        if !folder.path.is_absolute() {
            return Err(ChangeError::RelativePath(folder.path));
        }
        if let Some(other) = self.folder(&folder.id) {
            return Err(ChangeError::DuplicateFolder { id: folder.id, path: other.path.clone() });
        }
        let mut seen = std::collections::HashSet::new();
        folder.devices.retain(|d| seen.insert(*d));
        if let Some(d) = folder.devices.iter().find(|d| self.device(d).is_none()) {
            return Err(ChangeError::UnknownDevice(*d));
        }
        let resolved = |p: &Path| resolve_folder_path(p).unwrap_or_else(|_| p.to_owned());
        let path = resolved(&folder.path);
        for other in &self.folders {
            let other_path = resolved(&other.path);
            let overlap = if path == other_path {
                Overlap::Same
            } else if path.starts_with(&other_path) {
                Overlap::Inside
            } else if other_path.starts_with(&path) {
                Overlap::Contains
            } else {
                continue;
            };
            return Err(ChangeError::Overlap {
                path: folder.path,
                overlap,
                other: other.id.clone(),
                other_path: other.path.clone(),
            });
        }
        self.apply(|c| {
            let change = Change::FolderAdded {
                id: folder.id.clone(),
                path: folder.path.clone(),
                folder_type: folder.folder_type,
                versioning: folder.versioning,
                devices: folder.devices.clone(),
            };
            c.folders.push(folder);
            Ok(change)
        })
    }

    /// Removes folder `id` from the configuration. Its files stay where they are.
    pub fn remove_folder(&mut self, id: &FolderId) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let i = c
                .folders
                .iter()
                .position(|f| &f.id == id)
                .ok_or_else(|| ChangeError::UnknownFolder(id.clone()))?;
            let folder = c.folders.remove(i);
            Ok(Change::FolderRemoved { id: folder.id, path: folder.path })
        })
    }

    /// Shares folder `folder` with the configured device `device`; sharing it again is fine.
    pub fn share(&mut self, folder: &FolderId, device: DeviceId) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let f = c.shared_folder_mut(folder, device)?;
            let (folder, device) = (folder.clone(), device);
            if f.devices.contains(&device) {
                return Ok(Change::AlreadyShared { folder, device });
            }
            f.devices.push(device);
            Ok(Change::Shared { folder, device })
        })
    }

    /// Stops sharing folder `folder` with the configured device `device`; if it was not
    /// shared, nothing changes.
    pub fn unshare(&mut self, folder: &FolderId, device: DeviceId) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let f = c.shared_folder_mut(folder, device)?;
            let (folder, device) = (folder.clone(), device);
            let before = f.devices.len();
            f.devices.retain(|d| *d != device);
            Ok(if f.devices.len() == before {
                Change::NotShared { folder, device }
            } else {
                Change::Unshared { folder, device }
            })
        })
    }

    /// Pauses (or resumes) folder `id`: a paused folder is neither scanned nor synced.
    pub fn pause_folder(&mut self, id: &FolderId, paused: bool) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let f = c
                .folders
                .iter_mut()
                .find(|f| &f.id == id)
                .ok_or_else(|| ChangeError::UnknownFolder(id.clone()))?;
            if f.paused == paused {
                return Ok(Change::PauseUnchanged { what: format!("Folder \"{id}\""), paused });
            }
            f.paused = paused;
            Ok(Change::FolderPaused { id: id.clone(), paused })
        })
    }

    /// Pauses (or resumes) device `id`: a paused device is neither dialled nor accepted.
    pub fn pause_device(&mut self, id: DeviceId, paused: bool) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let d = c.devices.iter_mut().find(|d| d.id == id).ok_or(ChangeError::UnknownDevice(id))?;
            if d.paused == paused {
                return Ok(Change::PauseUnchanged { what: format!("Device {id}"), paused });
            }
            d.paused = paused;
            Ok(Change::DevicePaused { id, paused })
        })
    }

    /// Sets the name or addresses of the configured device `id`, as [`Config::add_device`]
    /// does for a device it already knows; an unknown device is an error, not added, so an
    /// edit can never add one by mistake.
    pub fn update_device(
        &mut self,
        this_device: DeviceId,
        id: DeviceId,
        name: Option<String>,
        addresses: Option<Vec<String>>,
    ) -> Result<Change, ChangeError> {
        if self.device(&id).is_none() {
            return Err(ChangeError::UnknownDevice(id));
        }
        self.add_device(this_device, id, name, addresses)
    }

    /// Sets folder `id`'s label, versioning, devices, rescan interval and watching (each that
    /// is `Some`); the devices must be configured and are kept once each, in the order given.
    /// The interval and watching become the folder's own settings, no longer the options'.
    pub fn update_folder(&mut self, id: &FolderId, update: FolderUpdate) -> Result<Change, ChangeError> {
        let FolderUpdate { label, versioning, devices, rescan_interval_s, watch } = update;
        let devices = devices.map(|mut list| {
            let mut seen = std::collections::HashSet::new();
            list.retain(|d| seen.insert(*d));
            list
        });
        if let Some(d) = devices.iter().flatten().find(|d| self.device(d).is_none()) {
            return Err(ChangeError::UnknownDevice(*d));
        }
        self.apply(|c| {
            let f = c
                .folders
                .iter_mut()
                .find(|f| &f.id == id)
                .ok_or_else(|| ChangeError::UnknownFolder(id.clone()))?;
            let mut what = Vec::new();
            if let Some(label) = label.filter(|l| *l != f.label) {
                f.label = label;
                what.push("label");
            }
            if let Some(versioning) = versioning.filter(|v| *v != f.versioning) {
                f.versioning = versioning;
                what.push("versioning");
            }
            if let Some(devices) = devices.filter(|d| *d != f.devices) {
                f.devices = devices;
                what.push("devices");
            }
            if let Some(s) = rescan_interval_s.filter(|s| f.rescan_interval_s != Some(*s)) {
                f.rescan_interval_s = Some(s);
                what.push("rescan interval");
            }
            if let Some(w) = watch.filter(|w| f.watch != Some(*w)) {
                f.watch = Some(w);
                what.push("watching");
            }
            Ok(if what.is_empty() {
                Change::FolderUnchanged { id: id.clone() }
            } else {
                Change::FolderUpdated { id: id.clone(), what }
            })
        })
    }

    /// Makes `edit` with the method it stands for; `this_device` is our own ID.
    pub fn edit(&mut self, this_device: DeviceId, edit: Edit) -> Result<Change, ChangeError> {
        match edit {
            Edit::AddDevice { id, name, addresses } => self.add_device(this_device, id, name, addresses),
            Edit::RemoveDevice { id } => self.remove_device(id),
            Edit::AddFolder { folder } => self.add_folder(*folder),
            Edit::RemoveFolder { id } => self.remove_folder(&id),
            Edit::Share { folder, device } => self.share(&folder, device),
            Edit::Unshare { folder, device } => self.unshare(&folder, device),
            Edit::PauseFolder { id, paused } => self.pause_folder(&id, paused),
            Edit::PauseDevice { id, paused } => self.pause_device(id, paused),
            Edit::UpdateDevice { id, name, addresses } => {
                self.update_device(this_device, id, name, addresses)
            }
            Edit::UpdateFolder { id, label, versioning, devices, rescan_interval_s, watch } => {
                self.update_folder(&id, FolderUpdate { label, versioning, devices, rescan_interval_s, watch })
            }
            Edit::SetName { name } => self.set_name(&name),
            Edit::AutoAcceptFolders { id, auto_accept } => self.auto_accept_folders(id, auto_accept),
            Edit::Introducer { id, introducer } => self.apply(|c| {
                let d = c.devices.iter_mut().find(|d| d.id == id).ok_or(ChangeError::UnknownDevice(id))?;
                let changed = d.introducer != introducer;
                d.introducer = introducer;
                Ok(Change::Introducer { id, introducer, changed })
            }),
            Edit::AddIntroduced { id, name, addresses, by, introducer, skip_introduction_removals } => {
                if self.device(&id).is_some() {
                    return Ok(Change::DeviceUnchanged { id });
                }
                // Addresses a peer named that do not parse are dropped: found by discovery.
                let mut addresses: Vec<String> =
                    addresses.into_iter().filter(|a| check_address(a).is_ok()).collect();
                if addresses.is_empty() {
                    addresses = dynamic_address();
                }
                let name: String = name.chars().take(MAX_INTRODUCED_NAME).collect();
                let change = self.add_device(this_device, id, Some(name), Some(addresses))?;
                if let Some(d) = self.devices.iter_mut().find(|d| d.id == id) {
                    d.introduced_by = Some(by);
                    d.introducer = introducer;
                    d.skip_introduction_removals = skip_introduction_removals;
                }
                Ok(change)
            }
            Edit::DeviceLimits { id, max_send_kibps, max_recv_kibps } => self.apply(|c| {
                let d = c.devices.iter_mut().find(|d| d.id == id).ok_or(ChangeError::UnknownDevice(id))?;
                let before = (d.max_send_kibps, d.max_recv_kibps);
                d.max_send_kibps = max_send_kibps.unwrap_or(d.max_send_kibps);
                d.max_recv_kibps = max_recv_kibps.unwrap_or(d.max_recv_kibps);
                let (max_send_kibps, max_recv_kibps) = (d.max_send_kibps, d.max_recv_kibps);
                let changed = before != (max_send_kibps, max_recv_kibps);
                Ok(Change::DeviceLimits { id, max_send_kibps, max_recv_kibps, changed })
            }),
            Edit::SetLimits {
                max_send_kibps,
                max_recv_kibps,
                limit_lan,
                schedule,
                pause_on_metered,
                pause_on_battery,
            } => self.apply(|c| {
                let o = &mut c.options;
                let before = o.clone();
                o.max_send_kibps = max_send_kibps.unwrap_or(o.max_send_kibps);
                o.max_recv_kibps = max_recv_kibps.unwrap_or(o.max_recv_kibps);
                o.limit_lan = limit_lan.unwrap_or(o.limit_lan);
                o.pause_on_metered = pause_on_metered.unwrap_or(o.pause_on_metered);
                o.pause_on_battery = pause_on_battery.unwrap_or(o.pause_on_battery);
                if let Some(schedule) = schedule {
                    o.schedule = schedule;
                }
                let changed = before != *o;
                Ok(Change::Limits {
                    max_send_kibps: o.max_send_kibps,
                    max_recv_kibps: o.max_recv_kibps,
                    limit_lan: o.limit_lan,
                    schedule_rules: o.schedule.len(),
                    pause_on_metered: o.pause_on_metered,
                    pause_on_battery: o.pause_on_battery,
                    changed,
                })
            }),
            Edit::PauseAll { pause } => self.apply(|c| {
                let changed = c.options.pause_all != pause;
                c.options.pause_all = pause;
                Ok(Change::PausedAll { pause, changed })
            }),
        }
    }

    /// Sets whether the folders device `id` offers are added without asking.
    pub fn auto_accept_folders(&mut self, id: DeviceId, auto_accept: bool) -> Result<Change, ChangeError> {
        self.apply(|c| {
            let d = c.devices.iter_mut().find(|d| d.id == id).ok_or(ChangeError::UnknownDevice(id))?;
            let changed = d.auto_accept_folders != auto_accept;
            d.auto_accept_folders = auto_accept;
            Ok(Change::AutoAccept { id, auto_accept, changed })
        })
    }

    /// Names this device. Surrounding spaces are dropped; an empty name is refused.
    pub fn set_name(&mut self, name: &str) -> Result<Change, ChangeError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ChangeError::EmptyName);
        }
        if self.name == name {
            return Ok(Change::NameUnchanged { name: name.to_owned() });
        }
        self.apply(|c| {
            c.name = name.to_owned();
            Ok(Change::Renamed { name: name.to_owned() })
        })
    }

    /// Folder `folder`, for changing whom it is shared with, if it and `device` are configured.
    fn shared_folder_mut(
        &mut self,
        folder: &FolderId,
        device: DeviceId,
    ) -> Result<&mut FolderConfig, ChangeError> {
        if self.device(&device).is_none() {
            return Err(ChangeError::UnknownDevice(device));
        }
        self.folders
            .iter_mut()
            .find(|f| &f.id == folder)
            .ok_or_else(|| ChangeError::UnknownFolder(folder.clone()))
    }

    /// Makes `change` on a copy and keeps the copy only if the change succeeds and the result
    /// is valid.
    fn apply(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<Change, ChangeError>,
    ) -> Result<Change, ChangeError> {
        let mut next = self.clone();
        let done = change(&mut next)?;
        next.validate().map_err(ChangeError::Invalid)?;
        *self = next;
        Ok(done)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates and writes the configuration to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        self.validate().map_err(ConfigError::Invalid)?;
        // Owner-only: the file holds the API key and the GUI password hash.
        crate::fsutil::write_atomic(path, self.to_toml().as_bytes(), 0o600).map_err(ConfigError::Write)
    }
}

/// The absolute path `path` names, with symlinks resolved as far as it exists; the part that
/// does not exist yet is appended as written (a `..` there removes the component before it,
/// as creating the directories would). This is the path a folder at `path` will have once
/// [`create_folder_root`] has made it, so overlaps can be checked before creating anything.
pub fn resolve_folder_path(path: &Path) -> std::io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let components: Vec<Component<'_>> = path.components().collect();
    for existing in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..existing].iter().collect();
        match std::fs::canonicalize(&prefix) {
            Ok(mut resolved) => {
                for c in &components[existing..] {
                    match c {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::Normal(name) => resolved.push(name),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
                return Ok(resolved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// Creates a folder's root directory (and its parents) if missing, and the [marker](crate::layout::MARKER)
/// in it if absent.
pub fn create_folder_root(root: &Path) -> std::io::Result<()> {
    if root.exists() && !root.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
    }
    std::fs::create_dir_all(root)?;
    match std::fs::create_dir(root.join(crate::layout::MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Checks a device address with the parser the dialer uses ([`DeviceAddress`]): `dynamic`
/// (find the device by discovery) or `scheme://host[:port]` with a scheme of `tcp`, `tcp4`,
/// `tcp6`, `quic`, `quic4` or `quic6` in any case, a host name, an IPv4 address or a bracketed
/// IPv6 address, and a port from 1 to 65535 (22000 when left out); or a relay the device holds
/// a reservation on, `relay://host[:port]/?id=RELAY-DEVICE-ID`.
/// The error completes "address … ".
pub fn check_address(address: &str) -> Result<(), String> {
    match address.parse::<DeviceAddress>() {
        Ok(_) => Ok(()),
        Err(_) if !address.contains("://") => {
            Err("is not dynamic or scheme://host[:port] (like tcp://192.0.2.1:22000)".into())
        }
        Err(crate::net::NetError::BadAddress { reason, .. }) => Err(format!("is not usable: {reason}")),
        Err(e) => Err(format!("is not usable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    // Tests marked `#[cfg(unix)]` below use Unix absolute folder paths (`/srv/a`) as fixtures,
    // which Windows takes as relative (no drive): they test the rules, not the platform, and
    // run on Linux; the Windows unit-test run under Wine (README, "Platforms") leaves them out.
    use super::*;

    const DEV: &str = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";

    #[cfg(unix)]
    #[test]
    fn hand_written_config_is_accepted_with_defaults() {
        let text = format!(
            r#"
name = "nas"

[[device]]
id = "{DEV}"
name = "laptop"

[[folder]]
id = "photos"
path = "/srv/photos"
type = "receive-only"
devices = ["{}"]
rescan_interval_s = 60
"#,
            DEV.to_lowercase().replace('-', "")
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.name, "nas");
        assert_eq!(c.options, Options::default());
        assert_eq!(c.devices[0].addresses, ["dynamic"]);
        let f = &c.folders[0];
        assert_eq!((f.id.as_str(), f.folder_type), ("photos", FolderType::ReceiveOnly));
        assert_eq!(f.devices[0].to_string(), DEV, "device IDs are parsed once, in any accepted form");
        assert_eq!(f.rescan_interval_s(&c.options), 60);
        assert!(f.watch(&c.options));
        assert_eq!(f.versioning, Versioning::Trashcan { keep_days: 30 }, "versioning is on by default");
    }

    #[cfg(unix)]
    #[test]
    fn minimum_free_space_is_a_share_or_a_size() {
        let c = Config::parse("[[folder]]\nid = \"a\"\npath = \"/a\"").unwrap();
        assert_eq!(
            (c.folders[0].min_disk_free, c.options.min_home_disk_free),
            (MinFree::Percent(1), MinFree::Percent(1))
        );
        assert!(!c.to_toml().contains("disk_free"), "defaults are not written");
        for (text, want) in [
            ("5%", MinFree::Percent(5)),
            ("0", MinFree::Bytes(0)),
            ("500 MB", MinFree::Bytes(500_000_000)),
            ("2GiB", MinFree::Bytes(2 << 30)),
            ("1048576", MinFree::Bytes(1 << 20)),
            ("10k", MinFree::Bytes(10_000)),
        ] {
            let toml = format!(
                "[options]\nmin_home_disk_free = \"{text}\"\n[[folder]]\nid = \"a\"\npath = \"/a\"\nmin_disk_free = \"{text}\""
            );
            let c = Config::parse(&toml).unwrap();
            assert_eq!((c.folders[0].min_disk_free, c.options.min_home_disk_free), (want, want), "{text}");
            assert_eq!(Config::parse(&c.to_toml()).unwrap(), c, "{text} round-trips");
        }
        for bad in ["101%", "-1%", "1.5%", "12 parsecs", "", "99999999999 TB"] {
            let toml = format!("[[folder]]\nid = \"a\"\npath = \"/a\"\nmin_disk_free = \"{bad}\"");
            let e = Config::parse(&toml).unwrap_err();
            assert!(e.contains("is not a free space"), "{bad}: {e}");
        }
        assert_eq!(MinFree::Percent(1).bytes(8 << 20), 83_886);
        assert_eq!(MinFree::Bytes(7).bytes(8 << 20), 7);
    }

    #[cfg(unix)]
    #[test]
    fn versioning_is_a_table_tagged_by_type() {
        let folder = "[[folder]]\nid = \"a\"\npath = \"/a\"\n";
        let cases = [
            (
                "[folder.versioning]\ntype = \"trashcan\"\nkeep_days = 7",
                Versioning::Trashcan { keep_days: 7 },
            ),
            ("[folder.versioning]\ntype = \"trashcan\"", Versioning::Trashcan { keep_days: 30 }),
            ("versioning = { type = \"trashcan\", keep_days = 0 }", Versioning::Trashcan { keep_days: 0 }),
            ("versioning = { type = \"none\" }", Versioning::None),
        ];
        for (table, want) in cases {
            let c = Config::parse(&format!("{folder}{table}")).unwrap();
            assert_eq!(c.folders[0].versioning, want, "{table}");
            assert_eq!(Config::parse(&c.to_toml()).unwrap(), c, "round trip of {table}");
        }
        for (table, want) in [
            ("versioning = \"none\"", "expected a table like { type = \"trashcan\""),
            ("versioning = { type = \"staggered\" }", "unknown variant"),
            ("versioning = { type = \"trashcan\", keepdays = 3 }", "unknown field"),
            ("versioning = { type = \"trashcan\", keep_days = -1 }", "invalid value"),
            ("versioning = { keep_days = 3 }", "missing field `type`"),
            ("versioning = { type = \"none\", keep_days = 3 }", "applies to type \"trashcan\" only"),
        ] {
            let err = Config::parse(&format!("{folder}{table}")).unwrap_err();
            assert!(err.contains(want), "{table}: {err}");
        }
        let written = Config {
            folders: vec![FolderConfig::new("a".parse().unwrap(), "/a".into())],
            ..Config::default()
        }
        .to_toml();
        assert!(written.contains("[folder.versioning]\ntype = \"trashcan\"\nkeep_days = 30\n"), "{written}");
        assert_eq!(Versioning::default().to_string(), "trash can for 30 days");
        assert_eq!(Versioning::Trashcan { keep_days: 0 }.to_string(), "trash can forever");
    }

    #[cfg(unix)]
    #[test]
    fn mistakes_are_clear_errors() {
        let cases = [
            ("nmae = \"x\"", "unknown field"),
            ("[[folder]]\nid = \"a\"\npath = \"rel/path\"", "not absolute"),
            ("[[folder]]\nid = \"\"\npath = \"/a\"", "must not be empty"),
            ("[[folder]]\nid = \"a\"\npath = \"/a\"\n[[folder]]\nid = \"a\"\npath = \"/b\"", "used twice"),
            (&format!("[[folder]]\nid = \"a\"\npath = \"/a\"\ndevices = [\"{DEV}\"]"), "not a known device"),
            ("[[device]]\nid = \"MFZWI3D-BONSGYC\"", "device ID"),
            ("[[folder]]\nid = \"a\"\npath = \"/a\"\ntype = \"mirror\"", "unknown variant"),
        ];
        for (text, want) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn save_then_load_round_trips_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut c = Config::default();
        c.devices.push(DeviceConfig {
            id: DEV.parse().unwrap(),
            name: "x".into(),
            addresses: dynamic_address(),
            paused: false,
            auto_accept_folders: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            max_send_kibps: 512,
            max_recv_kibps: 0,
        });
        c.options.max_recv_kibps = 2048;
        c.options.schedule =
            vec![toml::from_str("days = [\"sat\"]\nfrom = \"22:00\"\nto = \"06:00\"\npause = true").unwrap()];
        c.options.pause_all = Some(crate::schedule::PauseAll::Until(1_800_000_000));
        c.folders.push(FolderConfig {
            folder_type: FolderType::SendOnly,
            devices: vec![DEV.parse().unwrap()],
            watch: Some(false),
            ..FolderConfig::new("f".parse().unwrap(), "/data/f".into())
        });
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
        c.name = "renamed".into();
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap().name, "renamed");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["config.toml"]);
    }

    #[test]
    fn invalid_config_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "name = \"old\"\n").unwrap();
        let mut c = Config::default();
        c.folders.push(FolderConfig::new("f".parse().unwrap(), "relative".into()));
        assert!(matches!(c.save(&path), Err(ConfigError::Invalid(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "name = \"old\"\n");
    }

    #[test]
    fn addresses_are_dynamic_or_scheme_host_port() {
        // The syntax itself is net's (`DeviceAddress`); these are the sentences config makes.
        for good in [
            "dynamic",
            "tcp://192.0.2.1:22000",
            "TCP://nas.local",
            "tcp4://nas_1.example.org:1",
            "tcp6://[2001:db8::1]:22000",
            "quic://[::1]",
            "quic4://192.0.2.1:65535",
            "tcp://nas:",
            "relay://192.0.2.1:22067/?id=MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        let bad = [
            ("", "is not dynamic or scheme://host[:port]"),
            ("Dynamic", "is not dynamic"),
            ("192.0.2.1:22000", "is not dynamic"),
            ("relay://192.0.2.1:22067", "is not usable: ?id=RELAY-DEVICE-ID is required"),
            ("smtp://nas", "is not usable: unknown scheme"),
            ("tcp://:22000", "is not usable: a device's address needs a host"),
            ("tcp://nas:0", "is not usable: the port is not a number from 1 to 65535"),
            ("tcp://nas:65536", "is not usable: the port is not a number"),
            ("tcp://2001:db8::1", "brackets"),
            ("quic6://[fe80::1%eth0]:22000", "zone"),
        ];
        for (address, want) in bad {
            let err = check_address(address).unwrap_err();
            assert!(err.contains(want), "{address:?}: {err}");
        }
        let text = format!("[[device]]\nid = \"{DEV}\"\naddresses = [\"dynamic\", \"tcp://nas:port\"]");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("address \"tcp://nas:port\" is not usable: the port is not a number"), "{err}");
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(&dir.path().join("none.toml")).unwrap(), Config::default());
    }

    // The changes front-ends make.

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    const ME: u8 = 99;

    #[cfg(unix)]
    fn folder(id: &str, path: &str, devices: &[DeviceId]) -> FolderConfig {
        FolderConfig { devices: devices.to_vec(), ..FolderConfig::new(id.parse().unwrap(), path.into()) }
    }

    /// A configuration with devices 1 and 2 and folder "a" at /srv/a shared with device 1.
    #[cfg(unix)]
    fn two_devices_one_folder() -> Config {
        let mut c = Config::default();
        c.add_device(dev(ME), dev(1), Some("laptop".into()), None).unwrap();
        c.add_device(dev(ME), dev(2), None, None).unwrap();
        c.add_folder(folder("a", "/srv/a", &[dev(1)])).unwrap();
        c
    }

    /// `change` fails with an error whose text contains `want`, and leaves `c` as it was.
    #[track_caller]
    fn refused(c: &mut Config, want: &str, change: impl FnOnce(&mut Config) -> Result<Change, ChangeError>) {
        let before = c.clone();
        let err = change(c).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err:?}");
        assert_eq!(*c, before, "a refused change changes nothing");
    }

    #[test]
    fn add_device_defaults_to_dynamic_and_refuses_this_device_and_bad_addresses() {
        let mut c = Config::default();
        let change = c.add_device(dev(ME), dev(1), None, None).unwrap();
        assert_eq!(
            change,
            Change::DeviceAdded { id: dev(1), name: String::new(), addresses: dynamic_address() }
        );
        assert!(change.changed());
        assert_eq!(change.to_string(), format!("Added device {} (addresses: dynamic).", dev(1)));
        assert_eq!(c.device(&dev(1)).unwrap().addresses, ["dynamic"]);

        let addresses = vec!["tcp://nas:22000".to_owned(), "dynamic".to_owned()];
        let change = c.add_device(dev(ME), dev(2), Some("nas".into()), Some(addresses.clone())).unwrap();
        assert_eq!(
            change.to_string(),
            format!("Added device {} \"nas\" (addresses: tcp://nas:22000, dynamic).", dev(2))
        );
        assert_eq!(c.device(&dev(2)).unwrap().addresses, addresses);
        assert_eq!(c.devices.len(), 2);

        refused(&mut c, "this device's own ID", |c| c.add_device(dev(ME), dev(ME), None, None));
        let bad = Some(vec!["dynamic".into(), "tcp://nas:99999".into()]);
        refused(&mut c, "address \"tcp://nas:99999\" is not usable: the port is not a number", |c| {
            c.add_device(dev(ME), dev(3), None, bad)
        });
        refused(&mut c, "at least one address", |c| c.add_device(dev(ME), dev(3), None, Some(vec![])));
        assert!(Config::parse(&c.to_toml()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn adding_a_configured_device_again_updates_what_is_given() {
        let mut c = two_devices_one_folder();
        let unchanged = c.add_device(dev(ME), dev(1), None, None).unwrap();
        assert_eq!(unchanged, Change::DeviceUnchanged { id: dev(1) });
        assert!(!unchanged.changed());
        assert_eq!(c.add_device(dev(ME), dev(1), Some("laptop".into()), None).unwrap(), unchanged);

        let change = c.add_device(dev(ME), dev(1), Some("work laptop".into()), None).unwrap();
        assert_eq!(
            change,
            Change::DeviceUpdated { id: dev(1), name: Some("work laptop".into()), addresses: None }
        );
        assert!(
            change.to_string().ends_with("was already configured; set its name to \"work laptop\"."),
            "{change}"
        );

        let quic = vec!["quic://192.0.2.1:22000".to_owned()];
        let change = c.add_device(dev(ME), dev(1), Some("work laptop".into()), Some(quic.clone())).unwrap();
        assert_eq!(change, Change::DeviceUpdated { id: dev(1), name: None, addresses: Some(quic.clone()) });
        assert!(change.to_string().ends_with("set its addresses to quic://192.0.2.1:22000."), "{change}");
        let d = c.device(&dev(1)).unwrap();
        assert_eq!((d.name.as_str(), &d.addresses), ("work laptop", &quic));
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.folders[0].devices, [dev(1)], "updating a device keeps its shares");
    }

    #[cfg(unix)]
    #[test]
    fn remove_device_unshares_it_everywhere() {
        let mut c = two_devices_one_folder();
        c.add_folder(folder("b", "/srv/b", &[dev(2), dev(1)])).unwrap();
        c.add_folder(folder("c", "/srv/c", &[dev(2)])).unwrap();
        let change = c.remove_device(dev(1)).unwrap();
        assert_eq!(
            change,
            Change::DeviceRemoved { id: dev(1), unshared: vec!["a".parse().unwrap(), "b".parse().unwrap()] }
        );
        assert_eq!(
            change.to_string(),
            format!("Removed device {} and stopped sharing folders \"a\", \"b\" with it.", dev(1))
        );
        assert_eq!(c.devices.iter().map(|d| d.id).collect::<Vec<_>>(), [dev(2)]);
        let shares: Vec<&[DeviceId]> = c.folders.iter().map(|f| f.devices.as_slice()).collect();
        assert_eq!(shares, [&[][..], &[dev(2)], &[dev(2)]]);
        c.validate().unwrap();

        refused(&mut c, &format!("device {} is not a configured device", dev(1)), |c| {
            c.remove_device(dev(1))
        });
        assert_eq!(
            c.remove_device(dev(2)).unwrap().to_string(),
            format!("Removed device {} and stopped sharing folders \"b\", \"c\" with it.", dev(2))
        );
        assert!(c.devices.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn add_folder_checks_id_shares_and_path() {
        let mut c = two_devices_one_folder();
        let change = c
            .add_folder(FolderConfig {
                folder_type: FolderType::ReceiveOnly,
                versioning: Versioning::None,
                ..folder("b", "/srv/b", &[dev(1), dev(2), dev(1)])
            })
            .unwrap();
        assert_eq!(
            change.to_string(),
            "Added receive-only folder \"b\" at /srv/b (no versioning), shared with 2 devices."
        );
        assert_eq!(c.folder(&"b".parse().unwrap()).unwrap().devices, [dev(1), dev(2)], "each device once");
        let only = c.add_folder(folder("c", "/srv/c", &[])).unwrap();
        assert_eq!(
            only.to_string(),
            "Added send-receive folder \"c\" at /srv/c (trash can for 30 days), shared with no device yet."
        );

        refused(&mut c, "folder ID \"a\" is already used by the folder at /srv/a", |c| {
            c.add_folder(folder("a", "/srv/elsewhere", &[]))
        });
        refused(&mut c, &format!("device {} is not a configured device", dev(3)), |c| {
            c.add_folder(folder("d", "/srv/d", &[dev(1), dev(3)]))
        });
        refused(&mut c, &format!("device {} is not a configured device", dev(ME)), |c| {
            c.add_folder(folder("d", "/srv/d", &[dev(ME)]))
        });
        refused(&mut c, "folder path srv/d is not absolute", |c| c.add_folder(folder("d", "srv/d", &[])));
        refused(&mut c, "/srv/a is already the path of folder \"a\"", |c| {
            c.add_folder(folder("d", "/srv/a", &[]))
        });
        refused(&mut c, "/srv/a/./x/ is inside folder \"a\" at /srv/a", |c| {
            c.add_folder(folder("d", "/srv/a/./x/", &[]))
        });
        refused(&mut c, "/srv contains folder \"a\" at /srv/a", |c| c.add_folder(folder("d", "/srv", &[])));
        refused(&mut c, "/srv/b/../a/y is inside folder \"a\"", |c| {
            c.add_folder(folder("d", "/srv/b/../a/y", &[]))
        });
        // A common prefix of the text is not an overlap: only whole components count.
        c.add_folder(folder("d", "/srv/ab", &[])).unwrap();
        c.add_folder(folder("e", "/srv/a b", &[])).unwrap();
        assert_eq!(c.folders.len(), 5);
    }

    #[cfg(unix)]
    #[test]
    fn folder_overlaps_are_found_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let mut c = Config::default();
        c.add_folder(FolderConfig::new("a".parse().unwrap(), real.join("a"))).unwrap();
        let via_link = dir.path().join("link/a/new/deeper");
        refused(&mut c, "is inside folder \"a\"", |c| {
            c.add_folder(FolderConfig::new("b".parse().unwrap(), via_link))
        });
        refused(&mut c, "contains folder \"a\"", |c| {
            c.add_folder(FolderConfig::new("b".parse().unwrap(), dir.path().join("link")))
        });
    }

    #[cfg(unix)]
    #[test]
    fn share_and_unshare_are_idempotent_and_need_known_ids() {
        let mut c = two_devices_one_folder();
        let a: FolderId = "a".parse().unwrap();
        let shared = c.share(&a, dev(2)).unwrap();
        assert_eq!(shared, Change::Shared { folder: a.clone(), device: dev(2) });
        assert_eq!(shared.to_string(), format!("Shared folder \"a\" with device {}.", dev(2)));
        let again = c.share(&a, dev(2)).unwrap();
        assert_eq!(again.to_string(), format!("Folder \"a\" is already shared with device {}.", dev(2)));
        assert!(!again.changed());
        assert_eq!(c.folder(&a).unwrap().devices, [dev(1), dev(2)]);

        let unshared = c.unshare(&a, dev(1)).unwrap();
        assert_eq!(unshared.to_string(), format!("Stopped sharing folder \"a\" with device {}.", dev(1)));
        let again = c.unshare(&a, dev(1)).unwrap();
        assert_eq!(again, Change::NotShared { folder: a.clone(), device: dev(1) });
        assert!(!again.changed());
        assert_eq!(c.folder(&a).unwrap().devices, [dev(2)]);

        let nope: FolderId = "nope".parse().unwrap();
        refused(&mut c, "there is no folder with ID \"nope\"", |c| c.share(&nope, dev(1)));
        refused(&mut c, "there is no folder with ID \"nope\"", |c| c.unshare(&nope, dev(1)));
        refused(&mut c, "is not a configured device", |c| c.share(&a, dev(3)));
        refused(&mut c, "is not a configured device", |c| c.unshare(&a, dev(3)));
    }

    #[cfg(unix)]
    #[test]
    fn remove_folder_forgets_only_the_folder() {
        let mut c = two_devices_one_folder();
        let a: FolderId = "a".parse().unwrap();
        let change = c.remove_folder(&a).unwrap();
        assert_eq!(change, Change::FolderRemoved { id: a.clone(), path: "/srv/a".into() });
        assert_eq!(
            change.to_string(),
            "Removed folder \"a\" from the configuration; its files in /srv/a are untouched."
        );
        assert!(c.folders.is_empty());
        assert_eq!(c.devices.len(), 2, "its devices stay");
        refused(&mut c, "there is no folder with ID \"a\"", |c| c.remove_folder(&a));
        // The path is free again.
        c.add_folder(folder("a2", "/srv/a", &[])).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_change_that_breaks_another_rule_is_refused_whole() {
        // A hand-made config whose address check only `validate` makes.
        let mut c = two_devices_one_folder();
        c.devices[1].addresses = vec!["tcp://".into()];
        refused(&mut c, "would not be valid: device", |c| c.share(&"a".parse().unwrap(), dev(1)));
    }

    #[test]
    fn resolve_folder_path_resolves_what_exists_and_appends_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("there")).unwrap();
        assert_eq!(resolve_folder_path(&root.join("there")).unwrap(), root.join("there"));
        assert_eq!(resolve_folder_path(&root.join("there/./new/x/../y")).unwrap(), root.join("there/new/y"));
        assert_eq!(resolve_folder_path(&root.join("there/../new")).unwrap(), root.join("new"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("there"), root.join("link")).unwrap();
            assert_eq!(resolve_folder_path(&root.join("link/new")).unwrap(), root.join("there/new"));
        }
        let relative = resolve_folder_path(Path::new("some/where")).unwrap();
        assert!(relative.is_absolute() && relative.ends_with("some/where"), "{}", relative.display());
    }

    #[test]
    fn create_folder_root_makes_the_directory_and_its_marker() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b");
        create_folder_root(&root).unwrap();
        assert!(root.join(".stfolder").is_dir());
        create_folder_root(&root).unwrap();
        // A marker file, as old Syncthing versions made, is a marker too.
        std::fs::remove_dir(root.join(".stfolder")).unwrap();
        std::fs::write(root.join(".stfolder"), b"").unwrap();
        create_folder_root(&root).unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = create_folder_root(&dir.path().join("file")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotADirectory);
    }

    #[cfg(unix)]
    #[test]
    fn pausing_is_idempotent_and_refuses_what_is_not_configured() {
        let mut c = two_devices_one_folder();
        let a: FolderId = "a".parse().unwrap();
        assert_eq!(c.pause_folder(&a, true).unwrap(), Change::FolderPaused { id: a.clone(), paused: true });
        assert!(c.folder(&a).unwrap().paused);
        let again = c.pause_folder(&a, true).unwrap();
        assert!(!again.changed());
        assert_eq!(again.to_string(), "Folder \"a\" is already paused; nothing changed.");
        assert_eq!(c.pause_device(dev(2), true).unwrap().to_string(), format!("Paused device {}.", dev(2)));
        assert!(c.device(&dev(2)).unwrap().paused);
        refused(&mut c, "no folder", |c| c.pause_folder(&"b".parse().unwrap(), true));
        refused(&mut c, "not a configured device", |c| c.pause_device(dev(3), false));
    }

    #[cfg(unix)]
    #[test]
    fn an_edit_survives_json_and_does_what_its_method_does() {
        let edits = [
            Edit::AddDevice { id: dev(3), name: Some("nas".into()), addresses: None },
            Edit::Share { folder: "a".parse().unwrap(), device: dev(2) },
            Edit::AddFolder { folder: Box::new(folder("b", "/srv/b", &[dev(3)])) },
            Edit::PauseDevice { id: dev(1), paused: true },
        ];
        let (mut by_edit, mut by_method) = (two_devices_one_folder(), two_devices_one_folder());
        for edit in edits {
            let json = serde_json::to_string(&edit).unwrap();
            let back: Edit = serde_json::from_str(&json).unwrap();
            assert_eq!(back, edit, "{json}");
            by_edit.edit(dev(ME), back).unwrap();
        }
        by_method.add_device(dev(ME), dev(3), Some("nas".into()), None).unwrap();
        by_method.share(&"a".parse().unwrap(), dev(2)).unwrap();
        by_method.add_folder(folder("b", "/srv/b", &[dev(3)])).unwrap();
        by_method.pause_device(dev(1), true).unwrap();
        assert_eq!(by_edit, by_method);
        refused(&mut by_edit, "this device's own ID", |c| {
            c.edit(dev(ME), Edit::AddDevice { id: dev(ME), name: None, addresses: None })
        });
    }

    #[cfg(unix)]
    #[test]
    fn update_folder_sets_what_is_given_and_refuses_unknown_devices() {
        let mut c = two_devices_one_folder();
        let a: FolderId = "a".parse().unwrap();
        let label = |l: &str| FolderUpdate { label: Some(l.into()), ..FolderUpdate::default() };
        let change = c
            .update_folder(
                &a,
                FolderUpdate {
                    versioning: Some(Versioning::None),
                    devices: Some(vec![dev(2), dev(1), dev(2)]),
                    rescan_interval_s: Some(0),
                    watch: Some(false),
                    ..label("Photos")
                },
            )
            .unwrap();
        assert_eq!(
            change,
            Change::FolderUpdated {
                id: a.clone(),
                what: vec!["label", "versioning", "devices", "rescan interval", "watching"]
            }
        );
        let f = c.folder(&a).unwrap();
        assert_eq!(
            (f.label.as_str(), f.versioning, f.devices.clone()),
            ("Photos", Versioning::None, vec![dev(2), dev(1)])
        );
        assert_eq!((f.rescan_interval_s(&c.options), f.watch(&c.options)), (0, false));
        let same = c.update_folder(&a, FolderUpdate { watch: Some(false), ..label("Photos") }).unwrap();
        assert!(!same.changed(), "{same}");
        refused(&mut c, "not a configured device", |c| {
            c.update_folder(&a, FolderUpdate { devices: Some(vec![dev(7)]), ..label("x") })
        });
        refused(&mut c, "no folder", |c| c.update_folder(&"b".parse().unwrap(), label("x")));
    }

    #[cfg(unix)]
    #[test]
    fn update_device_never_adds_one() {
        let mut c = two_devices_one_folder();
        let change = c.update_device(dev(ME), dev(2), Some("nas".into()), None).unwrap();
        assert!(matches!(change, Change::DeviceUpdated { .. }), "{change}");
        refused(&mut c, "not a configured device", |c| {
            c.update_device(dev(ME), dev(7), Some("x".into()), None)
        });
        refused(&mut c, "needs at least one address", |c| {
            c.update_device(dev(ME), dev(2), None, Some(vec![]))
        });
    }

    #[test]
    fn set_name_trims_refuses_empty_and_says_when_nothing_changed() {
        let mut c = Config::parse("name = \"old\"").unwrap();
        let me = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD".parse().unwrap();
        let change = c.edit(me, Edit::SetName { name: "  laptop ".into() }).unwrap();
        assert!(change.changed());
        assert_eq!(change.to_string(), "This device is now called \"laptop\".");
        assert_eq!(c.name, "laptop");
        assert!(!c.set_name("laptop").unwrap().changed());
        assert!(matches!(c.set_name("  "), Err(ChangeError::EmptyName)));
        assert_eq!(c.name, "laptop");
    }

    #[test]
    fn the_gui_table_has_defaults_and_keeps_a_generated_key() {
        let mut c = Config::parse("").unwrap();
        assert_eq!(c.gui.address, DEFAULT_GUI_ADDRESS);
        assert!(!c.to_toml().contains("[gui]"), "defaults are not written out");
        assert!(c.gui.ensure_api_key());
        let key = c.gui.api_key.clone();
        assert_eq!(key.len(), 32);
        assert!(!c.gui.ensure_api_key(), "a key is made once");
        let back = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(back.gui.api_key, key);
        let c = Config::parse("[gui]\naddress = \"0.0.0.0:8080\"\npassword_hash = \"x\"").unwrap();
        assert_eq!((c.gui.address.as_str(), c.gui.password_hash.as_deref()), ("0.0.0.0:8080", Some("x")));
        assert!(Config::parse("[gui]\nport = 1").is_err(), "unknown keys are refused");
    }
}

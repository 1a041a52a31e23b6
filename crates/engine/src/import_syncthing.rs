//! `peerfold import-syncthing`: takes over a Syncthing home — its identity (`cert.pem`,
//! `key.pem`, so peers see the same device ID), its devices, its folders and its GUI address —
//! into a Peerfold home.
//!
//! It owns reading Syncthing's `config.xml` (the 1.19 format, which later versions keep) and
//! mapping it onto [`Config`]: [`parse`] and [`merge`] are pure, [`import`] does the I/O and
//! refuses what would lose something — a running Syncthing (whose database lock is held), a
//! Peerfold home that already has another identity, or any folder or device the configuration
//! rejects (then nothing at all is written). Settings Peerfold has no equivalent for are named
//! in notes, never dropped silently. The folders' `.stignore` files and `.stfolder` markers are
//! in the folders already; Syncthing's own index is not read: Peerfold scans the folders, and
//! the puller takes what peers have with the same content as metadata only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    self, ChangeError, Config, ConfigError, DeviceConfig, Edit, FolderConfig, FolderId, FolderType, MinFree,
    Versioning,
};
use crate::home::{self, Home, HomeError};
use crate::identity::{self, DeviceId, Identity, IdentityError};

/// Syncthing's configuration file inside its home.
pub const CONFIG_XML: &str = "config.xml";
/// A `config.xml` larger than this is not Syncthing's (a big one is a few hundred kilobytes).
const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// XML nodes parsed at most: bounds the memory a hostile or broken file can take.
const MAX_NODES: u32 = 4 << 20;

/// Why an import could not be planned or done. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "found no Syncthing home with a config.xml (looked in {}); name it: peerfold import-syncthing DIR",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoSyncthingHome { looked: Vec<PathBuf> },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {MAX_CONFIG_BYTES} bytes; it is not a Syncthing configuration", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is not valid XML: {reason}", path.display())]
    Xml { path: PathBuf, reason: String },
    #[error("config.xml: {0}")]
    Config(String),
    #[error("cannot use Syncthing's identity")]
    SyncthingIdentity(#[source] IdentityError),
    #[error(
        "config.xml does not list this Syncthing's own device {0}: are cert.pem and config.xml from the same home?"
    )]
    NotSelf(DeviceId),
    #[error(
        "Syncthing is running on {} (its database {} is locked); stop it first, so that it does not \
         sync the same folders as the same device",
        home.display(), lock.display()
    )]
    SyncthingRunning { home: PathBuf, lock: PathBuf },
    #[error("cannot tell whether Syncthing is running: cannot open {}", path.display())]
    LockCheck {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the Peerfold home {} already has device ID {ours}, and Syncthing's is {theirs}; import into \
         a new home (--home DIR), or move this one aside",
        home.display()
    )]
    OtherIdentity { home: PathBuf, ours: DeviceId, theirs: DeviceId },
    #[error("cannot read the Peerfold home's identity")]
    PeerfoldIdentity(#[source] IdentityError),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    PeerfoldConfig(#[from] ConfigError),
    #[error("cannot import {what}")]
    Change {
        what: String,
        #[source]
        source: ChangeError,
    },
    /// The message names the file and the step that failed.
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
}

/// Syncthing's configuration, mapped onto Peerfold's terms. Devices and folders are in the
/// order `config.xml` lists them; this device itself is not among the devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// This device's name.
    pub name: Option<String>,
    pub devices: Vec<DeviceConfig>,
    pub folders: Vec<FolderConfig>,
    /// The GUI's `HOST:PORT` and whether it used HTTPS.
    pub gui: Option<(String, bool)>,
    pub local_discovery: Option<bool>,
    pub global_discovery: Option<bool>,
    pub port_mapping: Option<bool>,
    pub min_home_disk_free: Option<MinFree>,
    /// `maxSendKbps`, `maxRecvKbps` (KiB/s, as ours) and `limitBandwidthInLan`.
    pub limits: Option<(u64, u64, bool)>,
    /// What did not carry over as it was, one sentence each.
    pub notes: Vec<String>,
}

/// Parses `config.xml` text of the Syncthing whose device ID is `me`.
pub fn parse(xml: &str, me: DeviceId) -> Result<Imported, ImportError> {
    let options =
        roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| ImportError::Xml { path: PathBuf::from(CONFIG_XML), reason: e.to_string() })?;
    let root = doc.root_element();
    if !root.has_tag_name("configuration") {
        return Err(ImportError::Config(format!(
            "the root element is <{}>, not <configuration>",
            root.tag_name().name()
        )));
    }
    let mut notes = Vec::new();

    // Only the direct children count: <defaults> holds a template <folder> and <device>.
    let (mut name, mut found_self) = (None, false);
    let mut devices = Vec::new();
    for d in elements(root, "device") {
        let id = device_id(attr(d, "id").unwrap_or_default())?;
        let device_name = attr(d, "name").unwrap_or_default().to_owned();
        if id == me {
            found_self = true;
            name = Some(device_name).filter(|n| !n.is_empty());
            continue;
        }
        let label = if device_name.is_empty() { id.to_string() } else { format!("{device_name:?}") };
        let mut addresses = Vec::new();
        for a in elements(d, "address").map(text) {
            match config::check_address(a) {
                Ok(()) => addresses.push(a.to_owned()),
                Err(reason) => notes.push(format!("device {label}: left out address {a:?}, which {reason}.")),
            }
        }
        if addresses.is_empty() {
            notes.push(format!(
                "device {label}: no address Peerfold can use; it is found by discovery (dynamic)."
            ));
            addresses.push("dynamic".to_owned());
        }
        if flag(attr(d, "introducer"))? == Some(true) {
            notes.push(format!(
                "device {label} was an introducer; Peerfold does not add the devices it introduces."
            ));
        }
        if flag(child_text(d, "autoAcceptFolders"))? == Some(true) {
            notes.push(format!(
                "device {label} had its folders accepted automatically; Peerfold lists its offers \
                 under `peerfold pending` instead."
            ));
        }
        if flag(child_text(d, "untrusted"))? == Some(true) {
            notes.push(format!(
                "device {label} was untrusted (encrypted folders), which Peerfold does not support; \
                 it is imported as a normal device, paused."
            ));
        }
        let paused = flag(child_text(d, "paused"))?.unwrap_or(false)
            || flag(child_text(d, "untrusted"))? == Some(true);
        devices.push(DeviceConfig {
            id,
            name: device_name,
            addresses,
            paused,
            auto_accept_folders: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            // Syncthing's "Kbps" are KiB/s too; a value that is no number is no limit.
            max_send_kibps: child_text(d, "maxSendKbps").and_then(|t| t.trim().parse().ok()).unwrap_or(0),
            max_recv_kibps: child_text(d, "maxRecvKbps").and_then(|t| t.trim().parse().ok()).unwrap_or(0),
        });
    }

    // A mixed-up home would import another device's folders under this identity.
    if !found_self {
        return Err(ImportError::NotSelf(me));
    }

    let mut folders = Vec::new();
    for f in elements(root, "folder") {
        if let Some(folder) = folder(f, me, &devices, &mut notes)? {
            folders.push(folder);
        }
    }

    let gui = match elements(root, "gui").next() {
        Some(g) => gui(g, &mut notes)?,
        None => None,
    };

    let (mut local_discovery, mut global_discovery, mut port_mapping, mut min_home_disk_free) =
        (None, None, None, None);
    let mut limits = None;
    if let Some(o) = elements(root, "options").next() {
        let kibps = |name| child_text(o, name).and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
        let lan = flag(child_text(o, "limitBandwidthInLan"))?.unwrap_or(false);
        limits = Some((kibps("maxSendKbps"), kibps("maxRecvKbps"), lan));
        local_discovery = flag(child_text(o, "localAnnounceEnabled"))?;
        global_discovery = flag(child_text(o, "globalAnnounceEnabled"))?;
        port_mapping = flag(child_text(o, "natEnabled"))?;
        if let Some(m) = elements(o, "minHomeDiskFree").next() {
            min_home_disk_free = min_free(m, "minHomeDiskFree", &mut notes);
        }
        let listen: Vec<&str> = elements(o, "listenAddress").map(text).filter(|a| *a != "default").collect();
        if !listen.is_empty() {
            notes.push(format!(
                "Syncthing listened on {}; pass the same to `peerfold serve --listen` (tcp:// and \
                 quic:// only).",
                listen.join(", ")
            ));
        }
        if global_discovery == Some(true) {
            notes.push(
                "global discovery: Peerfold announces on the BitTorrent DHT instead of Syncthing's \
                 discovery servers ([options] global_discovery = false turns it off)."
                    .to_owned(),
            );
        }
    }

    Ok(Imported {
        name,
        devices,
        folders,
        gui,
        local_discovery,
        global_discovery,
        port_mapping,
        min_home_disk_free,
        limits,
        notes,
    })
}

/// One `<folder>`; `None` (with a note) for one Peerfold cannot take.
fn folder(
    f: roxmltree::Node<'_, '_>,
    me: DeviceId,
    devices: &[DeviceConfig],
    notes: &mut Vec<String>,
) -> Result<Option<FolderConfig>, ImportError> {
    let raw_id = attr(f, "id").unwrap_or_default();
    let id: FolderId = raw_id.parse().map_err(|e: String| ImportError::Config(e))?;
    let folder_type = match attr(f, "type").unwrap_or("sendreceive") {
        "sendreceive" | "" => FolderType::SendReceive,
        "sendonly" => FolderType::SendOnly,
        "receiveonly" => FolderType::ReceiveOnly,
        other => {
            notes.push(format!(
                "folder \"{id}\" is left out: its type {other:?} (encrypted) has no Peerfold equivalent."
            ));
            return Ok(None);
        }
    };
    let path = expand_home(attr(f, "path").unwrap_or_default());
    if !path.is_absolute() {
        notes.push(format!(
            "folder \"{id}\" is left out: its path {} is not absolute; add it with `peerfold folder add`.",
            path.display()
        ));
        return Ok(None);
    }
    if let Some(fs) = child_text(f, "filesystemType").filter(|t| *t != "basic") {
        notes.push(format!(
            "folder \"{id}\" is left out: its file system type {fs:?} is not a plain directory."
        ));
        return Ok(None);
    }
    let mut shared = Vec::new();
    for d in elements(f, "device") {
        let d = device_id(attr(d, "id").unwrap_or_default())?;
        if d == me || shared.contains(&d) {
            continue;
        }
        if devices.iter().any(|k| k.id == d) {
            shared.push(d);
        } else {
            notes.push(format!(
                "folder \"{id}\": not shared with {d}, which config.xml does not list as a device."
            ));
        }
    }
    let mut folder = FolderConfig {
        label: attr(f, "label").unwrap_or_default().to_owned(),
        folder_type,
        devices: shared,
        paused: flag(child_text(f, "paused"))?.unwrap_or(false),
        versioning: match elements(f, "versioning").next() {
            Some(v) => versioning(v, &id, notes)?,
            None => Versioning::None,
        },
        ..FolderConfig::new(id.clone(), path)
    };
    if let Some(s) = attr(f, "rescanIntervalS") {
        let s: u64 =
            s.parse().map_err(|_| ImportError::Config(format!("folder \"{id}\": rescanIntervalS {s:?}")))?;
        folder.rescan_interval_s = Some(s);
    }
    if flag(attr(f, "fsWatcherEnabled"))? == Some(false) {
        folder.watch = Some(false);
    }
    if let Some(m) = elements(f, "minDiskFree").next() {
        folder.min_disk_free =
            min_free(m, &format!("folder \"{id}\": minDiskFree"), notes).unwrap_or_default();
    }
    // `false` is Syncthing's default everywhere; Peerfold's default on Windows is to ignore them.
    if flag(attr(f, "ignorePerms"))? == Some(true) {
        folder.ignore_permissions = Some(true);
    }
    if flag(child_text(f, "ignoreDelete"))? == Some(true) {
        notes.push(format!("folder \"{id}\" ignored deletes from peers; Peerfold applies them."));
    }
    Ok(Some(folder))
}

/// A folder's `<versioning>`: the trash can as it is; simple and staggered as the trash can
/// that keeps as long, with a note; anything else as none, with a note.
fn versioning(
    v: roxmltree::Node<'_, '_>,
    id: &FolderId,
    notes: &mut Vec<String>,
) -> Result<Versioning, ImportError> {
    let param =
        |key: &str| elements(v, "param").find(|p| attr(*p, "key") == Some(key)).and_then(|p| attr(p, "val"));
    let number = |key: &str, default: u64| -> Result<u64, ImportError> {
        match param(key).map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| {
                ImportError::Config(format!("folder \"{id}\": versioning parameter {key} = {s:?}"))
            }),
        }
    };
    let days = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let kind = attr(v, "type").unwrap_or_default();
    let versioning = match kind {
        "" => return Ok(Versioning::None),
        "trashcan" => Versioning::Trashcan { keep_days: days(number("cleanoutDays", 0)?) },
        "simple" => {
            let keep_days = days(number("cleanoutDays", 0)?);
            let versioning = Versioning::Trashcan { keep_days };
            notes.push(format!(
                "folder \"{id}\": Syncthing kept the last {} versions of each file (simple \
                 versioning); Peerfold keeps every replaced or deleted file in the trash can \
                 instead: {versioning}.",
                number("keep", 5)?
            ));
            versioning
        }
        "staggered" => {
            // maxAge in seconds, 0 = forever; whole days, rounded up.
            let max_age = number("maxAge", 365 * 86_400)?;
            let versioning = Versioning::Trashcan { keep_days: days(max_age.div_ceil(86_400)) };
            notes.push(format!(
                "folder \"{id}\": Syncthing thinned out old versions (staggered versioning); \
                 Peerfold keeps every replaced or deleted file in the trash can for as long: \
                 {versioning}."
            ));
            versioning
        }
        other => {
            notes.push(format!("folder \"{id}\": {other:?} versioning has no Peerfold equivalent; none."));
            return Ok(Versioning::None);
        }
    };
    if let Some(p) = child_text(v, "fsPath").filter(|p| !p.is_empty()) {
        notes.push(format!(
            "folder \"{id}\": old versions were kept in {p}; Peerfold keeps them in .stversions in \
             the folder (those in {p} stay where they are)."
        ));
    }
    Ok(versioning)
}

/// `<gui>`: its address if Peerfold can listen there, and whether it used HTTPS.
fn gui(g: roxmltree::Node<'_, '_>, notes: &mut Vec<String>) -> Result<Option<(String, bool)>, ImportError> {
    let tls = flag(attr(g, "tls"))?.unwrap_or(false);
    if child_text(g, "password").is_some_and(|p| !p.is_empty()) {
        notes.push(
            "the GUI password cannot be carried over (Syncthing keeps a bcrypt hash); set one with \
             `peerfold gui password`."
                .to_owned(),
        );
    }
    let Some(address) = child_text(g, "address").filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    // Syncthing also takes a URL-ish "http://host:port" in some setups.
    let bare = address.split_once("://").map_or(address, |(_, rest)| rest).trim_end_matches('/');
    let loopback = match bare.parse::<SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => match bare.rsplit_once(':') {
            Some(("localhost", port)) if port.parse::<u16>().is_ok() => true,
            Some((_, port)) if port.parse::<u16>().is_ok() => false,
            _ => {
                notes.push(format!(
                    "the GUI address {address:?} is not HOST:PORT; Peerfold's default is kept."
                ));
                return Ok(None);
            }
        },
    };
    if !loopback {
        let port = bare.rsplit_once(':').map_or("8384", |(_, p)| p);
        notes.push(format!(
            "the GUI listened on {bare}; Peerfold listens beyond loopback only with a password, so it \
             is set to 127.0.0.1:{port}: run `peerfold gui password`, then set [gui] address."
        ));
        return Ok(Some((format!("127.0.0.1:{port}"), tls)));
    }
    Ok(Some((bare.to_owned(), tls)))
}

/// `<minDiskFree unit="%">1</minDiskFree>` and the like; `None` with a note when Peerfold
/// cannot say the same (a fraction).
fn min_free(m: roxmltree::Node<'_, '_>, what: &str, notes: &mut Vec<String>) -> Option<MinFree> {
    let value = text(m);
    let unit = attr(m, "unit").unwrap_or("%");
    match format!("{value}{unit}").parse() {
        Ok(min) => Some(min),
        Err(_) => {
            notes.push(format!("{what} {value}{unit} is kept as Peerfold's default, 1%."));
            None
        }
    }
}

/// Applies `imported` to `config` (this device is `me`): the name, devices added or given the
/// imported name and addresses, folders added (one already configured here is left as it is,
/// with a note), the GUI address and the options. Returns one line per change. On an error
/// `config` may be half changed: callers merge into a copy.
pub fn merge(config: &mut Config, me: DeviceId, imported: &Imported) -> Result<Vec<String>, ImportError> {
    let mut lines = Vec::new();
    let change = |what: String| move |source| ImportError::Change { what, source };
    if let Some(name) = &imported.name {
        let c = config.set_name(name).map_err(change(format!("the device name {name:?}")))?;
        lines.push(c.to_string());
    }
    for d in &imported.devices {
        let c = config
            .add_device(me, d.id, Some(d.name.clone()), Some(d.addresses.clone()))
            .map_err(change(format!("device {}", d.id)))?;
        lines.push(c.to_string());
        if d.paused {
            let c = config.pause_device(d.id, true).map_err(change(format!("device {}", d.id)))?;
            lines.push(c.to_string());
        }
        if d.max_send_kibps != 0 || d.max_recv_kibps != 0 {
            let limits = Edit::DeviceLimits {
                id: d.id,
                max_send_kibps: Some(d.max_send_kibps),
                max_recv_kibps: Some(d.max_recv_kibps),
            };
            let c = config.edit(me, limits).map_err(change(format!("device {}", d.id)))?;
            lines.push(c.to_string());
        }
    }
    for f in &imported.folders {
        if let Some(existing) = config.folder(&f.id) {
            lines.push(format!(
                "Folder \"{}\" is already configured here (at {}); left as it is.",
                f.id,
                existing.path.display()
            ));
            continue;
        }
        let c = config.add_folder(f.clone()).map_err(change(format!("folder \"{}\"", f.id)))?;
        lines.push(c.to_string());
        if f.paused {
            lines.push(format!("Folder \"{}\" is paused, as it was in Syncthing.", f.id));
        }
    }
    if let Some((address, tls)) = &imported.gui
        && (config.gui.address != *address || config.gui.tls != *tls)
    {
        config.gui.address.clone_from(address);
        config.gui.tls = *tls;
        let https = if *tls { " over HTTPS" } else { "" };
        lines.push(format!("The web UI and API listen on {address}{https}."));
    }
    let options = &mut config.options;
    for (what, value, field) in [
        ("local discovery", imported.local_discovery, &mut options.local_discovery),
        ("global discovery", imported.global_discovery, &mut options.global_discovery),
        ("port mapping", imported.port_mapping, &mut options.port_mapping),
    ] {
        if let Some(v) = value.filter(|v| v != field) {
            *field = v;
            lines.push(format!("Turned {what} {}.", if v { "on" } else { "off" }));
        }
    }
    if let Some(m) = imported.min_home_disk_free.filter(|m| *m != options.min_home_disk_free) {
        options.min_home_disk_free = m;
        lines.push(format!("The home's disk keeps {m} free."));
    }
    if let Some((send, recv, lan)) = imported
        .limits
        .filter(|&(s, r, l)| (s, r, l) != (options.max_send_kibps, options.max_recv_kibps, options.limit_lan))
    {
        let edit = Edit::SetLimits {
            max_send_kibps: Some(send),
            max_recv_kibps: Some(recv),
            limit_lan: Some(lan),
            schedule: None,
            pause_on_metered: None,
            pause_on_battery: None,
        };
        let c = config.edit(me, edit).map_err(change("the bandwidth limits".to_owned()))?;
        lines.push(c.to_string());
    }
    config.validate().map_err(ImportError::Config)?;
    Ok(lines)
}

/// What an import did, or would do.
#[derive(Debug)]
pub struct Report {
    pub syncthing_home: PathBuf,
    pub device_id: DeviceId,
    /// Whether the identity was (or would be) copied; false when the home had it already.
    pub identity_copied: bool,
    /// One line per change to the configuration.
    pub changes: Vec<String>,
    pub notes: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Whether Syncthing runs (only a dry run goes on then; the import refuses).
    pub syncthing_running: bool,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dry_run {
            writeln!(f, "Dry run: nothing was changed. Importing would do this.")?;
        }
        writeln!(f, "From Syncthing's home {}:", self.syncthing_home.display())?;
        if self.identity_copied {
            writeln!(f, "Took its identity (cert.pem, key.pem): device ID {}.", self.device_id)?;
        } else {
            writeln!(f, "The identity is already this device's: device ID {}.", self.device_id)?;
        }
        for line in &self.changes {
            writeln!(f, "{line}")?;
        }
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        if self.dry_run && self.syncthing_running {
            writeln!(f, "Syncthing is running there: stop it before importing.")?;
        }
        Ok(())
    }
}

/// Syncthing's home for this user: where 1.19 keeps it (`~/.config/syncthing` on Linux), or
/// where later versions put new ones (`~/.local/state/syncthing`); the first that has a
/// `config.xml`.
pub fn default_syncthing_home() -> Result<PathBuf, ImportError> {
    let candidates = syncthing_home_candidates();
    candidates
        .iter()
        .find(|dir| dir.join(CONFIG_XML).is_file())
        .cloned()
        .ok_or(ImportError::NoSyncthingHome { looked: candidates })
}

fn syncthing_home_candidates() -> Vec<PathBuf> {
    let Some(dirs) = directories::BaseDirs::new() else {
        return Vec::new();
    };
    if cfg!(windows) {
        vec![dirs.data_local_dir().join("Syncthing")]
    } else if cfg!(target_os = "macos") {
        vec![dirs.config_dir().join("Syncthing")]
    } else {
        let mut v = vec![dirs.config_dir().join("syncthing")];
        v.extend(dirs.state_dir().map(|d| d.join("syncthing")));
        v
    }
}

/// Imports the Syncthing home `syncthing_home` (default: [`default_syncthing_home`]) into the
/// Peerfold home `peerfold_home`: the identity (refused if the Peerfold home has another), then
/// the configuration, saved once. A dry run reads both homes and changes nothing.
pub fn import(
    syncthing_home: Option<&Path>,
    peerfold_home: &Path,
    dry_run: bool,
) -> Result<Report, ImportError> {
    let syncthing_home = match syncthing_home {
        Some(h) => h.to_owned(),
        None => default_syncthing_home()?,
    };
    let syncthing_home = syncthing_home.as_path();
    let syncthing_identity = Identity::load(syncthing_home).map_err(ImportError::SyncthingIdentity)?;
    let me = syncthing_identity.device_id();
    let xml_path = syncthing_home.join(CONFIG_XML);
    let imported = parse(&read_config_xml(&xml_path)?, me).map_err(|e| match e {
        ImportError::Xml { reason, .. } => ImportError::Xml { path: xml_path.clone(), reason },
        e => e,
    })?;
    let running = syncthing_running(syncthing_home)?;
    if !dry_run && let Some(lock) = running {
        return Err(ImportError::SyncthingRunning { home: syncthing_home.to_owned(), lock });
    }
    // The lock keeps a daemon (or another import) off the home while it changes; a dry run
    // changes nothing and takes none.
    let home = if dry_run { None } else { Some(Home::open(peerfold_home)?) };
    let identity_copied = match existing_identity(peerfold_home)? {
        Some(ours) if ours != me => {
            return Err(ImportError::OtherIdentity { home: peerfold_home.to_owned(), ours, theirs: me });
        }
        Some(_) => false,
        None => true,
    };
    let config_path = peerfold_home.join(home::CONFIG_FILE);
    let mut config = Config::load(&config_path)?;
    let changes = merge(&mut config, me, &imported)?;
    if let Some(home) = &home {
        if identity_copied {
            copy_identity(syncthing_home, home.dir())?;
            let copied = Identity::load(home.dir()).map_err(ImportError::PeerfoldIdentity)?;
            debug_assert_eq!(copied.device_id(), me);
        }
        config.save(&config_path)?;
    }
    Ok(Report {
        syncthing_home: syncthing_home.to_owned(),
        device_id: me,
        identity_copied,
        changes,
        notes: imported.notes,
        dry_run,
        syncthing_running: running.is_some(),
    })
}

fn read_config_xml(path: &Path) -> Result<String, ImportError> {
    use std::io::Read as _;
    let read = |source| ImportError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read)?;
    if file.metadata().map_err(read)?.len() > MAX_CONFIG_BYTES {
        return Err(ImportError::TooLarge { path: path.to_owned() });
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(read)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ImportError::TooLarge { path: path.to_owned() });
    }
    Ok(text)
}

/// The lock file of the database a running Syncthing holds: its LevelDB (1.x) keeps an
/// exclusive `flock` on `index-*/LOCK` while it runs. `Some(path)` when it is held.
fn syncthing_running(syncthing_home: &Path) -> Result<Option<PathBuf>, ImportError> {
    let entries = match std::fs::read_dir(syncthing_home) {
        Ok(e) => e,
        Err(source) => return Err(ImportError::Read { path: syncthing_home.to_owned(), source }),
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("index-") {
            continue;
        }
        let lock = entry.path().join("LOCK");
        let file = match std::fs::File::open(&lock) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ImportError::LockCheck { path: lock, source }),
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Some(lock)),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(ImportError::LockCheck { path: lock, source });
            }
        }
    }
    Ok(None)
}

/// The device ID of the identity already in a Peerfold home, if it has one.
fn existing_identity(peerfold_home: &Path) -> Result<Option<DeviceId>, ImportError> {
    let cert = peerfold_home.join(identity::CERT_FILE);
    let key = peerfold_home.join(identity::KEY_FILE);
    let exists = |p: &Path| p.try_exists().map_err(|source| ImportError::Read { path: p.to_owned(), source });
    if !exists(&cert)? && !exists(&key)? {
        return Ok(None);
    }
    // Half an identity is an error here too: Identity::load names the missing file.
    Ok(Some(Identity::load(peerfold_home).map_err(ImportError::PeerfoldIdentity)?.device_id()))
}

/// Copies `key.pem` (owner only) and then `cert.pem` byte for byte, each written atomically.
fn copy_identity(from: &Path, to: &Path) -> Result<(), ImportError> {
    for (name, mode) in [(identity::KEY_FILE, 0o600), (identity::CERT_FILE, 0o644)] {
        let source = from.join(name);
        let data =
            std::fs::read(&source).map_err(|e| ImportError::Read { path: source.clone(), source: e })?;
        crate::fsutil::write_atomic(&to.join(name), &data, mode)?;
    }
    Ok(())
}

/// `~` and `~/…` as Syncthing expands them.
fn expand_home(path: &str) -> PathBuf {
    let home = || directories::BaseDirs::new().map(|d| d.home_dir().to_owned());
    if path == "~" {
        return home().unwrap_or_else(|| PathBuf::from(path));
    }
    match path.strip_prefix("~/").or_else(|| path.strip_prefix("~\\")) {
        Some(rest) => home().map_or_else(|| PathBuf::from(path), |h| h.join(rest)),
        None => PathBuf::from(path),
    }
}

fn elements<'a, 'input: 'a>(
    node: roxmltree::Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> + 'a {
    node.children().filter(move |c| c.is_element() && c.has_tag_name(name))
}

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attribute(name)
}

fn text<'a>(node: roxmltree::Node<'a, '_>) -> &'a str {
    node.text().unwrap_or_default().trim()
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children().find(|c| c.is_element() && c.has_tag_name(name)).map(text)
}

/// A boolean as Go's `strconv.ParseBool` reads it (Syncthing writes `true`/`false`).
fn flag(value: Option<&str>) -> Result<Option<bool>, ImportError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(ImportError::Config(format!("{other:?} is not true or false"))),
    }
}

fn device_id(s: &str) -> Result<DeviceId, ImportError> {
    s.parse().map_err(|e| ImportError::Config(format!("{s:?} is not a device ID: {e}")))
}

#[cfg(test)]
mod tests {
    // Tests marked `#[cfg(unix)]` below use Unix absolute folder paths (`/srv/a`) as fixtures,
    // which Windows takes as relative (no drive): they test the rules, not the platform, and
    // run on Linux; the Windows unit-test run under Wine (README, "Platforms") leaves them out.
    use super::*;

    fn id(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 32])
    }

    /// A config.xml as Syncthing 1.19 writes it (trimmed): this device, two peers, four
    /// folders, and a <defaults> block whose template folder and device must be ignored.
    fn config_xml(me: DeviceId) -> String {
        let (a, b) = (id(1), id(2));
        format!(
            r#"<configuration version="36">
    <folder id="photos" label="Photos" path="/srv/photos" type="sendreceive" rescanIntervalS="60" fsWatcherEnabled="false" fsWatcherDelayS="10" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{me}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <device id="{a}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <device id="{b}" introducedBy=""><encryptionPassword></encryptionPassword></device>
        <minDiskFree unit="%">5</minDiskFree>
        <versioning type="trashcan">
            <param key="cleanoutDays" val="7"></param>
            <cleanupIntervalS>3600</cleanupIntervalS>
            <fsPath></fsPath>
            <fsType>basic</fsType>
        </versioning>
        <paused>false</paused>
        <ignoreDelete>false</ignoreDelete>
    </folder>
    <folder id="docs" label="" path="/home/u/Docs" type="sendonly" rescanIntervalS="3600" fsWatcherEnabled="true" ignorePerms="true">
        <device id="{me}" introducedBy=""></device>
        <device id="{a}" introducedBy=""></device>
        <minDiskFree unit="GB">2</minDiskFree>
        <versioning type="simple">
            <param key="keep" val="5"></param>
            <param key="cleanoutDays" val="0"></param>
            <fsPath>/backup/docs</fsPath>
        </versioning>
        <paused>true</paused>
    </folder>
    <folder id="inbox" path="/srv/inbox" type="receiveonly" rescanIntervalS="3600" fsWatcherEnabled="true">
        <device id="{me}" introducedBy=""></device>
        <versioning type="staggered">
            <param key="maxAge" val="2592000"></param>
            <param key="cleanInterval" val="3600"></param>
        </versioning>
    </folder>
    <folder id="secret" path="/srv/secret" type="receiveencrypted">
        <device id="{me}" introducedBy=""></device>
    </folder>
    <device id="{me}" name="nas" compression="metadata" introducer="false">
        <address>dynamic</address>
        <paused>false</paused>
    </device>
    <device id="{a}" name="laptop" compression="metadata" introducer="false">
        <address>dynamic</address>
        <address>tcp://192.0.2.7:22000</address>
        <address>relay://192.0.2.9:22067/?id=X</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
        <maxSendKbps>512</maxSendKbps>
        <maxRecvKbps>0</maxRecvKbps>
    </device>
    <device id="{b}" name="" compression="metadata" introducer="true">
        <address>quic4://192.0.2.8:22000</address>
        <paused>true</paused>
        <autoAcceptFolders>true</autoAcceptFolders>
    </device>
    <gui enabled="true" tls="true" debugging="false">
        <address>127.0.0.1:9090</address>
        <user>admin</user>
        <password>$2a$10$abcdefghijklmnopqrstuv</password>
        <apikey>XUPatxwpbtAcSo6Lj9EE6Ko22zFyss4G</apikey>
    </gui>
    <options>
        <listenAddress>default</listenAddress>
        <globalAnnounceEnabled>true</globalAnnounceEnabled>
        <maxRecvKbps>4096</maxRecvKbps>
        <limitBandwidthInLan>true</limitBandwidthInLan>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <natEnabled>false</natEnabled>
        <minHomeDiskFree unit="%">2</minHomeDiskFree>
    </options>
    <defaults>
        <folder id="" label="" path="~" type="sendreceive" rescanIntervalS="3600">
            <device id="{me}" introducedBy=""></device>
        </folder>
        <device id="" compression="metadata" introducer="false"></device>
    </defaults>
</configuration>
"#
        )
    }

    fn note<'a>(imported: &'a Imported, part: &str) -> &'a str {
        imported
            .notes
            .iter()
            .find(|n| n.contains(part))
            .unwrap_or_else(|| panic!("no note with {part:?} in {:#?}", imported.notes))
    }

    #[cfg(unix)]
    #[test]
    fn a_syncthing_config_maps_onto_peerfolds() {
        let me = id(9);
        let i = parse(&config_xml(me), me).unwrap();
        assert_eq!(i.name.as_deref(), Some("nas"));

        // Devices: not this one; unusable addresses left out; paused kept.
        assert_eq!(
            i.devices,
            vec![
                DeviceConfig {
                    id: id(1),
                    name: "laptop".into(),
                    addresses: vec!["dynamic".into(), "tcp://192.0.2.7:22000".into()],
                    paused: false,
                    auto_accept_folders: false,
                    introducer: false,
                    skip_introduction_removals: false,
                    introduced_by: None,
                    max_send_kibps: 512,
                    max_recv_kibps: 0,
                },
                DeviceConfig {
                    id: id(2),
                    name: String::new(),
                    addresses: vec!["quic4://192.0.2.8:22000".into()],
                    paused: true,
                    auto_accept_folders: false,
                    introducer: false,
                    skip_introduction_removals: false,
                    introduced_by: None,
                    max_send_kibps: 0,
                    max_recv_kibps: 0,
                },
            ]
        );
        assert!(note(&i, "relay://").contains("left out address"));
        note(&i, "was an introducer");
        note(&i, "accepted automatically");

        // Folders: the encrypted one left out, the template in <defaults> ignored.
        let ids: Vec<&str> = i.folders.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["photos", "docs", "inbox"]);
        note(&i, "\"secret\" is left out");
        let photos = &i.folders[0];
        assert_eq!(photos.label, "Photos");
        assert_eq!(photos.path, PathBuf::from("/srv/photos"));
        assert_eq!(photos.folder_type, FolderType::SendReceive);
        assert_eq!(photos.devices, [id(1), id(2)]);
        assert_eq!(photos.rescan_interval_s, Some(60));
        assert_eq!(photos.watch, Some(false));
        assert!(!photos.paused);
        assert_eq!(photos.versioning, Versioning::Trashcan { keep_days: 7 });
        assert_eq!(photos.min_disk_free, MinFree::Percent(5));

        let docs = &i.folders[1];
        assert_eq!(docs.folder_type, FolderType::SendOnly);
        assert_eq!(docs.devices, [id(1)]);
        assert_eq!(docs.watch, None);
        assert!(docs.paused);
        assert_eq!(docs.min_disk_free, MinFree::Bytes(2_000_000_000));
        // Simple versioning: the trash can, forever (cleanoutDays 0), with a note saying so.
        assert_eq!(docs.versioning, Versioning::Trashcan { keep_days: 0 });
        assert!(note(&i, "simple versioning").contains("last 5 versions"));
        note(&i, "/backup/docs");
        assert_eq!((photos.ignore_permissions, docs.ignore_permissions), (None, Some(true)));

        // Staggered versioning, 30 days of maxAge: the trash can for 30 days.
        let inbox = &i.folders[2];
        assert_eq!(inbox.folder_type, FolderType::ReceiveOnly);
        assert_eq!(inbox.versioning, Versioning::Trashcan { keep_days: 30 });
        note(&i, "staggered");

        assert_eq!(i.gui, Some(("127.0.0.1:9090".into(), true)));
        note(&i, "GUI password");
        assert_eq!(i.local_discovery, Some(false));
        assert_eq!(i.global_discovery, Some(true));
        assert_eq!(i.port_mapping, Some(false));
        assert_eq!(i.min_home_disk_free, Some(MinFree::Percent(2)));
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_without_versioning_keeps_none() {
        let me = id(9);
        let xml = format!(
            r#"<configuration version="36">
                <folder id="f" path="/srv/f" type="sendreceive"><device id="{me}"></device>
                    <versioning></versioning></folder>
                <folder id="g" path="/srv/g" type="sendreceive"><device id="{me}"></device></folder>
                <device id="{me}" name="x"></device>
            </configuration>"#
        );
        let i = parse(&xml, me).unwrap();
        assert_eq!(i.folders[0].versioning, Versioning::None);
        assert_eq!(i.folders[1].versioning, Versioning::None);
    }

    #[test]
    fn a_gui_beyond_loopback_stays_on_loopback_until_a_password_is_set() {
        let me = id(9);
        let xml = format!(
            r#"<configuration version="36"><device id="{me}" name="x"></device>
                <gui enabled="true" tls="false"><address>0.0.0.0:8385</address></gui></configuration>"#
        );
        let i = parse(&xml, me).unwrap();
        assert_eq!(i.gui, Some(("127.0.0.1:8385".into(), false)));
        assert!(note(&i, "listened on 0.0.0.0:8385").contains("peerfold gui password"));
    }

    #[test]
    fn a_config_of_another_device_or_not_syncthings_is_refused() {
        let me = id(9);
        let other = config_xml(id(8));
        assert!(matches!(parse(&other, me), Err(ImportError::NotSelf(d)) if d == me));
        assert!(matches!(parse("<config/>", me), Err(ImportError::Config(_))));
        assert!(matches!(parse("<configuration", me), Err(ImportError::Xml { .. })));
        let bad_id = r#"<configuration><device id="NOT-AN-ID"></device></configuration>"#;
        let err = parse(bad_id, me).unwrap_err();
        assert!(err.to_string().contains("NOT-AN-ID"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn merged_into_a_new_config_it_is_valid_and_saved_as_read() {
        let me = id(9);
        let i = parse(&config_xml(me), me).unwrap();
        let mut config = Config::default();
        let lines = merge(&mut config, me, &i).unwrap();
        assert!(lines.iter().any(|l| l.contains("now called \"nas\"")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("Added device") && l.contains("laptop")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("Paused device")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("folder \"photos\"")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("listen on 127.0.0.1:9090 over HTTPS")), "{lines:#?}");
        assert_eq!(config.name, "nas");
        assert_eq!(config.devices, i.devices);
        assert_eq!(config.folders, i.folders);
        assert_eq!(config.gui.address, "127.0.0.1:9090");
        assert!(config.gui.tls);
        assert!(!config.options.local_discovery && config.options.global_discovery);
        assert!(!config.options.port_mapping);
        let o = &config.options;
        assert_eq!((o.max_send_kibps, o.max_recv_kibps, o.limit_lan), (0, 4096, true));
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);

        // Again: the folders are there already and left alone; nothing else changes.
        let before = config.clone();
        let lines = merge(&mut config, me, &i).unwrap();
        assert!(lines.iter().any(|l| l.contains("\"photos\" is already configured")), "{lines:#?}");
        assert_eq!(config, before);
    }

    /// A Syncthing home: its identity (made as Syncthing makes one) and `config.xml`.
    fn syncthing_home(dir: &Path) -> DeviceId {
        let me = Identity::load_or_generate(dir).unwrap().device_id();
        std::fs::write(dir.join(CONFIG_XML), config_xml(me)).unwrap();
        me
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn a_dry_run_changes_nothing_and_the_import_takes_identity_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st");
        std::fs::create_dir(&st).unwrap();
        let me = syncthing_home(&st);
        let pf = dir.path().join("pf");
        let st_before = files_in(&st);

        let report = import(Some(&st), &pf, true).unwrap();
        assert!(report.dry_run && report.identity_copied && !report.syncthing_running);
        assert_eq!(report.device_id, me);
        let text = report.to_string();
        assert!(text.starts_with("Dry run: nothing was changed."), "{text}");
        assert!(text.contains("Added send-receive folder \"photos\""), "{text}");
        assert!(text.contains("Note: folder \"docs\": Syncthing kept the last 5 versions"), "{text}");
        assert!(!pf.exists(), "a dry run made the Peerfold home");
        assert_eq!(files_in(&st), st_before);

        let report = import(Some(&st), &pf, false).unwrap();
        assert!(!report.dry_run && report.identity_copied);
        assert_eq!(Identity::load(&pf).unwrap().device_id(), me);
        assert_eq!(std::fs::read(pf.join("key.pem")).unwrap(), std::fs::read(st.join("key.pem")).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(pf.join("key.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let config = Config::load(&pf.join(home::CONFIG_FILE)).unwrap();
        assert_eq!(config.folders.len(), 3);
        assert_eq!(config.devices.len(), 2);
        assert_eq!(files_in(&st), st_before);

        // Once more onto the same identity: nothing new.
        let report = import(Some(&st), &pf, false).unwrap();
        assert!(!report.identity_copied);
        assert_eq!(Config::load(&pf.join(home::CONFIG_FILE)).unwrap(), config);
    }

    #[test]
    fn a_home_with_another_identity_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st");
        std::fs::create_dir(&st).unwrap();
        let theirs = syncthing_home(&st);
        let pf = dir.path().join("pf");
        let ours = Identity::load_or_generate(&pf).unwrap().device_id();
        let before = files_in(&pf);
        for dry_run in [true, false] {
            match import(Some(&st), &pf, dry_run) {
                Err(ImportError::OtherIdentity { ours: o, theirs: t, .. }) => {
                    assert_eq!((o, t), (ours, theirs));
                }
                other => panic!("expected OtherIdentity, got {other:?}"),
            }
        }
        // The lock file is the only trace of the attempt.
        let after: Vec<String> = files_in(&pf).into_iter().filter(|n| n != "peerfold.lock").collect();
        assert_eq!(after, before);
        assert_eq!(Identity::load(&pf).unwrap().device_id(), ours);
    }

    #[test]
    fn a_running_syncthing_is_refused_and_a_dry_run_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st");
        std::fs::create_dir(&st).unwrap();
        syncthing_home(&st);
        // What Syncthing's LevelDB holds while it runs.
        let db = st.join("index-v0.14.0.db");
        std::fs::create_dir(&db).unwrap();
        let lock = std::fs::File::create(db.join("LOCK")).unwrap();
        lock.lock().unwrap();
        let pf = dir.path().join("pf");

        let err = import(Some(&st), &pf, false).unwrap_err();
        assert!(matches!(err, ImportError::SyncthingRunning { .. }), "{err:?}");
        assert!(err.to_string().contains("stop it first"), "{err}");
        assert!(!pf.exists());
        let report = import(Some(&st), &pf, true).unwrap();
        assert!(report.syncthing_running);
        assert!(report.to_string().contains("Syncthing is running there"), "{report}");

        // Stopped (the lock released, the LOCK file left behind as LevelDB leaves it): it goes.
        drop(lock);
        import(Some(&st), &pf, false).unwrap();
    }

    #[test]
    fn a_missing_or_huge_config_xml_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("st");
        Identity::load_or_generate(&st).unwrap();
        let pf = dir.path().join("pf");
        let err = import(Some(&st), &pf, true).unwrap_err();
        assert!(matches!(err, ImportError::Read { ref path, .. } if path.ends_with(CONFIG_XML)), "{err:?}");
        let huge = std::fs::File::create(st.join(CONFIG_XML)).unwrap();
        huge.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let err = import(Some(&st), &pf, true).unwrap_err();
        assert!(matches!(err, ImportError::TooLarge { .. }), "{err:?}");
    }
}

//! Configuration: this device's name, its folders and devices, and options — a TOML file in the
//! home that a person can write by hand before the first start.
//!
//! It owns the file's format, its validation (IDs are parsed once here, so the rest of the
//! engine sees only typed values) and saving it atomically: a new file is written beside the
//! old one, synced and renamed over it, so a crash leaves either the old or the new file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::DeviceId;

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
    #[error("cannot save configuration {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderType {
    #[default]
    SendReceive,
    /// Announces local changes, never applies remote ones.
    SendOnly,
    /// Applies remote changes, never announces local ones.
    ReceiveOnly,
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
}

/// Engine-wide options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Seconds between full rescans of each folder (the watcher is only a hint); 0 = never.
    pub rescan_interval_s: u64,
    /// Whether folders watch for changes by default.
    pub watch: bool,
    /// Milliseconds the watcher waits for a burst of changes to settle before scanning.
    pub watch_delay_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { rescan_interval_s: 3600, watch: true, watch_delay_ms: 200 }
    }
}

/// One shared folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    pub id: FolderId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    pub path: PathBuf,
    #[serde(default, rename = "type")]
    pub folder_type: FolderType,
    /// The devices this folder is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

fn dynamic_address() -> Vec<String> {
    vec!["dynamic".into()]
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
        }
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
        Ok(())
    }

    pub fn folder(&self, id: &FolderId) -> Option<&FolderConfig> {
        self.folders.iter().find(|f| &f.id == id)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates and writes the configuration to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        self.validate().map_err(ConfigError::Invalid)?;
        write_atomically(path, self.to_toml().as_bytes())
            .map_err(|source| ConfigError::Write { path: path.to_owned(), source })
    }
}

/// The schemes a device address may have.
const ADDRESS_SCHEMES: [&str; 6] = ["tcp", "tcp4", "tcp6", "quic", "quic4", "quic6"];

/// Checks a device address's syntax: `dynamic` (find the device by discovery) or
/// `scheme://host[:port]` with a scheme of `tcp`, `tcp4`, `tcp6`, `quic`, `quic4` or `quic6`, a
/// host name, an IPv4 address or a bracketed IPv6 address (`[2001:db8::1]`, a `%zone` allowed),
/// and a port from 1 to 65535.
/// The error completes "address … ".
///
/// The one place that knows the syntax, until addresses get a type of their own.
pub fn check_address(address: &str) -> Result<(), String> {
    const EXPECTED: &str = "is not dynamic or scheme://host[:port] (like tcp://192.0.2.1:22000)";
    if address == "dynamic" {
        return Ok(());
    }
    let Some((scheme, rest)) = address.split_once("://") else {
        return Err(EXPECTED.into());
    };
    if !ADDRESS_SCHEMES.contains(&scheme) {
        return Err(format!("has the unknown scheme {scheme:?} (use {})", ADDRESS_SCHEMES.join(", ")));
    }
    let port = if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or("lacks the ] after its IPv6 address")?;
        let (addr, zone) = ip.split_once('%').unwrap_or((ip, "none"));
        if addr.parse::<std::net::Ipv6Addr>().is_err() || zone.is_empty() {
            return Err(format!("has {ip:?} in brackets, which is not an IPv6 address"));
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has text after its IPv6 address")?),
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err("has an IPv6 address without brackets (write tcp://[2001:db8::1]:22000)".into());
        }
        if host.is_empty() {
            return Err("has no host".into());
        }
        let bad = |c: &char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if let Some(c) = host.chars().find(bad) {
            return Err(format!("has the character {c:?} in its host name"));
        }
        port
    };
    match port {
        Some(p) if !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p > 0)) => {
            Err(format!("has the port {p:?}, which is not a number from 1 to 65535"))
        }
        _ => Ok(()),
    }
}

/// Writes `data` to a temporary file beside `path`, syncs it, renames it over `path` and syncs
/// the directory: readers see the old or the new file, never half of one.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";

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
        });
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
        for good in [
            "dynamic",
            "tcp://192.0.2.1:22000",
            "tcp://nas.local",
            "tcp4://nas_1.example.org:1",
            "tcp6://[2001:db8::1]:22000",
            "quic://[::1]",
            "quic4://192.0.2.1:65535",
            "quic6://[fe80::1%eth0]:22000",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        let bad = [
            ("", "is not dynamic or scheme://host[:port]"),
            ("Dynamic", "is not dynamic"),
            ("192.0.2.1:22000", "is not dynamic"),
            ("relay://192.0.2.1:22067", "unknown scheme \"relay\""),
            ("TCP://nas", "unknown scheme"),
            ("tcp://", "no host"),
            ("tcp://:22000", "no host"),
            ("tcp://nas:", "port \"\""),
            ("tcp://nas:0", "port \"0\""),
            ("tcp://nas:65536", "not a number from 1 to 65535"),
            ("tcp://nas:+22", "port \"+22\""),
            ("tcp://nas:22000/", "port \"22000/\""),
            ("tcp://nas/x", "character '/'"),
            ("tcp://user@nas", "character '@'"),
            ("tcp://2001:db8::1", "without brackets"),
            ("tcp6://[2001:db8::1", "lacks the ]"),
            ("tcp6://[nas]:22000", "not an IPv6 address"),
            ("tcp6://[fe80::1%]", "not an IPv6 address"),
            ("tcp6://[::1]22000", "text after"),
        ];
        for (address, want) in bad {
            let err = check_address(address).unwrap_err();
            assert!(err.contains(want), "{address:?}: {err}");
        }
        let text = format!("[[device]]\nid = \"{DEV}\"\naddresses = [\"dynamic\", \"tcp://nas:port\"]");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("address \"tcp://nas:port\" has the port \"port\""), "{err}");
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(&dir.path().join("none.toml")).unwrap(), Config::default());
    }
}

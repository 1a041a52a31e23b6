//! The `peerfold` command line: its arguments (clap), how each command becomes a service
//! [`Request`](peerfold::service::Request), and one printing function per typed answer
//! ([`print`]).

pub mod print;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use peerfold::config::FolderType;

/// Peerfold keeps folders identical across your devices, with no central server.
#[derive(Parser)]
#[command(version, about, max_term_width = 100)]
pub struct Cli {
    /// Where this device keeps its identity, configuration and index
    /// [default: ~/.local/state/peerfold on Linux]
    #[arg(long, global = true, env = "PEERFOLD_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Log more (repeat for more still); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print this device's ID (creating the device's identity on first use)
    Id {
        /// Also draw the ID as a QR code, for scanning with a phone
        #[arg(long)]
        qr: bool,
    },
    /// Scan a folder into the index once and print a summary
    Scan {
        /// The folder to scan
        path: PathBuf,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Compare a folder's index with its disk and list where they differ (changing nothing);
    /// exits with 1 when they differ, 2 when the check could not run
    Check {
        /// The folder: its ID, or its path
        #[arg(value_name = "FOLDER")]
        folder: String,
        /// Also read every file whose metadata agrees and compare its blocks' hashes
        #[arg(long, alias = "blocks")]
        hash: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: scan and watch every configured folder, and sync them with the
    /// configured devices, until interrupted
    Serve {
        /// Where to listen for devices, comma-separated: tcp://HOST:PORT and quic://HOST:PORT
        /// (port 0 picks a free port; the bound addresses are printed)
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "URL,...",
            default_value = "tcp://0.0.0.0:22000,quic://0.0.0.0:22000"
        )]
        listen: Vec<String>,
        /// Where the control API listens, HOST:PORT (port 0 picks a free port; the bound
        /// address is printed) [default: address under [gui] in config.toml, 127.0.0.1:8384]
        #[arg(long, value_name = "HOST:PORT")]
        gui_address: Option<String>,
        /// Send nothing but to configured addresses: no LAN announcements, no DHT, no port
        /// mapping (as `discovery = false` under [options] in config.toml)
        #[arg(long)]
        no_discovery: bool,
    },
    /// Show each folder's state and completion and each device's connection
    Status {
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add, remove or list the devices this device syncs with
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Add, share, remove or list folders
    Folder {
        #[command(subcommand)]
        command: FolderCommand,
    },
    /// List conflict copies (of every folder, or one), or resolve one
    #[command(args_conflicts_with_subcommands = true)]
    Conflicts {
        #[command(subcommand)]
        command: Option<ConflictsCommand>,
        /// Only this folder's
        #[arg(value_name = "FOLDER-ID")]
        folder_id: Option<String>,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Devices asking to connect and folders other devices offer: list (the default), accept
    /// or dismiss them
    Pending {
        #[command(subcommand)]
        command: Option<PendingCommand>,
    },
    /// Show the configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Sign in to the web UI: its password, or a link that signs a browser in
    Gui {
        #[command(subcommand)]
        command: GuiCommand,
    },
    /// Switch from Syncthing: take over its device ID, devices, folders and GUI address (stop
    /// Syncthing first)
    ImportSyncthing {
        /// Syncthing's home, holding config.xml, cert.pem and key.pem [default: ~/.config/syncthing
        /// or ~/.local/state/syncthing on Linux]
        #[arg(value_name = "SYNCTHING_HOME")]
        syncthing_home: Option<PathBuf>,
        /// Print what would change, and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Make an invitation link (and QR code) another device joins with `peerfold join`: it is
    /// added here and the folders are shared with it, with no ID to copy either way. Needs the
    /// daemon running (it answers the joiner)
    Invite {
        /// A folder to offer (repeat for several)
        #[arg(long = "folder", value_name = "FOLDER_ID")]
        folders: Vec<String>,
        /// How long the link stays valid: 90s, 30m, 24h, 7d
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        expires: String,
        /// How many devices may join with it
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Print the invitation as JSON (no QR code)
        #[arg(long)]
        json: bool,
    },
    /// Show or set the bandwidth limits of every connection together, and the schedule
    /// (with no option: show them, and what is in force now)
    Limits {
        /// Send at most this many KiB/s in all (0: unlimited)
        #[arg(long, value_name = "KIB/S")]
        max_send_kibps: Option<u64>,
        /// Receive at most this many KiB/s in all (0: unlimited)
        #[arg(long, value_name = "KIB/S")]
        max_recv_kibps: Option<u64>,
        /// Whether the limits (the global and each device's) apply to devices on the LAN too
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        limit_lan: Option<bool>,
        /// Replace the schedule with the [[schedule]] entries of this TOML file (`-`: stdin);
        /// each has days = ["mon", ...] (none: every day), from = "HH:MM", to = "HH:MM", and
        /// either max_send_kibps / max_recv_kibps or pause = true
        #[arg(long, value_name = "FILE", conflicts_with = "no_schedule")]
        schedule: Option<PathBuf>,
        /// Remove every schedule entry
        #[arg(long)]
        no_schedule: bool,
        /// Whether every device pauses while the system is on a metered network (Linux:
        /// NetworkManager)
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        pause_on_metered: Option<bool>,
        /// Whether every device pauses while the system runs on battery (Linux: UPower)
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        pause_on_battery: Option<bool>,
    },
    /// Pause every device (nothing is sent or received; folders are still scanned) for a while
    /// or until `peerfold resume`
    Pause {
        /// How long: 90s, 30m, 2h, 7d [default: until resumed]
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// End `peerfold pause`: connect to every device again
    Resume,
    /// Join the device that made an invitation link: it is added here, this device is added
    /// there, and the folders it offers are added here, shared with it
    Join {
        /// The `peerfold://invite/…` link
        link: String,
        /// Where to keep an offered folder: DIR for each folder in the order offered, or
        /// FOLDER_ID=DIR [default: a new directory named after the folder's label in your home]
        #[arg(long = "path", value_name = "DIR")]
        paths: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PendingCommand {
    /// List the devices asking to connect and the folder offers
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Add a device that asked to connect
    AcceptDevice {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
        /// A name for it [default: the name it announced]
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it (tcp://host[:port], quic://host[:port], a relay it uses
        /// relay://host:port/?id=RELAY-ID, or dynamic); repeat for more [default: dynamic]
        #[arg(long = "address", value_name = "URL")]
        addresses: Vec<String>,
    },
    /// Accept a device's folder offer: keep the folder at PATH, shared with that device (or,
    /// if the folder exists here, share it with that device)
    AcceptFolder {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// The device whose offer to accept
        #[arg(long = "from", value_name = "DEVICE-ID")]
        device_id: String,
        /// Where to keep it (not needed if the folder exists here)
        path: Option<PathBuf>,
        /// Create PATH if it does not exist
        #[arg(long)]
        create: bool,
    },
    /// Forget a device that asked to connect (it is listed again if it connects again)
    DismissDevice {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// Forget a folder offer, from one device or from all
    DismissFolder {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        #[arg(long = "from", value_name = "DEVICE-ID")]
        device_id: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration with every default filled in (config.toml holds what was set)
    Show {
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ConflictsCommand {
    /// Keep the file as it is and remove the conflict copy (to the trash can if the folder
    /// keeps versions)
    KeepCurrent {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// The conflict copy's path in the folder, as `peerfold conflicts` lists it
        #[arg(value_name = "CONFLICT-PATH")]
        conflict: String,
    },
    /// Make the conflict copy's content the file (the replaced content goes to the trash can
    /// if the folder keeps versions)
    KeepCopy {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        #[arg(value_name = "CONFLICT-PATH")]
        conflict: String,
    },
}

#[derive(Subcommand)]
pub enum GuiCommand {
    /// Set the web UI's password, read from stdin (the daemon must not be running)
    Password {
        /// The user name to sign in with [default: the one set before, else admin]
        #[arg(long)]
        user: Option<String>,
    },
    /// Print a link that signs a browser in to the web UI (it holds the API key: keep it private)
    Url,
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Add a device, or set the name or addresses of one already added
    Add {
        /// Its device ID, as `peerfold id` (or Syncthing) shows it on that device
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
        /// A name for it
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it: tcp://host[:port] or quic://host[:port] (or tcp4, tcp6, quic4,
        /// quic6), a relay it holds a reservation on (relay://host:port/?id=RELAY-ID, tried
        /// last), or dynamic to find it by discovery; repeat for more [default: dynamic]
        #[arg(long = "address", value_name = "URL")]
        addresses: Vec<String>,
        /// Add the folders it offers without asking, each in a new directory named after its
        /// label under the default folder path ([options] default_folder_path, else your home
        /// directory); --auto-accept=false turns it off again
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        auto_accept: Option<bool>,
        /// Also add the devices it shares our folders with, and share those folders with them
        /// (and remove them when it stops), as Syncthing's introducer; --introducer=false turns
        /// it off again
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        introducer: Option<bool>,
        /// Send to it at most this many KiB/s (0: unlimited); its bytes pass the global limit too
        #[arg(long, value_name = "KIB/S")]
        max_send_kibps: Option<u64>,
        /// Receive from it at most this many KiB/s (0: unlimited)
        #[arg(long, value_name = "KIB/S")]
        max_recv_kibps: Option<u64>,
    },
    /// Remove a device, and stop sharing every folder with it
    Remove {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// Stop connecting to a device until it is resumed
    Pause {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// Connect to a paused device again
    Resume {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// List the configured devices
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// List devices that tried to connect without being added (accept one with `device add`)
    Pending {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// List devices heard on the LAN or found on the DHT that are not added (add one with
    /// `device add`); needs the daemon running
    Candidates {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Forget a pending device (it is listed again if it connects again)
    Dismiss {
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
}

#[derive(Subcommand)]
pub enum FolderCommand {
    /// Add a folder (its directory is created if missing; no files are touched)
    Add {
        /// The directory to sync
        path: PathBuf,
        /// The name devices know the folder by: the same on every device that shares it
        #[arg(long, value_name = "FOLDER-ID")]
        id: String,
        /// A name to show for it
        #[arg(long)]
        label: Option<String>,
        /// Whether it sends local changes, receives remote ones, or both
        #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = TypeArg::SendReceive)]
        folder_type: TypeArg,
        /// Share it with this device (one already added); repeat for more
        #[arg(long, value_name = "DEVICE-ID")]
        share: Vec<String>,
        /// Days the trash can keeps files that changes from other devices replace or delete;
        /// 0 = forever [default: 30]
        #[arg(long, value_name = "N")]
        versioning_days: Option<u32>,
        /// Keep no copies of replaced or deleted files
        #[arg(long, conflicts_with = "versioning_days")]
        no_versioning: bool,
    },
    /// Share a folder with a device (one already added)
    Share {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// Stop sharing a folder with a device
    Unshare {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
    },
    /// Remove a folder from the configuration (its files stay as they are)
    Remove {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
    },
    /// Stop scanning and syncing a folder until it is resumed
    Pause {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
    },
    /// Scan and sync a paused folder again
    Resume {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
    },
    /// List the configured folders
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// List folders that devices offered (accept one with `folder add PATH --id ID --share
    /// DEVICE-ID`, or `folder share` if it exists here)
    Pending {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Let a folder's held mass delete go ahead (a scan that would delete more than half of
    /// its files waits for this); restoring the files instead also resumes it
    ConfirmDeletes {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
    },
    /// Undo the local changes of a receive-only folder: the other devices' version comes back,
    /// files added here are removed (to the trash can if the folder keeps versions)
    Revert {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
    },
    /// Print a folder's ignore patterns, or replace them with the lines of a file
    Ignores {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Replace the patterns with this file's lines (`-` reads standard input); every line
        /// is checked first, and the folder is rescanned
        #[arg(long, value_name = "FILE")]
        set_file: Option<PathBuf>,
    },
    /// List the old versions a folder's trash can keeps (of every file, or one)
    Versions {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Only this file's (its path in the folder)
        path: Option<String>,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// Put an old version of a file back (the current file is kept as a version first)
    Restore {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// The file's path in the folder
        path: String,
        /// The version, YYYYMMDD-HHMMSS as `folder versions` lists it
        version: String,
    },
    /// List what a folder's last pull could not apply, and why
    Errors {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// List what a folder still needs from other devices (the first 500)
    Needed {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
    },
    /// List a directory's children in the folder's global tree (every device's index, not only
    /// this disk): type, size (a directory's total), whether it is here, whether it is
    /// selected, which connected devices have it
    Browse {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// The directory (its path in the folder; the root if left out)
        dir: Option<String>,
        /// Start after this name (as a page ends: see --limit)
        #[arg(long, value_name = "NAME")]
        after: Option<String>,
        /// List at most this many (one page); all of them if left out, a page at a time
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Print one JSON object per child (JSON Lines)
        #[arg(long)]
        json: bool,
    },
    /// Selective sync: sync these paths (and what is below them) here again
    Select {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Paths in the folder
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Selective sync: stop syncing these paths (and what is below them) here; their local
    /// copy is kept unless --delete-local. Written to the folder's .stignore in a marked block
    Deselect {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        /// Paths in the folder
        #[arg(required = true)]
        paths: Vec<String>,
        /// Move the local copy to the folder's trash can (.stversions) instead of keeping it
        #[arg(long)]
        delete_local: bool,
    },
    /// Forget a folder offer, from one device or from all
    Dismiss {
        #[arg(value_name = "FOLDER-ID")]
        folder_id: String,
        #[arg(value_name = "DEVICE-ID")]
        device_id: Option<String>,
    },
}

/// `FolderType` on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum TypeArg {
    SendReceive,
    SendOnly,
    ReceiveOnly,
}

impl From<TypeArg> for FolderType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::SendReceive => Self::SendReceive,
            TypeArg::SendOnly => Self::SendOnly,
            TypeArg::ReceiveOnly => Self::ReceiveOnly,
        }
    }
}

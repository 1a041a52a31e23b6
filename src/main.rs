//! The `peerfold` command: the CLI and (with `serve`) the daemon.
//!
//! This is the binary's edge: arguments, logging, the home lock, and turning errors into one
//! sentence and a non-zero exit code. Everything else is in the library.
#![deny(unsafe_code)]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use peerfold::config::{
    self, Config, DEFAULT_KEEP_DAYS, Edit, FolderConfig, FolderId, FolderType, Versioning,
};
use peerfold::daemon::{Daemon, GuiListen, Options, load_config};
use peerfold::db::{Index, NeededItem};
use peerfold::engine::FailedItem;
use peerfold::engine::error_chain;
use peerfold::folder_files::{Keep, VersionedFile};
use peerfold::home::{self, Home, HomeError};
use peerfold::identity::{self, DeviceId, Identity};
use peerfold::net::Address;
use peerfold::scan::{Progress, ScanSummary, Scanner};
use peerfold::{control, status};
use serde::Serialize;

/// Peerfold keeps folders identical across your devices, with no central server.
#[derive(Parser)]
#[command(version, about, max_term_width = 100)]
struct Cli {
    /// Where this device keeps its identity, configuration and index
    /// [default: ~/.local/state/peerfold on Linux]
    #[arg(long, global = true, env = "PEERFOLD_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Log more (repeat for more still); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Subcommand)]
enum PendingCommand {
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
        /// Where to reach it (tcp://host[:port], quic://host[:port] or dynamic); repeat for
        /// more [default: dynamic]
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
enum ConfigCommand {
    /// Print the configuration with every default filled in (config.toml holds what was set)
    Show {
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConflictsCommand {
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
enum GuiCommand {
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
enum DeviceCommand {
    /// Add a device, or set the name or addresses of one already added
    Add {
        /// Its device ID, as `peerfold id` (or Syncthing) shows it on that device
        #[arg(value_name = "DEVICE-ID")]
        device_id: String,
        /// A name for it
        #[arg(long)]
        name: Option<String>,
        /// Where to reach it: tcp://host[:port] or quic://host[:port] (or tcp4, tcp6, quic4,
        /// quic6), or dynamic to find it by discovery; repeat for more [default: dynamic]
        #[arg(long = "address", value_name = "URL")]
        addresses: Vec<String>,
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
enum FolderCommand {
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
enum TypeArg {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // `check` answers like `diff`: 1 for differences found, 2 when it could not tell.
    let trouble = if matches!(cli.command, Command::Check { .. }) { 2 } else { 1 };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(trouble);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One sentence: the error and its causes.
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::from(trouble)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,peerfold=debug",
        _ => "debug",
    };
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    // What the web UI's log shows, whatever stderr shows: INFO and up, minus the engine events
    // it gets on their own stream.
    let recent = peerfold::recent_log::Layer.with_filter(
        Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target(peerfold::daemon::EVENTS_TARGET, LevelFilter::OFF),
    );
    tracing_subscriber::registry().with(stderr).with(recent).init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home_dir = match &cli.home {
        Some(h) => h.clone(),
        None => home::default_dir()?,
    };
    if let Command::Check { folder, hash, json } = &cli.command {
        return check(&home_dir, folder, *hash, *json).await;
    }
    run_command(cli, home_dir).await.map(|()| ExitCode::SUCCESS)
}

async fn run_command(cli: Cli, home_dir: PathBuf) -> anyhow::Result<()> {
    // Listing only reads config.toml, which is replaced atomically: it needs no lock, so it
    // works beside a running daemon.
    match &cli.command {
        Command::Device { command: DeviceCommand::List { json } } => {
            return list_devices(&Config::load(&home_dir.join(home::CONFIG_FILE))?, *json);
        }
        Command::Folder { command: FolderCommand::List { json } } => {
            return list_folders(&Config::load(&home_dir.join(home::CONFIG_FILE))?, *json);
        }
        Command::Config { command: ConfigCommand::Show { json } } => {
            let config = Config::load(&home_dir.join(home::CONFIG_FILE))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", toml::to_string_pretty(&config)?);
            }
            return Ok(());
        }
        Command::Gui { command: GuiCommand::Url } => return gui_url(&home_dir),
        Command::Gui { command: GuiCommand::Password { user } } => {
            return gui_password(&home_dir, user.clone());
        }
        _ => {}
    }
    if let Some(request) = to_request(&cli.command)? {
        let answer = ask(&home_dir, request).await?;
        return show(&cli.command, answer);
    }
    if let Command::Serve { listen, gui_address, no_discovery } = cli.command {
        return serve(&home_dir, &listen, gui_address, !no_discovery).await;
    }
    let home = Home::open(&home_dir)?;
    let identity = Identity::load_or_generate(home.dir())?;
    let config = load_config(&home)?;
    match cli.command {
        Command::Id { qr } => {
            println!("{}", identity.device_id());
            if qr {
                print!("{}", identity::qr_terminal(&identity.device_id()));
            }
            Ok(())
        }
        Command::Scan { path, json } => scan(&home, &identity, &config, &path, json).await,
        Command::Serve { .. }
        | Command::Check { .. }
        | Command::Status { .. }
        | Command::Device { .. }
        | Command::Folder { .. }
        | Command::Conflicts { .. }
        | Command::Pending { .. }
        | Command::Config { .. }
        | Command::Gui { .. } => {
            unreachable!("served or answered above")
        }
    }
}

/// The request a command makes: of the running daemon, or of the home itself when none runs.
/// `None` for the commands that run here in any case.
fn to_request(command: &Command) -> anyhow::Result<Option<control::Request>> {
    use control::Request;
    let edit = |edit| Some(Request::Edit { edit });
    Ok(match command {
        Command::Id { .. }
        | Command::Scan { .. }
        | Command::Check { .. }
        | Command::Serve { .. }
        | Command::Config { .. }
        | Command::Gui { .. } => None,
        Command::Pending { command } => Some(match command {
            None | Some(PendingCommand::List { .. }) => Request::Pending,
            Some(PendingCommand::AcceptDevice { device_id, name, addresses }) => Request::AcceptDevice {
                device: parse_device(device_id)?,
                name: name.clone(),
                addresses: (!addresses.is_empty()).then(|| addresses.clone()),
            },
            Some(PendingCommand::AcceptFolder { folder_id, device_id, path, create }) => {
                // Resolved here: a relative path means relative to where the command runs.
                let path = path.as_deref().map(std::path::absolute).transpose()?;
                Request::AcceptFolder {
                    folder: parse_folder(folder_id)?.to_string(),
                    device: parse_device(device_id)?,
                    path,
                    create: *create,
                }
            }
            Some(PendingCommand::DismissDevice { device_id }) => {
                Request::DismissDevice { device: parse_device(device_id)? }
            }
            Some(PendingCommand::DismissFolder { folder_id, device_id }) => Request::DismissFolder {
                folder: parse_folder(folder_id)?.to_string(),
                device: device_id.as_deref().map(parse_device).transpose()?,
            },
        }),
        Command::Status { .. } => Some(Request::Status),
        Command::Device { command } => match command {
            DeviceCommand::Add { device_id, name, addresses } => edit(Edit::AddDevice {
                id: parse_device(device_id)?,
                name: name.clone(),
                addresses: (!addresses.is_empty()).then(|| addresses.clone()),
            }),
            DeviceCommand::Remove { device_id } => edit(Edit::RemoveDevice { id: parse_device(device_id)? }),
            DeviceCommand::Pause { device_id } => {
                edit(Edit::PauseDevice { id: parse_device(device_id)?, paused: true })
            }
            DeviceCommand::Resume { device_id } => {
                edit(Edit::PauseDevice { id: parse_device(device_id)?, paused: false })
            }
            DeviceCommand::Pending { .. } => Some(Request::Pending),
            DeviceCommand::Candidates { .. } => Some(Request::Candidates),
            DeviceCommand::Dismiss { device_id } => {
                Some(Request::DismissDevice { device: parse_device(device_id)? })
            }
            DeviceCommand::List { .. } => None,
        },
        Command::Folder { command } => match command {
            FolderCommand::Add { path, id, label, folder_type, share, versioning_days, no_versioning } => {
                // Resolved here: a relative path means relative to where the command runs.
                let root = config::resolve_folder_path(path)
                    .with_context(|| format!("cannot add folder {}", path.display()))?;
                let versioning = if *no_versioning {
                    Versioning::None
                } else {
                    Versioning::Trashcan { keep_days: versioning_days.unwrap_or(DEFAULT_KEEP_DAYS) }
                };
                let folder = FolderConfig {
                    label: label.clone().unwrap_or_default(),
                    folder_type: (*folder_type).into(),
                    devices: share.iter().map(|d| parse_device(d)).collect::<anyhow::Result<_>>()?,
                    versioning,
                    ..FolderConfig::new(parse_folder(id)?, root)
                };
                edit(Edit::AddFolder { folder: Box::new(folder) })
            }
            FolderCommand::Share { folder_id, device_id } => {
                edit(Edit::Share { folder: parse_folder(folder_id)?, device: parse_device(device_id)? })
            }
            FolderCommand::Unshare { folder_id, device_id } => {
                edit(Edit::Unshare { folder: parse_folder(folder_id)?, device: parse_device(device_id)? })
            }
            FolderCommand::Remove { folder_id } => edit(Edit::RemoveFolder { id: parse_folder(folder_id)? }),
            FolderCommand::Pause { folder_id } => {
                edit(Edit::PauseFolder { id: parse_folder(folder_id)?, paused: true })
            }
            FolderCommand::Resume { folder_id } => {
                edit(Edit::PauseFolder { id: parse_folder(folder_id)?, paused: false })
            }
            FolderCommand::Pending { .. } => Some(Request::Pending),
            FolderCommand::ConfirmDeletes { folder_id } => {
                Some(Request::ConfirmDeletes { folder: parse_folder(folder_id)? })
            }
            FolderCommand::Revert { folder_id } => Some(Request::Revert { folder: parse_folder(folder_id)? }),
            FolderCommand::Dismiss { folder_id, device_id } => Some(Request::DismissFolder {
                folder: parse_folder(folder_id)?.to_string(),
                device: device_id.as_deref().map(parse_device).transpose()?,
            }),
            FolderCommand::Ignores { folder_id, set_file: None } => {
                Some(Request::Ignores { folder: parse_folder(folder_id)? })
            }
            FolderCommand::Ignores { folder_id, set_file: Some(file) } => {
                let text = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin()).context("cannot read the patterns")?
                } else {
                    std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?
                };
                let lines = text.lines().map(str::to_owned).collect();
                Some(Request::SetIgnores { folder: parse_folder(folder_id)?, lines })
            }
            FolderCommand::Versions { folder_id, .. } => {
                Some(Request::Versions { folder: parse_folder(folder_id)? })
            }
            FolderCommand::Restore { folder_id, path, version } => Some(Request::Restore {
                folder: parse_folder(folder_id)?,
                path: path.clone(),
                version: version.clone(),
            }),
            FolderCommand::Errors { folder_id, .. } => {
                Some(Request::FailedItems { folder: parse_folder(folder_id)? })
            }
            FolderCommand::Needed { folder_id, .. } => {
                Some(Request::Needed { folder: parse_folder(folder_id)? })
            }
            FolderCommand::List { .. } => None,
        },
        Command::Conflicts { command, folder_id, .. } => Some(match command {
            None => Request::Conflicts { folder: folder_id.as_deref().map(parse_folder).transpose()? },
            Some(ConflictsCommand::KeepCurrent { folder_id, conflict }) => Request::ResolveConflict {
                folder: parse_folder(folder_id)?,
                conflict: conflict.clone(),
                keep: Keep::Current,
            },
            Some(ConflictsCommand::KeepCopy { folder_id, conflict }) => Request::ResolveConflict {
                folder: parse_folder(folder_id)?,
                conflict: conflict.clone(),
                keep: Keep::Copy,
            },
        }),
    })
}

/// Answers `request`: a running daemon (it holds the home lock) through its control API on the
/// control socket, so changes apply at once; otherwise here, on the configuration and the index.
async fn ask(home_dir: &Path, request: control::Request) -> anyhow::Result<serde_json::Value> {
    let home = match Home::open(home_dir) {
        Ok(home) => home,
        Err(HomeError::Locked { path, pid }) => {
            return control::request(home_dir, &request).await.map_err(|e| match e {
                // The lock's holder is not a daemon (a `peerfold scan`, say), or not yet one.
                control::ControlError::Connect { .. } => anyhow!(
                    "another Peerfold process{} uses home directory {} and does not answer on its \
                     control socket; try again when it is done (or once `peerfold serve` is up)",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    path.display()
                ),
                e => e.into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let identity = Identity::load_or_generate(home.dir())?;
    load_config(&home)?;
    let index = Index::open(&home.index_path()).await?;
    let answer = control::answer_offline(request, identity.device_id(), &home.config_path(), &index).await;
    index.close().await;
    answer.map_err(|e| anyhow!(e))
}

/// Prints `items` as JSON, or a line each (`none` when there are none).
fn print_list<T: Serialize>(
    items: &[T],
    json: bool,
    none: &str,
    line: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        println!("{none}");
    } else {
        for item in items {
            println!("{}", line(item));
        }
    }
    Ok(())
}

/// Prints the answer to `command`.
fn show(command: &Command, answer: serde_json::Value) -> anyhow::Result<()> {
    let pending = |answer| -> anyhow::Result<control::Pending> { Ok(serde_json::from_value(answer)?) };
    match command {
        Command::Status { json: true } => println!("{}", serde_json::to_string_pretty(&answer)?),
        Command::Status { json: false } => print!("{}", serde_json::from_value::<status::Status>(answer)?),
        Command::Device { command: DeviceCommand::Pending { json } } => {
            print_list(&pending(answer)?.devices, *json, "No devices are pending.", pending_device)?;
        }
        Command::Device { command: DeviceCommand::Candidates { json } } => {
            // GET /api/discovery: every device heard of, `known` marking those added.
            let heard = answer["devices"].as_array().cloned().unwrap_or_default();
            let unknown = heard.into_iter().filter(|d| d["known"] == false);
            let seen: Vec<peerfold::discovery::Seen> =
                unknown.map(serde_json::from_value).collect::<Result<_, _>>()?;
            print_list(&seen, *json, "No devices were heard of that are not added.", |s| {
                format!("{} ({}) at {}, {} s ago", s.device, s.source, s.addresses.join(", "), s.age_s)
            })?;
        }
        Command::Folder { command: FolderCommand::Pending { json } } => {
            print_list(&pending(answer)?.folders, *json, "No folder offers are pending.", pending_folder)?;
        }
        Command::Pending { command: Some(PendingCommand::List { json: true }) } => {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        Command::Pending { command: None | Some(PendingCommand::List { json: false }) } => {
            let pending = pending(answer)?;
            println!("Devices asking to connect (accept with `peerfold pending accept-device ID`):");
            print_list(&pending.devices, false, "  none", |d| format!("  {}", pending_device(d)))?;
            println!("Folder offers (accept with `peerfold pending accept-folder ID --from DEVICE PATH`):");
            print_list(&pending.folders, false, "  none", |f| format!("  {}", pending_folder(f)))?;
        }
        Command::Folder { command: FolderCommand::Ignores { folder_id, set_file } } => {
            let lines = serde_json::from_value::<control::IgnoreLines>(answer)?.lines;
            if set_file.is_some() {
                println!("Folder \"{folder_id}\" has {} ignore lines now.", lines.len());
            } else {
                for line in lines {
                    println!("{line}");
                }
            }
        }
        Command::Folder { command: FolderCommand::Versions { path, json, .. } } => {
            let mut files: Vec<VersionedFile> = serde_json::from_value(answer)?;
            files.retain(|f| path.as_ref().is_none_or(|p| *p == f.path));
            print_list(&files, *json, "No old versions are kept.", |f| {
                let versions: Vec<String> = f
                    .versions
                    .iter()
                    .map(|v| {
                        format!("  {}  {}  modified {}", v.version, status::human_bytes(v.size), v.modified)
                    })
                    .collect();
                format!("{}\n{}", f.path, versions.join("\n"))
            })?;
        }
        Command::Folder { command: FolderCommand::Errors { json, .. } } => {
            let items: Vec<FailedItem> = serde_json::from_value(answer)?;
            print_list(&items, *json, "No items failed.", |i| {
                let path = if i.path.is_empty() { "(the whole pull)" } else { &i.path };
                format!("{path}: {} (since {})", i.error, i.at)
            })?;
        }
        Command::Folder { command: FolderCommand::Needed { json, .. } } => {
            let items: Vec<NeededItem> = serde_json::from_value(answer)?;
            print_list(&items, *json, "Nothing is needed.", |i| {
                if i.deleted {
                    format!("{} (to delete)", i.path)
                } else {
                    format!("{} ({})", i.path, status::human_bytes(i.size))
                }
            })?;
        }
        Command::Conflicts { command: None, json, .. } => {
            let conflicts: Vec<control::FolderConflict> = serde_json::from_value(answer)?;
            print_list(&conflicts, *json, "No conflicts.", |c| {
                let c_ = &c.conflict;
                let device =
                    c_.device_name.as_ref().map_or(c_.device.clone(), |n| format!("{} ({n})", c_.device));
                let current = c_.current.as_ref().map_or(String::from("gone"), |f| {
                    format!("{}, modified {}", status::human_bytes(f.size), f.modified)
                });
                format!(
                    "\"{}\" {}: conflict copy {} ({}, modified {}) vs current ({current}); named for device {device}",
                    c.folder,
                    c_.path,
                    c_.conflict,
                    status::human_bytes(c_.copy.size),
                    c_.copy.modified
                )
            })?;
        }
        _ => println!("{}", serde_json::from_value::<control::Edited>(answer)?.message),
    }
    Ok(())
}

fn pending_device(d: &peerfold::db::PendingDevice) -> String {
    let name = if d.name.is_empty() { String::new() } else { format!(" {:?}", d.name) };
    format!("{}{name} from {}, last seen {}", d.device, d.address, status::format_time(d.seen_at))
}

fn pending_folder(f: &peerfold::db::PendingFolder) -> String {
    let label = if f.label.is_empty() { String::new() } else { format!(" ({})", f.label) };
    format!("\"{}\"{label} offered by {}, last seen {}", f.folder, f.device, status::format_time(f.seen_at))
}

fn parse_device(s: &str) -> anyhow::Result<DeviceId> {
    s.parse().with_context(|| format!("{s:?} is not a device ID"))
}

fn parse_folder(s: &str) -> anyhow::Result<FolderId> {
    s.parse().map_err(|e: String| anyhow!("{s:?} is not a folder ID: {e}"))
}

fn list_devices(config: &Config, json: bool) -> anyhow::Result<()> {
    print_list(&status::device_views(config), json, "No devices are configured.", |d| {
        let name = if d.name.is_empty() { String::new() } else { format!(" {:?}", d.name) };
        let folders: Vec<String> = d.folders.iter().map(|f| format!("\"{f}\"")).collect();
        let shared = if folders.is_empty() { "no folders".to_owned() } else { folders.join(", ") };
        let paused = if d.paused { ", paused" } else { "" };
        format!("{}{name}: {}; shares {shared}{paused}", d.id, d.addresses.join(", "))
    })
}

/// A folder as `folder list --json` shows it, with the options it inherits filled in.
#[derive(Serialize)]
struct FolderView<'a> {
    id: &'a FolderId,
    label: &'a str,
    path: String,
    #[serde(rename = "type")]
    folder_type: FolderType,
    devices: &'a [DeviceId],
    versioning: Versioning,
    paused: bool,
    watch: bool,
    rescan_interval_s: u64,
}

fn list_folders(config: &Config, json: bool) -> anyhow::Result<()> {
    let views: Vec<FolderView<'_>> = config
        .folders
        .iter()
        .map(|f| FolderView {
            id: &f.id,
            label: &f.label,
            path: f.path.to_string_lossy().into_owned(),
            folder_type: f.folder_type,
            devices: &f.devices,
            versioning: f.versioning,
            paused: f.paused,
            watch: f.watch(&config.options),
            rescan_interval_s: f.rescan_interval_s(&config.options),
        })
        .collect();
    print_list(&views, json, "No folders are configured.", |f| {
        let label = if f.label.is_empty() { String::new() } else { format!(" ({})", f.label) };
        let shared = match f.devices.len() {
            0 => "shared with no device".to_owned(),
            1 => "shared with 1 device".to_owned(),
            n => format!("shared with {n} devices"),
        };
        let paused = if f.paused { ", paused" } else { "" };
        format!("\"{}\"{label} at {}: {}, {}, {shared}{paused}", f.id, f.path, f.folder_type, f.versioning)
    })
}

async fn scan(
    home: &Home,
    identity: &Identity,
    config: &Config,
    path: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let root = std::fs::canonicalize(path).with_context(|| format!("cannot scan {}", path.display()))?;
    if !root.is_dir() {
        bail!("cannot scan {}: not a directory", path.display());
    }
    // A configured folder keeps its ID; any other path is indexed under one derived from it,
    // so scanning it again is an incremental rescan.
    let folder_id = config
        .folders
        .iter()
        .find(|f| std::fs::canonicalize(&f.path).is_ok_and(|p| p == root))
        .map_or_else(|| format!("path:{}", root.display()), |f| f.id.to_string());
    let index = Index::open(&home.index_path()).await?;
    let folder = index.folder(&folder_id).await?;
    let scanner = Scanner::new(index.clone(), folder, root.clone(), identity.device_id().short());
    let bar = progress_bar(scanner.progress());
    let result = scanner.scan(&[]).await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    let summary = result?;
    index.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for issue in &summary.issues {
            eprintln!("warning: {issue}");
        }
        println!("{}", describe(&root, &summary));
    }
    Ok(())
}

/// `peerfold check`: needs no home lock and no daemon. The index is opened read-only, so the
/// same command works beside a running daemon (SQLite's WAL lets a reader see the last commit
/// while the daemon writes) and without one; the daemon is not asked, as the comparison is a
/// walk of the disk that the CLI can do itself.
async fn check(home_dir: &Path, folder: &str, hash: bool, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(&home_dir.join(home::CONFIG_FILE))?;
    let (folder_id, root) = match config.folders.iter().find(|f| f.id.to_string() == *folder) {
        Some(f) => (f.id.to_string(), f.path.clone()),
        None => {
            let root = std::fs::canonicalize(folder)
                .with_context(|| format!("{folder:?} is neither a folder ID nor a directory"))?;
            // A configured folder by its path; any other path as `peerfold scan` indexes it.
            let id = config
                .folders
                .iter()
                .find(|f| std::fs::canonicalize(&f.path).is_ok_and(|p| p == root))
                .map_or_else(|| format!("path:{}", root.display()), |f| f.id.to_string());
            (id, root)
        }
    };
    let index_path = home_dir.join(home::INDEX_FILE);
    if !index_path.exists() {
        bail!("there is no index in {} yet", home_dir.display());
    }
    let index = Index::open_read_only(&index_path).await?;
    let idx = index.existing_folder(&folder_id).await?;
    let report = peerfold::check::check(index.clone(), idx, &folder_id, &root, hash).await;
    index.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &report.differences {
            println!("{d}");
        }
        let more = report.total_differences - report.differences.len() as u64;
        if more > 0 {
            println!("… and {more} more differences");
        }
        for t in &report.temp_files {
            println!("{t}: download temporary file");
        }
        let hashed = if hash { format!(", {} files hashed", report.hashed) } else { String::new() };
        let verdict = match report.total_differences {
            0 => "the index agrees with the disk".to_owned(),
            1 => "1 difference".to_owned(),
            n => format!("{n} differences"),
        };
        println!(
            "Checked \"{}\" at {}: {} entries{hashed}, {} temporary files; {verdict}.",
            report.folder,
            report.path,
            report.compared,
            report.temp_files.len()
        );
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A live spinner with counts and throughput, on a terminal only.
fn progress_bar(progress: Arc<Progress>) -> Option<(indicatif::ProgressBar, tokio::task::JoinHandle<()>)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let b = bar.clone();
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        loop {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let bytes = progress.hashed_bytes.load(Relaxed);
            b.set_message(format!(
                "{} entries, {} files hashed, {} ({}/s)",
                progress.entries.load(Relaxed),
                progress.hashed_files.load(Relaxed),
                indicatif::HumanBytes(bytes),
                indicatif::HumanBytes((bytes as f64 / secs) as u64),
            ));
            b.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Some((bar, ticker))
}

fn describe(root: &Path, s: &ScanSummary) -> String {
    let secs = s.duration.as_secs_f64();
    let rate = if secs > 0.0 { (s.hashed_bytes as f64 / secs) as u64 } else { 0 };
    format!(
        "Scanned {}: {} files ({}), {} directories, {} symlinks in {:.2} s.\n\
         Hashed {} files ({}) at {}/s; recorded {} changes ({} deleted); {} problems.",
        root.display(),
        s.files,
        indicatif::HumanBytes(s.bytes),
        s.directories,
        s.symlinks,
        secs,
        s.hashed_files,
        indicatif::HumanBytes(s.hashed_bytes),
        indicatif::HumanBytes(rate),
        s.changed,
        s.deleted,
        s.issues.len(),
    )
}

/// `peerfold gui url`: the web UI's address with the API key in the fragment, which the page
/// trades for a session cookie (a fragment never reaches a server or its logs).
fn gui_url(home_dir: &Path) -> anyhow::Result<()> {
    let config_path = home_dir.join(home::CONFIG_FILE);
    // A running daemon holds the home and says where it listens; otherwise the key is made here
    // (as the first `serve` would) so the link works once the daemon starts.
    let (config, address) = match Home::open(home_dir) {
        Err(HomeError::Locked { .. }) => {
            let config = Config::load(&config_path)?;
            let running = std::fs::read_to_string(home_dir.join(home::GUI_ADDRESS_FILE)).ok();
            let address = running.map(|a| a.trim().to_owned()).unwrap_or_else(|| config.gui.address.clone());
            (config, address)
        }
        Err(e) => return Err(e.into()),
        Ok(home) => {
            let mut config = load_config(&home)?;
            if config.gui.ensure_api_key() {
                config.save(&home.config_path())?;
            }
            let address = config.gui.address.clone();
            (config, address)
        }
    };
    if config.gui.api_key.is_empty() {
        bail!("the daemon has no API key yet; run `peerfold serve` once");
    }
    // A wildcard address is where the daemon listens, not an address to browse to.
    let address = address.replacen("0.0.0.0:", "127.0.0.1:", 1).replacen("[::]:", "[::1]:", 1);
    let scheme = if config.gui.tls { "https" } else { "http" };
    println!("{scheme}://{address}/#key={}", config.gui.api_key);
    Ok(())
}

/// `peerfold gui password`: reads a new password (twice, unechoed, on a terminal; one line
/// otherwise) and stores its Argon2id hash. Needs the home, so the daemon cannot overwrite the
/// change with its own copy of the configuration.
fn gui_password(home_dir: &Path, user: Option<String>) -> anyhow::Result<()> {
    let home = Home::open(home_dir).map_err(|e| match e {
        HomeError::Locked { .. } => anyhow!("{e}; stop the daemon, set the password, and start it again"),
        e => e.into(),
    })?;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New web UI password: ")?;
        let again = rpassword::prompt_password("The same again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        bail!("the password is empty; nothing changed");
    }
    let mut config = load_config(&home)?;
    let user = user.or_else(|| config.gui.user.clone()).unwrap_or_else(|| "admin".to_owned());
    config.gui.password_hash = Some(peerfold::api::hash_password(&password)?);
    config.gui.user = Some(user.clone());
    config.save(&home.config_path())?;
    println!("Set the web UI password of user \"{user}\".");
    Ok(())
}

async fn serve(
    home_dir: &Path,
    listen: &[String],
    gui_address: Option<String>,
    discovery: bool,
) -> anyhow::Result<()> {
    let listen: Vec<Address> =
        listen.iter().map(|a| a.parse()).collect::<Result<_, _>>().context("bad --listen address")?;
    let gui = gui_address.map_or(GuiListen::Configured, GuiListen::At);
    let daemon = Daemon::start(home_dir, Options { listen, gui, discovery }).await?;
    // SIGTERM is how systemd (and `kill`) ask a service to stop: the same clean stop as Ctrl-C.
    // Installed before the "Listening on" lines, so whoever waits for those can stop it so.
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot wait for SIGTERM")?;
    eprintln!(
        "Peerfold {} serving {} folder(s) from {} as {}",
        env!("CARGO_PKG_VERSION"),
        daemon.engine().config().folders.len(),
        daemon.home_dir().display(),
        daemon.me()
    );
    // Before the "Listening on" lines: whoever waits for those can read this one too.
    if let Some(url) = daemon.api_url() {
        eprintln!("API on {url}api/");
    }
    if !daemon.discovery() {
        eprintln!("Discovery is off: only configured addresses are dialled");
    }
    for addr in daemon.listening() {
        eprintln!("Listening on {addr}");
    }
    #[cfg(unix)]
    let terminated = terminate.recv();
    // Windows services stop with Ctrl-C's console event; there is no SIGTERM.
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("cannot wait for Ctrl-C")?,
        _ = terminated => {}
    }
    eprintln!("Stopping…");
    daemon.shutdown().await;
    Ok(())
}

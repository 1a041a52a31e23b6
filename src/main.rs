//! The `peerfold` command: the CLI and (with `serve`) the daemon.
//!
//! This is the binary's edge: arguments, logging, the home lock, and turning errors into one
//! sentence and a non-zero exit code. Everything else is in the library.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use peerfold::config::{
    self, Change, Config, DEFAULT_KEEP_DAYS, FolderConfig, FolderId, FolderType, Versioning,
};
use peerfold::db::Index;
use peerfold::engine::{Engine, error_chain};
use peerfold::home::{self, Home, HomeError};
use peerfold::identity::{self, DeviceId, Identity};
use peerfold::net::{Address, Net, TlsIdentity};
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
    /// List the configured devices
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
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
    /// List the configured folders
    List {
        /// Print them as JSON
        #[arg(long)]
        json: bool,
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence: the error and its causes.
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,peerfold=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let home_dir = match cli.home {
        Some(h) => h,
        None => home::default_dir()?,
    };
    // Listing only reads config.toml, which is replaced atomically: it needs no lock, so it
    // works beside a running daemon.
    match cli.command {
        Command::Device { command: DeviceCommand::List { json } } => {
            return list_devices(&Config::load(&home_dir.join(home::CONFIG_FILE))?, json);
        }
        Command::Folder { command: FolderCommand::List { json } } => {
            return list_folders(&Config::load(&home_dir.join(home::CONFIG_FILE))?, json);
        }
        Command::Status { json } => {
            // A running daemon holds the lock and answers on its control socket.
            if let Err(HomeError::Locked { .. }) = Home::open(&home_dir) {
                let value = control::request(&home_dir, &control::Request::Status).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    let status: status::Status = serde_json::from_value(value)?;
                    print!("{status}");
                }
                return Ok(());
            }
        }
        _ => {}
    }
    let home = open_home(&home_dir, &cli.command)?;
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
        Command::Serve { listen } => serve(&home, &identity, &config, &listen).await,
        Command::Status { json } => {
            let index = Index::open(&home.index_path()).await?;
            let status = status::status(identity.device_id(), &config, &index, None).await?;
            index.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(())
        }
        Command::Device { command } => device(&home, &identity, config, command),
        Command::Folder { command } => folder(&home, config, command),
    }
}

/// Loads the home's configuration, writing the defaults on first start so there is a file to
/// edit by hand.
fn load_config(home: &Home) -> anyhow::Result<Config> {
    let path = home.config_path();
    let exists = path.exists();
    let config = Config::load(&path)?;
    if !exists {
        config.save(&path)?;
    }
    Ok(config)
}

/// Opens the home, explaining a held lock for the commands that change the configuration.
fn open_home(dir: &Path, command: &Command) -> anyhow::Result<Home> {
    Home::open(dir).map_err(|e| match e {
        HomeError::Locked { path, pid }
            if matches!(command, Command::Device { .. } | Command::Folder { .. }) =>
        {
            anyhow!(
                "cannot change the configuration while another Peerfold process{} uses home directory {}: \
                 a running daemon (peerfold serve) does not take configuration changes yet, so stop it \
                 and try again",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                path.display()
            )
        }
        e => e.into(),
    })
}

// Configuration commands: parse, make the change with the `Config` method the daemon's API will
// use too, save, and print the change's one line.

fn device(
    home: &Home,
    identity: &Identity,
    mut config: Config,
    command: DeviceCommand,
) -> anyhow::Result<()> {
    let change = match command {
        DeviceCommand::Add { device_id: id, name, addresses } => {
            let addresses = (!addresses.is_empty()).then_some(addresses);
            config.add_device(identity.device_id(), parse_device(&id)?, name, addresses)?
        }
        DeviceCommand::Remove { device_id: id } => config.remove_device(parse_device(&id)?)?,
        DeviceCommand::List { json } => return list_devices(&config, json),
    };
    save_change(home, &config, &change)
}

fn folder(home: &Home, mut config: Config, command: FolderCommand) -> anyhow::Result<()> {
    let change = match command {
        FolderCommand::Add { path, id, label, folder_type, share, versioning_days, no_versioning } => {
            let root = config::resolve_folder_path(&path)
                .with_context(|| format!("cannot add folder {}", path.display()))?;
            let versioning = if no_versioning {
                Versioning::None
            } else {
                Versioning::Trashcan { keep_days: versioning_days.unwrap_or(DEFAULT_KEEP_DAYS) }
            };
            let folder = FolderConfig {
                label: label.unwrap_or_default(),
                folder_type: folder_type.into(),
                devices: share.iter().map(|d| parse_device(d)).collect::<anyhow::Result<_>>()?,
                versioning,
                ..FolderConfig::new(parse_folder(&id)?, root.clone())
            };
            // Checked against the configuration before anything is created.
            let change = config.add_folder(folder)?;
            config::create_folder_root(&root)
                .with_context(|| format!("cannot create folder {}", root.display()))?;
            change
        }
        FolderCommand::Share { folder_id, device_id } => {
            config.share(&parse_folder(&folder_id)?, parse_device(&device_id)?)?
        }
        FolderCommand::Unshare { folder_id, device_id } => {
            config.unshare(&parse_folder(&folder_id)?, parse_device(&device_id)?)?
        }
        FolderCommand::Remove { folder_id } => config.remove_folder(&parse_folder(&folder_id)?)?,
        FolderCommand::List { json } => return list_folders(&config, json),
    };
    save_change(home, &config, &change)
}

fn parse_device(s: &str) -> anyhow::Result<DeviceId> {
    s.parse().with_context(|| format!("{s:?} is not a device ID"))
}

fn parse_folder(s: &str) -> anyhow::Result<FolderId> {
    s.parse().map_err(|e: String| anyhow!("{s:?} is not a folder ID: {e}"))
}

/// Saves `config` if `change` changed it, and says what happened.
fn save_change(home: &Home, config: &Config, change: &Change) -> anyhow::Result<()> {
    if change.changed() {
        config.save(&home.config_path())?;
    }
    println!("{change}");
    Ok(())
}

/// A device as `device list --json` shows it.
#[derive(Serialize)]
struct DeviceView<'a> {
    id: DeviceId,
    name: &'a str,
    addresses: &'a [String],
    paused: bool,
    /// The folders shared with it.
    folders: Vec<&'a FolderId>,
}

fn list_devices(config: &Config, json: bool) -> anyhow::Result<()> {
    let views: Vec<DeviceView<'_>> = config
        .devices
        .iter()
        .map(|d| DeviceView {
            id: d.id,
            name: &d.name,
            addresses: &d.addresses,
            paused: d.paused,
            folders: config.folders.iter().filter(|f| f.devices.contains(&d.id)).map(|f| &f.id).collect(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else if views.is_empty() {
        println!("No devices are configured.");
    } else {
        for d in views {
            let name = if d.name.is_empty() { String::new() } else { format!(" {:?}", d.name) };
            let folders: Vec<String> = d.folders.iter().map(|f| format!("\"{f}\"")).collect();
            let shared = if folders.is_empty() { "no folders".to_owned() } else { folders.join(", ") };
            let paused = if d.paused { ", paused" } else { "" };
            println!("{}{name}: {}; shares {shared}{paused}", d.id, d.addresses.join(", "));
        }
    }
    Ok(())
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
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else if views.is_empty() {
        println!("No folders are configured.");
    } else {
        for f in views {
            let label = if f.label.is_empty() { String::new() } else { format!(" ({})", f.label) };
            let shared = match f.devices.len() {
                0 => "shared with no device".to_owned(),
                1 => "shared with 1 device".to_owned(),
                n => format!("shared with {n} devices"),
            };
            let paused = if f.paused { ", paused" } else { "" };
            println!(
                "\"{}\"{label} at {}: {}, {}, {shared}{paused}",
                f.id, f.path, f.folder_type, f.versioning
            );
        }
    }
    Ok(())
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

async fn serve(home: &Home, identity: &Identity, config: &Config, listen: &[String]) -> anyhow::Result<()> {
    let listen: Vec<Address> =
        listen.iter().map(|a| a.parse()).collect::<Result<_, _>>().context("bad --listen address")?;
    let index = Index::open(&home.index_path()).await?;
    let net = Net::bind(TlsIdentity::new(identity)?, &listen).await?;
    let bound = net.local_addresses();
    let engine = Arc::new(Engine::start_networked(config, index, identity.device_id(), net));
    let mut events = engine.subscribe();
    eprintln!(
        "Peerfold {} serving {} folder(s) from {} as {}",
        env!("CARGO_PKG_VERSION"),
        config.folders.len(),
        home.dir().display(),
        identity.device_id()
    );
    for addr in &bound {
        eprintln!("Listening on {addr}");
    }
    let (stop_control, control_stopped) = tokio::sync::watch::channel(false);
    let control = tokio::spawn({
        let (dir, engine, me) = (home.dir().to_owned(), Arc::clone(&engine), identity.device_id());
        async move { control::serve(&dir, me, engine, control_stopped).await }
    });
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot wait for Ctrl-C")?;
                break;
            }
            event = events.recv() => match event {
                Ok(event) => tracing::info!(?event, "event"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::debug!(n, "missed events"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    eprintln!("Stopping…");
    let _ = stop_control.send(true);
    if let Ok(Err(e)) = control.await {
        tracing::warn!(error = %error_chain(&e), "control socket");
    }
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.shutdown().await,
        Err(_) => tracing::warn!("the engine is still in use; stopping without a clean shutdown"),
    }
    Ok(())
}

//! The `peerfold` command: the CLI and (with `serve`) the daemon.
//!
//! This is the binary's edge: arguments, logging, the home lock, and turning errors into one
//! sentence and a non-zero exit code. Everything else is in the library.
#![deny(unsafe_code)]

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

mod cli;

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use cli::{
    Cli, Command, ConfigCommand, ConflictsCommand, DeviceCommand, FolderCommand, GuiCommand, PendingCommand,
    print,
};
use peerfold::config::{self, Config, DEFAULT_KEEP_DAYS, Edit, FolderConfig, FolderId, Versioning};
use peerfold::daemon::{Daemon, GuiListen, Options, load_config};
use peerfold::db::Index;
use peerfold::engine::{FailedItem, error_chain};
use peerfold::folder_files::Keep;
use peerfold::home::{self, Home, HomeError};
use peerfold::identity::{self, DeviceId, Identity};
use peerfold::net::Address;
use peerfold::scan::{Progress, ScanSummary, Scanner};
use peerfold::schedule::{PauseAll, ScheduleRule};
use peerfold::service::{
    self, BrowsePage, FolderConflict, FromResponse, NeededItem, Offline, Pending, Request, Service as _,
    ServiceError,
};
use peerfold::{control, status};

fn main() -> ExitCode {
    peerfold::allocator::limit_arenas();
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
            ExitCode::from(e.downcast_ref::<ServiceError>().map_or(trouble, ServiceError::exit_code))
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
    run_command(cli.command, &home_dir).await
}

/// Runs one command; every one but `check` exits 0 when it succeeds.
async fn run_command(command: Command, home_dir: &Path) -> anyhow::Result<ExitCode> {
    let done = match command {
        Command::Check { folder, hash, json } => return check(home_dir, &folder, hash, json).await,
        Command::Id { qr } => {
            let identity = identity_of(home_dir)?;
            println!("{}", identity.device_id());
            if qr {
                print!("{}", identity::qr_terminal(&identity.device_id()));
            }
            Ok(())
        }
        Command::Scan { path, json } => {
            let (home, identity, config) = open_home(home_dir)?;
            scan(&home, &identity, &config, &path, json).await
        }
        Command::Serve { listen, gui_address, no_discovery } => {
            serve(home_dir, &listen, gui_address, !no_discovery).await
        }
        Command::Status { json } => {
            let status: Box<status::Status> = ask(home_dir, Request::Status).await?;
            print::status(&status, json)
        }
        Command::Device { command } => device(home_dir, command).await,
        Command::Folder { command } => folder(home_dir, command).await,
        Command::Conflicts { command: None, folder_id, json } => {
            let folder = folder_id.as_deref().map(parse_folder).transpose()?;
            print::conflicts(
                &ask::<Vec<FolderConflict>>(home_dir, Request::Conflicts { folder }).await?,
                json,
            )
        }
        Command::Conflicts { command: Some(command), .. } => {
            let (folder_id, conflict, keep) = match command {
                ConflictsCommand::KeepCurrent { folder_id, conflict } => (folder_id, conflict, Keep::Current),
                ConflictsCommand::KeepCopy { folder_id, conflict } => (folder_id, conflict, Keep::Copy),
            };
            let request = Request::ResolveConflict { folder: parse_folder(&folder_id)?, conflict, keep };
            edited(home_dir, request).await
        }
        Command::Pending { command } => pending(home_dir, command).await,
        // Listing only reads config.toml, which is replaced atomically: it needs no lock, so it
        // works beside a running daemon.
        Command::Config { command: ConfigCommand::Show { json } } => {
            let config = Config::load(&home_dir.join(home::CONFIG_FILE))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", toml::to_string_pretty(&config)?);
            }
            Ok(())
        }
        Command::Gui { command: GuiCommand::Url } => gui_url(home_dir),
        Command::Gui { command: GuiCommand::Password { user } } => gui_password(home_dir, user),
        Command::ImportSyncthing { syncthing_home, dry_run } => {
            let report = peerfold::import_syncthing::import(syncthing_home.as_deref(), home_dir, dry_run)?;
            print!("{report}");
            Ok(())
        }
        Command::Invite { folders, expires, uses, json } => {
            let expires_s = peerfold::invite::parse_duration(&expires).map_err(|e| anyhow!(e))?;
            let folders = folders.iter().map(|f| parse_folder(f)).collect::<anyhow::Result<_>>()?;
            let request = Request::Invite { folders, expires_s: Some(expires_s), uses: Some(uses) };
            print::invite(&ask(home_dir, request).await?, json)
        }
        Command::Join { link, paths } => join(home_dir, &link, paths).await,
        Command::Limits {
            max_send_kibps,
            max_recv_kibps,
            limit_lan,
            schedule,
            no_schedule,
            pause_on_metered,
            pause_on_battery,
        } => {
            let schedule = match schedule {
                Some(file) => Some(read_schedule(&file)?),
                None => no_schedule.then(Vec::new),
            };
            if max_send_kibps.is_none()
                && max_recv_kibps.is_none()
                && limit_lan.is_none()
                && schedule.is_none()
                && pause_on_metered.is_none()
                && pause_on_battery.is_none()
            {
                let config = listed_config(home_dir)?;
                let status: Box<status::Status> = ask(home_dir, Request::Status).await?;
                print::limits(&config, &status.bandwidth);
                return Ok(ExitCode::SUCCESS);
            }
            let edit = Edit::SetLimits {
                max_send_kibps,
                max_recv_kibps,
                limit_lan,
                schedule,
                pause_on_metered,
                pause_on_battery,
            };
            edited(home_dir, Request::Edit { edit }).await
        }
        Command::Pause { duration } => {
            let pause = match duration {
                None => PauseAll::UntilResumed,
                Some(d) => {
                    let secs = peerfold::invite::parse_duration(&d).map_err(|e| anyhow!(e))?;
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
                    PauseAll::Until(now.saturating_add(secs))
                }
            };
            edited(home_dir, Request::Edit { edit: Edit::PauseAll { pause: Some(pause) } }).await
        }
        Command::Resume => edited(home_dir, Request::Edit { edit: Edit::PauseAll { pause: None } }).await,
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// The `[[schedule]]` entries of a TOML file (`-`: stdin).
fn read_schedule(file: &Path) -> anyhow::Result<Vec<ScheduleRule>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        schedule: Vec<ScheduleRule>,
    }
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let parsed: File =
        toml::from_str(&text).with_context(|| format!("{} is not a schedule", file.display()))?;
    Ok(parsed.schedule)
}

/// The home, this device's identity and the configuration, for the commands that work on the
/// home itself.
fn open_home(home_dir: &Path) -> anyhow::Result<(Home, Identity, Config)> {
    let home = Home::open(home_dir)?;
    let identity = Identity::load_or_generate(home.dir())?;
    let config = load_config(&home)?;
    Ok((home, identity, config))
}

/// This device's identity. One that exists is read without the home lock (its files are
/// written once, before anything else uses the home, and never again), so `peerfold id` works
/// beside a running daemon. A new home gets one made under the lock, and a note on stderr (stdout
/// stays the bare ID, for scripts) saying what to do next.
fn identity_of(home_dir: &Path) -> anyhow::Result<Identity> {
    if has_identity(home_dir) {
        return Ok(Identity::load(home_dir)?);
    }
    let (_home, identity, _config) = open_home(home_dir)?;
    eprintln!(
        "Made a new identity for this device in {}.\n\
         Next:\n  \
         peerfold serve                                     start syncing (it prints the web UI's address)\n  \
         peerfold device add DEVICE-ID --name NAME          add another device (its `peerfold id`); add this one there too\n  \
         peerfold folder add PATH --id FOLDER-ID --share DEVICE-ID   share a folder with it",
        home_dir.display()
    );
    Ok(identity)
}

fn has_identity(home_dir: &Path) -> bool {
    home_dir.join(identity::CERT_FILE).is_file() && home_dir.join(identity::KEY_FILE).is_file()
}

/// The configured devices and folders, from `config.toml` alone: the service's own lists
/// ([`service::folder_views`], [`status::device_views`]) without the home lock, so they work
/// beside any process that holds it.
fn listed_config(home_dir: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(&home_dir.join(home::CONFIG_FILE))?)
}

async fn device(home_dir: &Path, command: DeviceCommand) -> anyhow::Result<()> {
    let addresses_of = |a: Vec<String>| (!a.is_empty()).then_some(a);
    let edit = match command {
        DeviceCommand::List { json } => {
            return print::devices(&status::device_views(&listed_config(home_dir)?), json);
        }
        DeviceCommand::Pending { json } => {
            return print::pending_devices(&ask::<Pending>(home_dir, Request::Pending).await?.devices, json);
        }
        DeviceCommand::Candidates { json } => {
            return print::candidates(ask(home_dir, Request::Discovery).await?, json);
        }
        DeviceCommand::Dismiss { device_id } => {
            return edited(home_dir, Request::DismissDevice { device: parse_device(&device_id)? }).await;
        }
        DeviceCommand::Add {
            device_id,
            name,
            addresses,
            auto_accept,
            introducer,
            max_send_kibps,
            max_recv_kibps,
        } => {
            let id = parse_device(&device_id)?;
            let only_limits = name.is_none()
                && addresses.is_empty()
                && (max_send_kibps.is_some() || max_recv_kibps.is_some())
                && listed_config(home_dir)?.device(&id).is_some();
            // A configured device given only limits: just those change.
            if !only_limits {
                let add = Edit::AddDevice { id, name, addresses: addresses_of(addresses) };
                edited(home_dir, Request::Edit { edit: add }).await?;
            }
            if max_send_kibps.is_some() || max_recv_kibps.is_some() {
                let limits = Edit::DeviceLimits { id, max_send_kibps, max_recv_kibps };
                edited(home_dir, Request::Edit { edit: limits }).await?;
            }
            if let Some(introducer) = introducer {
                edited(home_dir, Request::Edit { edit: Edit::Introducer { id, introducer } }).await?;
            }
            let Some(auto_accept) = auto_accept else { return Ok(()) };
            Edit::AutoAcceptFolders { id, auto_accept }
        }
        DeviceCommand::Remove { device_id } => Edit::RemoveDevice { id: parse_device(&device_id)? },
        DeviceCommand::Pause { device_id } => {
            Edit::PauseDevice { id: parse_device(&device_id)?, paused: true }
        }
        DeviceCommand::Resume { device_id } => {
            Edit::PauseDevice { id: parse_device(&device_id)?, paused: false }
        }
    };
    edited(home_dir, Request::Edit { edit }).await
}

async fn folder(home_dir: &Path, command: FolderCommand) -> anyhow::Result<()> {
    let request = match command {
        FolderCommand::List { json } => {
            return print::folders(&service::folder_views(&listed_config(home_dir)?), json);
        }
        FolderCommand::Pending { json } => {
            return print::pending_folders(&ask::<Pending>(home_dir, Request::Pending).await?.folders, json);
        }
        FolderCommand::Ignores { folder_id, set_file } => {
            let folder = parse_folder(&folder_id)?;
            let set = set_file.is_some();
            let request = match set_file {
                None => Request::Ignores { folder },
                Some(file) => Request::SetIgnores { folder, lines: read_lines(&file)? },
            };
            print::ignores(&folder_id, &ask(home_dir, request).await?, set);
            return Ok(());
        }
        FolderCommand::Versions { folder_id, path, json } => {
            let files = ask(home_dir, Request::Versions { folder: parse_folder(&folder_id)? }).await?;
            return print::versions(files, path.as_deref(), json);
        }
        FolderCommand::Errors { folder_id, json } => {
            let items =
                ask::<Vec<FailedItem>>(home_dir, Request::FailedItems { folder: parse_folder(&folder_id)? });
            return print::failed_items(&items.await?, json);
        }
        FolderCommand::Needed { folder_id, json } => {
            let items =
                ask::<Vec<NeededItem>>(home_dir, Request::Needed { folder: parse_folder(&folder_id)? });
            return print::needed(&items.await?, json);
        }
        FolderCommand::Add { path, id, label, folder_type, share, versioning_days, no_versioning } => {
            // Resolved here: a relative path means relative to where the command runs.
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
                ..FolderConfig::new(parse_folder(&id)?, root)
            };
            Request::Edit { edit: Edit::AddFolder { folder: Box::new(folder) } }
        }
        FolderCommand::Share { folder_id, device_id } => Request::Edit {
            edit: Edit::Share { folder: parse_folder(&folder_id)?, device: parse_device(&device_id)? },
        },
        FolderCommand::Unshare { folder_id, device_id } => Request::Edit {
            edit: Edit::Unshare { folder: parse_folder(&folder_id)?, device: parse_device(&device_id)? },
        },
        FolderCommand::Remove { folder_id } => {
            Request::Edit { edit: Edit::RemoveFolder { id: parse_folder(&folder_id)? } }
        }
        FolderCommand::Pause { folder_id } => {
            Request::Edit { edit: Edit::PauseFolder { id: parse_folder(&folder_id)?, paused: true } }
        }
        FolderCommand::Resume { folder_id } => {
            Request::Edit { edit: Edit::PauseFolder { id: parse_folder(&folder_id)?, paused: false } }
        }
        FolderCommand::ConfirmDeletes { folder_id } => {
            Request::ConfirmDeletes { folder: parse_folder(&folder_id)? }
        }
        FolderCommand::Browse { folder_id, dir, after, limit, json } => {
            let folder = parse_folder(&folder_id)?;
            let dir = dir.unwrap_or_default();
            let mut after = after;
            loop {
                let request =
                    Request::Browse { folder: folder.clone(), dir: dir.clone(), after: after.clone(), limit };
                let page = ask::<BrowsePage>(home_dir, request).await?;
                print::browse_page(&page, json)?;
                match page.next {
                    Some(next) if limit.is_none() => after = Some(next),
                    _ => return Ok(()),
                }
            }
        }
        FolderCommand::Select { folder_id, paths } => {
            Request::Select { folder: parse_folder(&folder_id)?, paths }
        }
        FolderCommand::Deselect { folder_id, paths, delete_local } => {
            Request::Deselect { folder: parse_folder(&folder_id)?, paths, delete_local }
        }
        FolderCommand::Revert { folder_id } => Request::Revert { folder: parse_folder(&folder_id)? },
        FolderCommand::Restore { folder_id, path, version } => {
            Request::Restore { folder: parse_folder(&folder_id)?, path, version }
        }
        FolderCommand::Dismiss { folder_id, device_id } => Request::DismissFolder {
            folder: parse_folder(&folder_id)?,
            device: device_id.as_deref().map(parse_device).transpose()?,
        },
    };
    edited(home_dir, request).await
}

async fn pending(home_dir: &Path, command: Option<PendingCommand>) -> anyhow::Result<()> {
    let request = match command {
        None => return print::pending(&ask(home_dir, Request::Pending).await?, false),
        Some(PendingCommand::List { json }) => {
            return print::pending(&ask(home_dir, Request::Pending).await?, json);
        }
        Some(PendingCommand::AcceptDevice { device_id, name, addresses }) => Request::AcceptDevice {
            device: parse_device(&device_id)?,
            name,
            addresses: (!addresses.is_empty()).then_some(addresses),
        },
        Some(PendingCommand::AcceptFolder { folder_id, device_id, path, create }) => {
            // Resolved here: a relative path means relative to where the command runs.
            let path = path.as_deref().map(std::path::absolute).transpose()?;
            Request::AcceptFolder {
                folder: parse_folder(&folder_id)?.to_string(),
                device: parse_device(&device_id)?,
                path,
                create,
            }
        }
        Some(PendingCommand::DismissDevice { device_id }) => {
            Request::DismissDevice { device: parse_device(&device_id)? }
        }
        Some(PendingCommand::DismissFolder { folder_id, device_id }) => Request::DismissFolder {
            folder: parse_folder(&folder_id)?,
            device: device_id.as_deref().map(parse_device).transpose()?,
        },
    };
    edited(home_dir, request).await
}

/// A file's lines (`-`: standard input's).
fn read_lines(file: &Path) -> anyhow::Result<Vec<String>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the patterns")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    Ok(text.lines().map(str::to_owned).collect())
}

/// Asks for a change and prints what it did.
async fn edited(home_dir: &Path, request: Request) -> anyhow::Result<()> {
    print::edited(&ask(home_dir, request).await?);
    Ok(())
}

/// Answers `request`: a running daemon (it holds the home lock) through the control socket, so
/// changes apply at once; otherwise the offline service, on the configuration and the index.
async fn ask<T: FromResponse>(home_dir: &Path, request: Request) -> anyhow::Result<T> {
    if request.is_read_only()
        && let Some(response) = ask_without_lock(home_dir, &request).await?
    {
        return Ok(T::from_response(response)?);
    }
    let response = match Home::open(home_dir) {
        Ok(home) => {
            let identity = Identity::load_or_generate(home.dir())?;
            load_config(&home)?;
            let index = Index::open(&home.index_path()).await?;
            let mut offline = Offline::new(identity.device_id(), &home.config_path(), index);
            if matches!(request, Request::Join { .. }) {
                offline = offline.with_tls(peerfold::net::TlsIdentity::new(&identity)?);
            }
            let answer = offline.handle(request).await;
            offline.close().await;
            answer?
        }
        Err(HomeError::Locked { path, pid }) => {
            control::call(home_dir, &request).await.map_err(|e| match e {
                // The lock's holder is not a daemon (a `peerfold scan`, say), or not yet one.
                control::ControlError::Connect { .. } => anyhow!(
                    "another Peerfold process{} uses home directory {} and does not answer on its \
                 control socket; try again when it is done (or once `peerfold serve` is up)",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    path.display()
                ),
                control::ControlError::Refused(refused) => refused.into(),
                e => e.into(),
            })?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(T::from_response(response)?)
}

/// `peerfold join`: `--path` values are matched to the link's folders here (`ID=DIR`, or
/// plain `DIR`s in the order offered), made absolute against where the command runs.
async fn join(home_dir: &Path, link: &str, paths: Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    let offered = peerfold::invite::Link::parse(link)?.folders;
    let mut by_id = std::collections::BTreeMap::new();
    let mut positional = offered.iter();
    for path in paths {
        let named = path
            .to_str()
            .and_then(|t| t.split_once('='))
            .filter(|(id, _)| offered.iter().any(|f| f.id == *id));
        let (id, dir) = match named {
            Some((id, dir)) => (id.to_owned(), std::path::PathBuf::from(dir)),
            None => match positional.next() {
                Some(f) => (f.id.clone(), path),
                None => bail!("more --path values than the invitation offers folders ({})", offered.len()),
            },
        };
        by_id.insert(id, std::path::absolute(dir)?);
    }
    edited(home_dir, Request::Join { link: link.to_owned(), paths: by_id }).await
}

/// Answers a read-only `request` without taking the home lock, so that it never stops a daemon
/// from starting: a running daemon through its control socket, otherwise the offline service
/// over `config.toml` (replaced atomically) and the index opened read-only (WAL lets it read the
/// last commit beside a writer). `None` for a home with no identity yet, which the locked path
/// makes on first use.
async fn ask_without_lock(home_dir: &Path, request: &Request) -> anyhow::Result<Option<service::Response>> {
    match control::call(home_dir, request).await {
        Ok(response) => return Ok(Some(response)),
        // No daemon answers (none runs, or it is still starting): read the files.
        Err(control::ControlError::Connect { .. }) => {}
        Err(control::ControlError::Refused(refused)) => return Err(refused.into()),
        Err(e) => return Err(e.into()),
    }
    if !has_identity(home_dir) {
        return Ok(None);
    }
    let me = Identity::load(home_dir)?.device_id();
    let index_path = home_dir.join(home::INDEX_FILE);
    // A home whose daemon never ran has no index: an empty one answers the same.
    let index = if index_path.is_file() {
        Index::open_read_only(&index_path).await?
    } else {
        Index::open_in_memory().await?
    };
    let offline = Offline::new(me, &home_dir.join(home::CONFIG_FILE), index);
    let answer = offline.handle(request.clone()).await;
    offline.close().await;
    Ok(Some(answer?))
}

fn parse_device(s: &str) -> anyhow::Result<DeviceId> {
    s.parse().with_context(|| format!("{s:?} is not a device ID"))
}

fn parse_folder(s: &str) -> anyhow::Result<FolderId> {
    s.parse().map_err(|e: String| anyhow!("{s:?} is not a folder ID: {e}"))
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
    let configured = config.folders.iter().find(|f| std::fs::canonicalize(&f.path).is_ok_and(|p| p == root));
    let folder_id = configured.map_or_else(|| format!("path:{}", root.display()), |f| f.id.to_string());
    let ignore_permissions =
        configured.map_or(peerfold::config::IGNORE_PERMISSIONS_BY_DEFAULT, |f| f.ignores_permissions());
    let index = Index::open(&home.index_path()).await?;
    let folder = index.register_folder(&folder_id).await?;
    let scanner = Scanner::new(index.clone(), folder, root.clone(), identity.device_id().short())
        .with_ignore_permissions(ignore_permissions);
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
    let idx = index.folder(&folder_id).await?;
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
    let daemon =
        Daemon::start_with::<peerfold::api::Api>(home_dir, Options { listen, gui, discovery }).await?;
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
    // Before the "Listening on" lines: whoever waits for those can read these too.
    if let Some(url) = daemon.api_url() {
        eprintln!("API on {url}api/");
        // A wildcard address is where it listens, not an address to browse to.
        let browse = url.replacen("//0.0.0.0:", "//127.0.0.1:", 1).replacen("//[::]:", "//[::1]:", 1);
        eprintln!("Web UI on {browse}");
        eprintln!("Sign in: `peerfold gui url` prints a link that signs a browser in");
    }
    let config = daemon.engine().config();
    if config.folders.is_empty() && config.devices.iter().all(|d| d.id == daemon.me()) {
        eprintln!(
            "Nothing to sync yet. Next: add another device with `peerfold device add DEVICE-ID` (and this \
             device, {}, on that one), then share a folder with `peerfold folder add PATH --id FOLDER-ID \
             --share DEVICE-ID`; or do both in the web UI",
            daemon.me()
        );
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

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

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use peerfold::config::Config;
use peerfold::db::Index;
use peerfold::engine::{Engine, error_chain};
use peerfold::home::{self, Home};
use peerfold::identity::{self, Identity};
use peerfold::scan::{Progress, ScanSummary, Scanner};

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
    /// Run the engine: scan and watch every configured folder until interrupted
    Serve,
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
        Command::Serve => serve(&home, &identity, &config).await,
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

async fn serve(home: &Home, identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let index = Index::open(&home.index_path()).await?;
    let engine = Engine::start(config, index, identity.device_id().short());
    let mut events = engine.subscribe();
    eprintln!(
        "Peerfold {} serving {} folder(s) from {} as {}",
        env!("CARGO_PKG_VERSION"),
        config.folders.len(),
        home.dir().display(),
        identity.device_id()
    );
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
    engine.shutdown().await;
    Ok(())
}

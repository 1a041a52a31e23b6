//! The Peerfold desktop app: the engine of one home running in-process, the web UI (`ui/`) in a
//! window, and a tray icon that keeps syncing after the window is closed.
//!
//! It owns the desktop edge only, on top of the engine crate (`peerfold-engine`) alone: no HTTP
//! API is linked in. The engine starts as under `peerfold serve`
//! ([`peerfold_engine::daemon::Daemon`], including the control socket, so the CLI works beside
//! the app), and the UI reaches it through [`commands::call`], which hands the typed
//! [`peerfold_engine::service::Request`] `ui/src/client.ts` makes (the same it sends to
//! `POST /api/call` in a browser) to the engine's service directly: no TCP port is opened for
//! the UI and no screen needs code of its own here. Engine events reach the UI as the Tauri
//! event [`EVENT`], with the same JSON as the API's server-sent events.
//!
//! Also here: one instance per home (`single.rs`), the tray (`tray.rs`), native notifications
//! (`notify.rs`) and start at login (tauri-plugin-autostart).

pub mod commands;
mod notify;
mod single;
mod tray;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;
use peerfold_engine::daemon::{Daemon, DaemonError, GuiListen, Options};
use peerfold_engine::engine::Engine;
use peerfold_engine::home::HomeError;
use peerfold_engine::net::Address;
use peerfold_engine::service::Running;
use tauri::{Emitter as _, Manager as _, RunEvent, Runtime, WindowEvent};

/// The Tauri event that carries each engine event to the UI; the payload is the event as JSON
/// (`{"type": "state-changed", ...}`), as in the API's `/api/events` stream.
pub const EVENT: &str = "peerfold://event";

/// The main window's label.
pub const MAIN_WINDOW: &str = "main";

/// The desktop app's command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "peerfold-desktop",
    version,
    about = "Peerfold: keeps folders identical across your devices"
)]
pub struct Args {
    /// Where this device keeps its identity, configuration and index (the same default as the
    /// `peerfold` CLI) [default: ~/.local/state/peerfold on Linux]
    #[arg(long, env = "PEERFOLD_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Where to listen for devices, comma-separated: tcp://HOST:PORT and quic://HOST:PORT
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "URL,...",
        default_value = "tcp://0.0.0.0:22000,quic://0.0.0.0:22000"
    )]
    pub listen: Vec<String>,
    /// Send nothing but to configured addresses: no LAN announcements, no DHT, no port mapping
    /// (as `[options] discovery = false` in config.toml)
    #[arg(long)]
    pub no_discovery: bool,
    /// Start in the tray, without showing the window (how start at login runs it)
    #[arg(long)]
    pub minimized: bool,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("bad --listen address")]
    Listen(#[source] peerfold_engine::net::NetError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(
        "home directory {} is used by another Peerfold process that is not the desktop app \
         (`peerfold serve`?); stop it first, or pass --home for another home",
        .0.display()
    )]
    NotDesktop(PathBuf),
    #[error("the desktop app could not start")]
    Tauri(#[source] tauri::Error),
}

/// What the commands share: the engine's typed service, which [`commands::call`] asks directly,
/// taken away when the app exits so the engine can stop cleanly.
pub struct Backend {
    service: Mutex<Option<Running>>,
}

impl Backend {
    pub fn new(engine: Arc<Engine>, me: peerfold_engine::identity::DeviceId) -> Self {
        Self { service: Mutex::new(Some(Running::new(engine, me))) }
    }

    pub(crate) fn service(&self) -> Option<Running> {
        self.service.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Lets go of the engine.
    pub fn close(&self) {
        self.service.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// `base` with the app's commands and the plugins they use, on any runtime (the tests use the
/// mock one).
pub fn with_commands<R: Runtime>(base: tauri::Builder<R>, autostart_args: Vec<String>) -> tauri::Builder<R> {
    with_start_at_login(base, autostart_args)
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![
            commands::call,
            commands::qr_svg,
            commands::autostart_get,
            commands::autostart_set
        ])
}

/// Start at login's [`commands::StartAtLogin`], run with `args`.
#[cfg(not(windows))]
fn with_start_at_login<R: Runtime>(base: tauri::Builder<R>, args: Vec<String>) -> tauri::Builder<R> {
    base.plugin(tauri_plugin_autostart::Builder::new().args(args).app_name("Peerfold").build())
}

/// Start at login's [`commands::StartAtLogin`], run with `args` (quoted by [`autostart_args`]).
#[cfg(windows)]
fn with_start_at_login<R: Runtime>(base: tauri::Builder<R>, args: Vec<String>) -> tauri::Builder<R> {
    // The path is quoted too: an unquoted path with a space is split by its first one.
    let exe = std::env::current_exe().unwrap_or_default();
    let exe = windows_quoted(&exe.display().to_string());
    let mode = auto_launch::WindowsEnableMode::CurrentUser;
    base.manage(auto_launch::AutoLaunch::new("Peerfold", &exe, mode, &args))
}

/// The arguments start at login runs the app with: this same home, in the tray. On Windows they
/// end up in one command line (the autostart plugin joins them with spaces into the registry's
/// Run value), so there each is quoted as the C runtime splits a command line.
pub fn autostart_args(home: Option<&std::path::Path>) -> Vec<String> {
    let mut args = vec!["--minimized".to_owned()];
    if let Some(h) = home {
        args.extend(["--home".to_owned(), h.display().to_string()]);
    }
    if cfg!(windows) { args.iter().map(|a| windows_quoted(a)).collect() } else { args }
}

/// `arg` as one argument of a Windows command line: quoted if it holds a space, a tab or a quote,
/// with the backslashes before a quote (or before the closing quote) doubled.
fn windows_quoted(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut quoted = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                quoted.extend(std::iter::repeat_n('\\', 2 * backslashes + 1));
                quoted.push('"');
                backslashes = 0;
            }
            c => {
                quoted.extend(std::iter::repeat_n('\\', backslashes));
                quoted.push(c);
                backslashes = 0;
            }
        }
    }
    quoted.extend(std::iter::repeat_n('\\', 2 * backslashes));
    quoted.push('"');
    quoted
}

/// Shows, unminimises and focuses the main window.
pub fn show_main<R: Runtime>(app: &tauri::AppHandle<R>) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        in_dock(app, true);
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// The window events handler: closing the main window hides it and keeps Peerfold syncing in
/// the tray; Quit in the tray ends it.
pub fn keep_in_tray<R: Runtime>(window: &tauri::Window<R>, event: &WindowEvent) {
    if let WindowEvent::CloseRequested { api, .. } = event
        && window.label() == MAIN_WINDOW
    {
        api.prevent_close();
        let _ = window.hide();
        in_dock(window.app_handle(), false);
    }
}

/// On macOS a menu-bar app has a Dock icon only while its window is open; elsewhere the
/// taskbar follows the window by itself.
fn in_dock<R: Runtime>(app: &tauri::AppHandle<R>, shown: bool) {
    #[cfg(target_os = "macos")]
    if let Err(e) = app.set_dock_visibility(shown) {
        tracing::debug!(error = %e, "cannot change the Dock icon");
    }
    #[cfg(not(target_os = "macos"))]
    let _ = (app, shown);
}

/// Runs the app until Quit. Returns the process's exit code.
pub fn run() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    match run_with(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", peerfold_engine::engine::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    use tracing_subscriber::Layer as _;
    // The UI's log screen reads the same recent lines as under `peerfold serve`.
    let recent = peerfold_engine::recent_log::Layer.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_default(tracing::level_filters::LevelFilter::INFO)
            .with_target(peerfold_engine::daemon::EVENTS_TARGET, tracing::level_filters::LevelFilter::OFF),
    );
    let _ = tracing_subscriber::registry().with(stderr.with_filter(filter)).with(recent).try_init();
}

fn run_with(args: Args) -> Result<(), AppError> {
    let home = match &args.home {
        Some(h) => h.clone(),
        None => peerfold_engine::home::default_dir()?,
    };
    let listen: Vec<Address> =
        args.listen.iter().map(|a| a.parse()).collect::<Result<_, _>>().map_err(AppError::Listen)?;
    // The window reaches the engine in-process; `peerfold serve` is the one with an HTTP API.
    let options = Options { listen, gui: GuiListen::Off, discovery: !args.no_discovery };
    let daemon = match tauri::async_runtime::block_on(Daemon::start(&home, options)) {
        Ok(daemon) => daemon,
        Err(DaemonError::Home(HomeError::Locked { .. })) => {
            // Another process runs this home: if it is the app, it shows its window and this
            // one is done.
            return if single::ask_to_show(&home) { Ok(()) } else { Err(AppError::NotDesktop(home)) };
        }
        Err(e) => return Err(e.into()),
    };
    for addr in daemon.listening() {
        eprintln!("Listening on {addr}");
    }
    let engine = Arc::clone(daemon.engine());
    let me = daemon.me();
    let daemon = Arc::new(Mutex::new(Some(daemon)));

    let autostart_args = autostart_args(args.home.as_deref());
    let minimized = args.minimized;
    let app = with_commands(tauri::Builder::default(), autostart_args)
        .manage(Backend::new(Arc::clone(&engine), me))
        .on_window_event(keep_in_tray)
        .setup(move |app| {
            let handle = app.handle().clone();
            // The window is made hidden (tauri.conf.json), so a start at login opens none, not
            // even for a moment.
            if minimized {
                in_dock(&handle, false);
            } else {
                show_main(&handle);
            }
            single::listen(&home, handle.clone());
            tray::start(&handle, Arc::clone(&engine))?;
            forward_events(&handle, &engine);
            stop_on_signals(&handle);
            Ok(())
        })
        .build(tauri::generate_context!())
        .map_err(AppError::Tauri)?;
    app.run(move |handle, event| {
        if let RunEvent::Exit = event {
            // The UI and the tray let go of the engine first, so it stops cleanly.
            handle.state::<Backend>().close();
            tray::stop(handle);
            let daemon = daemon.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(daemon) = daemon {
                tauri::async_runtime::block_on(daemon.shutdown());
            }
        }
    });
    Ok(())
}

/// SIGTERM (logging out, `kill`) and Ctrl-C quit as the tray's Quit does, so the engine
/// finishes its index writes.
#[cfg(unix)]
fn stop_on_signals<R: Runtime>(app: &tauri::AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        app.exit(0);
    });
}

/// Windows ends the app through its window messages; nothing to catch here.
#[cfg(not(unix))]
fn stop_on_signals<R: Runtime>(_app: &tauri::AppHandle<R>) {}

/// Sends every engine event to the UI and shows the ones worth a notification.
fn forward_events<R: Runtime>(app: &tauri::AppHandle<R>, engine: &Engine) {
    let mut events = engine.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        let mut notifier = notify::Notifier::default();
        loop {
            match events.recv().await {
                Ok(event) => {
                    let json = serde_json::to_value(&event).unwrap_or_default();
                    let _ = app.emit(EVENT, &json);
                    if let Some((title, body)) = notifier.notification(&event) {
                        notify::show(&app, &title, &body);
                    }
                    tray::changed(&app);
                }
                Err(RecvError::Lagged(n)) => {
                    let _ = app.emit(EVENT, serde_json::json!({ "type": "lagged", "missed": n }));
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::windows_quoted;

    #[test]
    fn windows_arguments_are_quoted_as_the_c_runtime_splits_them() {
        assert_eq!(windows_quoted("--minimized"), "--minimized");
        assert_eq!(windows_quoted(r"C:\Users\Jo\Peerfold"), r"C:\Users\Jo\Peerfold");
        assert_eq!(windows_quoted(r"C:\Users\Jo Doe\Peerfold"), r#""C:\Users\Jo Doe\Peerfold""#);
        // A trailing backslash would otherwise escape the closing quote.
        assert_eq!(windows_quoted(r"D:\my home\"), r#""D:\my home\\""#);
        assert_eq!(windows_quoted(r#"a "b"\"#), r#""a \"b\"\\""#);
        assert_eq!(windows_quoted(r#"x\"y"#), r#""x\\\"y""#);
        assert_eq!(windows_quoted(""), r#""""#);
    }
}

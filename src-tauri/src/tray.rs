//! The tray icon: what the engine is doing at a glance (up to date, syncing, error, paused; the
//! tooltip and a line of the menu say why every device is paused, when it is: the user, the
//! schedule, a metered network, battery) and a menu — Open, Pause all / Resume all (folders),
//! pause every device for 1 h / 8 h / until resumed (or resume them), one entry per folder that
//! opens it in the file manager, Quit.
//!
//! A task redraws it when an engine event says something changed, and every few seconds in any
//! case; it changes the icon and rebuilds the menu only when what they show changed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use peerfold_engine::bandwidth::PauseReason;
use peerfold_engine::config::{Config, Edit};
use peerfold_engine::engine::{Engine, FolderState};
use peerfold_engine::schedule::PauseAll;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager as _, Runtime};

const TRAY_ID: &str = "peerfold";
/// How often the tray is redrawn without an event (folder states change without one too).
const REFRESH: Duration = Duration::from_secs(3);

const OPEN: &str = "open";
const PAUSE_ALL: &str = "pause-all";
/// Menu IDs pausing every device: this prefix and the seconds (`forever`: until resumed).
const PAUSE_DEVICES: &str = "pause-devices:";
const RESUME_DEVICES: &str = "resume-devices";
const QUIT: &str = "quit";
/// The menu line saying why every device is paused (not clickable).
const WHY_PAUSED: &str = "why-paused";
/// Menu IDs of folder entries: this prefix and the folder's ID.
const FOLDER: &str = "folder:";

/// What the icon shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    UpToDate,
    Syncing,
    Error,
    Paused,
}

impl Status {
    /// Paused when every folder is (and there is one); else an error in any folder wins over
    /// syncing, and syncing over up to date.
    pub fn of(config: &Config, states: &[(peerfold_engine::config::FolderId, FolderState)]) -> Self {
        if !config.folders.is_empty() && config.folders.iter().all(|f| f.paused) {
            return Self::Paused;
        }
        let running = states.iter().filter(|(id, _)| config.folder(id).is_some_and(|f| !f.paused));
        let mut status = Self::UpToDate;
        for (_, state) in running {
            match state {
                FolderState::Error { .. } | FolderState::WaitingForConfirmation { .. } => return Self::Error,
                FolderState::Scanning | FolderState::Syncing => status = Self::Syncing,
                FolderState::Idle => {}
            }
        }
        status
    }

    /// The tooltip: the status, and why every device is paused if it is.
    pub fn tooltip_with(self, paused: &[PauseReason]) -> String {
        match why_paused(paused) {
            Some(why) => format!("{}; {why}", self.tooltip()),
            None => self.tooltip().to_owned(),
        }
    }

    pub fn tooltip(self) -> &'static str {
        match self {
            Self::UpToDate => "Peerfold: up to date",
            Self::Syncing => "Peerfold: syncing",
            Self::Error => "Peerfold: a folder has a problem",
            Self::Paused => "Peerfold: paused",
        }
    }

    /// The icon as a PNG: a coloured disc, or on the macOS menu bar a template image, which the
    /// system draws from its alpha channel alone in the bar's own colours (the glyph is a hole in a
    /// black disc: `icons/make-tray-templates.py`).
    fn icon(self, template: bool) -> &'static [u8] {
        match (self, template) {
            (Self::UpToDate, false) => include_bytes!("../../icons/tray-idle.png"),
            (Self::Syncing, false) => include_bytes!("../../icons/tray-syncing.png"),
            (Self::Error, false) => include_bytes!("../../icons/tray-error.png"),
            (Self::Paused, false) => include_bytes!("../../icons/tray-paused.png"),
            (Self::UpToDate, true) => include_bytes!("../../icons/tray-idle-template.png"),
            (Self::Syncing, true) => include_bytes!("../../icons/tray-syncing-template.png"),
            (Self::Error, true) => include_bytes!("../../icons/tray-error-template.png"),
            (Self::Paused, true) => include_bytes!("../../icons/tray-paused-template.png"),
        }
    }
}

/// `devices paused on a metered network and on battery`, or `None` when none pauses them.
pub fn why_paused(paused: &[PauseReason]) -> Option<String> {
    if paused.is_empty() {
        return None;
    }
    let reasons: Vec<String> =
        paused.iter().map(|r| r.to_string().trim_start_matches("paused ").to_owned()).collect();
    Some(format!("devices paused {}", reasons.join(" and ")))
}

/// What the menu lists: (ID, label, path) per folder, and whether all are paused.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MenuModel {
    folders: Vec<(String, String, std::path::PathBuf)>,
    all_paused: bool,
    /// Every device paused by the user (`pause_all`), and not yet over.
    devices_paused: bool,
    /// Why every device is paused now, if it is (any reason).
    why_paused: Option<String>,
}

impl MenuModel {
    fn of(config: &Config, paused: &[PauseReason]) -> Self {
        Self {
            folders: config
                .folders
                .iter()
                .map(|f| {
                    let label = if f.label.is_empty() { f.id.to_string() } else { f.label.clone() };
                    (f.id.to_string(), label, f.path.clone())
                })
                .collect(),
            all_paused: !config.folders.is_empty() && config.folders.iter().all(|f| f.paused),
            devices_paused: config.options.pause_all.is_some_and(|p| p.holds(unix_now())),
            why_paused: why_paused(paused),
        }
    }
}

/// The tray's state in the app: the engine (let go of at exit) and a wake-up for the redraw.
struct Tray {
    engine: Mutex<Option<Arc<Engine>>>,
    wake: tokio::sync::Notify,
}

impl Tray {
    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Whether the tray draws template icons: the macOS menu-bar convention.
const TEMPLATE_ICONS: bool = cfg!(target_os = "macos");

/// Creates the tray icon and starts redrawing it.
pub fn start<R: Runtime>(app: &AppHandle<R>, engine: Arc<Engine>) -> tauri::Result<()> {
    let config = engine.config();
    let status = Status::of(&config, &engine.folder_states());
    let paused = engine.bandwidth().paused;
    let model = MenuModel::of(&config, &paused);
    app.manage(Tray { engine: Mutex::new(Some(engine)), wake: tokio::sync::Notify::new() });
    let tray = TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(status.icon(TEMPLATE_ICONS))?)
        .icon_as_template(TEMPLATE_ICONS)
        .tooltip(status.tooltip_with(&paused))
        .menu(&menu(app, &model)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    let app = app.clone();
    tauri::async_runtime::spawn(redraw(app, tray, (status, paused), model));
    Ok(())
}

/// Asks for a redraw soon (an engine event arrived).
pub fn changed<R: Runtime>(app: &AppHandle<R>) {
    if let Some(tray) = app.try_state::<Tray>() {
        tray.wake.notify_one();
    }
}

/// Lets go of the engine and ends the redraw task.
pub fn stop<R: Runtime>(app: &AppHandle<R>) {
    if let Some(tray) = app.try_state::<Tray>() {
        tray.engine.lock().unwrap_or_else(PoisonError::into_inner).take();
        tray.wake.notify_one();
    }
}

async fn redraw<R: Runtime>(
    app: AppHandle<R>,
    tray: TrayIcon<R>,
    mut status: (Status, Vec<PauseReason>),
    mut model: MenuModel,
) {
    loop {
        {
            let state = app.state::<Tray>();
            let _ = tokio::time::timeout(REFRESH, state.wake.notified()).await;
        }
        let Some(engine) = app.state::<Tray>().engine() else { return };
        let config = engine.config();
        let now = (Status::of(&config, &engine.folder_states()), engine.bandwidth().paused);
        drop(engine);
        if now != status {
            if now.0 != status.0
                && let Ok(icon) = Image::from_bytes(now.0.icon(TEMPLATE_ICONS))
            {
                let _ = tray.set_icon(Some(icon));
            }
            status = now;
            let _ = tray.set_tooltip(Some(status.0.tooltip_with(&status.1)));
        }
        let new_model = MenuModel::of(&config, &status.1);
        if new_model != model {
            model = new_model;
            if let Ok(menu) = menu(&app, &model) {
                let _ = tray.set_menu(Some(menu));
            }
        }
    }
}

fn menu<R: Runtime>(app: &AppHandle<R>, model: &MenuModel) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(app, OPEN, "Open Peerfold", true, None::<&str>)?)?;
    if let Some(why) = &model.why_paused {
        let mut line = why.clone();
        if let Some(first) = line.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        menu.append(&MenuItem::with_id(app, WHY_PAUSED, line, false, None::<&str>)?)?;
    }
    let pause = if model.all_paused { "Resume all" } else { "Pause all" };
    menu.append(&MenuItem::with_id(app, PAUSE_ALL, pause, !model.folders.is_empty(), None::<&str>)?)?;
    if model.devices_paused {
        menu.append(&MenuItem::with_id(
            app,
            RESUME_DEVICES,
            "Resume syncing with devices",
            true,
            None::<&str>,
        )?)?;
    } else {
        for (secs, text) in [
            ("3600", "Pause devices for 1 h"),
            ("28800", "Pause devices for 8 h"),
            ("forever", "Pause devices"),
        ] {
            menu.append(&MenuItem::with_id(
                app,
                format!("{PAUSE_DEVICES}{secs}"),
                text,
                true,
                None::<&str>,
            )?)?;
        }
    }
    if !model.folders.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        for (id, label, _) in &model.folders {
            let item =
                MenuItem::with_id(app, format!("{FOLDER}{id}"), format!("Open {label}"), true, None::<&str>)?;
            menu.append(&item)?;
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, QUIT, "Quit Peerfold", true, None::<&str>)?)?;
    Ok(menu)
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    match id {
        OPEN => crate::show_main(app),
        QUIT => app.exit(0),
        PAUSE_ALL => {
            let Some(engine) = app.state::<Tray>().engine() else { return };
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = pause_all(&engine).await {
                    crate::notify::show(&app, "Peerfold", &e);
                }
                changed(&app);
            });
        }
        RESUME_DEVICES => pause_devices_from_menu(app, None),
        _ if id.starts_with(PAUSE_DEVICES) => {
            let secs = id.strip_prefix(PAUSE_DEVICES).and_then(|s| s.parse::<u64>().ok());
            pause_devices_from_menu(app, Some(secs));
        }
        _ => {
            let Some(folder) = id.strip_prefix(FOLDER) else { return };
            let Some(engine) = app.state::<Tray>().engine() else { return };
            let path =
                engine.config().folders.iter().find(|f| f.id.as_str() == folder).map(|f| f.path.clone());
            if let Some(path) = path {
                use tauri_plugin_opener::OpenerExt as _;
                if let Err(e) = app.opener().open_path(path.to_string_lossy(), None::<&str>) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot open the folder");
                }
            }
        }
    }
}

/// Runs [`pause_devices`] from a menu entry, telling the user if it fails.
fn pause_devices_from_menu<R: Runtime>(app: &AppHandle<R>, pause: Option<Option<u64>>) {
    let Some(engine) = app.state::<Tray>().engine() else { return };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = pause_devices(&engine, pause).await {
            crate::notify::show(&app, "Peerfold", &e);
        }
        changed(&app);
    });
}

/// Pauses every device for `Some(Some(seconds))` or until resumed (`Some(None)`); `None`
/// resumes them.
pub async fn pause_devices(engine: &Engine, pause: Option<Option<u64>>) -> Result<(), String> {
    let pause = pause.map(|secs| match secs {
        Some(s) => PauseAll::Until(unix_now().saturating_add(s)),
        None => PauseAll::UntilResumed,
    });
    engine
        .edit_config(Edit::PauseAll { pause })
        .await
        .map_err(|e| peerfold_engine::engine::error_chain(&e))?;
    Ok(())
}

fn unix_now() -> u64 {
    peerfold_engine::clock::unix_now()
}

/// Pauses every folder, or resumes them all when all are paused.
pub async fn pause_all(engine: &Engine) -> Result<(), String> {
    let config = engine.config();
    let pause = !MenuModel::of(&config, &[]).all_paused;
    for folder in config.folders.iter().filter(|f| f.paused != pause) {
        engine
            .edit_config(Edit::PauseFolder { id: folder.id.clone(), paused: pause })
            .await
            .map_err(|e| peerfold_engine::engine::error_chain(&e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerfold_engine::config::FolderConfig;

    fn config(folders: &[(&str, bool)]) -> Config {
        let mut config = Config::default();
        for (id, paused) in folders {
            let mut f = FolderConfig::new(id.parse().unwrap(), format!("/data/{id}").into());
            f.paused = *paused;
            config.folders.push(f);
        }
        config
    }

    fn states(list: &[(&str, FolderState)]) -> Vec<(peerfold_engine::config::FolderId, FolderState)> {
        list.iter().map(|(id, s)| (id.parse().unwrap(), s.clone())).collect()
    }

    #[test]
    fn the_icon_shows_the_worst_running_folder() {
        let c = config(&[("a", false), ("b", false)]);
        assert_eq!(
            Status::of(&c, &states(&[("a", FolderState::Idle), ("b", FolderState::Idle)])),
            Status::UpToDate
        );
        assert_eq!(
            Status::of(&c, &states(&[("a", FolderState::Idle), ("b", FolderState::Syncing)])),
            Status::Syncing
        );
        assert_eq!(Status::of(&c, &states(&[("a", FolderState::Scanning)])), Status::Syncing);
        let error = FolderState::Error { message: "disk gone".into() };
        assert_eq!(
            Status::of(&c, &states(&[("a", FolderState::Syncing), ("b", error.clone())])),
            Status::Error
        );
        let held = FolderState::WaitingForConfirmation { deleted: 5, total: 6 };
        assert_eq!(Status::of(&c, &states(&[("a", held)])), Status::Error, "held deletions need the user");
        // A paused folder's last state does not count; all paused is its own state.
        let half = config(&[("a", true), ("b", false)]);
        assert_eq!(
            Status::of(&half, &states(&[("a", error.clone()), ("b", FolderState::Idle)])),
            Status::UpToDate
        );
        assert_eq!(Status::of(&config(&[("a", true), ("b", true)]), &[]), Status::Paused);
        // No folders yet: nothing to worry about, and nothing paused.
        assert_eq!(Status::of(&config(&[]), &[]), Status::UpToDate);
        assert_eq!(Status::Error.tooltip(), "Peerfold: a folder has a problem");
        assert_eq!(Status::UpToDate.tooltip_with(&[]), "Peerfold: up to date");
        assert_eq!(
            Status::UpToDate.tooltip_with(&[PauseReason::Metered, PauseReason::Battery]),
            "Peerfold: up to date; devices paused on a metered network and on battery"
        );
        let m = MenuModel::of(&c, &[PauseReason::Metered]);
        assert_eq!(m.why_paused.as_deref(), Some("devices paused on a metered network"));
        assert!(!m.devices_paused, "not the user's pause: no Resume entry");
        for status in [Status::UpToDate, Status::Syncing, Status::Error, Status::Paused] {
            let colour = Image::from_bytes(status.icon(false)).expect("a usable icon");
            let template = Image::from_bytes(status.icon(true)).expect("a usable template icon");
            let opaque = |i: &Image| i.rgba().chunks(4).filter(|p| p[3] > 128).count();
            assert!(
                template.rgba().chunks(4).all(|p| p[..3] == [0, 0, 0]),
                "{status:?}: a template is black"
            );
            // The white glyph is a hole in the template's disc, or every state would look the same.
            assert!(opaque(&template) < opaque(&colour) * 9 / 10, "{status:?}: the glyph is cut out");
        }
    }

    #[test]
    fn pause_all_pauses_every_folder_then_resumes_them_all() {
        use peerfold_engine::daemon::{Daemon, GuiListen, Options};
        let dir = tempfile::tempdir().unwrap();
        tauri::async_runtime::block_on(async {
            let options = Options { listen: Vec::new(), gui: GuiListen::Off, discovery: false };
            let daemon = Daemon::start(&dir.path().join("home"), options).await.unwrap();
            let engine = daemon.engine().clone();
            for id in ["a", "b"] {
                let path = dir.path().join(id);
                std::fs::create_dir(&path).unwrap();
                let folder = FolderConfig::new(id.parse().unwrap(), path);
                engine.edit_config(Edit::AddFolder { folder: Box::new(folder) }).await.unwrap();
            }
            let paused = |e: &Engine| e.config().folders.iter().map(|f| f.paused).collect::<Vec<_>>();
            // One already paused: Pause all pauses the other.
            engine.edit_config(Edit::PauseFolder { id: "a".parse().unwrap(), paused: true }).await.unwrap();
            pause_all(&engine).await.unwrap();
            assert_eq!(paused(&engine), [true, true]);
            assert_eq!(Status::of(&engine.config(), &engine.folder_states()), Status::Paused);
            // All paused: the same entry resumes them all.
            pause_all(&engine).await.unwrap();
            assert_eq!(paused(&engine), [false, false]);
            // Pausing the devices for an hour shows Resume; resuming shows the pauses again.
            pause_devices(&engine, Some(Some(3600))).await.unwrap();
            assert!(MenuModel::of(&engine.config(), &[]).devices_paused);
            assert!(matches!(engine.config().options.pause_all, Some(PauseAll::Until(_))));
            pause_devices(&engine, None).await.unwrap();
            assert!(!MenuModel::of(&engine.config(), &[]).devices_paused);
            drop(engine);
            daemon.shutdown().await;
        });
    }

    #[test]
    fn the_menu_lists_each_folder_by_label_and_offers_resume_when_all_are_paused() {
        let mut c = config(&[("photos", false), ("docs", false)]);
        c.folders[0].label = "Photos".into();
        let m = MenuModel::of(&c, &[]);
        assert_eq!(
            m.folders,
            vec![
                ("photos".into(), "Photos".into(), "/data/photos".into()),
                ("docs".into(), "docs".into(), "/data/docs".into()),
            ]
        );
        assert!(!m.all_paused);
        c.folders[0].paused = true;
        assert!(!MenuModel::of(&c, &[]).all_paused, "one running folder: Pause all");
        c.folders[1].paused = true;
        assert!(MenuModel::of(&c, &[]).all_paused);
        assert!(!MenuModel::of(&config(&[]), &[]).all_paused);
    }
}

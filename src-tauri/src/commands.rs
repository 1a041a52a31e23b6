//! The commands the UI invokes: `call`, the one way to the engine, `qr_svg`, and start at login.
//!
//! Each answers a value or a sentence for the user; none panics on what the UI sends.

use peerfold_engine::service::{Request, Response, Service as _, ServiceError};

/// What turns start at login on and off: tauri-plugin-autostart's manager (an XDG autostart
/// entry on Linux, a launch agent on macOS). On Windows the same registry `Run` value the plugin
/// writes, through the crate it wraps, but always the user's (`HKEY_CURRENT_USER`): the plugin
/// tries the machine's first, which an app run as administrator may write, and then Peerfold
/// would start at every user's login.
#[cfg(not(windows))]
pub type StartAtLogin = tauri_plugin_autostart::AutoLaunchManager;
#[cfg(windows)]
pub type StartAtLogin = auto_launch::AutoLaunch;

use crate::Backend;

/// Asks the engine's service: the same typed `request` as `POST /api/call` takes, answered with
/// the typed response, or the service's error (`{"kind": ..., "error": "one sentence"}`).
#[tauri::command]
pub async fn call(backend: tauri::State<'_, Backend>, request: Request) -> Result<Response, ServiceError> {
    let service =
        backend.service().ok_or_else(|| ServiceError::Failed("Peerfold is stopping.".to_owned()))?;
    service.handle(request).await
}

/// This device's ID as a QR code in SVG, as the API's `/api/system/qr.svg` draws it (an image,
/// not a service answer).
#[tauri::command]
pub fn qr_svg(backend: tauri::State<'_, Backend>) -> Result<String, String> {
    let service = backend.service().ok_or_else(|| "Peerfold is stopping.".to_owned())?;
    Ok(peerfold_engine::identity::qr_svg(&service.me()))
}

/// Whether the app starts when the user logs in.
#[tauri::command]
pub fn autostart_get(autostart: tauri::State<'_, StartAtLogin>) -> Result<bool, String> {
    autostart.is_enabled().map_err(|e| format!("cannot tell whether Peerfold starts at login: {e}"))
}

/// Makes the app start (in the tray) when the user logs in, or not; answers the new setting.
#[tauri::command]
pub fn autostart_set(autostart: tauri::State<'_, StartAtLogin>, enabled: bool) -> Result<bool, String> {
    let done = if enabled { autostart.enable() } else { autostart.disable() };
    done.map_err(|e| format!("cannot change whether Peerfold starts at login: {e}"))?;
    autostart.is_enabled().map_err(|e| format!("cannot tell whether Peerfold starts at login: {e}"))
}

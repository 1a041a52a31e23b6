//! The commands the UI invokes: `api`, the one way to the engine, and start at login.
//!
//! Each answers a value or a sentence for the user; none panics on what the UI sends.

use peerfold::api::Reply;
use tauri_plugin_autostart::AutoLaunchManager;

use crate::Backend;

/// Calls the control API in-process: `method` (GET, POST, PUT, PATCH, DELETE) on `path` (from
/// `/api/`, with its query) with an optional JSON `body`. Answers the HTTP status and body
/// exactly as over HTTP (errors are `{"error": "..."}` with a 4xx/5xx status); the command
/// itself fails only when the engine is gone (the app is quitting).
#[tauri::command]
pub async fn api(
    backend: tauri::State<'_, Backend>,
    method: String,
    path: String,
    body: Option<serde_json::Value>,
) -> Result<Reply, String> {
    let api = backend.get().ok_or_else(|| "Peerfold is stopping.".to_owned())?;
    api.call(&method, &path, body.as_ref()).await.map_err(|e| peerfold::engine::error_chain(&e))
}

/// Whether the app starts when the user logs in.
#[tauri::command]
pub fn autostart_get(autostart: tauri::State<'_, AutoLaunchManager>) -> Result<bool, String> {
    autostart.is_enabled().map_err(|e| format!("cannot tell whether Peerfold starts at login: {e}"))
}

/// Makes the app start (in the tray) when the user logs in, or not; answers the new setting.
#[tauri::command]
pub fn autostart_set(autostart: tauri::State<'_, AutoLaunchManager>, enabled: bool) -> Result<bool, String> {
    let done = if enabled { autostart.enable() } else { autostart.disable() };
    done.map_err(|e| format!("cannot change whether Peerfold starts at login: {e}"))?;
    autostart.is_enabled().map_err(|e| format!("cannot tell whether Peerfold starts at login: {e}"))
}

//! What the mock-runtime test binaries share: the app's main webview, and invoking a command
//! through it as the UI would.

use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

/// The app's own origin, which the capabilities allow: `tauri://localhost` on Linux and macOS,
/// where `http://tauri.localhost` counts as a remote origin; Windows (WebView2) serves the app
/// from `http://tauri.localhost` instead.
const ORIGIN: &str = if cfg!(windows) { "http://tauri.localhost" } else { "tauri://localhost" };

/// The app's `main` window, at the app's own origin.
pub fn main_webview(app: &App<MockRuntime>) -> WebviewWindow<MockRuntime> {
    let url = WebviewUrl::External(ORIGIN.parse().unwrap());
    WebviewWindowBuilder::new(app, "main", url).build().unwrap()
}

/// Invokes command `cmd` with `body` from `webview`: its answer, or its error.
// Not every test binary that includes this module invokes commands.
#[allow(dead_code)]
pub fn invoke(webview: &WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: ORIGIN.parse().unwrap(),
        body: InvokeBody::Json(body),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(webview, request).map(|r| r.deserialize::<Value>().unwrap())
}

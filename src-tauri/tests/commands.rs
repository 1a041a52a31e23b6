//! The command layer on Tauri's mock runtime (no display): the `call` command hands typed
//! requests to the engine's service and answers its typed responses; errors stay answers with
//! their kind; a stopping app says so.

mod common;

use peerfold_desktop::Backend;
use peerfold_engine::daemon::{Daemon, GuiListen, Options};
use serde_json::{Value, json};
use tauri::Manager as _;
use tauri::test::{MockRuntime, mock_builder, mock_context, noop_assets};

struct Fixture {
    _dir: tempfile::TempDir,
    app: tauri::App<MockRuntime>,
    webview: tauri::WebviewWindow<MockRuntime>,
    daemon: Option<Daemon>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.app.state::<Backend>().close();
        if let Some(daemon) = self.daemon.take() {
            tauri::async_runtime::block_on(daemon.shutdown());
        }
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options { listen: vec!["tcp://127.0.0.1:0".parse().unwrap()], gui: GuiListen::Off, discovery: false };
    let daemon = tauri::async_runtime::block_on(Daemon::start(&dir.path().join("home"), options)).unwrap();
    let app = peerfold_desktop::with_commands(mock_builder(), vec![])
        .manage(Backend::new(daemon.engine().clone(), daemon.me()))
        .build(mock_context(noop_assets()))
        .unwrap();
    let webview = common::main_webview(&app);
    Fixture { _dir: dir, app, webview, daemon: Some(daemon) }
}

fn invoke(f: &Fixture, cmd: &str, body: Value) -> Result<Value, Value> {
    common::invoke(&f.webview, cmd, body)
}

fn call(f: &Fixture, request: Value) -> Result<Value, Value> {
    invoke(f, "call", json!({ "request": request }))
}

#[test]
fn call_changes_and_reads_through_the_engine() {
    let f = fixture();
    let me = f.daemon.as_ref().unwrap().me().to_string();
    let answer = call(&f, json!({ "command": "system" })).unwrap();
    assert_eq!(answer["body"]["id"], me, "{answer}");

    // A change goes through, and a read sees it.
    let root = f._dir.path().join("docs");
    let answer =
        call(&f, json!({ "command": "add-folder", "folder": "docs", "path": root, "create": true })).unwrap();
    assert_eq!(answer["type"], "edited", "{answer}");
    let folders = call(&f, json!({ "command": "folders" })).unwrap();
    assert_eq!(folders["body"][0]["id"], "docs", "{folders}");
    assert!(root.join(".stfolder").exists());

    // The QR code is its own command: an SVG image, not a service answer.
    let svg = invoke(&f, "qr_svg", json!({})).unwrap();
    assert!(svg.as_str().unwrap().contains("<svg"), "{svg}");
}

#[test]
fn call_errors_are_answers_with_a_sentence() {
    let f = fixture();
    // A request the service cannot take is refused before it reaches the engine.
    let err = call(&f, json!({ "command": "add-device", "device": "not-a-device" })).unwrap_err();
    assert!(err.as_str().is_some_and(|e| e.contains("device ID has 10 characters")), "{err}");
    let err = call(&f, json!({ "command": "no-such-command" })).unwrap_err();
    assert!(err.as_str().is_some_and(|e| e.contains("no-such-command")), "{err}");
    // Arguments the command cannot take are the command's error.
    let err = invoke(&f, "call", json!({})).unwrap_err();
    assert!(err.as_str().unwrap().contains("request"), "{err}");
    // The engine's refusals keep their kind.
    let err =
        call(&f, json!({ "command": "add-device", "device": f.daemon.as_ref().unwrap().me() })).unwrap_err();
    assert_eq!(err["kind"], "bad-request", "{err}");
}

/// `call` hands the service's typed request to the engine directly: the same answers as the
/// routes, errors with their kind.
#[test]
fn call_answers_typed_requests_from_the_service() {
    let f = fixture();
    let me = f.daemon.as_ref().unwrap().me().to_string();
    let answer = invoke(&f, "call", json!({ "request": { "command": "system" } })).unwrap();
    assert_eq!((&answer["type"], &answer["body"]["id"]), (&json!("system"), &json!(me)), "{answer}");
    let err =
        invoke(&f, "call", json!({ "request": { "command": "needed", "folder": "nope" } })).unwrap_err();
    assert_eq!(err, json!({ "kind": "not-found", "error": "there is no folder with ID \"nope\"" }));
    f.app.state::<Backend>().close();
    let err = invoke(&f, "call", json!({ "request": { "command": "system" } })).unwrap_err();
    assert_eq!(err["error"], json!("Peerfold is stopping."));
}

#[test]
fn a_stopping_app_says_so() {
    let f = fixture();
    f.app.state::<Backend>().close();
    let err = invoke(&f, "qr_svg", json!({})).unwrap_err();
    assert_eq!(err, json!("Peerfold is stopping."));
}

/// The CLI beside the app reaches the app's engine through the home's control channel (a Unix
/// socket, or on Windows a named pipe), and the window sees what it changed.
#[test]
fn the_cli_beside_the_app_reaches_its_engine() {
    use peerfold_engine::service::{Request, Response};
    let f = fixture();
    let home = f._dir.path().join("home");
    let root = f._dir.path().join("photos");
    let request: Request = serde_json::from_value(
        json!({ "command": "add-folder", "folder": "photos", "path": root, "create": true }),
    )
    .unwrap();
    let answer = tauri::async_runtime::block_on(peerfold_engine::control::call(&home, &request)).unwrap();
    assert!(matches!(answer, Response::Edited(_)), "{answer:?}");
    let folders = call(&f, json!({ "command": "folders" })).unwrap();
    assert_eq!(folders["body"][0]["id"], "photos", "{folders}");
}

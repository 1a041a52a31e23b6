//! The command layer on Tauri's mock runtime (no display): the `api` command forwards to the
//! engine's control API and answers its status and body; errors stay answers; a stopping app
//! says so.

mod common;

use peerfold::daemon::{Daemon, GuiListen, Options};
use peerfold_desktop::Backend;
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

fn api(f: &Fixture, method: &str, path: &str, body: Option<Value>) -> (u64, Value) {
    let reply = invoke(f, "api", json!({ "method": method, "path": path, "body": body })).unwrap();
    (reply["status"].as_u64().unwrap(), reply["body"].clone())
}

#[test]
fn api_answers_status_and_body_from_the_engine() {
    let f = fixture();
    let me = f.daemon.as_ref().unwrap().me().to_string();
    let (status, body) = api(&f, "GET", "/api/system", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], me);

    // A change with a JSON body goes through, and a read sees it.
    let root = f._dir.path().join("docs");
    let (status, body) =
        api(&f, "POST", "/api/folders", Some(json!({ "id": "docs", "path": root, "create": true })));
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, folders) = api(&f, "GET", "/api/folders", None);
    assert_eq!(status, 200);
    assert_eq!(folders[0]["id"], "docs", "{folders}");
    assert!(root.join(".stfolder").exists());

    // Not JSON: the QR code comes back as a string.
    let (status, svg) = api(&f, "GET", "/api/system/qr.svg", None);
    assert_eq!(status, 200);
    assert!(svg.as_str().unwrap().contains("<svg"), "{svg}");
}

#[test]
fn api_errors_are_answers_with_a_sentence() {
    let f = fixture();
    let (status, body) = api(&f, "POST", "/api/devices", Some(json!({ "id": "not-a-device" })));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not-a-device"), "{body}");

    let (status, body) = api(&f, "GET", "/api/nothing-here", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(&f, "GET", "/elsewhere", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(&f, "NOT A METHOD", "/api/system", None);
    assert_eq!(status, 400, "{body}");
    // The event stream never ends: the app sends events as Tauri events instead.
    let (status, body) = api(&f, "GET", "/api/events", None);
    assert_eq!(status, 404, "{body}");

    // Arguments the command cannot take are the command's error.
    let err = invoke(&f, "api", json!({ "method": "GET" })).unwrap_err();
    assert!(err.as_str().unwrap().contains("path"), "{err}");
}

#[test]
fn a_stopping_app_says_so() {
    let f = fixture();
    f.app.state::<Backend>().close();
    let err = invoke(&f, "api", json!({ "method": "GET", "path": "/api/system" })).unwrap_err();
    assert_eq!(err, json!("Peerfold is stopping."));
}

//! Start at login through the app's commands, on the mock runtime: its own test binary, because
//! on Linux it points `HOME` at a temporary directory (where the XDG autostart entry is written)
//! before anything else runs. On Windows the entry is the user's registry `Run` value (under
//! Wine, the test prefix's registry). macOS' entry, a launchd agent, is not tested here.
#![cfg(any(target_os = "linux", windows))]

mod common;

use serde_json::{Value, json};
use tauri::test::{mock_builder, mock_context, noop_assets};

#[cfg(target_os = "linux")]
#[test]
fn autostart_is_off_until_set_and_starts_minimized_on_this_home() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: the only test in this binary, set before any other thread reads the environment.
    unsafe { std::env::set_var("HOME", home.path()) };
    let args = vec!["--minimized".to_owned(), "--home".to_owned(), "/srv/peerfold home".to_owned()];
    let app =
        peerfold_desktop::with_commands(mock_builder(), args).build(mock_context(noop_assets())).unwrap();
    let webview = common::main_webview(&app);
    let invoke = |cmd: &str, body: Value| common::invoke(&webview, cmd, body);
    let entry = home.path().join(".config/autostart/Peerfold.desktop");

    assert_eq!(invoke("autostart_get", json!({})).unwrap(), json!(false));
    assert_eq!(invoke("autostart_set", json!({ "enabled": true })).unwrap(), json!(true));
    let desktop = std::fs::read_to_string(&entry).unwrap();
    assert!(desktop.contains("--minimized"), "{desktop}");
    assert!(desktop.contains("--home"), "{desktop}");
    assert_eq!(invoke("autostart_get", json!({})).unwrap(), json!(true));

    assert_eq!(invoke("autostart_set", json!({ "enabled": false })).unwrap(), json!(false));
    assert!(!entry.exists());
    // Twice off is still off, not an error.
    assert_eq!(invoke("autostart_set", json!({ "enabled": false })).unwrap(), json!(false));
    let err = invoke("autostart_set", json!({})).unwrap_err();
    assert!(err.as_str().unwrap().contains("enabled"), "{err}");
}

#[cfg(windows)]
#[test]
fn autostart_is_a_run_value_that_starts_minimized_on_this_home() {
    use windows_registry::CURRENT_USER;
    const RUN: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";
    let home = std::path::Path::new(r"C:\Peerfold homes\laptop");
    let args = peerfold_desktop::autostart_args(Some(home));
    let app =
        peerfold_desktop::with_commands(mock_builder(), args).build(mock_context(noop_assets())).unwrap();
    let webview = common::main_webview(&app);
    let invoke = |cmd: &str, body: Value| common::invoke(&webview, cmd, body);
    let value = || CURRENT_USER.open(RUN).and_then(|key| key.get_string("Peerfold"));

    assert_eq!(invoke("autostart_get", json!({})).unwrap(), json!(false));
    assert!(value().is_err(), "no Run value before it is set");
    assert_eq!(invoke("autostart_set", json!({ "enabled": true })).unwrap(), json!(true));
    let command = value().expect("the user's Run value");
    let exe = std::env::current_exe().unwrap();
    let exe = exe.display().to_string();
    assert!(command.starts_with(&exe) || command.starts_with(&format!("\"{exe}\"")), "{command}");
    // One argument for the home, though it holds a space.
    assert!(command.ends_with(r#" --minimized --home "C:\Peerfold homes\laptop""#), "{command}");
    assert_eq!(invoke("autostart_get", json!({})).unwrap(), json!(true));

    assert_eq!(invoke("autostart_set", json!({ "enabled": false })).unwrap(), json!(false));
    assert!(value().is_err(), "the Run value is gone");
    assert_eq!(invoke("autostart_set", json!({ "enabled": false })).unwrap(), json!(false));
}

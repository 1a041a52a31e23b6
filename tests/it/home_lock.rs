//! Commands that only read a home never take its lock, so they work beside a running daemon
//! and never stop one from starting; and what `serve` and a first run tell a new user.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::util::{Daemon, TestDir, ok};

/// The device ID a daemon's log names ("… serving N folder(s) from HOME as ID").
fn daemon_id(daemon: &Daemon) -> String {
    let log = daemon.log();
    let line =
        log.lines().find(|l| l.contains(" serving ")).unwrap_or_else(|| panic!("no serving line:\n{log}"));
    line.rsplit(" as ").next().unwrap().trim().to_owned()
}

#[test]
fn id_and_id_qr_work_beside_a_running_daemon() {
    let t = TestDir::new();
    let daemon = Daemon::start(&t, "tcp://127.0.0.1:0");
    let me = daemon_id(&daemon);
    assert_eq!(ok(&t.peerfold(&["id"])).trim(), me);
    let qr = ok(&t.peerfold(&["id", "--qr"]));
    assert!(qr.starts_with(&me), "{qr}");
    assert!(qr.lines().count() > 10, "no QR code drawn:\n{qr}");
}

#[test]
fn read_only_commands_work_beside_a_running_daemon() {
    let t = TestDir::new();
    let _daemon = Daemon::start(&t, "tcp://127.0.0.1:0");
    for args in [
        &["status", "--json"][..],
        &["device", "list", "--json"],
        &["folder", "list", "--json"],
        &["config", "show"],
        &["pending", "list", "--json"],
        &["device", "pending", "--json"],
        &["folder", "pending", "--json"],
        &["conflicts", "--json"],
    ] {
        ok(&t.peerfold(args));
    }
}

/// Starts `peerfold serve` on `t` and reads its stderr until it listens; `Err` with its output
/// when it exits first.
fn start_serve(t: &TestDir) -> Result<std::process::Child, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerfold"))
        .arg("--home")
        .arg(t.home())
        .args(["serve", "--no-discovery", "--listen", "tcp://127.0.0.1:0", "--gui-address", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("Listening on") {
            return Ok(child);
        }
    }
    let status = child.wait().unwrap();
    Err(format!("serve exited ({status}) before it listened:\n{out}"))
}

#[test]
fn status_in_a_loop_never_stops_serve_from_starting() {
    let t = TestDir::new();
    // The identity exists, as after the `peerfold id` a user runs first.
    ok(&t.peerfold(&["id"]));
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    // Two loops, so one of them is nearly always inside a command.
    let loops: Vec<_> = [&["status", "--json"][..], &["pending", "list", "--json"]]
        .into_iter()
        .map(|args| {
            let (stop, runs, home) = (Arc::clone(&stop), Arc::clone(&runs), t.home());
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    Command::new(env!("CARGO_BIN_EXE_peerfold"))
                        .arg("--home")
                        .arg(&home)
                        .args(&args)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .unwrap();
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut result = Ok(());
    for _ in 0..8 {
        match start_serve(&t) {
            Ok(mut child) => {
                child.kill().unwrap();
                child.wait().unwrap();
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    assert!(runs.load(Ordering::Relaxed) > 0, "the status loop never ran");
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn serve_says_where_the_web_ui_is_and_how_to_sign_in() {
    let t = TestDir::new();
    let daemon = Daemon::start(&t, "tcp://127.0.0.1:0");
    let log = daemon.log();
    assert!(log.contains(&format!("Web UI on http://{}/\n", daemon.api)), "{log}");
    assert!(log.contains("peerfold gui url"), "{log}");
}

#[test]
fn first_run_says_what_to_do_next() {
    let t = TestDir::new();
    // The first `id` makes the identity and says so, on stderr: stdout stays the bare ID.
    let first = t.peerfold(&["id"]);
    let id = ok(&first);
    assert_eq!(id.lines().count(), 1, "{id}");
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(said.contains("peerfold device add"), "{said}");
    // Later runs print just the ID.
    assert!(t.peerfold(&["id"]).stderr.is_empty());
    // A daemon with nothing to sync says how to add a device and a folder.
    let daemon = Daemon::start(&t, "tcp://127.0.0.1:0");
    let log = daemon.log();
    assert!(log.contains("peerfold device add"), "{log}");
    assert!(log.contains("peerfold folder add"), "{log}");
}

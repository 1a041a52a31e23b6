//! Windows ⇄ Linux: a `peerfold.exe serve` under Wine and a Linux `peerfold serve` pair and sync
//! one folder both ways, over TCP and over QUIC (which runs on the plain UDP socket under Wine:
//! Wine refuses quinn-udp's options), on loopback.
//!
//! Names Windows cannot hold (`aux.txt`, `a:b`, `trailing.`) sync in on Linux and show as failed
//! items with a reason on the Windows side, read through the Windows daemon's named pipe with
//! the Windows CLI; the Wine daemon keeps syncing after them.
//!
//! `peerfold.exe` and the shim DLL beside it come from `tests/wine/prepare.sh` (which `npm test`
//! runs before `cargo test`); without them these tests fail, saying so. Each test has a Wine
//! prefix of its own, made afresh in its temporary directory and its `wineserver` stopped at the
//! end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::util::{Daemon, TestDir, free_port, ok, wait_for};

/// Wine starts each process in a second or so, and a prefix's first start takes a few more.
const LIMIT: Duration = Duration::from_secs(120);
/// Debian's `wine64` package puts it here (no `wine` wrapper on PATH without its recommends).
const WINE64: &str = "/usr/lib/wine/wine64";
const WINE_SERVER: &str = "/usr/lib/wine/wineserver";
/// Names Windows cannot hold: a reserved device name, a `:` and a trailing dot.
const REFUSED: [&str; 3] = ["aux.txt", "a:b", "trailing."];

/// `peerfold.exe` as `tests/wine/prepare.sh` builds it, in the cargo target directory this test
/// binary was built in.
fn windows_exe() -> PathBuf {
    let linux_exe = Path::new(env!("CARGO_BIN_EXE_peerfold"));
    let target = linux_exe.parent().and_then(Path::parent).expect("the target directory");
    let exe = target.join("x86_64-pc-windows-gnu/debug/peerfold.exe");
    let dll = exe.with_file_name("bcryptprimitives.dll");
    assert!(
        exe.exists() && dll.exists(),
        "{} or the shim DLL beside it is missing: run `bash tests/wine/prepare.sh` (`npm test` does) \
         with the same CARGO_TARGET_DIR",
        exe.display()
    );
    assert!(
        Path::new(WINE64).exists(),
        "{WINE64} is missing: apt-get install --no-install-recommends wine64"
    );
    exe
}

/// A Unix path as Windows programs under Wine see it: drive `Z:` is `/`.
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// A Wine prefix of its own (in `t`'s directory) running `peerfold.exe` on `t`'s home.
struct Wine<'a> {
    t: &'a TestDir,
    exe: PathBuf,
}

impl<'a> Wine<'a> {
    fn new(t: &'a TestDir) -> Self {
        Self { t, exe: windows_exe() }
    }

    fn prefix(&self) -> PathBuf {
        self.t.path("wine")
    }

    /// `peerfold.exe --home <home> args…` under Wine.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(WINE64);
        cmd.arg(&self.exe)
            .arg("--home")
            .arg(windows_path(&self.t.home()))
            .args(args)
            .env("WINEPREFIX", self.prefix())
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko: a new prefix would otherwise offer to download them.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("RUST_LOG")
            .env_remove("DISPLAY");
        cmd
    }

    fn peerfold(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run peerfold.exe under wine64")
    }

    /// Reruns `args` until the JSON it prints satisfies `f`.
    async fn json_until(
        &self,
        args: &[&str],
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(LIMIT, what, || async {
            let v: serde_json::Value = serde_json::from_slice(&self.peerfold(args).stdout).ok()?;
            f(&v).then_some(v)
        })
        .await
    }
}

impl Drop for Wine<'_> {
    /// Stops the prefix's `wineserver` (and anything left in it), which would otherwise outlive
    /// the test for a few seconds with the temporary directory open.
    fn drop(&mut self) {
        let _ = Command::new(WINE_SERVER).arg("-k").env("WINEPREFIX", self.prefix()).status();
    }
}

async fn file_is(path: PathBuf, want: &[u8]) {
    wait_for(LIMIT, &format!("{} to arrive", path.display()), || {
        let path = path.clone();
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await;
}

async fn windows_and_linux_sync(transport: &str) {
    crate::util::init_logging();
    let (lin, win) = (TestDir::new(), TestDir::new());
    let wine = Wine::new(&win);
    // The first command makes the prefix (and the Windows identity).
    let id_win = ok(&wine.peerfold(&["id"])).trim().to_owned();
    let id_lin = ok(&lin.peerfold(&["id"])).trim().to_owned();
    let (port_lin, port_win) = (free_port(), free_port());
    let (listen_lin, listen_win) =
        (format!("{transport}://127.0.0.1:{port_lin}"), format!("{transport}://127.0.0.1:{port_win}"));
    ok(&lin.peerfold(&["device", "add", &id_win, "--name", "windows", "--address", &listen_win]));
    ok(&wine.peerfold(&["device", "add", &id_lin, "--name", "linux", "--address", &listen_lin]));
    ok(&lin.peerfold(&["folder", "add", lin.path("f").to_str().unwrap(), "--id", "f", "--share", &id_win]));
    ok(&wine.peerfold(&["folder", "add", &windows_path(&win.path("f")), "--id", "f", "--share", &id_lin]));
    lin.write("f/from-linux.txt", b"hello from linux");
    for name in REFUSED {
        lin.write(&format!("f/{name}"), name.as_bytes());
    }
    win.write("f/from-windows.txt", b"hello from windows");

    let _linux = Daemon::start(&lin, &listen_lin);
    let serve = ["serve", "--no-discovery", "--listen", &listen_win, "--gui-address", "127.0.0.1:0"];
    let windows = Daemon::spawn(wine.command(&serve));

    file_is(win.path("f/from-linux.txt"), b"hello from linux").await;
    file_is(lin.path("f/from-windows.txt"), b"hello from windows").await;

    // The Windows daemon answers its CLI over the named pipe: connected over `transport`.
    let status = wine
        .json_until(&["status", "--json"], "the Windows status showing Linux connected", |v| {
            v["running"] == true && v["devices"][0]["connected"] == true
        })
        .await;
    assert_eq!(status["devices"][0]["transport"], transport, "{status:#}");
    // The refused names: failed items with a reason there, never created.
    let failed = wine
        .json_until(&["folder", "errors", "f", "--json"], "the refused names as failed items", |v| {
            REFUSED
                .iter()
                .all(|name| v.as_array().is_some_and(|items| items.iter().any(|i| i["path"] == *name)))
        })
        .await;
    for item in failed.as_array().unwrap() {
        let path = item["path"].as_str().unwrap();
        assert!(REFUSED.contains(&path), "an unexpected failed item: {item}");
        // Why, in the engine's words ("reserved on Windows", "a drive letter", …).
        assert!(item["error"].as_str().is_some_and(|e| e.len() > 10), "no reason given: {item}");
    }
    for name in REFUSED {
        assert!(!win.path(&format!("f/{name}")).exists(), "{name} was written on the Windows side");
    }
    // On Linux they are ordinary files of the folder (counted in its global state), not failures.
    let lin_errors = ok(&lin.peerfold(&["folder", "errors", "f", "--json"]));
    assert_eq!(lin_errors.trim(), "[]", "{lin_errors}");
    lin.json_until(LIMIT, &["status", "--json"], "Linux counting the refused names", |v| {
        v["folders"][0]["global"]["files"] == REFUSED.len() + 2
    })
    .await;

    // The Wine daemon keeps syncing, both ways, after them.
    lin.write("f/later/from-linux.txt", b"later from linux");
    file_is(win.path("f/later/from-linux.txt"), b"later from linux").await;
    win.write("f/later/from-windows.txt", b"later from windows");
    file_is(lin.path("f/later/from-windows.txt"), b"later from windows").await;
    assert!(!windows.log().contains("panicked"), "{}", windows.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_daemon_under_wine_and_a_linux_daemon_sync_both_ways_over_tcp() {
    windows_and_linux_sync("tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_daemon_under_wine_and_a_linux_daemon_sync_both_ways_over_quic() {
    windows_and_linux_sync("quic").await;
}

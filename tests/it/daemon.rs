//! Two `peerfold serve` processes set up through the CLI, as a person would over SSH.

use std::path::Path;
use std::time::Duration;

use crate::util::{Daemon, TestDir, free_port, ok, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

/// Two homes that know each other, each with folder `f` shared with the other.
pub(crate) fn configured_pair(scheme: &str) -> (TestDir, TestDir, String, String) {
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    let (pa, pb) = (free_port(), free_port());
    ok(&a.peerfold(&[
        "device",
        "add",
        &idb,
        "--name",
        "b",
        "--address",
        &format!("{scheme}://127.0.0.1:{pb}"),
    ]));
    ok(&b.peerfold(&[
        "device",
        "add",
        &ida,
        "--name",
        "a",
        "--address",
        &format!("{scheme}://127.0.0.1:{pa}"),
    ]));
    for (t, other) in [(&a, &idb), (&b, &ida)] {
        let path = t.path("f");
        ok(&t.peerfold(&["folder", "add", path.to_str().unwrap(), "--id", "f", "--share", other]));
    }
    (a, b, format!("{scheme}://127.0.0.1:{pa}"), format!("{scheme}://127.0.0.1:{pb}"))
}

pub(crate) fn tmp_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".syncthing.") {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

async fn file_is(path: std::path::PathBuf, want: Vec<u8>) {
    wait_for(LIMIT, "the file to arrive", || {
        let (path, want) = (path.clone(), want.clone());
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await;
}

async fn set_up_through_the_cli(transport: &str) {
    let (a, b, la, lb) = configured_pair(transport);
    a.write("f/hello.txt", b"hello from a");
    let (_da, _db) = (Daemon::start(&a, &la), Daemon::start(&b, &lb));
    file_is(b.path("f/hello.txt"), b"hello from a".to_vec()).await;

    // status goes through the running daemon's control socket.
    let status = wait_for(LIMIT, "a status showing b connected and complete", || async {
        let out = a.peerfold(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let connected = v["devices"][0]["connected"].as_bool()?;
        let percent = v["folders"][0]["devices"][0]["percent"].as_f64()?;
        (connected && percent == 100.0).then_some(v)
    })
    .await;
    assert_eq!(status["running"], true);
    assert_eq!(status["devices"][0]["transport"], transport);
    assert_eq!(status["folders"][0]["global"]["files"], 1);
    assert_eq!(status["folders"][0]["need"]["items"], 0);
    let text = ok(&a.peerfold(&["status"]));
    assert!(text.contains(&format!("connected over {transport}")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn daemons_set_up_through_the_cli_sync_and_report_status_over_quic() {
    set_up_through_the_cli("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn daemons_set_up_through_the_cli_sync_and_report_status_over_tcp() {
    set_up_through_the_cli("tcp").await;
}

/// How many of `data`'s blocks the file at `path` already holds in place (the puller creates
/// its temporary file at full size, then writes verified blocks into it in any order).
fn blocks_present(path: &Path, data: &[u8], bs: usize) -> usize {
    let Ok(got) = std::fs::read(path) else { return 0 };
    got.chunks(bs).zip(data.chunks(bs)).filter(|(g, d)| g == d).count()
}

async fn killed_mid_transfer(transport: &str) {
    let (a, b, la, lb) = configured_pair(transport);
    let data: Vec<u8> = (0..120u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let bs = peerfold::bep::block_size_for(data.len() as u64) as usize;
    let blocks = data.len().div_ceil(bs);
    a.write("f/big.bin", &data);
    let da = Daemon::start(&a, &la);
    let db = Daemon::start(&b, &lb);
    let tmp = b.path("f/.syncthing.big.bin.tmp");
    // Data has arrived: the first block (requested first) is in the temporary file. The file
    // alone is not enough, as it exists, full size, before any block is fetched.
    wait_for(LIMIT, "the first block to arrive", || {
        let tmp = tmp.clone();
        let first = &data[..bs];
        async move {
            use std::io::Read as _;
            let mut got = vec![0; bs];
            std::fs::File::open(&tmp).ok()?.read_exact(&mut got).ok()?;
            (got == first).then_some(())
        }
    })
    .await;
    db.kill();
    assert!(!b.path("f/big.bin").exists(), "killed before the file was complete");
    // The kill landed mid-transfer: some blocks, not all, are left for the restart to reuse.
    let kept = blocks_present(&tmp, &data, bs);
    assert!(kept > 0 && kept < blocks, "{kept} of {blocks} blocks in the temporary file at the kill");
    let _db = Daemon::start(&b, &lb);
    file_is(b.path("f/big.bin"), data).await;
    assert!(tmp_files(&b.path("f")).is_empty(), "stray temporary files: {:?}", tmp_files(&b.path("f")));
    drop(da);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_killed_mid_transfer_resumes_and_ends_identical_over_quic() {
    killed_mid_transfer("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_killed_mid_transfer_resumes_and_ends_identical_over_tcp() {
    killed_mid_transfer("tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_daemon_takes_devices_and_folders_from_the_cli() {
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    let (la, lb) = (format!("tcp://127.0.0.1:{}", free_port()), format!("tcp://127.0.0.1:{}", free_port()));
    let path_a = a.path("f");
    ok(&a.peerfold(&["folder", "add", path_a.to_str().unwrap(), "--id", "f", "--label", "Photos"]));
    a.write("f/hello.txt", b"hello from a");
    let (_da, _db) = (Daemon::start(&a, &la), Daemon::start(&b, &lb));

    // b is told about a while running, and dials it; a does not know b: b is pending on a.
    let out = ok(&b.peerfold(&["device", "add", &ida, "--name", "a", "--address", &la]));
    assert!(out.starts_with(&format!("Added device {ida} \"a\"")), "{out}");
    a.json_until(LIMIT, &["device", "pending", "--json"], "b pending on a", |v| {
        v[0]["device"] == idb.as_str()
    })
    .await;
    assert!(ok(&a.peerfold(&["device", "pending"])).starts_with(&idb));

    // Accepting it is adding it; the connection comes up without a restart.
    ok(&a.peerfold(&["device", "add", &idb, "--name", "b", "--address", &lb]));
    assert_eq!(ok(&a.peerfold(&["device", "pending"])), "No devices are pending.\n");
    a.json_until(LIMIT, &["status", "--json"], "a connected to b", |v| v["devices"][0]["connected"] == true)
        .await;

    // a shares its folder: b hears the offer.
    ok(&a.peerfold(&["folder", "share", "f", &idb]));
    b.json_until(LIMIT, &["folder", "pending", "--json"], "a's offer on b", |v| {
        v[0]["folder"] == "f" && v[0]["label"] == "Photos" && v[0]["device"] == ida.as_str()
    })
    .await;
    assert!(ok(&b.peerfold(&["folder", "pending"])).starts_with("\"f\" (Photos) offered by "));

    // Accepting it is adding the folder here, shared with a: it syncs at once.
    let path_b = b.path("f");
    ok(&b.peerfold(&["folder", "add", path_b.to_str().unwrap(), "--id", "f", "--share", &ida]));
    file_is(b.path("f/hello.txt"), b"hello from a".to_vec()).await;
    assert_eq!(ok(&b.peerfold(&["folder", "pending"])), "No folder offers are pending.\n");
    // The daemon saved what it was told.
    assert!(std::fs::read_to_string(b.home().join("config.toml")).unwrap().contains(&ida));

    // Paused, the folder shows so; resumed, it syncs what changed meanwhile.
    assert_eq!(ok(&b.peerfold(&["folder", "pause", "f"])), "Paused folder \"f\".\n");
    b.json_until(LIMIT, &["status", "--json"], "f paused on b", |v| v["folders"][0]["state"] == "paused")
        .await;
    a.write("f/second.txt", b"2");
    ok(&b.peerfold(&["folder", "resume", "f"]));
    file_is(b.path("f/second.txt"), b"2".to_vec()).await;

    // Errors read the same as without a daemon.
    let out = b.peerfold(&["folder", "share", "nope", &ida]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: there is no folder with ID \"nope\"\n");
    let out = a.peerfold(&["device", "dismiss", &idb]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("error: device {idb} is not pending\n"));
    // Commands on a running folder reach its task.
    let err = String::from_utf8_lossy(&b.peerfold(&["folder", "confirm-deletes", "f"]).stderr).into_owned();
    assert!(err.contains("has no deletions waiting to be confirmed"), "{err}");
    let err = String::from_utf8_lossy(&b.peerfold(&["folder", "revert", "f"]).stderr).into_owned();
    assert!(err.contains("is not receive-only"), "{err}");
}

/// What the README shows a NAS owner: pairing and sharing over SSH with `pending` and `config`.
#[tokio::test(flavor = "multi_thread")]
async fn a_nas_is_paired_and_shares_a_folder_through_the_pending_commands() {
    let (laptop, nas) = (TestDir::new(), TestDir::new());
    let id_laptop = ok(&laptop.peerfold(&["id"])).trim().to_owned();
    let id_nas = ok(&nas.peerfold(&["id"])).trim().to_owned();
    let (l_laptop, l_nas) =
        (format!("tcp://127.0.0.1:{}", free_port()), format!("quic://127.0.0.1:{}", free_port()));
    ok(&laptop.peerfold(&["folder", "add", laptop.path("docs").to_str().unwrap(), "--id", "docs"]));
    laptop.write("docs/report.txt", b"quarterly");
    let (_dl, _dn) = (Daemon::start(&laptop, &l_laptop), Daemon::start(&nas, &l_nas));

    // The laptop adds the NAS; the NAS sees it asking and accepts it by ID.
    ok(&laptop.peerfold(&["device", "add", &id_nas, "--name", "nas", "--address", &l_nas]));
    nas.json_until(LIMIT, &["pending", "list", "--json"], "the laptop asking", |v| {
        v["devices"][0]["device"] == id_laptop.as_str()
    })
    .await;
    let listed = ok(&nas.peerfold(&["pending"]));
    assert!(listed.contains(&format!("  {id_laptop}")), "{listed}");
    assert!(listed.contains("Folder offers") && listed.ends_with("  none\n"), "{listed}");
    let out = ok(&nas.peerfold(&["pending", "accept-device", &id_laptop, "--name", "laptop"]));
    assert!(out.starts_with(&format!("Added device {id_laptop} \"laptop\"")), "{out}");
    let out = nas.peerfold(&["pending", "accept-device", &id_laptop]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("error: device {id_laptop} is not pending\n"));

    // The laptop shares its folder; the NAS accepts the offer into a new directory.
    ok(&laptop.peerfold(&["folder", "share", "docs", &id_nas]));
    nas.json_until(LIMIT, &["pending", "list", "--json"], "the offer", |v| {
        v["folders"][0]["folder"] == "docs"
    })
    .await;
    let target = nas.path("backup/docs");
    let out =
        nas.peerfold(&["pending", "accept-folder", "docs", "--from", &id_laptop, target.to_str().unwrap()]);
    assert!(crate::util::fails(&out).contains("does not exist"), "nothing created without --create");
    let accept =
        ["pending", "accept-folder", "docs", "--from", &id_laptop, target.to_str().unwrap(), "--create"];
    ok(&nas.peerfold(&accept));
    file_is(target.join("report.txt"), b"quarterly".to_vec()).await;

    // The configuration shows what was set up, defaults filled in.
    let shown = ok(&nas.peerfold(&["config", "show"]));
    assert!(
        shown.contains(&id_laptop) && shown.contains("[[folder]]") && shown.contains("rescan_interval_s"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&nas.peerfold(&["config", "show", "--json"]))).unwrap();
    assert_eq!(json["folder"][0]["devices"][0], id_laptop.as_str(), "{json}");
}

/// systemd stops a service with SIGTERM: the daemon stops cleanly, as on Ctrl-C.
#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let t = TestDir::new();
    let daemon = Daemon::start(&t, &format!("tcp://127.0.0.1:{}", free_port()));
    let log = std::sync::Arc::clone(&daemon.log_handle());
    let status = daemon.terminate();
    assert!(status.success(), "{status}: {}", log.lock().unwrap());
    assert!(!t.home().join("control.sock").exists(), "the socket is removed on a clean stop");
}

#[tokio::test]
async fn ignores_versions_and_conflicts_are_handled_over_ssh_and_reach_the_peer() {
    let (a, b, la, lb) = configured_pair("tcp");
    let ida = ok(&a.peerfold(&["id"])).trim().to_owned();
    a.write("f/doc.txt", b"v1");
    let (_da, _db) = (Daemon::start(&a, &la), Daemon::start(&b, &lb));
    file_is(b.path("f/doc.txt"), b"v1".to_vec()).await;

    // Ignore patterns from a file; a bad one is refused with its line and changes nothing.
    let patterns = b.write("patterns.txt", b"*.tmp\n// scratch files\n");
    ok(&b.peerfold(&["folder", "ignores", "f", "--set-file", patterns.to_str().unwrap()]));
    assert_eq!(ok(&b.peerfold(&["folder", "ignores", "f"])), "*.tmp\n// scratch files\n");
    let bad = b.write("bad.txt", b"ok\n[\n");
    let err =
        crate::util::fails(&b.peerfold(&["folder", "ignores", "f", "--set-file", bad.to_str().unwrap()]));
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(std::fs::read_to_string(b.path("f/.stignore")).unwrap(), "*.tmp\n// scratch files\n");

    // a changes the file; b keeps v1 in its trash can and restores it; a gets v1 back.
    a.write("f/doc.txt", b"version 2");
    file_is(b.path("f/doc.txt"), b"version 2".to_vec()).await;
    let versions = b.json_until(LIMIT, &["folder", "versions", "f", "doc.txt", "--json"], "v1 kept", |v| {
        v[0]["versions"][0]["size"] == 2
    });
    let versions = versions.await;
    let version = versions[0]["versions"][0]["version"].as_str().unwrap().to_owned();
    ok(&b.peerfold(&["folder", "restore", "f", "doc.txt", &version]));
    assert_eq!(std::fs::read(b.path("f/doc.txt")).unwrap(), b"v1");
    file_is(a.path("f/doc.txt"), b"v1".to_vec()).await;

    // A conflict copy made at a reaches b's index; b keeps the copy, and a gets that too.
    let copy = format!("doc.sync-conflict-20261121-101010-{}.txt", &ida[..7]);
    a.write(&format!("f/{copy}"), b"the copy");
    let listed = b.json_until(LIMIT, &["conflicts", "--json"], "the conflict copy at b", |v| {
        v[0]["conflict"] == copy.as_str()
    });
    let listed = listed.await;
    assert_eq!((&listed[0]["folder"], &listed[0]["path"]), (&"f".into(), &"doc.txt".into()), "{listed}");
    assert_eq!(listed[0]["device_name"], "a", "{listed}");
    let err = crate::util::fails(&b.peerfold(&["conflicts", "keep-copy", "f", "../etc/passwd"]));
    assert!(err.contains("leaves the folder"), "{err}");
    ok(&b.peerfold(&["conflicts", "keep-copy", "f", &copy]));
    assert_eq!(std::fs::read(b.path("f/doc.txt")).unwrap(), b"the copy");
    file_is(a.path("f/doc.txt"), b"the copy".to_vec()).await;
    a.json_until(LIMIT, &["conflicts", "--json"], "no conflicts at a", |v| *v == serde_json::json!([])).await;
    assert!(!a.path(&format!("f/{copy}")).exists());
    assert_eq!(ok(&a.peerfold(&["conflicts"])).trim(), "No conflicts.");
}

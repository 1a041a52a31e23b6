//! The `peerfold` command line: identity, scanning, configuration, errors.

use std::process::{Command, Output};

use peerfold::identity::DeviceId;

use crate::util::{TestDir, fails, ok, syncthing};

#[test]
fn id_creates_an_identity_once_and_prints_its_device_id() {
    let t = TestDir::new();
    let first = ok(&t.peerfold(&["id"]));
    let id: DeviceId = first.trim().parse().expect("a device ID");
    assert_eq!(first.trim(), id.to_string(), "printed in Syncthing's 8×7 form");
    // The ID is the SHA-256 of the certificate on disk.
    let pem = std::fs::read_to_string(t.home().join("cert.pem")).unwrap();
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(DeviceId::from_cert_der(&der), id);
    // Later runs reuse the identity.
    assert_eq!(ok(&t.peerfold(&["id"])), first);
    // And the home got an editable configuration.
    assert!(std::fs::read_to_string(t.home().join("config.toml")).unwrap().contains("[options]"));
}

#[test]
fn id_of_a_syncthing_home_matches_syncthing() {
    let t = TestDir::new();
    let generated = Command::new(syncthing())
        .args(["generate", "--no-default-folder", "--home"])
        .arg(t.home())
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let theirs =
        Command::new(syncthing()).args(["serve", "--device-id", "--home"]).arg(t.home()).output().unwrap();
    let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_owned();
    assert_eq!(theirs.len(), 63, "syncthing printed {theirs:?}");
    assert_eq!(ok(&t.peerfold(&["id"])).trim(), theirs);
}

#[test]
fn id_qr_draws_a_square_code() {
    let t = TestDir::new();
    let out = ok(&t.peerfold(&["id", "--qr"]));
    let mut lines = out.lines();
    lines.next().expect("the ID line");
    let qr: Vec<&str> = lines.collect();
    assert!(qr.len() > 10, "{out}");
    let width = qr[0].chars().count();
    assert!(qr.iter().all(|l| l.chars().count() == width));
    // Two modules per character row: rows ≈ width / 2.
    assert!((qr.len() * 2).abs_diff(width) <= 2, "{} rows of {width}", qr.len());
}

#[test]
fn scan_summarises_and_rescan_finds_only_changes() {
    let t = TestDir::new();
    t.write("data/a.txt", b"hello");
    t.write("data/sub/b.bin", &vec![3u8; 300_000]);
    let folder = t.path("data");
    let out = ok(&t.peerfold(&["scan", folder.to_str().unwrap()]));
    assert!(out.contains("2 files"), "{out}");
    assert!(out.contains("1 directories"), "{out}");
    assert!(out.contains("recorded 3 changes"), "{out}");

    let json = ok(&t.peerfold(&["scan", "--json", folder.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["changed"], 0, "{json}");
    assert_eq!(v["files"], 2);
    assert_eq!(v["hashed_files"], 0);

    std::fs::remove_file(folder.join("a.txt")).unwrap();
    let json = ok(&t.peerfold(&["scan", "--json", folder.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((v["changed"].as_u64(), v["deleted"].as_u64()), (Some(1), Some(1)), "{json}");
}

#[test]
fn scan_of_a_missing_path_is_one_clear_sentence() {
    let t = TestDir::new();
    let err = fails(&t.peerfold(&["scan", t.path("nope").to_str().unwrap()]));
    assert!(err.starts_with("error: cannot scan "), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_broken_config_is_reported_with_its_path() {
    let t = TestDir::new();
    std::fs::create_dir_all(t.home()).unwrap();
    std::fs::write(t.home().join("config.toml"), "[[folder]]\nid = \"x\"\npath = \"relative\"\n").unwrap();
    let err = fails(&t.peerfold(&["id"]));
    assert!(err.contains("config.toml is not valid"), "{err}");
    assert!(err.contains("not absolute"), "{err}");
}

#[test]
fn a_home_in_use_is_refused() {
    let t = TestDir::new();
    ok(&t.peerfold(&["id"]));
    let _held = peerfold::home::Home::open(&t.home()).unwrap();
    // `scan` writes the index: it needs the home to itself. (`id` only reads, and works.)
    let dir = t.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    let err = fails(&t.peerfold(&["scan", dir.to_str().unwrap()]));
    assert!(err.contains("in use by another Peerfold process"), "{err}");
    ok(&t.peerfold(&["id"]));
}

#[test]
fn half_an_identity_is_refused_not_overwritten() {
    let t = TestDir::new();
    std::fs::create_dir_all(t.home()).unwrap();
    std::fs::write(t.home().join("cert.pem"), "not really").unwrap();
    let err = fails(&t.peerfold(&["id"]));
    assert!(err.contains("key.pem"), "{err}");
    assert_eq!(std::fs::read_to_string(t.home().join("cert.pem")).unwrap(), "not really");
}

#[test]
fn help_lists_the_commands() {
    let out = ok(&Command::new(env!("CARGO_BIN_EXE_peerfold")).arg("--help").output().unwrap());
    for cmd in ["id", "scan", "serve", "device", "folder", "--home"] {
        assert!(out.contains(cmd), "{out}");
    }
}

// Configuration commands.

fn dev(n: u8) -> String {
    DeviceId::from_bytes([n; 32]).to_string()
}

/// The one-line error of a run that failed with exit code 1.
fn error(out: &Output) -> String {
    let err = fails(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn json(out: &Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn config_toml(t: &TestDir) -> String {
    std::fs::read_to_string(t.home().join("config.toml")).unwrap()
}

#[test]
fn device_add_updates_lists_and_removes() {
    let t = TestDir::new();
    assert_eq!(json(&t.peerfold(&["device", "list", "--json"])), serde_json::json!([]));
    let (a, b) = (dev(1), dev(2));
    let out = ok(&t.peerfold(&["device", "add", &a.to_lowercase().replace('-', ""), "--name", "laptop"]));
    assert_eq!(
        out,
        format!("Added device {a} \"laptop\" (addresses: dynamic).\n"),
        "stored in the canonical form"
    );
    let out =
        ok(&t.peerfold(&["device", "add", &b, "--address", "tcp://nas.local:22000", "--address", "dynamic"]));
    assert_eq!(out, format!("Added device {b} (addresses: tcp://nas.local:22000, dynamic).\n"));

    // Adding it again changes what is given, and says so.
    let out = ok(&t.peerfold(&["device", "add", &a, "--address", "quic://[2001:db8::1]:22000"]));
    assert_eq!(
        out,
        format!("Device {a} was already configured; set its addresses to quic://[2001:db8::1]:22000.\n")
    );
    let out = ok(&t.peerfold(&["device", "add", &a, "--name", "laptop"]));
    assert!(out.contains("already configured; nothing changed"), "{out}");

    let list = json(&t.peerfold(&["device", "list", "--json"]));
    assert_eq!(
        list,
        serde_json::json!([
            {"id": a, "name": "laptop", "addresses": ["quic://[2001:db8::1]:22000"], "paused": false,
             "auto_accept_folders": false, "introducer": false, "introduced_by": null, "folders": [],
             "max_send_kibps": 0, "max_recv_kibps": 0},
            {"id": b, "name": "", "addresses": ["tcp://nas.local:22000", "dynamic"], "paused": false,
             "auto_accept_folders": false, "introducer": false, "introduced_by": null, "folders": [],
             "max_send_kibps": 0, "max_recv_kibps": 0},
        ])
    );
    let text = ok(&t.peerfold(&["device", "list"]));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with(&format!("{a} \"laptop\": quic://[2001:db8::1]:22000; shares no folders")),
        "{text}"
    );

    let out = ok(&t.peerfold(&["device", "remove", &b]));
    assert_eq!(out, format!("Removed device {b}.\n"));
    assert_eq!(json(&t.peerfold(&["device", "list", "--json"])).as_array().map(Vec::len), Some(1));
    let err = error(&t.peerfold(&["device", "remove", &b]));
    assert_eq!(err, format!("error: device {b} is not a configured device\n"));
}

#[test]
fn device_add_refuses_bad_ids_addresses_and_this_device() {
    let t = TestDir::new();
    let me = ok(&t.peerfold(&["id"])).trim().to_owned();
    let err = error(&t.peerfold(&["device", "add", &me]));
    assert!(err.contains("is this device's own ID"), "{err}");
    let err = error(&t.peerfold(&["device", "add", "MFZWI3D-BONSGYC"]));
    assert!(err.starts_with("error: \"MFZWI3D-BONSGYC\" is not a device ID: "), "{err}");
    let err = error(&t.peerfold(&["device", "add", &dev(1), "--address", "nas:22000"]));
    assert!(err.contains("address \"nas:22000\" is not dynamic or scheme://host[:port]"), "{err}");
    let err = error(&t.peerfold(&["device", "add", &dev(1), "--address", "tcp://nas:99999"]));
    assert!(err.contains("not a number from 1 to 65535"), "{err}");
    assert!(!config_toml(&t).contains("[[device]]"), "nothing was saved");
}

#[test]
fn folder_add_creates_the_directory_with_its_marker_and_versioning() {
    let t = TestDir::new();
    let (a, b) = (dev(1), dev(2));
    ok(&t.peerfold(&["device", "add", &a]));
    ok(&t.peerfold(&["device", "add", &b]));
    // Given with a `..`: the configuration gets the canonical path.
    std::fs::create_dir(t.path("sync")).unwrap();
    let given = t.path("sync/../photos");
    let out = ok(&t.peerfold(&[
        "folder",
        "add",
        given.to_str().unwrap(),
        "--id",
        "photos",
        "--label",
        "Photos",
        "--type",
        "receive-only",
        "--share",
        &a,
        "--share",
        &b,
        "--versioning-days",
        "7",
    ]));
    let root = t.path("photos").canonicalize().unwrap();
    assert_eq!(
        out,
        format!(
            "Added receive-only folder \"photos\" at {} (trash can for 7 days), shared with 2 devices.\n",
            root.display()
        )
    );
    assert!(root.join(".stfolder").is_dir(), "Syncthing's folder marker");

    // An existing directory keeps its files; versioning is on by default.
    t.write("docs/report.txt", b"kept");
    let out = ok(&t.peerfold(&["folder", "add", t.path("docs").to_str().unwrap(), "--id", "docs"]));
    assert!(out.contains("(trash can for 30 days), shared with no device yet."), "{out}");
    assert_eq!(std::fs::read(t.path("docs/report.txt")).unwrap(), b"kept");
    assert!(t.path("docs/.stfolder").is_dir());
    ok(&t.peerfold(&["folder", "add", t.path("tmp").to_str().unwrap(), "--id", "tmp", "--no-versioning"]));

    let list = json(&t.peerfold(&["folder", "list", "--json"]));
    assert_eq!(
        list[0],
        serde_json::json!({
            "id": "photos",
            "label": "Photos",
            "path": root.to_str().unwrap(),
            "type": "receive-only",
            "devices": [a, b],
            "versioning": {"type": "trashcan", "keep_days": 7},
            "paused": false,
            "watch": true,
            "rescan_interval_s": 3600,
        })
    );
    assert_eq!(list[1]["versioning"], serde_json::json!({"type": "trashcan", "keep_days": 30}));
    assert_eq!(list[2]["versioning"], serde_json::json!({"type": "none"}));
    assert_eq!(list.as_array().map(Vec::len), Some(3));
    let devices = json(&t.peerfold(&["device", "list", "--json"]));
    assert_eq!(devices[0]["folders"], serde_json::json!(["photos"]));

    let text = ok(&t.peerfold(&["folder", "list"]));
    assert!(
        text.starts_with(&format!(
            "\"photos\" (Photos) at {}: receive-only, trash can for 7 days, shared with 2 devices\n",
            root.display()
        )),
        "{text}"
    );
    let toml = config_toml(&t);
    assert!(toml.contains("[folder.versioning]\ntype = \"trashcan\"\nkeep_days = 7\n"), "{toml}");
}

#[test]
fn folder_add_refuses_unknown_devices_taken_ids_and_overlapping_paths() {
    let t = TestDir::new();
    ok(&t.peerfold(&["folder", "add", t.path("a").to_str().unwrap(), "--id", "a"]));
    let a = t.path("a").canonicalize().unwrap();

    let missing = t.path("new");
    let err =
        error(&t.peerfold(&["folder", "add", missing.to_str().unwrap(), "--id", "n", "--share", &dev(7)]));
    assert_eq!(err, format!("error: device {} is not a configured device\n", dev(7)));
    assert!(!missing.exists(), "a refused folder creates no directory");
    let err = error(&t.peerfold(&["folder", "add", missing.to_str().unwrap(), "--id", "a"]));
    assert_eq!(err, format!("error: folder ID \"a\" is already used by the folder at {}\n", a.display()));
    assert!(!missing.exists());

    let err = error(&t.peerfold(&["folder", "add", a.to_str().unwrap(), "--id", "b"]));
    assert!(err.contains("is already the path of folder \"a\""), "{err}");
    let err = error(&t.peerfold(&["folder", "add", a.join("sub").to_str().unwrap(), "--id", "b"]));
    assert!(err.contains(&format!("sub is inside folder \"a\" at {}", a.display())), "{err}");
    let err = error(&t.peerfold(&["folder", "add", t.dir.path().to_str().unwrap(), "--id", "b"]));
    assert!(err.contains("contains folder \"a\""), "{err}");
    t.write("file", b"x");
    let err = error(&t.peerfold(&["folder", "add", t.path("file").to_str().unwrap(), "--id", "b"]));
    assert!(err.starts_with("error: cannot create folder ") && err.contains("not a directory"), "{err}");
    let err = error(&t.peerfold(&["folder", "add", t.path("c").to_str().unwrap(), "--id", ""]));
    assert!(err.contains("is not a folder ID: a folder ID must not be empty"), "{err}");

    assert_eq!(json(&t.peerfold(&["folder", "list", "--json"])).as_array().map(Vec::len), Some(1));
}

#[test]
fn folder_share_and_unshare_are_idempotent() {
    let t = TestDir::new();
    let d = dev(1);
    ok(&t.peerfold(&["device", "add", &d]));
    ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f"]));
    assert_eq!(
        ok(&t.peerfold(&["folder", "share", "f", &d])),
        format!("Shared folder \"f\" with device {d}.\n")
    );
    assert_eq!(
        ok(&t.peerfold(&["folder", "share", "f", &d])),
        format!("Folder \"f\" is already shared with device {d}.\n")
    );
    assert_eq!(json(&t.peerfold(&["folder", "list", "--json"]))[0]["devices"], serde_json::json!([d]));
    assert_eq!(
        ok(&t.peerfold(&["folder", "unshare", "f", &d])),
        format!("Stopped sharing folder \"f\" with device {d}.\n")
    );
    assert!(ok(&t.peerfold(&["folder", "unshare", "f", &d])).contains("was not shared"));
    assert_eq!(json(&t.peerfold(&["folder", "list", "--json"]))[0]["devices"], serde_json::json!([]));

    let err = error(&t.peerfold(&["folder", "share", "nope", &d]));
    assert_eq!(err, "error: there is no folder with ID \"nope\"\n");
    let err = error(&t.peerfold(&["folder", "unshare", "f", &dev(2)]));
    assert!(err.contains("is not a configured device"), "{err}");

    // Removing the device unshares it everywhere.
    ok(&t.peerfold(&["folder", "share", "f", &d]));
    let out = ok(&t.peerfold(&["device", "remove", &d]));
    assert_eq!(out, format!("Removed device {d} and stopped sharing folder \"f\" with it.\n"));
    assert_eq!(json(&t.peerfold(&["folder", "list", "--json"]))[0]["devices"], serde_json::json!([]));
}

#[test]
fn folder_remove_forgets_the_folder_not_its_files() {
    let t = TestDir::new();
    t.write("f/keep.txt", b"k");
    ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f"]));
    let out = ok(&t.peerfold(&["folder", "remove", "f"]));
    assert!(out.starts_with("Removed folder \"f\" from the configuration; its files in "), "{out}");
    assert_eq!(std::fs::read(t.path("f/keep.txt")).unwrap(), b"k");
    assert!(t.path("f/.stfolder").is_dir());
    assert_eq!(ok(&t.peerfold(&["folder", "list"])), "No folders are configured.\n");
    assert_eq!(error(&t.peerfold(&["folder", "remove", "f"])), "error: there is no folder with ID \"f\"\n");
}

#[test]
fn folder_commands_that_need_the_daemon_say_so() {
    let t = TestDir::new();
    ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f"]));
    for command in ["revert", "confirm-deletes"] {
        let err = error(&t.peerfold(&["folder", command, "f"]));
        assert!(err.contains("only while Peerfold runs: start `peerfold serve`"), "{err}");
    }
}

#[test]
fn configuration_changes_beside_a_process_that_is_not_a_daemon_are_refused_but_lists_work() {
    let t = TestDir::new();
    ok(&t.peerfold(&["device", "add", &dev(1), "--name", "laptop"]));
    // Holds the home lock as `peerfold scan` would, with no control socket to answer.
    let _busy = peerfold::home::Home::open(&t.home()).unwrap();
    let err = error(&t.peerfold(&["device", "add", &dev(2)]));
    assert!(err.starts_with("error: another Peerfold process (pid "), "{err}");
    assert!(err.contains("does not answer on its control socket"), "{err}");
    let err = error(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f"]));
    assert!(err.contains("does not answer on its control socket"), "{err}");
    assert!(!t.path("f").exists());
    // The lists only read config.toml, which is always whole.
    assert!(ok(&t.peerfold(&["device", "list"])).contains("\"laptop\""));
    assert_eq!(ok(&t.peerfold(&["folder", "list"])), "No folders are configured.\n");
}

/// `peerfold check` lists what differs between the index and the disk, changes nothing, and
/// says so with its exit code: 0 clean, 1 differences, 2 could not check.
#[test]
fn check_lists_what_changed_behind_the_index_and_exits_1() {
    let t = TestDir::new();
    let f = t.path("f");
    ok(&t.peerfold(&["folder", "add", f.to_str().unwrap(), "--id", "f"]));
    t.write("f/same.txt", b"unchanged");
    t.write("f/grows.txt", b"short");
    t.write("f/gone.txt", b"to be removed");
    t.write("f/d/deep.bin", &crate::util::pseudo_random(300_000, 1));
    t.write("f/swapped.bin", &crate::util::pseudo_random(1000, 2));
    t.write("f/.stignore", b"*.log\n");
    t.write("f/skip.log", b"ignored");
    ok(&t.peerfold(&["scan", f.to_str().unwrap()]));

    // Clean: by ID and by path, with and without hashing.
    let out = t.peerfold(&["check", "f"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(ok(&out).contains("the index agrees with the disk"), "{}", ok(&out));
    assert_eq!(t.peerfold(&["check", f.to_str().unwrap(), "--hash"]).status.code(), Some(0));

    // Behind the index's back: a file grows, one is removed, one is added, a directory with
    // it; one keeps its size and time but not its content; an ignored file changes.
    t.write("f/grows.txt", b"much longer now");
    std::fs::remove_file(t.path("f/gone.txt")).unwrap();
    t.write("f/new/added.txt", b"new");
    let swapped = t.path("f/swapped.bin");
    let mtime = std::fs::metadata(&swapped).unwrap().modified().unwrap();
    std::fs::write(&swapped, crate::util::pseudo_random(1000, 3)).unwrap();
    std::fs::File::options().write(true).open(&swapped).unwrap().set_modified(mtime).unwrap();
    t.write("f/skip.log", b"ignored, changed");
    t.write("f/d/.syncthing.deep.bin.tmp", b"left by a download");

    let out = t.peerfold(&["check", "f"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "grows.txt: size differs (index: 5; disk: 15)",
        "gone.txt: missing on disk (index: file, 13 bytes)",
        "new: not in the index (disk: directory)",
        "new/added.txt: not in the index (disk: file, 3 bytes)",
        "d/.syncthing.deep.bin.tmp: download temporary file",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(
        !text.contains("swapped.bin") && !text.contains("skip.log") && !text.contains("same.txt"),
        "{text}"
    );

    // Hashing finds the content that changed under the same size and time.
    let out = t.peerfold(&["check", "f", "--hash", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(String, String)> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_owned(), d["kind"].as_str().unwrap().to_owned()))
        .collect();
    let want = [
        ("gone.txt", "missing"),
        ("grows.txt", "modified"),
        ("grows.txt", "size"),
        ("new", "extra"),
        ("new/added.txt", "extra"),
        ("swapped.bin", "content"),
    ];
    let mut got = kinds.clone();
    got.sort();
    assert_eq!(got, want.map(|(p, k)| (p.to_owned(), k.to_owned())), "{report}");
    assert_eq!(report["temp_files"], serde_json::json!(["d/.syncthing.deep.bin.tmp"]));

    // It fixed nothing: the same differences again; a scan brings the index in line.
    assert_eq!(t.peerfold(&["check", "f"]).status.code(), Some(1));
    std::fs::remove_file(t.path("f/d/.syncthing.deep.bin.tmp")).unwrap();
    ok(&t.peerfold(&["scan", f.to_str().unwrap()]));
    assert_eq!(t.peerfold(&["check", "f"]).status.code(), Some(0));
    // A scan trusts size and time, as Syncthing's does: only hashing sees that one.
    let out = t.peerfold(&["check", "f", "--hash"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("swapped.bin: content differs"));

    // No such folder: 2, with one sentence.
    let out = t.peerfold(&["check", "nope"]);
    let err = fails(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("neither a folder ID nor a directory"), "{err}");
}

#[test]
fn limits_schedules_and_pause_are_set_from_the_command_line() {
    let t = TestDir::new();
    ok(&t.peerfold(&["id"]));
    let said = ok(&t.peerfold(&["limits", "--max-recv-kibps", "10240", "--limit-lan"]));
    assert!(said.contains("receiving 10240 KiB/s") && said.contains("also on the LAN"), "{said}");
    let schedule = t.write(
        "schedule.toml",
        b"[[schedule]]\ndays = [\"sat\", \"sun\"]\nfrom = \"00:00\"\nto = \"00:00\"\npause = true\n",
    );
    ok(&t.peerfold(&["limits", "--schedule", schedule.to_str().unwrap()]));
    let shown = ok(&t.peerfold(&["limits"]));
    assert!(shown.contains("Schedule 1: sat,sun 00:00-00:00: every device paused"), "{shown}");
    // A rule that both pauses and limits is refused, and nothing changes.
    let bad = t.write(
        "bad.toml",
        b"[[schedule]]\nfrom = \"09:00\"\nto = \"17:00\"\npause = true\nmax_send_kibps = 5\n",
    );
    assert!(fails(&t.peerfold(&["limits", "--schedule", bad.to_str().unwrap()])).contains("either pause"));

    let peer = DeviceId::from_bytes([7; 32]).to_string();
    ok(&t.peerfold(&["device", "add", &peer, "--name", "nas", "--max-send-kibps", "512"]));
    let only_limits = ok(&t.peerfold(&["device", "add", &peer, "--max-recv-kibps", "64"]));
    assert!(only_limits.contains("sending 512 KiB/s, receiving 64 KiB/s"), "{only_limits}");
    assert!(ok(&t.peerfold(&["device", "list"])).contains("sending 512 KiB/s, receiving 64 KiB/s"));

    assert!(ok(&t.peerfold(&["pause", "--for", "2h"])).contains("Paused every device until"));
    let status = ok(&t.peerfold(&["status"]));
    assert!(status.contains("Every device is paused until"), "{status}");
    assert!(ok(&t.peerfold(&["resume"])).contains("Resumed every device"));
    let config = std::fs::read_to_string(t.home().join("config.toml")).unwrap();
    assert!(config.contains("max_recv_kibps = 10240") && !config.contains("pause_all"), "{config}");
}

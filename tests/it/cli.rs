//! The `peerfold` command line: identity, scanning, errors.

use std::process::Command;

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
    let err = fails(&t.peerfold(&["id"]));
    assert!(err.contains("in use by another Peerfold process"), "{err}");
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
    for cmd in ["id", "scan", "serve", "--home"] {
        assert!(out.contains(cmd), "{out}");
    }
}

//! Peerfold against a real Syncthing 1.19.2, over QUIC and over TCP: both sides must end with
//! byte-identical trees (content, mtimes, permissions), agree that nothing is needed, and log
//! no protocol error.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::syncthing::{StDevice, StFolder, Syncthing};
use crate::util::{Daemon, TestDir, free_port, ok, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

/// One entry of a tree as both sides must agree on it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mtime: (i64, i64), mode: u32 },
    Symlink { target: String },
}

/// The tree under `root`, without the folder's own bookkeeping (`.stfolder`, `.stversions`,
/// `.stignore`). `None` if an entry vanished or changed while it was read (a sync in progress).
fn snapshot(root: &Path) -> Option<BTreeMap<String, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ok()? {
            let e = e.ok()?;
            let path = e.path();
            let name = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            if [".stfolder", ".stversions", ".stignore"].contains(&name.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let entry = if meta.is_symlink() {
                Entry::Symlink { target: std::fs::read_link(&path).ok()?.to_string_lossy().into_owned() }
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir { mode: meta.permissions().mode() & 0o777 }
            } else {
                Entry::File {
                    data: std::fs::read(&path).ok()?,
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                    mode: meta.permissions().mode() & 0o777,
                }
            };
            out.insert(name, entry);
        }
    }
    Some(out)
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Nested directories, an empty file and directory, a multi-block file, an executable, a
/// symlink and non-ASCII names.
fn mixed_tree(root: &Path) {
    write(root, "docs/readme.txt", b"read me\n");
    write(root, "docs/deep/nested/data.bin", &pseudo_random(3 << 20, 1));
    write(root, "empty.txt", b"");
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(root, "café/naïve résumé.txt", "crème brûlée".as_bytes());
    write(root, "日本語/ファイル.txt", "こんにちは".as_bytes());
    write(root, "run.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
}

/// A modify in the middle of the multi-block file, an append, a delete and a rename.
fn change_tree(root: &Path) {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let mut f = std::fs::OpenOptions::new().write(true).open(root.join("docs/deep/nested/data.bin")).unwrap();
    f.seek(SeekFrom::Start(1_500_000)).unwrap();
    f.write_all(&pseudo_random(1000, 2)).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new().append(true).open(root.join("docs/readme.txt")).unwrap();
    f.write_all(b"and more\n").unwrap();
    drop(f);
    std::fs::remove_file(root.join("run.sh")).unwrap();
    std::fs::rename(root.join("日本語/ファイル.txt"), root.join("日本語/名前を変えた.txt")).unwrap();
}

/// A Peerfold daemon and a Syncthing sharing folder `f`, each knowing the other's address.
struct Pair {
    pf: TestDir,
    pf_id: String,
    pf_listen: String,
    daemon: Option<Daemon>,
    st: Syncthing,
}

impl Pair {
    /// Sets both up (nothing runs yet); `pf_type`/`st_type` are the folder types
    /// (Peerfold's and Syncthing's spelling). `share_on_st`: whether Syncthing's folder is
    /// shared with Peerfold (else Syncthing does not know Peerfold at all).
    fn new(scheme: &str, pf_type: &str, st_type: &str, st_knows_pf: bool) -> Self {
        let pf = TestDir::new();
        let pf_id = ok(&pf.peerfold(&["id"])).trim().to_owned();
        let pf_listen = format!("{scheme}://127.0.0.1:{}", free_port());
        std::fs::create_dir_all(pf.path("st-home")).unwrap();
        let st = Syncthing::new(pf.path("st-home"), scheme);
        ok(&pf.peerfold(&["device", "add", &st.id, "--name", "st", "--address", &st.listen]));
        let path = pf.path("pf");
        ok(&pf.peerfold(&["folder", "add", path.to_str().unwrap(), "--id", "f", "--type", pf_type, "--share", &st.id]));
        let st_path = pf.path("st");
        std::fs::create_dir_all(&st_path).unwrap();
        let devices: Vec<&str> = if st_knows_pf { vec![pf_id.as_str()] } else { vec![] };
        let folder = StFolder { id: "f", path: &st_path, kind: st_type, devices: &devices };
        let peer = StDevice { id: &pf_id, name: "peerfold", address: &pf_listen };
        let peers: &[StDevice<'_>] = if st_knows_pf { std::slice::from_ref(&peer) } else { &[] };
        st.configure(std::slice::from_ref(&folder), peers);
        Self { pf, pf_id, pf_listen, daemon: None, st }
    }

    fn pf_root(&self) -> std::path::PathBuf {
        self.pf.path("pf")
    }

    fn st_root(&self) -> std::path::PathBuf {
        self.pf.path("st")
    }

    async fn start(&mut self) {
        self.daemon = Some(Daemon::start(&self.pf, &self.pf_listen));
        self.st.start().await;
    }

    /// Peerfold's `status --json`.
    fn pf_status(&self) -> Option<Value> {
        serde_json::from_slice(&self.pf.peerfold(&["status", "--json"]).stdout).ok()
    }

    /// Waits until both trees are identical and both sides say nothing is needed.
    async fn in_sync(&self) -> BTreeMap<String, Entry> {
        wait_for(LIMIT, "identical trees and nothing needed on either side", || async {
            let ours = snapshot(&self.pf_root())?;
            let theirs = snapshot(&self.st_root())?;
            if ours != theirs {
                return None;
            }
            let st = self.st.db_status("f").await;
            if st["needFiles"] != 0 || st["state"] != "idle" || st["globalFiles"] != st["localFiles"] {
                return None;
            }
            let pf = self.pf_status()?;
            let folder = &pf["folders"][0];
            (folder["need"]["items"] == 0 && folder["state"] == "idle").then_some(ours)
        })
        .await
    }

    /// Syncthing is connected to Peerfold over the pair's transport.
    async fn connected_over(&self, scheme: &str) {
        let c = self.st.get("/rest/system/connections").await;
        let conn = &c["connections"][self.pf_id.as_str()];
        assert_eq!(conn["connected"], true, "{c}");
        assert!(conn["type"].as_str().is_some_and(|t| t.starts_with(scheme)), "{conn}");
    }

    /// Neither side logged a protocol error.
    fn no_protocol_errors(&self) {
        let st = self.st.log();
        for bad in ["protocol error", "invalid", "unexpected", "unknown folder", "Index for unshared"] {
            assert!(!st.contains(bad), "Syncthing logged {bad:?}:\n{st}");
        }
        let pf = self.daemon.as_ref().map(Daemon::log).unwrap_or_default();
        for bad in ["WARN", "ERROR", "handling", "bad message", "protocol"] {
            assert!(!pf.contains(bad), "Peerfold logged {bad:?}:\n{pf}");
        }
    }
}

async fn peerfold_to_syncthing(scheme: &str) {
    let mut p = Pair::new(scheme, "send-receive", "sendreceive", true);
    mixed_tree(&p.pf_root());
    p.start().await;
    let first = p.in_sync().await;
    assert_eq!(first.len(), 13, "{first:#?}");
    p.connected_over(scheme).await;
    change_tree(&p.pf_root());
    let after = p.in_sync().await;
    assert!(after.contains_key("日本語/名前を変えた.txt") && !after.contains_key("run.sh"));
    p.no_protocol_errors();
}

async fn syncthing_to_peerfold(scheme: &str) {
    let mut p = Pair::new(scheme, "send-receive", "sendreceive", true);
    mixed_tree(&p.st_root());
    p.start().await;
    let first = p.in_sync().await;
    assert_eq!(first.len(), 13, "{first:#?}");
    p.connected_over(scheme).await;
    change_tree(&p.st_root());
    p.st.scan("f").await;
    let after = p.in_sync().await;
    assert!(after.contains_key("日本語/名前を変えた.txt") && !after.contains_key("run.sh"));
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn peerfold_to_syncthing_over_quic() {
    peerfold_to_syncthing("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peerfold_to_syncthing_over_tcp() {
    peerfold_to_syncthing("tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syncthing_to_peerfold_over_quic() {
    syncthing_to_peerfold("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syncthing_to_peerfold_over_tcp() {
    syncthing_to_peerfold("tcp").await;
}

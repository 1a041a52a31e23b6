//! Peerfold against a real Syncthing 1.19.2, over QUIC and over TCP: both sides must end with
//! byte-identical trees (content, mtimes, permissions), agree that nothing is needed, and log
//! no protocol error.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::syncthing::{StDevice, StFolder, Syncthing};
use crate::util::{Daemon, TestDir, free_port, ok, pseudo_random, wait_for};

const LIMIT: Duration = Duration::from_secs(120);

/// One entry of a tree as both sides must agree on it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mtime: (i64, i64), mode: u32 },
    Symlink { target: String },
}

/// The tree under `root`, without the folder's own bookkeeping (`.stfolder`, `.stversions`,
/// `.stignore`). `None` if an entry vanished or changed while it was read (a sync in progress).
pub(crate) fn snapshot(root: &Path) -> Option<BTreeMap<String, Entry>> {
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

/// How a [`Pair`] is set up.
struct Setup {
    /// Peerfold's folder type, or `None` for no folder `f` on Peerfold.
    pf_folder: Option<&'static str>,
    /// Syncthing's folder type (its spelling).
    st_folder: &'static str,
    /// Whether Peerfold has Syncthing as a device (and Syncthing has Peerfold).
    pf_knows_st: bool,
    st_knows_pf: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            pf_folder: Some("send-receive"),
            st_folder: "sendreceive",
            pf_knows_st: true,
            st_knows_pf: true,
        }
    }
}

impl Pair {
    /// Sets both up; nothing runs yet.
    fn new(scheme: &str, setup: Setup) -> Self {
        let pf = TestDir::new();
        let pf_id = ok(&pf.peerfold(&["id"])).trim().to_owned();
        let pf_listen = format!("{scheme}://127.0.0.1:{}", free_port());
        std::fs::create_dir_all(pf.path("st-home")).unwrap();
        let st = Syncthing::new(pf.path("st-home"), scheme);
        if setup.pf_knows_st {
            ok(&pf.peerfold(&["device", "add", &st.id, "--name", "st", "--address", &st.listen]));
        }
        if let Some(kind) = setup.pf_folder {
            let path = pf.path("pf");
            let mut args = vec!["folder", "add", path.to_str().unwrap(), "--id", "f", "--type", kind];
            if setup.pf_knows_st {
                args.extend(["--share", &st.id]);
            }
            ok(&pf.peerfold(&args));
        }
        let st_path = pf.path("st");
        std::fs::create_dir_all(&st_path).unwrap();
        let devices: Vec<&str> = if setup.st_knows_pf { vec![pf_id.as_str()] } else { vec![] };
        let folder = StFolder { id: "f", path: &st_path, kind: setup.st_folder, devices: &devices };
        let peer = StDevice { id: &pf_id, name: "peerfold", address: &pf_listen };
        let peers: &[StDevice<'_>] = if setup.st_knows_pf { std::slice::from_ref(&peer) } else { &[] };
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

    /// Waits until both trees are identical and both sides say nothing is needed; on a
    /// timeout, says what differs.
    async fn in_sync(&self) -> BTreeMap<String, Entry> {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let (ours, theirs) = (snapshot(&self.pf_root()), snapshot(&self.st_root()));
            let st = self.st.try_get("/rest/db/status?folder=f").await;
            let pf = self.pf_status();
            let st_done = st.as_ref().is_some_and(|st| {
                st["needFiles"] == 0 && st["state"] == "idle" && st["globalFiles"] == st["localFiles"]
            });
            let pf_done = pf.as_ref().is_some_and(|pf| {
                let folder = &pf["folders"][0];
                folder["need"]["items"] == 0 && folder["state"] == "idle"
            });
            if ours.is_some() && ours == theirs && st_done && pf_done {
                return ours.unwrap_or_default();
            }
            if tokio::time::Instant::now() > deadline {
                let names = |t: &Option<BTreeMap<String, Entry>>| -> Vec<String> {
                    t.as_ref().map(|t| t.keys().cloned().collect()).unwrap_or_default()
                };
                let (a, b) = (names(&ours), names(&theirs));
                let only_ours: Vec<&String> = a.iter().filter(|n| !b.contains(n)).take(5).collect();
                let only_theirs: Vec<&String> = b.iter().filter(|n| !a.contains(n)).take(5).collect();
                panic!(
                    "not in sync after {LIMIT:?}: {} vs {} entries, only on Peerfold {only_ours:?}, only on \
                     Syncthing {only_theirs:?}\nSyncthing: {st:?}\nPeerfold: {pf:?}",
                    a.len(),
                    b.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        // Peerfold: no warning from the protocol side, and no connection closed for a protocol
        // reason (a scanner retrying a file that is still being written is not one).
        let pf = self.daemon.as_ref().map(Daemon::log).unwrap_or_default();
        for line in pf.lines() {
            let protocol_side =
                ["peerfold::model", "peerfold::net", "peerfold::bep"].iter().any(|m| line.contains(m));
            let warned = line.contains("WARN") || line.contains("ERROR");
            assert!(!(protocol_side && warned), "Peerfold warned: {line}");
            for bad in ["handling", "bad message", "protocol", "invalid", "decod"] {
                assert!(!(line.contains("disconnected") && line.contains(bad)), "Peerfold: {line}");
            }
        }
    }
}

async fn peerfold_to_syncthing(scheme: &str) {
    let mut p = Pair::new(scheme, Setup::default());
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
    let mut p = Pair::new(scheme, Setup::default());
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

impl Pair {
    /// Kills Peerfold's daemon (SIGKILL) and starts it again.
    fn restart_pf(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.kill();
        }
        self.daemon = Some(Daemon::start(&self.pf, &self.pf_listen));
    }

    /// Waits until Peerfold's status satisfies `f`.
    async fn pf_until(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.pf.json_until(LIMIT, &["status", "--json"], what, f).await
    }

    /// Peerfold's status entry for Syncthing, once connected.
    async fn pf_connection(&self) -> Value {
        self.pf_until("Peerfold connected to Syncthing", |v| v["devices"][0]["connected"] == true).await["devices"]
            [0]
            .clone()
    }
}

/// Waits until a temporary file of a download exists under `root` (a transfer is under way).
async fn downloading(root: &Path) {
    wait_for(LIMIT, "a download in progress", || async {
        let found = std::fs::read_dir(root)
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".syncthing."));
        found.then_some(())
    })
    .await;
}

async fn a_concurrent_edit(scheme: &str) {
    let mut p = Pair::new(scheme, Setup::default());
    write(&p.pf_root(), "doc.txt", b"original");
    p.start().await;
    p.in_sync().await;
    // Apart, both sides edit the same file.
    ok(&p.pf.peerfold(&["device", "pause", &p.st.id]));
    wait_for(LIMIT, "the connection to close", || async {
        (!p.st.connected_to(&p.pf_id).await).then_some(())
    })
    .await;
    let (ours, theirs) = (b"edited on peerfold".as_slice(), b"edited on syncthing, longer".as_slice());
    write(&p.pf_root(), "doc.txt", ours);
    p.pf_until("Peerfold to index its edit", |v| v["folders"][0]["local"]["bytes"] == ours.len()).await;
    write(&p.st_root(), "doc.txt", theirs);
    p.st.scan("f").await;
    ok(&p.pf.peerfold(&["device", "resume", &p.st.id]));
    // Together again: one winner, and the loser kept as the same conflict copy on both sides.
    let tree = p.in_sync().await;
    let copies: Vec<&String> = tree.keys().filter(|k| k.starts_with("doc.sync-conflict-")).collect();
    assert_eq!(copies.len(), 1, "{:?}", tree.keys());
    assert!(copies[0].ends_with(".txt"), "{copies:?}");
    let data = |name: &str| match &tree[name] {
        Entry::File { data, .. } => data.clone(),
        other => panic!("{name} is {other:?}"),
    };
    let mut both = [data("doc.txt"), data(copies[0])];
    both.sort();
    assert_eq!(both, [ours.to_vec(), theirs.to_vec()], "nothing is lost");
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_edit_leaves_one_conflict_copy_on_both_over_quic() {
    a_concurrent_edit("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_edit_leaves_one_conflict_copy_on_both_over_tcp() {
    a_concurrent_edit("tcp").await;
}

async fn send_only_to_receive_only(scheme: &str) {
    // Peerfold send-only, Syncthing receive-only.
    let setup = Setup { pf_folder: Some("send-only"), st_folder: "receiveonly", ..Setup::default() };
    let mut p = Pair::new(scheme, setup);
    mixed_tree(&p.pf_root());
    p.start().await;
    p.in_sync().await;
    // Syncthing's local change stays there, shown as a receive-only change.
    write(&p.st_root(), "docs/readme.txt", b"changed on syncthing");
    p.st.scan("f").await;
    let st = p.st.db_status("f").await;
    assert_eq!(st["receiveOnlyChangedFiles"], 1, "{st}");
    // Peerfold's changes still go out, and Syncthing's change did not come back.
    write(&p.pf_root(), "new.txt", b"new");
    wait_for(LIMIT, "new.txt on Syncthing", || async {
        (std::fs::read(p.st_root().join("new.txt")).ok()? == b"new").then_some(())
    })
    .await;
    assert_eq!(std::fs::read(p.pf_root().join("docs/readme.txt")).unwrap(), b"read me\n");
    p.pf_until("Peerfold needing nothing", |v| v["folders"][0]["need"]["items"] == 0).await;

    // The other way round: Syncthing send-only, Peerfold receive-only.
    let setup = Setup { pf_folder: Some("receive-only"), st_folder: "sendonly", ..Setup::default() };
    let mut p = Pair::new(scheme, setup);
    mixed_tree(&p.st_root());
    p.start().await;
    p.in_sync().await;
    let before = p.pf_status().unwrap()["folders"][0]["local"]["bytes"].as_u64().unwrap();
    write(&p.pf_root(), "docs/readme.txt", b"changed on peerfold");
    let grown = before + b"changed on peerfold".len() as u64 - b"read me\n".len() as u64;
    p.pf_until("Peerfold to index its change", |v| v["folders"][0]["local"]["bytes"] == grown).await;
    write(&p.st_root(), "new.txt", b"new");
    p.st.scan("f").await;
    wait_for(LIMIT, "new.txt on Peerfold", || async {
        (std::fs::read(p.pf_root().join("new.txt")).ok()? == b"new").then_some(())
    })
    .await;
    // Syncthing did not take Peerfold's change and needs nothing.
    assert_eq!(std::fs::read(p.st_root().join("docs/readme.txt")).unwrap(), b"read me\n");
    let st = p.st.db_status("f").await;
    assert_eq!(st["needFiles"], 0, "{st}");
    assert_eq!(std::fs::read(p.pf_root().join("docs/readme.txt")).unwrap(), b"changed on peerfold");
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn send_only_and_receive_only_both_ways_over_quic() {
    send_only_to_receive_only("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_only_and_receive_only_both_ways_over_tcp() {
    send_only_to_receive_only("tcp").await;
}

async fn offers_and_unknown_devices(scheme: &str) {
    // Syncthing offers a folder Peerfold does not have: a pending offer, accepted with the CLI.
    let mut p = Pair::new(scheme, Setup { pf_folder: None, ..Setup::default() });
    mixed_tree(&p.st_root());
    p.start().await;
    let st_id = p.st.id.clone();
    p.pf.json_until(LIMIT, &["folder", "pending", "--json"], "Syncthing's offer on Peerfold", |v| {
        v[0]["folder"] == "f" && v[0]["device"] == st_id.as_str()
    })
    .await;
    ok(&p.pf.peerfold(&["folder", "add", p.pf_root().to_str().unwrap(), "--id", "f", "--share", &st_id]));
    assert_eq!(p.in_sync().await.len(), 13);
    p.no_protocol_errors();

    // Peerfold unknown to Syncthing: listed in Syncthing's pending devices.
    let mut p = Pair::new(scheme, Setup { st_knows_pf: false, ..Setup::default() });
    p.start().await;
    let pf_id = p.pf_id.clone();
    wait_for(LIMIT, "Peerfold pending on Syncthing", || async {
        let v = p.st.get("/rest/cluster/pending/devices").await;
        v.get(pf_id.as_str()).map(|_| ())
    })
    .await;

    // Syncthing unknown to Peerfold: listed in ours.
    let mut p = Pair::new(scheme, Setup { pf_knows_st: false, ..Setup::default() });
    p.start().await;
    let st_id = p.st.id.clone();
    p.pf.json_until(LIMIT, &["device", "pending", "--json"], "Syncthing pending on Peerfold", |v| {
        v[0]["device"] == st_id.as_str()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offers_and_unknown_devices_are_pending_on_both_over_quic() {
    offers_and_unknown_devices("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offers_and_unknown_devices_are_pending_on_both_over_tcp() {
    offers_and_unknown_devices("tcp").await;
}

async fn restarted_mid_transfer(scheme: &str) {
    let mut p = Pair::new(scheme, Setup::default());
    write(&p.st_root(), "big.bin", &pseudo_random(96 << 20, 3));
    p.start().await;
    // Peerfold killed while it downloads from Syncthing.
    downloading(&p.pf_root()).await;
    p.restart_pf();
    p.in_sync().await;
    // Syncthing killed while it downloads from Peerfold.
    write(&p.pf_root(), "big2.bin", &pseudo_random(96 << 20, 4));
    downloading(&p.st_root()).await;
    p.st.kill();
    p.st.start().await;
    let tree = p.in_sync().await;
    assert!(tree.contains_key("big.bin") && tree.contains_key("big2.bin"));
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn either_side_restarted_mid_transfer_over_quic() {
    restarted_mid_transfer("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn either_side_restarted_mid_transfer_over_tcp() {
    restarted_mid_transfer("tcp").await;
}

async fn delta_indexes_after_a_reconnect(scheme: &str) {
    let mut p = Pair::new(scheme, Setup::default());
    // Empty files with names that do not compress well: the traffic is nearly all index.
    for i in 0..1000u64 {
        let name: String = pseudo_random(24, i).iter().map(|b| format!("{b:02x}")).collect();
        write(&p.pf_root(), &format!("d{}/{name}", i % 10), b"");
    }
    write(&p.st_root(), "theirs.txt", b"from syncthing");
    p.start().await;
    p.in_sync().await;
    let first = p.pf_connection().await;
    let full_index = first["bytes_out"].as_u64().unwrap();
    // Apart, each side changes one file; together again, only those changes travel.
    ok(&p.pf.peerfold(&["device", "pause", &p.st.id]));
    wait_for(LIMIT, "the connection to close", || async {
        (!p.st.connected_to(&p.pf_id).await).then_some(())
    })
    .await;
    write(&p.pf_root(), "ours.txt", b"from peerfold");
    p.pf_until("Peerfold to index its change", |v| v["folders"][0]["local"]["bytes"] == 27).await;
    write(&p.st_root(), "theirs.txt", b"from syncthing, changed");
    p.st.scan("f").await;
    ok(&p.pf.peerfold(&["device", "resume", &p.st.id]));
    p.in_sync().await;
    let again = p.pf_connection().await;
    let (sent, received) = (again["bytes_out"].as_u64().unwrap(), again["bytes_in"].as_u64().unwrap());
    // 1,000 names of 48 random hex digits alone are 48 kB (over 24 kB compressed); the first
    // connection's count is not compared, as a crossed dial can replace it mid-way.
    assert!(sent < 20_000, "only our change went out again: {sent} bytes (first connection: {full_index})");
    assert!(received < 20_000, "only Syncthing's change came in again: {received} bytes");
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_indexes_after_a_reconnect_over_quic() {
    delta_indexes_after_a_reconnect("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_indexes_after_a_reconnect_over_tcp() {
    delta_indexes_after_a_reconnect("tcp").await;
}

/// Selective sync against Syncthing: Peerfold deselects a subtree (its CLI, no daemon yet),
/// takes only the rest, is idle with nothing needed, and Syncthing counts it 100 % complete
/// (Peerfold announces what it ignores as ignored, not as missing or deleted); selecting again
/// brings everything; Syncthing's copy is never deleted. Then the lines Peerfold wrote are put
/// in Syncthing's own `.stignore`: Syncthing ignores exactly what Peerfold left out.
async fn selective_sync(scheme: &str) {
    let mut p = Pair::new(scheme, Setup::default());
    let st_root = p.st_root();
    let files = [
        ("Photos/2023/a.jpg", pseudo_random(200_000, 1)),
        ("Photos/2024/b.jpg", pseudo_random(200_000, 2)),
        ("Photos/x.jpg", b"x".to_vec()),
        ("Docs/d.txt", b"doc".to_vec()),
    ];
    for (name, data) in &files {
        write(&st_root, name, data);
    }
    std::fs::create_dir_all(p.pf_root()).unwrap();
    ok(&p.pf.peerfold(&["folder", "deselect", "f", "Photos"]));
    ok(&p.pf.peerfold(&["folder", "select", "f", "Photos/2024"]));
    let lines = std::fs::read_to_string(p.pf_root().join(".stignore")).unwrap();
    assert!(lines.contains("!/Photos/2024\n/Photos/*\n"), "{lines}");
    p.start().await;

    let (pf_root, pf_id) = (p.pf_root(), p.pf_id.clone());
    wait_for(LIMIT, "Peerfold to take what it selected, complete at both ends", || {
        let taken = pf_root.join("Photos/2024/b.jpg").exists() && pf_root.join("Docs/d.txt").exists();
        let pf_done = p.pf_status().is_some_and(|s| {
            let f = &s["folders"][0];
            f["need"]["items"] == 0 && f["state"] == "idle"
        });
        let st = &p.st;
        let url = format!("/rest/db/completion?folder=f&device={pf_id}");
        async move {
            let st_done =
                st.try_get(&url).await.is_some_and(|c| c["completion"] == 100.0 || c["completion"] == 100);
            (taken && pf_done && st_done).then_some(())
        }
    })
    .await;
    assert!(!pf_root.join("Photos/2023").exists() && !pf_root.join("Photos/x.jpg").exists());
    // What Peerfold's browse calls selected, from its own reading of the lines.
    let browsed = ok(&p.pf.peerfold(&["folder", "browse", "f", "Photos", "--json"]));
    let mut selected: BTreeMap<String, bool> = BTreeMap::new();
    for line in browsed.lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        selected.insert(item["path"].as_str().unwrap().to_owned(), item["selected"].as_bool().unwrap());
    }
    let expected: BTreeMap<String, bool> =
        [("Photos/2023", false), ("Photos/2024", true), ("Photos/x.jpg", false)]
            .map(|(p, s)| (p.to_owned(), s))
            .into();
    assert_eq!(selected, expected, "{browsed}");
    for (name, data) in &files {
        assert_eq!(std::fs::read(st_root.join(name)).unwrap(), *data, "Syncthing's {name} is kept");
    }

    ok(&p.pf.peerfold(&["folder", "select", "f", "Photos"]));
    let all = p.in_sync().await;
    assert!(files.iter().all(|(n, _)| all.contains_key(*n)), "{:?}", all.keys());

    // Syncthing reads the lines as Peerfold does.
    std::fs::write(st_root.join(".stignore"), &lines).unwrap();
    p.st.scan("f").await;
    for (path, taken) in expected.iter().map(|(p, s)| (p.as_str(), *s)).chain([
        ("Photos", true),
        ("Photos/2023/a.jpg", false),
        ("Photos/2024/b.jpg", true),
        ("Docs", true),
        ("Docs/d.txt", true),
    ]) {
        let f = p.st.get(&format!("/rest/db/file?folder=f&file={path}")).await;
        let local = &f["local"];
        let ignored =
            local["ignored"].as_bool().unwrap_or_else(|| local["localFlags"].as_u64().unwrap_or(0) & 2 != 0);
        assert_eq!(ignored, !taken, "Syncthing on {path}: {f}");
    }
    p.no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread")]
async fn selective_sync_against_syncthing_over_quic() {
    selective_sync("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn selective_sync_against_syncthing_over_tcp() {
    selective_sync("tcp").await;
}

//! Devices keeping a folder in sync: engines with real identities, real SQLite indexes and real
//! QUIC or TCP+TLS connections on loopback (random ports, temporary homes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peerfold::config::{Config, DeviceConfig, FolderConfig, FolderType};
use peerfold::db::Index;
use peerfold::engine::{Engine, FolderState};
use peerfold::identity::{DeviceId, Identity};
use peerfold::net::{Address, Net, TlsIdentity};

use crate::util::{TestDir, pseudo_random, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// A device before it starts: identity, bound listener, folder.
pub(crate) struct Node {
    pub(crate) t: TestDir,
    pub(crate) id: DeviceId,
    net: Option<Net>,
    addr: Address,
    pub(crate) config: Config,
}

impl Node {
    async fn new(name: &str, transport: &str) -> Self {
        let (t, identity, net, addr) = crate::util::bound_device(transport).await;
        std::fs::create_dir_all(t.path("f")).unwrap();
        let mut config = Config { name: name.into(), ..Config::default() };
        config.options.watch_delay_ms = 50;
        config.folders.push(FolderConfig::new("f".parse().unwrap(), t.path("f").canonicalize().unwrap()));
        Self { id: identity.device_id(), t, net: Some(net), addr, config }
    }

    pub(crate) fn folder(&self) -> PathBuf {
        self.t.path("f")
    }

    /// Configures `other` as a device with its address, sharing the folder with it.
    fn knows(&mut self, other: &Node) {
        self.config.devices.push(DeviceConfig {
            id: other.id,
            name: other.config.name.clone(),
            addresses: vec![other.addr.to_string()],
            paused: false,
            auto_accept_folders: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            max_send_kibps: 0,
            max_recv_kibps: 0,
        });
        self.config.folders[0].devices.push(other.id);
    }

    pub(crate) async fn start(&mut self) -> Engine {
        let index = Index::open(&self.t.path("index.db")).await.unwrap();
        Engine::start_networked(&self.config, index, self.id, self.net.take().unwrap())
    }

    /// [`Node::start`], learning of metered networks and battery from `power`.
    #[cfg(target_os = "linux")] // its tests' fake services need D-Bus
    pub(crate) async fn start_with_power(
        &mut self,
        power: std::sync::Arc<dyn peerfold::power::PowerNetworkSource>,
    ) -> Engine {
        let index = Index::open(&self.t.path("index.db")).await.unwrap();
        Engine::start_networked_with_power(&self.config, index, self.id, self.net.take().unwrap(), power)
    }
}

/// Two nodes that know each other.
pub(crate) async fn pair(transport: &str) -> (Node, Node) {
    let (mut a, mut b) = (Node::new("a", transport).await, Node::new("b", transport).await);
    a.knows(&b);
    b.knows(&a);
    (a, b)
}

/// Everything in a folder except the sync machinery: name → (kind, content or target).
fn tree(root: &Path) -> BTreeMap<String, (char, Vec<u8>)> {
    try_tree(root).unwrap()
}

/// [`tree`], failing when an entry vanishes while it is read (the puller renames temporary
/// files into place and moves old ones away while a test polls).
fn try_tree(root: &Path) -> std::io::Result<BTreeMap<String, (char, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".stfolder") || rel.starts_with(".stversions") {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_symlink() {
                let target = std::fs::read_link(e.path())?;
                out.insert(rel, ('l', target.to_string_lossy().as_bytes().to_vec()));
            } else if ft.is_dir() {
                out.insert(rel, ('d', Vec::new()));
                stack.push(e.path());
            } else {
                out.insert(rel, ('f', std::fs::read(e.path())?));
            }
        }
    }
    Ok(out)
}

async fn same_trees(a: &Path, b: &Path) {
    let (a, b) = (a.to_path_buf(), b.to_path_buf());
    wait_for(LIMIT, "identical trees", || {
        let (a, b) = (a.clone(), b.clone());
        async move {
            // A snapshot taken while the puller moved something is retaken.
            let (ta, tb) = (try_tree(&a).ok()?, try_tree(&b).ok()?);
            (ta == tb && !ta.is_empty()).then_some(())
        }
    })
    .await;
}

/// Writes a file the way editors save: a new file renamed over the old one, so the scanner
/// never sees it half-written (the byte counts below would then include the half).
fn save(node: &Node, rel: &str, data: &[u8]) {
    let staging = node.t.path("staging");
    std::fs::write(&staging, data).unwrap();
    std::fs::rename(staging, node.folder().join(rel)).unwrap();
}

async fn initial_sync_of_a_tree(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    let f = a.folder();
    std::fs::create_dir_all(f.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(f.join("empty-dir")).unwrap();
    std::fs::write(f.join("docs/readme.txt"), b"hello").unwrap();
    std::fs::write(f.join("docs/deep/er/empty.bin"), b"").unwrap();
    std::fs::write(f.join("big.bin"), pseudo_random(1_000_000, 7)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", f.join("link")).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    // Metadata came along: the pulled file has the sender's modification time.
    let ma = std::fs::metadata(a.folder().join("big.bin")).unwrap().modified().unwrap();
    let mb = std::fs::metadata(b.folder().join("big.bin")).unwrap().modified().unwrap();
    assert_eq!(ma, mb);
    // No temporary files are left behind.
    assert!(!tree(&b.folder()).keys().any(|k| k.contains(".syncthing.")));
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_sync_over_quic() {
    initial_sync_of_a_tree("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_sync_over_tcp() {
    initial_sync_of_a_tree("tcp").await;
}

/// A folder that ignores permissions (Windows' default) applies none of a peer's bits, and
/// sends none: its edit leaves the executable bit the file has on the other device.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_that_ignores_permissions_neither_applies_nor_sends_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (mut a, mut b) = pair("tcp").await;
    b.config.folders[0].ignore_permissions = Some(true);
    let (run_a, run_b) = (a.folder().join("run.sh"), b.folder().join("run.sh"));
    std::fs::write(&run_a, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&run_a, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    assert_eq!(mode(&run_b) & 0o111, 0, "b applied a's executable bits: {:o}", mode(&run_b));

    save(&b, "run.sh", b"#!/bin/sh\necho edited on b\n");
    same_trees(&a.folder(), &b.folder()).await;
    assert_eq!(mode(&run_a), 0o755, "a lost its bits to an edit from a device that ignores them");
    ea.shutdown().await;
    eb.shutdown().await;
}

async fn changes_move_only_what_changed(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    let big = pseudo_random(50 << 20, 1);
    std::fs::write(a.folder().join("big.bin"), &big).unwrap();
    std::fs::write(a.folder().join("other.txt"), b"other").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;

    // A change in the middle of the 50 MB file: one 128 KiB block differs.
    let before = eb.traffic().0;
    let mut changed = big.clone();
    changed[25 << 20..(25 << 20) + 1000].fill(0xAB);
    save(&a, "big.bin", &changed);
    same_trees(&a.folder(), &b.folder()).await;
    let moved = eb.traffic().0 - before;
    assert!(moved < 1 << 20, "a one-block change moved {moved} bytes");

    // An append.
    let before = eb.traffic().0;
    let mut appended = changed.clone();
    appended.extend_from_slice(&pseudo_random(300_000, 3));
    save(&a, "big.bin", &appended);
    same_trees(&a.folder(), &b.folder()).await;
    let moved = eb.traffic().0 - before;
    assert!(moved < 2 << 20, "a 300 kB append moved {moved} bytes");

    // A rename moves no data: the blocks are copied from the old name.
    let before = eb.traffic().0;
    std::fs::create_dir_all(a.folder().join("moved")).unwrap();
    std::fs::rename(a.folder().join("big.bin"), a.folder().join("moved/big renamed.bin")).unwrap();
    same_trees(&a.folder(), &b.folder()).await;
    let moved = eb.traffic().0 - before;
    assert!(moved < 1 << 20, "a rename of a 50 MB file moved {moved} bytes");

    // A delete; the deleted file is kept in the trash can.
    std::fs::remove_file(a.folder().join("other.txt")).unwrap();
    same_trees(&a.folder(), &b.folder()).await;
    let versions = tree(&b.folder().join(".stversions"));
    assert!(versions.keys().any(|k| k.starts_with("other~")), "{:?}", versions.keys());
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_move_only_changed_blocks_over_quic() {
    changes_move_only_what_changed("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_move_only_changed_blocks_over_tcp() {
    changes_move_only_what_changed("tcp").await;
}

async fn concurrent_edit(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    std::fs::write(a.folder().join("notes.txt"), b"original").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    // Both edit while apart: shut both down, edit, start again.
    ea.shutdown().await;
    eb.shutdown().await;
    std::fs::write(a.folder().join("notes.txt"), b"edit on a").unwrap();
    std::fs::write(b.folder().join("notes.txt"), b"edit on b, later").unwrap();
    // b's edit is newer, so it wins; a's becomes the conflict copy.
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(b.folder().join("notes.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    for n in [&mut a, &mut b] {
        let identity = Identity::load(&n.t.home()).unwrap();
        let net =
            Net::bind(TlsIdentity::new(&identity).unwrap(), std::slice::from_ref(&n.addr)).await.unwrap();
        n.net = Some(net);
    }
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let t = tree(&a.folder());
    assert_eq!(t["notes.txt"].1, b"edit on b, later");
    let copies: Vec<_> = t.iter().filter(|(k, _)| k.contains(".sync-conflict-")).collect();
    assert_eq!(copies.len(), 1, "{:?}", t.keys());
    assert_eq!(copies[0].1.1, b"edit on a");
    assert!(copies[0].0.starts_with("notes.sync-conflict-") && copies[0].0.ends_with(".txt"));
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_edit_leaves_the_same_conflict_copy_on_both_sides_over_quic() {
    concurrent_edit("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_edit_leaves_the_same_conflict_copy_on_both_sides_over_tcp() {
    concurrent_edit("tcp").await;
}

async fn unknown_device(transport: &str) {
    let (mut a, mut b) = (Node::new("a", transport).await, Node::new("stranger", transport).await);
    // b knows a, a does not know b.
    b.knows(&a);
    std::fs::write(b.folder().join("secret.txt"), b"from b").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    let index = ea.index().clone();
    let pending = wait_for(LIMIT, "a pending device", || {
        let index = index.clone();
        async move { index.pending_devices().await.unwrap().into_iter().next() }
    })
    .await;
    assert_eq!(pending.device, b.id);
    assert_eq!(pending.name, "stranger");
    assert!(pending.address.starts_with(&format!("{transport}://127.0.0.1:")), "{}", pending.address);
    assert!(ea.connections().is_empty());
    assert!(!a.folder().join("secret.txt").exists());
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_device_is_refused_and_pending_over_quic() {
    unknown_device("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_device_is_refused_and_pending_over_tcp() {
    unknown_device("tcp").await;
}

async fn send_only_and_receive_only(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    a.config.folders[0].folder_type = FolderType::SendOnly;
    b.config.folders[0].folder_type = FolderType::ReceiveOnly;
    std::fs::write(a.folder().join("from-a.txt"), b"a").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    // A change on the receive-only side stays there: it is not sent.
    std::fs::write(b.folder().join("local-only.txt"), b"b").unwrap();
    // A change on the send-only side still goes out.
    std::fs::write(a.folder().join("second.txt"), b"2").unwrap();
    let bf = b.folder();
    wait_for(LIMIT, "second.txt on b", || {
        let bf = bf.clone();
        async move { bf.join("second.txt").exists().then_some(()) }
    })
    .await;
    // a hears of b's local change, announced as Syncthing announces receive-only changes
    // (invalid, no version), and so does not pull it.
    let (index, b_id) = (ea.index().clone(), b.id);
    let announced = wait_for(LIMIT, "a to hear of b's local change", || {
        let index = index.clone();
        async move {
            let f = index.register_folder("f").await.unwrap();
            let d = index.device(&b_id).await.unwrap();
            index.remote_file(f, d, "local-only.txt").await.unwrap()
        }
    })
    .await;
    assert!(announced.invalid && announced.version.is_empty(), "{announced:?}");
    let f = index.register_folder("f").await.unwrap();
    assert!(index.needed_page(f, peerfold::db::NeedKind::Changes, None, 10).await.unwrap().is_empty());
    assert!(!a.folder().join("local-only.txt").exists());
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_only_and_receive_only_folders_over_quic() {
    send_only_and_receive_only("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_only_and_receive_only_folders_over_tcp() {
    send_only_and_receive_only("tcp").await;
}

async fn fetched_from_both(transport: &str) {
    let mut a = Node::new("a", transport).await;
    let mut b = Node::new("b", transport).await;
    let mut c = Node::new("c", transport).await;
    a.knows(&b);
    a.knows(&c);
    b.knows(&a);
    b.knows(&c);
    c.knows(&a);
    c.knows(&b);
    let data = pseudo_random(48 << 20, 9);
    std::fs::write(a.folder().join("shared.bin"), &data).unwrap();
    std::fs::write(b.folder().join("shared.bin"), &data).unwrap();
    let mtime = std::fs::metadata(a.folder().join("shared.bin")).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(b.folder().join("shared.bin"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    // Wait for a and b to agree on one version of the file (they indexed the same data
    // independently: concurrent versions, resolved without a conflict copy) before c appears.
    for (e, other) in [(&ea, b.id), (&eb, a.id)] {
        let index = e.index().clone();
        wait_for(LIMIT, "a and b to agree", || {
            let index = index.clone();
            async move {
                let f = index.register_folder("f").await.unwrap();
                let d = index.device(&other).await.unwrap();
                let g = index.global_file(f, "shared.bin").await.unwrap()?;
                let local = index.local_file(f, "shared.bin").await.unwrap()?;
                let peer_has = index.remote_file(f, d, "shared.bin").await.unwrap()?;
                (g.file.version == local.version && peer_has.version == local.version).then_some(())
            }
        })
        .await;
    }
    assert_eq!(tree(&a.folder()).len(), 1, "no conflict copy for identical content");
    // c's folder starts paused and is resumed once c is connected to both: otherwise the
    // first index to arrive could have c fetch the whole file before the other connection is
    // up (two devices dialling each other also replace one of the two connections first).
    // Resumed, c asks both for their index at once, and takes in a holder that answers while
    // the file downloads.
    c.config.folders[0].paused = true;
    let ec = c.start().await;
    for (e, other) in [(&ec, a.id), (&ec, b.id), (&ea, c.id), (&eb, c.id)] {
        wait_for(LIMIT, "c to be connected to a and b", || {
            let connected = e.connections().iter().any(|i| i.device == other);
            async move { connected.then_some(()) }
        })
        .await;
    }
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    ec.edit_config(peerfold::config::Edit::PauseFolder { id: folder, paused: false }).await.unwrap();
    same_trees(&a.folder(), &c.folder()).await;
    let (from_a, from_b) = (ea.traffic().1, eb.traffic().1);
    // Both sources serve a real share. Not an even one: the puller asks whoever it measured
    // answering faster (engine `sources`), and on a loaded machine one of two loopback peers
    // can measure several times slower for a while (CI saw 44 MB from a and 6 MB from b). That
    // equal peers share equally is `sources::tests::equal_peers_share_equally`, on a fake clock.
    assert!(from_a > 2 << 20 && from_b > 2 << 20, "c fetched {from_a} bytes from a and {from_b} from b");
    ea.shutdown().await;
    eb.shutdown().await;
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_three_devices_a_file_two_have_is_fetched_from_both_over_quic() {
    fetched_from_both("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_three_devices_a_file_two_have_is_fetched_from_both_over_tcp() {
    fetched_from_both("tcp").await;
}

async fn not_shared_device(transport: &str) {
    use peerfold::bep::session::{Event, Session, SessionConfig};
    use peerfold::bep::wire;
    use sha2::Digest as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut a = Node::new("a", transport).await;
    let b = Node::new("b", transport).await;
    let mut c = Node::new("c", transport).await;
    // The folder is shared with b only; c is a known device all the same.
    a.knows(&b);
    a.config.devices.push(DeviceConfig {
        id: c.id,
        name: "c".into(),
        addresses: Vec::new(),
        paused: false,
        auto_accept_folders: false,
        introducer: false,
        skip_introduction_removals: false,
        introduced_by: None,
        max_send_kibps: 0,
        max_recv_kibps: 0,
    });
    std::fs::write(a.folder().join("secret.txt"), b"secret").unwrap();
    let ea = a.start().await;
    let index = ea.index().clone();
    wait_for(LIMIT, "a to index its file", || {
        let index = index.clone();
        async move {
            let f = index.register_folder("f").await.unwrap();
            index.local_file(f, "secret.txt").await.unwrap().map(|_| ())
        }
    })
    .await;

    // c speaks BEP by hand: it claims the folder and forges a request for the file.
    let net = c.net.take().unwrap();
    let mut conn = net.dial(&a.addr, a.id).await.unwrap();
    let now = std::time::Instant::now();
    let hello = wire::Hello { device_name: "c".into(), client_name: "forger".into(), ..Default::default() };
    let mut s = Session::new(SessionConfig::new(hello), now);
    let device = |id: DeviceId| wire::Device { id: id.as_bytes().to_vec(), ..Default::default() };
    let folder =
        wire::Folder { id: "f".into(), devices: vec![device(c.id), device(a.id)], ..Default::default() };
    s.send_cluster_config(wire::ClusterConfig { folders: vec![folder], ..Default::default() }, now).unwrap();
    let hash = sha2::Sha256::digest(b"secret").to_vec();
    let req =
        wire::Request { folder: "f".into(), name: "secret.txt".into(), size: 6, hash, ..Default::default() };
    let id = s.request(req, now).unwrap();
    conn.stream.write_all(&s.take_transmit()).await.unwrap();

    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let answer = tokio::time::timeout(LIMIT, async {
        loop {
            while let Some(e) = s.poll_event() {
                if let Event::Response { id: got, result } = &e
                    && *got == id
                {
                    return result.clone().map(|d| d.to_vec());
                }
                seen.push(e);
            }
            let n = conn.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "a closed the connection; events so far: {seen:?}");
            s.receive(&buf[..n], std::time::Instant::now());
        }
    })
    .await
    .expect("an answer to the forged request");
    assert_eq!(answer, Err(wire::ErrorCode::Generic), "no data for a folder not shared with c");
    let cc = seen.iter().find_map(|e| if let Event::ClusterConfig(cc) = e { Some(cc) } else { None });
    assert!(cc.is_some_and(|cc| cc.folders.is_empty()), "a announced no folder to c: {seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, Event::Index { .. })), "no index for c: {seen:?}");
    ea.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_the_folder_is_not_shared_with_gets_neither_index_nor_data_over_quic() {
    not_shared_device("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_the_folder_is_not_shared_with_gets_neither_index_nor_data_over_tcp() {
    not_shared_device("tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_delete_is_held_until_the_user_confirms_it() {
    let (mut a, mut b) = pair("tcp").await;
    // a scans only when asked, so the test decides when the deletion is seen.
    a.config.folders[0].watch = Some(false);
    a.config.folders[0].rescan_interval_s = Some(0);
    for i in 0..12 {
        std::fs::write(a.folder().join(format!("file{i:02}.txt")), format!("file {i}")).unwrap();
    }
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let folder: peerfold::config::FolderId = "f".parse().unwrap();

    for i in 0..10 {
        std::fs::remove_file(a.folder().join(format!("file{i:02}.txt"))).unwrap();
    }
    let s = ea.scan(&folder, Vec::new()).await.unwrap();
    let held = s.held_deletes.expect("a mass delete");
    assert_eq!((held.deleted, held.total, s.changed), (10, 12, 0));
    let waiting = FolderState::WaitingForConfirmation { deleted: 10, total: 12 };
    assert_eq!(ea.folder_states()[0].1, waiting);
    let status = peerfold::status::status(a.id, &a.config, ea.index(), Some(&ea)).await.unwrap();
    assert_eq!(status.folders[0].state, "waiting-for-confirmation");
    assert_eq!(status.folders[0].held_deletes, Some(held));
    // Nothing was recorded, so there is nothing b could hear of: its files stay.
    let index = ea.index();
    let f = index.register_folder("f").await.unwrap();
    assert!(!index.local_file(f, "file00.txt").await.unwrap().unwrap().deleted);
    assert_eq!(tree(&b.folder()).len(), 12);

    let s = ea.confirm_deletes(&folder).await.unwrap();
    assert_eq!((s.deleted, s.held_deletes), (10, None));
    // Idle, or already pulling what waited.
    assert!(!matches!(ea.folder_states()[0].1, FolderState::WaitingForConfirmation { .. }));
    same_trees(&a.folder(), &b.folder()).await;
    assert_eq!(tree(&b.folder()).len(), 2);
    let trash = tree(&b.folder().join(".stversions"));
    assert_eq!(trash.len(), 10, "b's copies are in its trash can: {:?}", trash.keys());
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reverting_a_receive_only_folder_brings_back_the_global_state() {
    let (mut a, mut b) = pair("tcp").await;
    b.config.folders[0].folder_type = FolderType::ReceiveOnly;
    // b scans only when asked, so its local changes are seen when the test says.
    b.config.folders[0].watch = Some(false);
    b.config.folders[0].rescan_interval_s = Some(0);
    std::fs::create_dir_all(a.folder().join("dir")).unwrap();
    for name in ["keep.txt", "modified.txt", "deleted.txt", "dir/inner.txt"] {
        std::fs::write(a.folder().join(name), format!("{name} from a")).unwrap();
    }
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    // The pull is recorded too (a change made before that could be taken for the pulled file).
    let index = eb.index().clone();
    wait_for(LIMIT, "b to record what it pulled", || {
        let index = index.clone();
        async move {
            let f = index.register_folder("f").await.unwrap();
            (index.need_counts(f).await.unwrap().items == 0).then_some(())
        }
    })
    .await;

    // Local changes on b: one file modified, one deleted, a file and a directory added.
    save(&b, "modified.txt", b"modified on b, longer than before");
    std::fs::remove_file(b.folder().join("deleted.txt")).unwrap();
    std::fs::write(b.folder().join("added.txt"), b"added on b").unwrap();
    std::fs::create_dir(b.folder().join("added-dir")).unwrap();
    std::fs::write(b.folder().join("added-dir/x.txt"), b"added in a new directory on b").unwrap();
    let s = eb.scan(&folder, Vec::new()).await.unwrap();
    assert_eq!(s.changed, 5);
    let status = peerfold::status::status(b.id, &b.config, eb.index(), Some(&eb)).await.unwrap();
    assert_eq!(status.folders[0].receive_only_changes, Some(5));

    let r = eb.revert(&folder).await.unwrap();
    assert_eq!((r.reverted, r.deleted), (2, 3), "{r:?}");
    assert!(r.issues.is_empty(), "{r:?}");
    same_trees(&a.folder(), &b.folder()).await;
    // b's own versions went to its trash can: the modified copy and the additions.
    let trash: Vec<Vec<u8>> = tree(&b.folder().join(".stversions"))
        .into_values()
        .filter(|(kind, _)| *kind == 'f')
        .map(|(_, data)| data)
        .collect();
    for data in [&b"modified on b, longer than before"[..], b"added on b", b"added in a new directory on b"] {
        assert!(trash.iter().any(|t| t == data), "{:?} not in the trash can", String::from_utf8_lossy(data));
    }
    let (index, b_id, b_config) = (eb.index().clone(), b.id, b.config.clone());
    wait_for(LIMIT, "no local changes left on b", || {
        let (index, b_config) = (index.clone(), b_config.clone());
        async move {
            let status = peerfold::status::status(b_id, &b_config, &index, None).await.unwrap();
            (status.folders[0].receive_only_changes == Some(0)).then_some(())
        }
    })
    .await;
    // A send-receive folder has nothing to revert.
    assert!(matches!(ea.revert(&folder).await, Err(peerfold::engine::EngineError::NotReceiveOnly(_))));
    ea.shutdown().await;
    eb.shutdown().await;
}

/// A device speaking BEP by hand over a real connection: it answers requests for blocks below
/// `serve_below` and holds the others until released, and keeps what else it hears.
struct Forger {
    s: peerfold::bep::session::Session,
    stream: peerfold::net::BoxStream,
    buf: Vec<u8>,
    data: Vec<u8>,
    serve_below: usize,
    /// Requests for other blocks are refused (NoSuchFile) rather than held.
    refuse: bool,
    held: Vec<peerfold::bep::wire::Request>,
    progress: Vec<peerfold::bep::wire::DownloadProgress>,
    responses: BTreeMap<i32, Result<Vec<u8>, peerfold::bep::wire::ErrorCode>>,
}

const BLOCK: usize = 128 << 10;

/// A 40-block file as device `by` announces it: its content and index entry.
fn big_file(by: DeviceId) -> (Vec<u8>, peerfold::bep::FileInfo) {
    use peerfold::bep::{BlockInfo, FileInfo, FileType, Vector};
    use sha2::Digest as _;
    let data = pseudo_random(40 * BLOCK, 11);
    let blocks: Vec<BlockInfo> = data
        .chunks(BLOCK)
        .enumerate()
        .map(|(i, d)| BlockInfo {
            offset: (i * BLOCK) as u64,
            size: d.len() as u32,
            hash: sha2::Sha256::digest(d).into(),
        })
        .collect();
    let file = FileInfo {
        name: "big.bin".into(),
        file_type: FileType::File,
        size: data.len() as u64,
        permissions: 0o644,
        no_permissions: false,
        modified_s: 1_795_268_583,
        modified_ns: 0,
        modified_by: by.short(),
        deleted: false,
        invalid: false,
        version: Vector::new().updated(by.short(), 1_795_268_583),
        sequence: 1,
        block_size: BLOCK as u32,
        blocks,
        symlink_target: String::new(),
    };
    (data, file)
}

impl Forger {
    /// Dials `to` as the device of `net`, announces the folder shared by both, and serves
    /// `data` (the content of [`big_file`]) for blocks below `serve_below`.
    async fn connect(net: &Net, me: DeviceId, to: &Node, data: &[u8], serve_below: usize) -> Self {
        use peerfold::bep::session::{Session, SessionConfig};
        use peerfold::bep::wire;
        let conn = net.dial(&to.addr, to.id).await.unwrap();
        let now = std::time::Instant::now();
        let hello =
            wire::Hello { device_name: "c".into(), client_name: "forger".into(), ..Default::default() };
        let mut s = Session::new(SessionConfig::new(hello), now);
        let device = |id: DeviceId| wire::Device { id: id.as_bytes().to_vec(), ..Default::default() };
        let folder =
            wire::Folder { id: "f".into(), devices: vec![device(me), device(to.id)], ..Default::default() };
        s.send_cluster_config(wire::ClusterConfig { folders: vec![folder], ..Default::default() }, now)
            .unwrap();
        Self {
            s,
            stream: conn.stream,
            buf: vec![0u8; 1 << 20],
            data: data.to_vec(),
            serve_below,
            refuse: false,
            held: Vec::new(),
            progress: Vec::new(),
            responses: BTreeMap::new(),
        }
    }

    /// Announces `file` as the forger's whole index.
    fn announce(&mut self, file: &peerfold::bep::FileInfo) {
        self.s.send_index("f", std::slice::from_ref(file), true, std::time::Instant::now()).unwrap();
    }

    /// Reads what arrives within a moment (a bounded read, so callers can poll other things
    /// between steps) and handles it.
    async fn step(&mut self) {
        use peerfold::bep::session::Event;
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        self.flush().await;
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(50), self.stream.read(&mut self.buf)).await
        {
            let n = read.unwrap();
            assert!(n > 0, "the connection closed");
            self.s.receive(&self.buf[..n], std::time::Instant::now());
        }
        while let Some(e) = self.s.poll_event() {
            match e {
                Event::Request(r) if (r.block_no as usize) < self.serve_below => self.answer(&r),
                Event::Request(r) if self.refuse => {
                    let refused = Err(peerfold::bep::wire::ErrorCode::NoSuchFile);
                    self.s.respond(r.id, refused, std::time::Instant::now()).unwrap();
                }
                Event::Request(r) => self.held.push(r),
                Event::DownloadProgress(p) => self.progress.push(p),
                Event::Response { id, result } => {
                    self.responses.insert(id, result.map(|d| d.to_vec()));
                }
                Event::Closed { reason, .. } => panic!("closed: {reason}"),
                _ => {}
            }
        }
        self.flush().await;
        let _ = self.stream.flush().await;
    }

    fn answer(&mut self, r: &peerfold::bep::wire::Request) {
        let (offset, size) = (r.offset as usize, r.size as usize);
        let data = self.data[offset..offset + size].to_vec();
        self.s.respond(r.id, Ok(data), std::time::Instant::now()).unwrap();
    }

    fn release(&mut self) {
        self.serve_below = usize::MAX;
        for r in std::mem::take(&mut self.held) {
            self.answer(&r);
        }
    }

    async fn flush(&mut self) {
        use tokio::io::AsyncWriteExt as _;
        let bytes = self.s.take_transmit();
        if !bytes.is_empty() {
            self.stream.write_all(&bytes).await.unwrap();
        }
    }

    /// Steps until `done` says so, for at most [`LIMIT`].
    async fn until<T>(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(v) = done(self) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            self.step().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_in_progress_is_announced_and_its_blocks_are_served_from_the_temporary_file() {
    use peerfold::bep::wire;

    let (mut a, mut b) = pair("tcp").await;
    let mut c = Node::new("c", "tcp").await;
    // b shares the folder with a (an engine) and c (a forger that has a 40-block file).
    b.config.devices.push(DeviceConfig {
        id: c.id,
        name: "c".into(),
        addresses: Vec::new(),
        paused: false,
        auto_accept_folders: false,
        introducer: false,
        skip_introduction_removals: false,
        introduced_by: None,
        max_send_kibps: 0,
        max_recv_kibps: 0,
    });
    b.config.folders[0].devices.push(c.id);
    let (ea, eb) = (a.start().await, b.start().await);

    let (data, file) = big_file(c.id);
    let (blocks, version) = (file.blocks.clone(), file.version.clone());
    let net = c.net.take().unwrap();
    let mut c = Forger::connect(&net, c.id, &b, &data, 20).await;
    c.announce(&file);

    // b fetches the first twenty blocks, waits for the rest, and tells a what it has.
    let announced = c
        .until("a to hear of b's progress", |_| {
            ea.peer_downloads().into_iter().find(|d| d.device == b.id && d.blocks.len() >= 20)
        })
        .await;
    assert_eq!((announced.folder.as_str(), announced.name.as_str()), ("f", "big.bin"));
    assert_eq!((announced.version, announced.block_size), (version.clone(), BLOCK as u32));
    assert_eq!(announced.blocks, (0..20).collect::<Vec<u32>>());
    // c, sharing the folder too, heard the same, as APPENDs.
    c.until("c to hear of b's progress", |c| {
        let appended: usize = c
            .progress
            .iter()
            .flat_map(|p| &p.updates)
            .filter(|u| {
                u.name == "big.bin" && u.update_type == wire::FileDownloadProgressUpdateType::Append as i32
            })
            .map(|u| u.block_indexes.len())
            .sum();
        (appended >= 20).then_some(())
    })
    .await;

    // b serves a block it has only in its temporary file to a request that asks for it there,
    // and nothing for a block its temporary file does not hold yet.
    let ask = |c: &mut Forger, i: usize| {
        let req = wire::Request {
            folder: "f".into(),
            name: "big.bin".into(),
            offset: (i * BLOCK) as i64,
            size: BLOCK as i32,
            hash: blocks[i].hash.to_vec(),
            from_temporary: true,
            block_no: i as i32,
            ..Default::default()
        };
        c.s.request(req, std::time::Instant::now()).unwrap()
    };
    let (have, lack) = (ask(&mut c, 5), ask(&mut c, 30));
    let answers = c
        .until("b's answers", |c| {
            let both = c.responses.contains_key(&have) && c.responses.contains_key(&lack);
            both.then(|| (c.responses[&have].clone(), c.responses[&lack].clone()))
        })
        .await;
    assert_eq!(answers.0, Ok(data[5 * BLOCK..6 * BLOCK].to_vec()), "served from the temporary file");
    assert_eq!(answers.1, Err(wire::ErrorCode::NoSuchFile));

    // Once b has the whole file, the download is forgotten.
    c.release();
    let bf = b.folder();
    c.until("b to finish and a to forget its progress", |_| {
        let done = std::fs::read(bf.join("big.bin")).is_ok_and(|d| d == data);
        (done && !ea.peer_downloads().iter().any(|d| d.device == b.id && d.name == "big.bin")).then_some(())
    })
    .await;
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_puller_fetches_from_the_temporary_file_of_a_device_still_downloading() {
    let (mut a, mut b) = pair("tcp").await;
    let mut c = Node::new("c", "tcp").await;
    // c, a forger, has a 40-block file and shares the folder with both.
    for n in [&mut a, &mut b] {
        n.config.devices.push(DeviceConfig {
            id: c.id,
            name: "c".into(),
            addresses: Vec::new(),
            paused: false,
            auto_accept_folders: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            max_send_kibps: 0,
            max_recv_kibps: 0,
        });
        n.config.folders[0].devices.push(c.id);
    }
    let (ea, eb) = (a.start().await, b.start().await);
    let (data, file) = big_file(c.id);
    let net = c.net.take().unwrap();
    // b gets twenty blocks from c and waits for the rest.
    let mut to_b = Forger::connect(&net, c.id, &b, &data, 20).await;
    to_b.announce(&file);
    // a hears of the file only once it knows what b has, and c refuses a every block.
    let mut to_a = Forger::connect(&net, c.id, &a, &data, 0).await;
    to_a.refuse = true;
    to_b.until("a to hear of b's progress", |_| {
        ea.peer_downloads().into_iter().find(|d| d.device == b.id && d.blocks.len() >= 20).map(|_| ())
    })
    .await;
    to_a.announce(&file);

    // a asks b, which is no full holder, for what is in b's temporary file.
    let tmp = a.folder().join(".syncthing.big.bin.tmp");
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let fetched =
            std::fs::read(&tmp).is_ok_and(|t| t.len() == data.len() && t[..16 * BLOCK] == data[..16 * BLOCK]);
        if fetched {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for a's blocks from b");
        to_a.step().await;
        to_b.step().await;
    }
    assert!(!to_b.held.is_empty(), "b still lacks the rest: a's blocks came from its temporary file");
    ea.shutdown().await;
    eb.shutdown().await;
}

/// Caught by `changes_move_only_changed_blocks_*` under load: a rename whose delete reached the
/// other device in an earlier index update than its add downloaded the whole file again.
#[tokio::test(flavor = "multi_thread")]
async fn a_rename_that_arrives_as_delete_then_add_moves_no_data() {
    let (mut a, mut b) = pair("tcp").await;
    let data = pseudo_random(8 << 20, 7);
    std::fs::write(a.folder().join("old name.bin"), &data).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    // The delete first, on its own: b moves its copy to the trash can.
    std::fs::remove_file(a.folder().join("old name.bin")).unwrap();
    let gone = b.folder().join("old name.bin");
    wait_for(LIMIT, "the delete on b", || {
        let gone = gone.clone();
        async move { (!gone.exists()).then_some(()) }
    })
    .await;
    // Then the same content under a new name: b copies it out of its trash can.
    let before = eb.traffic().0;
    save(&a, "new name.bin", &data);
    same_trees(&a.folder(), &b.folder()).await;
    let moved = eb.traffic().0 - before;
    assert!(moved < 1 << 20, "the renamed 8 MB file moved {moved} bytes");
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_shows_its_rate_and_eta_and_a_file_that_fails_is_listed_until_it_arrives() {
    use peerfold::bep::wire::ErrorCode;
    let mut b = Node::new("b", "tcp").await;
    let mut c = Node::new("c", "tcp").await;
    b.config.devices.push(DeviceConfig {
        id: c.id,
        name: "c".into(),
        addresses: Vec::new(),
        paused: false,
        auto_accept_folders: false,
        introducer: false,
        skip_introduction_removals: false,
        introduced_by: None,
        max_send_kibps: 0,
        max_recv_kibps: 0,
    });
    b.config.folders[0].devices.push(c.id);
    let eb = b.start().await;
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    let (data, file) = big_file(c.id);
    let c_id = c.id;
    let net = c.net.take().unwrap();
    let mut c = Forger::connect(&net, c_id, &b, &data, 20).await;
    c.announce(&file);

    // Twenty blocks arrive and the rest wait: the folder pulls at a rate, with an ETA.
    c.until("a pull rate at b", |_| {
        (eb.rates().folder(&folder) > 0 && eb.rates().connection(&c_id).0 > 0).then_some(())
    })
    .await;
    let status = peerfold::status::status(b.id, &eb.config(), eb.index(), Some(&eb)).await.unwrap();
    let f = &status.folders[0];
    assert!(f.rate_bps > 0 && f.need.bytes == data.len() as u64, "{f:?}");
    assert_eq!(f.eta_s, Some(f.need.bytes.div_ceil(f.rate_bps)), "{f:?}");
    assert!(status.devices[0].rate_in_bps.is_some_and(|r| r > 0), "{:?}", status.devices[0]);

    // c refuses the rest: the file is a failed item, with the reason.
    c.refuse = true;
    for r in std::mem::take(&mut c.held) {
        c.s.respond(r.id, Err(ErrorCode::NoSuchFile), std::time::Instant::now()).unwrap();
    }
    let failed = c
        .until("big.bin to fail at b", |_| {
            let items = eb.failed_items(&folder).unwrap();
            items.iter().any(|i| i.path == "big.bin").then_some(items)
        })
        .await;
    assert!(failed[0].error.contains("could not be fetched"), "{failed:?}");
    assert_eq!(eb.needed(&folder).await.unwrap()[0].path, "big.bin");

    // Once c serves it, the file arrives and is no longer failed.
    c.refuse = false;
    c.release();
    c.announce(&file);
    let bf = b.folder();
    c.until("big.bin at b and no failed items", |_| {
        let done = std::fs::read(bf.join("big.bin")).is_ok_and(|d| d == data);
        (done && eb.failed_items(&folder).unwrap().is_empty()).then_some(())
    })
    .await;
    eb.shutdown().await;
}

/// What a device ignores is neither downloaded nor replaced there (as in Syncthing), and
/// arrives once it is no longer ignored. Before, an ignored file that a peer had was
/// downloaded over the local one, re-marked ignored by the next scan, and downloaded again,
/// forever.
async fn ignored_here(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    std::fs::write(a.folder().join("x.bin"), pseudo_random(1 << 20, 3)).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    eb.set_ignores(&folder, vec!["x.bin".into(), "*.iso".into()]).await.unwrap();
    let kept = std::fs::read(b.folder().join("x.bin")).unwrap();
    let inode =
        |n: &Node| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(n.folder().join("x.bin")).unwrap());
    let before = inode(&b);

    // a changes x.bin and adds an ignored and a plain file; b takes only the plain one.
    let changed = pseudo_random(1 << 20, 4);
    save(&a, "x.bin", &changed);
    save(&a, "disk.iso", &pseudo_random(1 << 20, 5));
    let first: [u8; 32] = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&changed[..BLOCK]).into()
    };
    let index = ea.index().clone();
    wait_for(LIMIT, "a to index its changes", || {
        let index = index.clone();
        async move {
            let f = index.register_folder("f").await.unwrap();
            index.local_file(f, "disk.iso").await.unwrap()?;
            let x = index.local_file(f, "x.bin").await.unwrap()?;
            (x.blocks.first().map(|b| b.hash) == Some(first)).then_some(())
        }
    })
    .await;
    save(&a, "y.txt", b"after the others");
    let by = b.folder().join("y.txt");
    wait_for(LIMIT, "b to take y.txt", || {
        let got = std::fs::read(&by).ok();
        async move { (got.as_deref() == Some(b"after the others".as_slice())).then_some(()) }
    })
    .await;
    // Settled: the pull that took y.txt (which a indexed after its other changes, and which
    // sorts after them) has recorded it, so it has dealt with x.bin and disk.iso too, and b's
    // folder is idle again.
    let (ia, ib) = (ea.index().clone(), eb.index().clone());
    wait_for(LIMIT, "b to record y.txt and go idle", || {
        let (ia, ib) = (ia.clone(), ib.clone());
        let idle = eb.folder_states().iter().all(|(_, s)| *s == FolderState::Idle);
        async move {
            let (fa, fb) = (ia.folder("f").await.unwrap()?, ib.folder("f").await.unwrap()?);
            let theirs = ia.local_file(fa, "y.txt").await.unwrap()?;
            let mine = ib.local_file(fb, "y.txt").await.unwrap()?;
            (idle && mine.version == theirs.version).then_some(())
        }
    })
    .await;
    assert_eq!(std::fs::read(b.folder().join("x.bin")).unwrap(), kept, "b's ignored x.bin is left alone");
    assert_eq!(inode(&b), before, "and not replaced");
    assert!(!b.folder().join("disk.iso").exists(), "an ignored file is not downloaded");
    // What b ignores is not needed there: nothing to pull, status complete (as in Syncthing,
    // which records such a name as ignored with the global version).
    let ignored_need = || async {
        let status = peerfold::status::status(b.id, &eb.config(), eb.index(), Some(&eb)).await.unwrap();
        (eb.needed(&folder).await.unwrap(), status.folders[0].need)
    };
    let (needed, need) = ignored_need().await;
    assert!(needed.is_empty() && need.items == 0 && need.bytes == 0, "b needs {needed:?} ({need:?})");

    // The user removes the ignored x.bin at b: that is no delete to announce, a keeps its copy.
    std::fs::remove_file(b.folder().join("x.bin")).unwrap();
    eb.scan(&folder, Vec::new()).await.unwrap();
    let (needed, need) = ignored_need().await;
    assert!(needed.is_empty() && need.items == 0, "b needs {needed:?} ({need:?})");
    let fb = eb.index().folder("f").await.unwrap().unwrap();
    let x = eb.index().local_file(fb, "x.bin").await.unwrap().unwrap();
    assert!(x.invalid, "b records x.bin as ignored, not deleted: {x:?}");
    // a hears of x.bin from b as ignored there, the global version: not as a delete.
    let (ia, b_id) = (ea.index().clone(), b.id);
    wait_for(LIMIT, "a to hear b's x.bin as ignored", || {
        let ia = ia.clone();
        async move {
            let fa = ia.folder("f").await.unwrap()?;
            let db = ia.known_device(&b_id).await.unwrap()?;
            let theirs = ia.remote_file(fa, db, "x.bin").await.unwrap()?;
            assert!(!theirs.deleted, "b announced x.bin as deleted: {theirs:?}");
            theirs.invalid.then_some(())
        }
    })
    .await;
    let fa = ia.folder("f").await.unwrap().unwrap();
    let mine = ia.local_file(fa, "x.bin").await.unwrap().unwrap();
    assert!(!mine.deleted, "a's x.bin is not deleted: {mine:?}");
    assert_eq!(std::fs::read(a.folder().join("x.bin")).unwrap(), changed, "a keeps its x.bin");

    // Not ignored any more: b gets a's versions.
    eb.set_ignores(&folder, Vec::new()).await.unwrap();
    wait_for(LIMIT, "b to take the files it no longer ignores", || {
        let (x, iso) = (std::fs::read(b.folder().join("x.bin")).ok(), b.folder().join("disk.iso").exists());
        let changed = changed.clone();
        async move { (x == Some(changed) && iso).then_some(()) }
    })
    .await;
    assert_eq!(std::fs::read(a.folder().join("x.bin")).unwrap(), changed, "a's x.bin was never deleted");
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_device_ignores_is_not_pulled_there_over_quic() {
    ignored_here("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_device_ignores_is_not_pulled_there_over_tcp() {
    ignored_here("tcp").await;
}

/// A directory a peer deleted goes when what blocks its removal here is ignored with `(?d)`
/// (as in Syncthing: such files are removed with it); a directory holding a file that is
/// ignored without `(?d)` stays, with that file, and is a failed item.
async fn deletable_ignored(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    for d in ["d1", "d2"] {
        std::fs::create_dir_all(a.folder().join(d)).unwrap();
        std::fs::write(a.folder().join(d).join("synced.txt"), d).unwrap();
    }
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    eb.set_ignores(&folder, vec!["(?d).DS_Store".into(), "(?d).Trashes".into(), "junk".into()])
        .await
        .unwrap();
    std::fs::write(b.folder().join("d1/.DS_Store"), b"finder").unwrap();
    std::fs::create_dir_all(b.folder().join("d1/.Trashes/501")).unwrap();
    std::fs::write(b.folder().join("d1/.Trashes/501/old"), b"trash").unwrap();
    std::fs::write(b.folder().join("d2/junk"), b"mine").unwrap();

    std::fs::remove_dir_all(a.folder().join("d1")).unwrap();
    std::fs::remove_dir_all(a.folder().join("d2")).unwrap();
    let (b1, b2) = (b.folder().join("d1"), b.folder().join("d2"));
    wait_for(LIMIT, "d1 gone and d2 a failed item at b", || {
        let d1_gone = !b1.exists();
        let d2_failed = eb.failed_items(&folder).unwrap().iter().any(|i| i.path == "d2");
        async move { (d1_gone && d2_failed).then_some(()) }
    })
    .await;
    assert_eq!(std::fs::read(b2.join("junk")).unwrap(), b"mine", "a plainly ignored file is kept");
    let failed = eb.failed_items(&folder).unwrap();
    let why = &failed.iter().find(|i| i.path == "d2").unwrap().error;
    assert!(why.contains("junk") && why.contains("(?d)"), "{why}");
    assert!(!b2.join("synced.txt").exists(), "the synced file in it is deleted");
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_blocked_only_by_deletable_ignored_files_is_deleted_over_quic() {
    deletable_ignored("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_blocked_only_by_deletable_ignored_files_is_deleted_over_tcp() {
    deletable_ignored("tcp").await;
}

/// A folder removed from the configuration leaves nothing in the index: removed from a
/// running engine, or from the configuration while no engine ran (dropped when one starts).
async fn removed_folder(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    std::fs::write(a.folder().join("x.bin"), pseudo_random(300_000, 9)).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;
    let (ia, ib) = (ea.index().clone(), eb.index().clone());
    let fa = ia.folder("f").await.unwrap().unwrap();
    let fb = ib.folder("f").await.unwrap().unwrap();
    // Synced: each side holds its own entries and the other's.
    assert!(ib.folder_row_count(fb).await.unwrap() > 3);

    eb.edit_config(peerfold::config::Edit::RemoveFolder { id: "f".parse().unwrap() }).await.unwrap();
    assert_eq!(ib.folder("f").await.unwrap(), None);
    assert_eq!(ib.folder_row_count(fb).await.unwrap(), 0, "no rows of the removed folder are left");
    assert_eq!(ib.blocklist_count().await.unwrap(), 0, "nor block lists only it used");
    eb.shutdown().await;

    // Removed while a was stopped: its next start drops the rows.
    ea.shutdown().await;
    let index = Index::open(&a.t.path("index.db")).await.unwrap();
    assert!(index.folder_row_count(fa).await.unwrap() > 1, "a still holds the folder and its file");
    let mut config = a.config.clone();
    config.folders.clear();
    let ea = Engine::start(&config, index.clone(), a.id);
    wait_for(LIMIT, "a to drop the folder removed while it was stopped", || {
        let index = index.clone();
        async move { (index.folder_row_count(fa).await.unwrap() == 0).then_some(()) }
    })
    .await;
    assert_eq!(index.folder("f").await.unwrap(), None);
    assert_eq!(index.blocklist_count().await.unwrap(), 0);
    ea.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_folder_leaves_no_rows_in_the_index_over_quic() {
    removed_folder("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_folder_leaves_no_rows_in_the_index_over_tcp() {
    removed_folder("tcp").await;
}

mod disks;

/// A connection replaced while blocks are on their way (here a TCP address learnt while
/// connected over QUIC ranks better and its connection replaces the QUIC one; in the field, a
/// direct connection replacing a relayed one, or two devices that dialled each other at once)
/// loses no download: the blocks asked of the old connection are asked again of the new one,
/// and no file fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_replaced_mid_download_fails_no_file() {
    use peerfold::config::Edit;
    use peerfold::events::Event;
    crate::util::init_logging();
    let (mut a, mut b) = pair("quic").await;
    // A listens on QUIC and TCP; B knows only A's QUIC address for now.
    let identity = Identity::load_or_generate(&a.t.home()).unwrap();
    drop(a.net.take());
    let listen = ["quic://127.0.0.1:0".parse().unwrap(), "tcp://127.0.0.1:0".parse().unwrap()];
    let net = Net::bind(TlsIdentity::new(&identity).unwrap(), &listen).await.unwrap();
    let find =
        |scheme: &str| net.local_addresses().into_iter().find(|x| x.to_string().starts_with(scheme)).unwrap();
    let (quic_addr, tcp_addr) = (find("quic://"), find("tcp://"));
    a.net = Some(net);
    b.config.devices[0].addresses = vec![quic_addr.to_string()];
    // Slow enough that the replacement comes mid-download: 24 MiB at 4 MiB/s.
    a.config.options.max_send_kibps = 4096;
    a.config.options.limit_lan = true;
    let data = pseudo_random(24 << 20, 21);
    std::fs::write(a.folder().join("big.bin"), &data).unwrap();
    let ea = a.start().await;
    let eb = b.start().await;
    let mut events = eb.subscribe();
    let tmp = b.folder().join(".syncthing.big.bin.tmp");
    wait_for(LIMIT, "b's download of big.bin to be under way", || {
        let started = std::fs::metadata(&tmp).is_ok() && eb.traffic().0 > 2 << 20;
        async move { started.then_some(()) }
    })
    .await;
    eb.edit_config(Edit::UpdateDevice {
        id: a.id,
        name: None,
        addresses: Some(vec![quic_addr.to_string(), tcp_addr.to_string()]),
    })
    .await
    .unwrap();
    wait_for(LIMIT, "the TCP connection to replace the QUIC one", || {
        let tcp =
            eb.connections().iter().any(|c| c.device == a.id && c.transport == peerfold::net::Transport::Tcp);
        async move { tcp.then_some(()) }
    })
    .await;
    same_trees(&a.folder(), &b.folder()).await;
    let mut issues = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::PullIssue { path, reason, .. } = event {
            issues.push(format!("{path}: {reason}"));
        }
    }
    assert!(issues.is_empty(), "no file failed: {issues:?}");
    ea.shutdown().await;
    eb.shutdown().await;
}

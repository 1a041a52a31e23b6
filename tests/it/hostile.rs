//! Hostile peers: a device the folder is shared with that speaks BEP by hand, to attack a real
//! engine over real QUIC or TCP+TLS on loopback, and the checks every attack ends with.
//!
//! The harness ([`Scene`], [`Hostile`], [`Canary`], [`still_serves_others`]) is meant for every
//! attack test: a [`Scene`] is the device under attack (the *target*, a real engine), an honest
//! engine it also shares the folder with, the hostile device's identity, and a canary tree
//! beside the target's folder. [`Hostile`] sends whatever it is told to — valid or forged
//! `ClusterConfig`, `Index`, `IndexUpdate`, `Request`, `Response`, or raw bytes — answers the
//! target's requests with the data it chooses, and keeps what the target sends. Each test ends
//! with [`Canary::assert_untouched`] (nothing outside the folder changed, byte for byte) and
//! [`still_serves_others`] (the attack cost the target nothing with its other peers).

// A harness for every attack test: not each test uses each of its parts.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peerfold::bep::session::{Event, Session, SessionConfig};
use peerfold::bep::wire::{self, Compression, ErrorCode};
use peerfold::bep::{BlockHash, BlockInfo, FileInfo, FileType, Message, Vector};
use peerfold::config::{Config, DeviceConfig, FolderConfig, FolderId};
use peerfold::db::Index;
use peerfold::engine::Engine;
use peerfold::identity::{DeviceId, Identity};
use peerfold::net::{Address, BoxStream, Net, TlsIdentity};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::util::{TestDir, pseudo_random, wait_for};

/// How long any one thing an attack test waits for may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);
/// The id of the folder every scene shares.
pub(crate) const FOLDER: &str = "f";
/// The block size of the files [`file`] makes.
pub(crate) const BLOCK: usize = 128 << 10;
/// A modification time for forged entries (2026-11-21).
pub(crate) const WHEN: i64 = 1_795_268_583;

/// A device before it starts: identity, bound listener, a folder `f` in a temporary directory.
pub(crate) struct Device {
    pub(crate) t: TestDir,
    pub(crate) id: DeviceId,
    pub(crate) net: Option<Net>,
    pub(crate) addr: Address,
    pub(crate) config: Config,
}

impl Device {
    pub(crate) async fn new(name: &str, transport: &str) -> Self {
        let (t, identity, net, addr) = crate::util::bound_device(transport).await;
        std::fs::create_dir_all(t.path("f")).unwrap();
        let mut config = Config { name: name.into(), ..Config::default() };
        config.options.watch_delay_ms = 50;
        config.folders.push(FolderConfig::new(FOLDER.parse().unwrap(), t.path("f").canonicalize().unwrap()));
        Self { id: identity.device_id(), t, net: Some(net), addr, config }
    }

    /// The folder's root.
    pub(crate) fn folder(&self) -> PathBuf {
        self.t.path("f")
    }

    /// Configures `other` (with its address when `dial`), sharing the folder with it.
    pub(crate) fn knows(&mut self, other: &Device, dial: bool) {
        let addresses = if dial { vec![other.addr.to_string()] } else { Vec::new() };
        self.config.devices.push(DeviceConfig {
            id: other.id,
            name: other.config.name.clone(),
            addresses,
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

    /// Starts the engine on this device's configuration and index.
    pub(crate) async fn start(&mut self) -> Engine {
        let index = Index::open(&self.t.path("index.db")).await.unwrap();
        Engine::start_networked(&self.config, index, self.id, self.net.take().unwrap())
    }
}

/// The device under attack, an honest peer of it, the attacker's identity and a canary tree.
pub(crate) struct Scene {
    /// The device under attack: it shares the folder with `honest` and `hostile`.
    pub(crate) target: Device,
    /// A well-behaved engine sharing the folder with the target only.
    pub(crate) honest: Device,
    /// The attacker's identity and listener; [`Scene::connect`] dials the target with it.
    pub(crate) hostile: Device,
    /// Files and a directory beside the target's folder that no attack may touch.
    pub(crate) canary: Canary,
}

impl Scene {
    /// Three devices on `transport` ("quic" or "tcp"); the target knows both others, the honest
    /// device knows the target. Change `target.config` (or plant files) before [`Scene::start`].
    pub(crate) async fn new(transport: &str) -> Self {
        let mut target = Device::new("target", transport).await;
        let mut honest = Device::new("honest", transport).await;
        let hostile = Device::new("hostile", transport).await;
        target.knows(&honest, true);
        target.knows(&hostile, false);
        honest.knows(&target, true);
        let canary = Canary::plant(&target.t.path("canary"));
        Self { target, honest, hostile, canary }
    }

    /// Starts the target's and the honest device's engines.
    pub(crate) async fn start(&mut self) -> (Engine, Engine) {
        (self.target.start().await, self.honest.start().await)
    }

    /// Connects the hostile device to the target, announcing the folder as shared.
    pub(crate) async fn connect(&mut self) -> Hostile {
        let net = self.hostile.net.take().expect("the hostile device connects once");
        Hostile::connect(net, self.hostile.id, &self.target).await
    }

    /// The target's folder id.
    pub(crate) fn folder_id(&self) -> FolderId {
        FOLDER.parse().unwrap()
    }
}

/// A device speaking BEP by hand to the target over a real connection.
///
/// Messages go out through a [`Session`] (so they are well-formed and the session matches
/// responses to requests) or, forged, through [`Hostile::send_message`] and
/// [`Hostile::send_raw`], which bypass every check. Requests from the target are answered
/// from [`Hostile::serve`]d data by hash unless [`Hostile::hold`] is set; everything else the
/// target sends is kept.
pub(crate) struct Hostile {
    pub(crate) s: Session,
    stream: BoxStream,
    /// Kept so the QUIC endpoint lives as long as the connection (a [`HostileDevice`] keeps
    /// its own).
    _net: Option<Net>,
    buf: Vec<u8>,
    /// Data served for requests, by block hash.
    blocks: HashMap<BlockHash, Vec<u8>>,
    /// When set, requests are kept in `requests` unanswered.
    pub(crate) hold: bool,
    /// Every request the target made, in order.
    pub(crate) requests: Vec<wire::Request>,
    /// Answers to our requests, by request ID.
    pub(crate) responses: BTreeMap<i32, Result<Vec<u8>, ErrorCode>>,
    /// The target's index entries, by name (the latest of each).
    pub(crate) index: BTreeMap<String, FileInfo>,
    /// Why the connection ended, once it has.
    pub(crate) closed: Option<String>,
    /// The sequence number the next entry sent through [`Hostile::send_index`] gets.
    next_sequence: i64,
}

impl Hostile {
    /// Dials `to` as the device of `net`, sends Hello and a ClusterConfig sharing the folder.
    pub(crate) async fn connect(net: Net, me: DeviceId, to: &Device) -> Self {
        let cc = sharing(me, to.id);
        Self::connect_with(net, to, Some(cc)).await
    }

    /// Dials `to` and sends Hello, then `cc` if given (without one, the next message sent is
    /// the first the target sees after the Hello).
    pub(crate) async fn connect_with(net: Net, to: &Device, cc: Option<wire::ClusterConfig>) -> Self {
        let conn = net.dial(&to.addr, to.id).await.unwrap();
        Self::over(conn.stream, Some(net), "hostile", cc).await
    }

    /// Starts the session on an established `stream`: Hello named `name`, then `cc` if given.
    async fn over(stream: BoxStream, net: Option<Net>, name: &str, cc: Option<wire::ClusterConfig>) -> Self {
        let now = Instant::now();
        let hello =
            wire::Hello { device_name: name.into(), client_name: "hostile".into(), ..Default::default() };
        let mut s = Session::new(SessionConfig::new(hello), now);
        if let Some(cc) = cc {
            s.send_cluster_config(cc, now).unwrap();
        }
        let mut h = Self {
            s,
            stream,
            _net: net,
            buf: vec![0u8; 1 << 20],
            blocks: HashMap::new(),
            hold: false,
            requests: Vec::new(),
            responses: BTreeMap::new(),
            index: BTreeMap::new(),
            closed: None,
            next_sequence: 1,
        };
        h.flush().await;
        h
    }

    /// Answers requests for the blocks of `data` (split in [`BLOCK`]s, as [`file`] does).
    pub(crate) fn serve(&mut self, data: &[u8]) {
        for chunk in data.chunks(BLOCK) {
            self.blocks.insert(sha2::Sha256::digest(chunk).into(), chunk.to_vec());
        }
    }

    /// Sends `files` as the whole index (an Index message), numbered with the next sequence
    /// numbers (the ones they carry are replaced).
    pub(crate) async fn send_index(&mut self, files: &[FileInfo]) {
        let files = self.numbered(files);
        self.s.send_index(FOLDER, &files, true, Instant::now()).unwrap();
        self.flush().await;
    }

    /// Sends `files` as an IndexUpdate, numbered as [`Hostile::send_index`] does.
    pub(crate) async fn send_index_update(&mut self, files: &[FileInfo]) {
        let files = self.numbered(files);
        self.s.send_index(FOLDER, &files, false, Instant::now()).unwrap();
        self.flush().await;
    }

    fn numbered(&mut self, files: &[FileInfo]) -> Vec<FileInfo> {
        let mut out = files.to_vec();
        for f in &mut out {
            f.sequence = self.next_sequence;
            self.next_sequence += 1;
        }
        out
    }

    /// Sends a ClusterConfig through the session.
    pub(crate) async fn send_cluster_config(&mut self, cc: wire::ClusterConfig) {
        self.s.send_cluster_config(cc, Instant::now()).unwrap();
        self.flush().await;
    }

    /// Sends a well-formed Request; returns its ID (its answer lands in `responses`).
    pub(crate) async fn request(&mut self, req: wire::Request) -> i32 {
        let id = self.s.request(req, Instant::now()).unwrap();
        self.flush().await;
        id
    }

    /// Answers the target's request `id` with anything.
    pub(crate) async fn respond(&mut self, id: i32, result: Result<Vec<u8>, ErrorCode>) {
        self.s.respond(id, result, Instant::now()).unwrap();
        self.flush().await;
    }

    /// Sends any message, encoded but unchecked (forged names, wrong sizes, wire `FileInfo`s
    /// the session would never produce), after whatever the session queued.
    pub(crate) async fn send_message(&mut self, msg: &Message, compression: Compression) {
        let mut out = Vec::new();
        peerfold::bep::encode_message(msg, compression, &mut out).unwrap();
        self.send_raw(&out).await;
    }

    /// Writes bytes as they are (malformed frames), after whatever the session queued. A write
    /// the target refuses (it closed the connection) is recorded in `closed`.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.flush().await;
        if let Err(e) = self.stream.write_all(bytes).await {
            self.closed.get_or_insert(format!("write failed: {e}"));
        }
        let _ = self.stream.flush().await;
    }

    async fn flush(&mut self) {
        let bytes = self.s.take_transmit();
        if !bytes.is_empty() {
            if let Err(e) = self.stream.write_all(&bytes).await {
                self.closed.get_or_insert(format!("write failed: {e}"));
            }
            let _ = self.stream.flush().await;
        }
    }

    /// Reads what arrives within a moment (a bounded read, so callers can poll other things
    /// between steps) and handles it: requests answered or held, the rest kept.
    pub(crate) async fn step(&mut self) {
        self.flush().await;
        if self.closed.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(50), self.stream.read(&mut self.buf)).await
        {
            match read {
                Ok(0) => {
                    self.closed.get_or_insert(String::from("the target closed the connection"));
                }
                Ok(n) => self.s.receive(&self.buf[..n], Instant::now()),
                Err(e) => {
                    self.closed.get_or_insert(format!("read failed: {e}"));
                }
            }
        }
        while let Some(e) = self.s.poll_event() {
            match e {
                Event::Request(r) => {
                    self.requests.push(r.clone());
                    if !self.hold {
                        let data = self.blocks.get(r.hash.as_slice()).filter(|d| d.len() == r.size as usize);
                        let answer = data.cloned().ok_or(ErrorCode::NoSuchFile);
                        let _ = self.s.respond(r.id, answer, Instant::now());
                    }
                }
                Event::Response { id, result } => {
                    self.responses.insert(id, result.map(|d| d.to_vec()));
                }
                Event::Index { files, .. } => {
                    for f in files {
                        self.index.insert(f.name.clone(), f);
                    }
                }
                // The target's own reason says more than a write that failed before it was read.
                Event::Closed { reason, .. } => self.closed = Some(reason),
                _ => {}
            }
        }
        self.flush().await;
    }

    /// Steps until `done` says so, for at most [`LIMIT`].
    pub(crate) async fn until<T>(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(v) = done(self) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} (connection closed: {:?})",
                self.closed
            );
            self.step().await;
        }
    }
}

/// A ClusterConfig sharing [`FOLDER`] between `me` and `to`.
pub(crate) fn sharing(me: DeviceId, to: DeviceId) -> wire::ClusterConfig {
    let device = |id: DeviceId| wire::Device { id: id.as_bytes().to_vec(), ..Default::default() };
    let folder =
        wire::Folder { id: FOLDER.into(), devices: vec![device(me), device(to)], ..Default::default() };
    wire::ClusterConfig { folders: vec![folder], ..Default::default() }
}

/// A hostile device outside a [`Scene`]: an identity and an endpoint that dial any address (a
/// `peerfold serve` daemon's, an engine's) as often as a test likes, each time as a
/// [`Hostile`] with the Hello name it chooses.
pub(crate) struct HostileDevice {
    pub(crate) t: TestDir,
    pub(crate) id: DeviceId,
    pub(crate) net: Net,
}

impl HostileDevice {
    /// A device with a bound (unused) listener on `transport`.
    pub(crate) async fn new(transport: &str) -> Self {
        let listen: Address = format!("{transport}://127.0.0.1:0").parse().unwrap();
        Self::bound(&[listen]).await
    }

    /// A device that only dials (no listener), cheap enough to make by the hundred.
    pub(crate) async fn dialer() -> Self {
        Self::bound(&[]).await
    }

    async fn bound(listen: &[Address]) -> Self {
        let t = TestDir::new();
        let identity = Identity::load_or_generate(&t.home()).unwrap();
        let net = Net::bind(TlsIdentity::new(&identity).unwrap(), listen).await.unwrap();
        Self { id: identity.device_id(), t, net }
    }

    /// Dials `addr` (the device `to`), says Hello as `name` and shares [`FOLDER`] with it.
    pub(crate) async fn connect(&self, addr: &Address, to: DeviceId, name: &str) -> Hostile {
        let conn = self.net.dial(addr, to).await.unwrap();
        Hostile::over(conn.stream, None, name, Some(sharing(self.id, to))).await
    }
}

/// A version made by `by` alone at [`WHEN`].
pub(crate) fn version_by(by: DeviceId) -> Vector {
    Vector::new().updated(by.short(), WHEN as u64)
}

/// The index entry of a file holding `data`, made by `by`.
pub(crate) fn file(name: &str, data: &[u8], by: DeviceId) -> FileInfo {
    let blocks: Vec<BlockInfo> = if data.is_empty() {
        vec![BlockInfo { offset: 0, size: 0, hash: sha2::Sha256::digest(b"").into() }]
    } else {
        data.chunks(BLOCK)
            .enumerate()
            .map(|(i, d)| BlockInfo {
                offset: (i * BLOCK) as u64,
                size: d.len() as u32,
                hash: sha2::Sha256::digest(d).into(),
            })
            .collect()
    };
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: data.len() as u64,
        permissions: 0o644,
        no_permissions: false,
        modified_s: WHEN,
        modified_ns: 0,
        modified_by: by.short(),
        deleted: false,
        invalid: false,
        version: version_by(by),
        sequence: 1,
        block_size: BLOCK as u32,
        blocks,
        symlink_target: String::new(),
    }
}

/// The index entry of a symlink `name -> target`, made by `by`.
pub(crate) fn symlink(name: &str, target: &str, by: DeviceId) -> FileInfo {
    FileInfo {
        file_type: FileType::Symlink,
        size: 0,
        blocks: Vec::new(),
        block_size: 0,
        no_permissions: true,
        symlink_target: target.into(),
        ..file(name, b"", by)
    }
}

/// The index entry of a directory, made by `by`.
pub(crate) fn directory(name: &str, by: DeviceId) -> FileInfo {
    FileInfo {
        file_type: FileType::Directory,
        size: 0,
        blocks: Vec::new(),
        block_size: 0,
        permissions: 0o755,
        ..file(name, b"", by)
    }
}

/// A tree beside the folder that no attack may change: files (one of them `bashrc`), a
/// directory `autostart/` with a file, `elsewhere/` with a file, `versions/` with a file.
pub(crate) struct Canary {
    pub(crate) root: PathBuf,
    before: BTreeMap<String, (char, Vec<u8>, u32)>,
}

impl Canary {
    /// Plants the tree at `root` and snapshots it.
    pub(crate) fn plant(root: &Path) -> Self {
        for (rel, data) in [
            ("bashrc", &b"export SAFE=1\n"[..]),
            ("autostart/existing.desktop", b"[Desktop Entry]\n"),
            ("elsewhere/secret.txt", b"a secret the peer must never read"),
            ("versions/keep.txt", b"keep me"),
        ] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
        }
        let root = root.canonicalize().unwrap();
        let before = snapshot(&root);
        Self { root, before }
    }

    /// Adds a file to the canary (and to what it must stay).
    pub(crate) fn add(&mut self, rel: &str, data: &[u8]) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        self.before = snapshot(&self.root);
    }

    /// An absolute path in the canary, as a string (a forged symlink's target).
    pub(crate) fn path(&self, rel: &str) -> String {
        self.root.join(rel).to_string_lossy().into_owned()
    }

    /// Panics unless every entry is as planted: same kinds, bytes and permission bits, nothing
    /// added or removed.
    pub(crate) fn assert_untouched(&self) {
        let now = snapshot(&self.root);
        let show = |e: Option<&(char, Vec<u8>, u32)>| {
            e.map(|(kind, data, mode)| {
                let head = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
                format!("{kind} {mode:o} {} bytes {head:?}", data.len())
            })
        };
        let changed: Vec<String> = self
            .before
            .keys()
            .chain(now.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| self.before.get(*k) != now.get(*k))
            .map(|k| format!("{k}: {:?} -> {:?}", show(self.before.get(k)), show(now.get(k))))
            .collect();
        assert!(changed.is_empty(), "the canary beside the folder changed:\n{}", changed.join("\n"));
    }
}

/// Every entry under `root`: relative name → (kind, content or link target, mode bits).
fn snapshot(root: &Path) -> BTreeMap<String, (char, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(rel, ('l', target.to_string_lossy().as_bytes().to_vec(), mode));
            } else if meta.is_dir() {
                out.insert(rel, ('d', Vec::new(), mode));
                stack.push(e.path());
            } else {
                out.insert(rel, ('f', std::fs::read(e.path()).unwrap(), mode));
            }
        }
    }
    out
}

/// Checks that the target still syncs with its honest peer both ways: a new file written on
/// each side arrives on the other with its content (the target's is scanned at once, so this
/// also holds with its watcher off). `tag` keeps names distinct per call.
pub(crate) async fn still_serves_others(target: &Device, engine: &Engine, honest: &Device, tag: &str) {
    let from_target = pseudo_random(300_000, 17);
    let from_honest = pseudo_random(200_000, 23);
    let (a, b) = (format!("after-{tag}-from-target.bin"), format!("after-{tag}-from-honest.bin"));
    std::fs::write(target.folder().join(&a), &from_target).unwrap();
    std::fs::write(honest.folder().join(&b), &from_honest).unwrap();
    engine.scan(&FOLDER.parse().unwrap(), vec![a.clone()]).await.unwrap();
    let (at_honest, at_target) = (honest.folder().join(&a), target.folder().join(&b));
    wait_for(LIMIT, "the target to sync with its honest peer after the attack", || {
        let ok = std::fs::read(&at_honest).is_ok_and(|d| d == from_target)
            && std::fs::read(&at_target).is_ok_and(|d| d == from_honest);
        async move { ok.then_some(()) }
    })
    .await;
}

/// The reason `name` failed at `engine`, if it is a failed item.
pub(crate) fn failed(engine: &Engine, name: &str) -> Option<String> {
    let folder: FolderId = FOLDER.parse().unwrap();
    engine.failed_items(&folder).ok()?.into_iter().find(|i| i.path == name).map(|i| i.error)
}

// ---------------------------------------------------------------------------------------------
// The harness's own test: a forged message reaches the target and costs only that connection.

/// An Index entry whose name leaves the folder (`../escape`), sent forged past the session's
/// checks: the target closes this connection with the reason, writes nothing, and goes on
/// syncing with its honest peer.
async fn forged_index_closes_only_that_connection(transport: &str) {
    let mut sc = Scene::new(transport).await;
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    let mut bad = wire::FileInfo::from(&file("x", b"x", sc.hostile.id));
    bad.name = "../escape".into();
    let index = wire::Index { folder: FOLDER.into(), files: vec![bad], last_sequence: 1 };
    h.send_message(&Message::Index(index), Compression::Never).await;
    let reason = h.until("the target to close the connection", |h| h.closed.clone()).await;
    assert!(reason.contains("escape") || reason.contains("closed"), "{reason}");
    assert!(!sc.target.t.path("escape").exists());
    sc.canary.assert_untouched();
    still_serves_others(&sc.target, &target, &sc.honest, "forged").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_index_closes_only_that_connection_over_quic() {
    forged_index_closes_only_that_connection("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_index_closes_only_that_connection_over_tcp() {
    forged_index_closes_only_that_connection("tcp").await;
}
// ---------------------------------------------------------------------------------------------
// Attacks: the puller never goes through a symlink.

/// A peer announces a symlink at `foo`'s temporary-file name pointing at a file outside the
/// folder, then `foo`: the puller must not open the link and write `foo`'s blocks through it.
async fn symlink_at_temp_name(transport: &str) {
    let mut sc = Scene::new(transport).await;
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    let data = pseudo_random(3 * BLOCK + 100, 5);
    h.serve(&data);
    let id = sc.hostile.id;
    h.send_index(&[symlink(".syncthing.foo.tmp", &sc.canary.path("bashrc"), id), file("foo", &data, id)])
        .await;
    let pulled = sc.target.folder().join("foo");
    let outcome = h
        .until("foo to arrive or fail", |_| {
            if let Some(reason) = failed(&target, "foo") {
                return Some(Err(reason));
            }
            std::fs::read(&pulled).is_ok_and(|d| d == data).then_some(Ok(()))
        })
        .await;
    sc.canary.assert_untouched();
    // `foo` is a regular file of its own or a failed item; never the link renamed into place.
    match outcome {
        Ok(()) => assert!(std::fs::symlink_metadata(&pulled).unwrap().is_file(), "foo is not a regular file"),
        Err(reason) => assert!(reason.contains("symbolic link"), "{reason}"),
    }
    still_serves_others(&sc.target, &target, &sc.honest, "temp").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_at_the_temporary_name_is_not_written_through_over_quic() {
    symlink_at_temp_name("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_at_the_temporary_name_is_not_written_through_over_tcp() {
    symlink_at_temp_name("tcp").await;
}

/// A peer announces `l -> <a directory outside>` and then `l/x.desktop`: the file must not land
/// outside the folder; it is a failed item naming the link.
async fn symlinked_parent(transport: &str) {
    let mut sc = Scene::new(transport).await;
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    let data = b"[Desktop Entry]\nExec=evil\n".to_vec();
    h.serve(&data);
    let id = sc.hostile.id;
    h.send_index(&[symlink("l", &sc.canary.path("autostart"), id)]).await;
    let l = sc.target.folder().join("l");
    h.until("the symlink l at the target", |_| std::fs::symlink_metadata(&l).is_ok().then_some(())).await;
    h.send_index_update(&[file("l/x.desktop", &data, id)]).await;
    let reason = h
        .until("l/x.desktop to fail", |_| {
            if sc.canary.root.join("autostart/x.desktop").exists() {
                return Some(String::from("written outside the folder"));
            }
            failed(&target, "l/x.desktop")
        })
        .await;
    sc.canary.assert_untouched();
    assert!(reason.contains("symbolic link") && reason.contains('l'), "{reason}");
    still_serves_others(&sc.target, &target, &sc.honest, "parent").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_under_a_symlinked_directory_is_not_written_outside_over_quic() {
    symlinked_parent("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_under_a_symlinked_directory_is_not_written_outside_over_tcp() {
    symlinked_parent("tcp").await;
}

/// The honest case: the user's own symlink `Photos -> <a directory elsewhere>` inside the folder,
/// and a peer that has a real directory `Photos/` with files. Nothing is written through the
/// link; the files are failed items saying why.
async fn local_symlinked_directory(transport: &str) {
    let mut sc = Scene::new(transport).await;
    std::os::unix::fs::symlink(sc.canary.root.join("elsewhere"), sc.target.folder().join("Photos")).unwrap();
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    h.until("the target's index to list Photos", |h| h.index.contains_key("Photos").then_some(())).await;
    let (a, secret) = (pseudo_random(150_000, 9), b"the peer's own secret.txt".to_vec());
    h.serve(&a);
    h.serve(&secret);
    let id = sc.hostile.id;
    h.send_index(&[file("Photos/a.jpg", &a, id), file("Photos/secret.txt", &secret, id)]).await;
    let reason = h
        .until("Photos/a.jpg to fail", |_| {
            if sc.canary.root.join("elsewhere/a.jpg").exists() {
                return Some(String::from("written outside the folder"));
            }
            failed(&target, "Photos/a.jpg")
        })
        .await;
    sc.canary.assert_untouched();
    assert!(reason.contains("symbolic link") && reason.contains("Photos"), "{reason}");
    still_serves_others(&sc.target, &target, &sc.honest, "photos").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peers_directory_where_the_user_has_a_symlink_is_not_written_through_over_quic() {
    local_symlinked_directory("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peers_directory_where_the_user_has_a_symlink_is_not_written_through_over_tcp() {
    local_symlinked_directory("tcp").await;
}

// ---------------------------------------------------------------------------------------------
// Attacks: serving never reads through a symlink.

/// Files the index lists were replaced on disk by symlinks to files outside (a directory on the
/// way, the file itself, a temporary file's directory) before the next scan: a request for any
/// of them gets an error, never the bytes outside.
async fn serving_through_symlinks(transport: &str) {
    let mut sc = Scene::new(transport).await;
    // The index must stay as scanned while the test swaps files for links.
    sc.target.config.folders[0].watch = Some(false);
    sc.target.config.folders[0].rescan_interval_s = Some(86400);
    let tmp_data = b"not yet verified temporary data".to_vec();
    sc.canary.add("elsewhere/.syncthing.part.bin.tmp", &tmp_data);
    let f = sc.target.folder();
    let secret = std::fs::read(sc.canary.root.join("elsewhere/secret.txt")).unwrap();
    let bashrc = std::fs::read(sc.canary.root.join("bashrc")).unwrap();
    std::fs::create_dir(f.join("Photos")).unwrap();
    std::fs::write(f.join("Photos/secret.txt"), vec![b'p'; secret.len()]).unwrap();
    std::fs::write(f.join("note.txt"), vec![b'n'; bashrc.len()]).unwrap();
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    h.until("the target's index to list the files", |h| {
        (h.index.contains_key("Photos/secret.txt") && h.index.contains_key("note.txt")).then_some(())
    })
    .await;
    std::fs::remove_dir_all(f.join("Photos")).unwrap();
    std::os::unix::fs::symlink(sc.canary.root.join("elsewhere"), f.join("Photos")).unwrap();
    std::fs::remove_file(f.join("note.txt")).unwrap();
    std::os::unix::fs::symlink(sc.canary.root.join("bashrc"), f.join("note.txt")).unwrap();

    let ask = |name: &str, len: usize, hash: Vec<u8>, from_temporary: bool| wire::Request {
        folder: FOLDER.into(),
        name: name.into(),
        offset: 0,
        size: len as i32,
        hash,
        from_temporary,
        ..Default::default()
    };
    let tmp_hash = sha2::Sha256::digest(&tmp_data).to_vec();
    let ids = [
        h.request(ask("Photos/secret.txt", secret.len(), Vec::new(), false)).await,
        h.request(ask("note.txt", bashrc.len(), Vec::new(), false)).await,
        h.request(ask("Photos/part.bin", tmp_data.len(), tmp_hash, true)).await,
    ];
    let answers = h
        .until("the target's answers", |h| {
            ids.iter().map(|id| h.responses.get(id).cloned()).collect::<Option<Vec<_>>>()
        })
        .await;
    let served: Vec<String> = ["Photos/secret.txt", "note.txt", "Photos/.syncthing.part.bin.tmp"]
        .iter()
        .zip(&answers)
        .filter_map(|(what, a)| a.as_ref().ok().map(|d| format!("{what}: {:?}", String::from_utf8_lossy(d))))
        .collect();
    assert!(served.is_empty(), "served through a symlink:\n{}", served.join("\n"));
    sc.canary.assert_untouched();
    still_serves_others(&sc.target, &target, &sc.honest, "serving").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_never_served_through_a_symlink_over_quic() {
    serving_through_symlinks("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_never_served_through_a_symlink_over_tcp() {
    serving_through_symlinks("tcp").await;
}

// ---------------------------------------------------------------------------------------------
// Attacks: `.stversions` as a symlink; a remote directory or symlink over a local edit.

/// `.stversions` is a symlink to a directory outside the folder; a peer replaces one file and
/// deletes another, with trash-can versioning on: nothing is moved or deleted through the link.
async fn versions_symlink(transport: &str) {
    let mut sc = Scene::new(transport).await;
    let f = sc.target.folder();
    std::fs::write(f.join("doc.txt"), b"mine").unwrap();
    std::fs::write(f.join("old.txt"), b"old").unwrap();
    std::os::unix::fs::symlink(sc.canary.root.join("versions"), f.join(".stversions")).unwrap();
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    let (doc, old) = h
        .until("the target's index to list the files", |h| {
            Some((h.index.get("doc.txt")?.clone(), h.index.get("old.txt")?.clone()))
        })
        .await;
    let id = sc.hostile.id;
    let theirs = b"theirs".to_vec();
    h.serve(&theirs);
    let newer = |v: &Vector| v.updated(id.short(), WHEN as u64);
    let replaced = FileInfo { version: newer(&doc.version), ..file("doc.txt", &theirs, id) };
    let deleted = FileInfo {
        version: newer(&old.version),
        deleted: true,
        size: 0,
        blocks: Vec::new(),
        ..file("old.txt", b"", id)
    };
    h.send_index(&[replaced, deleted]).await;
    let (doc_path, old_path) = (f.join("doc.txt"), f.join("old.txt"));
    h.until("both changes to be applied or to fail", |_| {
        let doc_done =
            failed(&target, "doc.txt").is_some() || std::fs::read(&doc_path).is_ok_and(|d| d == theirs);
        let old_done = failed(&target, "old.txt").is_some() || !old_path.exists();
        (doc_done && old_done).then_some(())
    })
    .await;
    sc.canary.assert_untouched();
    // What could not go to the trash can is still there.
    if std::fs::read(&doc_path).is_ok_and(|d| d == b"mine") {
        assert!(failed(&target, "doc.txt").unwrap().contains("symbolic link"));
    }
    still_serves_others(&sc.target, &target, &sc.honest, "versions").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_versioned_through_a_symlinked_stversions_over_quic() {
    versions_symlink("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_versioned_through_a_symlinked_stversions_over_tcp() {
    versions_symlink("tcp").await;
}

/// A file edited here, and a peer's concurrent version of its name that is a directory (or a
/// symlink) and wins: the local edit is kept as a conflict copy, as it is when the peer's
/// version is a file.
async fn remote_directory_over_local_edit(transport: &str) {
    let mut sc = Scene::new(transport).await;
    let f = sc.target.folder();
    std::fs::write(f.join("x"), b"my edit of x").unwrap();
    std::fs::write(f.join("y"), b"my edit of y").unwrap();
    let (target, honest) = sc.start().await;
    let mut h = sc.connect().await;
    let (x, y) = h
        .until("the target's index to list x and y", |h| {
            Some((h.index.get("x")?.clone(), h.index.get("y")?.clone()))
        })
        .await;
    let id = sc.hostile.id;
    // Concurrent with the local versions, and newer, so they win.
    let dir = FileInfo { modified_s: x.modified_s + 1000, ..directory("x", id) };
    let link = FileInfo { modified_s: y.modified_s + 1000, ..symlink("y", "x", id) };
    h.send_index(&[dir, link]).await;
    let (xp, yp) = (f.join("x"), f.join("y"));
    h.until("x to be a directory and y a symlink", |_| {
        let x_dir = std::fs::symlink_metadata(&xp).is_ok_and(|m| m.is_dir());
        let y_link = std::fs::symlink_metadata(&yp).is_ok_and(|m| m.file_type().is_symlink());
        (x_dir && y_link).then_some(())
    })
    .await;
    let copies: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&f)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().contains(".sync-conflict-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    let kept = |name: &str, data: &[u8]| {
        copies.iter().any(|(n, d)| n.starts_with(&format!("{name}.sync-conflict-")) && d == data)
    };
    assert!(kept("x", b"my edit of x") && kept("y", b"my edit of y"), "conflict copies: {:?}", copies.keys());
    sc.canary.assert_untouched();
    still_serves_others(&sc.target, &target, &sc.honest, "conflict").await;
    target.shutdown().await;
    honest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_directory_or_symlink_over_a_local_edit_leaves_a_conflict_copy_over_quic() {
    remote_directory_over_local_edit("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_directory_or_symlink_over_a_local_edit_leaves_a_conflict_copy_over_tcp() {
    remote_directory_over_local_edit("tcp").await;
}

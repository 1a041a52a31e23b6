//! Attacks with names: a configured peer announces names this device must never create
//! (internal names, Windows path syntax, control characters) or that leave the folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use peerfold::config::{Config, DeviceConfig, FolderConfig};
use peerfold::db::Index;
use peerfold::engine::Engine;
use peerfold::identity::DeviceId;
use peerfold::net::Address;

use crate::hostile::{Hostile, HostileDevice, file};
use crate::util::{TestDir, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// An engine with folder `f` shared with `peer`, and a canary file beside the folder.
pub(crate) struct Target {
    pub t: TestDir,
    pub id: DeviceId,
    pub addr: Address,
    pub engine: Engine,
}

impl Target {
    pub async fn start(transport: &str, peer: DeviceId) -> Self {
        let (t, identity, net, addr) = crate::util::bound_device(transport).await;
        std::fs::create_dir_all(t.path("f")).unwrap();
        t.write("canary/keep.txt", b"canary");
        let mut config = Config { name: "target".into(), ..Config::default() };
        config.options.watch_delay_ms = 50;
        let mut folder = FolderConfig::new("f".parse().unwrap(), t.path("f").canonicalize().unwrap());
        folder.devices.push(peer);
        config.folders.push(folder);
        config.devices.push(DeviceConfig {
            id: peer,
            name: "rogue".into(),
            addresses: Vec::new(),
            paused: false,
            auto_accept_folders: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            max_send_kibps: 0,
            max_recv_kibps: 0,
        });
        let index = Index::open(&t.path("index.db")).await.unwrap();
        let id = identity.device_id();
        let engine = Engine::start_networked(&config, index, id, net);
        Self { t, id, addr, engine }
    }
}

/// Every file below `root`: relative path → content.
fn files_below(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

async fn refused_names(transport: &str) {
    let rogue = HostileDevice::new(transport).await;
    let target = Target::start(transport, rogue.id).await;
    let before_canary = files_below(&target.t.path("canary"));
    let mut r = rogue.connect(&target.addr, target.id, "rogue").await;

    let data = b"written by the rogue peer";
    r.serve(data);
    // (name, words the failed item's reason must contain)
    let hostile: [(&str, &str); 9] = [
        (".stignore", "internal"),
        (".stversions/x", "internal"),
        (".stfolder/x", "internal"),
        (".syncthing.a.tmp", "internal"),
        ("d/.syncthing.b.tmp", "internal"),
        ("a\\b", "backslash"),
        ("C:x", "drive letter"),
        ("ctl\u{1}name", "control character"),
        ("line\nbreak", "control character"),
    ];
    let mut files: Vec<_> = hostile.iter().map(|(name, _)| file(name, data, rogue.id)).collect();
    files.push(file("ok.txt", data, rogue.id));
    for (i, f) in files.iter_mut().enumerate() {
        f.sequence = i as i64 + 1;
    }
    r.send_index(&files).await;

    // The honest file arrives from the same peer on the same connection.
    let ok = target.t.path("f/ok.txt");
    loop {
        r.step().await;
        assert!(r.closed.is_none(), "the daemon closed the connection: {:?}", r.closed);
        if std::fs::read(&ok).ok().as_deref() == Some(&data[..]) {
            break;
        }
    }
    // Every hostile name is a failed item with its reason, and none is on disk.
    let folder = "f".parse().unwrap();
    let failed = wait_for(LIMIT, "every hostile name to be a failed item", || {
        let items = target.engine.failed_items(&folder).unwrap();
        let all = hostile.iter().all(|(name, _)| items.iter().any(|i| i.path == *name));
        async move { all.then_some(items) }
    })
    .await;
    for (name, why) in hostile {
        let item = failed.iter().find(|i| i.path == name).unwrap();
        assert!(item.error.contains(why), "{name:?}: {:?} does not say {why:?}", item.error);
    }
    let on_disk = files_below(&target.t.path("f"));
    let want: BTreeMap<String, Vec<u8>> = [("ok.txt".to_owned(), data.to_vec())].into();
    assert_eq!(on_disk, want, "only the honest file was written");
    assert!(!target.t.path("f/.stignore").exists());
    assert!(!target.t.path("f/.stversions").exists());
    assert_eq!(files_below(&target.t.path("canary")), before_canary);
    // Nothing refused was recorded, so nothing refused is announced to other peers.
    let local = target.engine.index().clone();
    let fidx = local.register_folder("f").await.unwrap();
    for (name, _) in hostile {
        assert!(local.local_file(fidx, name).await.unwrap().is_none(), "{name:?} is in the local index");
    }
    target.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_a_peer_must_not_create_are_failed_items_over_quic() {
    refused_names("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_a_peer_must_not_create_are_failed_items_over_tcp() {
    refused_names("tcp").await;
}

async fn escaping_names(transport: &str) {
    for name in ["../escaped.txt", "/tmp/escaped.txt"] {
        let rogue = HostileDevice::new(transport).await;
        let target = Target::start(transport, rogue.id).await;
        let mut r: Hostile = rogue.connect(&target.addr, target.id, "rogue").await;
        let data = b"escape";
        r.serve(data);
        r.send_index(&[file(name, data, rogue.id)]).await;
        let deadline = tokio::time::Instant::now() + LIMIT;
        while r.closed.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "no Close for {name:?}");
            r.step().await;
        }
        let reason = r.closed.clone().unwrap();
        assert!(reason.contains("filename is invalid"), "{name:?}: {reason}");
        assert!(!target.t.path("escaped.txt").exists());
        assert!(files_below(&target.t.path("f")).is_empty());
        target.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_leaving_the_folder_close_the_connection_over_quic() {
    escaping_names("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_leaving_the_folder_close_the_connection_over_tcp() {
    escaping_names("tcp").await;
}

//! Selective sync between two Peerfold engines over real QUIC and TCP, driven through the
//! typed service as every front-end drives it: a deselected subtree is not downloaded and the
//! folder is complete without it, selecting it again brings it, and the peer's copy is never
//! deleted, whether the local copy is kept or moved to the trash can.

use std::sync::Arc;
use std::time::Duration;

use peerfold::engine::Engine;
use peerfold::service::{BrowsePage, Edited, Request, Running, call};

use crate::sync::{Node, pair};
use crate::util::{pseudo_random, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn write(node: &Node, rel: &str, data: &[u8]) {
    let path = node.folder().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

async fn ask<T: peerfold::service::FromResponse>(s: &Running, request: Request) -> T {
    call(s, request).await.unwrap()
}

fn folder() -> peerfold::config::FolderId {
    "f".parse().unwrap()
}

/// b's status for the folder: (needed items, needed bytes, idle).
async fn need(b: &Running) -> (u64, u64, bool) {
    let status: Box<peerfold::status::Status> = ask(b, Request::Status).await;
    let f = &status.folders[0];
    (f.need.items, f.need.bytes, f.state == "idle")
}

async fn selective(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    let files = [
        ("Photos/2023/a.jpg", pseudo_random(300_000, 1)),
        ("Photos/2024/b.jpg", pseudo_random(300_000, 2)),
        ("Photos/x.jpg", pseudo_random(1000, 3)),
        ("Docs/d.txt", b"doc".to_vec()),
    ];
    for (name, data) in &files {
        write(&a, name, data);
    }
    // b chooses before it ever meets a: only 2024 from Photos.
    let eb = Running::new(Arc::new(b.start().await), b.id);
    let answer: Edited =
        ask(&eb, Request::Deselect { folder: folder(), paths: vec!["Photos".into()], delete_local: false })
            .await;
    assert!(answer.changed, "{answer:?}");
    let _: Edited = ask(&eb, Request::Select { folder: folder(), paths: vec!["Photos/2024".into()] }).await;
    let ignores = std::fs::read_to_string(b.folder().join(".stignore")).unwrap();
    assert!(ignores.contains("!/Photos/2024\n/Photos/*\n"), "{ignores}");
    let ea = Running::new(Arc::new(a.start().await), a.id);

    let bf = b.folder();
    wait_for(LIMIT, "b to take what it selected, need nothing and go idle", || {
        let taken = bf.join("Photos/2024/b.jpg").exists() && bf.join("Docs/d.txt").exists();
        let eb = &eb;
        async move { (taken && need(eb).await == (0, 0, true)).then_some(()) }
    })
    .await;
    // Settled, as the last pull recorded what b ignores: nothing deselected arrived.
    assert!(!bf.join("Photos/2023").exists() && !bf.join("Photos/x.jpg").exists());
    let status: Box<peerfold::status::Status> = ask(&eb, Request::Status).await;
    assert_eq!(status.folders[0].eta_s, None, "{:?}", status.folders[0]);
    // a counts b as complete: b announced what it ignores as ignored, not as missing.
    wait_for(LIMIT, "a to count b complete", || {
        let ea = &ea;
        async move {
            let status: Box<peerfold::status::Status> = ask(ea, Request::Status).await;
            let done = status.folders[0].devices.iter().find(|d| d.percent == 100.0 && d.need.items == 0);
            done.map(|_| ())
        }
    })
    .await;

    // b browses the global tree: what it left out is listed, with who has it.
    let page: BrowsePage =
        ask(&eb, Request::Browse { folder: folder(), dir: "Photos".into(), after: None, limit: None }).await;
    let seen: Vec<(&str, bool, bool)> =
        page.items.iter().map(|i| (i.name.as_str(), i.selected, i.local)).collect();
    assert_eq!(seen, [("2023", false, false), ("2024", true, true), ("x.jpg", false, false)]);
    assert_eq!(page.items[0].size, 300_000);
    assert!(page.items.iter().all(|i| i.devices == vec![a.id]), "{page:?}");
    let root: BrowsePage =
        ask(&eb, Request::Browse { folder: folder(), dir: String::new(), after: None, limit: Some(1) }).await;
    assert_eq!((root.items[0].name.as_str(), root.next.as_deref()), ("Docs", Some("Docs")));
    let root: BrowsePage =
        ask(&eb, Request::Browse { folder: folder(), dir: String::new(), after: root.next, limit: Some(1) })
            .await;
    assert!(root.items[0].name == "Photos" && root.items[0].partial && root.items[0].selected, "{root:?}");

    // Selected again: everything arrives.
    let _: Edited = ask(&eb, Request::Select { folder: folder(), paths: vec!["Photos".into()] }).await;
    let ignores = std::fs::read_to_string(b.folder().join(".stignore")).unwrap_or_default();
    assert!(!ignores.contains("Photos"), "{ignores}");
    wait_for(LIMIT, "b to take all of Photos", || {
        let all = files.iter().all(|(n, d)| std::fs::read(bf.join(n)).ok().as_ref() == Some(d));
        async move { all.then_some(()) }
    })
    .await;

    // Deselected with its local copy kept: it stays on b's disk, and the answer says so.
    let kept: Edited =
        ask(&eb, Request::Deselect { folder: folder(), paths: vec!["Docs".into()], delete_local: false })
            .await;
    assert!(kept.message.contains("is kept"), "{kept:?}");
    // Deselected with its local copy moved to the trash can: gone from b, in its .stversions.
    let moved: Edited = ask(
        &eb,
        Request::Deselect { folder: folder(), paths: vec!["Photos/2023".into()], delete_local: true },
    )
    .await;
    assert!(moved.message.contains("trash can"), "{moved:?}");
    assert!(!bf.join("Photos/2023").exists());
    let trashed = std::fs::read_dir(bf.join(".stversions/Photos/2023")).unwrap().count();
    assert_eq!(trashed, 1);
    wait_for(LIMIT, "b to need nothing again", || {
        let eb = &eb;
        async move { (need(eb).await == (0, 0, true)).then_some(()) }
    })
    .await;
    assert_eq!(std::fs::read(bf.join("Docs/d.txt")).unwrap(), b"doc");
    // Here, as status counts it: 2024's photo and x.jpg; the kept Docs is ignored, not synced.
    let status: Box<peerfold::status::Status> = ask(&eb, Request::Status).await;
    assert_eq!((status.folders[0].local.files, status.folders[0].local.bytes), (2, 301_000));

    // a hears b's index after all that (a marker b takes and announces last), and still has
    // every file: nothing b chose was announced as a delete.
    write(&a, "marker", b"m");
    let (ia, b_id) = (ea.engine().index().clone(), b.id);
    wait_for(LIMIT, "a to hear b has the marker", || {
        let ia = ia.clone();
        async move {
            let fa = ia.folder("f").await.unwrap()?;
            let db = ia.known_device(&b_id).await.unwrap()?;
            ia.remote_file(fa, db, "marker").await.unwrap().map(|_| ())
        }
    })
    .await;
    for (name, data) in &files {
        assert_eq!(std::fs::read(a.folder().join(name)).unwrap(), *data, "a's {name}");
    }
    let fa = ia.folder("f").await.unwrap().unwrap();
    for name in ["Photos/2023/a.jpg", "Docs/d.txt"] {
        let mine = ia.local_file(fa, name).await.unwrap().unwrap();
        assert!(!mine.deleted, "a's {name} is not deleted: {mine:?}");
        let db = ia.known_device(&b_id).await.unwrap().unwrap();
        let theirs = ia.remote_file(fa, db, name).await.unwrap().unwrap();
        assert!(theirs.invalid && !theirs.deleted, "b announced {name} as ignored: {theirs:?}");
    }
    for e in [ea, eb] {
        let engine: Arc<Engine> = Arc::clone(e.engine());
        drop(e);
        if let Ok(engine) = Arc::try_unwrap(engine) {
            engine.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deselected_subtree_is_not_downloaded_and_comes_back_when_selected_over_quic() {
    selective("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deselected_subtree_is_not_downloaded_and_comes_back_when_selected_over_tcp() {
    selective("tcp").await;
}

//! The engine's folder tasks: watcher-driven and periodic scans.

use std::time::Duration;

use peerfold::config::{Config, FolderConfig};
use peerfold::db::Index;
use peerfold::engine::{Engine, Event, FolderState};
use peerfold::identity::DeviceId;

use crate::util::{TestDir, wait_for};

const ME: DeviceId = DeviceId::from_bytes([42; 32]);

fn config_with(t: &TestDir, watch: bool, rescan_interval_s: u64) -> Config {
    std::fs::create_dir_all(t.path("f")).unwrap();
    let mut c = Config::default();
    c.options.rescan_interval_s = rescan_interval_s;
    c.options.watch_delay_ms = 50;
    c.folders.push(FolderConfig {
        watch: Some(watch),
        ..FolderConfig::new("f".parse().unwrap(), t.path("f").canonicalize().unwrap())
    });
    c
}

async fn live(index: &Index, name: &str) -> Option<peerfold::bep::FileInfo> {
    // Read-only: registering here would race the engine's own registration.
    let folder = index.folder("f").await.unwrap()?;
    index.local_file(folder, name).await.unwrap().filter(|f| !f.deleted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_file_reaches_the_index_through_the_watcher() {
    let t = TestDir::new();
    t.write("f/existing.txt", b"before start");
    let config = config_with(&t, true, 0);
    let index = Index::open(&t.path("index.db")).await.unwrap();
    let engine = Engine::start(&config, index.clone(), ME);
    let mut events = engine.subscribe();
    // The start-up scan records what was there.
    wait_for(Duration::from_secs(30), "the start-up scan", || live(&index, "existing.txt")).await;

    // No periodic rescan (interval 0): only the watcher can bring these in.
    t.write("f/new/deep/saved.txt", b"saved");
    let f = wait_for(Duration::from_secs(30), "the saved file in the index", || {
        live(&index, "new/deep/saved.txt")
    })
    .await;
    assert_eq!(f.size, 5);
    assert!(live(&index, "new/deep").await.is_some_and(|d| d.is_directory()));

    std::fs::remove_file(t.path("f/existing.txt")).unwrap();
    wait_for(Duration::from_secs(30), "the deletion in the index", || async {
        live(&index, "existing.txt").await.is_none().then_some(())
    })
    .await;

    // Front-ends heard about it.
    let mut updated = false;
    while let Ok(e) = events.try_recv() {
        updated |= matches!(e, Event::LocalIndexUpdated { .. });
    }
    assert!(updated);
    wait_for(Duration::from_secs(30), "the folder to settle", || async {
        (engine.folder_states()[0].1 == FolderState::Idle).then_some(())
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_rescan_finds_what_the_watcher_missed() {
    let t = TestDir::new();
    let config = config_with(&t, false, 1);
    let index = Index::open(&t.path("index.db")).await.unwrap();
    let engine = Engine::start(&config, index.clone(), ME);
    t.write("f/unwatched.txt", b"x");
    wait_for(Duration::from_secs(30), "a periodic rescan", || live(&index, "unwatched.txt")).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_folder_is_an_error_state_not_a_mass_delete() {
    let t = TestDir::new();
    t.write("f/keep.txt", b"k");
    let config = config_with(&t, false, 0);
    let index = Index::open(&t.path("index.db")).await.unwrap();
    let engine = Engine::start(&config, index.clone(), ME);
    wait_for(Duration::from_secs(30), "the start-up scan", || live(&index, "keep.txt")).await;
    std::fs::rename(t.path("f"), t.path("unmounted")).unwrap();
    let err = engine.scan(&"f".parse().unwrap(), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(matches!(engine.folder_states()[0].1, FolderState::Error { .. }));
    assert!(live(&index, "keep.txt").await.is_some(), "nothing was marked deleted");
    assert!(
        engine.scan(&"nope".parse().unwrap(), vec![]).await.unwrap_err().to_string().contains("no folder")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_added_paused_changed_and_removed_while_running() {
    use peerfold::config::{Change, Edit};
    let t = TestDir::new();
    let mut config = config_with(&t, false, 0);
    config.folders.clear();
    let index = Index::open(&t.path("index.db")).await.unwrap();
    std::fs::write(t.path("config.toml"), config.to_toml()).unwrap();
    let engine = Engine::start(&config, index.clone(), ME).with_config_file(t.path("config.toml"));
    assert!(engine.folder_states().is_empty());

    // Added: its directory is made, it is saved and it is scanned.
    let folder =
        FolderConfig { watch: Some(false), ..FolderConfig::new("f".parse().unwrap(), t.path("made/here")) };
    let change = engine.edit_config(Edit::AddFolder { folder: Box::new(folder) }).await.unwrap();
    assert!(matches!(change, Change::FolderAdded { .. }), "{change:?}");
    assert!(t.path("made/here/.stfolder").is_dir());
    assert!(Config::load(&t.path("config.toml")).unwrap().folder(&"f".parse().unwrap()).is_some());
    t.write("made/here/a.txt", b"a");
    engine.scan(&"f".parse().unwrap(), vec![]).await.unwrap();
    assert!(live(&index, "a.txt").await.is_some());

    // A refused change changes nothing.
    let taken = FolderConfig::new("f".parse().unwrap(), t.path("other"));
    let err = engine.edit_config(Edit::AddFolder { folder: Box::new(taken) }).await.unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(!t.path("other").exists());
    assert_eq!(engine.config().folders.len(), 1);

    // Paused: its task stops, and scanning it says why.
    engine.edit_config(Edit::PauseFolder { id: "f".parse().unwrap(), paused: true }).await.unwrap();
    assert!(engine.folder_states().is_empty());
    let err = engine.scan(&"f".parse().unwrap(), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("paused"), "{err}");

    // Resumed, its task runs again (the start-up scan finds what changed meanwhile).
    t.write("made/here/b.txt", b"b");
    engine.edit_config(Edit::PauseFolder { id: "f".parse().unwrap(), paused: false }).await.unwrap();
    wait_for(Duration::from_secs(30), "the resumed folder's scan", || live(&index, "b.txt")).await;

    // Removed: no task, no folder, files untouched.
    engine.edit_config(Edit::RemoveFolder { id: "f".parse().unwrap() }).await.unwrap();
    assert!(engine.folder_states().is_empty());
    assert!(engine.scan(&"f".parse().unwrap(), vec![]).await.unwrap_err().to_string().contains("no folder"));
    assert!(t.path("made/here/a.txt").is_file());
    assert!(Config::load(&t.path("config.toml")).unwrap().folders.is_empty());
    engine.shutdown().await;
}

/// A folder removed while no engine ran has its rows dropped at start-up, while the first edit
/// may already come: added back at once, the folder must scan (no stale row number from the
/// rows being dropped: `Scan(Db(Query(RowNotFound)))`) and start afresh. Many entries make the
/// drop long enough that, unless the edit waits for it, the edit lands in the middle of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_removed_while_stopped_and_added_back_at_once_scans() {
    use peerfold::config::Edit;
    let t = TestDir::new();
    let index = Index::open(&t.path("index.db")).await.unwrap();
    {
        let old = index.register_folder("f").await.unwrap();
        let mut entries: Vec<_> =
            (0..40_000).map(|i| crate::hostile::file(&format!("old/{i:05}"), b"old", ME)).collect();
        index.apply_local(old, &mut entries).await.unwrap();
    }
    let mut config = config_with(&t, false, 0);
    config.folders.clear();
    let engine = Engine::start(&config, index.clone(), ME);

    t.write("f/a.txt", b"a");
    let folder = FolderConfig { watch: Some(false), ..FolderConfig::new("f".parse().unwrap(), t.path("f")) };
    engine.edit_config(Edit::AddFolder { folder: Box::new(folder) }).await.unwrap();
    engine.scan(&"f".parse().unwrap(), vec![]).await.unwrap();
    assert!(live(&index, "a.txt").await.is_some());
    // The drop went first: the folder holds what its scan found, and nothing of before.
    engine.shutdown().await;
    let index = Index::open(&t.path("index.db")).await.unwrap();
    assert!(live(&index, "a.txt").await.is_some());
    assert!(live(&index, "old/00000").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_delete_waits_until_the_files_are_back() {
    let t = TestDir::new();
    for i in 0..12 {
        t.write(&format!("f/file{i}"), format!("file {i}").as_bytes());
    }
    // Scans only when asked: the test decides which scan sees what.
    let config = config_with(&t, false, 0);
    let index = Index::open(&t.path("index.db")).await.unwrap();
    let engine = Engine::start(&config, index.clone(), ME);
    let folder: peerfold::config::FolderId = "f".parse().unwrap();
    wait_for(Duration::from_secs(30), "the start-up scan", || live(&index, "file11")).await;

    let aside = t.path("aside");
    std::fs::rename(t.path("f"), &aside).unwrap();
    std::fs::create_dir(t.path("f")).unwrap();
    std::fs::rename(aside.join(".stfolder"), t.path("f/.stfolder")).unwrap();
    let mut events = engine.subscribe();
    let s = engine.scan(&folder, Vec::new()).await.unwrap();
    let held = s.held_deletes.expect("a mass delete");
    assert_eq!((held.deleted, held.total), (12, 12));
    assert_eq!(engine.folder_states()[0].1, FolderState::WaitingForConfirmation { deleted: 12, total: 12 });
    // Front-ends see it as they see the other states.
    assert_eq!(
        serde_json::to_value(&engine.folder_states()[0].1).unwrap(),
        serde_json::json!({ "state": "waiting-for-confirmation", "deleted": 12, "total": 12 })
    );
    let mut heard = false;
    while let Ok(e) = events.try_recv() {
        heard |= matches!(e, Event::MassDeleteHeld { deleted: 12, total: 12, .. });
    }
    assert!(heard, "front-ends are told");
    assert!(live(&index, "file3").await.is_some(), "no deletion recorded");

    // The files come back; a scan of one path looks at the whole folder and ends the wait.
    for i in 0..12 {
        std::fs::rename(aside.join(format!("file{i}")), t.path(&format!("f/file{i}"))).unwrap();
    }
    let s = engine.scan(&folder, vec!["file0".into()]).await.unwrap();
    assert_eq!((s.held_deletes, s.changed), (None, 0));
    // Idle, or already pulling what waited.
    assert!(!matches!(engine.folder_states()[0].1, FolderState::WaitingForConfirmation { .. }));
    assert!(matches!(
        engine.confirm_deletes(&folder).await,
        Err(peerfold::engine::EngineError::NoDeletesHeld(_))
    ));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_and_the_rescan_interval_change_while_running() {
    let t = TestDir::new();
    // Neither watched nor rescanned: after the start-up scan, nothing new is found.
    let config = config_with(&t, false, 0);
    let index = Index::open(&t.path("index.db")).await.unwrap();
    let engine = Engine::start(&config, index.clone(), ME);
    let update = |rescan_interval_s, watch| peerfold::config::Edit::UpdateFolder {
        id: "f".parse().unwrap(),
        label: None,
        versioning: None,
        devices: None,
        rescan_interval_s,
        watch,
    };
    // A restarted task scans once at start; a file saved after that scan only the watcher
    // (or a periodic rescan) finds.
    let restarted = |edit| {
        let engine = &engine;
        async move {
            let mut events = engine.subscribe();
            let change = engine.edit_config(edit).await.unwrap();
            assert!(change.changed(), "{change}");
            wait_for(Duration::from_secs(30), "the restarted task's scan", || {
                let mut idle = false;
                while let Ok(e) = events.try_recv() {
                    idle |= matches!(e, Event::StateChanged { state: FolderState::Idle, .. });
                }
                async move { idle.then_some(()) }
            })
            .await;
        }
    };
    restarted(update(None, Some(true))).await;
    t.write("f/watched.txt", b"w");
    wait_for(Duration::from_secs(30), "the watcher to find it", || live(&index, "watched.txt")).await;

    // Watching off and a one-second interval: the periodic rescan finds the next one.
    restarted(update(Some(1), Some(false))).await;
    assert_eq!(engine.config().folders[0].rescan_interval_s, Some(1));
    t.write("f/rescanned.txt", b"r");
    wait_for(Duration::from_secs(30), "a periodic rescan", || live(&index, "rescanned.txt")).await;
    engine.shutdown().await;
}

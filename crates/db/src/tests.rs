//! Every query here runs against a real SQLite database (in memory or in a temp dir).

use super::*;
use crate::bep::{BlockInfo, FileInfo, FileType, Vector};
use crate::identity::ShortId;

const ME: ShortId = ShortId(0x1234_5678_9abc_def0);

fn file(name: &str, blocks: &[u8]) -> FileInfo {
    let blocks: Vec<BlockInfo> = blocks
        .iter()
        .enumerate()
        .map(|(i, &b)| BlockInfo { offset: i as u64 * 131072, size: 131072, hash: [b; 32] })
        .collect();
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: blocks.len() as u64 * 131072,
        permissions: 0o644,
        no_permissions: false,
        modified_s: 1_700_000_000,
        modified_ns: 5,
        modified_by: ME,
        deleted: false,
        invalid: false,
        version: Vector::new().updated(ME, 1_700_000_000),
        sequence: 0,
        block_size: 131072,
        blocks,
        symlink_target: String::new(),
    }
}

#[tokio::test]
async fn migrations_apply_on_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = Index::open(&path).await.unwrap();
    assert_eq!(index.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6]);
    let f = index.register_folder("default").await.unwrap();
    assert_eq!(index.folder_sequence(f).await.unwrap(), 0);
    assert_ne!(index.folder_index_id(f).await.unwrap(), 0);
    index.close().await;
    // Reopening applies nothing twice and keeps the data.
    let index = Index::open(&path).await.unwrap();
    assert_eq!(index.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(index.register_folder("default").await.unwrap(), f);
}

#[tokio::test]
async fn index_uses_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.db")).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&index.read).await.unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn apply_local_assigns_sequences_and_round_trips() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("f").await.unwrap();
    let mut batch = vec![file("a", &[1, 2]), file("dir/b", &[3])];
    assert_eq!(index.apply_local(f, &mut batch).await.unwrap(), 2);
    assert_eq!((batch[0].sequence, batch[1].sequence), (1, 2));
    assert_eq!(index.local_file(f, "a").await.unwrap().as_ref(), Some(&batch[0]));
    assert_eq!(index.local_file(f, "dir/b").await.unwrap().as_ref(), Some(&batch[1]));
    assert_eq!(index.local_file(f, "nope").await.unwrap(), None);

    // A second change to "a" moves it to the end of the sequence.
    let mut again = vec![file("a", &[9])];
    assert_eq!(index.apply_local(f, &mut again).await.unwrap(), 3);
    let since: Vec<_> =
        index.local_since(f, 1, 100).await.unwrap().into_iter().map(|f| (f.name, f.sequence)).collect();
    assert_eq!(since, [("dir/b".to_string(), 2), ("a".to_string(), 3)]);
}

#[tokio::test]
async fn children_and_subtree_queries() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("f").await.unwrap();
    let mut batch: Vec<_> =
        ["a", "a/x", "a/y", "a/y/z", "a-b", "a.c", "b"].iter().map(|n| file(n, &[1])).collect();
    index.apply_local(f, &mut batch).await.unwrap();
    let names = |v: Vec<FileInfo>| v.into_iter().map(|f| f.name).collect::<Vec<_>>();
    assert_eq!(names(index.local_children(f, "").await.unwrap()), ["a", "a-b", "a.c", "b"]);
    assert_eq!(names(index.local_children(f, "a").await.unwrap()), ["a/x", "a/y"]);
    // Below "a": not "a" itself, not the siblings "a-b" and "a.c" that sort between.
    assert_eq!(names(index.local_below(f, "a", None, 100).await.unwrap()), ["a/x", "a/y", "a/y/z"]);
    assert_eq!(names(index.local_below(f, "a", Some("a/x"), 1).await.unwrap()), ["a/y"]);
}

#[tokio::test]
async fn block_lookup_finds_local_copies_and_forgets_replaced_ones() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("f").await.unwrap();
    index.apply_local(f, &mut [file("one", &[7, 8]), file("two", &[8])]).await.unwrap();
    let mut at = index.block_locations(&[8; 32], 10).await.unwrap();
    at.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        at,
        [
            BlockLocation { folder_id: "f".into(), name: "one".into(), offset: 131072, size: 131072 },
            BlockLocation { folder_id: "f".into(), name: "two".into(), offset: 0, size: 131072 },
        ]
    );
    // "one" changes: its old block 7 is no longer anywhere, and its old list is collected.
    index.apply_local(f, &mut [file("one", &[9])]).await.unwrap();
    assert!(index.block_locations(&[7; 32], 10).await.unwrap().is_empty());
    assert_eq!(index.block_locations(&[9; 32], 10).await.unwrap().len(), 1);
    assert_eq!(index.block_locations(&[8; 32], 10).await.unwrap().len(), 1);
    let lists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blocklists").fetch_one(&index.read).await.unwrap();
    assert_eq!(lists, 2, "the replaced block list is garbage-collected");
    // The same, for many hashes at once (more than one statement's worth), deleted entries
    // left out.
    let mut asked: std::collections::HashSet<[u8; 32]> = (0..3000u32)
        .map(|i| {
            let mut h = [0xee; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h
        })
        .collect();
    asked.extend([[7; 32], [8; 32], [9; 32]]);
    let found = index.local_blocks_among(&asked).await.unwrap();
    assert_eq!(found, [[8; 32], [9; 32]].into_iter().collect());
    let mut gone = index.local_file(f, "two").await.unwrap().unwrap();
    gone.deleted = true;
    gone.blocks.clear();
    gone.size = 0;
    gone.version = gone.version.updated(ME, 1_800_000_000);
    index.apply_local(f, &mut [gone]).await.unwrap();
    assert_eq!(index.local_blocks_among(&asked).await.unwrap(), [[9; 32]].into_iter().collect());
}

#[tokio::test]
async fn identical_files_share_one_block_list() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("f").await.unwrap();
    index.apply_local(f, &mut [file("a", &[1, 2, 3]), file("b", &[1, 2, 3])]).await.unwrap();
    let lists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blocklists").fetch_one(&index.read).await.unwrap();
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks").fetch_one(&index.read).await.unwrap();
    assert_eq!((lists, blocks), (1, 3));
    // Deleting one keeps the list for the other.
    let mut gone = file("a", &[]);
    gone.deleted = true;
    index.apply_local(f, &mut [gone]).await.unwrap();
    assert_eq!(index.block_locations(&[2; 32], 10).await.unwrap().len(), 1);
    assert_eq!(index.local_file(f, "b").await.unwrap().unwrap().blocks.len(), 3);
}

#[tokio::test]
async fn counts_by_kind() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("f").await.unwrap();
    let mut dir = file("d", &[]);
    dir.file_type = FileType::Directory;
    dir.size = 0;
    let mut gone = file("x", &[]);
    gone.deleted = true;
    gone.size = 0;
    index.apply_local(f, &mut [dir, gone, file("d/a", &[1, 2]), file("d/b", &[3])]).await.unwrap();
    let c = index.local_counts(f).await.unwrap();
    assert_eq!(c, FolderCounts { files: 2, directories: 1, symlinks: 0, deleted: 1, bytes: 3 * 131072 });
}

#[tokio::test]
async fn folders_are_separate() {
    let index = Index::open_in_memory().await.unwrap();
    let (a, b) = (index.register_folder("a").await.unwrap(), index.register_folder("b").await.unwrap());
    assert_ne!(a, b);
    index.apply_local(a, &mut [file("x", &[1])]).await.unwrap();
    assert_eq!(index.folder_sequence(b).await.unwrap(), 0);
    assert!(index.local_file(b, "x").await.unwrap().is_none());
    index.apply_local(b, &mut [file("x", &[2])]).await.unwrap();
    assert_eq!(index.local_file(a, "x").await.unwrap().unwrap().blocks[0].hash, [1; 32]);
}

const PEER: ShortId = ShortId(0x7777_0000_0000_0001);

fn peer_id(n: u8) -> crate::identity::DeviceId {
    crate::identity::DeviceId::try_from([n; 32].as_slice()).unwrap()
}

/// `f` as the peer changed it: its version bumped by the peer, at sequence `seq`.
fn changed_by_peer(f: &FileInfo, seq: i64, t: u64) -> FileInfo {
    let mut g = f.clone();
    g.version = f.version.updated(PEER, t);
    g.modified_by = PEER;
    g.sequence = seq;
    g
}

/// The names of a page of needed entries, in its order.
async fn needed(
    index: &Index,
    folder: FolderIdx,
    kind: NeedKind,
    after: Option<&str>,
    limit: u32,
) -> Vec<String> {
    let page = index.needed_page(folder, kind, after, limit).await.unwrap();
    page.into_iter().map(|(g, _)| g.file.name).collect()
}

#[tokio::test]
async fn a_peers_newer_version_is_needed_and_fetchable_from_it() {
    let index = Index::open_in_memory().await.unwrap();
    let folder = index.register_folder("f").await.unwrap();
    let peer = index.device(&peer_id(1)).await.unwrap();
    assert_eq!(index.device(&peer_id(1)).await.unwrap(), peer);
    index.apply_local(folder, &mut [file("a", &[1]), file("b", &[2])]).await.unwrap();

    index.set_remote_index_id(folder, peer, 42).await.unwrap();
    let local_a = index.local_file(folder, "a").await.unwrap().unwrap();
    let mut newer = changed_by_peer(&local_a, 1, 1_800_000_000);
    newer.blocks[0].hash = [9; 32];
    let mut new_file = file("c/d", &[3]);
    new_file.version = Vector::new().updated(PEER, 5);
    new_file.sequence = 2;
    let same_b = {
        let mut b = index.local_file(folder, "b").await.unwrap().unwrap();
        b.sequence = 3;
        b
    };
    index.apply_remote(folder, peer, &[newer.clone(), new_file, same_b], true).await.unwrap();
    assert_eq!(
        index.remote_index(folder, peer).await.unwrap(),
        Some(RemoteIndex { index_id: 42, max_sequence: 3 })
    );

    let need = needed(&index, folder, NeedKind::Changes, None, 100).await;
    assert_eq!(need, vec!["a", "c/d"]);
    // The same page with everything the puller needs, in one go.
    let page = index.needed_page(folder, NeedKind::Changes, None, 100).await.unwrap();
    let names: Vec<&str> = page.iter().map(|(g, _)| g.file.name.as_str()).collect();
    assert_eq!(names, ["a", "c/d"]);
    assert_eq!((&page[0].0.file.version, &page[0].0.file.blocks), (&newer.version, &newer.blocks));
    assert_eq!(page[0].0.holders, vec![peer_id(1)]);
    assert_eq!(page[0].1.as_ref().map(|l| &l.blocks), Some(&local_a.blocks));
    assert_eq!(page[1].0.holders, vec![peer_id(1)]);
    assert!(page[1].1.is_none(), "no local entry for c/d");
    let rest = index.needed_page(folder, NeedKind::Changes, Some("a"), 100).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.file.name, "c/d");
    assert!(index.needed_page(folder, NeedKind::Changes, Some("c/d"), 100).await.unwrap().is_empty());
    let g = index.global_file(folder, "a").await.unwrap().unwrap();
    assert_eq!(g.file.version, newer.version);
    assert_eq!(g.file.blocks, newer.blocks);
    assert_eq!(g.holders, vec![peer_id(1)]);
    assert_eq!(index.need_counts(folder).await.unwrap(), NeedCounts { items: 2, bytes: 2 * 131072 });
    // The peer lacks nothing: it has the global version of every name it does not need.
    assert_eq!(index.remote_need_counts(folder, peer).await.unwrap(), NeedCounts::default());
    assert_eq!(index.global_counts(folder).await.unwrap().files, 3);

    // Pulling "a" (recording the peer's version locally) satisfies the need.
    let mut pulled = g.file.clone();
    index.apply_local(folder, std::slice::from_mut(&mut pulled)).await.unwrap();
    assert_eq!(needed(&index, folder, NeedKind::Changes, None, 100).await, vec!["c/d"]);
    assert_eq!(needed(&index, folder, NeedKind::Changes, Some("a"), 100).await, vec!["c/d"]);
}

#[tokio::test]
async fn local_changes_the_peer_lacks_are_counted_against_it() {
    let index = Index::open_in_memory().await.unwrap();
    let folder = index.register_folder("f").await.unwrap();
    let peer = index.device(&peer_id(1)).await.unwrap();
    index.apply_local(folder, &mut [file("a", &[1]), file("b", &[2, 3])]).await.unwrap();
    index.set_remote_index_id(folder, peer, 1).await.unwrap();
    let mut a = index.local_file(folder, "a").await.unwrap().unwrap();
    a.sequence = 1;
    index.apply_remote(folder, peer, &[a.clone()], false).await.unwrap();
    assert_eq!(
        index.remote_need_counts(folder, peer).await.unwrap(),
        NeedCounts { items: 1, bytes: 2 * 131072 }
    );
    // A local edit of "a" makes it needed by the peer, not by us.
    let mut edited = a.clone();
    edited.version = a.version.updated(ME, 1_900_000_000);
    edited.blocks[0].hash = [4; 32];
    index.apply_local(folder, std::slice::from_mut(&mut edited)).await.unwrap();
    assert!(needed(&index, folder, NeedKind::Changes, None, 10).await.is_empty());
    assert_eq!(index.remote_need_counts(folder, peer).await.unwrap().items, 2);
}

#[tokio::test]
async fn deletes_are_listed_deepest_first_and_a_reset_forgets_the_peer() {
    let index = Index::open_in_memory().await.unwrap();
    let folder = index.register_folder("f").await.unwrap();
    let peer = index.device(&peer_id(2)).await.unwrap();
    let mut dir = file("d", &[]);
    dir.file_type = FileType::Directory;
    dir.size = 0;
    index.apply_local(folder, &mut [dir, file("d/x", &[1]), file("d/y", &[2])]).await.unwrap();
    index.set_remote_index_id(folder, peer, 7).await.unwrap();
    let mut gone = Vec::new();
    for (i, name) in ["d", "d/x", "d/y"].into_iter().enumerate() {
        let mut f = changed_by_peer(
            &index.local_file(folder, name).await.unwrap().unwrap(),
            i as i64 + 1,
            2_000_000_000,
        );
        f.deleted = true;
        f.blocks.clear();
        f.size = 0;
        gone.push(f);
    }
    index.apply_remote(folder, peer, &gone, false).await.unwrap();
    assert!(needed(&index, folder, NeedKind::Changes, None, 10).await.is_empty());
    let deletes = needed(&index, folder, NeedKind::Deletes, None, 2).await;
    assert_eq!(deletes, vec!["d/y", "d/x"]);
    assert_eq!(needed(&index, folder, NeedKind::Deletes, Some("d/x"), 2).await, vec!["d"]);
    let page = index.needed_page(folder, NeedKind::Deletes, None, 2).await.unwrap();
    let names: Vec<&str> = page.iter().map(|(g, _)| g.file.name.as_str()).collect();
    assert_eq!(names, ["d/y", "d/x"]);
    assert!(page.iter().all(|(g, local)| g.file.deleted && local.as_ref().is_some_and(|l| !l.deleted)));
    let page = index.needed_page(folder, NeedKind::Deletes, Some("d/x"), 2).await.unwrap();
    assert_eq!(page.iter().map(|(g, _)| g.file.name.as_str()).collect::<Vec<_>>(), ["d"]);

    // A new index ID drops what we held of the peer: nothing is needed any more.
    index.set_remote_index_id(folder, peer, 8).await.unwrap();
    assert!(needed(&index, folder, NeedKind::Deletes, None, 10).await.is_empty());
    assert_eq!(index.remote_index(folder, peer).await.unwrap().unwrap().max_sequence, 0);
}

#[tokio::test]
async fn pending_devices_and_folders_are_kept_until_removed() {
    let index = Index::open_in_memory().await.unwrap();
    let p = PendingDevice {
        device: peer_id(3),
        name: "laptop".into(),
        address: "tcp://127.0.0.1:1".into(),
        seen_at: 5,
    };
    index.add_pending_device(&p).await.unwrap();
    index.add_pending_device(&PendingDevice { seen_at: 6, ..p.clone() }).await.unwrap();
    assert_eq!(index.pending_devices().await.unwrap(), vec![PendingDevice { seen_at: 6, ..p.clone() }]);
    assert!(index.remove_pending_device(&peer_id(3)).await.unwrap());
    assert!(index.pending_devices().await.unwrap().is_empty());

    let f = PendingFolder { device: peer_id(3), folder: "photos".into(), label: "Photos".into(), seen_at: 1 };
    index.add_pending_folder(&f).await.unwrap();
    assert_eq!(index.pending_folders().await.unwrap(), vec![f]);
    index.remove_pending_folder("photos", None).await.unwrap();
    assert!(index.pending_folders().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pull_intent_lasts_until_the_name_is_next_written() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.register_folder("default").await.unwrap();
    assert!(!index.has_pull_intents(f).await.unwrap());
    let pulled = file("a", &[1, 2]);
    let intent = PullIntent {
        name: "a".into(),
        version: Vector::new().updated(ShortId(7), 100),
        modified_by: ShortId(7),
        blocklist_hash: crate::bep::blocklist_hash(&pulled.blocks),
    };
    index.note_pulls(f, std::slice::from_ref(&intent)).await.unwrap();
    assert!(index.has_pull_intents(f).await.unwrap());
    assert_eq!(index.pull_intent(f, "a").await.unwrap(), Some(intent));
    assert_eq!(index.pull_intent(f, "b").await.unwrap(), None);
    // Writing another name leaves it; writing this one forgets it.
    index.apply_local(f, &mut [file("b", &[3])]).await.unwrap();
    assert!(index.has_pull_intents(f).await.unwrap());
    index.apply_local(f, &mut [pulled]).await.unwrap();
    assert!(!index.has_pull_intents(f).await.unwrap());

    // A page of them at once, more than one statement holds; noting a name again replaces it.
    let many: Vec<PullIntent> = (0..1300u32)
        .map(|i| PullIntent {
            name: format!("d/{i:05}"),
            version: Vector::new().updated(ShortId(7), u64::from(i) + 1),
            modified_by: ShortId(7),
            blocklist_hash: [(i % 251) as u8; 32],
        })
        .collect();
    index.note_pulls(f, &many[..700]).await.unwrap();
    index.note_pulls(f, &many[600..]).await.unwrap();
    for i in [0usize, 511, 512, 699, 700, 1299] {
        assert_eq!(index.pull_intent(f, &many[i].name).await.unwrap().as_ref(), Some(&many[i]), "intent {i}");
    }
}

#[tokio::test]
async fn looking_a_folder_up_never_registers_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = Index::open(&path).await.unwrap();
    assert_eq!(index.folder("f").await.unwrap(), None);
    assert!(index.folder_ids().await.unwrap().is_empty(), "a lookup wrote nothing");
    let f = index.register_folder("f").await.unwrap();
    assert_eq!(index.folder("f").await.unwrap(), Some(f));
    assert_eq!(index.folder_ids().await.unwrap(), ["f"]);
    index.close().await;
    // A read-only index answers lookups (what `peerfold check` and status use).
    let ro = Index::open_read_only(&path).await.unwrap();
    assert_eq!(ro.folder("f").await.unwrap(), Some(f));
    assert_eq!(ro.folder("g").await.unwrap(), None);
    assert!(ro.register_folder("g").await.is_err(), "writing is refused there");
}

#[tokio::test]
async fn dropping_a_folder_deletes_all_its_rows_and_only_its_block_lists() {
    let index = Index::open_in_memory().await.unwrap();
    let (a, b) = (index.register_folder("a").await.unwrap(), index.register_folder("b").await.unwrap());
    let peer = index.device(&peer_id(1)).await.unwrap();
    index.apply_local(a, &mut [file("x", &[1, 2]), file("y", &[5])]).await.unwrap();
    index.apply_local(b, &mut [file("y", &[5])]).await.unwrap();
    let before_a = index.blocklist_count().await.unwrap();
    index.set_remote_index_id(a, peer, 42).await.unwrap();
    let x = index.local_file(a, "x").await.unwrap().unwrap();
    index.apply_remote(a, peer, &[changed_by_peer(&x, 1, 1_800_000_000)], true).await.unwrap();
    index
        .record_conflict(a, &Conflict { copy_name: "x.sync-conflict".into(), name: "x".into(), at: 1 })
        .await
        .unwrap();
    let intent = PullIntent {
        name: "z".into(),
        version: Vector::new().updated(PEER, 1),
        modified_by: PEER,
        blocklist_hash: [3; 32],
    };
    index.note_pulls(a, &[intent]).await.unwrap();
    assert!(index.folder_row_count(a).await.unwrap() >= 7, "every kind of row is there");
    let rows_b = index.folder_row_count(b).await.unwrap();

    assert!(index.drop_folder("a").await.unwrap());
    assert_eq!(index.folder_row_count(a).await.unwrap(), 0);
    assert_eq!(index.folder("a").await.unwrap(), None);
    assert_eq!(index.folder_ids().await.unwrap(), ["b"]);
    assert!(!index.drop_folder("a").await.unwrap(), "nothing left to drop");
    // What still holds a's old row number gets a clear error, not a missing row.
    assert!(matches!(index.folder_sequence(a).await, Err(DbError::NoSuchFolder(f)) if f == a));
    assert!(matches!(index.folder_index_id(a).await, Err(DbError::NoSuchFolder(_))));
    assert!(matches!(index.local_writer(a).await.err(), Some(DbError::NoSuchFolder(_))));
    // b is untouched, and keeps the block list it shared with a; x's list is gone.
    assert_eq!(index.folder_row_count(b).await.unwrap(), rows_b);
    assert!(index.blocklist_count().await.unwrap() < before_a);
    assert_eq!(index.block_locations(&[5; 32], 10).await.unwrap().len(), 1);
    assert!(index.block_locations(&[1; 32], 10).await.unwrap().is_empty());
    // A folder registered again starts empty, whatever row number it gets.
    let again = index.register_folder("a").await.unwrap();
    assert_eq!(index.folder_row_count(again).await.unwrap(), 1);
    assert_eq!(index.local_counts(again).await.unwrap(), FolderCounts::default());

    // Dropping all but some: what a starting engine does for folders removed meanwhile.
    assert_eq!(index.drop_folders_except(&["b"]).await.unwrap(), ["a"]);
    assert_eq!(index.folder_ids().await.unwrap(), ["b"]);
}

#[tokio::test]
async fn an_invitation_is_spent_once_per_use_and_never_after_it_expires() {
    let index = Index::open_in_memory().await.unwrap();
    let invite = crate::StoredInvite {
        id: vec![1; 16],
        secret: vec![2; 32],
        folders: vec!["f".into(), "g h".into()],
        created_at: 100,
        expires_at: 200,
        uses_left: 1,
    };
    index.insert_invite(&invite).await.unwrap();
    assert_eq!(index.invite(&[1; 16]).await.unwrap(), Some(invite.clone()));
    assert_eq!(index.invite(&[9; 16]).await.unwrap(), None);
    assert!(!index.spend_invite(&[1; 16], 200).await.unwrap(), "expired at 200");
    assert!(index.spend_invite(&[1; 16], 150).await.unwrap());
    assert!(!index.spend_invite(&[1; 16], 150).await.unwrap(), "one use only");
    assert_eq!(index.invite(&[1; 16]).await.unwrap().unwrap().uses_left, 0);
}

/// Browsing lists a directory's children from every device's index, with sizes (a
/// directory's subtree total), this device's presence and the peers holding each.
#[tokio::test]
async fn browsing_lists_children_from_every_index() {
    let index = Index::open_in_memory().await.unwrap();
    let folder = index.register_folder("f").await.unwrap();
    let peer = index.device(&peer_id(1)).await.unwrap();
    let mut dir = file("Photos", &[]);
    dir.file_type = FileType::Directory;
    dir.size = 0;
    let mut sub = file("Photos/2024", &[]);
    sub.file_type = FileType::Directory;
    sub.size = 0;
    index
        .apply_local(folder, &mut [dir.clone(), file("Photos/a.jpg", &[1]), file("top.txt", &[2])])
        .await
        .unwrap();
    index.set_remote_index_id(folder, peer, 1).await.unwrap();
    let theirs = [
        FileInfo { sequence: 1, ..dir },
        FileInfo { sequence: 2, ..sub },
        FileInfo { sequence: 3, ..file("Photos/2024/x.jpg", &[3, 4]) },
        FileInfo { sequence: 4, ..file("Photos/2024/deeper/y.jpg", &[5]) },
    ];
    index.apply_remote(folder, peer, &theirs, true).await.unwrap();

    let root = index.browse(folder, "", None, 10).await.unwrap();
    let names: Vec<(&str, u64, bool)> =
        root.entries.iter().map(|e| (e.name.as_str(), e.size, e.local)).collect();
    assert_eq!(names, [("Photos", 4 * 131072, true), ("top.txt", 131072, true)]);
    assert_eq!(root.entries[0].holders, vec![peer_id(1)]);
    assert!(root.entries[1].holders.is_empty(), "only this device has top.txt");
    assert_eq!(root.next, None);

    let photos = index.browse(folder, "Photos", None, 1).await.unwrap();
    assert_eq!(photos.entries.len(), 1);
    assert_eq!((photos.entries[0].name.as_str(), photos.entries[0].local), ("Photos/2024", false));
    assert_eq!(photos.entries[0].size, 3 * 131072);
    assert_eq!(photos.entries[0].file_type, FileType::Directory);
    assert_eq!(photos.next.as_deref(), Some("Photos/2024"));
    let rest = index.browse(folder, "Photos", photos.next.as_deref(), 1).await.unwrap();
    assert_eq!(rest.entries[0].name, "Photos/a.jpg");
    assert!(rest.entries[0].local && rest.entries[0].holders.is_empty());
    let end = index.browse(folder, "Photos", rest.next.as_deref(), 1).await.unwrap();
    assert!(end.entries.is_empty() && end.next.is_none(), "{end:?}");
}

/// A directory with 100,000 children: a page is `limit` rows, read by range on both parent
/// indexes (never a scan of the folder's entries).
#[tokio::test]
async fn browsing_a_directory_of_100k_children_reads_one_page() {
    let index = Index::open_in_memory().await.unwrap();
    let folder = index.register_folder("f").await.unwrap();
    let peer = index.device(&peer_id(1)).await.unwrap();
    index.set_remote_index_id(folder, peer, 1).await.unwrap();
    let mut local: Vec<FileInfo> = (0..50_000).map(|i| file(&format!("big/l{i:06}"), &[1])).collect();
    for chunk in local.chunks_mut(5000) {
        index.apply_local(folder, chunk).await.unwrap();
    }
    let remote: Vec<FileInfo> =
        (0..50_000).map(|i| FileInfo { sequence: i + 1, ..file(&format!("big/r{i:06}"), &[2]) }).collect();
    for chunk in remote.chunks(5000) {
        index.apply_remote(folder, peer, chunk, false).await.unwrap();
    }
    let page = index.browse(folder, "big", Some("big/l049990"), 100).await.unwrap();
    assert_eq!(page.entries.len(), 100);
    assert_eq!(page.entries[0].name, "big/l049991");
    assert_eq!(page.entries[9].name, "big/r000000");
    assert!(page.entries[9].holders == vec![peer_id(1)] && !page.entries[9].local);
    assert_eq!(page.next.as_deref(), Some("big/r000090"));

    // Both halves are range searches on their parent index, merged in order: no SCAN of
    // `files`, and no temporary B-tree holding the directory's names to sort them.
    use sqlx::Row as _;
    let rows = sqlx::query(browse::BROWSE_PLAN)
        .bind(0i64)
        .bind("big")
        .bind("")
        .bind(100i64)
        .fetch_all(&index.read)
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(3).unwrap()).collect();
    let text = plan.join("\n");
    assert!(text.contains("files_local_by_parent") && text.contains("files_remote_by_parent"), "{text}");
    assert!(!text.contains("SCAN files") && !text.contains("TEMP B-TREE"), "{text}");
}

/// The counts the triggers keep, against counting the rows: equal after every kind of write.
async fn assert_counts_exact(index: &Index, folder: FolderIdx, after: &str) {
    let rows = sqlx::query(
        "SELECT type, deleted, invalid, count(*), total(size) FROM files
         WHERE folder_idx = ? AND device_idx = 0 GROUP BY type, deleted, invalid",
    )
    .bind(folder.0)
    .fetch_all(&index.read)
    .await
    .unwrap();
    let counted = FolderCounts::from_rows(&rows).unwrap();
    assert_eq!(index.local_counts(folder).await.unwrap(), counted, "local counts after {after}");
    let row = sqlx::query(
        "SELECT count(*), total(CASE WHEN deleted THEN 0 ELSE size END) FROM globals
         WHERE folder_idx = ? AND need",
    )
    .bind(folder.0)
    .fetch_one(&index.read)
    .await
    .unwrap();
    let counted = NeedCounts { items: row.get::<i64, _>(0) as u64, bytes: row.get::<f64, _>(1) as u64 };
    assert_eq!(index.need_counts(folder).await.unwrap(), counted, "need counts after {after}");
}

#[tokio::test]
async fn the_kept_counts_follow_every_kind_of_write() {
    let index = Index::open_in_memory().await.unwrap();
    let (f, other) = (index.register_folder("f").await.unwrap(), index.register_folder("o").await.unwrap());
    let peer = index.device(&peer_id(1)).await.unwrap();
    assert_counts_exact(&index, f, "nothing").await;
    index.apply_local(other, &mut [file("elsewhere", &[7, 8])]).await.unwrap();

    let mut dir = file("d", &[]);
    dir.file_type = FileType::Directory;
    dir.size = 0;
    let mut link = file("l", &[]);
    link.file_type = FileType::Symlink;
    link.size = 0;
    link.symlink_target = "d".into();
    index.apply_local(f, &mut [dir, link, file("d/a", &[1, 2]), file("d/b", &[3])]).await.unwrap();
    assert_counts_exact(&index, f, "new local entries").await;
    assert_eq!(index.local_counts(f).await.unwrap().files, 2);

    // Rewritten in place: a bigger file, a deletion, an ignored name.
    let mut a = index.local_file(f, "d/a").await.unwrap().unwrap();
    a.blocks.push(BlockInfo { offset: 2 * 131072, size: 131072, hash: [4; 32] });
    a.size += 131072;
    a.version = a.version.updated(ME, 1_700_000_001);
    let mut b = index.local_file(f, "d/b").await.unwrap().unwrap();
    b.deleted = true;
    b.blocks.clear();
    b.size = 0;
    b.version = b.version.updated(ME, 1_700_000_002);
    let mut ignored = file("ignored", &[5]);
    ignored.invalid = true;
    index.apply_local(f, &mut [a.clone(), b, ignored]).await.unwrap();
    assert_counts_exact(&index, f, "local rewrites").await;

    // A peer's index: some names needed, one it deletes.
    index.set_remote_index_id(f, peer, 42).await.unwrap();
    let mut newer = changed_by_peer(&a, 1, 1_800_000_000);
    newer.blocks[0].hash = [9; 32];
    let mut fresh = file("c", &[6]);
    fresh.version = Vector::new().updated(PEER, 5);
    fresh.sequence = 2;
    let mut gone = changed_by_peer(&index.local_file(f, "l").await.unwrap().unwrap(), 3, 1_800_000_000);
    gone.deleted = true;
    index.apply_remote(f, peer, &[newer.clone(), fresh.clone(), gone], true).await.unwrap();
    assert_counts_exact(&index, f, "a peer's index").await;
    assert_eq!(index.need_counts(f).await.unwrap().items, 3);

    // An update that makes a needed name needed at another size, then pulling it.
    let mut newest = changed_by_peer(&newer, 4, 1_800_000_001);
    newest.blocks.truncate(1);
    newest.size = 131072;
    index.apply_remote(f, peer, &[newest.clone()], false).await.unwrap();
    assert_counts_exact(&index, f, "a needed name changed again").await;
    index.apply_local(f, std::slice::from_mut(&mut newest)).await.unwrap();
    assert_counts_exact(&index, f, "a pull").await;
    assert_eq!(index.need_counts(f).await.unwrap().items, 2);

    // The peer's index reset, then forgotten: nothing needed from it.
    index.apply_remote(f, peer, &[fresh], true).await.unwrap();
    assert_counts_exact(&index, f, "a replacing index").await;
    index.set_remote_index_id(f, peer, 43).await.unwrap();
    assert_counts_exact(&index, f, "a new index ID").await;
    index.apply_remote(f, peer, &[changed_by_peer(&a, 1, 1_900_000_000)], false).await.unwrap();
    index.forget_remote(f, peer).await.unwrap();
    assert_counts_exact(&index, f, "a forgotten peer").await;
    assert_eq!(index.need_counts(f).await.unwrap(), NeedCounts::default());

    // The other folder was never touched by any of it; dropping f leaves it whole.
    assert_counts_exact(&index, other, "writes to another folder").await;
    assert_eq!(index.local_counts(other).await.unwrap().files, 1);
    assert!(index.drop_folder("f").await.unwrap());
    assert_eq!(index.local_counts(f).await.unwrap(), FolderCounts::default());
    let again = index.register_folder("f").await.unwrap();
    assert_counts_exact(&index, again, "dropped and registered again").await;
    assert_eq!(index.local_counts(again).await.unwrap(), FolderCounts::default());
    assert_counts_exact(&index, other, "dropping another folder").await;
}

#[tokio::test]
async fn an_index_from_before_the_kept_counts_gets_them_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    // The schema as it was, with rows written the way that version wrote them.
    let old = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
        .await
        .unwrap();
    MIGRATOR.run_to(5, &old).await.unwrap();
    sqlx::query(
        "INSERT INTO folders (idx, folder_id, index_id) VALUES (1, 'f', 7);
         INSERT INTO devices (idx, device_id) VALUES (1, zeroblob(32));
         INSERT INTO files (folder_idx, device_idx, sequence, name, parent, type, size, permissions,
             no_permissions, modified_s, modified_ns, modified_by, deleted, invalid, version, block_size)
         VALUES (1, 0, 1, 'a', '', 0, 100, 420, 0, 0, 0, 0, 0, 0, x'', 131072),
                (1, 0, 2, 'b', '', 0, 50, 420, 0, 0, 0, 0, 1, 0, x'', 131072),
                (1, 0, 3, 'd', '', 1, 0, 493, 0, 0, 0, 0, 0, 0, x'', 131072),
                (1, 1, 1, 'c', '', 0, 70, 420, 0, 0, 0, 0, 0, 0, x'', 131072);
         INSERT INTO globals (folder_idx, name, device_idx, type, deleted, size, need)
         VALUES (1, 'a', 0, 0, 0, 100, 0), (1, 'c', 1, 0, 0, 70, 1), (1, 'e', 1, 0, 1, 30, 1);",
    )
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let index = Index::open(&path).await.unwrap();
    assert_eq!(index.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6]);
    let f = index.folder("f").await.unwrap().unwrap();
    assert_eq!(
        index.local_counts(f).await.unwrap(),
        FolderCounts { files: 1, directories: 1, symlinks: 0, deleted: 1, bytes: 100 }
    );
    assert_eq!(index.need_counts(f).await.unwrap(), NeedCounts { items: 2, bytes: 70 });
    assert_counts_exact(&index, f, "the migration").await;
}

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
    assert_eq!(index.applied_migrations().await.unwrap(), vec![1]);
    let f = index.folder("default").await.unwrap();
    assert_eq!(index.folder_sequence(f).await.unwrap(), 0);
    assert_ne!(index.folder_index_id(f).await.unwrap(), 0);
    index.close().await;
    // Reopening applies nothing twice and keeps the data.
    let index = Index::open(&path).await.unwrap();
    assert_eq!(index.applied_migrations().await.unwrap(), vec![1]);
    assert_eq!(index.folder("default").await.unwrap(), f);
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
    let f = index.folder("f").await.unwrap();
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
    let f = index.folder("f").await.unwrap();
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
    let f = index.folder("f").await.unwrap();
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
}

#[tokio::test]
async fn identical_files_share_one_block_list() {
    let index = Index::open_in_memory().await.unwrap();
    let f = index.folder("f").await.unwrap();
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
    let f = index.folder("f").await.unwrap();
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
    let (a, b) = (index.folder("a").await.unwrap(), index.folder("b").await.unwrap());
    assert_ne!(a, b);
    index.apply_local(a, &mut [file("x", &[1])]).await.unwrap();
    assert_eq!(index.folder_sequence(b).await.unwrap(), 0);
    assert!(index.local_file(b, "x").await.unwrap().is_none());
    index.apply_local(b, &mut [file("x", &[2])]).await.unwrap();
    assert_eq!(index.local_file(a, "x").await.unwrap().unwrap().blocks[0].hash, [1; 32]);
}

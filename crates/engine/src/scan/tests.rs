//! Scanner tests on real temporary folders and a real SQLite index.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::bep::EMPTY_BLOCK_HASH;
use crate::clock::unix_now;

const ME: ShortId = ShortId(0x00c0_ffee_0000_0001);

struct Fixture {
    dir: tempfile::TempDir,
    index: Index,
    folder: FolderIdx,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        let index = Index::open(&dir.path().join("index.db")).await.unwrap();
        let folder = index.register_folder("test").await.unwrap();
        Self { dir, index, folder }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    fn write(&self, name: &str, data: &[u8]) {
        let p = self.path(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }

    /// Changes `name`'s content and moves its mtime, so the change is visible even when the
    /// kernel's coarse clock would give the same timestamp.
    fn rewrite(&self, name: &str, data: &[u8], mtime_offset_s: u64) {
        fs::write(self.path(name), data).unwrap();
        let t = SystemTime::now() + Duration::from_secs(mtime_offset_s);
        fs::File::options().write(true).open(self.path(name)).unwrap().set_modified(t).unwrap();
    }

    fn scanner(&self) -> Scanner {
        Scanner::new(self.index.clone(), self.folder, self.root(), ME)
    }

    async fn scan(&self) -> ScanSummary {
        self.scanner().scan(&[]).await.unwrap()
    }

    async fn get(&self, name: &str) -> Option<FileInfo> {
        self.index.local_file(self.folder, name).await.unwrap()
    }

    async fn live(&self, name: &str) -> FileInfo {
        let f = self.get(name).await.unwrap_or_else(|| panic!("{name} is not in the index"));
        assert!(!f.deleted && !f.invalid, "{name} is not live: {f:?}");
        f
    }
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_scan_records_a_mixed_tree() {
    let fx = Fixture::new().await;
    let big: Vec<u8> = (0..(3 * 131072 + 100)).map(|i: u32| (i % 253) as u8).collect();
    fx.write("a/b/big.bin", &big);
    fx.write("a/empty.txt", b"");
    fx.write("top.txt", b"hello world\n");
    #[cfg(unix)]
    std::os::unix::fs::symlink("top.txt", fx.path("link")).unwrap();

    let s = fx.scan().await;
    assert_eq!((s.files, s.directories), (3, 2));
    assert_eq!(s.bytes, big.len() as u64 + 12);
    assert_eq!(s.hashed_files, 3);
    assert!(s.issues.is_empty(), "{:?}", s.issues);

    let f = fx.live("a/b/big.bin").await;
    assert_eq!((f.size, f.block_size, f.blocks.len()), (big.len() as u64, 131072, 4));
    for (b, chunk) in f.blocks.iter().zip(big.chunks(131072)) {
        assert_eq!(b.hash, sha(chunk));
    }
    let e = fx.live("a/empty.txt").await;
    assert_eq!(e.blocks, [bep::BlockInfo { offset: 0, size: 0, hash: EMPTY_BLOCK_HASH }]);
    let t = fx.live("top.txt").await;
    assert_eq!(t.blocks[0].hash, sha(b"hello world\n"));
    assert_eq!(t.modified_by, ME);
    assert!(fx.live("a").await.is_directory());
    assert!(fx.live("a/b").await.is_directory());
    #[cfg(unix)]
    {
        let l = fx.live("link").await;
        assert!(l.is_symlink() && l.no_permissions);
        assert_eq!(l.symlink_target, "top.txt");
        assert!(l.blocks.is_empty());
        assert_eq!(s.symlinks, 1);
    }
    // Every change got its own sequence number.
    let n = s.changed as i64;
    assert_eq!(s.sequence, n);
    assert_eq!(fx.index.local_since(fx.folder, 0, 100).await.unwrap().len() as i64, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_rescan_records_nothing() {
    let fx = Fixture::new().await;
    for i in 0..50 {
        fx.write(&format!("d{}/f{i}", i % 5), format!("file {i}").as_bytes());
    }
    let first = fx.scan().await;
    let again = fx.scan().await;
    assert_eq!(again.changed, 0);
    assert_eq!(again.hashed_files, 0);
    assert_eq!(again.sequence, first.sequence);
    assert_eq!(again.files, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn modification_rehashes_and_bumps_version_and_sequence() {
    let fx = Fixture::new().await;
    fx.write("f.txt", b"one");
    fx.write("other.txt", b"untouched");
    fx.scan().await;
    let before = fx.live("f.txt").await;
    let other = fx.live("other.txt").await;

    fx.rewrite("f.txt", b"two!", 5);
    let s = fx.scan().await;
    assert_eq!((s.changed, s.hashed_files), (1, 1));
    let after = fx.live("f.txt").await;
    assert_eq!(after.blocks[0].hash, sha(b"two!"));
    assert!(after.sequence > before.sequence);
    assert_eq!(after.version.compare(&before.version), crate::bep::VectorOrdering::Greater);
    // max(old + 1, now): the counter is at least the clock and beyond the old counter.
    let c = after.version.counter(ME);
    assert!(c > before.version.counter(ME) && c >= unix_now() - 60);
    assert_eq!(fx.live("other.txt").await, other, "an unchanged file keeps its entry");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_bump_outpaces_a_counter_ahead_of_the_clock() {
    let fx = Fixture::new().await;
    fx.write("f", b"x");
    fx.scan().await;
    // Pretend the file was last changed with a counter far in the future.
    let mut f = fx.live("f").await;
    let future = unix_now() + 1_000_000;
    f.version = Vector::from_counters([bep::Counter { id: ME, value: future }]);
    fx.index.apply_local(fx.folder, &mut [f]).await.unwrap();
    fx.rewrite("f", b"y", 5);
    fx.scan().await;
    assert_eq!(fx.live("f").await.version.counter(ME), future + 1);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn permission_change_is_a_change() {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::new().await;
    fx.write("f", b"x");
    fx.scan().await;
    fs::set_permissions(fx.path("f"), fs::Permissions::from_mode(0o600)).unwrap();
    let s = fx.scan().await;
    assert_eq!(s.changed, 1);
    assert_eq!(fx.live("f").await.permissions, 0o600);
}

/// `ignore_permissions` (Windows' default): entries say they carry no permissions, a change of
/// the bits alone is no change, and an edit keeps the bits the entry had.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ignored_permissions_are_neither_recorded_nor_a_change() {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::new().await;
    fx.write("f", b"x");
    fs::set_permissions(fx.path("f"), fs::Permissions::from_mode(0o755)).unwrap();
    fx.scanner().with_ignore_permissions(true).scan(&[]).await.unwrap();
    let first = fx.live("f").await;
    assert!(first.no_permissions, "{first:?}");

    fs::set_permissions(fx.path("f"), fs::Permissions::from_mode(0o600)).unwrap();
    let s = fx.scanner().with_ignore_permissions(true).scan(&[]).await.unwrap();
    assert_eq!(s.changed, 0);
    assert_eq!(fx.live("f").await.version, first.version);

    fx.rewrite("f", b"edited", 5);
    fx.scanner().with_ignore_permissions(true).scan(&[]).await.unwrap();
    let edited = fx.live("f").await;
    assert_ne!(edited.version, first.version);
    assert_eq!((edited.permissions, edited.no_permissions), (first.permissions, true));

    // The same change with the bits synced is one.
    fs::set_permissions(fx.path("f"), fs::Permissions::from_mode(0o644)).unwrap();
    let s = fx.scanner().with_ignore_permissions(false).scan(&[]).await.unwrap();
    assert_eq!(s.changed, 1);
    assert_eq!(fx.live("f").await.permissions, 0o644);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_files_and_directories_become_tombstones() {
    let fx = Fixture::new().await;
    fx.write("keep.txt", b"k");
    fx.write("gone.txt", b"g");
    fx.write("dir/sub/x", b"x");
    fx.write("dir/y", b"y");
    fx.scan().await;
    let old = fx.live("gone.txt").await;

    fs::remove_file(fx.path("gone.txt")).unwrap();
    fs::remove_dir_all(fx.path("dir")).unwrap();
    let s = fx.scan().await;
    assert_eq!(s.deleted, 5, "gone.txt, dir, dir/sub, dir/sub/x, dir/y");
    for name in ["gone.txt", "dir", "dir/sub", "dir/sub/x", "dir/y"] {
        let t = fx.get(name).await.unwrap();
        assert!(t.deleted, "{name}");
        assert!(t.blocks.is_empty() && t.size == 0, "{name}");
        assert_eq!(t.modified_by, ME);
    }
    let t = fx.get("gone.txt").await.unwrap();
    assert_eq!(t.version.compare(&old.version), crate::bep::VectorOrdering::Greater);
    assert_eq!(t.permissions, old.permissions, "a tombstone keeps the permissions");
    assert_eq!(t.block_size, old.block_size);
    fx.live("keep.txt").await;
    // The blocks of deleted files are no longer offered for reuse.
    assert!(fx.index.block_locations(&sha(b"g"), 10).await.unwrap().is_empty());
    // A second scan leaves tombstones alone.
    assert_eq!(fx.scan().await.changed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn recreated_file_supersedes_its_tombstone() {
    let fx = Fixture::new().await;
    fx.write("f", b"1");
    fx.scan().await;
    fs::remove_file(fx.path("f")).unwrap();
    fx.scan().await;
    let tomb = fx.get("f").await.unwrap();
    fx.write("f", b"2");
    fx.scan().await;
    let back = fx.live("f").await;
    assert_eq!(back.version.compare(&tomb.version), crate::bep::VectorOrdering::Greater);
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_replaced_by_file_deletes_its_contents() {
    let fx = Fixture::new().await;
    fx.write("x/inner", b"i");
    fx.scan().await;
    fs::remove_dir_all(fx.path("x")).unwrap();
    fx.write("x", b"now a file");
    fx.scan().await;
    assert_eq!(fx.live("x").await.file_type, FileType::File);
    assert!(fx.get("x/inner").await.unwrap().deleted);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn directory_replaced_by_a_fifo_is_deleted_once() {
    let fx = Fixture::new().await;
    fx.write("p/inner", b"i");
    fx.scan().await;
    fs::remove_dir_all(fx.path("p")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(fx.path("p")).status().unwrap();
    assert!(made.success());
    let s = fx.scan().await;
    assert_eq!((s.changed, s.deleted), (2, 2), "p and p/inner, one tombstone each");
    assert!(fx.get("p").await.unwrap().deleted && fx.get("p/inner").await.unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_modified_during_hashing_is_rehashed_never_mixed() {
    let fx = Fixture::new().await;
    let old = vec![b'o'; 4 * 131072];
    let new = vec![b'n'; 4 * 131072];
    fx.write("f", &old);
    // Back-date it so the rewrite below moves the mtime.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options().write(true).open(fx.path("f")).unwrap().set_modified(hour_ago).unwrap();
    let path = fx.path("f");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let scanner = fx.scanner().with_hook(move |_, block| {
        // Once, after the first block: rewrite the whole file in place.
        if block == 0 && c.fetch_add(1, Ordering::SeqCst) == 0 {
            fs::write(&path, &new).unwrap();
        }
        Ok(())
    });
    let s = scanner.scan(&[]).await.unwrap();
    assert!(s.issues.is_empty(), "{:?}", s.issues);
    let f = fx.live("f").await;
    assert!(calls.load(Ordering::SeqCst) >= 2, "the file was hashed again");
    assert!(f.blocks.iter().all(|b| b.hash == sha(&[b'n'; 131072])), "only new blocks are recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_that_keeps_changing_is_reported_and_not_recorded() {
    let fx = Fixture::new().await;
    fx.write("f", &[1u8; 2 * 131072]);
    let path = fx.path("f");
    let n = Arc::new(AtomicUsize::new(0));
    let scanner = fx.scanner().with_hook(move |_, block| {
        if block == 0 {
            let i = n.fetch_add(1, Ordering::SeqCst);
            fs::write(&path, vec![i as u8; 2 * 131072 + i + 1]).unwrap();
        }
        Ok(())
    });
    let s = scanner.scan(&[]).await.unwrap();
    assert_eq!(s.issues.len(), 1);
    assert_eq!(s.issues[0].path, "f");
    assert!(s.issues[0].reason.contains("kept changing"), "{}", s.issues[0].reason);
    assert!(fx.get("f").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_file_is_reported_and_the_scan_goes_on() {
    let fx = Fixture::new().await;
    fx.write("bad", b"cannot be read");
    fx.write("good", b"fine");
    let scanner = fx.scanner().with_hook(|name, _| {
        if name == "bad" { Err(std::io::Error::other("Input/output error (injected)")) } else { Ok(()) }
    });
    let s = scanner.scan(&[]).await.unwrap();
    assert_eq!(
        s.issues,
        [ScanIssue { path: "bad".into(), reason: "cannot read file: Input/output error (injected)".into() }]
    );
    assert!(fx.get("bad").await.is_none());
    fx.live("good").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ignored_files_are_not_recorded_and_newly_ignored_become_invalid() {
    let fx = Fixture::new().await;
    fx.write("keep.txt", b"k");
    fx.write("cache/x.bin", b"x");
    fx.write("note.tmp", b"t");
    fx.scan().await;
    fx.live("cache/x.bin").await;

    fx.write(".stignore", b"*.tmp\ncache\n");
    fx.write("later.tmp", b"l");
    fx.scan().await;
    assert!(fx.get("later.tmp").await.is_none(), "a new ignored file is not recorded");
    for name in ["note.tmp", "cache", "cache/x.bin"] {
        let f = fx.get(name).await.unwrap();
        assert!(f.invalid && !f.deleted, "{name} is announced as invalid, not deleted");
    }
    fx.live("keep.txt").await;
    assert!(fx.get(".stignore").await.is_none(), ".stignore is never synced");
}

/// A name recorded as ignored is no deletion: removing the file while it is ignored changes
/// nothing; once no longer ignored, an entry not on disk becomes a deletion with the empty
/// version (older than any other, so the global version is needed again), and one on disk
/// exactly as recorded becomes valid again under its version.
#[tokio::test(flavor = "multi_thread")]
async fn ignored_entries_are_never_recorded_as_deletes() {
    let fx = Fixture::new().await;
    fx.write("gone.bin", b"g");
    fx.write("kept.bin", b"k");
    fx.write("d/inner.bin", b"i");
    fx.scan().await;
    let kept = fx.live("kept.bin").await;
    fx.write(".stignore", b"*.bin\nd\n");
    fx.scan().await;
    fs::remove_file(fx.path("gone.bin")).unwrap();
    fs::remove_dir_all(fx.path("d")).unwrap();
    let s = fx.scan().await;
    assert_eq!(s.deleted, 0, "{s:?}");
    for name in ["gone.bin", "d", "d/inner.bin"] {
        let f = fx.get(name).await.unwrap();
        assert!(f.invalid && !f.deleted, "{name} is still ignored, not deleted: {f:?}");
    }
    // Ignored and removed before any scan saw it ignored (a deselected directory whose local
    // copy went to the trash): recorded as ignored, not deleted.
    fx.write("late/x.txt", b"x");
    fx.scan().await;
    fx.write(".stignore", b"*.bin\nd\nlate\n");
    fs::remove_dir_all(fx.path("late")).unwrap();
    let s = fx.scan().await;
    assert_eq!(s.deleted, 0, "{s:?}");
    for name in ["late", "late/x.txt"] {
        let f = fx.get(name).await.unwrap();
        assert!(f.invalid && !f.deleted, "{name} is ignored, not deleted: {f:?}");
    }

    fs::remove_file(fx.path(".stignore")).unwrap();
    let s = fx.scan().await;
    assert!(s.held_deletes.is_none(), "{s:?}");
    for name in ["gone.bin", "d", "d/inner.bin", "late", "late/x.txt"] {
        let f = fx.get(name).await.unwrap();
        assert!(f.deleted && !f.invalid && f.version.is_empty(), "{name}: {f:?}");
    }
    let k = fx.live("kept.bin").await;
    assert_eq!(k.version, kept.version, "unchanged while ignored: the same version");
}

/// A file on disk whose entry was recorded as ignored with a version it does not hold (the
/// puller's record of a peer's newer version) is, once no longer ignored, a new version that
/// drops the others' counters: concurrent with theirs, never silently newer.
#[tokio::test(flavor = "multi_thread")]
async fn an_unignored_file_unlike_its_ignored_entry_is_concurrent() {
    let fx = Fixture::new().await;
    fx.write("f.bin", b"mine");
    fx.write(".stignore", b"f.bin\n");
    fx.scan().await;
    let other = ShortId(7);
    let theirs = FileInfo {
        name: "f.bin".into(),
        file_type: FileType::File,
        size: 6,
        permissions: 0o644,
        no_permissions: false,
        modified_s: 1,
        modified_ns: 0,
        modified_by: other,
        deleted: false,
        invalid: true,
        version: Vector::new().updated(ME, 5).updated(other, 10),
        sequence: 0,
        block_size: 131072,
        blocks: vec![bep::BlockInfo { offset: 0, size: 6, hash: sha(b"theirs") }],
        symlink_target: String::new(),
    };
    fx.index.apply_local(fx.folder, &mut [theirs.clone()]).await.unwrap();
    fs::remove_file(fx.path(".stignore")).unwrap();
    fx.scan().await;
    let f = fx.live("f.bin").await;
    assert_eq!(f.version.counter(other), 0, "{f:?}");
    assert!(f.version.compare(&theirs.version).is_concurrent(), "{f:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_and_temporary_files_are_skipped() {
    let fx = Fixture::new().await;
    fs::create_dir(fx.path(".stfolder")).unwrap();
    fx.write(".stversions/old.txt", b"v");
    fx.write("d/.syncthing.big.bin.tmp", b"partial");
    fx.write("d/~syncthing~x.tmp", b"partial");
    fx.write("d/real.tmp", b"a real file");
    let s = fx.scan().await;
    assert_eq!(s.files, 1);
    fx.live("d/real.tmp").await;
    for name in
        [".stfolder", ".stversions", ".stversions/old.txt", "d/.syncthing.big.bin.tmp", "d/~syncthing~x.tmp"]
    {
        assert!(fx.get(name).await.is_none(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_scan_of_a_new_nested_path_records_its_new_parents() {
    let fx = Fixture::new().await;
    fx.write("old", b"o");
    fx.scan().await;
    fx.write("new/deeper/file", b"f");
    fx.write("unrelated", b"u");
    let s = fx.scanner().scan(&["new/deeper/file".to_string()]).await.unwrap();
    assert_eq!(s.changed, 3, "new, new/deeper, new/deeper/file");
    fx.live("new").await;
    fx.live("new/deeper").await;
    fx.live("new/deeper/file").await;
    assert!(fx.get("unrelated").await.is_none(), "a partial scan looks only where it is told");
}

#[tokio::test(flavor = "multi_thread")]
async fn hints_inside_one_new_directory_scan_it_once() {
    let fx = Fixture::new().await;
    fx.scan().await;
    fx.write("x/a", b"a");
    fx.write("x/b", b"b");
    let s = fx.scanner().scan(&["x/a".to_string(), "x/b".to_string()]).await.unwrap();
    assert_eq!(s.changed, 3, "x, x/a and x/b, once each");
    assert_eq!(s.sequence, 3);
}

#[test]
fn outermost_paths() {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(outermost(v(&["a/b", "a", "a-b", "a/b/c", "a"])), v(&["a", "a-b"]));
    assert_eq!(outermost(v(&["x", "", "y/z"])), v(&[""]));
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_scan_of_a_deleted_path_tombstones_it() {
    let fx = Fixture::new().await;
    fx.write("d/a", b"a");
    fx.write("d/b", b"b");
    fx.scan().await;
    fs::remove_dir_all(fx.path("d")).unwrap();
    let s = fx.scanner().scan(&["d".to_string()]).await.unwrap();
    assert_eq!(s.deleted, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_root_is_an_error_and_deletes_nothing() {
    let fx = Fixture::new().await;
    fx.write("f", b"x");
    fx.scan().await;
    fs::rename(fx.root(), fx.dir.path().join("unmounted")).unwrap();
    let err = fx.scanner().scan(&[]).await.unwrap_err();
    assert!(matches!(err, ScanError::FolderMissing(_)), "{err}");
    fx.live("f").await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn names_are_stored_in_nfc() {
    let fx = Fixture::new().await;
    let nfd = "cafe\u{301}.txt";
    fx.write(nfd, b"c");
    let s = fx.scan().await;
    assert!(s.issues.is_empty(), "{:?}", s.issues);
    fx.live("caf\u{e9}.txt").await;
    assert!(fx.get(nfd).await.is_none());
    assert!(fx.path("caf\u{e9}.txt").exists(), "renamed on disk to its NFC form");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_names_are_reported_not_recorded() {
    use std::os::unix::ffi::OsStrExt as _;
    let fx = Fixture::new().await;
    fs::write(fx.root().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
    fx.write("ok", b"y");
    let s = fx.scan().await;
    assert_eq!(s.issues.len(), 1);
    assert!(s.issues[0].reason.contains("UTF-8"));
    fx.live("ok").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_content_is_found_by_block_hash() {
    let fx = Fixture::new().await;
    let data = vec![7u8; 131072 + 5];
    fx.write("one", &data);
    fx.write("sub/two", &data);
    fx.scan().await;
    let locs = fx.index.block_locations(&sha(&data[..131072]), 10).await.unwrap();
    let mut names: Vec<_> = locs.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["one", "sub/two"]);
}

/// Writes `n` files `prefix0` … and scans them in.
async fn files(fx: &Fixture, prefix: &str, n: usize) {
    for i in 0..n {
        fx.write(&format!("{prefix}{i}"), format!("content {prefix}{i}").as_bytes());
    }
    fx.scan().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_deleting_most_files_records_none_of_the_deletions() {
    let fx = Fixture::new().await;
    files(&fx, "f", 20).await;
    for i in 0..15 {
        fs::remove_file(fx.path(&format!("f{i}"))).unwrap();
    }
    fx.write("new.txt", b"added in the same scan");
    let s = fx.scan().await;
    assert_eq!(s.held_deletes, Some(MassDelete { deleted: 15, total: 20 }));
    assert_eq!((s.changed, s.deleted), (1, 0), "only the addition is recorded");
    for i in 0..20 {
        fx.live(&format!("f{i}")).await;
    }
    fx.live("new.txt").await;
    // Every later scan holds them back again, until the user confirms.
    assert_eq!(fx.scan().await.held_deletes, Some(MassDelete { deleted: 15, total: 21 }));
    let s = fx.scanner().scan_confirmed(&[]).await.unwrap();
    assert_eq!((s.held_deletes, s.deleted), (None, 15));
    for i in 0..15 {
        assert!(fx.get(&format!("f{i}")).await.unwrap().deleted);
    }
    fx.live("f15").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restored_files_end_the_hold_and_nothing_is_deleted() {
    let fx = Fixture::new().await;
    files(&fx, "f", 12).await;
    let moved = fx.dir.path().join("aside");
    fs::create_dir(&moved).unwrap();
    for i in 0..12 {
        fs::rename(fx.path(&format!("f{i}")), moved.join(format!("f{i}"))).unwrap();
    }
    assert!(fx.scan().await.held_deletes.is_some());
    for i in 0..12 {
        fs::rename(moved.join(format!("f{i}")), fx.path(&format!("f{i}"))).unwrap();
    }
    let s = fx.scan().await;
    assert_eq!((s.held_deletes, s.changed), (None, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn small_or_partial_deletions_are_not_mass_deletes() {
    let fx = Fixture::new().await;
    // Three of four files: most of the folder, but below the floor.
    files(&fx, "a", 4).await;
    for i in 0..3 {
        fs::remove_file(fx.path(&format!("a{i}"))).unwrap();
    }
    let s = fx.scan().await;
    assert_eq!((s.held_deletes, s.deleted), (None, 3));
    // Ten of twenty-one live files: at the floor, but not more than half.
    files(&fx, "b", 20).await;
    for i in 0..10 {
        fs::remove_file(fx.path(&format!("b{i}"))).unwrap();
    }
    let s = fx.scan().await;
    assert_eq!((s.held_deletes, s.deleted), (None, 10));
}

#[tokio::test(flavor = "multi_thread")]
async fn directories_do_not_count_towards_a_mass_delete() {
    let fx = Fixture::new().await;
    // Eleven files in eleven directories, nine at the root: a directory tree with more than
    // half of the files goes, directories aside.
    for i in 0..11 {
        fx.write(&format!("d/sub{i}/f"), b"x");
    }
    files(&fx, "r", 9).await;
    fs::remove_dir_all(fx.path("d")).unwrap();
    let s = fx.scan().await;
    assert_eq!(s.held_deletes, Some(MassDelete { deleted: 11, total: 20 }));
    fx.live("d/sub3").await;
    fx.live("d/sub3/f").await;
    // A partial scan is guarded too.
    let s = fx.scanner().scan(&["d".to_string()]).await.unwrap();
    assert_eq!(s.held_deletes, Some(MassDelete { deleted: 11, total: 20 }));
    let s = fx.scanner().scan_confirmed(&["d".to_string()]).await.unwrap();
    assert_eq!(s.deleted, 23, "d, eleven directories and eleven files");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_too_many_to_hold_are_still_guarded_and_recorded() {
    let fx = Fixture::new().await;
    files(&fx, "f", 30).await;
    // Five of thirty, with room to hold only two: not a mass delete, so a second walk records
    // them.
    for i in 0..5 {
        fs::remove_file(fx.path(&format!("f{i}"))).unwrap();
    }
    let s = fx.scanner().with_held_deletes(2).scan(&[]).await.unwrap();
    assert_eq!((s.held_deletes, s.deleted), (None, 5));
    for i in 0..5 {
        assert!(fx.get(&format!("f{i}")).await.unwrap().deleted);
    }
    // Twenty of the twenty-five left: a mass delete, counted past what it could hold.
    for i in 5..25 {
        fs::remove_file(fx.path(&format!("f{i}"))).unwrap();
    }
    let s = fx.scanner().with_held_deletes(2).scan(&[]).await.unwrap();
    assert_eq!((s.held_deletes, s.deleted), (Some(MassDelete { deleted: 20, total: 25 }), 0));
    fx.live("f5").await;
}

#[tokio::test]
async fn a_file_put_in_place_by_an_interrupted_pull_keeps_the_pulled_version() {
    let fx = Fixture::new().await;
    let peer = ShortId(0x0bad_cafe);
    let version = Vector::new().updated(peer, 1_000);
    // What the puller noted before a crash kept it from recording the files.
    let data = vec![5u8; 1000];
    let blocks = vec![bep::BlockInfo { offset: 0, size: 1000, hash: sha(&data) }];
    for name in ["pulled", "edited"] {
        let intent = crate::db::PullIntent {
            name: name.into(),
            version: version.clone(),
            modified_by: peer,
            blocklist_hash: bep::blocklist_hash(&blocks),
        };
        fx.index.note_pulls(fx.folder, std::slice::from_ref(&intent)).await.unwrap();
    }
    fx.write("pulled", &data);
    fx.write("edited", b"something else");
    fx.scan().await;
    let pulled = fx.get("pulled").await.unwrap();
    assert_eq!((pulled.version, pulled.modified_by), (version.clone(), peer), "recorded as pulled");
    let edited = fx.get("edited").await.unwrap();
    assert_eq!(edited.modified_by, ME, "other content is a local change");
    assert_ne!(edited.version, version);
    assert!(!fx.index.has_pull_intents(fx.folder).await.unwrap(), "both intents are spent");
}

#[tokio::test]
async fn a_scan_removes_temporaries_of_files_no_longer_needed() {
    let fx = Fixture::new().await;
    fx.write("d/.syncthing.gone.bin.tmp", b"partial");
    let long = format!(".syncthing.{}.tmp", "ab".repeat(32));
    fx.write(&format!("d/{long}"), b"partial");
    let summary = fx.scan().await;
    assert!(!fx.path("d/.syncthing.gone.bin.tmp").exists(), "nothing needs gone.bin");
    // A long name's temporary is named by its hash: whose it is cannot be told.
    assert!(fx.path(&format!("d/{long}")).exists());
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
    assert!(fx.get("d/.syncthing.gone.bin.tmp").await.is_none(), "never indexed");
}

/// Temporary files of downloads that never finished are removed once a day old, as Syncthing
/// does while scanning, also those whose file cannot be told (named by a hash).
#[tokio::test(flavor = "multi_thread")]
async fn temporary_files_older_than_a_day_are_removed() {
    let fx = Fixture::new().await;
    let day_old = SystemTime::now() - Duration::from_secs(25 * 3600);
    let long = format!("d/.syncthing.{}.tmp", "ab".repeat(32));
    for name in [".syncthing.old.bin.tmp", "d/.syncthing.deep.bin.tmp", "d/~syncthing~win.bin.tmp", &long] {
        fx.write(name, b"partial");
        fs::File::options().write(true).open(fx.path(name)).unwrap().set_modified(day_old).unwrap();
    }
    fx.write("d/keep.tmp", b"a user's file");
    fs::File::options().write(true).open(fx.path("d/keep.tmp")).unwrap().set_modified(day_old).unwrap();
    fx.scan().await;
    assert!(!fx.path(".syncthing.old.bin.tmp").exists());
    assert!(!fx.path("d/.syncthing.deep.bin.tmp").exists());
    assert!(!fx.path("d/~syncthing~win.bin.tmp").exists());
    assert!(!fx.path(&long).exists());
    assert!(fx.path("d/keep.tmp").exists(), "only the sync machinery's names");
    fx.live("d/keep.tmp").await;
}

/// On Windows a symlink is reported and left out of the index (Syncthing does the same there);
/// what it points at is not scanned through it. Not under Wine: its `CreateSymbolicLinkW`
/// reports success and makes nothing.
#[cfg(all(windows, not(peerfold_wine)))]
#[tokio::test(flavor = "multi_thread")]
async fn on_windows_a_symlink_is_reported_not_recorded() {
    let fx = Fixture::new().await;
    fx.write("target.txt", b"t");
    std::fs::create_dir(fx.path("dir")).unwrap();
    fx.write("dir/inner.txt", b"i");
    std::os::windows::fs::symlink_file(fx.path("target.txt"), fx.path("link.txt")).unwrap();
    std::os::windows::fs::symlink_dir(fx.path("dir"), fx.path("dirlink")).unwrap();
    let s = fx.scan().await;
    for link in ["link.txt", "dirlink"] {
        assert!(fx.get(link).await.is_none(), "{link} was recorded");
        assert!(
            s.issues.iter().any(|i| i.path == link && i.reason.contains("not supported")),
            "{link}: {:?}",
            s.issues
        );
    }
    assert!(fx.get("dirlink/inner.txt").await.is_none(), "scanned through the link");
    fx.live("dir/inner.txt").await;
}

//! Hostile disks under a syncing device: an unmounted disk (the folder left as an empty
//! directory without `.stfolder`), a disk too small or full, a case-insensitive file system.
//! The file systems are made by the tests (tmpfs, an NTFS image through `lowntfs-3g` with
//! `ignore_case`), so they need root; CI runs as root, and without it these tests fail saying
//! so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use peerfold::config::FolderId;
use peerfold::engine::{Engine, FailedItem, FolderState};

use super::{LIMIT, pair, same_trees, save, tree};
use crate::util::{pseudo_random, wait_for};

/// Long enough for a pull that failed to be tried again (every 30 s) and succeed.
const RETRY_LIMIT: Duration = Duration::from_secs(100);

fn folder_id() -> FolderId {
    "f".parse().unwrap()
}

fn need_root(what: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    assert!(root, "this test mounts {what} and must run as root");
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A file system the test mounted at a directory; unmounted when dropped, also when the test
/// fails (lazily: an engine that failed the test may still hold files open).
struct Mounted(PathBuf);

impl Mounted {
    /// A tmpfs of `size` (as `mount -o size=` takes it) at `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Self {
        need_root("a tmpfs");
        run("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir.to_string_lossy()]);
        Self(dir.to_owned())
    }

    /// A fresh NTFS image `image` at `dir`, names compared ignoring case (as on Windows and
    /// macOS). This kernel has neither vfat nor ext4's casefold, so the file system is NTFS
    /// through FUSE, with the kernel's caches of names and attributes off: the kernel looks
    /// names up in them case-sensitively, so `a.txt`, looked up before `A.txt` was made, would
    /// stay missing for a while (a native case-insensitive file system has no such window).
    fn case_insensitive(image: &Path, dir: &Path) -> Self {
        need_root("an NTFS image with lowntfs-3g (Debian package ntfs-3g)");
        std::fs::File::create(image).unwrap().set_len(32 << 20).unwrap();
        run("mkntfs", &["-q", "-F", "-f", &image.to_string_lossy()]);
        run(
            "lowntfs-3g",
            &[
                "-o",
                "ignore_case,permissions,entry_timeout=0,negative_timeout=0,attr_timeout=0",
                &image.to_string_lossy(),
                &dir.to_string_lossy(),
            ],
        );
        Self(dir.to_owned())
    }

    /// Gives the tmpfs a new size.
    fn resize(&self, size: &str) {
        run("mount", &["-o", &format!("remount,size={size}"), &self.0.to_string_lossy()]);
    }

    /// Bytes an unprivileged writer may still use.
    fn free(&self) -> u64 {
        let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(&self.0).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut n = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        n.next().unwrap() * n.next().unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn state(e: &Engine) -> FolderState {
    e.folder_states().into_iter().next().map(|(_, s)| s).unwrap()
}

async fn failed_item(e: &Engine, path: &str, limit: Duration) -> FailedItem {
    wait_for(limit, &format!("{path} to be a failed item"), || {
        let item = e.failed_items(&folder_id()).unwrap().into_iter().find(|i| i.path == path);
        async move { item }
    })
    .await
}

/// The folder of a device whose disk is not mounted (its root an empty directory, without
/// `.stfolder`) takes nothing from its peers and says why; once the marker is back, it syncs
/// again by itself. Before, only scans checked the marker: a pull wrote the peer's files into
/// the empty mount point.
async fn marker_gone(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    // Only a pull can notice here: b neither watches nor rescans.
    b.config.folders[0].watch = Some(false);
    b.config.folders[0].rescan_interval_s = Some(0);
    std::fs::write(a.folder().join("first.txt"), b"first").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    same_trees(&a.folder(), &b.folder()).await;

    // b's disk goes away: the mount point is an empty directory.
    let bf = b.folder();
    let disk = b.t.path("unmounted");
    std::fs::rename(&bf, &disk).unwrap();
    std::fs::create_dir(&bf).unwrap();
    std::fs::create_dir(a.folder().join("dir")).unwrap();
    save(&a, "second.txt", b"second");
    let seen = wait_for(LIMIT, "b to refuse to pull, or to pull", || {
        let written = std::fs::read_dir(&bf).unwrap().count() > 0;
        let s = state(&eb);
        async move {
            match s {
                FolderState::Error { message } => Some(message),
                _ if written => Some(String::new()),
                _ => None,
            }
        }
    })
    .await;
    assert!(tree(&bf).is_empty(), "b wrote into the empty mount point: {:?}", tree(&bf).keys());
    assert!(seen.contains(".stfolder") && seen.contains("mounted"), "the folder's error: {seen:?}");

    // The disk is back: b syncs again without being asked.
    std::fs::remove_dir(&bf).unwrap();
    std::fs::rename(&disk, &bf).unwrap();
    let af = a.folder();
    wait_for(RETRY_LIMIT, "b to sync again", || {
        let same = super::try_tree(&af).ok() == super::try_tree(&bf).ok() && bf.join("second.txt").exists();
        async move { same.then_some(()) }
    })
    .await;
    assert!(!matches!(state(&eb), FolderState::Error { .. }), "{:?}", state(&eb));
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_without_its_marker_takes_nothing_from_peers_over_quic() {
    marker_gone("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_without_its_marker_takes_nothing_from_peers_over_tcp() {
    marker_gone("tcp").await;
}

/// A file larger than the receiver's disk: the disk is not filled (1 % stays free, the
/// default minimum), nothing is left at the file's name or in a temporary file, the file stays
/// needed and is a failed item saying why; when the disk grows, the file arrives by itself.
/// Before, the puller filled the disk to the last byte and left the partial temporary file.
async fn disk_too_small(transport: &str) {
    let (mut a, mut b) = pair(transport).await;
    let disk = Mounted::tmpfs(&b.folder(), "8m");
    let big = pseudo_random(12 << 20, 5);
    std::fs::write(a.folder().join("big.bin"), &big).unwrap();
    std::fs::write(a.folder().join("small.txt"), b"small").unwrap();
    let (ea, eb) = (a.start().await, b.start().await);

    let failed = failed_item(&eb, "big.bin", LIMIT).await;
    let bf = b.folder();
    let small = bf.join("small.txt");
    wait_for(LIMIT, "small.txt at b", || {
        let got = std::fs::read(&small).ok();
        async move { (got.as_deref() == Some(b"small".as_slice())).then_some(()) }
    })
    .await;
    assert!(disk.free() >= (8 << 20) / 100, "b filled its disk: {} bytes free ({failed:?})", disk.free());
    assert!(!bf.join("big.bin").exists(), "a partial file at the target name");
    assert!(!bf.join(".syncthing.big.bin.tmp").exists(), "the temporary file holds the space ({failed:?})");
    assert!(failed.error.contains("space"), "{failed:?}");
    let needed = eb.needed(&folder_id()).await.unwrap();
    assert_eq!(needed.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(), ["big.bin"]);

    // Room at last: the file arrives without anyone asking.
    disk.resize("64m");
    let target = bf.join("big.bin");
    wait_for(RETRY_LIMIT, "big.bin at b", || {
        let done = std::fs::read(&target).is_ok_and(|d| d == big)
            && eb.failed_items(&folder_id()).unwrap().is_empty();
        async move { done.then_some(()) }
    })
    .await;
    assert!(!tree(&bf).keys().any(|k| k.contains(".syncthing.")));
    ea.shutdown().await;
    eb.shutdown().await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_the_disk_leaves_it_usable_and_arrives_when_there_is_room_over_quic() {
    disk_too_small("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_the_disk_leaves_it_usable_and_arrives_when_there_is_room_over_tcp() {
    disk_too_small("tcp").await;
}

/// Two files that each fit but not together: whichever the disk runs out under mid-pull is
/// not left behind (neither at its name nor as a temporary file), and both arrive once there
/// is room.
#[tokio::test(flavor = "multi_thread")]
async fn a_disk_that_fills_mid_pull_keeps_no_partial_file() {
    let (mut a, mut b) = pair("tcp").await;
    let disk = Mounted::tmpfs(&b.folder(), "8m");
    let one = pseudo_random(5 << 20, 1);
    let two = pseudo_random(5 << 20, 2);
    std::fs::write(a.folder().join("one.bin"), &one).unwrap();
    std::fs::write(a.folder().join("two.bin"), &two).unwrap();
    let (ea, eb) = (a.start().await, b.start().await);
    let bf = b.folder();
    // Whichever came first is there; the other failed.
    let (failed, item) = wait_for(LIMIT, "one file at b and the other a failed item", || {
        let items = eb.failed_items(&folder_id()).unwrap();
        let done = |name: &str, data: &[u8]| std::fs::read(bf.join(name)).is_ok_and(|d| d == data);
        let found = if done("one.bin", &one) {
            items.into_iter().find(|i| i.path == "two.bin").map(|i| ("two.bin", i))
        } else if done("two.bin", &two) {
            items.into_iter().find(|i| i.path == "one.bin").map(|i| ("one.bin", i))
        } else {
            None
        };
        async move { found }
    })
    .await;
    assert!(!bf.join(failed).exists(), "a partial file at the target name ({item:?})");
    assert!(
        !bf.join(format!(".syncthing.{failed}.tmp")).exists(),
        "the temporary file holds the space ({item:?})"
    );
    assert!(disk.free() >= (8 << 20) / 100, "b's disk is full: {} bytes free ({item:?})", disk.free());
    disk.resize("64m");
    let af = a.folder();
    wait_for(RETRY_LIMIT, "both files at b", || {
        let same = super::try_tree(&af).ok() == super::try_tree(&bf).ok();
        async move { same.then_some(()) }
    })
    .await;
    ea.shutdown().await;
    eb.shutdown().await;
    drop(disk);
}

/// A peer has `A.txt` and `a.txt`, which a case-insensitive file system holds as one name:
/// one of them is written, the other is a failed item saying why, the written one keeps its
/// own content, no conflict copy is made, and the peer keeps both. A later rescan of the
/// receiver announces neither a change nor a delete of either name. With `together`, both
/// names come at once (either may be written); else `A.txt` comes first, which this disk
/// then lists as `a.txt`.
///
/// Before, the receiver's scan took the listed `a.txt` for a new local file: the peer's
/// `a.txt` then made a conflict copy of it, and `A.txt` was taken for deleted.
async fn case_collision(transport: &str, together: bool) {
    let (mut a, mut b) = pair(transport).await;
    let bf = b.folder();
    let _disk = Mounted::case_insensitive(&b.t.path("ntfs.img"), &bf);
    std::fs::write(bf.join("probe"), b"x").unwrap();
    assert!(bf.join("PROBE").exists(), "the test's file system ignores case");
    std::fs::remove_file(bf.join("probe")).unwrap();
    let af = a.folder();
    std::fs::write(af.join("A.txt"), b"UPPER CASE").unwrap();
    if together {
        std::fs::write(af.join("a.txt"), b"lower case").unwrap();
    }
    let (ea, eb) = (a.start().await, b.start().await);
    if !together {
        let upper = bf.join("A.txt");
        wait_for(LIMIT, "A.txt at b", || {
            let ok = std::fs::read(&upper).is_ok_and(|d| d == b"UPPER CASE");
            async move { ok.then_some(()) }
        })
        .await;
        save(&a, "a.txt", b"lower case");
    }
    let at_a = tree(&af);
    assert_eq!(at_a.len(), 2, "{at_a:?}");

    let item = wait_for(LIMIT, "a failed item at b", || {
        let items = eb.failed_items(&folder_id()).unwrap();
        async move { items.into_iter().find(|i| i.path.eq_ignore_ascii_case("a.txt")) }
    })
    .await;
    if !together {
        assert_eq!(item.path, "a.txt", "the name that came second fails");
    }
    let (kept, content): (&str, &[u8]) =
        if item.path == "a.txt" { ("A.txt", b"UPPER CASE") } else { ("a.txt", b"lower case") };
    // This disk lists every name in lower case: b's tree is compared so.
    let names_at_b =
        || super::try_tree(&bf).map(|t| t.into_keys().map(|k| k.to_lowercase()).collect::<Vec<_>>());
    // The one that was written arrives whole (the failed one may be reported first).
    let kept_path = bf.join(kept);
    wait_for(LIMIT, "the other name at b", || {
        let ok = names_at_b().is_ok_and(|n| n == ["a.txt"])
            && std::fs::read(&kept_path).is_ok_and(|d| d == content);
        async move { ok.then_some(()) }
    })
    .await;
    assert!(item.error.contains("case"), "{item:?}");
    assert_eq!(
        names_at_b().unwrap(),
        ["a.txt"],
        "one of the two is on disk, and no conflict copy ({item:?})"
    );
    assert_eq!(tree(&af), at_a, "a keeps both, unchanged ({item:?})");

    // b rescans all of its folder, then adds a file: once a has that file, a has seen all
    // that b announced before it (one connection keeps the order), and pulled it.
    let summary = eb.scan(&folder_id(), Vec::new()).await.unwrap();
    std::fs::write(bf.join("after.txt"), b"after").unwrap();
    eb.scan(&folder_id(), vec!["after.txt".into()]).await.unwrap();
    let after = af.join("after.txt");
    wait_for(LIMIT, "after.txt at a", || {
        let ok = std::fs::read(&after).is_ok_and(|d| d == b"after");
        async move { ok.then_some(()) }
    })
    .await;
    wait_for(LIMIT, "a to need nothing", || async {
        ea.needed(&folder_id()).await.unwrap().is_empty().then_some(())
    })
    .await;
    let mut want = at_a.clone();
    want.insert("after.txt".into(), ('f', b"after".to_vec()));
    assert_eq!(tree(&af), want, "a keeps both, unchanged, after b rescanned ({summary:?})");
    assert_eq!(names_at_b().unwrap(), ["a.txt", "after.txt"], "b after its rescan ({summary:?})");
    assert_eq!(std::fs::read(&kept_path).unwrap(), content, "{kept} after b rescanned");
    assert!(
        eb.failed_items(&folder_id()).unwrap().iter().any(|i| i.path == item.path),
        "the name b cannot hold stays a failed item after the rescan"
    );
    ea.shutdown().await;
    eb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_differ_only_in_case_never_overwrite_each_other_over_quic() {
    case_collision("quic", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_differ_only_in_case_never_overwrite_each_other_over_tcp() {
    case_collision("tcp", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_differ_only_in_case_and_come_together_never_overwrite_each_other_over_quic() {
    case_collision("quic", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_differ_only_in_case_and_come_together_never_overwrite_each_other_over_tcp() {
    case_collision("tcp", true).await;
}

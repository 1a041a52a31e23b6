//! Hostile disks under a syncing device: an unmounted disk (the folder left as an empty
//! directory without `.stfolder`), a disk too small or full. The file systems are made by the
//! tests (tmpfs), so they need root; CI runs as root, and without it these tests fail saying
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

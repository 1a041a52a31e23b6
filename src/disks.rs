//! What the disk under a folder must allow before the puller writes to it, and what the sync
//! machinery leaves on it: enough free space (per folder, and on the home's disk, where the
//! index lives: Syncthing's `minDiskFree` and `minHomeDiskFree`), one entry per name on a
//! case-insensitive file system, and no temporary files older than a day.
//!
//! The folder marker (an unmounted disk leaves an empty mount point without `.stfolder`) is
//! checked here too, before every file, as the engine checks it before every scan and pull.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::config::MinFree;
use crate::pull::Puller;

/// How long a temporary file of an unfinished download is kept for resuming (Syncthing's
/// `keepTemporariesH`).
pub const KEEP_TEMPORARIES: Duration = Duration::from_secs(24 * 3600);

/// A disk's size and what an unprivileged writer may still use of it, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub free: u64,
    pub total: u64,
}

/// The space of the file system holding `path`; `None` where it cannot be told.
#[cfg(unix)]
pub fn space(path: &Path) -> io::Result<Option<Space>> {
    let s = rustix::fs::statvfs(path)?;
    let unit = if s.f_frsize > 0 { s.f_frsize } else { s.f_bsize };
    Ok(Some(Space { free: s.f_bavail.saturating_mul(unit), total: s.f_blocks.saturating_mul(unit) }))
}

/// Elsewhere (Windows) the free space is not checked: an unknown free space allows the
/// download, and a full disk is still handled as it happens (see [`after_failed_write`]).
#[cfg(not(unix))]
pub fn space(_path: &Path) -> io::Result<Option<Space>> {
    Ok(None)
}

/// Why writing `need` more bytes on the disk holding `path` would leave less than `min` free,
/// or `None` when it would not (or the free space cannot be told). `disk` names the disk in
/// the sentence and `setting` the option that sets the minimum.
pub fn lacks_room(path: &Path, need: u64, min: MinFree, disk: &str, setting: &str) -> Option<String> {
    let space = match space(path) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return None,
        Err(e) => return Some(format!("cannot tell the free space on {disk}: {e}")),
    };
    let keep = min.bytes(space.total);
    if need.saturating_add(keep) <= space.free {
        return None;
    }
    let needs = if need > 0 { format!(", this needs {}", human(need)) } else { String::new() };
    Some(format!(
        "not enough free space on {disk}: {} free{needs}, and {min} ({}) must stay free ({setting})",
        human(space.free),
        human(keep),
    ))
}

/// Why the folder cannot pull at all now: its disk, or the home's, is below its minimum of
/// free space. `None` when both have room.
pub fn pull_blocked(root: &Path, min: MinFree, home: Option<(&Path, MinFree)>) -> Option<String> {
    lacks_room(root, 0, min, "the folder's disk", "min_disk_free").or_else(|| {
        let (dir, min) = home?;
        lacks_room(dir, 0, min, "the disk of the home, where the index is", "min_home_disk_free")
    })
}

/// Bytes the puller's downloads in progress will still write: a file checks for room for
/// itself and all of them, so two files that each fit but not together are not started at once
/// (both would fill the disk, fail, and do the same again on every retry).
#[derive(Debug, Default)]
pub struct Reserved(AtomicU64);

/// A download's share of [`Reserved`], given back when it ends either way.
pub(crate) struct Reservation<'a>(&'a Reserved, u64);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Checked right before a file is downloaded: the folder still has its marker, and the
/// folder's and the home's disks keep their minimum of free space once the file and every
/// other download in progress are written. (What a temporary file left by an earlier attempt
/// already holds is not subtracted: its length says nothing of what it takes, so a resumed
/// download needs room for all of it.) Returns the download's reservation, or the reason it
/// must wait.
pub(crate) fn before_download(puller: &Puller, size: u64) -> Result<Reservation<'_>, String> {
    let marker = puller.root.join(crate::engine::MARKER);
    if std::fs::symlink_metadata(&marker).is_err() {
        return Err(format!(
            "folder marker {} is missing (is the disk mounted?); recreate it to resume",
            marker.display()
        ));
    }
    let others = puller.reserved.0.fetch_add(size, Ordering::Relaxed);
    let reservation = Reservation(&puller.reserved, size);
    let (min, home_min) = limits(puller);
    if let Some(reason) =
        lacks_room(&puller.root, size.saturating_add(others), min, "the folder's disk", "min_disk_free")
    {
        return Err(if others > 0 {
            format!("{reason}, with {} still to come from other downloads", human(others))
        } else {
            reason
        });
    }
    let home = puller.index.file().and_then(Path::parent);
    match home.and_then(|h| {
        lacks_room(h, 0, home_min, "the disk of the home, where the index is", "min_home_disk_free")
    }) {
        Some(reason) => Err(reason),
        None => Ok(reservation),
    }
}

/// The reason to report for a download that failed with `error`. When the folder's disk is
/// at or below its minimum now (full, most likely what made it fail), the temporary file
/// (`tmp`, folder-relative) is removed: resuming from it would save a download but keep the
/// disk full meanwhile, for this and every other program on it.
pub(crate) fn after_failed_write(puller: &Puller, tmp: &str, error: String) -> String {
    let (min, _) = limits(puller);
    let full = matches!(space(&puller.root), Ok(Some(s)) if s.free <= min.bytes(s.total));
    if !full {
        return error;
    }
    match crate::beneath::Beneath::new(&puller.root).remove_all(tmp) {
        Ok(()) => format!("{error} (the disk is full: its temporary file was removed)"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => format!("{error} (the disk is full)"),
        Err(e) => format!("{error} (the disk is full, and its temporary file could not be removed: {e})"),
    }
}

/// The folder's and the home's minimum of free space, as configured now.
fn limits(puller: &Puller) -> (MinFree, MinFree) {
    let config = puller.config.borrow();
    let folder = config.folder(&puller.id).map(|f| f.min_disk_free).unwrap_or_default();
    (folder, config.options.min_home_disk_free)
}

/// Bytes for people: "12.6 MB".
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// The entry on disk that `name` (folder-relative) meets although it differs from it in case:
/// its folder-relative name as the disk spells it; `None` when every component of `name` is
/// on disk exactly so (or not at all).
///
/// It reads each directory from the root down, so the puller asks only when the file system
/// resolved `name` to an entry the index does not hold under that name. On a case-sensitive
/// file system a name the index does not know never resolves to anything, so this costs
/// nothing there; on a case-insensitive one that is exactly when another name is in the way.
pub fn case_conflict(root: &Path, name: &str) -> io::Result<Option<String>> {
    let mut dir = root.to_path_buf();
    let mut on_disk = String::new();
    for component in name.split('/') {
        let folded = component.to_lowercase();
        let mut other = None;
        let mut exact = false;
        for entry in std::fs::read_dir(&dir)? {
            let entry_name = entry?.file_name();
            if entry_name == component {
                exact = true;
                break;
            }
            if let Some(s) = entry_name.to_str()
                && other.is_none()
                && s.to_lowercase() == folded
            {
                other = Some(s.to_owned());
            }
        }
        if !exact {
            return Ok(other.map(|o| if on_disk.is_empty() { o } else { format!("{on_disk}/{o}") }));
        }
        if !on_disk.is_empty() {
            on_disk.push('/');
        }
        on_disk.push_str(component);
        dir.push(component);
    }
    Ok(None)
}

/// Whether the file system under the folder `root` ignores case, told by its marker: true
/// when `.STFOLDER` is `.stfolder`. One look costs two `stat`s, so callers that would read
/// directories to find a case conflict ask first.
pub fn ignores_case(root: &Path) -> bool {
    let (Ok(lower), Ok(upper)) = (
        std::fs::symlink_metadata(root.join(crate::engine::MARKER)),
        std::fs::symlink_metadata(root.join(crate::engine::MARKER.to_uppercase())),
    ) else {
        return false;
    };
    same_entry(&lower, &upper)
}

#[cfg(unix)]
fn same_entry(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Without inode numbers at hand (Windows, whose file systems ignore case by default), both
/// names being there is taken as one entry.
#[cfg(not(unix))]
fn same_entry(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// The failed item's reason for a name that meets `other` on a case-insensitive disk.
pub fn case_conflict_reason(other: &str) -> String {
    format!(
        "it differs only in case from {other:?}, which is on disk: this file system holds both as one name; \
         rename one of them on the device that has both"
    )
}

/// Names the puller is writing, folded to lower case, each with a lock: two names that differ
/// only in case are pulled one after the other, so the second finds the first on disk (and is
/// a case conflict where the file system ignores case) instead of racing it for one file.
/// Entries live as long as a download holds them, so it is bounded by the downloads at once.
#[derive(Default)]
pub struct CaseLocks(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl CaseLocks {
    /// Waits until no other download of a name equal to `name` but for case runs.
    pub async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, l| l.strong_count() > 0);
            let key = name.to_lowercase();
            match map.get(&key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Removes the regular file at `path` (named `base`) if it is a download temporary last
/// written more than [`KEEP_TEMPORARIES`] before `now` (`modified_s`, Unix seconds): the
/// download it belonged to is not coming back to it. True if it did.
pub fn remove_if_stale_temporary(
    path: &Path,
    base: &str,
    modified_s: i64,
    now: SystemTime,
) -> io::Result<bool> {
    let now_s = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stale = i64::try_from(now_s.saturating_sub(KEEP_TEMPORARIES.as_secs())).unwrap_or(i64::MAX);
    if !crate::scan::is_temp(base) || modified_s >= stale {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_differs_only_in_case_is_found_on_the_way_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("Photos/2024")).unwrap();
        std::fs::write(root.join("Photos/2024/IMG.jpg"), b"x").unwrap();
        assert_eq!(case_conflict(root, "Photos/2024/IMG.jpg").unwrap(), None, "exactly so");
        assert_eq!(case_conflict(root, "Photos/2024/new.jpg").unwrap(), None, "not there at all");
        assert_eq!(
            case_conflict(root, "Photos/2024/img.JPG").unwrap().as_deref(),
            Some("Photos/2024/IMG.jpg")
        );
        assert_eq!(case_conflict(root, "photos/2024/x").unwrap().as_deref(), Some("Photos"));
        assert!(case_conflict_reason("Photos").contains("case"));
    }

    #[test]
    fn only_old_temporaries_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_268_583);
        let day_ago = 1_795_268_583 - 86_400;
        for base in [".syncthing.a.tmp", "~syncthing~b.tmp", "c.tmp"] {
            std::fs::write(dir.path().join(base), b"x").unwrap();
        }
        let p = |b: &str| dir.path().join(b);
        assert!(
            !remove_if_stale_temporary(&p(".syncthing.a.tmp"), ".syncthing.a.tmp", day_ago + 10, now)
                .unwrap()
        );
        assert!(
            remove_if_stale_temporary(&p(".syncthing.a.tmp"), ".syncthing.a.tmp", day_ago - 10, now).unwrap()
        );
        assert!(remove_if_stale_temporary(&p("~syncthing~b.tmp"), "~syncthing~b.tmp", 0, now).unwrap());
        assert!(!remove_if_stale_temporary(&p("c.tmp"), "c.tmp", 0, now).unwrap());
        assert!(p("c.tmp").exists());
    }

    #[cfg(unix)]
    #[test]
    fn room_is_free_space_less_the_minimum() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap().unwrap();
        assert!(s.total >= s.free && s.total > 0, "{s:?}");
        assert_eq!(lacks_room(dir.path(), 0, MinFree::Bytes(0), "d", "x"), None);
        let full = lacks_room(dir.path(), s.total, MinFree::Percent(1), "the folder's disk", "min_disk_free");
        assert!(
            full.as_deref().is_some_and(|r| r.contains("not enough free space on the folder's disk")),
            "{full:?}"
        );
        assert_eq!(human(12_582_912), "12.6 MB");
        assert_eq!(human(999), "999 B");
    }
}

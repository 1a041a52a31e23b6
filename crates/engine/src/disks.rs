//! What the disk under a folder must allow before the puller writes to it, and what the sync
//! machinery leaves on it: enough free space (per folder, and on the home's disk, where the
//! index lives: Syncthing's `minDiskFree` and `minHomeDiskFree`), one entry per name on a
//! case-insensitive file system, and no temporary files older than a day.
//!
//! On a case-insensitive file system the index, not the disk, says how a name is spelled
//! where the disk cannot: some (lowntfs-3g's `ignore_case`) list every name in lower case, so
//! a listing would take the `A.txt` the puller wrote for a new `a.txt`, and `A.txt` for
//! deleted.
//!
//! The folder marker (an unmounted disk leaves an empty mount point without `.stfolder`) is
//! checked here too, before every file, as the engine checks it before every scan and pull.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::beneath::{Beneath, Open};
use crate::config::MinFree;
use crate::db::{DbError, FolderIdx, Index};
use crate::units::decimal_bytes as human;

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

/// On Windows: `GetDiskFreeSpaceExW`, whose free space is what this user may still use (quotas
/// included), as `f_bavail` is on Unix. `path` must exist (a directory or a file on the disk).
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn space(path: &Path) -> io::Result<Option<Space>> {
    use std::os::windows::ffi::OsStrExt as _;
    // The API takes a directory; a file's own directory is on the same disk.
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(path) };
    let wide: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: a NUL-terminated wide path and two u64s to fill; the third output is optional.
    let ok = unsafe {
        windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW(
            wide.as_ptr(),
            &mut free,
            &mut total,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(Space { free, total }))
}

/// Elsewhere the free space is not checked: an unknown free space allows the download, and a
/// full disk is still handled as it happens (see `after_failed_write`).
#[cfg(not(any(unix, windows)))]
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

/// What the checks before and after a download need to know of the folder the puller writes
/// to, as configured now.
pub(crate) struct FolderDisk<'a> {
    pub root: &'a Path,
    /// The home's directory, where the index lives; `None` for an index in memory.
    pub home: Option<&'a Path>,
    pub min: MinFree,
    pub home_min: MinFree,
    pub reserved: &'a Reserved,
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
pub(crate) fn before_download<'a>(folder: &FolderDisk<'a>, size: u64) -> Result<Reservation<'a>, String> {
    let marker = folder.root.join(crate::layout::MARKER);
    if std::fs::symlink_metadata(&marker).is_err() {
        return Err(format!(
            "folder marker {} is missing (is the disk mounted?); recreate it to resume",
            marker.display()
        ));
    }
    let others = folder.reserved.0.fetch_add(size, Ordering::Relaxed);
    let reservation = Reservation(folder.reserved, size);
    if let Some(reason) =
        lacks_room(folder.root, size.saturating_add(others), folder.min, "the folder's disk", "min_disk_free")
    {
        return Err(if others > 0 {
            format!("{reason}, with {} still to come from other downloads", human(others))
        } else {
            reason
        });
    }
    match folder.home.and_then(|h| {
        lacks_room(h, 0, folder.home_min, "the disk of the home, where the index is", "min_home_disk_free")
    }) {
        Some(reason) => Err(reason),
        None => Ok(reservation),
    }
}

/// The reason to report for a download that failed with `error`. When the folder's disk is
/// at or below its minimum now (full, most likely what made it fail), the temporary file
/// is removed (by `remove_tmp`): resuming from it would save a download but keep the
/// disk full meanwhile, for this and every other program on it.
pub(crate) fn after_failed_write(
    folder: &FolderDisk<'_>,
    error: String,
    remove_tmp: impl FnOnce() -> io::Result<()>,
) -> String {
    let full = matches!(space(folder.root), Ok(Some(s)) if s.free <= folder.min.bytes(s.total));
    if !full {
        return error;
    }
    match remove_tmp() {
        Ok(()) => format!("{error} (the disk is full: its temporary file was removed)"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => format!("{error} (the disk is full)"),
        Err(e) => format!("{error} (the disk is full, and its temporary file could not be removed: {e})"),
    }
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
        let folded = fold(component);
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
                && fold(s) == folded
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
        std::fs::symlink_metadata(root.join(crate::layout::MARKER)),
        std::fs::symlink_metadata(root.join(crate::layout::MARKER.to_uppercase())),
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

/// Whether the file system under the folder `root` lists names as they were created: false
/// when it lists them in a case of its own (lowntfs-3g's `ignore_case` lists every name in
/// lower case). Told by a probe file made and removed in the folder marker; where that cannot
/// be done (a read-only disk, the marker missing or not a directory) it answers true, the
/// usual case.
pub fn keeps_case(root: &Path) -> bool {
    const PROBE: &str = ".CaseProbe";
    let fs = Beneath::new(root);
    let marker = crate::layout::MARKER;
    if !fs.stat(marker).is_ok_and(|s| s.is_some_and(|s| s.kind == crate::stat::Kind::Directory)) {
        return true;
    }
    let probe = format!("{marker}/{PROBE}");
    if fs.open(&probe, Open::Create).is_err() {
        return true;
    }
    // Only listed here; removed by the name it was made with, which the kernel's cache of
    // names (FUSE) knows, not by the name listed.
    let mut listed_so = false;
    let listed = fs.remove_files_under(marker, &mut |name| {
        listed_so |= name == PROBE;
        false
    });
    let _ = fs.remove_all(&probe);
    listed.is_err() || listed_so
}

/// How the file system under a folder treats the case of names, found out once per scan and
/// only when asked (it costs a few system calls, and the probe of [`keeps_case`] a write).
#[derive(Debug)]
pub struct CaseSense {
    root: PathBuf,
    ignores: OnceCell<bool>,
    keeps: OnceCell<bool>,
}

impl CaseSense {
    pub fn new(root: PathBuf) -> Self {
        Self { root, ignores: OnceCell::new(), keeps: OnceCell::new() }
    }

    /// See [`ignores_case`].
    pub fn ignores(&self) -> bool {
        *self.ignores.get_or_init(|| ignores_case(&self.root))
    }

    /// Whether a listing may spell a name otherwise than it was created: the file system
    /// ignores case and does not keep it (see [`keeps_case`]).
    pub fn respells(&self) -> bool {
        self.ignores() && !*self.keeps.get_or_init(|| keeps_case(&self.root))
    }
}

/// The name this device's index holds (live) for what `name` (folder-relative) meets on a
/// case-insensitive disk, when that differs from `name` in case: the index's spelling of the
/// first component of `name` it does not hold exactly so (`Photos` for `photos/x`). `None`
/// when every component is indexed exactly so, or the first one that is not is not indexed in
/// any case.
///
/// This is [`case_conflict`] for a file system whose listing cannot tell (see
/// [`keeps_case`]); the puller and the scanner ask it only where the disk ignores case.
pub async fn case_twin(index: &Index, folder: FolderIdx, name: &str) -> Result<Option<String>, DbError> {
    let mut parent = String::new();
    for component in name.split('/') {
        let exact = if parent.is_empty() { component.to_owned() } else { format!("{parent}/{component}") };
        if index.local_file_head(folder, &exact).await?.is_some_and(|f| !f.deleted) {
            parent = exact;
            continue;
        }
        let folded = fold(&exact);
        let children = index.local_children(folder, &parent).await?;
        let twin = children.into_iter().find(|f| !f.deleted && f.name != exact && fold(&f.name) == folded);
        return Ok(twin.map(|f| f.name));
    }
    Ok(None)
}

/// For one directory's listing (`listed`, folder-relative names) from a file system that
/// spells names its own way (see [`keeps_case`]): the listed names the index does not hold
/// live, but holds live (in `indexed`) in another case and not listed so, each with the
/// index's spelling, by position in `listed`. They are the same entries: on such a disk no
/// two names that differ only in case can both be there.
pub fn indexed_spellings(listed: &[&str], indexed: &[&str]) -> Vec<(usize, String)> {
    let listed_set: HashSet<&str> = listed.iter().copied().collect();
    let indexed_set: HashSet<&str> = indexed.iter().copied().collect();
    // Index names the listing lacks, by folded name; a fold two of them share (possible only
    // for an index made on another disk) is left alone.
    let mut unlisted: HashMap<String, Option<&str>> = HashMap::new();
    for name in indexed.iter().copied().filter(|n| !listed_set.contains(n)) {
        unlisted.entry(fold(name)).and_modify(|e| *e = None).or_insert(Some(name));
    }
    if unlisted.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, name) in listed.iter().enumerate().filter(|(_, n)| !indexed_set.contains(*n)) {
        if let Some(spelled) = unlisted.get_mut(&fold(name)).and_then(Option::take) {
            out.push((i, spelled.to_owned()));
        }
    }
    out
}

/// Names compared as a case-insensitive disk compares them (near enough: file systems fold
/// some characters otherwise than Unicode's lower case does).
fn fold(name: &str) -> String {
    name.to_lowercase()
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
///
/// It also holds the names put on disk and not yet recorded in the index (the puller records
/// in batches): the second of two names finds the first there, where the index does not have
/// it yet and the disk's listing may spell it as the second (see [`keeps_case`]).
#[derive(Default)]
pub struct CaseLocks {
    locks: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    written: std::sync::Mutex<HashMap<String, String>>,
}

impl CaseLocks {
    /// Waits until no other download of a name equal to `name` but for case runs.
    pub async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, l| l.strong_count() > 0);
            let key = fold(name);
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

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `name` is on disk now, not yet in the index.
    pub fn wrote(&self, name: &str) {
        self.written().insert(fold(name), name.to_owned());
    }

    /// These names are in the index now (or the pull is over): forgotten.
    pub fn recorded<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut written = self.written();
        for name in names {
            if written.get(&fold(name)).is_some_and(|n| n == name) {
                written.remove(&fold(name));
            }
        }
    }

    /// Forgets every name written (at the start of a pull: the last one recorded its own).
    pub fn forget_written(&self) {
        self.written().clear();
    }

    /// A name written and not yet recorded that `name`, or a directory on its way, differs
    /// from only in case: the one written, as far as it meets `name` (`Photos` for
    /// `photos/x`).
    pub fn written_twin(&self, name: &str) -> Option<String> {
        let written = self.written();
        let ends = name.match_indices('/').map(|(i, _)| i).chain([name.len()]);
        ends.map(|end| &name[..end])
            .find_map(|prefix| written.get(&fold(prefix)).filter(|w| *w != prefix).cloned())
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
    if !crate::layout::is_temp(base) || modified_s >= stale {
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
    fn a_listing_that_spells_names_its_own_way_takes_the_index_spelling() {
        let listed = ["d/a.txt", "d/b.txt", "d/new", "d/photos"];
        let indexed = ["d/A.txt", "d/b.txt", "d/Gone", "d/Photos", "d/photos.old"];
        assert_eq!(
            indexed_spellings(&listed, &indexed),
            [(0, "d/A.txt".to_owned()), (3, "d/Photos".to_owned())]
        );
        assert!(indexed_spellings(&["a", "b"], &["a", "b"]).is_empty(), "all exactly so");
        // Both spellings indexed (an index made on another disk): neither is guessed.
        assert!(indexed_spellings(&["ab"], &["AB", "Ab"]).is_empty());
        assert!(indexed_spellings(&["x"], &["X", "x"]).is_empty(), "x is indexed exactly so");
        assert!(indexed_spellings(&["y"], &["X"]).is_empty());
    }

    #[test]
    fn names_written_and_not_yet_recorded_are_found_in_another_case() {
        let locks = CaseLocks::default();
        locks.wrote("Photos");
        locks.wrote("A.txt");
        assert_eq!(locks.written_twin("a.txt").as_deref(), Some("A.txt"));
        assert_eq!(locks.written_twin("A.txt"), None, "itself");
        assert_eq!(locks.written_twin("photos/x").as_deref(), Some("Photos"));
        assert_eq!(locks.written_twin("Photos/x"), None);
        locks.recorded(["A.txt"]);
        assert_eq!(locks.written_twin("a.txt"), None);
        locks.forget_written();
        assert_eq!(locks.written_twin("photos"), None);
    }

    // Windows' file systems (and Wine's view of any) ignore case, so a temporary directory there
    // is the other case; the case-insensitive side is tested on NTFS in tests/it.
    #[cfg(unix)]
    #[test]
    fn a_file_system_that_keeps_case_is_told_by_a_probe_it_removes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(keeps_case(dir.path()), "no marker: taken to keep case");
        std::fs::create_dir(dir.path().join(crate::layout::MARKER)).unwrap();
        assert!(keeps_case(dir.path()));
        assert_eq!(std::fs::read_dir(dir.path().join(crate::layout::MARKER)).unwrap().count(), 0);
        let sense = CaseSense::new(dir.path().to_owned());
        assert!(!sense.ignores() && !sense.respells());
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

    /// Runs on Linux (statvfs) and, in `.ci/run`, on Windows under Wine (GetDiskFreeSpaceExW).
    #[test]
    fn room_is_free_space_less_the_minimum() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap().unwrap();
        assert!(s.total >= s.free && s.total > 0, "{s:?}");
        // A file is measured by the disk it is on.
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(space(&file).unwrap().unwrap().total, s.total);
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

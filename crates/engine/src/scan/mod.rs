//! The scanner: brings a folder's local index in line with what is on disk.
//!
//! It owns the walk (honouring `.stignore`), change detection and hashing. A walk runs on a
//! blocking thread and goes one directory at a time: it lists the directory, reads the index's
//! entries for it ([`Index::local_children`]) and merges the two sorted lists. Unchanged entries
//! (same type, size, modification time and permissions) cost a `stat`; new and changed files
//! are hashed on all cores; entries gone from disk become tombstones. Changes go to a writer
//! task in batches, each committed in one transaction, so memory stays bounded by the largest
//! directory and the batch size, not by the folder.
//!
//! Every local change bumps this device's counter in the entry's version vector and gets the
//! folder's next sequence number. A file that cannot be read is reported with its path and
//! reason while the scan goes on; a file that changes while it is hashed is hashed again, and
//! never recorded with a mix of old and new blocks.
//!
//! The mass-delete guard: a scan holds its deletions back until the walk is over, and records
//! none of them when they would remove more than half of the folder's files at once (see
//! [`MassDelete`]); the rest of that scan is recorded. The engine then asks the user, who
//! confirms ([`Scanner::scan_confirmed`]) or restores the files.

pub(crate) mod disk;
pub(crate) mod hash;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use unicode_normalization::{UnicodeNormalization as _, is_nfc};

use self::disk::{Kind, Stat};
use self::hash::{HashError, hash_file};
use crate::bep::{self, FileInfo, FileType, Vector, VectorOrdering};
use crate::db::{DbError, FolderIdx, Index, LocalWriter};
use crate::identity::ShortId;
use crate::ignore::{IgnoreError, Ignores};
use crate::layout::{is_internal, is_temp, temp_target};

/// Files queued for hashing before the queue is hashed in parallel.
const HASH_QUEUE_FILES: usize = 256;
/// Bytes queued for hashing before the queue is hashed in parallel.
const HASH_QUEUE_BYTES: u64 = 64 << 20;
/// Changes per batch sent to the writer.
const WRITE_BATCH: usize = 4096;
/// The longest the scanner's writer keeps changes in one open transaction before committing
/// them, whether or not more batches arrive.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Entries read per query when a whole subtree is deleted or ignored.
const SUBTREE_PAGE: u32 = 1000;
/// How often a file that keeps changing under the hasher is tried before giving up until the
/// next scan.
const HASH_ATTEMPTS: usize = 3;
/// The fewest deleted files that count as a mass delete. Half of a small folder is a handful of
/// files (a user tidying up a folder of three files deletes two), and asking about that would
/// train users to confirm without reading; ten files is where an accidental `rm` or an emptied
/// mount starts to cost real work to restore.
pub const MASS_DELETE_MIN: u64 = 10;
/// Deletions a guarded scan holds in memory until it knows whether they are a mass delete.
/// Beyond that it only counts them, and a scan that then turns out not to be a mass delete walks
/// the folder a second time to record them: memory stays bounded whatever the folder's size,
/// and only a scan deleting this many files in a folder of more than twice as many pays for it.
const HELD_DELETES: usize = 65_536;
/// Download temporaries the scanner remembers (kept because their file was still needed) to
/// look at again after the next pull. Beyond that, the next full scan finds them.
const KEPT_TEMPS: usize = 1024;

/// Errors that stop a scan. Problems with single files are [`ScanIssue`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The folder root is missing: most likely an unmounted disk. Nothing is marked deleted.
    #[error("folder path {0} does not exist (is the disk mounted?)")]
    FolderMissing(PathBuf),
    #[error("folder path {0} is not a directory")]
    NotADirectory(PathBuf),
    /// The folder was indexed before and its marker is gone: most likely a disk mounted
    /// elsewhere or not at all. Nothing is marked deleted.
    #[error("folder marker {0} is missing (is the disk mounted?); recreate it to resume")]
    MarkerMissing(PathBuf),
    #[error("cannot read folder path {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the folder's ignore patterns")]
    Ignores(#[from] IgnoreError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the scan was interrupted")]
    Interrupted,
}

/// A file or directory the scan had to pass over, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScanIssue {
    /// Folder-relative path (lossy for names that are not UTF-8).
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for ScanIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Live counters of a running scan, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    pub entries: AtomicU64,
    pub hashed_files: AtomicU64,
    pub hashed_bytes: AtomicU64,
}

/// Deletions a scan found and did not record because they would have removed more than half
/// of the folder's files at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MassDelete {
    /// Files and symlinks the scan found gone (directories are not counted).
    pub deleted: u64,
    /// Live files and symlinks the index held before the scan.
    pub total: u64,
}

impl MassDelete {
    /// Whether deleting `deleted` of `total` files at once is a mass delete: at least
    /// [`MASS_DELETE_MIN`] files, and more than half of them.
    pub fn is_mass(deleted: u64, total: u64) -> bool {
        deleted >= MASS_DELETE_MIN && deleted.saturating_mul(2) > total
    }
}

/// What a finished scan saw and did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScanSummary {
    /// Live files, directories and symlinks seen on disk (not ignored).
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes in the files seen.
    pub bytes: u64,
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    /// Entries recorded as changed (new, modified, deleted or newly ignored).
    pub changed: u64,
    /// Of those, entries that became tombstones.
    pub deleted: u64,
    /// The folder's sequence after the scan.
    pub sequence: i64,
    pub issues: Vec<ScanIssue>,
    #[schema(value_type = SerdeDuration)]
    pub duration: Duration,
    /// Set when the scan's deletions were held back as a mass delete: none of them was
    /// recorded (everything else the scan found was).
    pub held_deletes: Option<MassDelete>,
}

/// A `Duration` as serde writes it, for the API document: whole seconds and the nanoseconds
/// beyond them.
#[derive(utoipa::ToSchema)]
#[schema(as = Duration)]
#[allow(dead_code)] // Only its schema is used.
struct SerdeDuration {
    secs: u64,
    nanos: u32,
}

/// Called with a file's name and block index after each block is hashed (tests only).
type HookFn = dyn Fn(&str, u64) -> std::io::Result<()> + Send + Sync;
type TestHook = Arc<HookFn>;

/// Scans one folder into the index.
#[derive(Clone)]
pub struct Scanner {
    index: Index,
    folder: FolderIdx,
    root: PathBuf,
    me: ShortId,
    progress: Arc<Progress>,
    hook: Option<TestHook>,
    /// Permission bits are not recorded from disk (the folder's `ignore_permissions`).
    ignore_permissions: bool,
    /// [`HELD_DELETES`], smaller in tests.
    held_deletes: usize,
    /// Download temporaries (folder-relative) the last scans kept because their file was
    /// needed; see [`Scanner::drop_unneeded_temps`].
    kept_temps: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scanner {
    /// A scanner for the folder at `root`, recorded in `index` as `folder`, changed by device `me`.
    pub fn new(index: Index, folder: FolderIdx, root: PathBuf, me: ShortId) -> Self {
        Self {
            index,
            folder,
            root,
            me,
            progress: Arc::default(),
            hook: None,
            ignore_permissions: crate::config::IGNORE_PERMISSIONS_BY_DEFAULT,
            held_deletes: HELD_DELETES,
            kept_temps: Arc::default(),
        }
    }

    /// Whether the permission bits on disk are ignored (the folder's `ignore_permissions`; on
    /// by default on Windows): entries then carry `no_permissions` and the bits they had, and a
    /// change of the bits alone is no change.
    pub fn with_ignore_permissions(mut self, ignore: bool) -> Self {
        self.ignore_permissions = ignore;
        self
    }

    #[cfg(test)]
    fn with_held_deletes(mut self, n: usize) -> Self {
        self.held_deletes = n;
        self
    }

    /// The counters of the scans this scanner runs.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    #[cfg(test)]
    fn with_hook(mut self, hook: impl Fn(&str, u64) -> std::io::Result<()> + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Scans the whole folder (`subs` empty) or just the given folder-relative paths and what
    /// lies below them, with the mass-delete guard: if the scan finds more than half of the
    /// folder's files gone (and at least [`MASS_DELETE_MIN`]), it records none of those
    /// deletions and says so in [`ScanSummary::held_deletes`].
    ///
    /// Only the deletions are held back: additions and changes the same scan finds are
    /// recorded, since recording them loses nothing anywhere (the old names stay on every
    /// device until the user decides), while holding them too would stop the folder from
    /// syncing anything until the user is back.
    pub async fn scan(&self, subs: &[String]) -> Result<ScanSummary, ScanError> {
        self.scan_with(subs, true).await
    }

    /// Scans like [`scan`](Self::scan), recording every deletion however many there are: the
    /// user confirmed a mass delete.
    pub async fn scan_confirmed(&self, subs: &[String]) -> Result<ScanSummary, ScanError> {
        self.scan_with(subs, false).await
    }

    /// Removes the download temporaries that scans kept (their file was needed then) and whose
    /// file is no longer needed: the peer deleted, renamed or replaced it before this device
    /// finished it, and no pull will use it again. Only between pulls: a pull writes them.
    pub async fn drop_unneeded_temps(&self) -> Result<(), ScanError> {
        let kept =
            std::mem::take(&mut *self.kept_temps.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut still = Vec::new();
        for temp in kept {
            let (dir, base) = temp.rsplit_once('/').unwrap_or(("", temp.as_str()));
            let Some(target) = temp_target(base) else { continue };
            if self.index.needs_file(self.folder, &join(dir, target)).await? {
                still.push(temp);
                continue;
            }
            match tokio::fs::remove_file(self.root.join(&temp)).await {
                Ok(()) => tracing::debug!(path = %temp, "removed a temporary file no longer needed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %temp, error = %e, "cannot remove a temporary file"),
            }
        }
        self.kept_temps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(still);
        Ok(())
    }

    async fn scan_with(&self, subs: &[String], guarded: bool) -> Result<ScanSummary, ScanError> {
        let started = Instant::now();
        let total = if guarded {
            let counts = self.index.local_counts(self.folder).await?;
            Some(counts.files + counts.symlinks)
        } else {
            None
        };
        let (mut summary, record_deletes) = self.walk(subs, total).await?;
        if record_deletes {
            // Too many deletions to hold, but not a mass delete: walk again, recording them.
            // What the first walk recorded is unchanged now, so this costs a stat per entry.
            let first = summary;
            (summary, _) = self.walk(subs, None).await?;
            summary.changed += first.changed;
            summary.hashed_files += first.hashed_files;
            summary.hashed_bytes += first.hashed_bytes;
        }
        summary.sequence = self.index.folder_sequence(self.folder).await?;
        summary.duration = started.elapsed();
        Ok(summary)
    }

    /// One walk. With `total` (the folder's live files before the scan) deletions are held
    /// back; returns whether they were too many to hold and must be recorded by another walk.
    async fn walk(&self, subs: &[String], total: Option<u64>) -> Result<(ScanSummary, bool), ScanError> {
        let root_stat = match Stat::of_path(&self.root) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ScanError::FolderMissing(self.root.clone()));
            }
            Err(source) => return Err(ScanError::Root { path: self.root.clone(), source }),
        };
        if root_stat.kind != Kind::Directory {
            return Err(ScanError::NotADirectory(self.root.clone()));
        }
        let root = self.root.clone();
        let ignores = tokio::task::spawn_blocking(move || Ignores::load(&root))
            .await
            .map_err(|_| ScanError::Interrupted)??;

        let (tx, mut rx) = mpsc::channel::<Vec<FileInfo>>(2);
        let (index, folder) = (self.index.clone(), self.folder);
        let writer = tokio::spawn(async move {
            // Batches share a transaction for up to COMMIT_INTERVAL: fewer commits rewrite the
            // hash-keyed index pages fewer times. A crash loses at most that much scanning. The
            // deadline holds while the walk is busy elsewhere (hashing a huge file), so the one
            // write connection is never held for long.
            let mut open: Option<(LocalWriter, tokio::time::Instant)> = None;
            loop {
                let next = match &open {
                    Some((_, deadline)) => match tokio::time::timeout_at(*deadline, rx.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            if let Some((writer, _)) = open.take() {
                                writer.commit().await?;
                            }
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                let Some(mut batch) = next else { break };
                let (writer, _) = match open.as_mut() {
                    Some(w) => w,
                    None => open.insert((
                        index.local_writer(folder).await?,
                        tokio::time::Instant::now() + COMMIT_INTERVAL,
                    )),
                };
                writer.apply(&mut batch).await?;
            }
            if let Some((writer, _)) = open {
                writer.commit().await?;
            }
            Ok::<_, DbError>(())
        });

        let mut walk = Walk {
            rt: Handle::current(),
            index: self.index.clone(),
            folder: self.folder,
            root: self.root.clone(),
            me: self.me,
            now: crate::clock::unix_now(),
            ignores,
            tx,
            hash_queue: Vec::new(),
            hash_queue_bytes: 0,
            batch: Vec::new(),
            summary: ScanSummary::default(),
            progress: Arc::clone(&self.progress),
            hook: self.hook.clone(),
            ignore_permissions: self.ignore_permissions,
            kept_temps: Vec::new(),
            pull_intents: self.index.has_pull_intents(self.folder).await?,
            guard: total.map(|total| DeleteGuard {
                total,
                files: 0,
                held: Vec::new(),
                overflowed: false,
                max_held: self.held_deletes,
            }),
            case: crate::disks::CaseSense::new(self.root.clone()),
        };
        let (full, subs) = (subs.is_empty(), subs.to_vec());
        let walked = tokio::task::spawn_blocking(move || {
            walk.run(&subs)?;
            let again =
                walk.guard.as_ref().is_some_and(|g| g.overflowed) && walk.summary.held_deletes.is_none();
            Ok::<_, ScanError>((walk.summary, again, walk.kept_temps))
        })
        .await;
        // The writer's error, if any, is the cause of an interrupted walk: report it first.
        writer.await.map_err(|_| ScanError::Interrupted)??;
        let (summary, again, temps) = walked.map_err(|_| ScanError::Interrupted)??;
        let mut kept = self.kept_temps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if full {
            kept.clear();
        }
        kept.extend(temps);
        kept.sort_unstable();
        kept.dedup();
        kept.truncate(KEPT_TEMPS);
        Ok((summary, again))
    }
}

/// A file waiting to be hashed.
struct HashJob {
    name: String,
    stat: Stat,
    prev: Option<FileInfo>,
}

/// A guarded walk's deletions, held back until the walk knows how many there are.
struct DeleteGuard {
    /// Live files and symlinks before the scan.
    total: u64,
    /// Files and symlinks among the deletions so far.
    files: u64,
    /// The deletions (directories too), while there are at most `max_held`.
    held: Vec<FileInfo>,
    /// More than `max_held` deletions: they are only counted.
    overflowed: bool,
    max_held: usize,
}

/// One scan in progress, on a blocking thread.
struct Walk {
    rt: Handle,
    index: Index,
    folder: FolderIdx,
    root: PathBuf,
    me: ShortId,
    now: u64,
    ignores: Ignores,
    tx: mpsc::Sender<Vec<FileInfo>>,
    hash_queue: Vec<HashJob>,
    hash_queue_bytes: u64,
    batch: Vec<FileInfo>,
    summary: ScanSummary,
    progress: Arc<Progress>,
    hook: Option<TestHook>,
    ignore_permissions: bool,
    /// Download temporaries this walk kept because their file is needed.
    kept_temps: Vec<String>,
    /// Whether the index holds pull intents (a pull was interrupted): only then are new and
    /// changed files looked up there.
    pull_intents: bool,
    /// Set for a guarded scan: deletions wait here instead of going to the writer.
    guard: Option<DeleteGuard>,
    /// Whether the disk ignores case, and spells listed names its own way.
    case: crate::disks::CaseSense,
}

impl Walk {
    fn run(&mut self, subs: &[String]) -> Result<(), ScanError> {
        if subs.is_empty() {
            self.walk_tree("")?;
        } else {
            // Resolve every hint to where the scan must start, then drop repeats and starts
            // inside other starts: two hints in one new directory scan it once.
            let mut starts = Vec::new();
            for sub in self.normalize_subs(subs) {
                starts.push(self.first_unknown_ancestor(&sub)?);
            }
            for start in outermost(starts) {
                self.scan_path(&start)?;
            }
        }
        self.hash_queued()?;
        self.release_deletes()?;
        self.send_batch()
    }

    /// At the end of a guarded walk: records the held deletions unless they are a mass delete
    /// (or were too many to hold, for the caller to record by walking again).
    fn release_deletes(&mut self) -> Result<(), ScanError> {
        let Some(guard) = self.guard.take() else { return Ok(()) };
        if MassDelete::is_mass(guard.files, guard.total) {
            tracing::warn!(deleted = guard.files, total = guard.total, "scan: mass delete held back");
            self.summary.held_deletes = Some(MassDelete { deleted: guard.files, total: guard.total });
        } else if !guard.overflowed {
            for info in guard.held {
                self.record(info)?;
            }
        }
        // Kept (emptied) so the caller can see whether it overflowed.
        self.guard = Some(DeleteGuard { held: Vec::new(), ..guard });
        Ok(())
    }

    /// Canonical, deduplicated sub-paths, none below another.
    fn normalize_subs(&mut self, subs: &[String]) -> Vec<String> {
        let mut clean: Vec<String> = Vec::new();
        for sub in subs {
            let s = sub.replace('\\', "/");
            let s: String = s.trim_matches('/').nfc().collect();
            if s.is_empty() || s == "." {
                return vec![String::new()];
            }
            if bep::is_canonical_name(&s) {
                clean.push(s);
            } else {
                self.issue(sub, "not a clean folder-relative path; ignored");
            }
        }
        outermost(clean)
    }

    /// For a watcher hint deep in a tree the index does not know yet (a new directory), the
    /// topmost ancestor that is not a live directory in the index: scanning from there records
    /// the new directories too.
    fn first_unknown_ancestor(&self, sub: &str) -> Result<String, ScanError> {
        if sub.is_empty() {
            return Ok(String::new());
        }
        for (i, _) in sub.match_indices('/') {
            let anc = &sub[..i];
            let known = self.block_on(self.index.local_file(self.folder, anc))?;
            if !known.is_some_and(|f| f.is_directory() && !f.deleted && !f.invalid) {
                return Ok(anc.to_owned());
            }
        }
        Ok(sub.to_owned())
    }

    /// Scans one path (and, for a directory, everything below it).
    fn scan_path(&mut self, name: &str) -> Result<(), ScanError> {
        if name.is_empty() {
            return self.walk_tree("");
        }
        if is_internal(name) {
            return Ok(());
        }
        let known = self.block_on(self.index.local_file(self.folder, name))?;
        let stat = Stat::of_path(&self.root.join(name));
        // A case-insensitive disk resolves a name the index does not know to an entry that
        // differs from it in case: that entry is scanned under its own name (the index's, on
        // a disk whose listing cannot tell; else a listing's), never under this one.
        if stat.is_ok() && known.is_none() && self.case.ignores() {
            if self.case.respells()
                && let Some(twin) = self.block_on(crate::disks::case_twin(&self.index, self.folder, name))?
            {
                return self.scan_path(&twin);
            }
            if crate::disks::case_conflict(&self.root, name).is_ok_and(|c| c.is_some()) {
                return Ok(());
            }
        }
        match stat {
            Ok(stat) => {
                if self.handle_entry(name, stat, known.as_ref())? {
                    self.walk_tree(name)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(known) = known {
                    self.vanished(&known)?;
                }
            }
            Err(e) => self.issue(name, &e.to_string()),
        }
        Ok(())
    }

    /// Walks the directory `start` (`""` for the root) depth-first, merging each directory's
    /// listing with the index.
    fn walk_tree(&mut self, start: &str) -> Result<(), ScanError> {
        let mut stack = vec![start.to_owned()];
        while let Some(dir) = stack.pop() {
            let mut subdirs = self.merge_dir(&dir)?;
            subdirs.reverse();
            stack.extend(subdirs);
            if self.tx.is_closed() {
                return Err(ScanError::Interrupted);
            }
        }
        Ok(())
    }

    /// Merges one directory's listing with the index; returns the subdirectories to descend
    /// into, in name order.
    fn merge_dir(&mut self, dir: &str) -> Result<Vec<String>, ScanError> {
        let abs = self.root.join(dir);
        // The index's side is read on the runtime while this thread lists the disk's side.
        let (index, folder, d) = (self.index.clone(), self.folder, dir.to_owned());
        let in_index = self.rt.spawn(async move { index.local_children(folder, &d).await });
        let (entries, errors) = match disk::list_dir(&abs) {
            Ok(x) => x,
            Err(e) => {
                // Unreadable: leave what the index says about it alone rather than delete it.
                self.issue(dir, &format!("cannot list directory: {e}"));
                in_index.abort();
                return Ok(Vec::new());
            }
        };
        // Entries we could not read must not be taken for deleted.
        let mut keep: HashSet<String> = HashSet::new();
        for (file_name, e) in errors {
            let name = join(dir, &file_name.to_string_lossy());
            self.issue(&name, &e.to_string());
            keep.insert(name);
        }
        let mut on_disk: Vec<(String, Stat)> = Vec::with_capacity(entries.len());
        let now = std::time::SystemTime::now();
        for entry in entries {
            let Some(file_name) = self.usable_name(&abs, dir, &entry.file_name, &mut keep) else {
                continue;
            };
            if entry.stat.kind == Kind::File && is_temp(&file_name) {
                // A download's temporary file a day old is not resumed any more, needed or not
                // (Syncthing's scan removes them too).
                let path = abs.join(&file_name);
                match crate::disks::remove_if_stale_temporary(&path, &file_name, entry.stat.modified_s, now) {
                    Ok(true) => {}
                    Ok(false) => self.temp_found(dir, &file_name)?,
                    Err(e) => self
                        .issue(&join(dir, &file_name), &format!("cannot remove the old temporary file: {e}")),
                }
                continue;
            }
            let name = join(dir, &file_name);
            if !is_internal(&name) {
                on_disk.push((name, entry.stat));
            }
        }
        let in_index = self.rt.block_on(in_index).map_err(|_| ScanError::Interrupted)??;
        if self.case.ignores() {
            self.spell_as_indexed(&mut on_disk, &in_index);
        }
        on_disk.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let mut subdirs = Vec::new();
        let mut known = in_index.into_iter().peekable();
        for (name, stat) in on_disk {
            // Index entries that sort before this name are gone from disk.
            while let Some(k) = known.next_if(|k| k.name < name) {
                if !keep.contains(&k.name) && !is_internal(&k.name) {
                    self.vanished(&k)?;
                }
            }
            let prev = known.next_if(|k| k.name == name);
            if self.handle_entry(&name, stat, prev.as_ref())? {
                subdirs.push(name);
            }
        }
        for k in known {
            if !keep.contains(&k.name) && !is_internal(&k.name) {
                self.vanished(&k)?;
            }
        }
        Ok(subdirs)
    }

    /// On a disk that lists names in a case of its own, a listed entry the index holds in
    /// another case keeps the index's spelling: else the file the puller wrote as `A.txt`
    /// would be taken for a new `a.txt` (in conflict with a peer's `a.txt`) and `A.txt` for
    /// deleted (and deleted at every peer).
    fn spell_as_indexed(&self, on_disk: &mut [(String, Stat)], in_index: &[FileInfo]) {
        let listed: Vec<&str> = on_disk.iter().map(|(n, _)| n.as_str()).collect();
        let indexed: Vec<&str> = in_index.iter().filter(|f| !f.deleted).map(|f| f.name.as_str()).collect();
        let respelled = crate::disks::indexed_spellings(&listed, &indexed);
        // Only now is the disk probed: on one that keeps case, such a name is a case-only
        // rename by the user, to be recorded as one.
        if respelled.is_empty() || !self.case.respells() {
            return;
        }
        for (i, name) in respelled {
            on_disk[i].0 = name;
        }
    }

    /// A download's temporary file: kept while its file is needed (the next pull resumes from
    /// it), removed once it is not (a crash, or the peer deleting or replacing the file, left it
    /// behind). A scan never runs beside a pull of its folder, so no download is using it.
    fn temp_found(&mut self, dir: &str, base: &str) -> Result<(), ScanError> {
        let temp = join(dir, base);
        // A long name's temporary is named by its hash: whose it is cannot be told here.
        let Some(target) = temp_target(base) else { return Ok(()) };
        if self.block_on(self.index.needs_file(self.folder, &join(dir, target)))? {
            if self.kept_temps.len() < KEPT_TEMPS {
                self.kept_temps.push(temp);
            }
            return Ok(());
        }
        match std::fs::remove_file(self.root.join(&temp)) {
            Ok(()) => tracing::debug!(path = %temp, "scan: removed a temporary file no longer needed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.issue(&temp, &format!("cannot remove this stale temporary file: {e}")),
        }
        Ok(())
    }

    /// The UTF-8, NFC form of a directory entry's name, renaming the entry on disk to NFC when
    /// it is not (as Syncthing does), or `None` (with an issue) when it cannot be synced.
    fn usable_name(
        &mut self,
        abs_dir: &Path,
        dir: &str,
        file_name: &std::ffi::OsStr,
        keep: &mut HashSet<String>,
    ) -> Option<String> {
        let Some(s) = file_name.to_str() else {
            self.issue(&join(dir, &file_name.to_string_lossy()), "name is not valid UTF-8; skipped");
            return None;
        };
        if is_nfc(s) {
            return Some(s.to_owned());
        }
        let nfc: String = s.nfc().collect();
        // macOS file systems compare names normalization-insensitively: just use the NFC form.
        if cfg!(target_os = "macos") {
            return Some(nfc);
        }
        let (from, to) = (abs_dir.join(s), abs_dir.join(&nfc));
        if std::fs::symlink_metadata(&to).is_ok() {
            self.issue(&join(dir, s), &format!("name is not in Unicode NFC and {nfc:?} exists too; skipped"));
            keep.insert(join(dir, &nfc));
            return None;
        }
        match std::fs::rename(&from, &to) {
            Ok(()) => Some(nfc),
            Err(e) => {
                self.issue(&join(dir, s), &format!("name is not in Unicode NFC and renaming it failed: {e}"));
                None
            }
        }
    }

    /// Compares one entry on disk with its index entry and records what changed. Returns
    /// whether the walk should descend into it.
    fn handle_entry(&mut self, name: &str, stat: Stat, prev: Option<&FileInfo>) -> Result<bool, ScanError> {
        self.progress.entries.fetch_add(1, Relaxed);
        let live_prev = prev.filter(|p| !p.deleted);
        if self.ignores.matches(name).is_ignored() {
            if let Some(p) = live_prev.filter(|p| !p.invalid) {
                self.record(FileInfo { invalid: true, ..p.clone() })?;
            }
            if stat.kind == Kind::Directory {
                if self.ignores.skip_ignored_dirs() {
                    self.invalidate_below(name)?;
                    return Ok(false);
                }
                return Ok(true);
            }
            return Ok(false);
        }
        // A directory replaced by something else takes its contents with it.
        if let Some(p) = live_prev
            && p.is_directory()
            && stat.kind != Kind::Directory
        {
            self.delete_below(name)?;
        }
        match stat.kind {
            Kind::Other => {
                // Not syncable (a socket, a FIFO): as if deleted. Any subtree went just above.
                if let Some(p) = live_prev {
                    self.record(self.tombstone(p))?;
                }
                Ok(false)
            }
            Kind::File => {
                self.summary.files += 1;
                self.summary.bytes += stat.size;
                if !live_prev.is_some_and(|p| file_unchanged(p, &stat, self.ignore_permissions)) {
                    self.queue_hash(HashJob { name: name.to_owned(), stat, prev: prev.cloned() })?;
                }
                Ok(false)
            }
            Kind::Directory => {
                self.summary.directories += 1;
                let same_bits = |p: &FileInfo| self.ignore_permissions || p.permissions == stat.permissions;
                let unchanged = live_prev
                    .is_some_and(|p| !p.invalid && p.file_type == FileType::Directory && same_bits(p));
                if let Some(p) =
                    live_prev.filter(|p| p.invalid && p.file_type == FileType::Directory && same_bits(p))
                {
                    // No longer ignored and as recorded: that version, valid again.
                    self.record(FileInfo { invalid: false, ..p.clone() })?;
                } else if !unchanged {
                    let info = self.new_info(name, FileType::Directory, &stat, prev);
                    self.record(info)?;
                }
                Ok(true)
            }
            Kind::Symlink => {
                // Windows lets only privileged users make symlinks, and Peerfold makes none there
                // (as Syncthing): one found is reported and left out of the index, never followed.
                if cfg!(windows) {
                    self.issue(name, "symbolic links are not supported on Windows; skipped");
                    return Ok(false);
                }
                self.summary.symlinks += 1;
                let target = match std::fs::read_link(self.root.join(name)) {
                    Ok(t) => t,
                    Err(e) => {
                        self.issue(name, &format!("cannot read symlink: {e}"));
                        return Ok(false);
                    }
                };
                let Some(target) = target.to_str().map(|t| t.replace('\\', "/")) else {
                    self.issue(name, "symlink target is not valid UTF-8; skipped");
                    return Ok(false);
                };
                let same = live_prev.filter(|p| p.is_symlink() && p.symlink_target == target);
                if let Some(p) = same.filter(|p| p.invalid) {
                    self.record(FileInfo { invalid: false, ..p.clone() })?;
                } else if same.is_none() {
                    let mut info = self.new_info(name, FileType::Symlink, &stat, prev);
                    info.symlink_target = target;
                    self.record(info)?;
                }
                Ok(false)
            }
        }
    }

    /// A new index entry for what is on disk, its version bumped from `prev`'s.
    fn new_info(&self, name: &str, file_type: FileType, stat: &Stat, prev: Option<&FileInfo>) -> FileInfo {
        let symlink = file_type == FileType::Symlink;
        // Ignored bits: the entry keeps those it had (a peer's, say), so that editing a file
        // here does not change them for devices that apply them.
        let permissions = match prev {
            _ if symlink => 0,
            Some(p) if self.ignore_permissions && !p.deleted => p.permissions,
            _ => stat.permissions,
        };
        FileInfo {
            name: name.to_owned(),
            file_type,
            size: if file_type == FileType::File { stat.size } else { 0 },
            // BEP: symlinks carry no permissions and no modification time.
            permissions,
            no_permissions: symlink || self.ignore_permissions,
            modified_s: if symlink { 0 } else { stat.modified_s },
            modified_ns: if symlink { 0 } else { stat.modified_ns },
            modified_by: self.me,
            deleted: false,
            invalid: false,
            version: base_version(prev, self.me).updated(self.me, self.now),
            sequence: 0,
            block_size: 0,
            blocks: Vec::new(),
            symlink_target: String::new(),
        }
    }

    /// Records an index entry whose path is gone from disk as deleted, with everything below it.
    fn vanished(&mut self, known: &FileInfo) -> Result<(), ScanError> {
        if known.is_directory() {
            self.delete_below(&known.name)?;
        }
        self.record_gone(known)
    }

    /// Records what [`Walk::gone`] makes of an entry not on disk. What it makes of an ignored
    /// name deletes nothing anywhere, so it is not held back as part of a mass delete.
    fn record_gone(&mut self, known: &FileInfo) -> Result<(), ScanError> {
        match self.gone(known) {
            Some((info, false)) => {
                self.summary.changed += 1;
                self.record_unheld(info)
            }
            Some((info, true)) => self.record(info),
            None => Ok(()),
        }
    }

    /// What to record for an index entry whose path is not on disk, if anything, and whether it
    /// is a deletion (to hold back if it is part of a mass delete). A name ignored now is no
    /// deletion to announce: its entry is recorded as ignored (invalid) if it was not, and stays
    /// so — the user may remove an ignored file, or deselect a directory and move its copy
    /// away. An entry recorded as ignored whose name no longer is (the puller's record of a
    /// name this device ignored, or a file removed while ignored) becomes a deletion with the
    /// empty version, older than any other (as Syncthing 1.19 does), so that the global version
    /// is needed again and never loses to it.
    fn gone(&self, known: &FileInfo) -> Option<(FileInfo, bool)> {
        if self.ignores.matches(&known.name).is_ignored() {
            return (!known.invalid && !known.deleted)
                .then(|| (FileInfo { invalid: true, ..known.clone() }, false));
        }
        if !known.invalid {
            return (!known.deleted).then(|| (self.tombstone(known), true));
        }
        if known.deleted {
            // The deletion of an ignored name, at the global version: nothing is on disk, so
            // this device has it.
            return Some((FileInfo { invalid: false, ..known.clone() }, false));
        }
        let forgotten = FileInfo {
            deleted: true,
            invalid: false,
            size: 0,
            blocks: Vec::new(),
            modified_by: self.me,
            version: Vector::new(),
            sequence: 0,
            ..known.clone()
        };
        Some((forgotten, false))
    }

    fn tombstone(&self, known: &FileInfo) -> FileInfo {
        FileInfo {
            deleted: true,
            invalid: false,
            size: 0,
            blocks: Vec::new(),
            modified_by: self.me,
            modified_s: i64::try_from(self.now).unwrap_or(i64::MAX),
            modified_ns: 0,
            version: known.version.updated(self.me, self.now),
            // Keeps name, type, permissions and block size, as Syncthing does.
            ..known.clone()
        }
    }

    /// Tombstones every live index entry below `dir` (see [`Walk::record_gone`]).
    fn delete_below(&mut self, dir: &str) -> Result<(), ScanError> {
        self.for_each_below(dir, Self::record_gone)
    }

    /// Marks every valid index entry below `dir` invalid (the directory became ignored).
    fn invalidate_below(&mut self, dir: &str) -> Result<(), ScanError> {
        self.for_each_below(dir, |walk, f| {
            if f.deleted || f.invalid {
                return Ok(());
            }
            walk.record(FileInfo { invalid: true, ..f.clone() })
        })
    }

    /// Visits every index entry below `dir`, a page at a time, so a huge subtree is never
    /// held in memory.
    fn for_each_below(
        &mut self,
        dir: &str,
        mut visit: impl FnMut(&mut Self, &FileInfo) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        let mut after: Option<String> = None;
        loop {
            let page =
                self.block_on(self.index.local_below(self.folder, dir, after.as_deref(), SUBTREE_PAGE))?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.name.clone());
            for f in &page {
                visit(self, f)?;
            }
        }
    }

    fn queue_hash(&mut self, job: HashJob) -> Result<(), ScanError> {
        self.hash_queue_bytes += job.stat.size;
        self.hash_queue.push(job);
        if self.hash_queue.len() >= HASH_QUEUE_FILES || self.hash_queue_bytes >= HASH_QUEUE_BYTES {
            self.hash_queued()?;
        }
        Ok(())
    }

    /// Hashes the queued files on all cores and records the results.
    fn hash_queued(&mut self) -> Result<(), ScanError> {
        let jobs = std::mem::take(&mut self.hash_queue);
        self.hash_queue_bytes = 0;
        let (root, hook, progress) = (&self.root, self.hook.as_deref(), &self.progress);
        let results: Vec<(HashJob, Result<Vec<bep::BlockInfo>, String>)> = jobs
            .into_par_iter()
            .map(|mut job| {
                let r = hash_job(root, &mut job, hook);
                if r.is_ok() {
                    progress.hashed_files.fetch_add(1, Relaxed);
                    progress.hashed_bytes.fetch_add(job.stat.size, Relaxed);
                }
                (job, r)
            })
            .collect();
        for (job, result) in results {
            match result {
                Ok(blocks) => {
                    self.summary.hashed_files += 1;
                    self.summary.hashed_bytes += job.stat.size;
                    let mut info = self.new_info(&job.name, FileType::File, &job.stat, job.prev.as_ref());
                    info.block_size = block_size_of(&job);
                    info.blocks = blocks;
                    if let Some(p) = job.prev.as_ref().filter(|p| p.invalid && !p.deleted) {
                        // Listings carry no blocks: the ignored entry's own, if it kept any.
                        let recorded = self.block_on(self.index.local_file(self.folder, &p.name))?;
                        if recorded.as_ref().is_some_and(|r| same_file(r, &info)) {
                            // No longer ignored and exactly the version recorded while it was:
                            // that version, valid again (not a change to announce as new).
                            info.version = p.version.clone();
                            info.modified_by = p.modified_by;
                        }
                    }
                    self.adopt_pulled(&mut info, job.prev.as_ref())?;
                    self.record(info)?;
                }
                Err(reason) => self.issue(&job.name, &reason),
            }
        }
        Ok(())
    }

    /// A file the puller put in place and was stopped (a crash) before recording is not a local
    /// change: when the puller's intent for the name holds exactly this content and a version
    /// the index has not recorded yet, the file is recorded under that version, as the puller
    /// would have. A bumped version would be concurrent with the peer's: a conflict copy at
    /// the next change there, or a remote delete undone.
    fn adopt_pulled(&self, info: &mut FileInfo, prev: Option<&FileInfo>) -> Result<(), ScanError> {
        if !self.pull_intents {
            return Ok(());
        }
        let Some(intent) = self.block_on(self.index.pull_intent(self.folder, &info.name))? else {
            return Ok(());
        };
        let recorded = prev.is_some_and(|p| {
            matches!(p.version.compare(&intent.version), VectorOrdering::Equal | VectorOrdering::Greater)
        });
        if !recorded && bep::blocklist_hash(&info.blocks) == intent.blocklist_hash {
            info.version = intent.version;
            info.modified_by = intent.modified_by;
        }
        Ok(())
    }

    fn record(&mut self, info: FileInfo) -> Result<(), ScanError> {
        if info.deleted
            && let Some(guard) = self.guard.as_mut()
        {
            if info.file_type != FileType::Directory {
                guard.files += 1;
            }
            if guard.overflowed {
                return Ok(());
            }
            if guard.held.len() < guard.max_held {
                guard.held.push(info);
            } else {
                guard.overflowed = true;
                guard.held = Vec::new();
            }
            return Ok(());
        }
        self.summary.changed += 1;
        if info.deleted {
            self.summary.deleted += 1;
        }
        self.record_unheld(info)
    }

    /// Records an entry without the mass-delete guard.
    fn record_unheld(&mut self, info: FileInfo) -> Result<(), ScanError> {
        self.batch.push(info);
        if self.batch.len() >= WRITE_BATCH {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> Result<(), ScanError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.tx.blocking_send(batch).map_err(|_| ScanError::Interrupted)
    }

    fn issue(&mut self, path: &str, reason: &str) {
        tracing::warn!(path, reason, "scan: skipped");
        self.summary.issues.push(ScanIssue { path: path.to_owned(), reason: reason.to_owned() });
    }

    fn block_on<T>(&self, f: impl Future<Output = Result<T, DbError>>) -> Result<T, ScanError> {
        Ok(self.rt.block_on(f)?)
    }
}

/// The block size for a job: Syncthing's rule, keeping the previous size within a factor of two.
fn block_size_of(job: &HashJob) -> u32 {
    match &job.prev {
        Some(p) if p.file_type == FileType::File && !p.deleted && p.block_size != 0 => {
            bep::block_size_with_hysteresis(job.stat.size, p.block_size)
        }
        _ => bep::block_size_for(job.stat.size),
    }
}

/// Hashes a queued file, stat-ing it again and retrying when it changes under the hasher.
/// On success `job.stat` describes exactly the content hashed.
fn hash_job(root: &Path, job: &mut HashJob, hook: Option<&HookFn>) -> Result<Vec<bep::BlockInfo>, String> {
    let path = root.join(&job.name);
    let name = job.name.clone();
    let block_hook = |i: u64| hook.map_or(Ok(()), |h| h(&name, i));
    for _ in 0..HASH_ATTEMPTS {
        match hash_file(&path, &job.stat, block_size_of(job), &block_hook) {
            Ok(blocks) => return Ok(blocks),
            Err(HashError::Changed) => match Stat::of_path(&path) {
                Ok(stat) if stat.kind == Kind::File => job.stat = stat,
                Ok(_) => return Err("it was replaced while being read; will retry on the next scan".into()),
                Err(e) => {
                    return Err(format!(
                        "it disappeared while being read ({e}); will retry on the next scan"
                    ));
                }
            },
            Err(HashError::Io(e)) => return Err(format!("cannot read file: {e}")),
        }
    }
    Err(format!("it kept changing while being read ({HASH_ATTEMPTS} tries); will retry on the next scan"))
}

/// The paths that are not below another path of the list, sorted, without repeats (`""`, the
/// folder root, is above everything).
fn outermost(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        if !out.iter().any(|o| bep::is_within(&p, o)) {
            out.push(p);
        }
    }
    out
}

/// The version a new local entry is bumped from. An entry recorded as ignored (invalid) may
/// hold a version this device's disk never had (the puller records the global version of an
/// ignored name): as Syncthing does, only this device's own counter is kept, so the new entry
/// is concurrent with the others' and the conflict rules decide instead of it silently
/// replacing a newer version.
fn base_version(prev: Option<&FileInfo>, me: ShortId) -> Vector {
    match prev {
        None => Vector::new(),
        Some(p) if p.invalid => {
            Vector::from_counters(p.version.counters().iter().copied().filter(|c| c.id == me))
        }
        Some(p) => p.version.clone(),
    }
}

/// A hashed file that is the (live) entry `prev`: same size, modification time and permissions
/// (what the scanner trusts everywhere to skip hashing) and, when `prev` kept its blocks, the
/// same content.
fn same_file(prev: &FileInfo, now: &FileInfo) -> bool {
    !prev.deleted
        && prev.file_type == FileType::File
        && prev.size == now.size
        && prev.modified_s == now.modified_s
        && prev.modified_ns == now.modified_ns
        && prev.permissions == now.permissions
        && (prev.blocks.is_empty() || prev.blocks == now.blocks)
}

/// Same type, size, modification time and permissions (unless ignored) as recorded: not
/// rehashed.
fn file_unchanged(prev: &FileInfo, stat: &Stat, ignore_permissions: bool) -> bool {
    !prev.invalid
        && prev.file_type == FileType::File
        && prev.size == stat.size
        && prev.modified_s == stat.modified_s
        && prev.modified_ns == stat.modified_ns
        && (ignore_permissions || prev.permissions == stat.permissions)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

#[cfg(test)]
mod tests;

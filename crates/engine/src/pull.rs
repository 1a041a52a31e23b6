//! The puller: makes a folder on disk what its global state says, one needed entry at a time,
//! and records each result in the local index.
//!
//! It owns the on-disk side of applying remote changes: temporary files, block fetching (from
//! local files that already hold a block, else from every connected peer that has the file),
//! hash verification, conflict copies and trash-can versioning. The order is Syncthing's:
//! directories, files and symlinks in name order (a directory before its contents), then deletes
//! deepest first, so a renamed file's data is still on disk under its old name when the new name
//! is pulled and is copied instead of downloaded.
//!
//! Invariants:
//! * a file is renamed into place only after every block's SHA-256 was verified and the
//!   temporary file was fsynced;
//! * an entry that changed on disk since the last scan is never overwritten: the puller skips it
//!   and asks for a rescan, after which the version vectors decide (a conflict copy, never a
//!   loss);
//! * a temporary file survives a crash and its verified blocks are reused on the next attempt;
//! * nothing goes through a symbolic link: every file operation is `Beneath` the folder root,
//!   so a symlink on the way (a peer's, or the user's own) makes the entry a failed item, and
//!   one at the final name is replaced or moved as itself, never opened.
//!
//! It also reverts a receive-only folder's local changes ([`Puller::revert`]), as Syncthing's
//! "Revert Local Changes" does: this device's versions are dropped so that the peers' global
//! versions win and are pulled as usual, and what only this device has is deleted.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::beneath::{Beneath, BeneathError, Open, refusal};
use crate::bep::{BlockHash, BlockInfo, FileInfo, FileType, Vector, VectorOrdering, parent_of};
use crate::clock::unix_now;
use crate::config::FolderId;
use crate::db::{Conflict, DbError, FolderIdx, GlobalFile, Index, NeedKind, PullIntent};
use crate::identity::{DeviceId, ShortId};
use crate::ignore::Ignores;
use crate::layout::{VERSIONS_DIR, temp_name};
use crate::model::{BlockRequest, Peers};
use crate::positional_io::{has_data, read_block_at, start_writeback, write_all_at};
use crate::scan::disk::{Kind, Stat};
use crate::sources::{Choice, Sources, Ticket};

/// Needed names read per query.
const PAGE: u32 = 500;
/// Files pulled at once. Small files cost little bandwidth but two fsyncs each (the temporary
/// file, and its directory before it is recorded), whose latency only overlapping hides: with 8
/// at once, 10,000 files of a few KiB came at about 100 a second on a busy disk.
const FILES_AT_ONCE: usize = 32;
/// Bytes requested per file and not yet received. Fetching a large file from one peer is
/// bound by this window over the time a request takes to come back, which on a busy pair of
/// machines is tens of milliseconds: 16 blocks of 128 KiB held each of the mixed set's two
/// 160 MiB files to about 50 MB/s.
const FILE_BYTES_IN_FLIGHT: usize = 8 << 20;
/// Block requests per file in flight at least (when blocks are large) and at most.
const BLOCKS_AT_ONCE: (usize, usize) = (4, 64);
/// Blocks a download asks for between two looks at which devices hold its file.
const HOLDERS_EVERY: usize = 16;
/// Times a block is asked again of a device whose connection closed under the request and
/// was replaced by a new one (see `fetch_block`).
const REPLACED_RETRIES: u32 = 2;
/// How long such a block waits for the replacing connection (registered once its Hello is
/// in); a device that went away for good costs its downloads this much before they fail.
const REPLACEMENT_WAIT: Duration = Duration::from_secs(2);
/// Bytes of a temporary file written between two starts of its write-back.
const WRITEBACK_CHUNK: u64 = 8 << 20;
/// Bytes requested and not yet written, over all files: with many files at once and blocks of
/// up to 16 MiB, the per-file bound alone would allow gigabytes.
const BYTES_IN_FLIGHT: usize = 64 << 20;
/// The unit of [`BYTES_IN_FLIGHT`]'s semaphore, so that a 16 MiB block fits its `u32` count.
const BUDGET_UNIT: usize = 1 << 10;
/// How long a block waiting for room on its holders ([`Choice::Wait`]) waits for a wake-up
/// before it looks again anyway: wake-ups go to one waiter per answer, and a holder that went
/// away makes room without answering.
const ROOM_RECHECK: Duration = Duration::from_millis(100);
/// Entries recorded per index transaction.
const RECORD_BATCH: usize = 256;

/// Errors that stop a pull as a whole (per-entry problems are [`PullOutcome::issues`]).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot sync the directory {path}: {source}")]
    SyncDir { path: PathBuf, source: io::Error },
    #[error("the pull was interrupted")]
    Interrupted,
    /// Without the folder's ignore patterns the puller cannot tell which entries to leave alone.
    #[error(transparent)]
    Ignores(#[from] crate::ignore::IgnoreError),
}

/// What a pull did.
#[derive(Debug, Default)]
pub struct PullOutcome {
    /// Entries created, updated or deleted.
    pub applied: u64,
    /// Bytes downloaded from peers.
    pub fetched_bytes: u64,
    /// Bytes copied from local files.
    pub copied_bytes: u64,
    /// Paths that changed on disk since the last scan: scan them, then pull again.
    pub rescan: Vec<String>,
    /// Entries that could not be applied, with the reason.
    pub issues: Vec<(String, String)>,
    /// Conflict copies made (folder-relative names).
    pub conflicts: Vec<String>,
    /// Needed entries recorded as ignored here (nothing on disk changed).
    pub ignored: u64,
}

/// What reverting a receive-only folder's local changes did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RevertOutcome {
    /// Local changes whose version was dropped, for the global version to be pulled back.
    pub reverted: u64,
    /// Entries only this device had, deleted (files to the trash can when versioning is on).
    pub deleted: u64,
    /// Entries that could not be reverted, with the reason (they stay local changes).
    pub issues: Vec<(String, String)>,
}

/// Trash-can versioning: what replaced or deleted files become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioning {
    /// Replaced and deleted files are removed.
    Off,
    /// They are moved to `.stversions/` and kept this many days (0: forever).
    TrashCan { keep_days: u32 },
}

/// Pulls one folder.
pub struct Puller {
    pub index: Index,
    pub folder: FolderIdx,
    pub id: FolderId,
    pub root: PathBuf,
    pub peers: Arc<Peers>,
    /// The configuration, for the roots of every local folder (blocks are copied across
    /// folders).
    pub config: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    pub versioning: Versioning,
    /// Blocks of files this puller moved to the trash can, so that a file deleted here and
    /// added elsewhere (a rename that arrived as a delete before the add) is copied, not
    /// downloaded again.
    pub trashed: std::sync::Mutex<TrashedBlocks>,
    /// Bytes written into files (fetched or copied), for the folder's transfer rate.
    pub pulled: Arc<std::sync::atomic::AtomicU64>,
    /// Names being downloaded, so two that differ only in case never download at once.
    pub case_locks: crate::disks::CaseLocks,
    /// What the downloads in progress will still write, for the free-space check.
    pub reserved: crate::disks::Reserved,
    /// How fast each peer has answered, to choose whom to ask for a block.
    pub(crate) sources: Arc<Scheduling>,
}

/// Where blocks of trashed files are: a bounded map, cleared when full (it only saves
/// downloads; every block read from it is verified).
#[derive(Default)]
pub struct TrashedBlocks(std::collections::HashMap<crate::bep::BlockHash, (String, u64)>);

/// Blocks remembered at most (about 8 MB of map).
const TRASHED_BLOCKS: usize = 1 << 16;

impl TrashedBlocks {
    /// Remembers the blocks of the trashed file `name` (folder-relative).
    fn remember(&mut self, name: &str, blocks: &[BlockInfo]) {
        if self.0.len() + blocks.len() > TRASHED_BLOCKS {
            self.0.clear();
        }
        for b in blocks.iter().take(TRASHED_BLOCKS) {
            self.0.insert(b.hash, (name.to_owned(), b.offset));
        }
    }

    fn find(&self, hash: &crate::bep::BlockHash) -> Option<(String, u64)> {
        self.0.get(hash).cloned()
    }
}

/// A page of needed entries, each with this device's entry, and which of their blocks some
/// local file holds (worth looking for before downloading).
struct Page {
    entries: Vec<(GlobalFile, Option<FileInfo>)>,
    local_blocks: Arc<HashSet<BlockHash>>,
}

/// Why an entry waits: no device that has it is connected.
const NO_HOLDER: &str = "no connected device has this version";

/// This device's entry for a needed name it ignores: the global version, invalid.
fn ignored_entry(global: FileInfo) -> FileInfo {
    FileInfo { invalid: true, sequence: 0, ..global }
}

/// One entry's result.
enum Applied {
    Recorded { entry: FileInfo, fetched: u64, copied: u64, conflict: Option<String> },
    Rescan(String),
    Issue(String, String),
}

impl Puller {
    /// Applies everything the folder needs, as far as possible.
    pub async fn pull(self: &Arc<Self>) -> Result<PullOutcome, PullError> {
        let mut out = PullOutcome::default();
        let mut records: Vec<FileInfo> = Vec::new();
        let mut running: JoinSet<Applied> = JoinSet::new();
        let budget = Arc::new(Semaphore::new(BYTES_IN_FLIGHT / BUDGET_UNIT));
        let ignores = self.ignores().await?;
        let names = crate::names::Rules::for_folder(&self.root);
        self.case_locks.forget_written();
        // Needed entries this device ignores, recorded as ignored in batches (pages continue
        // after the last name seen, so recording them does not disturb the paging).
        let mut ignored: Vec<FileInfo> = Vec::new();
        let mut after: Option<String> = None;
        while let Some(page) = self.next_page(NeedKind::Changes, &mut after).await? {
            self.note_intents(&page, &names, &ignores).await?;
            for (global, local) in page.entries {
                // A name this device must not create (internal, Windows path syntax, …) is a
                // failed item, never written nor recorded, so never announced either.
                if let Some(why) = names.refusal(&global.file.name) {
                    out.issues.push((global.file.name, why.to_string()));
                    continue;
                }
                // What the user ignores here is neither downloaded nor replaced, as in
                // Syncthing; the scanner marks a local file that became ignored invalid.
                if ignores.is_ignored(&global.file.name) {
                    ignored.push(ignored_entry(global.file));
                    if ignored.len() >= RECORD_BATCH {
                        self.record_ignored(&mut ignored, &mut out).await?;
                    }
                    continue;
                }
                if global.file.file_type == FileType::File {
                    while running.len() >= FILES_AT_ONCE {
                        self.collect(running.join_next().await, &mut out, &mut records).await?;
                    }
                    let (this, budget) = (Arc::clone(self), Arc::clone(&budget));
                    let local_blocks = Arc::clone(&page.local_blocks);
                    running.spawn(async move { this.pull_file(global, local, &local_blocks, budget).await });
                } else {
                    // Directories first and inline: files below them need them to exist.
                    let applied = match self.blocking(move |p| p.apply_other(&global, local.as_ref())).await?
                    {
                        Applied::Rescan(name) => self.case_conflict_or_rescan(&name).await,
                        applied => applied,
                    };
                    self.collect(Some(Ok(applied)), &mut out, &mut records).await?;
                }
            }
        }
        while let Some(done) = running.join_next().await {
            self.collect(Some(done), &mut out, &mut records).await?;
        }
        self.record(&mut records).await?;
        self.record_ignored(&mut ignored, &mut out).await?;

        let mut after: Option<String> = None;
        while let Some(page) = self.next_page(NeedKind::Deletes, &mut after).await? {
            for (global, local) in page.entries {
                if let Some(why) = names.refusal(&global.file.name) {
                    out.issues.push((global.file.name, why.to_string()));
                    continue;
                }
                if ignores.is_ignored(&global.file.name) {
                    ignored.push(ignored_entry(global.file));
                    if ignored.len() >= RECORD_BATCH {
                        self.record_ignored(&mut ignored, &mut out).await?;
                    }
                    continue;
                }
                let ignores = Arc::clone(&ignores);
                let applied =
                    self.blocking(move |p| p.apply_delete(&global.file, local.as_ref(), &ignores)).await?;
                self.collect(Some(Ok(applied)), &mut out, &mut records).await?;
            }
        }
        self.record(&mut records).await?;
        self.record_ignored(&mut ignored, &mut out).await?;
        Ok(out)
    }

    /// Notes the pull intent of every file of `page` that will be pulled, in one transaction,
    /// before any of them is touched: after a crash between putting a file in place and
    /// recording it, the scanner records it as pulled, not as a local change. An intent for a
    /// file that is then not put in place (it changed on disk, no device has it) only matters
    /// to a scan that finds exactly its content there, which is then rightly the pulled version.
    async fn note_intents(
        &self,
        page: &Page,
        names: &crate::names::Rules,
        ignores: &Ignores,
    ) -> Result<(), PullError> {
        let intents: Vec<PullIntent> = page
            .entries
            .iter()
            .map(|(g, _)| &g.file)
            .filter(|g| g.file_type == FileType::File)
            .filter(|g| names.refusal(&g.name).is_none() && !ignores.is_ignored(&g.name))
            .map(|g| PullIntent {
                name: g.name.clone(),
                version: g.version.clone(),
                modified_by: g.modified_by,
                blocklist_hash: crate::bep::blocklist_hash(&g.blocks),
            })
            .collect();
        self.index.note_pulls(self.folder, &intents).await?;
        Ok(())
    }

    /// Records needed entries this device ignores as Syncthing does: this device's entry
    /// becomes the global version, invalid (announced so: peers never take it, and count this
    /// device as up to date). So an ignored name is not needed, nor counted as needed, until
    /// its global version changes; the scanner turns such an entry back into a need once the
    /// name is no longer ignored, and never into a delete. Nothing on disk is touched.
    async fn record_ignored(
        &self,
        ignored: &mut Vec<FileInfo>,
        out: &mut PullOutcome,
    ) -> Result<(), PullError> {
        for chunk in ignored.chunks_mut(RECORD_BATCH) {
            self.index.apply_local(self.folder, chunk).await?;
            out.ignored += chunk.len() as u64;
        }
        ignored.clear();
        Ok(())
    }

    /// Reverts the local changes `me` made in this (receive-only) folder, as Syncthing 1.19
    /// does: an entry some peer also has gets the empty version, strictly older than any other,
    /// so the peers' version becomes global and the next pull brings it back (the local copy
    /// going to the trash can like any replaced file, and no conflict copy, since the empty
    /// version conflicts with nothing); an entry only this device has is deleted from disk and
    /// recorded as a deletion with the empty version, so it never wins over anything either.
    /// Deepest names first, so a directory added here goes after its contents.
    pub async fn revert(self: &Arc<Self>, me: ShortId) -> Result<RevertOutcome, PullError> {
        let mut out = RevertOutcome::default();
        let ignores = self.ignores().await?;
        let mut before: Option<String> = None;
        loop {
            let page = self.index.receive_only_changes(self.folder, me, before.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.file.name.clone());
            let mut records = Vec::with_capacity(page.len());
            for change in page {
                let f = change.file;
                if change.peer_has_name || f.deleted {
                    records.push(FileInfo { version: Vector::new(), sequence: 0, ..f });
                    out.reverted += 1;
                    continue;
                }
                let name = f.name.clone();
                let ignores = Arc::clone(&ignores);
                match self.blocking(move |p| p.remove_added(&f, me, &ignores)).await? {
                    Applied::Recorded { entry, .. } => {
                        records.push(entry);
                        out.deleted += 1;
                    }
                    Applied::Rescan(name) => {
                        out.issues.push((name, String::from("it changed on disk; scan and revert again")))
                    }
                    Applied::Issue(_, reason) => out.issues.push((name, reason)),
                }
            }
            if !records.is_empty() {
                self.index.apply_local(self.folder, &mut records).await?;
            }
        }
        Ok(out)
    }

    /// Deletes an entry that only this device has (a receive-only folder's local addition),
    /// unless it changed on disk since the last scan.
    fn remove_added(&self, f: &FileInfo, me: ShortId, ignores: &Ignores) -> Applied {
        let tombstone = FileInfo {
            deleted: true,
            size: 0,
            blocks: Vec::new(),
            modified_by: me,
            modified_s: unix_now() as i64,
            modified_ns: 0,
            version: Vector::new(),
            sequence: 0,
            ..f.clone()
        };
        self.delete_entry(&f.name, Some(f), tombstone, ignores)
    }

    /// The folder's ignore patterns, read now (the user may have changed them since the last
    /// pull).
    async fn ignores(&self) -> Result<Arc<Ignores>, PullError> {
        let root = self.root.clone();
        let ignores = tokio::task::spawn_blocking(move || Ignores::load(&root))
            .await
            .map_err(|_| PullError::Interrupted)??;
        Ok(Arc::new(ignores))
    }

    /// The next page of needed entries of `kind` after `after` (which it advances), each with
    /// this device's entry; `None` when there are no more.
    async fn next_page(&self, kind: NeedKind, after: &mut Option<String>) -> Result<Option<Page>, PullError> {
        let entries = self.index.needed_page(self.folder, kind, after.as_deref(), PAGE).await?;
        let Some((last, _)) = entries.last() else { return Ok(None) };
        *after = Some(last.file.name.clone());
        let mut hashes = HashSet::new();
        if kind == NeedKind::Changes {
            for (g, _) in &entries {
                hashes.extend(g.file.blocks.iter().map(|b| b.hash));
            }
        }
        let local_blocks = Arc::new(self.index.local_blocks_among(&hashes).await?);
        Ok(Some(Page { entries, local_blocks }))
    }

    /// Runs disk work for one entry on a blocking thread.
    async fn blocking(
        self: &Arc<Self>,
        work: impl FnOnce(&Self) -> Applied + Send + 'static,
    ) -> Result<Applied, PullError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&this)).await.map_err(|_| PullError::Interrupted)
    }

    async fn collect(
        &self,
        done: Option<Result<Applied, tokio::task::JoinError>>,
        out: &mut PullOutcome,
        records: &mut Vec<FileInfo>,
    ) -> Result<(), PullError> {
        match done {
            None => {}
            Some(Err(_)) => return Err(PullError::Interrupted),
            Some(Ok(Applied::Recorded { entry, fetched, copied, conflict })) => {
                if !entry.deleted {
                    self.case_locks.wrote(&entry.name);
                }
                out.applied += 1;
                out.fetched_bytes += fetched;
                out.copied_bytes += copied;
                if let Some(copy) = conflict {
                    let c =
                        Conflict { copy_name: copy.clone(), name: entry.name.clone(), at: unix_now() as i64 };
                    self.index.record_conflict(self.folder, &c).await?;
                    out.rescan.push(copy.clone());
                    out.conflicts.push(copy);
                }
                records.push(entry);
                if records.len() >= RECORD_BATCH {
                    self.record(records).await?;
                }
            }
            Some(Ok(Applied::Rescan(name))) => out.rescan.push(name),
            Some(Ok(Applied::Issue(name, reason))) => {
                // Waiting for a device to connect is the normal state of a device that is
                // away, not a fault.
                if reason == NO_HOLDER {
                    tracing::debug!(folder = %self.id, name = %name, %reason, "cannot pull yet");
                } else {
                    tracing::warn!(folder = %self.id, name = %name, %reason, "cannot pull");
                }
                out.issues.push((name, reason));
            }
        }
        Ok(())
    }

    /// Records applied entries, after syncing the directories that hold them so that the
    /// renames (and deletes) the index will show are on disk. One fsync per directory and batch
    /// instead of one per file: a directory's fsync waits for the journal, and a thousand
    /// files pulled into one directory made it most of a small file's cost.
    async fn record(&self, records: &mut Vec<FileInfo>) -> Result<(), PullError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut dirs: Vec<String> = records.iter().map(|r| parent_of(&r.name).to_owned()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let fs = Beneath::new(&root);
            for dir in dirs {
                match fs.sync_dir(&dir) {
                    Ok(()) => {}
                    // Removed or replaced since (a delete further on, or the user): nothing of
                    // ours is left there to make durable.
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
                    Err(e) if refusal(&e).is_some() => {}
                    Err(source) => return Err(PullError::SyncDir { path: root.join(&dir), source }),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| PullError::Interrupted)??;
        self.index.apply_local(self.folder, records).await?;
        self.case_locks.recorded(records.iter().map(|r| r.name.as_str()));
        records.clear();
        Ok(())
    }

    /// A directory or symlink (not deleted).
    fn apply_other(&self, global: &GlobalFile, local: Option<&FileInfo>) -> Applied {
        let g = &global.file;
        let disk = match self.fs().stat(&g.name) {
            Ok(d) => d,
            Err(e) => return Applied::Issue(g.name.clone(), e.to_string()),
        };
        if !matches_index(disk.as_ref(), local) {
            // Told apart from a case conflict by the caller.
            return Applied::Rescan(g.name.clone());
        }
        let result = match g.file_type {
            FileType::Directory => self.make_dir(g, disk.as_ref(), local),
            FileType::Symlink => self.make_symlink(g, disk.as_ref(), local),
            FileType::File => Err(io::Error::other("not a directory or symlink")),
        };
        match result {
            Ok((entry, conflict)) => Applied::Recorded { entry, fetched: 0, copied: 0, conflict },
            Err(e) => Applied::Issue(g.name.clone(), e.to_string()),
        }
    }

    /// The folder's disk as the free-space checks see it, with the limits configured now.
    fn disk(&self) -> crate::disks::FolderDisk<'_> {
        let config = self.config.borrow();
        crate::disks::FolderDisk {
            root: &self.root,
            home: self.index.file().and_then(Path::parent),
            min: config.folder(&self.id).map(|f| f.min_disk_free).unwrap_or_default(),
            home_min: config.options.min_home_disk_free,
            reserved: &self.reserved,
        }
    }

    /// Whether the folder ignores permission bits (`ignore_permissions`, Windows' default): none
    /// are applied, and entries keep the bits their device gave them.
    fn ignores_permissions(&self) -> bool {
        self.config.borrow().folder(&self.id).map_or(
            crate::config::IGNORE_PERMISSIONS_BY_DEFAULT,
            crate::config::FolderConfig::ignores_permissions,
        )
    }

    /// The folder's files, reached without following a symlink.
    fn fs(&self) -> Beneath<'_> {
        Beneath::new(&self.root)
    }

    /// Returns the entry to record and the conflict copy made of a local file, if any.
    fn make_dir(
        &self,
        g: &FileInfo,
        disk: Option<&Stat>,
        local: Option<&FileInfo>,
    ) -> io::Result<(FileInfo, Option<String>)> {
        let fs = self.fs();
        let mut conflict = None;
        match disk.map(|d| d.kind) {
            Some(Kind::Directory) => {}
            Some(_) => {
                conflict = self.move_aside(g, local)?;
                fs.create_dir_all(&g.name)?;
            }
            None => fs.create_dir_all(&g.name)?,
        }
        let ignore_permissions = self.ignores_permissions();
        if !g.no_permissions && !ignore_permissions {
            fs.set_dir_mode(&g.name, g.permissions)?;
        }
        Ok((recorded(fs, g, ignore_permissions)?, conflict))
    }

    /// Returns the entry to record and the conflict copy made of a local file, if any.
    fn make_symlink(
        &self,
        g: &FileInfo,
        disk: Option<&Stat>,
        local: Option<&FileInfo>,
    ) -> io::Result<(FileInfo, Option<String>)> {
        let fs = self.fs();
        let mut conflict = None;
        if let Some(d) = disk {
            if d.kind == Kind::Symlink && fs.read_link(&g.name)?.to_str() == Some(g.symlink_target.as_str()) {
                return Ok((recorded(fs, g, self.ignores_permissions())?, None));
            }
            if d.kind == Kind::Directory {
                return Err(io::Error::other("a directory is in the way of a symlink"));
            }
            conflict = self.move_aside(g, local)?;
        }
        fs.create_dir_all(parent_of(&g.name))?;
        fs.symlink(&g.symlink_target, &g.name)?;
        Ok((FileInfo { sequence: 0, ..g.clone() }, conflict))
    }

    /// Moves what is at `g`'s name out of the way of `g` (a directory or symlink): a local file
    /// whose version is concurrent with `g`'s becomes a conflict copy, as it does when `g` is a
    /// file; anything else goes to the trash can or is removed.
    fn move_aside(&self, g: &FileInfo, local: Option<&FileInfo>) -> io::Result<Option<String>> {
        if conflicts(g, local) {
            let copy = conflict_name(&g.name, g.modified_by, SystemTime::now());
            self.fs().rename(&g.name, &copy)?;
            return Ok(Some(copy));
        }
        self.archive(&g.name, local)?;
        Ok(None)
    }

    fn apply_delete(&self, g: &FileInfo, local: Option<&FileInfo>, ignores: &Ignores) -> Applied {
        self.delete_entry(&g.name, local, FileInfo { sequence: 0, ..g.clone() }, ignores)
    }

    /// Deletes `name` (a file to the trash can when versioning is on) unless it changed on disk
    /// since the last scan recorded `local`, and records `entry` for it. A directory goes only
    /// when nothing in it is left but download temporaries and what `ignores` marks deletable
    /// (`(?d)`), which go with it, as in Syncthing; its synced contents were deleted before it
    /// (deepest first).
    fn delete_entry(
        &self,
        name: &str,
        local: Option<&FileInfo>,
        entry: FileInfo,
        ignores: &Ignores,
    ) -> Applied {
        let disk = match self.fs().stat(name) {
            Ok(d) => d,
            Err(e) => return Applied::Issue(name.to_owned(), e.to_string()),
        };
        if !matches_index(disk.as_ref(), local) {
            return Applied::Rescan(name.to_owned());
        }
        let result = match disk.map(|d| d.kind) {
            None => Ok(()),
            Some(Kind::Directory) => self
                .fs()
                .remove_dir_clearing(name, &mut |base, kind| {
                    (kind == Kind::File && crate::layout::is_temp(base))
                        || ignores.matches(&format!("{name}/{base}")).is_deletable()
                })
                .map_err(|e| {
                    let why = if e.kind() == io::ErrorKind::DirectoryNotEmpty {
                        format!("it holds files not synced ({e}; an ignore pattern with (?d) lets them go)")
                    } else {
                        e.to_string()
                    };
                    io::Error::new(e.kind(), format!("cannot delete the directory: {why}"))
                }),
            Some(_) => self.archive(name, local),
        };
        match result {
            Ok(()) => Applied::Recorded { entry, fetched: 0, copied: 0, conflict: None },
            Err(e) => Applied::Issue(name.to_owned(), e.to_string()),
        }
    }

    /// Moves the file at `name` out of the way: to the trash can, or deleted.
    /// A `.stversions` that is a symlink is refused (the file stays), never moved into.
    fn archive(&self, name: &str, local: Option<&FileInfo>) -> io::Result<()> {
        let fs = self.fs();
        let is_file = local.is_some_and(|l| l.file_type == FileType::File && !l.deleted);
        match self.versioning {
            Versioning::TrashCan { .. } if is_file => {
                let mut dest = None;
                for v in versioned_names(name, SystemTime::now()) {
                    let candidate = format!("{VERSIONS_DIR}/{v}");
                    if fs.stat(&candidate)?.is_none() {
                        dest = Some(candidate);
                        break;
                    }
                }
                let dest = dest.ok_or_else(|| {
                    io::Error::other("too many versions of it were kept this minute; trying again later")
                })?;
                fs.create_dir_all(parent_of(&dest))?;
                fs.rename(name, &dest)?;
                if let Some(l) = local {
                    self.trashed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remember(&dest, &l.blocks);
                }
                Ok(())
            }
            _ => fs.remove_all(name),
        }
    }

    /// Fetches a file into its temporary file, verifies it and renames it into place.
    async fn pull_file(
        self: Arc<Self>,
        global: GlobalFile,
        local: Option<FileInfo>,
        local_blocks: &HashSet<BlockHash>,
        budget: Arc<Semaphore>,
    ) -> Applied {
        let g = global.file.clone();
        let name = g.name.clone();
        let _one_of_a_case = self.case_locks.lock(&name).await;
        let disk = match self.fs().stat(&name) {
            Ok(d) => d,
            Err(e) => return Applied::Issue(name, e.to_string()),
        };
        if !matches_index(disk.as_ref(), local.as_ref()) {
            return self.case_conflict_or_rescan(&name).await;
        }
        if disk.is_some_and(|d| d.kind == Kind::Directory) {
            return Applied::Issue(name, String::from("a directory is in the way of a file"));
        }
        // Its pull intent was noted with its page's (see `note_intents`).
        // The same content under another version (both sides made the same change, or a
        // metadata change): only the metadata and the version are taken, and it is no
        // conflict, as nothing would be lost.
        if let Some(l) = local.as_ref().filter(|l| !l.deleted && !l.invalid && l.file_type == FileType::File)
            && disk.is_some()
            && l.blocks == g.blocks
        {
            let ignore_permissions = self.ignores_permissions();
            let result = set_metadata(self.fs(), &g, ignore_permissions)
                .and_then(|()| recorded(self.fs(), &g, ignore_permissions));
            return match result {
                Ok(entry) => Applied::Recorded { entry, fetched: 0, copied: 0, conflict: None },
                Err(e) => Applied::Issue(name, e.to_string()),
            };
        }
        let tmp = temp_name(&name);
        let _room = match crate::disks::before_download(&self.disk(), g.size) {
            Ok(reservation) => reservation,
            Err(reason) => return Applied::Issue(name, reason),
        };
        let fetch = self.fill_temp(&global, &tmp, local_blocks, &budget).await;
        let (fetched, copied, file) = match fetch {
            Ok(x) => x,
            Err(e) => {
                return Applied::Issue(
                    name,
                    crate::disks::after_failed_write(&self.disk(), e, || self.fs().remove_all(&tmp)),
                );
            }
        };
        let conflict = conflicts(&g, local.as_ref());
        let this = Arc::clone(&self);
        let local2 = local.clone();
        let tmp2 = tmp.clone();
        let result =
            tokio::task::spawn_blocking(move || this.finish_file(&g, &tmp2, file, local2.as_ref(), conflict))
                .await;
        match result {
            Ok(Ok((entry, conflict))) => {
                // Before the case lock is let go: the next name of this case finds it.
                self.case_locks.wrote(&entry.name);
                Applied::Recorded { entry, fetched, copied, conflict }
            }
            Ok(Err(e)) => Applied::Issue(
                name,
                crate::disks::after_failed_write(&self.disk(), e.to_string(), || self.fs().remove_all(&tmp)),
            ),
            Err(_) => Applied::Issue(name, String::from("interrupted")),
        }
    }

    /// For a name that resolved to something on disk the index does not hold as it is: on a
    /// case-insensitive disk, another name that differs only in case is in the way (a failed
    /// item: neither overwrites the other); else it changed since the last scan (scan it).
    /// Where the disk lists names in a case of its own, the listing shows the other name
    /// spelled as this one, so the index says which it is.
    async fn case_conflict_or_rescan(&self, name: &str) -> Applied {
        let mut other = None;
        if crate::disks::ignores_case(&self.root) && !crate::disks::keeps_case(&self.root) {
            other = match self.case_locks.written_twin(name) {
                Some(written) => Some(written),
                None => crate::disks::case_twin(&self.index, self.folder, name).await.ok().flatten(),
            };
        }
        if other.is_none() {
            other = crate::disks::case_conflict(&self.root, name).ok().flatten();
        }
        match other {
            Some(other) => Applied::Issue(name.to_owned(), crate::disks::case_conflict_reason(&other)),
            None => Applied::Rescan(name.to_owned()),
        }
    }

    /// Makes `tmp` hold every block of the global file, each verified. Returns bytes (fetched
    /// from peers, copied locally) and the open temporary file.
    async fn fill_temp(
        &self,
        global: &GlobalFile,
        tmp: &str,
        local_blocks: &HashSet<BlockHash>,
        budget: &Arc<Semaphore>,
    ) -> Result<(u64, u64, File), String> {
        let g = &global.file;
        // Its directories are made on the way, none of them through a symlink.
        let file = self.fs().open(tmp, Open::Create).map_err(|e| match refusal(&e) {
            Some(why) => why.to_string(),
            None => format!("cannot open the temporary file: {e}"),
        })?;
        let existing = file.metadata().map(|m| m.len()).unwrap_or(0);
        // A new file of one block gets its size from that block's write: sizing it first was a
        // system call and a watcher event for every small file.
        if existing != g.size && !(existing == 0 && g.blocks.len() <= 1) {
            file.set_len(g.size).map_err(|e| format!("cannot size the temporary file: {e}"))?;
        }
        let file = Arc::new(TempFile::new(file));
        // Peers hear which blocks are in the temporary file (DownloadProgress) until the
        // download ends either way and the guard is dropped.
        let progress = self.peers.start_download(&self.id, &g.name, &g.version, g.block_size, g.blocks.len());
        let done = |i: usize| {
            if let Some(p) = &progress {
                p.block_done(i as u32);
            }
        };
        let (mut fetched, mut copied) = (0u64, 0u64);
        let mut missing: Vec<(usize, BlockInfo)> = Vec::new();
        for (i, b) in g.blocks.iter().enumerate() {
            if b.size == 0 {
                continue;
            }
            // A block left by an interrupted attempt is kept if it checks out (one never
            // written is a hole: nothing to read).
            if b.offset + u64::from(b.size) <= existing
                && has_data(&file.file, b.offset, u64::from(b.size))
                && read_block_at(&file.file, b.offset, b.size as usize).is_ok_and(|d| hash_ok(&d, b))
            {
                done(i);
                continue;
            }
            if self.copy_local(&file, b, local_blocks).await {
                copied += u64::from(b.size);
                self.pulled.fetch_add(u64::from(b.size), std::sync::atomic::Ordering::Relaxed);
                done(i);
                continue;
            }
            missing.push((i, b.clone()));
        }
        let mut holders: Vec<DeviceId> =
            global.holders.iter().filter(|d| self.peers.is_connected(d)).copied().collect();
        if holders.is_empty() && missing.iter().any(|(i, _)| self.temp_holders(g, *i, &holders).is_empty()) {
            return Err(String::from(NO_HOLDER));
        }
        // The block requests under way see the holders change too: a block asked of the only
        // holder known then can still be copied to one that came since (endgame, hedge).
        let (holders_now, holders_seen) = tokio::sync::watch::channel(holders.clone());
        let mut inflight: JoinSet<Result<(usize, u64), String>> = JoinSet::new();
        let mut landed = |r: Result<Result<(usize, u64), String>, tokio::task::JoinError>| {
            let (i, n) = r.map_err(|_| String::from("interrupted"))??;
            done(i);
            fetched += n;
            self.pulled.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, String>(())
        };
        let window = blocks_at_once(g.block_size);
        // Devices that connect, or announce the file, while it downloads share the work: every
        // few blocks, and at the next block once the index has changed, the holders are
        // filtered again by who is connected, and read again from the index if it changed
        // since they were last read (the first time, always: the page they came with may be
        // older than the index's last commit). Promptly: a pull often starts on the first
        // peer's index, a moment before the others' are in, and every block asked meanwhile
        // waits on that peer alone.
        let mut known = (None, global.holders.clone());
        // The first error ends the download, after the blocks already asked for have landed
        // (they are kept in the temporary file for the next attempt).
        let mut failed: Option<String> = None;
        for (n, (i, b)) in missing.into_iter().enumerate() {
            if n > 0 && (n % HOLDERS_EVERY == 0 || known.0 != Some(self.index.commits())) {
                let commits = self.index.commits();
                if known.0 != Some(commits) {
                    let now = self.index.holders(self.folder, &g.name, &g.version).await;
                    known = (Some(commits), now.unwrap_or(known.1));
                }
                let connected: Vec<DeviceId> =
                    known.1.iter().filter(|d| self.peers.is_connected(d)).copied().collect();
                if !connected.is_empty() {
                    holders = connected;
                    holders_now.send_if_modified(|h| {
                        let changed = *h != holders;
                        h.clone_from(&holders);
                        changed
                    });
                }
            }
            while inflight.len() >= window && failed.is_none() {
                if let Some(r) = inflight.join_next().await
                    && let Err(e) = landed(r)
                {
                    failed = Some(e);
                }
            }
            if failed.is_some() {
                break;
            }
            let temp = self.temp_holders(g, i, &holders);
            let units =
                (b.size as usize).div_ceil(BUDGET_UNIT).clamp(1, BYTES_IN_FLIGHT / BUDGET_UNIT) as u32;
            let permit = Arc::clone(budget)
                .acquire_many_owned(units)
                .await
                .map_err(|_| String::from("interrupted"))?;
            let (peers, sources, file, holders) =
                (Arc::clone(&self.peers), Arc::clone(&self.sources), Arc::clone(&file), holders_seen.clone());
            let req = BlockRequest {
                folder: self.id.clone(),
                name: g.name.clone(),
                offset: b.offset,
                size: b.size,
                hash: b.hash,
                block_no: i as u32,
                from_temporary: false,
            };
            inflight.spawn(async move {
                let fetched = fetch_block(&peers, &sources, &holders, &temp, i, req, &file, &b).await;
                drop(permit);
                Ok((i, fetched?))
            });
        }
        while let Some(r) = inflight.join_next().await {
            if let Err(e) = landed(r) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // Every block's task is done and dropped its handle.
        let file = Arc::try_unwrap(file).map_err(|_| String::from("the temporary file is still in use"))?;
        Ok((fetched, copied, file.file))
    }

    /// Connected devices that are not among `holders` (full copies) but announced block `i`
    /// of exactly version `g` in their temporary file.
    fn temp_holders(&self, g: &FileInfo, i: usize, holders: &[DeviceId]) -> Vec<DeviceId> {
        let mut temp = self.peers.temp_holders(&self.id, &g.name, &g.version, i as u32);
        temp.retain(|d| !holders.contains(d));
        temp
    }

    /// Copies a block from a local file that has it, if any does (and still has it): one the
    /// index lists (`local_blocks` says which are worth asking it for) or one this puller moved
    /// to the trash can.
    async fn copy_local(&self, file: &TempFile, b: &BlockInfo, local_blocks: &HashSet<BlockHash>) -> bool {
        let places = if local_blocks.contains(&b.hash) {
            self.index.block_locations(&b.hash, 4).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        for place in places {
            let root = {
                let config = self.config.borrow();
                let Some(folder) = config.folders.iter().find(|f| f.id.as_str() == place.folder_id) else {
                    continue;
                };
                folder.path.clone()
            };
            let Ok(src) = Beneath::new(&root).open(&place.name, Open::Read) else { continue };
            let Ok(data) = read_block_at(&src, place.offset, b.size as usize) else { continue };
            if hash_ok(&data, b) && file.write_block(&data, b.offset).is_ok() {
                return true;
            }
        }
        let trashed = self.trashed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).find(&b.hash);
        let Some((name, offset)) = trashed else { return false };
        let Ok(src) = self.fs().open(&name, Open::Read) else { return false };
        let Ok(data) = read_block_at(&src, offset, b.size as usize) else { return false };
        hash_ok(&data, b) && file.write_block(&data, b.offset).is_ok()
    }

    /// Syncs the temporary file, sets its metadata, moves the old file aside and renames the
    /// new one into place. Returns the entry to record and the conflict copy's name, if any.
    fn finish_file(
        &self,
        g: &FileInfo,
        tmp: &str,
        file: File,
        local: Option<&FileInfo>,
        conflict: bool,
    ) -> io::Result<(FileInfo, Option<String>)> {
        let fs = self.fs();
        // Every block was verified as it was written (or, left by an earlier attempt, as it
        // was read back), so the file is not hashed a second time: that was a second SHA-256
        // pass over everything downloaded.
        let meta = file.metadata()?;
        if meta.len() != g.size {
            return Err(io::Error::other("the temporary file has the wrong size"));
        }
        file.sync_all()?;
        let ignore_permissions = self.ignores_permissions();
        if !ignore_permissions {
            // A device that ignores permissions (Windows) sends none: the file keeps the bits
            // it has here, so its edit does not take away an executable bit.
            let kept = local.filter(|l| !l.deleted && !l.no_permissions && l.file_type == FileType::File);
            let mode = if g.no_permissions { kept.map_or(0o644, |l| l.permissions) } else { g.permissions };
            set_file_mode(&file, &meta, mode)?;
        }
        file.set_modified(mtime(g))?;
        // What the file is recorded with: the rename below keeps its inode, so this is what a
        // scan will find there (and costs no walk to the name, as a stat after the rename did).
        let put = Stat::of_open(&file)?;
        drop(file);
        // The disk may have changed while we downloaded: check again right before replacing.
        let disk = fs.stat(&g.name)?;
        if !matches_index(disk.as_ref(), local) {
            return Err(io::Error::other(
                "the file changed on disk while it was being pulled; it will be rescanned",
            ));
        }
        let mut copy = None;
        if disk.is_some() {
            if conflict {
                let name = conflict_name(&g.name, g.modified_by, SystemTime::now());
                fs.rename(&g.name, &name)?;
                copy = Some(name);
            } else {
                self.archive(&g.name, local)?;
            }
        }
        // The directory is synced before the entry is recorded (see `record`).
        fs.rename(tmp, &g.name)?;
        Ok((recorded_as(&put, g, ignore_permissions), copy))
    }
}

/// The puller's [`Sources`], and the wake-ups of the block requests that wait on them.
#[derive(Debug, Default)]
pub(crate) struct Scheduling {
    sources: std::sync::Mutex<Sources<DeviceId>>,
    /// Woken (one waiter) when a request ends: room on its peer for a block waiting for some.
    room: tokio::sync::Notify,
    /// Woken (every waiter) when a request ends and leaves its peer with nothing queued: the
    /// requests under way on other peers see whether to ask it too ([`Sources::endgame`]).
    idle: tokio::sync::Notify,
}

impl Scheduling {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sources<DeviceId>> {
        self.sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the end of requests to `peers` with `record`, and wakes a block waiting for the
    /// room it made, and the requests under way if one of these peers is left idle.
    fn ended<'a>(
        &self,
        peers: impl IntoIterator<Item = &'a DeviceId>,
        record: impl FnOnce(&mut Sources<DeviceId>),
    ) {
        let idle = {
            let mut sources = self.lock();
            record(&mut sources);
            sources.known() > 1 && peers.into_iter().any(|p| sources.idle(p))
        };
        self.room.notify_one();
        if idle {
            self.idle.notify_waiters();
        }
    }

    /// Whom to ask first among `holders`, once one of them has room for the block
    /// ([`Sources::choose`]); `None` if there is nobody.
    async fn first(&self, holders: &[DeviceId], size: u32) -> Option<DeviceId> {
        let mut woken = false;
        loop {
            let choice = self.lock().choose(holders, size);
            match choice {
                Choice::Ask(d) => {
                    // Woken by a request's end, this one took its room; there may be more for
                    // the next waiter: it looks, and wakes the next in turn.
                    if woken {
                        self.room.notify_one();
                    }
                    return Some(d);
                }
                Choice::Nobody => return None,
                Choice::Wait => {}
            }
            let _ = tokio::time::timeout(ROOM_RECHECK, self.room.notified()).await;
            woken = true;
        }
    }
}

/// Asks the holder [`Sources`] expects to answer first among those with room for more work
/// (rotated by block, so that peers alike share a file's blocks; waiting while none has),
/// and, if that request is overdue for that peer's observed rate, or another holder is left
/// idle and would answer much sooner ([`Sources::endgame`]), a second holder too: the first
/// verified answer wins. A failed or wrong answer moves on to the next holder, and last
/// to the devices still downloading the file that announced this block (`temp`), asking for
/// their temporary file.
#[allow(clippy::too_many_arguments)]
async fn fetch_block(
    peers: &Arc<Peers>,
    shared: &Arc<Scheduling>,
    holders: &tokio::sync::watch::Receiver<Vec<DeviceId>>,
    temp: &[DeviceId],
    i: usize,
    req: BlockRequest,
    file: &TempFile,
    b: &BlockInfo,
) -> Result<u64, String> {
    use futures_util::StreamExt as _;
    let lock = || shared.lock();
    let mut last = String::from("no connected device has it");
    let mut full: Vec<DeviceId> = {
        let holders = holders.borrow();
        (0..holders.len()).map(|k| holders[(i + k) % holders.len()]).collect()
    };
    // Holders asked so far; those that came since the block was first asked for join `full`.
    let mut asked: Vec<DeviceId> = Vec::new();
    let more = |full: &mut Vec<DeviceId>, asked: &[DeviceId]| {
        for d in holders.borrow().iter() {
            if !asked.contains(d) && !full.contains(d) {
                full.push(*d);
            }
        }
    };
    let mut temp: std::collections::VecDeque<DeviceId> = temp.iter().copied().collect();
    // The full holder picked, taken off the list; else the next device with the block in its
    // temporary file.
    let take = |picked: Option<DeviceId>,
                full: &mut Vec<DeviceId>,
                temp: &mut std::collections::VecDeque<DeviceId>| {
        match picked {
            Some(d) => {
                full.retain(|x| *x != d);
                Some((d, false))
            }
            None => temp.pop_front().map(|d| (d, true)),
        }
    };
    let next = |full: &mut Vec<DeviceId>, temp: &mut std::collections::VecDeque<DeviceId>| {
        let picked = lock().pick(full, b.size);
        take(picked, full, temp)
    };
    // The requests under way; those still there when this ends (another answered first, or
    // the download was cancelled) are abandoned.
    let mut waiting = Waiting { shared, tickets: Vec::new() };
    let mut attempts = futures_util::stream::FuturesUnordered::new();
    let mut hedge_at: Option<tokio::time::Instant> = None;
    let mut replaced_retries = REPLACED_RETRIES;
    let first = shared.first(&full, b.size).await;
    let mut pending = take(first, &mut full, &mut temp);
    loop {
        if let Some((device, from_temporary)) = pending.take() {
            asked.push(device);
            let ticket = lock().start(device, b.size, std::time::Instant::now());
            let after = lock().hedge_after(&ticket);
            waiting.tickets.push(ticket.clone());
            let req = BlockRequest { from_temporary, ..req.clone() };
            let peers = Arc::clone(peers);
            attempts.push(async move { (ticket, from_temporary, peers.request(&device, req).await) });
            // Only one duplicate: the next holder is asked when both have failed.
            hedge_at = (attempts.len() == 1).then(|| tokio::time::Instant::now() + after);
        }
        if attempts.is_empty() {
            return Err(format!("block {i} could not be fetched: {last}"));
        }
        let hedge = async move {
            match hedge_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((ticket, from_temporary, answer)) = attempts.next() => {
                waiting.tickets.retain(|t| *t != ticket);
                let device = ticket.peer;
                match answer {
                    Ok(data) if data.len() == b.size as usize && hash_ok(&data, b) => {
                        shared.ended([&device], |s| s.answered(&ticket, std::time::Instant::now()));
                        file.write_block(&data, b.offset).map_err(|e| format!("cannot write: {e}"))?;
                        // The other holder's copy still comes (BEP takes no request back): its
                        // bytes stay queued on that peer until they land, or the peer would be
                        // taken for one with room, asked for more than it can send in time,
                        // and those requests asked again too.
                        let copies = std::mem::take(&mut attempts);
                        if !copies.is_empty() {
                            waiting.tickets.clear();
                            tokio::spawn(drain(copies, Arc::clone(shared)));
                        }
                        return Ok(u64::from(b.size));
                    }
                    Ok(_) => {
                        shared.ended([&device], |s| s.abandoned(&ticket, std::time::Instant::now()));
                        last = format!("device {device} sent data that does not match the block's hash");
                    }
                    // A connection gone: nothing more comes of what was asked over it.
                    Err(e @ crate::model::RequestError::NotConnected(_)) => {
                        shared.ended([&device], |s| s.forget(&ticket));
                        last = format!("device {device}: {e}");
                    }
                    // The connection closed under the request. If the device is connected
                    // again soon, a new connection replaced that one (a better transport, or both
                    // sides having dialled at once): the block is asked of it again rather
                    // than failing the file, a few times at most.
                    Err(e @ crate::model::RequestError::Closed) => {
                        shared.ended([&device], |s| s.forget(&ticket));
                        last = format!("device {device}: {e}");
                        if replaced_retries > 0 && peers.connected_within(&device, REPLACEMENT_WAIT).await {
                            replaced_retries -= 1;
                            if from_temporary {
                                temp.push_front(device);
                            } else {
                                full.insert(0, device);
                            }
                        }
                    }
                    Err(e) => {
                        shared.ended([&device], |s| s.abandoned(&ticket, std::time::Instant::now()));
                        last = format!("device {device}: {e}");
                    }
                }
                if attempts.is_empty() {
                    pending = next(&mut full, &mut temp);
                }
            }
            () = hedge => {
                // Due by the estimate the request was made with; looked at again by the
                // peer's estimate now, which the first answers of a link may have made too
                // fast (they come at its idle burst's rate).
                let now = std::time::Instant::now();
                match waiting.tickets.first().map(|t| lock().hedge_at(t)).filter(|at| *at > now) {
                    Some(later) => hedge_at = Some(tokio::time::Instant::from_std(later)),
                    None => {
                        hedge_at = None;
                        more(&mut full, &asked);
                        pending = next(&mut full, &mut temp);
                        if let Some((device, _)) = pending {
                            tracing::debug!(file = %req.name, block = i, %device, "block overdue: asked again");
                        }
                    }
                }
            }
            // A holder not asked yet has nothing left to do: the download's end.
            () = shared.idle.notified(), if attempts.len() == 1 => {
                more(&mut full, &asked);
                let copy = waiting.tickets.first().and_then(|t| lock().endgame(t, &full, std::time::Instant::now()));
                if let Some(device) = copy {
                    tracing::debug!(file = %req.name, block = i, %device, "endgame: block asked again");
                    full.retain(|x| *x != device);
                    pending = Some((device, false));
                    hedge_at = None;
                }
            }
        }
    }
}

/// Waits for the copies of a block that another holder sent first, to end their requests in
/// [`Sources`] when they land: the time they took is a measurement like any other.
async fn drain<F>(mut copies: futures_util::stream::FuturesUnordered<F>, shared: Arc<Scheduling>)
where
    F: std::future::Future<
            Output = (Ticket<DeviceId>, bool, Result<bytes::Bytes, crate::model::RequestError>),
        >,
{
    use futures_util::StreamExt as _;
    while let Some((ticket, _, answer)) = copies.next().await {
        let now = std::time::Instant::now();
        shared.ended([&ticket.peer], |s| match answer {
            Ok(_) => s.answered(&ticket, now),
            Err(_) => s.abandoned(&ticket, now),
        });
    }
}

/// Requests of one block still under way, abandoned in [`Sources`] when dropped.
struct Waiting<'a> {
    shared: &'a Scheduling,
    tickets: Vec<Ticket<DeviceId>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.tickets.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        self.shared.ended(self.tickets.iter().map(|t| &t.peer), |sources| {
            for ticket in &self.tickets {
                sources.abandoned(ticket, now);
            }
        });
    }
}

/// True when replacing the local entry by `g` loses a concurrent edit, which is then kept as a
/// conflict copy: the local entry is a live file whose version is concurrent with `g`'s (and
/// is not itself a conflict copy).
fn conflicts(g: &FileInfo, local: Option<&FileInfo>) -> bool {
    local.filter(|l| !l.deleted && !l.invalid).is_some_and(|l| {
        l.file_type == FileType::File
            && matches!(
                l.version.compare(&g.version),
                VectorOrdering::ConcurrentGreater | VectorOrdering::ConcurrentLesser
            )
            && !g.name.contains(".sync-conflict-")
    })
}

/// True when what is on disk is what the index says (so nothing local would be lost by
/// replacing it): the same kind and, for files, the same size and modification time.
fn matches_index(disk: Option<&Stat>, local: Option<&FileInfo>) -> bool {
    let live = local.filter(|l| !l.deleted);
    match (disk, live) {
        (None, None) => true,
        // Gone from disk but not yet from the index: nothing to lose.
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(d), Some(l)) => match (d.kind, l.file_type) {
            (Kind::File, FileType::File) => {
                d.size == l.size && d.modified_s == l.modified_s && d.modified_ns == l.modified_ns
            }
            (Kind::Directory, FileType::Directory) | (Kind::Symlink, FileType::Symlink) => true,
            _ => false,
        },
    }
}

/// The entry to record for `g` as now on disk: its version and blocks, with the metadata the
/// disk actually has (so the next scan sees no change) but for ignored permission bits, which
/// stay `g`'s.
fn recorded(fs: Beneath<'_>, g: &FileInfo, ignore_permissions: bool) -> io::Result<FileInfo> {
    let stat = fs
        .stat(&g.name)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "it vanished as it was being recorded"))?;
    Ok(recorded_as(&stat, g, ignore_permissions))
}

/// The entry to record for `g` put in place with the metadata `stat`.
fn recorded_as(stat: &Stat, g: &FileInfo, ignore_permissions: bool) -> FileInfo {
    let mut entry = FileInfo { sequence: 0, ..g.clone() };
    if g.file_type != FileType::Symlink {
        if ignore_permissions {
            entry.no_permissions = true;
        } else {
            entry.permissions = stat.permissions;
            entry.no_permissions = false;
        }
    }
    if g.file_type == FileType::File {
        entry.modified_s = stat.modified_s;
        entry.modified_ns = stat.modified_ns;
    }
    entry
}

/// Block requests in flight per file, for blocks of `block_size`.
fn blocks_at_once(block_size: u32) -> usize {
    (FILE_BYTES_IN_FLIGHT / (block_size as usize).max(1)).clamp(BLOCKS_AT_ONCE.0, BLOCKS_AT_ONCE.1)
}

/// A temporary file being filled, shared by the tasks writing its blocks.
struct TempFile {
    file: File,
    /// Bytes written since the last [`start_writeback`].
    unstarted: AtomicU64,
}

impl TempFile {
    fn new(file: File) -> Self {
        Self { file, unstarted: AtomicU64::new(0) }
    }

    /// Writes a verified block, and starts writing the file to disk each [`WRITEBACK_CHUNK`].
    fn write_block(&self, data: &[u8], offset: u64) -> io::Result<()> {
        write_all_at(&self.file, data, offset)?;
        let total = self.unstarted.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
        if total >= WRITEBACK_CHUNK && self.unstarted.swap(0, Ordering::Relaxed) > 0 {
            start_writeback(&self.file);
        }
        Ok(())
    }
}

fn hash_ok(data: &[u8], b: &BlockInfo) -> bool {
    data.len() == b.size as usize && Sha256::digest(data)[..] == b.hash[..]
}

/// Reads `size` bytes at `offset` of the regular file `name` beneath `root` (for serving
/// requests), never through a symlink.
pub fn read_block(root: &Path, name: &str, offset: u64, size: usize) -> io::Result<Vec<u8>> {
    read_block_at(&Beneath::new(root).open(name, Open::Read)?, offset, size)
}

fn set_metadata(fs: Beneath<'_>, g: &FileInfo, ignore_permissions: bool) -> io::Result<()> {
    let file = fs.open(&g.name, Open::Write)?;
    if !g.no_permissions && !ignore_permissions {
        set_file_mode(&file, &file.metadata()?, g.permissions & 0o777)?;
    }
    file.set_modified(mtime(g))
}

#[cfg(unix)]
fn set_file_mode(file: &File, meta: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // Most files come with the bits a new file gets here anyway.
    if meta.permissions().mode() & 0o7777 == mode & 0o7777 {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_file_mode(file: &File, meta: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    let mut permissions = meta.permissions();
    permissions.set_readonly(mode & 0o200 == 0);
    file.set_permissions(permissions)
}

fn mtime(g: &FileInfo) -> SystemTime {
    let ns = u32::try_from(g.modified_ns).unwrap_or(0).min(999_999_999);
    match u64::try_from(g.modified_s) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, ns),
        Err(_) => UNIX_EPOCH,
    }
}

/// Splits `dir/base.ext` the way Go's `filepath.Ext` does: the extension is the last `.xxx`
/// of the base name (so `.bashrc` is all extension).
pub(crate) fn split_ext(name: &str) -> (&str, &str) {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[base_start..].rfind('.') {
        Some(dot) => name.split_at(base_start + dot),
        None => (name, ""),
    }
}

/// `name.sync-conflict-YYYYMMDD-HHMMSS-SHORTID.ext`, Syncthing's conflict copy name, with the
/// winning version's author as SHORTID. The time is UTC.
pub fn conflict_name(name: &str, winner: crate::identity::ShortId, now: SystemTime) -> String {
    let (stem, ext) = split_ext(name);
    format!("{stem}.sync-conflict-{}-{winner}{ext}", timestamp(now))
}

/// `dir/base~YYYYMMDD-HHMMSS.ext`: where trash-can versioning keeps an old version (UTC).
pub fn versioned_name(name: &str, now: SystemTime) -> String {
    let (stem, ext) = split_ext(name);
    format!("{stem}~{}{ext}", timestamp(now))
}

/// The names a version of `name` made at `now` may take, in order: the seconds of the next
/// minute, so a second version within one second takes the next free one instead of
/// overwriting the first.
pub fn versioned_names(name: &str, now: SystemTime) -> impl Iterator<Item = String> + '_ {
    (0..60).map(move |s| versioned_name(name, now + Duration::from_secs(s)))
}

pub(crate) fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt =
        time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Deletes versions in `.stversions` older than `keep_days` (by the time in their name). A
/// `.stversions` that is a symlink is an error: nothing is deleted through it (nor through
/// symlinks inside, which are removed as themselves when their name is old).
pub fn clean_versions(root: &Path, keep_days: u32, now: SystemTime) -> io::Result<u64> {
    let fs = Beneath::new(root);
    if keep_days == 0 {
        return Ok(0);
    }
    match fs.stat(VERSIONS_DIR)?.map(|s| s.kind) {
        Some(Kind::Directory) => {}
        Some(Kind::Symlink) => return Err(BeneathError::SymlinkInPath(VERSIONS_DIR.to_owned()).into()),
        _ => return Ok(0),
    }
    let cutoff = timestamp(now - Duration::from_secs(u64::from(keep_days) * 86400));
    fs.remove_files_under(VERSIONS_DIR, &mut |name| {
        let stamp = name.rsplit_once('~').map(|(_, s)| s.get(..15).unwrap_or(""));
        stamp.is_some_and(|stamp| stamp.len() == 15 && stamp < cutoff.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;
    use std::fs;

    #[test]
    fn conflict_names_follow_syncthing() {
        // 2026-11-21 13:43:03 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_795_268_583);
        let id = ShortId(0x3FD2_FFDA_0000_0000);
        let short = id.to_string();
        assert_eq!(
            conflict_name("hello.txt", id, t),
            format!("hello.sync-conflict-20261121-134303-{short}.txt")
        );
        assert_eq!(conflict_name("a.b/c", id, t), format!("a.b/c.sync-conflict-20261121-134303-{short}"));
        assert_eq!(
            conflict_name("d/.bashrc", id, t),
            format!("d/.sync-conflict-20261121-134303-{short}.bashrc")
        );
        assert_eq!(versioned_name("d/x.tar.gz", t), "d/x.tar~20261121-134303.gz");
        let names: Vec<String> = versioned_names("a.txt", t).collect();
        assert_eq!(names.len(), 60);
        assert_eq!(
            (names[0].as_str(), names[1].as_str()),
            ("a~20261121-134303.txt", "a~20261121-134304.txt")
        );
        assert_eq!(names.iter().collect::<std::collections::HashSet<_>>().len(), 60, "all distinct");
    }

    #[test]
    fn old_versions_are_cleaned_by_the_time_in_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_795_268_583);
        let v = dir.path().join(VERSIONS_DIR).join("d");
        fs::create_dir_all(&v).unwrap();
        let old = versioned_name("d/a.txt", now - Duration::from_secs(40 * 86400));
        let new = versioned_name("d/b.txt", now - Duration::from_secs(86400));
        fs::write(dir.path().join(VERSIONS_DIR).join(&old), b"old").unwrap();
        fs::write(dir.path().join(VERSIONS_DIR).join(&new), b"new").unwrap();
        assert_eq!(clean_versions(dir.path(), 30, now).unwrap(), 1);
        assert!(!dir.path().join(VERSIONS_DIR).join(old).exists());
        assert!(dir.path().join(VERSIONS_DIR).join(new).exists());
        assert_eq!(clean_versions(dir.path(), 0, now).unwrap(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn old_versions_are_never_cleaned_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        let now = UNIX_EPOCH + Duration::from_secs(1_795_268_583);
        let old = versioned_name("a.txt", now - Duration::from_secs(40 * 86400));
        fs::create_dir_all(outside.join("d")).unwrap();
        fs::create_dir_all(&root).unwrap();
        fs::write(outside.join(&old), b"old, outside").unwrap();
        fs::write(outside.join("d").join(&old), b"old, outside").unwrap();
        // `.stversions` itself a link: an error, nothing deleted.
        std::os::unix::fs::symlink(&outside, root.join(VERSIONS_DIR)).unwrap();
        let e = clean_versions(&root, 30, now).unwrap_err();
        assert_eq!(e.to_string(), "a symbolic link is in the path: .stversions");
        // A link to a directory inside it: not entered; an old-named link: removed as itself.
        fs::remove_file(root.join(VERSIONS_DIR)).unwrap();
        fs::create_dir(root.join(VERSIONS_DIR)).unwrap();
        std::os::unix::fs::symlink(outside.join("d"), root.join(VERSIONS_DIR).join("d")).unwrap();
        std::os::unix::fs::symlink(outside.join(&old), root.join(VERSIONS_DIR).join(&old)).unwrap();
        assert_eq!(clean_versions(&root, 30, now).unwrap(), 1);
        assert!(fs::symlink_metadata(root.join(VERSIONS_DIR).join(&old)).is_err());
        assert_eq!(fs::read(outside.join(&old)).unwrap(), b"old, outside");
        assert_eq!(fs::read(outside.join("d").join(&old)).unwrap(), b"old, outside");
    }

    #[test]
    fn the_disk_must_match_the_index_before_anything_is_replaced() {
        let f = FileInfo {
            name: "f".into(),
            file_type: FileType::File,
            size: 3,
            permissions: 0o644,
            no_permissions: false,
            modified_s: 10,
            modified_ns: 5,
            modified_by: ShortId(1),
            deleted: false,
            invalid: false,
            version: crate::bep::Vector::new(),
            sequence: 1,
            block_size: 131072,
            blocks: Vec::new(),
            symlink_target: String::new(),
        };
        let stat = |size, s| Stat {
            kind: Kind::File,
            size,
            permissions: 0o644,
            modified_s: s,
            modified_ns: 5,
            change_time: 0,
            inode: 1,
        };
        assert!(matches_index(Some(&stat(3, 10)), Some(&f)));
        assert!(!matches_index(Some(&stat(4, 10)), Some(&f)), "size changed");
        assert!(!matches_index(Some(&stat(3, 11)), Some(&f)), "mtime changed");
        assert!(!matches_index(Some(&stat(3, 10)), None), "a file the scanner has not seen yet");
        assert!(matches_index(None, Some(&f)));
        assert!(matches_index(None, None));
    }
}

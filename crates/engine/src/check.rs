//! `peerfold check`: compares a folder's local index with its disk and reports where they
//! differ. It never changes either: the scanner is what brings the index in line with the disk.
//!
//! It owns the comparison and the report. It walks the disk one directory at a time, as the
//! scanner does (`disk::list_dir` beside [`Index::local_children`], merged by name), so memory
//! is bounded by the largest directory (and the reported differences, capped at
//! [`MAX_LISTED`]). It compares what the scanner compares — type, size, modification time and
//! permissions for files, permissions for directories, the target for symlinks — so a clean
//! check means a scan would record nothing. With `hash` it also reads every file whose
//! metadata agrees and compares its blocks' SHA-256 with the index's.
//!
//! Names the folder's `.stignore` matches are left out on both sides, as are the folder's
//! internal names (`.stfolder`, `.stignore`, `.stversions` at the root). Download temporaries
//! (`.syncthing.*.tmp`) are listed on their own: they belong to no index entry, and one whose
//! download is still needed is expected (an interrupted pull resumes from it), so they are not
//! differences.
//!
//! The index is read through a read-only connection, beside a running daemon or without one:
//! a check that runs while the folder changes may see a change the scanner has not recorded
//! yet; run it on a folder that is up to date and idle.

use std::path::{Path, PathBuf};

use tokio::runtime::Handle;
use unicode_normalization::is_nfc;

use crate::bep::{FileInfo, FileType};
use crate::db::{DbError, FolderIdx, Index};
use crate::ignore::{IgnoreError, Ignores};
use crate::layout::{INTERNAL_NAMES, is_temp};
use crate::scan::disk::{self, Kind, Stat};
use crate::scan::hash::{HashError, hash_file};

/// Differences listed in a report; beyond that they are only counted.
pub const MAX_LISTED: usize = 10_000;
/// Index entries read per query below a directory missing from disk.
const PAGE: u32 = 1000;

/// Errors that stop a check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("folder path {0} does not exist (is the disk mounted?)")]
    FolderMissing(PathBuf),
    #[error("folder path {0} is not a directory")]
    NotADirectory(PathBuf),
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
    #[error("the check was interrupted")]
    Interrupted,
}

/// What differs for one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    /// The index has a live entry; the disk has nothing there.
    Missing,
    /// The disk has something the index has no live entry for (or a name that cannot be
    /// synced as it is).
    Extra,
    /// A file on one side, a directory or symlink on the other.
    Type,
    Size,
    Modified,
    Permissions,
    /// A symlink points elsewhere.
    Target,
    /// A file's data does not hash to the index's blocks (with `--hash`).
    Content,
    /// The disk could not be read there.
    Unreadable,
}

impl std::fmt::Display for DiffKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing on disk",
            Self::Extra => "not in the index",
            Self::Type => "type differs",
            Self::Size => "size differs",
            Self::Modified => "modification time differs",
            Self::Permissions => "permissions differ",
            Self::Target => "symlink target differs",
            Self::Content => "content differs",
            Self::Unreadable => "cannot be read",
        })
    }
}

/// One difference between the index and the disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Difference {
    /// Folder-relative path (lossy for names that are not UTF-8).
    pub path: String,
    pub kind: DiffKind,
    /// What the index says, in words (empty when it has nothing).
    pub index: String,
    /// What the disk has, in words (empty when it has nothing).
    pub disk: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)?;
        match (self.index.is_empty(), self.disk.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, " (index: {})", self.index),
            (true, false) => write!(f, " (disk: {})", self.disk),
            (false, false) => write!(f, " (index: {}; disk: {})", self.index, self.disk),
        }
    }
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub folder: String,
    pub path: String,
    /// Entries on disk compared (not counting ignored and internal names).
    pub compared: u64,
    /// Files whose content was hashed and compared (with `--hash`).
    pub hashed: u64,
    /// The first [`MAX_LISTED`] differences, in walk order.
    pub differences: Vec<Difference>,
    /// Differences found in all (more than listed when there were very many).
    pub total_differences: u64,
    /// Download temporaries found (`.syncthing.*.tmp`), folder-relative.
    pub temp_files: Vec<String>,
}

impl Report {
    /// Whether the index and the disk agree.
    pub fn is_clean(&self) -> bool {
        self.total_differences == 0
    }
}

/// Compares the folder `folder` of `index` (`None`: the index has never recorded it, so it is
/// empty) with the disk at `root`. With `hash`, files whose metadata agrees are read and their
/// blocks compared too.
pub async fn check(
    index: Index,
    folder: Option<FolderIdx>,
    folder_id: &str,
    root: &Path,
    hash: bool,
) -> Result<Report, CheckError> {
    match Stat::of_path(root) {
        Ok(s) if s.kind == Kind::Directory => {}
        Ok(_) => return Err(CheckError::NotADirectory(root.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckError::FolderMissing(root.to_owned()));
        }
        Err(source) => return Err(CheckError::Root { path: root.to_owned(), source }),
    }
    let mut walk = Walk {
        rt: Handle::current(),
        index,
        folder,
        root: root.to_owned(),
        hash,
        ignores: Ignores::default(),
        report: Report {
            folder: folder_id.to_owned(),
            path: root.display().to_string(),
            ..Report::default()
        },
    };
    tokio::task::spawn_blocking(move || {
        walk.ignores = Ignores::load(&walk.root)?;
        walk.run()?;
        Ok(walk.report)
    })
    .await
    .map_err(|_| CheckError::Interrupted)?
}

/// One check in progress, on a blocking thread.
struct Walk {
    rt: Handle,
    index: Index,
    folder: Option<FolderIdx>,
    root: PathBuf,
    hash: bool,
    ignores: Ignores,
    report: Report,
}

impl Walk {
    fn run(&mut self) -> Result<(), CheckError> {
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let subdirs = self.compare_dir(&dir)?;
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Compares one directory's listing with the index's entries for it; returns the
    /// subdirectories on disk to descend into, in name order.
    fn compare_dir(&mut self, dir: &str) -> Result<Vec<String>, CheckError> {
        let known = match self.folder {
            Some(folder) => self.rt.block_on(self.index.local_children(folder, dir))?,
            None => Vec::new(),
        };
        let (entries, errors) = match disk::list_dir(&self.root.join(dir)) {
            Ok(x) => x,
            Err(e) => {
                self.differ(dir, DiffKind::Unreadable, String::new(), format!("cannot list: {e}"));
                return Ok(Vec::new());
            }
        };
        let mut unreadable = std::collections::HashSet::new();
        for (file_name, e) in errors {
            let name = join(dir, &file_name.to_string_lossy());
            self.differ(&name, DiffKind::Unreadable, String::new(), e.to_string());
            unreadable.insert(name);
        }
        let mut on_disk: Vec<(String, Stat)> = Vec::with_capacity(entries.len());
        for entry in entries {
            let lossy = entry.file_name.to_string_lossy();
            let name = join(dir, &lossy);
            if dir.is_empty() && INTERNAL_NAMES.contains(&lossy.as_ref()) {
                continue;
            }
            if is_temp(&lossy) {
                self.report.temp_files.push(name);
                continue;
            }
            match entry.file_name.to_str() {
                // The scanner renames a name that is not NFC; until then the index cannot
                // hold it.
                Some(s) if is_nfc(s) => on_disk.push((name, entry.stat)),
                Some(_) => {
                    self.differ(&name, DiffKind::Extra, String::new(), "a name not in Unicode NFC".into())
                }
                None => self.differ(&name, DiffKind::Extra, String::new(), "a name not valid UTF-8".into()),
            }
        }
        on_disk.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let mut subdirs = Vec::new();
        let mut known = known.into_iter().peekable();
        for (name, stat) in on_disk {
            while let Some(k) = known.next_if(|k| k.name < name) {
                if !unreadable.contains(&k.name) {
                    self.gone(&k)?;
                }
            }
            let prev = known.next_if(|k| k.name == name);
            let ignored = self.ignores.matches(&name).is_ignored();
            if stat.kind == Kind::Directory && !(ignored && self.ignores.skip_ignored_dirs()) {
                subdirs.push(name.clone());
            }
            if ignored {
                continue;
            }
            self.report.compared += 1;
            match prev.filter(|p| !p.deleted) {
                Some(p) if p.invalid => {}
                Some(p) => self.compare(&p, &stat)?,
                None if stat.kind == Kind::Other => {}
                None => self.differ(&name, DiffKind::Extra, String::new(), describe_disk(&stat)),
            }
        }
        for k in known {
            if !unreadable.contains(&k.name) {
                self.gone(&k)?;
            }
        }
        Ok(subdirs)
    }

    /// An index entry with nothing on disk at its name.
    fn gone(&mut self, k: &FileInfo) -> Result<(), CheckError> {
        if !is_live(k) || self.is_excluded(&k.name) {
            return Ok(());
        }
        self.differ(&k.name, DiffKind::Missing, describe_index(k), String::new());
        if k.is_directory() {
            self.missing_below(&k.name)?;
        }
        Ok(())
    }

    /// Reports every live index entry below `dir`, which is not a directory on disk.
    fn missing_below(&mut self, dir: &str) -> Result<(), CheckError> {
        let Some(folder) = self.folder else { return Ok(()) };
        let mut after: Option<String> = None;
        loop {
            let page = self.rt.block_on(self.index.local_below(folder, dir, after.as_deref(), PAGE))?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.name.clone());
            for k in &page {
                if is_live(k) && !self.is_excluded(&k.name) {
                    self.differ(&k.name, DiffKind::Missing, describe_index(k), String::new());
                }
            }
        }
    }

    /// Compares a live, valid index entry with what is on disk at its name.
    fn compare(&mut self, k: &FileInfo, stat: &Stat) -> Result<(), CheckError> {
        let name = k.name.as_str();
        let same_type = matches!(
            (k.file_type, stat.kind),
            (FileType::File, Kind::File)
                | (FileType::Directory, Kind::Directory)
                | (FileType::Symlink, Kind::Symlink)
        );
        if !same_type {
            self.differ(name, DiffKind::Type, describe_index(k), describe_disk(stat));
            if k.is_directory() {
                self.missing_below(name)?;
            }
            return Ok(());
        }
        if cfg!(unix)
            && k.file_type != FileType::Symlink
            && !k.no_permissions
            && k.permissions != stat.permissions
        {
            let (i, d) = (format!("{:o}", k.permissions), format!("{:o}", stat.permissions));
            self.differ(name, DiffKind::Permissions, i, d);
        }
        match k.file_type {
            FileType::Directory => {}
            FileType::Symlink => match std::fs::read_link(self.root.join(name)) {
                Ok(t) => {
                    let target = t.to_string_lossy().replace('\\', "/");
                    if target != k.symlink_target {
                        self.differ(name, DiffKind::Target, k.symlink_target.clone(), target);
                    }
                }
                Err(e) => self.differ(name, DiffKind::Unreadable, String::new(), e.to_string()),
            },
            FileType::File => {
                let mut same = true;
                if k.size != stat.size {
                    self.differ(name, DiffKind::Size, k.size.to_string(), stat.size.to_string());
                    same = false;
                }
                if (k.modified_s, k.modified_ns) != (stat.modified_s, stat.modified_ns) {
                    let (i, d) = (time(k.modified_s, k.modified_ns), time(stat.modified_s, stat.modified_ns));
                    self.differ(name, DiffKind::Modified, i, d);
                    same = false;
                }
                if same && self.hash {
                    self.compare_content(k, stat)?;
                }
            }
        }
        Ok(())
    }

    /// Hashes the file and compares its blocks with the index's.
    fn compare_content(&mut self, k: &FileInfo, stat: &Stat) -> Result<(), CheckError> {
        let Some(folder) = self.folder else { return Ok(()) };
        let Some(full) = self.rt.block_on(self.index.local_file(folder, &k.name))? else {
            return Ok(());
        };
        let no_hook = |_: u64| Ok(());
        match hash_file(&self.root.join(&k.name), stat, full.block_size, &no_hook) {
            Ok(blocks) => {
                self.report.hashed += 1;
                let differ = blocks.len() != full.blocks.len()
                    || blocks.iter().zip(&full.blocks).any(|(a, b)| a.hash != b.hash || a.size != b.size);
                if differ {
                    let first = blocks.iter().zip(&full.blocks).position(|(a, b)| a.hash != b.hash);
                    let at = first.map_or_else(|| "the block list".to_owned(), |i| format!("block {i}"));
                    let (i, d) = (format!("{} blocks", full.blocks.len()), format!("differs from {at}"));
                    self.differ(&k.name, DiffKind::Content, i, d);
                }
            }
            Err(HashError::Changed) => {
                let why = "it changed while it was read; check again when it is idle".to_owned();
                self.differ(&k.name, DiffKind::Unreadable, String::new(), why);
            }
            Err(HashError::Io(e)) => self.differ(&k.name, DiffKind::Unreadable, String::new(), e.to_string()),
        }
        Ok(())
    }

    /// Ignored by `.stignore`, or internal: never compared.
    fn is_excluded(&self, name: &str) -> bool {
        let top = name.split('/').next().unwrap_or(name);
        INTERNAL_NAMES.contains(&top) || self.ignores.is_ignored(name)
    }

    fn differ(&mut self, path: &str, kind: DiffKind, index: String, disk: String) {
        self.report.total_differences += 1;
        if self.report.differences.len() < MAX_LISTED {
            self.report.differences.push(Difference { path: path.to_owned(), kind, index, disk });
        }
    }
}

fn is_live(k: &FileInfo) -> bool {
    !k.deleted && !k.invalid
}

fn describe_index(k: &FileInfo) -> String {
    match k.file_type {
        FileType::File => format!("file, {} bytes", k.size),
        FileType::Directory => "directory".to_owned(),
        FileType::Symlink => format!("symlink to {}", k.symlink_target),
    }
}

fn describe_disk(s: &Stat) -> String {
    match s.kind {
        Kind::File => format!("file, {} bytes", s.size),
        Kind::Directory => "directory".to_owned(),
        Kind::Symlink => "symlink".to_owned(),
        Kind::Other => "not a file, directory or symlink".to_owned(),
    }
}

fn time(s: i64, ns: i32) -> String {
    format!("{s}.{ns:09}")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

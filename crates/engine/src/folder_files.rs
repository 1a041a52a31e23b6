//! A folder's files as the user manages them beside syncing: its ignore patterns
//! (`.stignore`), the conflict copies syncing left (`name.sync-conflict-YYYYMMDD-HHMMSS-ID.ext`)
//! and the old versions trash-can versioning keeps in `.stversions`.
//!
//! It owns these file operations and their safety: every path a user names is checked to stay
//! inside the folder (no `..`, not absolute, no symbolic link on the way), and every change
//! lands with a rename, so a file is either the old or the new content, never half of each.
//! The engine runs the changing operations inside the folder's task, so they never race a scan
//! or a pull, and rescans what they touched so peers get the result.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::{DbError, FolderIdx, Index};
use crate::identity::ShortId;
use crate::ignore::{IgnoreError, Ignores};
use crate::layout::{IGNORE_FILE, VERSIONS_DIR, temp_path};
use crate::pull::split_ext;

/// Conflict copies listed at most per folder.
const CONFLICTS_LISTED: u32 = 1000;
/// Version files read at most per folder (the trash can is not indexed, so it is walked).
const VERSIONS_LISTED: usize = 10_000;
/// What names a conflict copy: `stem` + this + `YYYYMMDD-HHMMSS-SHORTID` + `ext`.
const CONFLICT_MARK: &str = ".sync-conflict-";

/// Why an operation on a folder's files was refused or failed. Each is one sentence for the
/// user; on an error nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// An ignore pattern that does not parse; `line` counts from 1.
    #[error("line {line} ({text:?}) is not a valid ignore pattern: {reason}")]
    BadPattern { line: usize, text: String, reason: String },
    /// A path or name the caller gave that cannot be used (it leaves the folder, or is not
    /// what the operation works on).
    #[error("{0}")]
    BadPath(String),
    /// What the caller named does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FilesError {
    let path = path.to_owned();
    move |source| FilesError::Io { what, path, source }
}

/// A file's size and modification time (RFC 3339, UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileStamp {
    pub size: u64,
    pub modified: String,
}

/// A conflict copy with the file it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConflictView {
    /// The file the copy belongs to (folder-relative).
    pub path: String,
    /// The conflict copy (folder-relative).
    pub conflict: String,
    /// The short ID (first group of the device ID) in the copy's name.
    pub device: String,
    /// That device's configured name (this device's own name if it is this one), if any.
    pub device_name: Option<String>,
    /// The file as it is now; null if it no longer exists.
    pub current: Option<FileStamp>,
    pub copy: FileStamp,
}

/// Which side of a conflict to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The file stays as it is; the conflict copy goes.
    Current,
    /// The copy's content becomes the file.
    Copy,
}

/// The old versions of one file in `.stversions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionedFile {
    /// The file's folder-relative path.
    pub path: String,
    /// Newest first.
    pub versions: Vec<VersionView>,
}

/// One old version of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionView {
    /// When it was replaced or deleted, `YYYYMMDD-HHMMSS` (UTC): what names it in a restore.
    pub version: String,
    /// Its modification time.
    pub modified: String,
    pub size: u64,
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-21T10:10:10Z`).
pub fn rfc3339(unix_secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

// ---- ignore patterns ----

/// The lines of the folder's `.stignore` (none if there is no file).
pub fn read_ignores(root: &Path) -> Result<Vec<String>, FilesError> {
    let path = root.join(IGNORE_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("read", &path)(e)),
    }
}

/// Checks every line as Syncthing would parse it (includes resolved against the folder), then
/// replaces the folder's `.stignore` with them at once. On an error nothing is written.
pub fn write_ignores(root: &Path, lines: &[String]) -> Result<(), FilesError> {
    if let Some((i, line)) = lines.iter().enumerate().find(|(_, l)| l.contains(['\n', '\r', '\0'])) {
        return Err(FilesError::BadPattern {
            line: i + 1,
            text: line.clone(),
            reason: String::from("a line cannot hold a line break or NUL"),
        });
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let path = root.join(IGNORE_FILE);
    Ignores::parse(&text, &path).map_err(|e| match e {
        IgnoreError::Pattern { line, pattern, reason, .. } => {
            FilesError::BadPattern { line, text: pattern, reason }
        }
        e => {
            let line = ignore_error_line(&e);
            FilesError::BadPattern {
                line,
                text: lines.get(line.wrapping_sub(1)).cloned().unwrap_or_default(),
                reason: crate::errors::error_chain(&e),
            }
        }
    })?;
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644).map_err(FilesError::Write)
}

fn ignore_error_line(e: &IgnoreError) -> usize {
    match e {
        IgnoreError::Pattern { line, .. }
        | IgnoreError::IncludeNotFound { line, .. }
        | IgnoreError::IncludeIo { line, .. }
        | IgnoreError::IncludeLoop { line, .. }
        | IgnoreError::DuplicateInclude { line, .. } => *line,
        IgnoreError::Io { .. } | IgnoreError::TooComplex { .. } => 0,
    }
}

// ---- paths ----

/// `rel` as a path inside `root`, refusing one that is empty, absolute, not canonical, goes up
/// (`..`) or passes through a symbolic link (which could lead anywhere). Parents that do not
/// exist yet are fine.
pub fn inside(root: &Path, rel: &str) -> Result<PathBuf, FilesError> {
    if rel.starts_with('/') {
        return Err(FilesError::BadPath(format!(
            "{rel:?} is an absolute path; give the path inside the folder"
        )));
    }
    if rel.split('/').any(|p| p == "..") {
        return Err(FilesError::BadPath(format!("{rel:?} leaves the folder (it contains \"..\")")));
    }
    if !crate::bep::is_canonical_name(rel) {
        return Err(FilesError::BadPath(format!(
            "{rel:?} is not a path inside the folder (no empty or \".\" parts, no NUL)"
        )));
    }
    let mut at = root.to_owned();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(FilesError::BadPath(format!(
                    "{rel:?} passes through the symbolic link {:?}",
                    parts[..=i].join("/")
                )));
            }
            Ok(m) if i + 1 < parts.len() && !m.is_dir() => {
                return Err(FilesError::BadPath(format!(
                    "{rel:?} is not a path in the folder: {:?} is a file",
                    parts[..=i].join("/")
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(io_error("read", &at)(e)),
        }
    }
    Ok(root.join(rel))
}

/// A regular file's metadata, or why `rel` names none.
fn regular_file(path: &Path, rel: &str) -> Result<fs::Metadata, FilesError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(m),
        Ok(_) => Err(FilesError::BadPath(format!("{rel:?} is not a regular file"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(FilesError::NotFound(format!("there is no file {rel:?} in the folder")))
        }
        Err(e) => Err(io_error("read", path)(e)),
    }
}

fn stamp_of(m: &fs::Metadata) -> FileStamp {
    FileStamp { size: m.len(), modified: rfc3339(m.modified().map_or(0, unix_secs)) }
}

/// Whether `s` is `YYYYMMDD-HHMMSS`.
fn is_stamp(s: &str) -> bool {
    s.len() == 15 && s.bytes().enumerate().all(|(i, b)| if i == 8 { b == b'-' } else { b.is_ascii_digit() })
}

// ---- conflicts ----

/// What a conflict copy's name says: the file it belongs to and the winning device's short ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictName {
    pub original: String,
    pub device: String,
}

/// Parses `dir/stem.sync-conflict-YYYYMMDD-HHMMSS-SHORTID.ext` (the name
/// [`crate::pull::conflict_name`] makes); `None` for any other name.
pub fn parse_conflict(name: &str) -> Option<ConflictName> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    let base = name.get(base_start..)?;
    let at = base.rfind(CONFLICT_MARK)?;
    let rest = base.get(at + CONFLICT_MARK.len()..)?;
    let stamp = rest.get(..15)?;
    let device = rest.get(16..23)?;
    let ext = rest.get(23..)?;
    let device_ok = device.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    if !is_stamp(stamp) || rest.as_bytes().get(15) != Some(&b'-') || !device_ok {
        return None;
    }
    if !(ext.is_empty() || ext.starts_with('.')) || (at == 0 && ext.is_empty()) {
        return None;
    }
    let original = format!("{}{}{ext}", name.get(..base_start)?, base.get(..at)?);
    Some(ConflictName { original, device: device.to_owned() })
}

/// The folder's conflict copies, from the index, with both versions as the index has them.
/// `me` is this device, which the copy's name may name too.
pub async fn conflicts(
    index: &Index,
    folder: FolderIdx,
    config: &Config,
    me: ShortId,
) -> Result<Vec<ConflictView>, FilesError> {
    let mut out = Vec::new();
    for copy in index.local_conflict_copies(folder, CONFLICTS_LISTED).await? {
        let Some(name) = parse_conflict(&copy.name) else { continue };
        // Only a file's conflict can be resolved here.
        if copy.is_directory() || copy.is_symlink() {
            continue;
        }
        let current = index
            .local_file_head(folder, &name.original)
            .await?
            .filter(|f| !f.deleted)
            .map(|f| FileStamp { size: f.size, modified: rfc3339(f.modified_s) });
        let device_name = if me.to_string() == name.device {
            Some(config.name.clone())
        } else {
            config.devices.iter().find(|d| d.id.short().to_string() == name.device).map(|d| d.name.clone())
        };
        let device_name = device_name.filter(|n| !n.is_empty());
        out.push(ConflictView {
            path: name.original,
            conflict: copy.name,
            device: name.device,
            device_name,
            current,
            copy: FileStamp { size: copy.size, modified: rfc3339(copy.modified_s) },
        });
    }
    Ok(out)
}

/// Resolves the conflict copy `conflict`: `Keep::Current` takes the copy away,
/// `Keep::Copy` renames it over the file it belongs to. What goes away goes to `.stversions`
/// when `versioning` is on. Returns the paths it changed (to rescan).
pub fn resolve_conflict(
    root: &Path,
    conflict: &str,
    keep: Keep,
    versioning: bool,
    now: SystemTime,
) -> Result<Vec<String>, FilesError> {
    let copy_path = inside(root, conflict)?;
    let Some(name) = parse_conflict(conflict) else {
        return Err(FilesError::BadPath(format!(
            "{conflict:?} is not a conflict copy (NAME.sync-conflict-YYYYMMDD-HHMMSS-DEVICE.EXT)"
        )));
    };
    if crate::layout::is_internal(conflict) {
        return Err(FilesError::BadPath(format!("{conflict:?} is not a synced file")));
    }
    regular_file(&copy_path, conflict)?;
    match keep {
        Keep::Current => {
            if versioning {
                archive(root, conflict, now, Archive::Move)?;
            } else {
                fs::remove_file(&copy_path).map_err(io_error("remove", &copy_path))?;
            }
        }
        Keep::Copy => {
            let target = inside(root, &name.original)?;
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {
                    return Err(FilesError::BadPath(format!(
                        "{:?} is a directory; a file cannot replace it",
                        name.original
                    )));
                }
                Ok(_) if versioning => archive(root, &name.original, now, Archive::Link)?,
                _ => {}
            }
            // One rename: the file is the old content or the copy's, never neither.
            fs::rename(&copy_path, &target).map_err(io_error("replace", &target))?;
        }
    }
    Ok(vec![conflict.to_owned(), name.original])
}

// ---- versions ----

enum Archive {
    /// A hard link: the file stays in place until something replaces it.
    Link,
    Move,
}

/// Puts the file at `rel` into `.stversions` under `rel~YYYYMMDD-HHMMSS.ext` (now). A version
/// of the same second kept there already is never overwritten: the next free second is taken.
fn archive(root: &Path, rel: &str, now: SystemTime, how: Archive) -> Result<(), FilesError> {
    let from = root.join(rel);
    let mut to = None;
    for name in crate::pull::versioned_names(rel, now) {
        let candidate = inside(root, &format!("{VERSIONS_DIR}/{name}"))?;
        if !candidate.exists() {
            to = Some(candidate);
            break;
        }
    }
    let Some(to) = to else {
        return Err(FilesError::BadPath(format!(
            "too many versions of {rel:?} were kept this minute; try again in a minute"
        )));
    };
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    match how {
        Archive::Link => fs::hard_link(&from, &to),
        Archive::Move => fs::rename(&from, &to),
    }
    .map_err(io_error("keep a version of", &from))
}

/// Moves what is at `rel` (a file, or a directory with everything in it) into `.stversions`,
/// as the puller moves what it deletes, whatever the folder's versioning: the user asked for
/// the local copy to go (deselecting it), and nothing is lost. Symbolic links inside are
/// moved as themselves, never followed; names that are not UTF-8 are left where they are (and
/// so is their directory). Returns how many files (and links) were moved.
pub fn trash_subtree(root: &Path, rel: &str, now: SystemTime) -> Result<u64, FilesError> {
    let path = inside(root, rel)?;
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("read", &path)(e)),
    };
    if !meta.is_dir() {
        archive(root, rel, now, Archive::Move)?;
        return Ok(1);
    }
    let mut moved = 0;
    let mut pending = vec![rel.to_owned()];
    let mut walked = Vec::new();
    while let Some(dir) = pending.pop() {
        let abs = root.join(&dir);
        for entry in fs::read_dir(&abs).map_err(io_error("list", &abs))? {
            let entry = entry.map_err(io_error("list", &abs))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let child = format!("{dir}/{name}");
            // `DirEntry::file_type` does not follow a symbolic link.
            if entry.file_type().map_err(io_error("read", &entry.path()))?.is_dir() {
                pending.push(child);
            } else {
                archive(root, &child, now, Archive::Move)?;
                moved += 1;
            }
        }
        walked.push(dir);
    }
    // Deepest first; a directory still holding something (a name that is not UTF-8) stays.
    for dir in walked.iter().rev() {
        let _ = fs::remove_dir(root.join(dir));
    }
    Ok(moved)
}

/// `dir/base~YYYYMMDD-HHMMSS.ext` (relative to `.stversions`) as the original path and the
/// version; `None` for any other name.
fn parse_version(rel: &str) -> Option<(String, String)> {
    let base_start = rel.rfind('/').map_or(0, |i| i + 1);
    let base = rel.get(base_start..)?;
    // The extension may hold a `~` too: try each from the right.
    base.match_indices('~').rev().find_map(|(at, _)| {
        let stamp = base.get(at + 1..at + 16)?;
        let ext = base.get(at + 16..)?;
        let stem = base.get(..at)?;
        (is_stamp(stamp) && (ext.is_empty() || ext.starts_with('.')) && !(stem.is_empty() && ext.is_empty()))
            .then(|| (format!("{}{stem}{ext}", rel.get(..base_start).unwrap_or("")), stamp.to_owned()))
    })
}

/// The versions kept in the folder's `.stversions`, per file in path order, newest first.
/// Symbolic links there are not followed.
pub fn list_versions(root: &Path) -> Result<Vec<VersionedFile>, FilesError> {
    let dir = root.join(VERSIONS_DIR);
    let mut files: BTreeMap<String, Vec<VersionView>> = BTreeMap::new();
    if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Ok(Vec::new());
    }
    let mut seen = 0;
    let mut stack = vec![(dir, String::new())];
    'walk: while let Some((d, prefix)) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(io_error("read", &d))? {
            let entry = entry.map_err(io_error("read", &d))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let kind = entry.file_type().map_err(io_error("read", &entry.path()))?;
            if kind.is_dir() {
                stack.push((entry.path(), rel));
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Some((original, version)) = parse_version(&rel) else { continue };
            let m = entry.metadata().map_err(io_error("read", &entry.path()))?;
            files.entry(original).or_default().push(VersionView {
                version,
                modified: stamp_of(&m).modified,
                size: m.len(),
            });
            seen += 1;
            if seen >= VERSIONS_LISTED {
                break 'walk;
            }
        }
    }
    Ok(files
        .into_iter()
        .map(|(path, mut versions)| {
            versions.sort_by(|a, b| b.version.cmp(&a.version));
            VersionedFile { path, versions }
        })
        .collect())
}

/// Puts version `version` of `path` back in place: the current file, if any, is kept as a
/// version first; the old version is renamed into place. Returns the path (to rescan).
pub fn restore_version(
    root: &Path,
    path: &str,
    version: &str,
    now: SystemTime,
) -> Result<String, FilesError> {
    let target = inside(root, path)?;
    if crate::layout::is_internal(path) {
        return Err(FilesError::BadPath(format!("{path:?} is not a synced file")));
    }
    if !is_stamp(version) {
        return Err(FilesError::BadPath(format!("{version:?} is not a version (YYYYMMDD-HHMMSS)")));
    }
    let (stem, ext) = split_ext(path);
    let kept = format!("{VERSIONS_DIR}/{stem}~{version}{ext}");
    let source = inside(root, &kept)?;
    match regular_file(&source, &kept) {
        Err(FilesError::NotFound(_)) => {
            return Err(FilesError::NotFound(format!("there is no version {version} of {path:?}")));
        }
        other => other?,
    };
    let current = match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(FilesError::BadPath(format!("{path:?} is a directory; a file cannot replace it")));
        }
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error("read", &target)(e)),
    };
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    // The version moves beside the file first, so keeping the current file as a version of
    // this very second cannot collide with it.
    let staged = temp_path(&target);
    fs::rename(&source, &staged).map_err(io_error("restore", &source))?;
    if current && let Err(e) = archive(root, path, now, Archive::Link) {
        let _ = fs::rename(&staged, &source);
        return Err(e);
    }
    fs::rename(&staged, &target).map_err(io_error("restore", &target))?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc_to_the_second() {
        assert_eq!(rfc3339(1_795_262_583), "2026-11-21T12:03:03Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
    use crate::pull::timestamp;

    #[test]
    fn conflict_names_parse_back_to_their_file() {
        let id = crate::identity::ShortId(0x0123_4567_89ab_cdef);
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        for name in ["a.txt", "d/e/f.tar.gz", "noext", "d/.bashrc", "a.b/c"] {
            let copy = crate::pull::conflict_name(name, id, t);
            let parsed = parse_conflict(&copy).unwrap_or_else(|| panic!("{copy}"));
            assert_eq!(parsed, ConflictName { original: name.to_owned(), device: id.to_string() });
        }
        for not in ["a.txt", "a.sync-conflict-2026-x.txt", "a.sync-conflict-20261121-101010-abcdefg.txt"] {
            assert_eq!(parse_conflict(not), None, "{not}");
        }
    }

    #[test]
    fn version_names_parse_back_to_their_file() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        for name in ["a.txt", "d/e/f.tar.gz", "noext", "d/.bashrc", "x.b~c"] {
            let kept = crate::pull::versioned_name(name, t);
            assert_eq!(parse_version(&kept), Some((name.to_owned(), timestamp(t))), "{kept}");
        }
        assert_eq!(parse_version("a~2026.txt"), None);
    }

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("f"), b"x").unwrap();
        // Making a symbolic link on Windows needs a privilege (or developer mode) a test
        // cannot count on, so the link case is Unix-only.
        #[cfg(unix)]
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        assert_eq!(inside(root, "d/new.txt").unwrap(), root.join("d/new.txt"));
        assert_eq!(inside(root, "new/dir/x").unwrap(), root.join("new/dir/x"));
        let mut cases = vec![
            ("../x", "leaves the folder"),
            ("d/../../x", "leaves the folder"),
            ("/etc/passwd", "absolute"),
            ("", "not a path"),
            ("d//x", "not a path"),
            ("f/x", "is a file"),
        ];
        if cfg!(unix) {
            cases.push(("link/x", "symbolic link"));
        }
        for (bad, want) in cases {
            let e = inside(root, bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_ignore_patterns_name_their_line_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_ignores(root, &["*.tmp".into(), "// comment".into()]).unwrap();
        assert_eq!(read_ignores(root).unwrap(), ["*.tmp", "// comment"]);
        let e = write_ignores(root, &["ok".into(), "a[".into()]).unwrap_err().to_string();
        assert!(e.starts_with("line 2 (\"a[\")"), "{e}");
        let e = write_ignores(root, &["#include missing.txt".into()]).unwrap_err().to_string();
        assert!(e.starts_with("line 1"), "{e}");
        assert_eq!(read_ignores(root).unwrap(), ["*.tmp", "// comment"], "nothing written");
        write_ignores(root, &[]).unwrap();
        assert_eq!(read_ignores(root).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_conflict_is_resolved_either_way_keeping_what_goes_as_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let id = crate::identity::ShortId(7);
        let copy = crate::pull::conflict_name("doc.txt", id, t);
        fs::write(root.join("doc.txt"), b"mine").unwrap();
        fs::write(root.join(&copy), b"theirs").unwrap();
        let e = resolve_conflict(root, "doc.txt", Keep::Copy, true, t).unwrap_err().to_string();
        assert!(e.contains("not a conflict copy"), "{e}");
        let changed = resolve_conflict(root, &copy, Keep::Copy, true, t).unwrap();
        assert_eq!(changed, [copy.clone(), "doc.txt".to_owned()]);
        assert_eq!(fs::read(root.join("doc.txt")).unwrap(), b"theirs");
        assert!(!root.join(&copy).exists());
        let versions = list_versions(root).unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!((versions[0].path.as_str(), versions[0].versions[0].size), ("doc.txt", 4));

        // Restoring puts "mine" back and keeps "theirs" as a version, of this same second.
        restore_version(root, "doc.txt", &timestamp(t), t).unwrap();
        assert_eq!(fs::read(root.join("doc.txt")).unwrap(), b"mine");
        assert_eq!(list_versions(root).unwrap()[0].versions[0].size, 6);
        // Another version in the same second takes the next one: nothing is overwritten.
        archive(root, "doc.txt", t, Archive::Link).unwrap();
        let versions = &list_versions(root).unwrap()[0].versions;
        let later = timestamp(t + std::time::Duration::from_secs(1));
        assert_eq!((versions[0].version.as_str(), versions[0].size), (later.as_str(), 4), "{versions:?}");
        assert_eq!((versions[1].version.as_str(), versions[1].size), (timestamp(t).as_str(), 6));
        let e = restore_version(root, "doc.txt", "20000101-000000", t).unwrap_err().to_string();
        assert!(e.contains("no version"), "{e}");

        fs::write(root.join(&copy), b"theirs again").unwrap();
        resolve_conflict(root, &copy, Keep::Current, false, t).unwrap();
        assert!(!root.join(&copy).exists());
        assert_eq!(fs::read(root.join("doc.txt")).unwrap(), b"mine");
    }
}

//! The metadata of a directory entry as syncing sees it (kind, size, permission bits, times,
//! inode), read without following symlinks. A leaf: the scanner lists with it and `beneath`
//! answers with it.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The kind of a directory entry, as far as syncing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    /// Sockets, FIFOs, devices: never synced.
    Other,
}

impl Kind {
    /// The kind of a file type as read without following a symlink.
    pub(crate) fn of(ft: std::fs::FileType) -> Self {
        if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Directory
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

/// The metadata that decides whether a file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    /// Unix mode bits `& 0o777` (on Windows: 0o644, or 0o444 when read-only).
    pub(crate) permissions: u32,
    pub(crate) modified_s: i64,
    pub(crate) modified_ns: i32,
    /// The inode change time in nanoseconds where the platform has one (else 0): it moves on
    /// every write even when a writer restores the mtime.
    pub(crate) change_time: i64,
    /// The inode number where the platform has one (else 0): it changes when the path is
    /// replaced by another file.
    pub(crate) inode: u64,
}

impl Stat {
    pub(crate) fn of_path(path: &Path) -> io::Result<Self> {
        Ok(Self::from_metadata(&std::fs::symlink_metadata(path)?))
    }

    pub(crate) fn of_open(file: &File) -> io::Result<Self> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    pub(crate) fn from_metadata(m: &Metadata) -> Self {
        let kind = Kind::of(m.file_type());
        let (modified_s, modified_ns) = m.modified().map_or((0, 0), split_time);
        Self {
            kind,
            size: if kind == Kind::File { m.len() } else { 0 },
            permissions: permissions(m),
            modified_s,
            modified_ns,
            change_time: change_time(m),
            inode: inode(m),
        }
    }

    /// The same file, untouched since `earlier`: same kind, size, modification time, inode and
    /// inode change time.
    pub(crate) fn untouched_since(&self, earlier: &Self) -> bool {
        self.kind == earlier.kind
            && self.size == earlier.size
            && self.modified_s == earlier.modified_s
            && self.modified_ns == earlier.modified_ns
            && self.change_time == earlier.change_time
            && self.inode == earlier.inode
    }
}

/// Splits a time into Unix seconds and nanoseconds, the way BEP carries it (times before 1970
/// have negative seconds and non-negative nanoseconds).
fn split_time(t: SystemTime) -> (i64, i32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos() as i32),
        Err(e) => {
            let d = e.duration();
            let (s, ns) = (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos() as i32);
            if ns == 0 { (-s, 0) } else { (-s - 1, 1_000_000_000 - ns) }
        }
    }
}

#[cfg(unix)]
fn permissions(m: &Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    m.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn permissions(m: &Metadata) -> u32 {
    if m.permissions().readonly() { 0o444 } else { 0o644 }
}

#[cfg(unix)]
fn change_time(m: &Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt as _;
    m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec())
}

#[cfg(not(unix))]
fn change_time(_: &Metadata) -> i64 {
    0
}

#[cfg(unix)]
fn inode(m: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_split_like_bep() {
        let t = UNIX_EPOCH - std::time::Duration::new(1, 250_000_000);
        assert_eq!(split_time(t), (-2, 750_000_000));
        // Whole hundreds of nanoseconds: Windows keeps times in units of 100 ns.
        let t = UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 500);
        assert_eq!(split_time(t), (1_600_000_000, 500));
    }

    #[cfg(unix)]
    #[test]
    fn stat_reads_kind_permissions_and_does_not_follow_symlinks() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let st = Stat::of_path(&f).unwrap();
        assert_eq!((st.kind, st.size, st.permissions), (Kind::File, 3, 0o640));
        assert_eq!(Stat::of_path(&dir.path().join("l")).unwrap().kind, Kind::Symlink);
        assert_eq!(Stat::of_path(dir.path()).unwrap().kind, Kind::Directory);
    }
}

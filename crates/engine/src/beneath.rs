//! Filesystem operations beneath a folder root that never follow a symbolic link.
//!
//! The puller and the block server reach every file through [`Beneath`], by its folder-relative
//! name (`/`-separated, as in the index). Names come from peers, and a folder's own contents may
//! change under the puller, so a path is never handed to the kernel to resolve as a whole: the
//! root (the configured path, which the user chose and may itself be a symlink) is opened, then
//! every directory on the way with `openat(O_DIRECTORY | O_NOFOLLOW)` — on Linux first tried in
//! one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` — and the last step is done relative to
//! the parent's descriptor with the call's no-follow form (`O_NOFOLLOW` opens, `mkdirat`,
//! `renameat`, `unlinkat`, `symlinkat`, `readlinkat`, `fstatat(AT_SYMLINK_NOFOLLOW)`; modes and
//! times are set on the opened descriptor). The descriptor that was checked is the one used, so
//! there is no window between a check and the use for a link to appear in.
//!
//! A symlink in a directory position is an error naming it ("a symbolic link is in the path:
//! Photos"). One at the final component is never opened, so never read or written through
//! ("a symbolic link is in the way: …"); it can be stat'ed, read with `readlink`, renamed or
//! removed as itself. Names with `..`, `.`, empty components or a leading `/` are refused.
//!
//! On other systems (Windows) the fallback checks each component with `symlink_metadata` and
//! then operates by path: a link made between that check and the use would still be followed
//! there. Peerfold does not make symlinks on Windows, so only local users could race it.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::stat::{Kind, Stat};

/// Why an operation was refused; carried inside the `io::Error` every operation returns.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("a symbolic link is in the path: {0}")]
    SymlinkInPath(String),
    #[error("a symbolic link is in the way: {0}")]
    SymlinkInTheWay(String),
    #[error("not a name inside the folder: {0:?}")]
    NotBeneath(String),
    #[error("not a regular file: {0}")]
    NotAFile(String),
}

impl From<BeneathError> for io::Error {
    fn from(e: BeneathError) -> Self {
        io::Error::other(e)
    }
}

/// The [`BeneathError`] inside `e`, if it is one.
pub fn refusal(e: &io::Error) -> Option<&BeneathError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<BeneathError>())
}

/// How [`Beneath::open`] opens a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Read only.
    Read,
    /// Write only; it must exist.
    Write,
    /// Read and write, created (with its directories) if missing, never truncated.
    Create,
}

/// A folder root; every operation takes a name relative to it.
#[derive(Clone, Copy, Debug)]
pub struct Beneath<'a> {
    root: &'a Path,
}

impl<'a> Beneath<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self { root }
    }

    /// What is at `name` (not following a symlink there), `None` if nothing is (or a directory
    /// on the way is missing).
    pub fn stat(&self, name: &str) -> io::Result<Option<Stat>> {
        let (parent, last) = split(name)?;
        let dir = match self.dir(&parent, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match dir.stat(OsStr::new(last)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the regular file `name`; a symlink or anything else that is not a regular file
    /// there is refused (a FIFO is opened non-blocking, so it cannot stall the caller).
    pub fn open(&self, name: &str, how: Open) -> io::Result<File> {
        let (parent, last) = split(name)?;
        let dir = self.dir(&parent, how == Open::Create)?;
        let file = match dir.open(OsStr::new(last), how) {
            Ok(f) => f,
            Err(e) if e.kind() != io::ErrorKind::NotFound && dir.is_symlink(OsStr::new(last)) => {
                return Err(BeneathError::SymlinkInTheWay(name.to_owned()).into());
            }
            Err(e) => return Err(e),
        };
        if !file.metadata()?.is_file() {
            return Err(BeneathError::NotAFile(name.to_owned()).into());
        }
        Ok(file)
    }

    /// Makes the directory `dir` and every missing one on the way (`""` is the root).
    pub fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        self.dir(&components(dir)?, true).map(drop)
    }

    /// Sets the permission bits of the directory `dir`.
    pub fn set_dir_mode(&self, dir: &str, mode: u32) -> io::Result<()> {
        self.dir(&components(dir)?, false)?.set_mode(mode)
    }

    /// Makes the directory `dir`'s entries durable (its renames, creations and removals).
    pub fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.dir(&components(dir)?, false)?.sync()
    }

    /// Renames `from` to `to` (either may be a symlink, which is renamed as itself). The
    /// directory of `to` must exist.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let ((fp, fl), (tp, tl)) = (split(from)?, split(to)?);
        let from_dir = self.dir(&fp, false)?;
        if fp == tp {
            return from_dir.rename(OsStr::new(fl), &from_dir, OsStr::new(tl));
        }
        let to_dir = self.dir(&tp, false)?;
        from_dir.rename(OsStr::new(fl), &to_dir, OsStr::new(tl))
    }

    /// Removes `name` whatever it is, a directory with everything in it; nothing if it is not
    /// there. Symlinks inside are removed, never followed.
    pub fn remove_all(&self, name: &str) -> io::Result<()> {
        let (parent, last) = split(name)?;
        let dir = match self.dir(&parent, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match dir.stat(OsStr::new(last)) {
            Ok(s) if s.kind == Kind::Directory => remove_tree(&dir, OsStr::new(last)),
            Ok(_) => dir.unlink(OsStr::new(last)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes the symlink `name -> target`. The directory of `name` must exist.
    pub fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        let (parent, last) = split(name)?;
        self.dir(&parent, false)?.symlink(target, OsStr::new(last))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: &str) -> io::Result<PathBuf> {
        let (parent, last) = split(name)?;
        self.dir(&parent, false)?.read_link(OsStr::new(last))
    }

    /// Removes the directory `dir` when everything directly in it is `doomed` (given the
    /// entry's base name and kind; a name that is not UTF-8 is never doomed): the doomed
    /// entries go first, a directory among them with everything in it, symlinks removed as
    /// themselves. When anything in it is not doomed, nothing is removed and the error
    /// (`DirectoryNotEmpty`) names it: checking first means a refused delete loses nothing.
    pub fn remove_dir_clearing(
        &self,
        dir: &str,
        doomed: &mut dyn FnMut(&str, Kind) -> bool,
    ) -> io::Result<()> {
        let (parent, last) = split(dir)?;
        let parent = self.dir(&parent, false)?;
        let d = parent.child(OsStr::new(last))?;
        let entries = d.entries()?;
        if let Some((name, _)) = entries.iter().find(|(n, k)| !n.to_str().is_some_and(|n| doomed(n, *k))) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is in it", name.to_string_lossy()),
            ));
        }
        for (name, kind) in entries {
            if kind == Kind::Directory { remove_tree(&d, &name)? } else { d.unlink(&name)? }
        }
        parent.rmdir(OsStr::new(last))
    }

    /// Removes every file and symlink under the directory `dir`, at any depth, whose base name
    /// `doomed` picks, and returns how many. Directories are entered only as themselves, never
    /// through a symlink; `dir` itself must not be one.
    pub fn remove_files_under(&self, dir: &str, doomed: &mut dyn FnMut(&str) -> bool) -> io::Result<u64> {
        let top = self.dir(&components(dir)?, false)?;
        let mut removed = 0;
        let mut stack = vec![top];
        while let Some(d) = stack.pop() {
            for (name, kind) in d.entries()? {
                if kind == Kind::Directory {
                    stack.push(d.child(&name)?);
                } else if doomed(&name.to_string_lossy()) {
                    d.unlink(&name)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Opens the directory made of `comps` under the root, making missing ones when `create`.
    fn dir(&self, comps: &[&str], create: bool) -> io::Result<Dir> {
        let root = Dir::root(self.root)?;
        if comps.is_empty() {
            return Ok(root);
        }
        // Also when making what is missing: the directories are there for all but the first
        // file of each, and the walk cost a system call per component.
        match root.fast_path(&comps.join("/")) {
            Some(Ok(d)) => return Ok(d),
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound && !create => return Err(e),
            // Missing (made on the walk), refused or not available: the walk says which
            // component is wrong.
            _ => {}
        }
        let mut dir = root;
        for (i, c) in comps.iter().enumerate() {
            let c = OsStr::new(c);
            let next = match dir.child(c) {
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    match dir.mkdir(c) {
                        Ok(()) => {}
                        // Made by someone else meanwhile: opening it below checks what it is.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    dir.child(c)
                }
                other => other,
            };
            dir = match next {
                Ok(d) => d,
                Err(e) if e.kind() != io::ErrorKind::NotFound && dir.is_symlink(c) => {
                    return Err(BeneathError::SymlinkInPath(comps[..=i].join("/")).into());
                }
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }
}

fn remove_tree(parent: &Dir, name: &OsStr) -> io::Result<()> {
    let dir = parent.child(name)?;
    for (entry, kind) in dir.entries()? {
        if kind == Kind::Directory {
            remove_tree(&dir, &entry)?;
        } else {
            dir.unlink(&entry)?;
        }
    }
    parent.rmdir(name)
}

/// The components of a folder-relative name; `""` is the root itself.
fn components(name: &str) -> io::Result<Vec<&str>> {
    if name.is_empty() {
        return Ok(Vec::new());
    }
    let comps: Vec<&str> = name.split('/').collect();
    let bad = name.contains('\0') || comps.iter().any(|c| matches!(*c, "" | "." | ".."));
    if bad {
        return Err(BeneathError::NotBeneath(name.to_owned()).into());
    }
    Ok(comps)
}

/// A name's directory components and its last one.
fn split(name: &str) -> io::Result<(Vec<&str>, &str)> {
    let mut comps = components(name)?;
    match comps.pop() {
        Some(last) => Ok((comps, last)),
        None => Err(BeneathError::NotBeneath(name.to_owned()).into()),
    }
}

#[cfg(unix)]
use unix::Dir;

#[cfg(unix)]
mod unix {
    use std::ffi::{OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::{Path, PathBuf};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags};

    use super::Open;
    use crate::stat::{Kind, Stat};

    /// An open directory; every operation is relative to it and follows no symlink.
    pub(super) struct Dir(OwnedFd);

    const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

    impl Dir {
        /// The folder root: the configured path, followed as the user set it up.
        pub(super) fn root(path: &Path) -> io::Result<Self> {
            Ok(Self(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?))
        }

        /// The directory `path` (several components) beneath this one in one call, where the
        /// kernel can refuse symlinks on the way itself; `None` where it cannot (then walk).
        #[cfg(target_os = "linux")]
        pub(super) fn fast_path(&self, path: &str) -> Option<io::Result<Self>> {
            use rustix::fs::ResolveFlags;
            use std::sync::atomic::{AtomicBool, Ordering};
            /// openat2 came with Linux 5.6; older kernels (or sandboxes) say ENOSYS.
            static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
            if UNAVAILABLE.load(Ordering::Relaxed) {
                return None;
            }
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.0, path, DIR_FLAGS, Mode::empty(), resolve) {
                Ok(fd) => Some(Ok(Self(fd))),
                Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
                    UNAVAILABLE.store(true, Ordering::Relaxed);
                    None
                }
                Err(e) if e == rustix::io::Errno::NOENT => Some(Err(e.into())),
                Err(_) => None,
            }
        }

        #[cfg(not(target_os = "linux"))]
        pub(super) fn fast_path(&self, _path: &str) -> Option<io::Result<Self>> {
            None
        }

        /// The subdirectory `name`, refused if it is a symlink (or not a directory).
        pub(super) fn child(&self, name: &OsStr) -> io::Result<Self> {
            Ok(Self(rustix::fs::openat(&self.0, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?))
        }

        pub(super) fn is_symlink(&self, name: &OsStr) -> bool {
            self.stat(name).is_ok_and(|s| s.kind == Kind::Symlink)
        }

        pub(super) fn mkdir(&self, name: &OsStr) -> io::Result<()> {
            Ok(rustix::fs::mkdirat(&self.0, name, Mode::from_raw_mode(0o777))?)
        }

        pub(super) fn stat(&self, name: &OsStr) -> io::Result<Stat> {
            Ok(stat_of(&rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW)?))
        }

        pub(super) fn open(&self, name: &OsStr, how: Open) -> io::Result<File> {
            let flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
            let flags = match how {
                Open::Read => flags | OFlags::RDONLY,
                Open::Write => flags | OFlags::WRONLY,
                Open::Create => flags | OFlags::RDWR | OFlags::CREATE,
            };
            let fd = rustix::fs::openat(&self.0, name, flags, Mode::from_raw_mode(0o666))?;
            // Non-blocking was for opening only (a FIFO); regular files ignore it anyway.
            Ok(File::from(fd))
        }

        pub(super) fn rename(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
            Ok(rustix::fs::renameat(&self.0, from, &to_dir.0, to)?)
        }

        pub(super) fn unlink(&self, name: &OsStr) -> io::Result<()> {
            Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::empty())?)
        }

        pub(super) fn rmdir(&self, name: &OsStr) -> io::Result<()> {
            Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::REMOVEDIR)?)
        }

        pub(super) fn symlink(&self, target: &str, name: &OsStr) -> io::Result<()> {
            Ok(rustix::fs::symlinkat(target, &self.0, name)?)
        }

        pub(super) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
            let target = rustix::fs::readlinkat(&self.0, name, Vec::new())?;
            Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
        }

        pub(super) fn set_mode(&self, mode: u32) -> io::Result<()> {
            // The permission bits fit every `mode_t` (16 bits on macOS, 32 on Linux).
            let bits = (mode & 0o777) as rustix::fs::RawMode;
            Ok(rustix::fs::fchmod(&self.0, Mode::from_raw_mode(bits))?)
        }

        pub(super) fn sync(&self) -> io::Result<()> {
            Ok(rustix::fs::fsync(&self.0)?)
        }

        /// The entries (not `.` and `..`) with their kind, symlinks as themselves.
        pub(super) fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
            let mut out = Vec::new();
            for entry in rustix::fs::Dir::read_from(&self.0)? {
                let entry = entry?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." {
                    continue;
                }
                let kind = match entry.file_type() {
                    FileType::RegularFile => Kind::File,
                    FileType::Directory => Kind::Directory,
                    FileType::Symlink => Kind::Symlink,
                    // The file system does not say: ask, without following.
                    FileType::Unknown => match self.stat(name) {
                        Ok(s) => s.kind,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    },
                    _ => Kind::Other,
                };
                out.push((name.to_owned(), kind));
            }
            Ok(out)
        }
    }

    /// The scanner's [`Stat`] from `fstatat`, field for field what it reads from `Metadata`.
    // The fields' integer types differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    fn stat_of(st: &rustix::fs::Stat) -> Stat {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Directory,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let ctime =
            (st.st_ctime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_ctime_nsec as i64);
        Stat {
            kind,
            size: if kind == Kind::File { st.st_size as u64 } else { 0 },
            permissions: (st.st_mode as u32) & 0o777,
            modified_s: st.st_mtime as i64,
            modified_ns: st.st_mtime_nsec as i32,
            change_time: ctime,
            inode: st.st_ino as u64,
        }
    }
}

#[cfg(not(unix))]
use fallback::Dir;

/// Windows: no `openat`, so each step checks with `symlink_metadata` and then works by path
/// (a race with a local process making a link remains; peers cannot make links there).
#[cfg(not(unix))]
mod fallback {
    use std::ffi::{OsStr, OsString};
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::{Path, PathBuf};

    use super::Open;
    use crate::stat::{Kind, Stat};

    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn root(path: &Path) -> io::Result<Self> {
            if !fs::metadata(path)?.is_dir() {
                return Err(io::Error::other("the folder root is not a directory"));
            }
            Ok(Self(path.to_owned()))
        }

        pub(super) fn fast_path(&self, _path: &str) -> Option<io::Result<Self>> {
            None
        }

        pub(super) fn child(&self, name: &OsStr) -> io::Result<Self> {
            let path = self.0.join(name);
            let m = fs::symlink_metadata(&path)?;
            if m.file_type().is_symlink() {
                return Err(io::Error::other("a symbolic link"));
            }
            if !m.is_dir() {
                return Err(io::Error::other("not a directory"));
            }
            Ok(Self(path))
        }

        pub(super) fn is_symlink(&self, name: &OsStr) -> bool {
            fs::symlink_metadata(self.0.join(name)).is_ok_and(|m| m.file_type().is_symlink())
        }

        pub(super) fn mkdir(&self, name: &OsStr) -> io::Result<()> {
            fs::create_dir(self.0.join(name))
        }

        pub(super) fn stat(&self, name: &OsStr) -> io::Result<Stat> {
            Stat::of_path(&self.0.join(name))
        }

        pub(super) fn open(&self, name: &OsStr, how: Open) -> io::Result<File> {
            if self.is_symlink(name) {
                return Err(io::Error::other("a symbolic link"));
            }
            let mut o = OpenOptions::new();
            match how {
                Open::Read => o.read(true),
                Open::Write => o.write(true),
                Open::Create => o.read(true).write(true).create(true).truncate(false),
            };
            o.open(self.0.join(name))
        }

        pub(super) fn rename(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
            fs::rename(self.0.join(from), to_dir.0.join(to))
        }

        pub(super) fn unlink(&self, name: &OsStr) -> io::Result<()> {
            let path = self.0.join(name);
            // A directory symlink is removed as a directory on Windows.
            match fs::remove_file(&path) {
                Err(e) if self.is_symlink(name) => fs::remove_dir(&path).map_err(|_| e),
                other => other,
            }
        }

        pub(super) fn rmdir(&self, name: &OsStr) -> io::Result<()> {
            fs::remove_dir(self.0.join(name))
        }

        /// Windows lets only privileged users make symlinks; such entries are reported and
        /// left alone, as Syncthing does there by default.
        pub(super) fn symlink(&self, _target: &str, _name: &OsStr) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::Unsupported, "symlinks are not supported on this system"))
        }

        pub(super) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
            fs::read_link(self.0.join(name))
        }

        /// Only the owner's write bit means something here: read-only or not.
        pub(super) fn set_mode(&self, mode: u32) -> io::Result<()> {
            let mut permissions = fs::metadata(&self.0)?.permissions();
            permissions.set_readonly(mode & 0o200 == 0);
            fs::set_permissions(&self.0, permissions)
        }

        /// Windows has no durable-directory call; its renames are journaled by NTFS.
        pub(super) fn sync(&self) -> io::Result<()> {
            Ok(())
        }

        pub(super) fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
            let mut out = Vec::new();
            for entry in fs::read_dir(&self.0)? {
                let entry = entry?;
                let kind = Kind::of(entry.file_type()?);
                out.push((entry.file_name(), kind));
            }
            Ok(out)
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::symlink;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    /// A root holding `d/f` and links `up -> <outside>`, `d/out -> <outside>/secret`,
    /// `rel -> ../outside`, and an outside directory holding `secret`.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("d/f"), b"inside").unwrap();
        std::fs::write(outside.join("secret"), b"outside").unwrap();
        symlink(&outside, root.join("up")).unwrap();
        symlink(outside.join("secret"), root.join("d/out")).unwrap();
        symlink("../outside", root.join("rel")).unwrap();
        Fixture { _dir: dir, root, outside }
    }

    fn refused(e: io::Error) -> String {
        assert!(refusal(&e).is_some(), "not a refusal: {e}");
        e.to_string()
    }

    #[test]
    fn a_symlink_in_the_middle_is_refused_for_every_operation() {
        let f = fixture();
        let b = Beneath::new(&f.root);
        for name in ["up/secret", "rel/secret", "up/new/deeper"] {
            assert_eq!(
                refused(b.open(name, Open::Read).unwrap_err()),
                format!("a symbolic link is in the path: {}", name.split('/').next().unwrap())
            );
            assert!(b.open(name, Open::Create).is_err());
            assert!(b.stat(name).is_err());
            assert!(b.remove_all(name).is_err());
            assert!(b.symlink("x", name).is_err());
            assert!(b.rename("d/f", name).is_err());
            assert!(b.create_dir_all(name).is_err());
        }
        assert!(b.remove_files_under("up", &mut |_| true).is_err());
        assert!(b.sync_dir("up").is_err() && b.set_dir_mode("up", 0o700).is_err());
        // Nothing outside changed.
        assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"outside");
        assert_eq!(std::fs::read_dir(&f.outside).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_at_the_end_is_never_opened_but_can_be_handled_as_itself() {
        let f = fixture();
        let b = Beneath::new(&f.root);
        for how in [Open::Read, Open::Write, Open::Create] {
            assert_eq!(refused(b.open("d/out", how).unwrap_err()), "a symbolic link is in the way: d/out");
        }
        assert_eq!(b.stat("d/out").unwrap().unwrap().kind, Kind::Symlink);
        assert_eq!(b.read_link("d/out").unwrap(), f.outside.join("secret"));
        b.rename("d/out", "moved").unwrap();
        assert_eq!(b.stat("moved").unwrap().unwrap().kind, Kind::Symlink);
        b.remove_all("moved").unwrap();
        b.remove_all("up").unwrap();
        assert_eq!(b.stat("up").unwrap(), None);
        assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"outside");
    }

    #[test]
    fn a_directory_is_cleared_only_when_everything_in_it_is_doomed() {
        let f = fixture();
        let b = Beneath::new(&f.root);
        b.open("x/junk", Open::Create).unwrap();
        b.open("x/keep", Open::Create).unwrap();
        b.open("x/sub/deep", Open::Create).unwrap();
        symlink(&f.outside, f.root.join("x/link")).unwrap();
        let e = b.remove_dir_clearing("x", &mut |n, _| n != "keep").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::DirectoryNotEmpty);
        assert!(e.to_string().contains("keep"), "{e}");
        assert!(f.root.join("x/junk").exists() && f.root.join("x/sub/deep").exists(), "nothing removed");
        b.remove_dir_clearing("x", &mut |_, _| true).unwrap();
        assert!(!f.root.join("x").exists());
        // The symlink went as itself: what it pointed to is untouched.
        assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"outside");
        // A symlink on the way is refused, as for every operation.
        assert!(b.remove_dir_clearing("up/x", &mut |_, _| true).is_err());
        assert!(b.remove_dir_clearing("d/out", &mut |_, _| true).is_err(), "a symlink is not a directory");
        assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"outside");
    }

    #[test]
    fn dot_dot_absolute_and_empty_components_are_refused() {
        let f = fixture();
        let b = Beneath::new(&f.root);
        for name in
            ["../outside/secret", "d/../../outside/secret", "/etc/passwd", "d//f", "./d/f", "d/f/", ""]
        {
            let e = b.open(name, Open::Read).unwrap_err();
            assert!(matches!(refusal(&e), Some(BeneathError::NotBeneath(_))), "{name}: {e}");
            assert!(b.stat(name).is_err(), "{name}");
        }
    }

    #[test]
    fn ordinary_operations_work_beneath_the_root() {
        let f = fixture();
        let b = Beneath::new(&f.root);
        let mut s = String::new();
        b.open("d/f", Open::Read).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        b.open("a/b/c", Open::Create).unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(f.root.join("a/b/c")).unwrap(), b"new");
        assert_eq!(b.stat("a/b/c").unwrap().unwrap().size, 3);
        assert_eq!(b.stat("a/missing/c").unwrap(), None);
        b.set_dir_mode("a", 0o700).unwrap();
        assert_eq!(b.stat("a").unwrap().unwrap().permissions, 0o700);
        b.symlink("b/c", "a/link").unwrap();
        assert_eq!(b.read_link("a/link").unwrap(), Path::new("b/c"));
        b.sync_dir("a").unwrap();
        b.sync_dir("").unwrap();
        b.rename("a/b/c", "d/c").unwrap();
        assert!(f.root.join("d/c").exists());
        // A regular file is required: a directory is refused.
        assert!(matches!(refusal(&b.open("d", Open::Read).unwrap_err()), Some(BeneathError::NotAFile(_))));
        let removed = b.remove_files_under("", &mut |n| n == "c" || n == "link").unwrap();
        assert_eq!(removed, 2);
        b.remove_all("a").unwrap();
        assert!(!f.root.join("a").exists());
        assert!(b.remove_dir_clearing("d", &mut |_, _| false).is_err(), "not empty");
        // The root itself may be a symlink the user made.
        let via = f.outside.join("root-link");
        symlink(&f.root, &via).unwrap();
        assert!(Beneath::new(&via).stat("d/f").unwrap().is_some());
    }
}

/// What runs on every system (Windows under Wine among them).
#[cfg(test)]
mod portable_tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// A path far past Windows' old 260-character limit (`MAX_PATH`) is created, written, read,
    /// renamed and removed: std hands Windows such paths in their `\\?\` form.
    #[test]
    fn paths_longer_than_max_path_work() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Beneath::new(dir.path());
        let deep = ["a-directory-name-of-forty-characters-xyz"; 8].join("/");
        let name = format!("{deep}/file-with-a-long-name-too.txt");
        assert!(dir.path().join(&name).as_os_str().len() > 330, "{name}");

        fs.create_dir_all(&deep).unwrap();
        fs.open(&name, Open::Create).unwrap().write_all(b"far down").unwrap();
        assert_eq!(fs.stat(&name).unwrap().map(|s| s.size), Some(8));
        let renamed = format!("{deep}/renamed.txt");
        fs.rename(&name, &renamed).unwrap();
        let mut got = String::new();
        fs.open(&renamed, Open::Read).unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got, "far down");
        fs.remove_all("a-directory-name-of-forty-characters-xyz").unwrap();
        assert!(fs.stat(&renamed).unwrap().is_none());
    }
}

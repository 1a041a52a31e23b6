//! The home directory: where a device keeps its identity, configuration and index.
//!
//! It owns the directory's layout and the lock that stops two processes from opening the same
//! home at once (a daemon and a one-off `peerfold scan`, or two desktop apps).

use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The index database's file name inside a home.
pub const INDEX_FILE: &str = "index.db";
/// The configuration's file name inside a home.
pub const CONFIG_FILE: &str = "config.toml";
const LOCK_FILE: &str = "peerfold.lock";
/// Where a running daemon's API and web UI listen (`HOST:PORT`, as bound), written by `serve`
/// while it runs, so `peerfold gui url` can name the port even when it was picked at random.
pub const GUI_ADDRESS_FILE: &str = "gui-address";

/// Errors opening a home.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot find a home directory for Peerfold on this system; pass --home DIR")]
    NoDefault,
    #[error("cannot use home directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("home directory {path} is in use by another Peerfold process{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, pid: Option<u32> },
}

/// The per-user default home: `$XDG_STATE_HOME/peerfold` (`~/.local/state/peerfold`) on Linux,
/// `~/Library/Application Support/Peerfold` on macOS, `%LOCALAPPDATA%\Peerfold` on Windows.
pub fn default_dir() -> Result<PathBuf, HomeError> {
    // ProjectDirs would add `\data` on Windows.
    #[cfg(windows)]
    if let Some(base) = directories::BaseDirs::new() {
        return Ok(base.data_local_dir().join("Peerfold"));
    }
    let dirs = directories::ProjectDirs::from("", "", "Peerfold").ok_or(HomeError::NoDefault)?;
    // State, not config: the home holds the index and keys as well as the settings.
    Ok(dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_owned())
}

/// An open home directory, locked for this process until dropped.
#[derive(Debug)]
pub struct Home {
    dir: PathBuf,
    _lock: File,
}

impl Home {
    /// Opens `dir` (created with owner-only permissions if missing) and takes its lock.
    pub fn open(dir: &Path) -> Result<Self, HomeError> {
        let io = |source| HomeError::Io { path: dir.to_owned(), source };
        create_private_dir(dir).map_err(io)?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                return Err(HomeError::Locked { path: dir.to_owned(), pid: pid.trim().parse().ok() });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the error message another process shows.
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(Self { dir: dir.to_owned(), _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_home_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        let first = Home::open(&home).unwrap();
        let err = Home::open(&home).unwrap_err();
        match &err {
            HomeError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            e => panic!("expected Locked, got {e:?}"),
        }
        assert!(err.to_string().contains("in use by another Peerfold process"));
        drop(first);
        Home::open(&home).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn new_home_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(&dir.path().join("new")).unwrap();
        let mode = std::fs::metadata(home.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(home.index_path(), dir.path().join("new").join("index.db"));
    }

    #[test]
    fn default_home_is_per_user() {
        let d = default_dir().unwrap();
        assert!(d.ends_with("peerfold") || d.ends_with("Peerfold"), "{}", d.display());
        #[cfg(windows)]
        assert_eq!(d, directories::BaseDirs::new().unwrap().data_local_dir().join("Peerfold"));
    }
}

//! Small filesystem helpers every layer shares, written once: replacing a file atomically.
//!
//! Files of the home (`config.toml`, the certificates) and a folder's `.stignore` are replaced
//! through [`write_atomic`]: a reader, or the next start after a crash, sees the old or the new
//! file, never half of one.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Why a file could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// One step of [`write_atomic`] failed. Up to the rename the file is as it was.
    #[error("cannot write {}: {step}", path.display())]
    Write {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Replaces the file at `path` with `data`: writes a temporary file in the same directory
/// (created with `mode`, less the umask, on Unix), syncs it, renames it over `path` and syncs
/// the directory, so that the rename itself survives a crash. On failure the temporary file is
/// removed and, unless only the directory sync failed, `path` keeps its old content.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), FsError> {
    write_atomic_with(path, data, mode, |file, data| file.write_all(data))
}

/// [`write_atomic`] with the write step given, so tests can make it fail halfway.
fn write_atomic_with(
    path: &Path,
    data: &[u8],
    mode: u32,
    write: impl FnOnce(&mut std::fs::File, &[u8]) -> io::Result<()>,
) -> Result<(), FsError> {
    let failed = |step: &'static str| move |source| FsError::Write { path: path.to_owned(), step, source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let base = path.file_name().map(|b| b.to_string_lossy().into_owned()).unwrap_or_default();
    // Named as a download temporary (random in the middle), so that one a crash leaves in a
    // synced folder (`.stignore`'s) is never indexed, and the scanner removes it after a day.
    let prefix = format!(".syncthing.{base}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
    #[cfg(not(unix))]
    let _ = mode; // Windows has no mode bits; the file inherits the directory's ACL.
    // The temporary file is deleted when `tmp` drops, so every early return cleans up.
    let mut tmp = builder.tempfile_in(dir).map_err(failed("cannot create a temporary file beside it"))?;
    write(tmp.as_file_mut(), data).map_err(failed("cannot write the temporary file"))?;
    tmp.as_file().sync_all().map_err(failed("cannot sync the temporary file"))?;
    tmp.persist(path).map_err(|e| failed("cannot rename the temporary file over it")(e.error))?;
    sync_dir(dir).map_err(failed("cannot sync its directory"))
}

/// Syncs a directory, so that a rename in it is durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Windows cannot open a directory as a file to sync it; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_and_replaces_leaving_nothing_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        write_atomic(&path, b"one", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(entries(dir.path()), ["config.toml"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_gets_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        write_atomic(&key, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_write_failing_halfway_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".stignore");
        std::fs::write(&path, b"old patterns").unwrap();
        let err = write_atomic_with(&path, b"new patterns", 0o644, |file, data| {
            file.write_all(&data[..3])?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        })
        .unwrap_err();
        assert_eq!(std::fs::read(&path).unwrap(), b"old patterns");
        assert_eq!(entries(dir.path()), [".stignore"], "the temporary file is removed");
        let text = crate::errors::error_chain(&err);
        assert_eq!(
            text,
            format!("cannot write {}: cannot write the temporary file: disk full", path.display())
        );
    }

    #[test]
    fn a_failed_rename_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: the rename fails after the write.
        let path = dir.path().join("cert.pem");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"old").unwrap();
        let err = write_atomic(&path, b"new", 0o644).unwrap_err();
        assert!(
            matches!(err, FsError::Write { step: "cannot rename the temporary file over it", .. }),
            "{err}"
        );
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["cert.pem"], "the temporary file is removed");
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("config.toml");
        let err = write_atomic(&path, b"x", 0o600).unwrap_err();
        let text = crate::errors::error_chain(&err);
        assert!(
            text.starts_with(&format!(
                "cannot write {}: cannot create a temporary file beside it: ",
                path.display()
            )),
            "{text}"
        );
    }
}

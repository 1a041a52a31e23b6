//! A folder's on-disk layout as Syncthing has it, defined once: the marker, the ignore file and
//! the trash can at the root, and the names of download temporaries anywhere. Pure names, no
//! I/O.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The marker directory at a folder's root: its absence tells an unmounted disk's empty mount
/// point from a folder whose files were all deleted.
pub const MARKER: &str = ".stfolder";
/// The ignore patterns at a folder's root.
pub const IGNORE_FILE: &str = ".stignore";
/// Where trash-can versioning keeps old versions, at the folder's root.
pub const VERSIONS_DIR: &str = ".stversions";
/// Names at the folder root that belong to the sync machinery and are never synced.
pub const INTERNAL_NAMES: [&str; 3] = [MARKER, IGNORE_FILE, VERSIONS_DIR];

/// Names that belong to the sync machinery: the marker, ignore file and versions at the root,
/// and download temporaries anywhere.
pub fn is_internal(name: &str) -> bool {
    let top = name.split('/').next().unwrap_or(name);
    INTERNAL_NAMES.contains(&top) || is_temp(name.rsplit('/').next().unwrap_or(name))
}

/// Whether a base name is a download temporary's (`.syncthing.NAME.tmp`, or `~syncthing~NAME.tmp`
/// as Syncthing names them on Windows).
pub fn is_temp(base: &str) -> bool {
    base.ends_with(".tmp") && (base.starts_with(".syncthing.") || base.starts_with("~syncthing~"))
}

/// The base name of the file a download temporary is for; `None` when the temporary is named
/// by the hash of a long name (see [`temp_path`]).
pub fn temp_target(base: &str) -> Option<&str> {
    let inner = base.strip_prefix(".syncthing.").or_else(|| base.strip_prefix("~syncthing~"))?;
    let target = inner.strip_suffix(".tmp")?;
    let hashed = target.len() == 64 && target.bytes().all(|b| b.is_ascii_hexdigit());
    (!target.is_empty() && !hashed).then_some(target)
}

/// `.syncthing.NAME.tmp` beside the file, with the hash of NAME for long names, as Syncthing.
pub fn temp_path(path: &Path) -> PathBuf {
    let base = path.file_name().map(|b| b.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(temp_base(&base))
}

/// [`temp_path`] for a folder-relative name.
pub fn temp_name(name: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{}", temp_base(base)),
        None => temp_base(name),
    }
}

fn temp_base(base: &str) -> String {
    if base.len() > 145 {
        format!(".syncthing.{}.tmp", data_encoding::HEXLOWER.encode(&Sha256::digest(base.as_bytes())))
    } else {
        format!(".syncthing.{base}.tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_syncthings() {
        assert_eq!(temp_path(Path::new("/r/d/big.bin")), Path::new("/r/d/.syncthing.big.bin.tmp"));
        assert_eq!(temp_name("d/big.bin"), "d/.syncthing.big.bin.tmp");
        assert_eq!(temp_name("big.bin"), ".syncthing.big.bin.tmp");
        let long = "x".repeat(200);
        let hashed = temp_name(&long);
        assert!(
            hashed.starts_with(".syncthing.") && hashed.len() == ".syncthing..tmp".len() + 64,
            "{hashed}"
        );
        assert_eq!(Path::new("/r").join(&hashed), temp_path(&Path::new("/r").join(&long)));
        assert!(
            is_temp(&hashed) && is_temp("~syncthing~a.tmp") && !is_temp(".syncthing.a") && !is_temp("a.tmp")
        );
        assert_eq!(temp_target(".syncthing.big.bin.tmp"), Some("big.bin"));
        assert_eq!(temp_target(&hashed), None, "a hashed name does not say its file");
    }

    #[test]
    fn internal_names_are_the_root_ones_and_temporaries() {
        for name in [".stfolder", ".stignore", ".stversions/a~20250101-000000.txt", "d/.syncthing.a.tmp"] {
            assert!(is_internal(name), "{name}");
        }
        for name in ["d/.stfolder", "d/.stignore", "stfolder", ".syncthing.a", "a.tmp"] {
            assert!(!is_internal(name), "{name}");
        }
    }
}

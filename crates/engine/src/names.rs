//! Which names from peers this device refuses to create on its disk, and why.
//!
//! `bep` checks what the protocol demands of a name (canonical, relative: a peer breaking that
//! is a protocol error and loses its connection). A name can pass that and still be one this
//! device must not write: a name of the sync machinery (`.stignore` from a peer would change
//! what this device ignores), a backslash or drive prefix (path syntax on Windows), a control
//! character, or — where the folder's file system is Windows-like — a reserved device name or a
//! trailing dot or space (which such file systems silently drop, so `a.` would overwrite `a`).
//! Such an entry is not a protocol error (Syncthing makes it a failed item too): the puller asks
//! [`Rules::refusal`] first for every needed entry, and a refused one is reported with the
//! reason, never written, never recorded in the local index and so never announced.
//!
//! Everything here is pure except [`Rules::for_folder`], which asks the operating system what
//! file system holds the folder.

use std::path::Path;

/// Device names Windows reserves in every directory, with or without an extension.
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Characters Windows file systems cannot hold in a name (besides `\`, `/` and controls).
const WINDOWS_INVALID: [char; 7] = ['<', '>', ':', '"', '|', '?', '*'];

/// Why a name from a peer is not created here. The text is the failed item's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Empty, absolute, or with an empty, `.` or `..` component (the wire checks refuse these
    /// already; this guards entries that reach the puller any other way).
    #[error("the name is not a clean folder-relative path")]
    NotRelative,
    /// `.stfolder`, `.stignore`, `.stversions` and what is below it, or a download temporary.
    #[error("the name is internal to the sync machinery and never synced")]
    Internal,
    /// `\` is a path separator on Windows; refused everywhere so that every device agrees.
    #[error("the name contains a backslash")]
    Backslash,
    /// `C:…` or a UNC path (`\\server\share`).
    #[error("the name starts with a drive letter or is a UNC path")]
    Drive,
    /// NUL, another C0 control or DEL.
    #[error("the name contains a control character")]
    Control,
    /// `CON`, `NUL`, `COM1`, … (also `CON.txt`), on a Windows-like file system.
    #[error("the name is reserved on Windows file systems")]
    Reserved,
    /// A component ending in `.` or ` `, on a Windows-like file system.
    #[error("the name ends with a dot or a space, which this file system drops")]
    TrailingDotOrSpace,
    /// `<>:"|?*`, on a Windows-like file system.
    #[error("the name contains a character this file system cannot hold")]
    WindowsCharacter,
}

/// What the folder's file system needs beyond the checks that hold everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Windows naming rules: reserved device names, no trailing dot or space, no `<>:"|?*`.
    pub windows: bool,
}

impl Rules {
    /// The rules for the folder at `root`: Windows rules on Windows, and on Linux when the
    /// folder lies on FAT, exFAT or NTFS (`statfs`). Elsewhere (other Unixes, and file systems
    /// behind FUSE, whose type `statfs` does not tell) only the checks that hold everywhere.
    pub fn for_folder(root: &Path) -> Self {
        Self { windows: cfg!(windows) || windows_like_fs(root) }
    }

    /// Why `name` (folder-relative, `/`-separated) must not be created here, if it must not.
    pub fn refusal(&self, name: &str) -> Option<Refusal> {
        if name.starts_with("\\\\") || has_drive_prefix(name) {
            return Some(Refusal::Drive);
        }
        if name.is_empty() || name.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Some(Refusal::NotRelative);
        }
        if name.chars().any(|c| c.is_ascii_control()) {
            return Some(Refusal::Control);
        }
        if name.contains('\\') {
            return Some(Refusal::Backslash);
        }
        let top = name.split('/').next().unwrap_or(name);
        // Without regard to ASCII case, so that `.STIGNORE` cannot reach `.stignore` on a
        // case-insensitive disk.
        if crate::layout::INTERNAL_NAMES.iter().any(|t| top.eq_ignore_ascii_case(t))
            || name.split('/').any(is_temporary)
        {
            return Some(Refusal::Internal);
        }
        if self.windows {
            for part in name.split('/') {
                if part.ends_with('.') || part.ends_with(' ') {
                    return Some(Refusal::TrailingDotOrSpace);
                }
                if part.contains(WINDOWS_INVALID) {
                    return Some(Refusal::WindowsCharacter);
                }
                let stem = part.split('.').next().unwrap_or(part).trim_end_matches(' ');
                if RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r)) {
                    return Some(Refusal::Reserved);
                }
            }
        }
        None
    }
}

/// A download temporary, as Syncthing names them on Unix and on Windows, in any case (a
/// case-insensitive disk folds them onto ours).
fn is_temporary(part: &str) -> bool {
    crate::layout::is_temp(&part.to_ascii_lowercase())
}

/// `C:` or `C:…`: a drive letter and a colon.
fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

#[cfg(target_os = "linux")]
fn windows_like_fs(root: &Path) -> bool {
    // Magic numbers from linux/magic.h: vfat/msdos, exFAT, NTFS (ntfs3 and the old driver).
    const MSDOS: i64 = 0x4d44;
    const EXFAT: i64 = 0x2011_bab0;
    const NTFS: i64 = 0x5346_544e;
    match rustix::fs::statfs(root) {
        #[allow(clippy::useless_conversion)] // f_type is i32 or i64 depending on the target.
        Ok(st) => matches!(i64::from(st.f_type), MSDOS | EXFAT | NTFS),
        Err(_) => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn windows_like_fs(_root: &Path) -> bool {
    // Other Unixes: no cheap portable way to tell; Windows is covered by `cfg!(windows)`.
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Rules = Rules { windows: false };
    const WIN: Rules = Rules { windows: true };

    #[test]
    fn ordinary_names_pass_everywhere() {
        for ok in ["a", "a/b.txt", ".hidden", "a/.stignore", "d/.stfolder/x", "x.tmp", ".syncthing", "a..b"] {
            assert_eq!(ANY.refusal(ok), None, "{ok:?}");
            assert_eq!(WIN.refusal(ok), None, "{ok:?}");
        }
        // Windows-only problems are fine on other file systems.
        for ok in ["CON", "nul.txt", "a.", "b ", "d./x", "ab:c", "what?"] {
            assert_eq!(ANY.refusal(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn escaping_names_are_refused() {
        for bad in ["", "..", "../a", "a/../b", "/etc/passwd", "a//b", "./a", "a/"] {
            assert_eq!(ANY.refusal(bad), Some(Refusal::NotRelative), "{bad:?}");
        }
    }

    #[test]
    fn internal_names_are_refused() {
        for bad in [
            ".stfolder",
            ".stfolder/x",
            ".stignore",
            ".STIGNORE",
            ".stversions",
            ".stversions/a/b~20250101-000000.txt",
            ".syncthing.a.tmp",
            "d/.syncthing.big.bin.tmp",
            "d/~syncthing~x.tmp",
            ".syncthing.d.tmp/x",
        ] {
            assert_eq!(ANY.refusal(bad), Some(Refusal::Internal), "{bad:?}");
        }
    }

    #[test]
    fn windows_path_syntax_is_refused_everywhere() {
        assert_eq!(ANY.refusal("a\\b"), Some(Refusal::Backslash));
        assert_eq!(ANY.refusal("..\\..\\x"), Some(Refusal::Backslash));
        for bad in ["C:", "c:x", "C:/Windows/x", "\\\\server\\share\\x"] {
            assert_eq!(ANY.refusal(bad), Some(Refusal::Drive), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in ["a\0b", "a\u{1}b", "line\nbreak", "tab\t", "d/\u{7f}"] {
            assert_eq!(ANY.refusal(bad), Some(Refusal::Control), "{bad:?}");
        }
    }

    #[test]
    fn windows_file_systems_refuse_more() {
        for bad in ["CON", "con", "PRN", "AUX", "NUL", "COM1", "LPT9", "CON.txt", "d/nul.tar.gz", "AUX .x"] {
            assert_eq!(WIN.refusal(bad), Some(Refusal::Reserved), "{bad:?}");
        }
        for bad in ["a.", "a ", "dir./x", "d/x "] {
            assert_eq!(WIN.refusal(bad), Some(Refusal::TrailingDotOrSpace), "{bad:?}");
        }
        for bad in ["ab:c", "what?", "a*b", "d/<x>", "p|q", "\"q\""] {
            assert_eq!(WIN.refusal(bad), Some(Refusal::WindowsCharacter), "{bad:?}");
        }
        for ok in ["CONSOLE", "COM10", "LPT0", "nullable.txt", "a.b"] {
            assert_eq!(WIN.refusal(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn an_ordinary_folder_gets_only_the_rules_that_hold_everywhere() {
        // The folder this test runs in is on an ordinary Linux file system.
        let dir = tempfile::tempdir().unwrap();
        let rules = Rules::for_folder(dir.path());
        assert_eq!(rules.windows, cfg!(windows));
    }
}

//! What the scanner reads from disk: directory listings and file metadata, in index terms.

use std::ffi::OsString;
use std::io;
use std::path::Path;

pub(crate) use crate::stat::{Kind, Stat};

/// One entry of a directory listing.
pub(crate) struct Entry {
    pub(crate) file_name: OsString,
    pub(crate) stat: Stat,
}

/// Entries of a directory whose metadata could not be read, with the reason.
pub(crate) type EntryErrors = Vec<(OsString, io::Error)>;

/// Lists a directory without following symlinks. Entries whose metadata cannot be read are
/// returned as errors beside the listing so that one bad entry does not hide the others.
pub(crate) fn list_dir(path: &Path) -> io::Result<(Vec<Entry>, EntryErrors)> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for item in std::fs::read_dir(path)? {
        let item = item?;
        // DirEntry::metadata does not follow symlinks (lstat).
        match item.metadata() {
            Ok(m) => entries.push(Entry { file_name: item.file_name(), stat: Stat::from_metadata(&m) }),
            // Deleted between the listing and the stat: as if it never was.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push((item.file_name(), e)),
        }
    }
    Ok((entries, errors))
}

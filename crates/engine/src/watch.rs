//! File-system change hints: `notify`, debounced, turned into folder-relative paths.
//!
//! The watcher is only a hint. It knows nothing about the index, peers or IDs; it reports paths
//! that may have changed, or that everything must be rescanned (an event queue overflow, a
//! watcher error). A missed event costs at most one periodic rescan interval, which the folder
//! task runs regardless.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{self, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};
use tokio::sync::mpsc;
use unicode_normalization::UnicodeNormalization as _;

/// What the watcher tells its folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// Folder-relative, `/`-separated, NFC paths that may have changed, each with everything
    /// below it. A new directory may be reported without what was written into it at once:
    /// the kernel watches a directory only after its creation is seen, so the folder must scan
    /// reported directories recursively (the scanner does).
    Paths(Vec<String>),
    /// Events were lost: rescan the whole folder.
    Rescan,
}

/// Errors starting a watcher.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for changes")]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

/// A running watcher; dropping it stops watching.
pub struct FolderWatcher {
    _debouncer: Debouncer<RecommendedWatcher, NoCache>,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderWatcher")
    }
}

impl FolderWatcher {
    /// Watches `root` recursively and sends a [`WatchEvent`] for each burst of changes, once
    /// the burst has been quiet for `delay`.
    pub fn start(
        root: &Path,
        delay: Duration,
        tx: mpsc::UnboundedSender<WatchEvent>,
    ) -> Result<Self, WatchError> {
        let base = root.to_owned();
        let handler = move |result: DebounceEventResult| {
            let event = match result {
                Ok(events) if events.iter().any(|e| e.need_rescan()) => WatchEvent::Rescan,
                Ok(events) => {
                    let mut paths: Vec<String> = events
                        .iter()
                        .filter(|e| changes(&e.kind))
                        .flat_map(|e| e.paths.iter())
                        .filter_map(|p| relative(&base, p))
                        .collect();
                    paths.sort();
                    paths.dedup();
                    if paths.is_empty() {
                        return;
                    }
                    WatchEvent::Paths(paths)
                }
                Err(errors) => {
                    tracing::warn!(?errors, "watcher error; rescanning the folder");
                    WatchEvent::Rescan
                }
            };
            // The folder task is gone: nothing left to tell.
            let _ = tx.send(event);
        };
        // NoCache: the file-ID cache would walk the whole tree up front and keep an entry per
        // file; renames need no pairing here, since the scanner sees both paths.
        let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher, NoCache>(
            delay,
            None,
            handler,
            NoCache,
            notify::Config::default(),
        )
        .map_err(|source| WatchError { path: root.to_owned(), source })?;
        debouncer
            .watch(root, RecursiveMode::Recursive)
            .map_err(|source| WatchError { path: root.to_owned(), source })?;
        Ok(Self { _debouncer: debouncer })
    }
}

/// Whether an event of this kind can mean a change. inotify also reports every open and every
/// close after reading; scanning those paths would be a loop (listing a directory opens it, and
/// so does serving a peer's request), so only a close after writing stays of the access events.
fn changes(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// `path` relative to `base` in index form; `Some("")` for the root itself.
fn relative(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/").nfc().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_folder_relative() {
        let base = Path::new("/data/f");
        assert_eq!(relative(base, Path::new("/data/f/a/b.txt")).as_deref(), Some("a/b.txt"));
        assert_eq!(relative(base, Path::new("/data/f")).as_deref(), Some(""));
        assert_eq!(relative(base, Path::new("/elsewhere/x")), None);
        assert_eq!(relative(base, Path::new("/data/f/cafe\u{301}")).as_deref(), Some("caf\u{e9}"));
    }

    #[tokio::test]
    async fn reading_and_listing_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/old.txt"), b"x").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = FolderWatcher::start(&root, Duration::from_millis(50), tx).unwrap();
        // What a scan and a peer's requests do: list directories and read files.
        for _ in 0..3 {
            std::fs::read_dir(&root).unwrap().for_each(drop);
            std::fs::read_dir(root.join("sub")).unwrap().for_each(drop);
            assert_eq!(std::fs::read(root.join("sub/old.txt")).unwrap(), b"x");
        }
        // Then a real change, so that the test knows when everything before it was reported.
        std::fs::write(root.join("new.txt"), b"y").unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|p: &String| p == "new.txt") {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(WatchEvent::Paths(p))) => seen.extend(p),
                other => panic!("no event for new.txt (seen {seen:?}): {other:?}"),
            }
        }
        assert_eq!(seen, ["new.txt"], "only the written file is a change");
    }

    #[tokio::test]
    async fn a_file_written_into_a_new_directory_is_covered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = FolderWatcher::start(&root, Duration::from_millis(50), tx).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/new.txt"), b"x").unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        // The file itself or a directory above it (see `WatchEvent::Paths`).
        while !seen.iter().any(|p: &String| crate::bep::is_within("sub/new.txt", p)) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(WatchEvent::Paths(p))) => seen.extend(p),
                Ok(Some(WatchEvent::Rescan)) => {}
                other => panic!("no event for sub/new.txt (seen {seen:?}): {other:?}"),
            }
        }
    }
}

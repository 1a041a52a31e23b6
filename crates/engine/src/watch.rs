//! File-system change hints: `notify` events coalesced into bursts, turned into folder-relative
//! paths.
//!
//! The watcher is only a hint. It knows nothing about the index, peers or IDs; it reports paths
//! that may have changed, or that everything must be rescanned (an event queue overflow, a
//! watcher error). A missed event costs at most one periodic rescan interval, which the folder
//! task runs regardless.
//!
//! It owns the coalescing of events into bursts (`Coalescer`, sans-IO, on a fake clock in its
//! tests) and the thread that runs it. A burst is reported once each of its paths has settled,
//! per directory: a path whose writer closed it, or that something was renamed onto, is done
//! after a short quiet moment ([`SETTLE`]); any other change (a write with the file still open, a
//! create, a delete, attributes) waits the configured delay since its last event. Editors'
//! saves touch a temporary or backup file in the same directory as the target, so waiting for
//! every path of that directory keeps a save (write a temporary, rename it into place; or move
//! the original aside, write it anew, delete the backup) one burst, one scan, one change.
//! Platforms without close events fall back to the delay for everything.
//!
//! The puller's own downloads are no change to scan: a download temporary is internal (never
//! indexed), and the file the puller renames into place from it is recorded by the puller
//! itself (where the rename's halves come paired, as inotify's do). Their events (a write per
//! block, the rename) were most of a receiving device's events, each costing the coalescing
//! thread a pass over its pending paths.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use unicode_normalization::UnicodeNormalization as _;

/// How long a directory whose changed paths have all settled must stay quiet before they are
/// reported: long enough for the next step of a save already under way (an editor renames its
/// temporary right after closing it), short against the delay a person notices.
pub const SETTLE: Duration = Duration::from_millis(25);

/// A burst still going after this many delays is reported anyway (a file written for minutes
/// is scanned meanwhile; the scanner refuses blocks of a file that changed while it was read,
/// and the writer's close reports the path again).
const MAX_WAIT_DELAYS: u32 = 5;

/// More pending paths than this turn into one full rescan, so a burst (an unpacked archive)
/// costs bounded memory here.
const MAX_PENDING: usize = 100_000;

/// Renames out of a download temporary whose destination is still to come, remembered by
/// their inotify cookie. A temporary moved out of the folder never gets its other half, so
/// only the latest few are kept.
const MAX_TEMP_MOVES: usize = 256;

/// Events queued between notify's thread and the coalescing one; more than this become one
/// full rescan, as an overflow of the kernel's own queue does, so a storm the coalescing
/// thread cannot keep up with costs bounded memory.
const QUEUED_EVENTS: usize = 32_768;

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

/// A running watcher; dropping it stops watching (and its coalescing thread, whose events
/// channel closes with it).
pub struct FolderWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderWatcher")
    }
}

impl FolderWatcher {
    /// Watches `root` recursively and sends a [`WatchEvent`] for each burst of changes: once
    /// its paths have settled (see the module docs), at the latest `delay` after its last
    /// event.
    pub fn start(
        root: &Path,
        delay: Duration,
        tx: mpsc::UnboundedSender<WatchEvent>,
    ) -> Result<Self, WatchError> {
        let fail = |source| WatchError { path: root.to_owned(), source };
        let handoff = Arc::new(Handoff::default());
        let feed = Feed(Arc::clone(&handoff));
        let mut watcher = RecommendedWatcher::new(feed, notify::Config::default()).map_err(fail)?;
        watcher.watch(root, RecursiveMode::Recursive).map_err(fail)?;
        let base = root.to_owned();
        std::thread::Builder::new()
            .name("peerfold-watch".into())
            .spawn(move || coalesce(&base, delay, &handoff, &tx))
            .map_err(|e| fail(notify::Error::io(e)))?;
        Ok(Self { _watcher: watcher })
    }
}

type Raw = notify::Result<notify::Event>;

/// notify's events on their way to the coalescing thread, taken by it in batches. A channel
/// woke that thread for every event (a futex call on each side); this wakes it only when the
/// queue was empty, and the thread then takes everything queued at once.
#[derive(Debug, Default)]
struct Handoff {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    events: Vec<Raw>,
    /// Events were dropped: [`QUEUED_EVENTS`] were waiting already.
    overflowed: bool,
    /// The watcher is gone (its [`Feed`] was dropped with notify's thread).
    closed: bool,
}

/// What [`Handoff::take`] found besides the events.
#[derive(Debug, Default, PartialEq, Eq)]
struct Taken {
    overflowed: bool,
    closed: bool,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding it left at worst a half-pushed event: the queue is still sound.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, event: Raw) {
        let mut queue = self.lock();
        let was_empty = queue.events.is_empty() && !queue.overflowed;
        if queue.events.len() < QUEUED_EVENTS {
            queue.events.push(event);
        } else {
            queue.overflowed = true;
        }
        drop(queue);
        if was_empty {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Waits until something is queued, the watcher is gone or `due` has come, then moves
    /// what is queued into `batch` (which must be empty).
    fn take(&self, due: Option<Instant>, batch: &mut Vec<Raw>) -> Taken {
        let mut queue = self.lock();
        while queue.events.is_empty() && !queue.overflowed && !queue.closed {
            queue = match due {
                None => self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.ready.wait_timeout(queue, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        std::mem::swap(batch, &mut queue.events);
        Taken { overflowed: std::mem::take(&mut queue.overflowed), closed: queue.closed }
    }
}

/// notify's end of the [`Handoff`].
struct Feed(Arc<Handoff>);

impl notify::EventHandler for Feed {
    fn handle_event(&mut self, event: Raw) {
        self.0.push(event);
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The coalescing thread: feeds `notify`'s events to a [`Coalescer`] and sends each finished
/// burst. Ends when the watcher is dropped or the folder task is gone.
fn coalesce(base: &Path, delay: Duration, handoff: &Handoff, tx: &mpsc::UnboundedSender<WatchEvent>) {
    let mut bursts = Coalescer::new(delay);
    let mut batch = Vec::new();
    loop {
        let taken = handoff.take(bursts.due(), &mut batch);
        if taken.closed {
            return;
        }
        let now = Instant::now();
        if taken.overflowed {
            tracing::warn!("too many file system events queued; rescanning the folder");
            bursts.rescan(now);
            // The rescan covers what they name: their paths need not be worked out.
            batch.clear();
        }
        for event in batch.drain(..) {
            take(base, &mut bursts, event, now);
        }
        if let Some(event) = bursts.flush(Instant::now())
            && tx.send(event).is_err()
        {
            // The folder task is gone: nothing left to tell.
            return;
        }
    }
}

/// Feeds one of notify's events (or errors) to `bursts`.
fn take(base: &Path, bursts: &mut Coalescer, received: Raw, now: Instant) {
    match received {
        Ok(event) if event.need_rescan() => bursts.rescan(now),
        // Most events are no change (opens, reads): their paths are not worked out.
        Ok(event) if !changes(&event.kind) => {}
        Ok(event) => {
            let paths: Vec<String> = event.paths.iter().filter_map(|p| relative(base, p)).collect();
            bursts.event(&event.kind, &paths, event.tracker(), now);
        }
        Err(error) => {
            tracing::warn!(%error, "watcher error; rescanning the folder");
            bursts.rescan(now);
        }
    }
}

/// One path's part in the burst of its directory.
#[derive(Debug)]
struct Pending {
    last: Instant,
    /// Its writer is done: closed after writing, renamed onto, or a temporary gone again.
    settled: bool,
    /// Created or renamed onto during this burst: deleting or moving it away again is the end
    /// of a temporary, not a change that may still be followed by more.
    new: bool,
}

/// The changed paths of one directory since its last report.
#[derive(Debug)]
struct Burst {
    first: Instant,
    paths: BTreeMap<String, Pending>,
}

/// Events in, bursts out, on the caller's clock (sans-IO).
#[derive(Debug)]
struct Coalescer {
    delay: Duration,
    settle: Duration,
    max_wait: Duration,
    /// By parent directory ("" for the folder's root and the root itself).
    bursts: BTreeMap<String, Burst>,
    pending: usize,
    /// A full rescan is due: the first and the last event since it was.
    rescan: Option<(Instant, Instant)>,
    /// Cookies of renames out of a download temporary (see [`MAX_TEMP_MOVES`]).
    temp_moves: VecDeque<usize>,
}

impl Coalescer {
    fn new(delay: Duration) -> Self {
        Self {
            delay,
            settle: SETTLE.min(delay),
            max_wait: delay * MAX_WAIT_DELAYS,
            bursts: BTreeMap::new(),
            pending: 0,
            rescan: None,
            temp_moves: VecDeque::new(),
        }
    }

    fn rescan(&mut self, now: Instant) {
        let first = self.rescan.map_or(now, |(first, _)| first);
        self.rescan = Some((first, now));
        self.bursts.clear();
        self.pending = 0;
    }

    /// Takes in one `notify` event on the folder-relative `paths`; `tracker` pairs a rename's
    /// halves.
    fn event(&mut self, kind: &EventKind, paths: &[String], tracker: Option<usize>, now: Instant) {
        if !changes(kind) || paths.is_empty() || self.is_download(kind, paths, tracker) {
            return;
        }
        let kept: Vec<String>;
        let paths = if paths.iter().any(|p| is_temp_path(p)) {
            kept = paths.iter().filter(|p| !is_temp_path(p)).cloned().collect();
            &kept[..]
        } else {
            paths
        };
        if paths.is_empty() {
            return;
        }
        if self.rescan.is_some() {
            // Everything is scanned anyway; the event only pushes that scan back, so a burst
            // that overflowed the queue is scanned once it calms down.
            self.rescan(now);
            return;
        }
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in paths {
                    self.mark(p, now, |p| p.settled = true);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                for p in paths {
                    self.mark(p, now, |p| {
                        p.settled = true;
                        p.new = true;
                    });
                }
            }
            // `notify` pairs a move's two halves after reporting each; this is what it adds:
            // whether the source was new in the burst. An original moved aside (an editor's
            // backup, the user's `mv`) may be followed by what replaces it, so neither end
            // is done yet; a temporary moved into place is the end of a save.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => {
                let from_new = self.pending_of(&paths[0]).is_some_and(|p| p.new);
                self.mark(&paths[0], now, |p| p.settled = from_new);
                self.mark(&paths[1], now, |p| {
                    p.new = true;
                    p.settled = from_new;
                });
            }
            // A path gone (deleted, or moved away): done if it was a temporary of the burst.
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                for p in paths {
                    self.mark(p, now, |p| p.settled = p.new);
                }
            }
            EventKind::Create(_) => {
                for p in paths {
                    self.mark(p, now, |p| {
                        p.settled = false;
                        p.new = true;
                    });
                }
            }
            // Data or attributes written with the file possibly still open, and whatever else.
            _ => {
                for p in paths {
                    self.mark(p, now, |p| p.settled = false);
                }
            }
        }
        if self.pending > MAX_PENDING {
            self.rescan(now);
        }
    }

    /// Whether the event is the puller putting a download in place: a rename out of a
    /// download temporary, either half of it, or the pair.
    fn is_download(&mut self, kind: &EventKind, paths: &[String], tracker: Option<usize>) -> bool {
        let EventKind::Modify(ModifyKind::Name(mode)) = kind else { return false };
        match mode {
            RenameMode::From if paths.iter().all(|p| is_temp_path(p)) => {
                if let Some(cookie) = tracker {
                    if self.temp_moves.len() == MAX_TEMP_MOVES {
                        self.temp_moves.pop_front();
                    }
                    self.temp_moves.push_back(cookie);
                }
                true
            }
            RenameMode::To => tracker.is_some_and(|cookie| self.temp_moves.contains(&cookie)),
            RenameMode::Both if paths.first().is_some_and(|p| is_temp_path(p)) => {
                self.temp_moves.retain(|c| Some(*c) != tracker);
                true
            }
            _ => false,
        }
    }

    fn pending_of(&self, path: &str) -> Option<&Pending> {
        self.bursts.get(parent(path))?.paths.get(path)
    }

    fn mark(&mut self, path: &str, now: Instant, f: impl FnOnce(&mut Pending)) {
        let burst = self
            .bursts
            .entry(parent(path).to_owned())
            .or_insert_with(|| Burst { first: now, paths: BTreeMap::new() });
        let pending = burst.paths.entry(path.to_owned()).or_insert_with(|| {
            self.pending += 1;
            Pending { last: now, settled: false, new: false }
        });
        pending.last = now;
        f(pending);
    }

    fn burst_due(&self, burst: &Burst) -> Instant {
        let quiet = burst
            .paths
            .values()
            .map(|p| p.last + if p.settled { self.settle } else { self.delay })
            .max()
            .unwrap_or(burst.first);
        quiet.min(burst.first + self.max_wait)
    }

    /// When the next report is due, if anything is pending.
    fn due(&self) -> Option<Instant> {
        if let Some((first, last)) = self.rescan {
            return Some((last + self.delay).min(first + self.max_wait));
        }
        self.bursts.values().map(|b| self.burst_due(b)).min()
    }

    /// What is due at `now`: every directory's burst that is done, in one report.
    fn flush(&mut self, now: Instant) -> Option<WatchEvent> {
        if self.rescan.is_some() {
            if self.due().is_some_and(|due| due > now) {
                return None;
            }
            self.rescan = None;
            return Some(WatchEvent::Rescan);
        }
        let done: Vec<String> =
            self.bursts.iter().filter(|(_, b)| self.burst_due(b) <= now).map(|(d, _)| d.clone()).collect();
        if done.is_empty() {
            return None;
        }
        let mut paths = Vec::new();
        for dir in done {
            if let Some(burst) = self.bursts.remove(&dir) {
                self.pending -= burst.paths.len();
                paths.extend(burst.paths.into_keys());
            }
        }
        paths.sort();
        Some(WatchEvent::Paths(paths))
    }
}

/// Whether an event of this kind can mean a change. inotify also reports every open and every
/// close after reading; scanning those paths would be a loop (listing a directory opens it, and
/// so does serving a peer's request), so only a close after writing stays of the access events.
fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether a folder-relative path is a download temporary's.
fn is_temp_path(path: &str) -> bool {
    crate::layout::is_temp(path.rsplit('/').next().unwrap_or(path))
}

/// The directory a folder-relative path is in; "" for the root (and for the root itself).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `path` relative to `base` in index form; `Some("")` for the root itself.
fn relative(base: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(base).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let joined = parts?.join("/");
    // ASCII is its own NFC: normalising every path of every event was half this thread's work.
    Some(if joined.is_ascii() { joined } else { joined.nfc().collect() })
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    use super::*;

    const DELAY: Duration = Duration::from_millis(200);
    const MS: Duration = Duration::from_millis(1);

    fn close_write() -> EventKind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
    }
    fn write() -> EventKind {
        EventKind::Modify(ModifyKind::Data(DataChange::Any))
    }
    fn create() -> EventKind {
        EventKind::Create(CreateKind::File)
    }
    fn remove() -> EventKind {
        EventKind::Remove(RemoveKind::File)
    }
    fn rename(mode: RenameMode) -> EventKind {
        EventKind::Modify(ModifyKind::Name(mode))
    }
    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Feeds `events` at their offsets from `t0`; panics if a report comes before `until`.
    fn feed(c: &mut Coalescer, t0: Instant, events: &[(u64, EventKind, &[&str])]) {
        for (at, kind, p) in events {
            let now = t0 + MS * (*at as u32);
            assert_eq!(c.flush(now), None, "nothing is due before the event at {at} ms");
            c.event(kind, &paths(p), None, now);
        }
    }

    #[test]
    fn a_save_closed_after_writing_is_reported_after_the_settle_time_not_the_delay() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        feed(
            &mut c,
            t0,
            &[(0, write(), &["doc.txt"]), (1, write(), &["doc.txt"]), (2, close_write(), &["doc.txt"])],
        );
        assert_eq!(c.due(), Some(t0 + 2 * MS + SETTLE));
        assert_eq!(c.flush(t0 + 1 * MS + SETTLE), None);
        assert_eq!(c.flush(t0 + 2 * MS + SETTLE), Some(WatchEvent::Paths(paths(&["doc.txt"]))));
        assert_eq!(c.due(), None, "nothing is left once reported");
    }

    #[test]
    fn a_file_still_open_for_writing_waits_the_delay_and_is_reported_again_when_closed() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        feed(&mut c, t0, &[(0, create(), &["big.iso"]), (5, write(), &["big.iso"])]);
        assert_eq!(c.flush(t0 + 5 * MS + SETTLE), None, "not settled: no close yet");
        assert_eq!(c.due(), Some(t0 + 5 * MS + DELAY));
        assert_eq!(c.flush(t0 + 5 * MS + DELAY), Some(WatchEvent::Paths(paths(&["big.iso"]))));
        // Its writer finishes later: the final content is reported too.
        let t1 = t0 + 5 * MS + DELAY + 50 * MS;
        feed(&mut c, t1, &[(0, write(), &["big.iso"]), (1, close_write(), &["big.iso"])]);
        assert_eq!(c.flush(t1 + MS + SETTLE), Some(WatchEvent::Paths(paths(&["big.iso"]))));
    }

    #[test]
    fn a_writer_that_never_pauses_is_reported_after_the_longest_wait() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        let max_wait = DELAY * MAX_WAIT_DELAYS;
        let mut t = 0;
        while MS * t < max_wait {
            assert_eq!(c.flush(t0 + MS * t), None);
            c.event(&write(), &paths(&["log"]), None, t0 + MS * t);
            t += 10;
        }
        assert_eq!(c.flush(t0 + max_wait), Some(WatchEvent::Paths(paths(&["log"]))));
    }

    #[test]
    fn a_burst_of_saves_is_one_report() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        // 100 files saved 5 ms apart (under the settle time): each new one keeps the burst on.
        for i in 0..100u32 {
            let now = t0 + 5 * MS * i;
            assert_eq!(c.flush(now), None, "reported in the middle of the burst, at file {i}");
            let name = [format!("f{i:03}")];
            c.event(&write(), &name, None, now);
            c.event(&close_write(), &name, None, now);
        }
        let last = t0 + 5 * MS * 99;
        assert_eq!(c.flush(last + SETTLE - MS), None);
        let expected: Vec<String> = (0..100).map(|i| format!("f{i:03}")).collect();
        assert_eq!(c.flush(last + SETTLE), Some(WatchEvent::Paths(expected)));
    }

    #[test]
    fn a_temporary_renamed_into_place_is_one_report_with_both_paths() {
        // What GIO (gedit) and most editors do: write a temporary beside the file, rename it
        // over the original. Whether the temporary is closed before or after the rename.
        for close_first in [true, false] {
            let t0 = Instant::now();
            let mut c = Coalescer::new(DELAY);
            let mut events: Vec<(u64, EventKind, &[&str])> =
                vec![(0, create(), &["d/.goutputstream-X"]), (1, write(), &["d/.goutputstream-X"])];
            if close_first {
                events.push((2, close_write(), &["d/.goutputstream-X"]));
            }
            events.extend([
                (3, rename(RenameMode::From), &["d/.goutputstream-X"][..]),
                (3, rename(RenameMode::To), &["d/doc.txt"][..]),
                (3, rename(RenameMode::Both), &["d/.goutputstream-X", "d/doc.txt"][..]),
            ]);
            if !close_first {
                events.push((4, close_write(), &["d/doc.txt"]));
            }
            feed(&mut c, t0, &events);
            let end = t0 + MS * if close_first { 3 } else { 4 } + SETTLE;
            assert_eq!(c.flush(end - MS), None);
            assert_eq!(
                c.flush(end),
                Some(WatchEvent::Paths(paths(&["d/.goutputstream-X", "d/doc.txt"]))),
                "closed first: {close_first}"
            );
        }
    }

    #[test]
    fn the_pullers_download_put_in_place_is_not_a_change() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        let tmp = "d/.syncthing.big.bin.tmp";
        for (at, kind, p) in [
            (0, create(), &[tmp][..]),
            (1, write(), &[tmp][..]),
            (2, close_write(), &[tmp][..]),
            (3, EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)), &[tmp][..]),
        ] {
            c.event(&kind, &paths(p), None, t0 + MS * at);
        }
        // inotify's rename: both halves carry the same cookie, then notify pairs them.
        c.event(&rename(RenameMode::From), &paths(&[tmp]), Some(7), t0 + MS * 4);
        c.event(&rename(RenameMode::To), &paths(&["d/big.bin"]), Some(7), t0 + MS * 4);
        c.event(&rename(RenameMode::Both), &paths(&[tmp, "d/big.bin"]), Some(7), t0 + MS * 4);
        assert_eq!(c.due(), None, "nothing pending");
        assert_eq!(c.flush(t0 + DELAY * MAX_WAIT_DELAYS), None);
        // A user's rename with another cookie right after is a change as before.
        c.event(&rename(RenameMode::From), &paths(&["d/a"]), Some(8), t0 + MS * 5);
        c.event(&rename(RenameMode::To), &paths(&["d/b"]), Some(8), t0 + MS * 5);
        c.event(&rename(RenameMode::Both), &paths(&["d/a", "d/b"]), Some(8), t0 + MS * 5);
        assert_eq!(c.flush(t0 + MS * 5 + DELAY), Some(WatchEvent::Paths(paths(&["d/a", "d/b"]))));
    }

    #[test]
    fn a_file_moved_onto_a_temporary_name_is_still_a_change_at_its_source() {
        // Only the temporary's own events are left out: what was moved away is gone here.
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        c.event(&rename(RenameMode::From), &paths(&["doc.txt"]), Some(3), t0);
        c.event(&rename(RenameMode::To), &paths(&[".syncthing.doc.txt.tmp"]), Some(3), t0);
        c.event(&rename(RenameMode::Both), &paths(&["doc.txt", ".syncthing.doc.txt.tmp"]), Some(3), t0);
        assert_eq!(c.flush(t0 + DELAY), Some(WatchEvent::Paths(paths(&["doc.txt"]))));
    }

    #[test]
    fn an_original_moved_aside_waits_for_its_replacement() {
        // Vim's save: the original becomes the backup, a new file is written in its place,
        // the backup is deleted. Until the backup is gone the save is not over, however long
        // writing the new file takes.
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        feed(
            &mut c,
            t0,
            &[
                (0, rename(RenameMode::From), &["notes.md"]),
                (0, rename(RenameMode::To), &["notes.md~"]),
                (0, rename(RenameMode::Both), &["notes.md", "notes.md~"]),
                (1, create(), &["notes.md"]),
                (2, write(), &["notes.md"]),
                (3, close_write(), &["notes.md"]),
            ],
        );
        assert_eq!(c.flush(t0 + 3 * MS + SETTLE), None, "the backup is still there");
        feed(&mut c, t0, &[(40, remove(), &["notes.md~"])]);
        assert_eq!(
            c.flush(t0 + 40 * MS + SETTLE),
            Some(WatchEvent::Paths(paths(&["notes.md", "notes.md~"])))
        );
    }

    #[test]
    fn a_plain_delete_or_move_waits_the_delay() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        feed(
            &mut c,
            t0,
            &[
                (0, remove(), &["gone"]),
                (1, rename(RenameMode::From), &["a"]),
                (1, rename(RenameMode::To), &["b"]),
                (1, rename(RenameMode::Both), &["a", "b"]),
                (2, EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)), &["c"]),
            ],
        );
        assert_eq!(c.flush(t0 + 2 * MS + DELAY - MS), None);
        assert_eq!(c.flush(t0 + 2 * MS + DELAY), Some(WatchEvent::Paths(paths(&["a", "b", "c", "gone"]))));
    }

    #[test]
    fn a_busy_directory_does_not_hold_back_a_save_elsewhere() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        feed(
            &mut c,
            t0,
            &[
                (0, write(), &["logs/app.log"]),
                (10, write(), &["docs/a.txt"]),
                (11, close_write(), &["docs/a.txt"]),
            ],
        );
        assert_eq!(c.flush(t0 + 11 * MS + SETTLE), Some(WatchEvent::Paths(paths(&["docs/a.txt"]))));
        assert_eq!(c.flush(t0 + DELAY), Some(WatchEvent::Paths(paths(&["logs/app.log"]))));
    }

    #[test]
    fn opening_and_reading_are_not_events() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        c.event(&EventKind::Access(AccessKind::Open(AccessMode::Any)), &paths(&["a"]), None, t0);
        c.event(&EventKind::Access(AccessKind::Close(AccessMode::Read)), &paths(&["a"]), None, t0);
        assert_eq!(c.due(), None);
    }

    #[test]
    fn lost_events_and_too_many_paths_become_one_rescan() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(DELAY);
        c.event(&close_write(), &paths(&["a"]), None, t0);
        c.rescan(t0 + MS);
        c.event(&close_write(), &paths(&["b"]), None, t0 + 2 * MS);
        assert_eq!(c.flush(t0 + 2 * MS + DELAY - MS), None);
        assert_eq!(c.flush(t0 + 2 * MS + DELAY), Some(WatchEvent::Rescan));
        assert_eq!(c.due(), None, "the rescan covers the paths seen before it");

        for i in 0..=MAX_PENDING {
            c.event(&write(), &[format!("d{}/f{i}", i % 7)], None, t0);
        }
        assert_eq!(c.pending, 0, "the paths are dropped, not kept");
        assert_eq!(c.flush(t0 + DELAY), Some(WatchEvent::Rescan));
    }

    fn raw(kind: EventKind, path: &str) -> Raw {
        Ok(notify::Event::new(kind).add_path(PathBuf::from(path)))
    }

    #[test]
    fn a_storm_beyond_the_handoffs_queue_is_dropped_and_marked() {
        let handoff = Handoff::default();
        for i in 0..QUEUED_EVENTS + 10 {
            handoff.push(raw(write(), &format!("/f/{i}")));
        }
        let mut batch = Vec::new();
        assert_eq!(handoff.take(None, &mut batch), Taken { overflowed: true, closed: false });
        assert_eq!(batch.len(), QUEUED_EVENTS, "what came after the bound is not kept");
        batch.clear();
        // Nothing since: the mark was taken with the batch, and a wait ends when it is due.
        assert_eq!(handoff.take(Some(Instant::now()), &mut batch), Taken::default());
        assert!(batch.is_empty());
    }

    #[test]
    fn the_watcher_dropped_wakes_the_coalescing_thread() {
        let handoff = Arc::new(Handoff::default());
        let feed = Feed(Arc::clone(&handoff));
        let waiter = std::thread::spawn({
            let handoff = Arc::clone(&handoff);
            move || handoff.take(None, &mut Vec::new())
        });
        drop(feed);
        assert_eq!(waiter.join().unwrap(), Taken { overflowed: false, closed: true });
    }

    #[test]
    fn a_storm_the_coalescing_thread_cannot_keep_up_with_becomes_one_rescan() {
        let handoff = Arc::new(Handoff::default());
        let mut feed = Feed(Arc::clone(&handoff));
        // Queued before the thread starts, so it finds the queue over its bound at once.
        for i in 0..=QUEUED_EVENTS {
            notify::EventHandler::handle_event(&mut feed, raw(write(), &format!("/f/d/{i}")));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let thread = std::thread::spawn({
            let handoff = Arc::clone(&handoff);
            move || coalesce(Path::new("/f"), MS * 10, &handoff, &tx)
        });
        assert_eq!(rx.blocking_recv(), Some(WatchEvent::Rescan));
        drop(feed);
        thread.join().unwrap();
        assert_eq!(rx.blocking_recv(), None, "nothing but the rescan was reported");
    }

    #[test]
    fn paths_are_made_folder_relative() {
        let base = Path::new("/data/f");
        assert_eq!(relative(base, Path::new("/data/f/a/b.txt")).as_deref(), Some("a/b.txt"));
        assert_eq!(relative(base, Path::new("/data/f")).as_deref(), Some(""));
        assert_eq!(relative(base, Path::new("/elsewhere/x")), None);
        assert_eq!(relative(base, Path::new("/data/f/cafe\u{301}")).as_deref(), Some("caf\u{e9}"));
        assert_eq!(parent("a/b/c.txt"), "a/b");
        assert_eq!(parent("c.txt"), "");
    }

    /// Receives until `done` holds for what was seen; panics after 20 s.
    async fn receive_until(
        rx: &mut mpsc::UnboundedReceiver<WatchEvent>,
        done: impl Fn(&[Vec<String>]) -> bool,
    ) -> Vec<Vec<String>> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&seen) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(WatchEvent::Paths(p))) => seen.push(p),
                other => panic!("no report (seen {seen:?}): {other:?}"),
            }
        }
        seen
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
        let seen = receive_until(&mut rx, |s| s.iter().flatten().any(|p| p == "new.txt")).await;
        assert_eq!(seen.concat(), ["new.txt"], "only the written file is a change");
    }

    #[tokio::test]
    async fn a_file_written_into_a_new_directory_is_covered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = FolderWatcher::start(&root, Duration::from_millis(50), tx).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/new.txt"), b"x").unwrap();
        // The file itself or a directory above it (see `WatchEvent::Paths`).
        receive_until(&mut rx, |s| s.iter().flatten().any(|p| crate::bep::is_within("sub/new.txt", p))).await;
    }

    #[tokio::test]
    async fn a_save_through_a_renamed_temporary_is_one_report() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("doc.txt"), b"old").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A delay no test run reaches: only settled paths can be reported.
        let _w = FolderWatcher::start(&root, Duration::from_secs(3600), tx).unwrap();
        // GIO's order: the temporary is renamed over the file before it is closed, so no
        // moment of the save has every path settled before its end.
        let mut tmp = std::fs::File::create(root.join(".doc.txt.tmp")).unwrap();
        tmp.write_all(b"new content").unwrap();
        std::fs::rename(root.join(".doc.txt.tmp"), root.join("doc.txt")).unwrap();
        drop(tmp);
        let seen = receive_until(&mut rx, |s| !s.is_empty()).await;
        assert_eq!(seen, [paths(&[".doc.txt.tmp", "doc.txt"])], "one report with both paths");
    }

    // inotify pairs a rename's halves by a cookie; Windows' change notifications (and Wine's)
    // carry none, so there the file renamed into place is still reported (a rescan that finds
    // it unchanged), and only the temporary's own events are left out.
    #[cfg(not(windows))]
    #[tokio::test]
    async fn a_download_renamed_into_place_is_not_reported() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = FolderWatcher::start(&root, Duration::from_millis(50), tx).unwrap();
        // What the puller does: write blocks into the temporary, sync it, rename it into place.
        let tmp = root.join("d").join(crate::layout::temp_name("big.bin"));
        let mut file = std::fs::File::create(&tmp).unwrap();
        for _ in 0..8 {
            file.write_all(&[7u8; 4096]).unwrap();
        }
        file.sync_all().unwrap();
        drop(file);
        std::fs::rename(&tmp, root.join("d/big.bin")).unwrap();
        // Then a user's change, so the test knows everything before it was reported.
        std::fs::write(root.join("d/note.txt"), b"y").unwrap();
        let seen = receive_until(&mut rx, |s| s.iter().flatten().any(|p| p == "d/note.txt")).await;
        assert_eq!(seen.concat(), ["d/note.txt"], "the download is the puller's to record");
    }
}

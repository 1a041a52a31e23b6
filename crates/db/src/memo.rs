//! What the index remembers between calls: folder-wide aggregates that cost a pass over a
//! folder's whole index (what the global state holds, what a peer still lacks), and the
//! per-name lookups that serving a block makes for every block (a folder's row, a file's
//! entry).
//!
//! Status is asked for often (a UI refreshing, a script polling) and these passes grow with the
//! folder: on 10,000 files they took about 70 ms, and a poll every 50 ms kept a core busy
//! during a sync. A remembered value is exact while nothing was committed since it was
//! computed; while the index changes it is recomputed at most once per [`REFRESH`] (or per
//! [`STALE_FACTOR`] times what it took, on a large folder), so a progress figure may lag a
//! sync by that much. Figures that decide anything (what this device
//! needs, its own counts) are not remembered.
//!
//! Served blocks are the other hot path: a peer downloading a 1 GiB file asks for 8,192
//! blocks of the same entry, and each lookup was a round trip to SQLite's worker thread. An
//! entry is remembered only while nothing was committed since it was read, so it is always
//! exact.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{DbError, DeviceIdx, FolderCounts, FolderIdx, NeedCounts};
use crate::bep::FileInfo;

/// Entries [`Aggregates::heads`] holds at most; it is emptied when full. A handful of files
/// are served at a time, so a small map catches nearly every lookup.
const HEADS: usize = 256;

/// How old a remembered value may be while the index keeps changing...
pub(super) const REFRESH: Duration = Duration::from_secs(1);
/// ...or this many times what computing it took, if longer: so that a status poll, however
/// often, spends at most about a tenth of a core on each aggregate. On 100,000 files a peer's
/// need took most of a second to count, and a poll each second kept a core busy during a sync.
pub(super) const STALE_FACTOR: u32 = 10;

#[derive(Debug, Default)]
pub(super) struct Aggregates {
    /// Commits that may have changed files or global versions, so far.
    commits: AtomicU64,
    pub(super) global: Mutex<HashMap<FolderIdx, Entry<FolderCounts>>>,
    pub(super) remote_need: Mutex<HashMap<(FolderIdx, DeviceIdx), Entry<NeedCounts>>>,
    /// Folder rows by folder ID. A row is never renumbered; a dropped one is forgotten here.
    folders: Mutex<HashMap<String, FolderIdx>>,
    heads: Mutex<HashMap<(FolderIdx, String), Head>>,
}

/// This device's entry for a name (blocks not loaded, `None` if it has none), with `commits`
/// when it was read.
type Head = (u64, Option<FileInfo>);

#[derive(Debug)]
pub(super) struct Entry<V> {
    /// `commits` when the computation started.
    commits: u64,
    at: Instant,
    /// How long computing it took.
    took: Duration,
    value: V,
}

impl Aggregates {
    /// Called after every commit that may change what the aggregates count.
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::AcqRel);
    }

    /// The remembered value for `key` if it is still good at `now`, else `compute`'s
    /// (remembered).
    pub(super) async fn get<K: Eq + Hash, V: Copy>(
        &self,
        map: &Mutex<HashMap<K, Entry<V>>>,
        key: K,
        now: Instant,
        compute: impl Future<Output = Result<V, DbError>>,
    ) -> Result<V, DbError> {
        // Read before computing: a commit during the computation makes the value stale.
        let commits = self.commits.load(Ordering::Acquire);
        if let Some(e) = lock(map).get(&key)
            && (e.commits == commits
                || now.saturating_duration_since(e.at) < REFRESH.max(e.took * STALE_FACTOR))
        {
            return Ok(e.value);
        }
        let started = Instant::now();
        let value = compute.await?;
        lock(map).insert(key, Entry { commits, at: now, took: started.elapsed(), value });
        Ok(value)
    }
}

impl Aggregates {
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    pub(super) fn folder(&self, folder_id: &str) -> Option<FolderIdx> {
        lock(&self.folders).get(folder_id).copied()
    }

    pub(super) fn remember_folder(&self, folder_id: &str, idx: FolderIdx) {
        lock(&self.folders).insert(folder_id.to_owned(), idx);
    }

    /// Forgets everything remembered of a dropped folder: SQLite may give its row number to the
    /// next folder registered.
    pub(super) fn forget_folder(&self, folder_id: &str, idx: FolderIdx) {
        lock(&self.folders).remove(folder_id);
        lock(&self.global).remove(&idx);
        lock(&self.remote_need).retain(|(f, _), _| *f != idx);
        lock(&self.heads).retain(|(f, _), _| *f != idx);
    }

    /// This device's entry for `name` (blocks not loaded) if it was read since the last
    /// commit, else `read`'s (remembered).
    pub(super) async fn head(
        &self,
        folder: FolderIdx,
        name: &str,
        read: impl Future<Output = Result<Option<FileInfo>, DbError>>,
    ) -> Result<Option<FileInfo>, DbError> {
        // Read before the query: a commit while it runs makes its answer unfit to keep.
        let commits = self.commits.load(Ordering::Acquire);
        let key = (folder, name.to_owned());
        if let Some((at, head)) = lock(&self.heads).get(&key)
            && *at == commits
        {
            return Ok(head.clone());
        }
        let head = read.await?;
        let mut heads = lock(&self.heads);
        if heads.len() >= HEADS {
            heads.clear();
        }
        heads.insert(key, (commits, head.clone()));
        Ok(head)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exact_until_a_commit_then_at_most_refresh_old() {
        let memo = Aggregates::default();
        let map: Mutex<HashMap<u8, Entry<u32>>> = Mutex::default();
        let t0 = Instant::now();
        assert_eq!(memo.get(&map, 1, t0, async { Ok(10) }).await.unwrap(), 10);
        // Nothing committed: the value is exact however old it is.
        assert_eq!(memo.get(&map, 1, t0 + 10 * REFRESH, async { Ok(11) }).await.unwrap(), 10);
        memo.committed();
        // Changed, but computed less than REFRESH ago: still the remembered value.
        assert_eq!(memo.get(&map, 1, t0 + REFRESH / 2, async { Ok(12) }).await.unwrap(), 10);
        assert_eq!(memo.get(&map, 1, t0 + REFRESH, async { Ok(13) }).await.unwrap(), 13);
        assert_eq!(memo.get(&map, 1, t0 + REFRESH, async { Ok(14) }).await.unwrap(), 13);
        // Keys are separate; a failed computation remembers nothing.
        assert!(
            memo.get(&map, 2, t0, async { Err(DbError::Corrupt { what: "x", name: String::new() }) })
                .await
                .is_err()
        );
        assert_eq!(memo.get(&map, 2, t0, async { Ok(20) }).await.unwrap(), 20);
    }

    #[tokio::test]
    async fn a_slow_aggregate_is_kept_longer_while_the_index_changes() {
        let memo = Aggregates::default();
        let map: Mutex<HashMap<u8, Entry<u32>>> = Mutex::default();
        let t0 = Instant::now();
        let slow = async {
            tokio::time::sleep(REFRESH / 5).await;
            Ok(10)
        };
        assert_eq!(memo.get(&map, 1, t0, slow).await.unwrap(), 10);
        memo.committed();
        // It took a fifth of REFRESH: kept for STALE_FACTOR times that, past REFRESH.
        let kept = REFRESH / 5 * STALE_FACTOR;
        assert!(kept > REFRESH * 3 / 2);
        assert_eq!(memo.get(&map, 1, t0 + REFRESH * 3 / 2, async { Ok(11) }).await.unwrap(), 10);
        assert_eq!(memo.get(&map, 1, t0 + kept + REFRESH, async { Ok(12) }).await.unwrap(), 12);
        // Nothing committed since: exact, kept however old.
        assert_eq!(memo.get(&map, 1, t0 + 100 * kept, async { Ok(13) }).await.unwrap(), 12);
    }

    #[tokio::test]
    async fn a_head_is_remembered_until_the_next_commit() {
        let memo = Aggregates::default();
        let f = FolderIdx(1);
        let entry = |size| FileInfo {
            name: String::from("a"),
            file_type: crate::bep::FileType::File,
            size,
            permissions: 0o644,
            no_permissions: false,
            modified_s: 0,
            modified_ns: 0,
            modified_by: crate::identity::ShortId(0),
            deleted: false,
            invalid: false,
            version: crate::bep::Vector::new(),
            sequence: 1,
            block_size: 0,
            blocks: Vec::new(),
            symlink_target: String::new(),
        };
        let size = |h: Option<FileInfo>| h.map(|h| h.size);
        assert_eq!(size(memo.head(f, "a", async { Ok(Some(entry(1))) }).await.unwrap()), Some(1));
        assert_eq!(size(memo.head(f, "a", async { Ok(Some(entry(2))) }).await.unwrap()), Some(1));
        // Another name, another folder: read.
        assert_eq!(size(memo.head(f, "b", async { Ok(None) }).await.unwrap()), None);
        assert_eq!(size(memo.head(FolderIdx(2), "a", async { Ok(Some(entry(3))) }).await.unwrap()), Some(3));
        memo.committed();
        assert_eq!(size(memo.head(f, "a", async { Ok(Some(entry(4))) }).await.unwrap()), Some(4));
        assert_eq!(size(memo.head(f, "a", async { Ok(Some(entry(5))) }).await.unwrap()), Some(4));
        // A commit while the query runs: its answer is returned but not kept.
        memo.committed();
        let racing = async {
            memo.committed();
            Ok(Some(entry(6)))
        };
        assert_eq!(size(memo.head(f, "a", racing).await.unwrap()), Some(6));
        assert_eq!(size(memo.head(f, "a", async { Ok(Some(entry(7))) }).await.unwrap()), Some(7));
        // Full: emptied, not grown.
        for i in 0..HEADS + 10 {
            memo.head(f, &i.to_string(), async { Ok(None) }).await.unwrap();
        }
        assert!(lock(&memo.heads).len() <= HEADS);
    }
}

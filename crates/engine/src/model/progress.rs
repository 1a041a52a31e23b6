//! Download progress (BEP DownloadProgress): which blocks of the files being pulled already sit
//! in their temporary files — this device's, announced to peers, and peers', so the puller may
//! ask a peer that is still downloading a file for the blocks it has (`from_temporary`).
//!
//! Both sides are kept in memory only: a temporary file's blocks are worth knowing about while
//! its download runs and its connection lives, not after a restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Peers;
use crate::bep::Vector;
use crate::bep::wire;
use crate::config::FolderId;
use crate::identity::DeviceId;

/// How often a connection tells its peer about new progress. Syncthing's
/// `progressUpdateIntervalS` is 5 s; 2 s lets a peer start asking for blocks of a large file
/// sooner, for a message that is a few bytes per block.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// Only files with more blocks than this are announced (Syncthing's `tempIndexMinBlocks`):
/// smaller ones are done before a peer could make use of the news.
pub const MIN_BLOCKS: usize = 10;
/// Files in progress remembered per peer; announcements of more are not believed.
const MAX_PEER_FILES: usize = 1000;
/// Block indexes remembered per peer, over all its files: a peer cannot make us hold more.
const MAX_PEER_BLOCKS: usize = 1 << 20;

/// A file this device is downloading, as connections announce it.
#[derive(Clone, Debug)]
pub(super) struct LocalDownload {
    pub version: Vector,
    pub block_size: u32,
    /// Indexes of the blocks in the temporary file, in the order they arrived (append-only, so
    /// a connection remembers how many it sent).
    pub blocks: Vec<u32>,
    /// Tells this download from an earlier one of the same name.
    pub serial: u64,
}

/// Downloads in progress on this device, by (folder, name).
#[derive(Default)]
pub(super) struct LocalDownloads {
    map: Mutex<HashMap<(FolderId, String), LocalDownload>>,
    next_serial: AtomicU64,
}

impl LocalDownloads {
    fn lock(&self) -> MutexGuard<'_, HashMap<(FolderId, String), LocalDownload>> {
        // Every update is one insert, push or remove: a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of every download of the given folders.
    pub(super) fn snapshot(&self) -> Vec<((FolderId, String), LocalDownload)> {
        self.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// The puller's handle on one download: it records blocks as they land in the temporary file,
/// and the download is forgotten (peers are told with a FORGET) when it is dropped, whether the
/// file was finished or abandoned.
pub struct DownloadGuard {
    peers: Arc<Peers>,
    key: (FolderId, String),
    serial: u64,
}

impl DownloadGuard {
    /// Block `index` is in the temporary file, verified.
    pub fn block_done(&self, index: u32) {
        if let Some(d) = self.peers.downloads.lock().get_mut(&self.key)
            && d.serial == self.serial
        {
            d.blocks.push(index);
        }
    }
}

impl Drop for DownloadGuard {
    fn drop(&mut self) {
        let mut map = self.peers.downloads.lock();
        if map.get(&self.key).is_some_and(|d| d.serial == self.serial) {
            map.remove(&self.key);
        }
    }
}

/// A file a peer is downloading, as it announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDownload {
    pub device: DeviceId,
    pub folder: FolderId,
    pub name: String,
    pub version: Vector,
    pub block_size: u32,
    /// Indexes of the blocks in its temporary file, ascending.
    pub blocks: Vec<u32>,
}

#[derive(Debug)]
struct RemoteFile {
    version: Vector,
    block_size: u32,
    blocks: BTreeSet<u32>,
}

/// What one peer announced.
#[derive(Debug, Default)]
pub(super) struct RemoteDownloads {
    files: HashMap<(FolderId, String), RemoteFile>,
    blocks: usize,
}

impl RemoteDownloads {
    /// Applies one folder's DownloadProgress updates (names already checked).
    pub(super) fn apply(&mut self, folder: &FolderId, updates: Vec<wire::FileDownloadProgressUpdate>) {
        for u in updates {
            let key = (folder.clone(), u.name);
            let version = u.version.as_ref().map(Vector::from).unwrap_or_default();
            if u.update_type == wire::FileDownloadProgressUpdateType::Forget as i32 {
                if let Some(old) = self.files.remove(&key) {
                    self.blocks -= old.blocks.len();
                }
                continue;
            }
            // APPEND for another version starts over: the temporary file holds the new one.
            if self.files.get(&key).is_some_and(|f| f.version != version)
                && let Some(old) = self.files.remove(&key)
            {
                self.blocks -= old.blocks.len();
            }
            if !self.files.contains_key(&key) && self.files.len() >= MAX_PEER_FILES {
                continue;
            }
            let file = self.files.entry(key).or_insert_with(|| RemoteFile {
                version,
                block_size: u32::try_from(u.block_size).unwrap_or(0),
                blocks: BTreeSet::new(),
            });
            for i in u.block_indexes {
                let Ok(i) = u32::try_from(i) else { continue };
                if self.blocks >= MAX_PEER_BLOCKS {
                    break;
                }
                if file.blocks.insert(i) {
                    self.blocks += 1;
                }
            }
        }
    }

    pub(super) fn list(&self, device: DeviceId) -> impl Iterator<Item = PeerDownload> + '_ {
        self.files.iter().map(move |((folder, name), f)| PeerDownload {
            device,
            folder: folder.clone(),
            name: name.clone(),
            version: f.version.clone(),
            block_size: f.block_size,
            blocks: f.blocks.iter().copied().collect(),
        })
    }

    /// Whether the peer has block `index` of exactly `version` of the file.
    pub(super) fn has(&self, folder: &FolderId, name: &str, version: &Vector, index: u32) -> bool {
        self.files
            .get(&(folder.clone(), name.to_owned()))
            .is_some_and(|f| &f.version == version && f.blocks.contains(&index))
    }
}

impl Peers {
    /// Starts announcing a download of `version` of `name`, if the file is large enough to be
    /// worth it (more than [`MIN_BLOCKS`] blocks); the guard records its blocks.
    pub fn start_download(
        self: &Arc<Self>,
        folder: &FolderId,
        name: &str,
        version: &Vector,
        block_size: u32,
        blocks: usize,
    ) -> Option<DownloadGuard> {
        if blocks <= MIN_BLOCKS {
            return None;
        }
        let serial = self.downloads.next_serial.fetch_add(1, Relaxed);
        let key = (folder.clone(), name.to_owned());
        let download = LocalDownload { version: version.clone(), block_size, blocks: Vec::new(), serial };
        self.downloads.lock().insert(key.clone(), download);
        Some(DownloadGuard { peers: Arc::clone(self), key, serial })
    }

    /// Every file connected peers told us they are downloading, with the blocks they have.
    pub fn peer_downloads(&self) -> Vec<PeerDownload> {
        let remote = self.remote_downloads();
        let mut out: Vec<PeerDownload> = remote.iter().flat_map(|(d, r)| r.list(*d)).collect();
        out.sort_by(|a, b| (a.device, &a.folder, &a.name).cmp(&(b.device, &b.folder, &b.name)));
        out
    }

    /// Connected devices that announced block `index` of exactly `version` of the file in their
    /// temporary file.
    pub fn temp_holders(&self, folder: &FolderId, name: &str, version: &Vector, index: u32) -> Vec<DeviceId> {
        let mut out: Vec<DeviceId> = self
            .remote_downloads()
            .iter()
            .filter(|(_, r)| r.has(folder, name, version, index))
            .map(|(d, _)| *d)
            .collect();
        // The progress lock is released before the registry's is taken (one lock at a time).
        out.retain(|d| self.is_connected(d));
        out.sort();
        out
    }

    pub(super) fn remote_downloads(&self) -> MutexGuard<'_, HashMap<DeviceId, RemoteDownloads>> {
        // Every update is applied under the lock in one go: a poisoned map is still consistent.
        self.remote_progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ShortId;

    fn update(
        kind: wire::FileDownloadProgressUpdateType,
        name: &str,
        v: &Vector,
        blocks: &[i32],
    ) -> wire::FileDownloadProgressUpdate {
        wire::FileDownloadProgressUpdate {
            update_type: kind as i32,
            name: name.into(),
            version: Some(v.into()),
            block_indexes: blocks.to_vec(),
            block_size: 131072,
        }
    }

    #[test]
    fn appends_accumulate_per_version_and_forget_drops() {
        use wire::FileDownloadProgressUpdateType::{Append, Forget};
        let f: FolderId = "f".parse().unwrap();
        let v1 = Vector::new().updated(ShortId(1), 10);
        let v2 = v1.updated(ShortId(2), 20);
        let mut r = RemoteDownloads::default();
        r.apply(&f, vec![update(Append, "a", &v1, &[0, 3]), update(Append, "a", &v1, &[2, -1])]);
        assert!(r.has(&f, "a", &v1, 2) && r.has(&f, "a", &v1, 3) && !r.has(&f, "a", &v1, 1));
        assert!(!r.has(&f, "a", &v2, 0), "another version's blocks are not these");
        r.apply(&f, vec![update(Append, "a", &v2, &[5])]);
        assert!(!r.has(&f, "a", &v1, 0) && r.has(&f, "a", &v2, 5));
        assert_eq!(r.blocks, 1);
        r.apply(&f, vec![update(Forget, "a", &v2, &[])]);
        assert!(!r.has(&f, "a", &v2, 5));
        assert_eq!((r.files.len(), r.blocks), (0, 0));
    }

    #[test]
    fn a_peer_cannot_make_us_remember_without_bound() {
        use wire::FileDownloadProgressUpdateType::Append;
        let f: FolderId = "f".parse().unwrap();
        let v = Vector::new().updated(ShortId(1), 10);
        let mut r = RemoteDownloads::default();
        let many: Vec<_> =
            (0..MAX_PEER_FILES + 5).map(|i| update(Append, &format!("n{i}"), &v, &[1])).collect();
        r.apply(&f, many);
        assert_eq!(r.files.len(), MAX_PEER_FILES);
        let huge: Vec<i32> = (0..(MAX_PEER_BLOCKS as i32 + 10)).collect();
        r.apply(&f, vec![update(Append, "n0", &v, &huge)]);
        assert_eq!(r.blocks, MAX_PEER_BLOCKS);
    }
}

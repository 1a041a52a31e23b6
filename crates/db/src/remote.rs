//! Peers' indexes, the global version of each name, what this device needs, and the user's
//! inbox (pending devices and folders, conflicts).
//!
//! The global version of a name is recomputed, in the same transaction, whenever any device's
//! entry for it changes ([`refresh_globals`]); the rules are [`crate::bep::global`]'s. That keeps
//! "what do I need" a range read on `globals_needed` instead of a comparison of whole indexes.

use std::collections::{BTreeMap, HashSet};

use sqlx::{QueryBuilder, Row as _, Sqlite, Sqlite as Db, Transaction};

use super::codec::{blocks_of, file_columns, file_from_row, file_with_blocks, file_with_blocks_at};
use super::files::{
    FILE_ROWS_PER_STATEMENT, LOCAL, NAMES_PER_LOOKUP, collect_blocklist, insert_blocklists, old_blocklists,
    upsert_files,
};
use super::{DbError, FolderCounts, FolderIdx, Index};
use crate::bep::{BlockHash, FileInfo, Vector, blocklist_hash, global};
use crate::identity::{DeviceId, ShortId};

/// Unknown devices kept in the pending list: the most recently seen ones. Anyone who can reach
/// a listening port can make new certificates, so the list must not grow with them.
pub const MAX_PENDING_DEVICES: usize = 100;

/// A peer's row number in the index; obtained from [`Index::device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceIdx(i64);

impl DeviceIdx {
    /// A row number no device has (devices are numbered from 1, this device is 0): reads
    /// about a device the index never recorded find nothing, without registering it.
    pub const NONE: DeviceIdx = DeviceIdx(-1);
}

/// What this device holds of a peer's index for a folder (BEP delta indexes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteIndex {
    pub index_id: u64,
    pub max_sequence: i64,
}

/// A device that asked to connect without being configured.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PendingDevice {
    #[schema(value_type = String)]
    pub device: DeviceId,
    pub name: String,
    pub address: String,
    /// Unix seconds.
    pub seen_at: i64,
}

/// A folder a configured device offered that is not shared with it here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PendingFolder {
    #[schema(value_type = String)]
    pub device: DeviceId,
    pub folder: String,
    pub label: String,
    pub seen_at: i64,
}

/// A conflict copy this device made.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    pub copy_name: String,
    pub name: String,
    /// Unix seconds.
    pub at: i64,
}

/// The global version of a name, with the devices to fetch it from.
#[derive(Clone, Debug)]
pub struct GlobalFile {
    /// Blocks included.
    pub file: FileInfo,
    /// Peers whose entry is exactly the global version.
    pub holders: Vec<DeviceId>,
}

/// A local change in a receive-only folder: this device's entry, which no peer holds.
#[derive(Clone, Debug)]
pub struct ReceiveOnlyChange {
    /// This device's entry, blocks included.
    pub file: FileInfo,
    /// Whether some peer has a valid entry for the name: dropping this device's version makes
    /// that the global one. Otherwise the name exists only here (added locally).
    pub peer_has_name: bool,
}

/// The condition on a local row `f` (in `files f`) that makes it a receive-only change made by
/// the device bound as `?2`: ours (author and a version), not what some peer holds exactly, and
/// not a deletion of something no peer has (nothing to revert). The empty version is what a
/// revert leaves.
macro_rules! receive_only_change {
    () => {
        "f.folder_idx = ?1 AND f.device_idx = 0 AND f.modified_by = ?2 AND f.version <> x''
         AND NOT EXISTS (SELECT 1 FROM files p WHERE p.folder_idx = ?1 AND p.name = f.name
             AND p.device_idx <> 0 AND NOT p.invalid AND p.version = f.version)
         AND NOT (f.deleted AND NOT EXISTS (SELECT 1 FROM files p WHERE p.folder_idx = ?1
             AND p.name = f.name AND p.device_idx <> 0 AND NOT p.invalid))"
    };
}

/// How much of a folder a device lacks.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct NeedCounts {
    /// Names the device must fetch, update or delete.
    pub items: u64,
    /// Bytes of the files among them that it must fetch.
    pub bytes: u64,
}

/// A name this device needs, as [`Index::needed_items`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NeededItem {
    pub path: String,
    /// Bytes to fetch (0 for a deletion).
    pub size: u64,
    /// The global version is a deletion: this device deletes its copy.
    pub deleted: bool,
}

/// Which needed entries [`Index::needed_page`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedKind {
    /// Entries to create or update, in name order (a directory before what it holds).
    Changes,
    /// Entries to delete, in reverse name order (what a directory holds before it).
    Deletes,
}

impl Index {
    /// The peer's row number, registering the peer if new.
    pub async fn device(&self, device: &DeviceId) -> Result<DeviceIdx, DbError> {
        let id = device.as_bytes().as_slice();
        if let Some(row) = sqlx::query("SELECT idx FROM devices WHERE device_id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
        {
            return Ok(DeviceIdx(row.try_get(0)?));
        }
        let row = sqlx::query(
            "INSERT INTO devices (device_id) VALUES (?)
             ON CONFLICT (device_id) DO UPDATE SET device_id = excluded.device_id RETURNING idx",
        )
        .bind(id)
        .fetch_one(&self.write)
        .await?;
        Ok(DeviceIdx(row.try_get(0)?))
    }

    /// The peer's row number if the index has recorded the device; never writes.
    pub async fn known_device(&self, device: &DeviceId) -> Result<Option<DeviceIdx>, DbError> {
        let row = sqlx::query("SELECT idx FROM devices WHERE device_id = ?")
            .bind(device.as_bytes().as_slice())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.map(DeviceIdx))
    }

    /// What this device holds of `device`'s index for the folder; `None` if nothing yet.
    pub async fn remote_index(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
    ) -> Result<Option<RemoteIndex>, DbError> {
        let row = sqlx::query(
            "SELECT index_id, max_sequence FROM remote_indexes WHERE folder_idx = ? AND device_idx = ?",
        )
        .bind(folder.0)
        .bind(device.0)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok(RemoteIndex { index_id: r.try_get::<i64, _>(0)? as u64, max_sequence: r.try_get(1)? }))
            .transpose()
    }

    /// Records that `device`'s index for the folder is now the one named `index_id`. A different
    /// ID than the one stored means the peer's index was reset: everything held from it is
    /// dropped, and its entries will arrive anew.
    pub async fn set_remote_index_id(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
        index_id: u64,
    ) -> Result<(), DbError> {
        let mut tx = self.write.begin().await?;
        let current =
            sqlx::query("SELECT index_id FROM remote_indexes WHERE folder_idx = ? AND device_idx = ?")
                .bind(folder.0)
                .bind(device.0)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = current
            && row.try_get::<i64, _>(0)? as u64 == index_id
            && index_id != 0
        {
            return Ok(());
        }
        drop_device_files(&mut tx, folder, device).await?;
        sqlx::query(
            "INSERT INTO remote_indexes (folder_idx, device_idx, index_id, max_sequence) VALUES (?, ?, ?, 0)
             ON CONFLICT (folder_idx, device_idx) DO UPDATE SET index_id = excluded.index_id, max_sequence = 0",
        )
        .bind(folder.0)
        .bind(device.0)
        .bind(index_id as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.aggregates.committed();
        Ok(())
    }

    /// Drops everything held of `device`'s index for the folder (the folder is no longer shared
    /// with it, or it announced a fresh index).
    pub async fn forget_remote(&self, folder: FolderIdx, device: DeviceIdx) -> Result<(), DbError> {
        let mut tx = self.write.begin().await?;
        drop_device_files(&mut tx, folder, device).await?;
        sqlx::query("DELETE FROM remote_indexes WHERE folder_idx = ? AND device_idx = ?")
            .bind(folder.0)
            .bind(device.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.aggregates.committed();
        Ok(())
    }

    /// Records entries a peer announced for the folder (an Index when `replace`, which first
    /// forgets the peer's previous entries, or an IndexUpdate), in one transaction with the
    /// global versions they change and the peer's highest sequence.
    pub async fn apply_remote(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
        files: &[FileInfo],
        replace: bool,
    ) -> Result<(), DbError> {
        let mut tx = self.write.begin().await?;
        if replace {
            drop_device_files(&mut tx, folder, device).await?;
        }
        let replaced = old_blocklists(&mut tx, folder, device.0, files).await?;
        let hashes: Vec<Option<BlockHash>> =
            files.iter().map(|f| (!f.blocks.is_empty()).then(|| blocklist_hash(&f.blocks))).collect();
        insert_blocklists(&mut tx, files, &hashes, false).await?;
        // A peer's sequence numbers are unique per folder; an entry that takes the number of
        // another name's older entry replaces it (a peer that reused numbers after a reset
        // without a new index ID would otherwise fail every later update).
        for chunk in files.chunks(FILE_ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Db>::new("DELETE FROM files WHERE folder_idx = ");
            q.push_bind(folder.0).push(" AND device_idx = ").push_bind(device.0).push(" AND sequence IN (");
            let mut seqs = q.separated(", ");
            for f in chunk {
                seqs.push_bind(f.sequence);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        upsert_files(&mut tx, folder, device.0, files, &hashes).await?;
        let kept: HashSet<BlockHash> = hashes.iter().flatten().copied().collect();
        for old in replaced.difference(&kept) {
            collect_blocklist(&mut tx, old).await?;
        }
        if let Some(max) = files.iter().map(|f| f.sequence).max() {
            sqlx::query(
                "UPDATE remote_indexes SET max_sequence = max(max_sequence, ?)
                 WHERE folder_idx = ? AND device_idx = ?",
            )
            .bind(max)
            .bind(folder.0)
            .bind(device.0)
            .execute(&mut *tx)
            .await?;
        }
        refresh_globals(&mut tx, folder, files.iter().map(|f| f.name.as_str())).await?;
        tx.commit().await?;
        self.aggregates.committed();
        Ok(())
    }

    /// Up to `limit` entries this device needs in the folder, of the given kind, after `after`
    /// in that kind's order (`None` for the start), each with its global version (blocks
    /// included; for changes, with the peers holding it) and this device's entry (blocks
    /// included), read in one snapshot.
    ///
    /// Two statements per page: the puller used to read each name's global version, its
    /// holders and the local entry separately, and on 10,000 small files those round trips to
    /// SQLite's worker thread were most of what its database work cost.
    pub async fn needed_page(
        &self,
        folder: FolderIdx,
        kind: NeedKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(GlobalFile, Option<FileInfo>)>, DbError> {
        macro_rules! page {
            ($where:literal) => {
                concat!(
                    "SELECT ",
                    file_columns!("w"),
                    ", ",
                    blocks_of!("w"),
                    ", ",
                    file_columns!("l"),
                    ", ",
                    blocks_of!("l"),
                    " FROM globals g
                     JOIN files w ON w.folder_idx = g.folder_idx AND w.device_idx = g.device_idx
                      AND w.name = g.name
                     LEFT JOIN files l ON l.folder_idx = g.folder_idx AND l.device_idx = 0 AND l.name = g.name
                     WHERE g.folder_idx = ?1 AND g.need AND ",
                    $where
                )
            };
        }
        let limit = i64::from(limit);
        let mut tx = self.read.begin().await?;
        let rows = match (kind, after) {
            (NeedKind::Changes, after) => {
                sqlx::query(page!("NOT g.deleted AND g.name > ?2 ORDER BY g.name LIMIT ?3"))
                    .bind(folder.0)
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            }
            (NeedKind::Deletes, None) => {
                sqlx::query(page!("g.deleted ORDER BY g.name DESC LIMIT ?2"))
                    .bind(folder.0)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            }
            (NeedKind::Deletes, Some(after)) => {
                sqlx::query(page!("g.deleted AND g.name < ?2 ORDER BY g.name DESC LIMIT ?3"))
                    .bind(folder.0)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        // Columns: the global entry (15) and its blocks, then the local one (15) and its blocks.
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let file = file_with_blocks_at(row, 0, 15)?;
            let local = match row.try_get::<Option<String>, _>(16)? {
                None => None,
                Some(_) => Some(file_with_blocks_at(row, 16, 31)?),
            };
            page.push((GlobalFile { file, holders: Vec::new() }, local));
        }
        // Deletes are applied from the global entry alone; changes are fetched from holders.
        if kind == NeedKind::Changes
            && let (Some(first), Some(last)) = (page.first(), page.last())
        {
            let (first, last) = (first.0.file.name.clone(), last.0.file.name.clone());
            let holders = sqlx::query(
                "SELECT g.name, d.device_id FROM globals g
                 JOIN files w ON w.folder_idx = g.folder_idx AND w.device_idx = g.device_idx AND w.name = g.name
                 JOIN files h ON h.folder_idx = g.folder_idx AND h.name = g.name AND h.device_idx <> 0
                  AND h.version = w.version AND NOT h.invalid
                 JOIN devices d ON d.idx = h.device_idx
                 WHERE g.folder_idx = ? AND g.need AND NOT g.deleted AND g.name >= ? AND g.name <= ?",
            )
            .bind(folder.0)
            .bind(first)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
            let at: std::collections::HashMap<String, usize> =
                page.iter().enumerate().map(|(i, (g, _))| (g.file.name.clone(), i)).collect();
            for row in &holders {
                let name: String = row.try_get(0)?;
                if let Some(&i) = at.get(&name) {
                    page[i].0.holders.push(device_id(row, 1, &name)?);
                }
            }
        }
        tx.commit().await?;
        Ok(page)
    }

    /// Up to `limit` names this device needs in the folder (changes and deletions), in name
    /// order.
    pub async fn needed_items(&self, folder: FolderIdx, limit: u32) -> Result<Vec<NeededItem>, DbError> {
        let rows = sqlx::query(
            "SELECT name, CASE WHEN deleted THEN 0 ELSE size END, deleted FROM globals
             WHERE folder_idx = ? AND need ORDER BY name LIMIT ?",
        )
        .bind(folder.0)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NeededItem {
                    path: r.try_get(0)?,
                    size: r.try_get::<i64, _>(1)?.max(0) as u64,
                    deleted: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Whether this device still has to download a file's content under `name`: what keeps a
    /// download's temporary file worth keeping.
    pub async fn needs_file(&self, folder: FolderIdx, name: &str) -> Result<bool, DbError> {
        let found = sqlx::query(
            "SELECT 1 FROM globals WHERE folder_idx = ? AND name = ? AND need AND NOT deleted AND type = 0",
        )
        .bind(folder.0)
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    /// The global version of `name`, blocks included, with the peers holding it; `None` when
    /// only this device has the name (or nobody does).
    pub async fn global_file(&self, folder: FolderIdx, name: &str) -> Result<Option<GlobalFile>, DbError> {
        let Some(row) = sqlx::query("SELECT device_idx FROM globals WHERE folder_idx = ? AND name = ?")
            .bind(folder.0)
            .bind(name)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let device: i64 = row.try_get(0)?;
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            ", ",
            blocks_of!("files"),
            " FROM files WHERE folder_idx = ? AND device_idx = ? AND name = ?"
        );
        let Some(row) =
            sqlx::query(sql).bind(folder.0).bind(device).bind(name).fetch_optional(&self.read).await?
        else {
            return Ok(None);
        };
        let file = file_with_blocks(&row, 15)?;
        let holders = self.holders(folder, name, &file.version).await?;
        Ok(Some(GlobalFile { file, holders }))
    }

    /// The peers whose entry for `name` is exactly `version` (and valid).
    pub async fn holders(
        &self,
        folder: FolderIdx,
        name: &str,
        version: &Vector,
    ) -> Result<Vec<DeviceId>, DbError> {
        let rows = sqlx::query(
            "SELECT d.device_id FROM files f JOIN devices d ON d.idx = f.device_idx
             WHERE f.folder_idx = ? AND f.name = ? AND f.device_idx <> 0 AND f.version = ? AND NOT f.invalid",
        )
        .bind(folder.0)
        .bind(name)
        .bind(version.to_bytes())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| device_id(r, 0, name)).collect()
    }

    /// A peer's entry for `name`, blocks not loaded.
    pub async fn remote_file(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
        name: &str,
    ) -> Result<Option<FileInfo>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE folder_idx = ? AND device_idx = ? AND name = ?"
        );
        let row =
            sqlx::query(sql).bind(folder.0).bind(device.0).bind(name).fetch_optional(&self.read).await?;
        row.map(|r| file_from_row(&r).map(|(f, _)| f)).transpose()
    }

    /// What the folder's global state holds: every name's global version, where names only
    /// this device has count as their local entry.
    pub async fn global_counts(&self, folder: FolderIdx) -> Result<FolderCounts, DbError> {
        // Global entries are never invalid (an invalid version is never global, and names only
        // this device has count only when valid), hence the constant.
        let sql = "SELECT type, deleted, 0, count(*), total(size) FROM (
                 SELECT type, deleted, size FROM globals WHERE folder_idx = ?1
                 UNION ALL
                 SELECT f.type, f.deleted, f.size FROM files f WHERE f.folder_idx = ?1 AND f.device_idx = 0
                     AND NOT f.invalid
                     AND NOT EXISTS (SELECT 1 FROM globals g WHERE g.folder_idx = ?1 AND g.name = f.name)
             ) GROUP BY type, deleted";
        let rows = sqlx::query(sql).bind(folder.0).fetch_all(&self.read).await?;
        FolderCounts::from_rows(&rows)
    }

    /// What this device still needs in the folder: exact, and cheap at any size (kept by
    /// triggers in the transactions that change `globals`, see migration 0006).
    pub async fn need_counts(&self, folder: FolderIdx) -> Result<NeedCounts, DbError> {
        let row = sqlx::query("SELECT items, bytes FROM need_counts WHERE folder_idx = ?")
            .bind(folder.0)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(NeedCounts::default()) };
        Ok(NeedCounts {
            items: row.try_get::<i64, _>(0)?.max(0) as u64,
            bytes: row.try_get::<i64, _>(1)?.max(0) as u64,
        })
    }

    /// [`Index::global_counts`] for progress reports: remembered between calls, exact when
    /// nothing was committed since, at most a second old (longer on a large folder) while the
    /// index changes (see `memo`).
    pub async fn recent_global_counts(&self, folder: FolderIdx) -> Result<FolderCounts, DbError> {
        let now = std::time::Instant::now();
        self.aggregates.get(&self.aggregates.global, folder, now, self.global_counts(folder)).await
    }

    /// [`Index::remote_need_counts`] for progress reports, remembered like
    /// [`Index::recent_global_counts`].
    pub async fn recent_remote_need_counts(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
    ) -> Result<NeedCounts, DbError> {
        let memo = &self.aggregates.remote_need;
        let now = std::time::Instant::now();
        self.aggregates.get(memo, (folder, device), now, self.remote_need_counts(folder, device)).await
    }

    /// What `device` lacks of the folder's global state, judged from the index it announced:
    /// names whose global version it does not have (deletes only where it has the file).
    pub async fn remote_need_counts(
        &self,
        folder: FolderIdx,
        device: DeviceIdx,
    ) -> Result<NeedCounts, DbError> {
        // The global entry of every name: the row of the device named in `globals`, or the
        // local row for names only this device has.
        let sql = "WITH g AS (
                 SELECT gl.name, w.version, w.deleted, w.size, w.invalid FROM globals gl
                     JOIN files w ON w.folder_idx = gl.folder_idx AND w.device_idx = gl.device_idx
                         AND w.name = gl.name
                     WHERE gl.folder_idx = ?1
                 UNION ALL
                 SELECT f.name, f.version, f.deleted, f.size, f.invalid FROM files f
                     WHERE f.folder_idx = ?1 AND f.device_idx = 0
                     AND NOT EXISTS (SELECT 1 FROM globals x WHERE x.folder_idx = ?1 AND x.name = f.name)
             )
             SELECT count(*), total(CASE WHEN g.deleted THEN 0 ELSE g.size END) FROM g
                 LEFT JOIN files d ON d.folder_idx = ?1 AND d.device_idx = ?2 AND d.name = g.name
                 WHERE NOT g.invalid AND (
                     (d.name IS NULL AND NOT g.deleted)
                     OR (d.name IS NOT NULL AND d.version <> g.version))";
        let row = sqlx::query(sql).bind(folder.0).bind(device.0).fetch_one(&self.read).await?;
        Ok(NeedCounts {
            items: row.try_get::<i64, _>(0)?.max(0) as u64,
            bytes: row.try_get::<f64, _>(1)?.max(0.0) as u64,
        })
    }

    /// Up to `limit` of the local changes `me` made in a receive-only folder, in reverse name
    /// order (what a directory holds before it) before `before` (`None` for the end). A local
    /// change is an entry `me` authored that no peer holds: Syncthing's "receive-only changed"
    /// flag, derived from the author and the version since local entries carry no flags.
    pub async fn receive_only_changes(
        &self,
        folder: FolderIdx,
        me: ShortId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReceiveOnlyChange>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            ", EXISTS (SELECT 1 FROM files p WHERE p.folder_idx = ?1 AND p.name = f.name
                 AND p.device_idx <> 0 AND NOT p.invalid), ",
            blocks_of!("f"),
            " FROM files f WHERE ",
            receive_only_change!(),
            " AND (?3 IS NULL OR f.name < ?3) ORDER BY f.name DESC LIMIT ?4"
        );
        let rows = sqlx::query(sql)
            .bind(folder.0)
            // Stored as the i64 with the same bits.
            .bind(me.0 as i64)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(ReceiveOnlyChange { file: file_with_blocks(row, 16)?, peer_has_name: row.try_get(15)? });
        }
        Ok(out)
    }

    /// How many local changes `me` made in a receive-only folder (see
    /// [`receive_only_changes`](Self::receive_only_changes)).
    pub async fn receive_only_change_count(&self, folder: FolderIdx, me: ShortId) -> Result<u64, DbError> {
        let sql = concat!("SELECT count(*) FROM files f WHERE ", receive_only_change!());
        let n: i64 = sqlx::query_scalar(sql).bind(folder.0).bind(me.0 as i64).fetch_one(&self.read).await?;
        Ok(n.max(0) as u64)
    }

    /// Records (or refreshes) a device that tried to connect without being configured, keeping
    /// only the [`MAX_PENDING_DEVICES`] seen most recently (anyone can make a new certificate).
    pub async fn add_pending_device(&self, pending: &PendingDevice) -> Result<(), DbError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO pending_devices (device_id, name, address, seen_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (device_id) DO UPDATE SET name = excluded.name, address = excluded.address,
             seen_at = excluded.seen_at",
        )
        .bind(pending.device.as_bytes().as_slice())
        .bind(&pending.name)
        .bind(&pending.address)
        .bind(pending.seen_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM pending_devices WHERE device_id NOT IN
             (SELECT device_id FROM pending_devices ORDER BY seen_at DESC, device_id LIMIT ?)",
        )
        .bind(MAX_PENDING_DEVICES as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Devices waiting for the user, most recent first.
    pub async fn pending_devices(&self) -> Result<Vec<PendingDevice>, DbError> {
        let rows = sqlx::query(
            "SELECT device_id, name, address, seen_at FROM pending_devices ORDER BY seen_at DESC",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingDevice {
                    device: device_id(r, 0, "pending device")?,
                    name: r.try_get(1)?,
                    address: r.try_get(2)?,
                    seen_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Forgets a pending device (accepted or dismissed).
    pub async fn remove_pending_device(&self, device: &DeviceId) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM pending_devices WHERE device_id = ?")
            .bind(device.as_bytes().as_slice())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records (or refreshes) a folder a device offered.
    pub async fn add_pending_folder(&self, pending: &PendingFolder) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO pending_folders (device_id, folder_id, label, seen_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (device_id, folder_id) DO UPDATE SET label = excluded.label,
             seen_at = excluded.seen_at",
        )
        .bind(pending.device.as_bytes().as_slice())
        .bind(&pending.folder)
        .bind(&pending.label)
        .bind(pending.seen_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Folders offered and not accepted, most recent first.
    pub async fn pending_folders(&self) -> Result<Vec<PendingFolder>, DbError> {
        let rows = sqlx::query(
            "SELECT device_id, folder_id, label, seen_at FROM pending_folders ORDER BY seen_at DESC",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingFolder {
                    device: device_id(r, 0, "pending folder")?,
                    folder: r.try_get(1)?,
                    label: r.try_get(2)?,
                    seen_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Forgets a folder offer (accepted or dismissed); `device` `None` forgets every device's.
    pub async fn remove_pending_folder(
        &self,
        folder: &str,
        device: Option<&DeviceId>,
    ) -> Result<(), DbError> {
        match device {
            Some(d) => {
                sqlx::query("DELETE FROM pending_folders WHERE folder_id = ? AND device_id = ?")
                    .bind(folder)
                    .bind(d.as_bytes().as_slice())
                    .execute(&self.write)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM pending_folders WHERE folder_id = ?")
                    .bind(folder)
                    .execute(&self.write)
                    .await?
            }
        };
        Ok(())
    }

    /// Records a conflict copy made of `name`.
    pub async fn record_conflict(&self, folder: FolderIdx, conflict: &Conflict) -> Result<(), DbError> {
        sqlx::query(
            "INSERT OR REPLACE INTO conflicts (folder_idx, copy_name, name, winner_by, at) VALUES (?, ?, ?, 0, ?)",
        )
        .bind(folder.0)
        .bind(&conflict.copy_name)
        .bind(&conflict.name)
        .bind(conflict.at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The conflict copies made in the folder, newest first.
    pub async fn conflicts(&self, folder: FolderIdx) -> Result<Vec<Conflict>, DbError> {
        let rows =
            sqlx::query("SELECT copy_name, name, at FROM conflicts WHERE folder_idx = ? ORDER BY at DESC")
                .bind(folder.0)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| Ok(Conflict { copy_name: r.try_get(0)?, name: r.try_get(1)?, at: r.try_get(2)? }))
            .collect()
    }
}

/// The device ID stored as 32 raw bytes in column `col`; `what` names the row in errors.
fn device_id(row: &sqlx::sqlite::SqliteRow, col: usize, what: &str) -> Result<DeviceId, DbError> {
    let id: Vec<u8> = row.try_get(col)?;
    DeviceId::try_from(id.as_slice())
        .map_err(|_| DbError::Corrupt { what: "device ID", name: what.to_owned() })
}

/// Deletes every entry of `device` in the folder and recomputes the global versions of their
/// names.
async fn drop_device_files(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    device: DeviceIdx,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "DELETE FROM files WHERE folder_idx = ? AND device_idx = ? RETURNING name, blocklist_hash",
    )
    .bind(folder.0)
    .bind(device.0)
    .fetch_all(&mut **tx)
    .await?;
    let mut names = Vec::with_capacity(rows.len());
    let mut lists = HashSet::new();
    for row in &rows {
        names.push(row.try_get::<String, _>(0)?);
        if let Some(h) = row.try_get::<Option<Vec<u8>>, _>(1)?
            && let Ok(h) = BlockHash::try_from(h.as_slice())
        {
            lists.insert(h);
        }
    }
    for h in &lists {
        collect_blocklist(tx, h).await?;
    }
    refresh_globals(tx, folder, names.iter().map(String::as_str)).await
}

/// Recomputes the global version of each name (after any device's entry for it changed).
pub(super) async fn refresh_globals<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), DbError> {
    let names: Vec<&str> = names.collect();
    for chunk in names.chunks(NAMES_PER_LOOKUP) {
        // Peers' entries first: a name no peer has (the common case while scanning an
        // unshared folder) needs no further reads.
        let remote = entries(tx, folder, false, chunk).await?;
        let mut gone: Vec<&str> = Vec::new();
        let mut shared: Vec<&str> = Vec::new();
        for &name in chunk {
            if remote.contains_key(name) { shared.push(name) } else { gone.push(name) }
        }
        if !gone.is_empty() {
            let mut q = QueryBuilder::<Db>::new("DELETE FROM globals WHERE folder_idx = ");
            q.push_bind(folder.0).push(" AND name IN (");
            let mut list = q.separated(", ");
            for name in &gone {
                list.push_bind(*name);
            }
            q.push(")");
            q.build().execute(&mut **tx).await?;
        }
        if shared.is_empty() {
            continue;
        }
        let local = entries(tx, folder, true, &shared).await?;
        let mut rows = Vec::with_capacity(shared.len());
        for name in &shared {
            let mut candidates: Vec<(i64, &FileInfo)> = Vec::new();
            if let Some(l) = local.get(*name).and_then(|v| v.first()) {
                candidates.push((LOCAL, &l.1));
            }
            for (device, f) in remote.get(*name).into_iter().flatten() {
                candidates.push((*device, f));
            }
            let files: Vec<&FileInfo> = candidates.iter().map(|(_, f)| *f).collect();
            let Some(i) = global::global_index(&files) else { continue };
            let (device, winner) = candidates[i];
            let have = local.get(*name).and_then(|v| v.first()).map(|(_, f)| f);
            rows.push((
                *name,
                device,
                winner.file_type,
                winner.deleted,
                winner.size,
                global::needs(have, winner),
            ));
        }
        for chunk in rows.chunks(FILE_ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT OR REPLACE INTO globals (folder_idx, name, device_idx, type, deleted, size, need) ",
            );
            q.push_values(chunk, |mut row, (name, device, ty, deleted, size, need)| {
                row.push_bind(folder.0)
                    .push_bind(*name)
                    .push_bind(*device)
                    .push_bind(ty.to_wire())
                    .push_bind(*deleted)
                    .push_bind(i64::try_from(*size).unwrap_or(i64::MAX))
                    .push_bind(*need);
            });
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Entries for `names`, this device's (`local`) or every peer's, grouped by name.
async fn entries(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    local: bool,
    names: &[&str],
) -> Result<BTreeMap<String, Vec<(i64, FileInfo)>>, DbError> {
    let mut q = QueryBuilder::<Db>::new(concat!(
        "SELECT device_idx, ",
        file_columns!(),
        " FROM files WHERE folder_idx = "
    ));
    q.push_bind(folder.0);
    q.push(if local { " AND device_idx = 0 AND name IN (" } else { " AND device_idx <> 0 AND name IN (" });
    let mut list = q.separated(", ");
    for name in names {
        list.push_bind(*name);
    }
    q.push(")");
    let mut out: BTreeMap<String, Vec<(i64, FileInfo)>> = BTreeMap::new();
    for row in q.build().fetch_all(&mut **tx).await? {
        let device: i64 = row.try_get(0)?;
        let (file, _) = super::codec::file_from_row_at(&row, 1)?;
        out.entry(file.name.clone()).or_default().push((device, file));
    }
    Ok(out)
}

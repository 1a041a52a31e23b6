//! Browsing a folder's global tree: the children of one directory, from every device's index
//! (not only what this device has), a page at a time in name order, with what a chooser needs
//! to show for each (type, size or subtree size, whether this device has it, which peers do).
//!
//! A page is a merge of two range reads (this device's entries by parent, peers' entries by
//! parent), so a directory with many children is never read whole; a directory's subtree size
//! is a range read over the names below it.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row as _, Sqlite as Db};

use super::{DbError, FolderIdx, Index};
use crate::bep::FileType;
use crate::identity::DeviceId;

/// Most children one page lists.
pub const MAX_BROWSE_PAGE: u32 = 1000;

/// The SQL listing the names of a page: children of `?2` after `?3`, at most `?4`. Both
/// halves are range reads on a parent index, merged in name order.
macro_rules! browse_names {
    () => {
        "SELECT name FROM files INDEXED BY files_local_by_parent
             WHERE folder_idx = ?1 AND parent = ?2 AND device_idx = 0 AND name > ?3
         UNION
         SELECT name FROM files INDEXED BY files_remote_by_parent
             WHERE folder_idx = ?1 AND parent = ?2 AND device_idx <> 0 AND name > ?3
         ORDER BY 1 LIMIT ?4"
    };
}

const BROWSE_NAMES: &str = browse_names!();

/// How SQLite runs [`BROWSE_NAMES`] (for the test that keeps it a range read).
#[cfg(test)]
pub(crate) const BROWSE_PLAN: &str = concat!("EXPLAIN QUERY PLAN ", browse_names!());

/// One child of a browsed directory, as the folder's global state has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowseEntry {
    /// Folder-relative name.
    pub name: String,
    pub file_type: FileType,
    /// A file's size; a directory's is the total of the files below it (global versions).
    pub size: u64,
    /// The global version is a deletion: the name is gone everywhere.
    pub deleted: bool,
    /// This device has the name (its entry is live and not ignored).
    pub local: bool,
    /// This device's entry for the name is recorded as ignored.
    pub ignored_here: bool,
    /// Peers whose entry is live and, for a file, the global version.
    pub holders: Vec<DeviceId>,
}

/// A page of a directory's children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrowsePage {
    pub entries: Vec<BrowseEntry>,
    /// Where the next page starts (the last name of this one), `None` when this one is the last.
    pub next: Option<String>,
}

impl Index {
    /// Up to `limit` (at most [`MAX_BROWSE_PAGE`]) children of directory `dir` (`""` for the
    /// folder root) that some device has an entry for, in name order after `after` (a full
    /// folder-relative name, `None` for the start).
    pub async fn browse(
        &self,
        folder: FolderIdx,
        dir: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<BrowsePage, DbError> {
        let limit = limit.clamp(1, MAX_BROWSE_PAGE);
        let mut tx = self.read.begin().await?;
        let names: Vec<String> = sqlx::query_scalar(BROWSE_NAMES)
            .bind(folder.0)
            .bind(dir)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        if names.is_empty() {
            return Ok(BrowsePage::default());
        }
        let next = (names.len() == limit as usize).then(|| names[names.len() - 1].clone());

        // Every device's entry for the page's names: the global one (named in `globals`, or
        // this device's for names only it has), this device's, and the peers holding it.
        let mut q = QueryBuilder::<Db>::new(
            "SELECT f.name, f.device_idx, f.type, f.size, f.deleted, f.invalid, g.device_idx, d.device_id,
                 f.version = (SELECT w.version FROM files w WHERE w.folder_idx = f.folder_idx
                     AND w.device_idx = coalesce(g.device_idx, 0) AND w.name = f.name)
             FROM files f
             LEFT JOIN globals g ON g.folder_idx = f.folder_idx AND g.name = f.name
             LEFT JOIN devices d ON d.idx = f.device_idx
             WHERE f.folder_idx = ",
        );
        q.push_bind(folder.0).push(" AND f.name IN (");
        let mut list = q.separated(", ");
        for name in &names {
            list.push_bind(name.as_str());
        }
        q.push(")");
        let rows = q.build().fetch_all(&mut *tx).await?;
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        let mut entries: Vec<Option<BrowseEntry>> = vec![None; names.len()];
        let mut local: Vec<(bool, bool)> = vec![(false, false); names.len()];
        let mut holders: Vec<Vec<DeviceId>> = vec![Vec::new(); names.len()];
        for (i, n) in names.iter().enumerate() {
            at.insert(n.as_str(), i);
        }
        for row in &rows {
            let name: String = row.try_get(0)?;
            let Some(&i) = at.get(name.as_str()) else { continue };
            let device: i64 = row.try_get(1)?;
            let ty: i32 = row.try_get(2)?;
            let file_type = FileType::from_wire(ty)
                .ok_or_else(|| DbError::Corrupt { what: "file type", name: name.clone() })?;
            let size = row.try_get::<i64, _>(3)?.max(0) as u64;
            let (deleted, invalid): (bool, bool) = (row.try_get(4)?, row.try_get(5)?);
            // The global entry: the device `globals` names, or this device's entry for a name
            // only it has (listed even when ignored here, so that it can be selected again).
            let global = match row.try_get::<Option<i64>, _>(6)? {
                Some(g) => g == device,
                None => device == 0,
            };
            if device == 0 {
                local[i] = (!deleted && !invalid, invalid);
            } else if !deleted && !invalid {
                let same_version: bool = row.try_get::<Option<bool>, _>(8)?.unwrap_or(false);
                if same_version || file_type == FileType::Directory {
                    let id: Vec<u8> = row.try_get(7)?;
                    let id = DeviceId::try_from(id.as_slice())
                        .map_err(|_| DbError::Corrupt { what: "device ID", name: name.clone() })?;
                    holders[i].push(id);
                }
            }
            if global {
                entries[i] = Some(BrowseEntry {
                    name,
                    file_type,
                    size,
                    deleted,
                    local: false,
                    ignored_here: false,
                    holders: Vec::new(),
                });
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for (i, entry) in entries.into_iter().enumerate() {
            // A name only peers have, each entry invalid, has no global version: nothing to offer.
            let Some(mut e) = entry else { continue };
            (e.local, e.ignored_here) = local[i];
            e.holders = std::mem::take(&mut holders[i]);
            if e.file_type == FileType::Directory && !e.deleted {
                e.size = subtree_bytes(&mut tx, folder, &e.name).await?;
            }
            out.push(e);
        }
        tx.commit().await?;
        Ok(BrowsePage { entries: out, next })
    }
}

impl Index {
    /// This device's files (and symlinks) at or below `path`, and their bytes: what a local
    /// copy of it holds.
    pub async fn local_subtree(&self, folder: FolderIdx, path: &str) -> Result<(u64, u64), DbError> {
        let (lower, upper) = (format!("{path}/"), format!("{path}0"));
        let row = sqlx::query(
            "SELECT count(*), total(size) FROM files WHERE folder_idx = ?1 AND device_idx = 0
                 AND NOT deleted AND NOT invalid AND type <> 1
                 AND (name = ?2 OR (name > ?3 AND name < ?4))",
        )
        .bind(folder.0)
        .bind(path)
        .bind(lower)
        .bind(upper)
        .fetch_one(&self.read)
        .await?;
        Ok((row.try_get::<i64, _>(0)?.max(0) as u64, row.try_get::<f64, _>(1)?.max(0.0) as u64))
    }
}

/// Bytes in the global versions of the files below directory `dir`.
async fn subtree_bytes(
    tx: &mut sqlx::Transaction<'_, Db>,
    folder: FolderIdx,
    dir: &str,
) -> Result<u64, DbError> {
    // Every name below `dir` sorts between "dir/" and "dir0" ('0' follows '/').
    let (lower, upper) = (format!("{dir}/"), format!("{dir}0"));
    let sql = "SELECT total(size) FROM (
             SELECT size FROM globals WHERE folder_idx = ?1 AND name > ?2 AND name < ?3
                 AND NOT deleted AND type = 0
             UNION ALL
             SELECT f.size FROM files f WHERE f.folder_idx = ?1 AND f.device_idx = 0
                 AND f.name > ?2 AND f.name < ?3 AND NOT f.deleted AND NOT f.invalid AND f.type = 0
                 AND NOT EXISTS (SELECT 1 FROM globals g WHERE g.folder_idx = ?1 AND g.name = f.name)
         )";
    let total: f64 =
        sqlx::query_scalar(sql).bind(folder.0).bind(lower).bind(upper).fetch_one(&mut **tx).await?;
    Ok(total.max(0.0) as u64)
}

//! Queries on files and blocks.

use std::collections::HashSet;

use sqlx::{QueryBuilder, Row as _, Sqlite, Sqlite as Db, Transaction};

use super::codec::{
    self, blocks_of, decode_blocks, encode_blocks, file_columns, file_from_row, file_with_blocks,
};
use super::{DbError, FolderIdx, Index};
use crate::bep::{BlockHash, FileInfo, FileType, blocklist_hash};

/// `files.device_idx` of this device's own entries (written as a literal `0` in SQL, where the
/// partial index `files_local_by_parent` needs to see it).
pub(super) const LOCAL: i64 = 0;

/// Rows per multi-row statement. Fixed sizes keep the SQL text (and so the prepared statement)
/// the same from batch to batch; each stays well under SQLite's 32766 bound parameters.
pub(super) const FILE_ROWS_PER_STATEMENT: usize = 256;
const BLOCK_ROWS_PER_STATEMENT: usize = 1024;
pub(super) const NAMES_PER_LOOKUP: usize = 512;

/// Where a block with a given hash can be read locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLocation {
    pub folder_id: String,
    pub name: String,
    pub offset: u64,
    pub size: u32,
}

/// A file the puller is about to put in place (see `migrations/0003_pull_intents.sql`): the
/// version and content it will record once the file is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullIntent {
    pub name: String,
    pub version: crate::bep::Vector,
    pub modified_by: crate::identity::ShortId,
    pub blocklist_hash: BlockHash,
}

/// What a folder's local index holds, for summaries and status: live entries that are not
/// ignored (invalid), and deletions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderCounts {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub deleted: u64,
    /// Bytes in those files.
    pub bytes: u64,
}

impl FolderCounts {
    /// Sums grouped rows of (type, deleted, invalid, count, total size).
    pub(super) fn from_rows(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Self, DbError> {
        let mut c = Self::default();
        for row in rows {
            let (ty, deleted, invalid): (i32, bool, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let n = row.try_get::<i64, _>(3)?.max(0) as u64;
            if deleted {
                c.deleted += n;
                continue;
            }
            // An invalid entry is a name ignored here: not what this device has (the puller
            // records names it never downloaded that way too).
            if invalid {
                continue;
            }
            match FileType::from_wire(ty) {
                Some(FileType::File) => {
                    c.files += n;
                    c.bytes += row.try_get::<f64, _>(4)?.max(0.0) as u64;
                }
                Some(FileType::Directory) => c.directories += n,
                Some(FileType::Symlink) => c.symlinks += n,
                None => {}
            }
        }
        Ok(c)
    }
}

impl Index {
    /// This device's entry for `name`, blocks included.
    pub async fn local_file(&self, folder: FolderIdx, name: &str) -> Result<Option<FileInfo>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            ", ",
            blocks_of!("files"),
            " FROM files WHERE folder_idx = ? AND device_idx = 0 AND name = ?"
        );
        let row = sqlx::query(sql).bind(folder.0).bind(name).fetch_optional(&self.read).await?;
        row.map(|r| file_with_blocks(&r, 15)).transpose()
    }

    /// This device's entry for `name` without its blocks. Serving a block request needs only
    /// the type, flags and size (the data's hash is checked against the request's); decoding a
    /// large file's block list for every 128 KiB block served cost more than reading the block.
    ///
    /// Remembered until the next commit (see `memo`): a peer downloading a large file asks for
    /// the same entry once per block.
    pub async fn local_file_head(&self, folder: FolderIdx, name: &str) -> Result<Option<FileInfo>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE folder_idx = ? AND device_idx = 0 AND name = ?"
        );
        let read = async {
            let row = sqlx::query(sql).bind(folder.0).bind(name).fetch_optional(&self.read).await?;
            Ok(row.map(|r| file_from_row(&r)).transpose()?.map(|(file, _)| file))
        };
        self.aggregates.head(folder, name, read).await
    }

    /// This device's entries directly inside directory `parent` (`""` for the folder root),
    /// sorted by name. Blocks are not loaded: this is what the scanner compares with the disk.
    ///
    /// The directory comes back as one row holding a JSON array: sqlx hands rows from its
    /// worker thread one at a time, and for the scanner's thousands of small rows per
    /// directory that hand-off, not SQLite, was most of the cost. The index is named because,
    /// without statistics, SQLite 3.51 prefers the (folder, device, name) index to save the
    /// sort and then reads the whole folder for every directory.
    pub async fn local_children(&self, folder: FolderIdx, parent: &str) -> Result<Vec<FileInfo>, DbError> {
        let sql = "SELECT json_group_array(json_array(name, type, size, permissions, no_permissions, \
             modified_s, modified_ns, modified_by, deleted, invalid, hex(version), sequence, block_size, \
             symlink_target)) FROM files INDEXED BY files_local_by_parent \
             WHERE folder_idx = ? AND parent = ? AND device_idx = 0";
        let json: String = sqlx::query_scalar(sql).bind(folder.0).bind(parent).fetch_one(&self.read).await?;
        let mut files = codec::files_from_json(&json, parent)?;
        files.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// Up to `limit` of this device's entries below directory `dir` (at any depth), in name
    /// order, starting after `after` (`None` for the start). Blocks are not loaded.
    pub async fn local_below(
        &self,
        folder: FolderIdx,
        dir: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<FileInfo>, DbError> {
        // Every name below `dir` sorts between "dir/" and "dir0" ('0' follows '/').
        let lower = format!("{dir}/");
        let upper = format!("{dir}0");
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE folder_idx = ? AND device_idx = 0
             AND name > ? AND name < ? ORDER BY name LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(folder.0)
            .bind(after.map_or(lower.as_str(), |a| a.max(lower.as_str())))
            .bind(upper)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| file_from_row(r).map(|(f, _)| f)).collect()
    }

    /// Up to `limit` of this device's live entries whose name holds `.sync-conflict-` (the
    /// candidates for conflict copies), in name order. Blocks are not loaded.
    pub async fn local_conflict_copies(
        &self,
        folder: FolderIdx,
        limit: u32,
    ) -> Result<Vec<FileInfo>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE folder_idx = ? AND device_idx = 0 AND NOT deleted
             AND instr(name, '.sync-conflict-') > 0 ORDER BY name LIMIT ?"
        );
        let rows = sqlx::query(sql).bind(folder.0).bind(i64::from(limit)).fetch_all(&self.read).await?;
        rows.iter().map(|r| file_from_row(r).map(|(f, _)| f)).collect()
    }

    /// Up to `limit` of this device's entries with a sequence above `since`, in sequence order,
    /// blocks included: what an index update to a peer carries.
    pub async fn local_since(
        &self,
        folder: FolderIdx,
        since: i64,
        limit: u32,
    ) -> Result<Vec<FileInfo>, DbError> {
        let sql = concat!(
            "SELECT ",
            file_columns!(),
            ", ",
            blocks_of!("files"),
            " FROM files WHERE folder_idx = ? AND device_idx = 0
             AND sequence > ? ORDER BY sequence LIMIT ?"
        );
        let rows =
            sqlx::query(sql).bind(folder.0).bind(since).bind(i64::from(limit)).fetch_all(&self.read).await?;
        rows.iter().map(|row| file_with_blocks(row, 15)).collect()
    }

    /// Counts of the folder's local entries: exact, and cheap at any size (kept by triggers in
    /// the transactions that change the entries, see migration 0006).
    pub async fn local_counts(&self, folder: FolderIdx) -> Result<FolderCounts, DbError> {
        let sql = "SELECT type, deleted, invalid, items, CAST(bytes AS REAL) FROM local_counts
             WHERE folder_idx = ?";
        let rows = sqlx::query(sql).bind(folder.0).fetch_all(&self.read).await?;
        FolderCounts::from_rows(&rows)
    }

    /// Local files holding a block with this hash (any folder): where the puller can copy it
    /// from instead of downloading it. At most `limit` places.
    pub async fn block_locations(&self, hash: &BlockHash, limit: u32) -> Result<Vec<BlockLocation>, DbError> {
        let sql = "SELECT fo.folder_id, f.name, b.offset, b.size FROM blocks b
             JOIN files f ON f.blocklist_hash = b.blocklist_hash
             JOIN folders fo ON fo.idx = f.folder_idx
             WHERE b.hash = ? AND f.device_idx = 0 AND NOT f.deleted AND NOT f.invalid
             LIMIT ?";
        let rows =
            sqlx::query(sql).bind(hash.as_slice()).bind(i64::from(limit)).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(BlockLocation {
                    folder_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    offset: r.try_get::<i64, _>(2)?.max(0) as u64,
                    size: r.try_get::<i64, _>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                })
            })
            .collect()
    }

    /// Which of `hashes` some local file (any folder) holds a block of: the only ones worth a
    /// [`Index::block_locations`] lookup. One statement per 1,024 hashes, where the puller used
    /// to make a lookup per block, nearly always finding nothing.
    pub async fn local_blocks_among(
        &self,
        hashes: &HashSet<BlockHash>,
    ) -> Result<HashSet<BlockHash>, DbError> {
        let mut found = HashSet::new();
        let hashes: Vec<&BlockHash> = hashes.iter().collect();
        for chunk in hashes.chunks(BLOCK_ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT DISTINCT b.hash FROM blocks b JOIN files f ON f.blocklist_hash = b.blocklist_hash
                 WHERE f.device_idx = 0 AND NOT f.deleted AND NOT f.invalid AND b.hash IN (",
            );
            let mut list = q.separated(", ");
            for h in chunk {
                list.push_bind(h.as_slice());
            }
            q.push(")");
            for row in q.build().fetch_all(&self.read).await? {
                let h: Vec<u8> = row.try_get(0)?;
                if let Ok(h) = BlockHash::try_from(h.as_slice()) {
                    found.insert(h);
                }
            }
        }
        Ok(found)
    }

    /// Notes that the puller is about to put each intent's content in place; each is
    /// forgotten when its name's local entry is next written (by the puller's record, or a
    /// scan). One transaction for all of them: the puller notes a page of needed files at once,
    /// where a transaction per file was a write to the WAL and a round trip to SQLite's thread
    /// for every small file.
    pub async fn note_pulls(&self, folder: FolderIdx, intents: &[PullIntent]) -> Result<(), DbError> {
        if intents.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        // Five parameters a row, under SQLite's limit on bound parameters (32,766).
        for chunk in intents.chunks(NAMES_PER_LOOKUP) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT OR REPLACE INTO pull_intents (folder_idx, name, version, modified_by, blocklist_hash) ",
            );
            q.push_values(chunk, |mut row, intent| {
                row.push_bind(folder.0)
                    .push_bind(intent.name.as_str())
                    .push_bind(intent.version.to_bytes())
                    .push_bind(intent.modified_by.0 as i64)
                    .push_bind(intent.blocklist_hash.to_vec());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the folder has any pull intent left (a pull was interrupted between putting a
    /// file in place and recording it): only then does a scan look them up.
    pub async fn has_pull_intents(&self, folder: FolderIdx) -> Result<bool, DbError> {
        let found = sqlx::query("SELECT 1 FROM pull_intents WHERE folder_idx = ? LIMIT 1")
            .bind(folder.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(found.is_some())
    }

    /// The puller's unrecorded intent for `name`, if any.
    pub async fn pull_intent(&self, folder: FolderIdx, name: &str) -> Result<Option<PullIntent>, DbError> {
        let row = sqlx::query(
            "SELECT version, modified_by, blocklist_hash FROM pull_intents WHERE folder_idx = ? AND name = ?",
        )
        .bind(folder.0)
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = || DbError::Corrupt { what: "pull intent", name: name.to_owned() };
        let version = crate::bep::Vector::from_bytes(&row.try_get::<Vec<u8>, _>(0)?).ok_or_else(corrupt)?;
        let blocklist_hash =
            BlockHash::try_from(row.try_get::<Vec<u8>, _>(2)?.as_slice()).map_err(|_| corrupt())?;
        Ok(Some(PullIntent {
            name: name.to_owned(),
            version,
            modified_by: crate::identity::ShortId(row.try_get::<i64, _>(1)? as u64),
            blocklist_hash,
        }))
    }

    /// Records local changes in one transaction (see [`LocalWriter::apply`]) and commits it.
    /// Returns the folder's new sequence.
    pub async fn apply_local(&self, folder: FolderIdx, files: &mut [FileInfo]) -> Result<i64, DbError> {
        let mut writer = self.local_writer(folder).await?;
        let sequence = writer.apply(files).await?;
        writer.commit().await?;
        Ok(sequence)
    }

    /// Opens a write transaction for recording local changes to `folder` batch by batch.
    /// Nothing is visible to readers until [`LocalWriter::commit`]; dropping the writer rolls
    /// every batch back. While it is open, other writers wait.
    pub async fn local_writer(&self, folder: FolderIdx) -> Result<LocalWriter, DbError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("SELECT sequence FROM folders WHERE idx = ?")
            .bind(folder.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(DbError::NoSuchFolder(folder))?;
        Ok(LocalWriter {
            tx,
            folder,
            sequence: row.try_get(0)?,
            aggregates: std::sync::Arc::clone(&self.aggregates),
        })
    }
}

/// An open transaction recording local changes to one folder (see [`Index::local_writer`]).
///
/// One transaction over several batches writes each index page it touches once per commit
/// rather than once per batch, which matters for the block-hash keyed tables: a batch of new
/// files touches their pages almost everywhere.
pub struct LocalWriter {
    tx: Transaction<'static, Sqlite>,
    folder: FolderIdx,
    sequence: i64,
    aggregates: std::sync::Arc<super::memo::Aggregates>,
}

impl LocalWriter {
    /// Records a batch: each file gets the folder's next sequence number (written back into
    /// `files`), its block list is stored once and indexed by block hash, and block lists no
    /// local file uses any more are dropped from the hash lookup. Returns the folder's sequence
    /// after the batch.
    pub async fn apply(&mut self, files: &mut [FileInfo]) -> Result<i64, DbError> {
        if files.is_empty() {
            return Ok(self.sequence);
        }
        let tx = &mut self.tx;
        let mut sequence = self.sequence;
        for f in files.iter_mut() {
            sequence += 1;
            f.sequence = sequence;
        }
        let replaced = old_blocklists(tx, self.folder, LOCAL, files).await?;
        let hashes: Vec<Option<BlockHash>> =
            files.iter().map(|f| (!f.blocks.is_empty()).then(|| blocklist_hash(&f.blocks))).collect();
        insert_blocklists(tx, files, &hashes, true).await?;
        upsert_files(tx, self.folder, LOCAL, files, &hashes).await?;
        forget_pull_intents(tx, self.folder, files).await?;
        super::remote::refresh_globals(tx, self.folder, files.iter().map(|f| f.name.as_str())).await?;
        sqlx::query("UPDATE folders SET sequence = ? WHERE idx = ?")
            .bind(sequence)
            .bind(self.folder.0)
            .execute(&mut **tx)
            .await?;
        let kept: HashSet<BlockHash> = hashes.iter().flatten().copied().collect();
        for old in replaced.difference(&kept) {
            collect_blocklist(tx, old).await?;
        }
        self.sequence = sequence;
        Ok(sequence)
    }

    /// Makes every batch applied so far durable and visible, at once.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        self.aggregates.committed();
        Ok(())
    }
}

/// The block lists the files being replaced use now.
pub(super) async fn old_blocklists(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    device: i64,
    files: &[FileInfo],
) -> Result<HashSet<BlockHash>, DbError> {
    let mut out = HashSet::new();
    for chunk in files.chunks(NAMES_PER_LOOKUP) {
        let mut q = QueryBuilder::<Db>::new("SELECT blocklist_hash FROM files WHERE folder_idx = ");
        q.push_bind(folder.0);
        q.push(" AND device_idx = ");
        q.push_bind(device);
        q.push(" AND blocklist_hash IS NOT NULL AND name IN (");
        let mut names = q.separated(", ");
        for f in chunk {
            names.push_bind(f.name.as_str());
        }
        q.push(")");
        for row in q.build().fetch_all(&mut **tx).await? {
            let h: Vec<u8> = row.try_get(0)?;
            if let Ok(h) = BlockHash::try_from(h.as_slice()) {
                out.insert(h);
            }
        }
    }
    Ok(out)
}

pub(super) async fn insert_blocklists(
    tx: &mut Transaction<'_, Sqlite>,
    files: &[FileInfo],
    hashes: &[Option<BlockHash>],
    local: bool,
) -> Result<(), DbError> {
    let lists: Vec<(&FileInfo, &BlockHash)> =
        files.iter().zip(hashes).filter_map(|(f, h)| h.as_ref().map(|h| (f, h))).collect();
    for chunk in lists.chunks(FILE_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Db>::new("INSERT OR IGNORE INTO blocklists (blocklist_hash, blocks) ");
        q.push_values(chunk, |mut row, (f, h)| {
            row.push_bind(h.as_slice()).push_bind(encode_blocks(&f.blocks));
        });
        q.build().execute(&mut **tx).await?;
    }
    if !local {
        return Ok(());
    }
    // Every block of every list, for the hash lookup; already-present rows are kept.
    let blocks = lists.iter().flat_map(|(f, h)| f.blocks.iter().enumerate().map(move |(i, b)| (*h, i, b)));
    let blocks: Vec<_> = blocks.collect();
    for chunk in blocks.chunks(BLOCK_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT OR IGNORE INTO blocks (hash, blocklist_hash, idx, offset, size) ",
        );
        q.push_values(chunk, |mut row, (h, i, b)| {
            row.push_bind(b.hash.as_slice())
                .push_bind(h.as_slice())
                .push_bind(*i as i64)
                .push_bind(b.offset as i64)
                .push_bind(i64::from(b.size));
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops the pull intents of names whose local entry is being written: what they announced is
/// recorded now, or superseded.
async fn forget_pull_intents(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    files: &[FileInfo],
) -> Result<(), DbError> {
    for chunk in files.chunks(NAMES_PER_LOOKUP) {
        let mut q = QueryBuilder::<Db>::new("DELETE FROM pull_intents WHERE folder_idx = ");
        q.push_bind(folder.0).push(" AND name IN (");
        let mut names = q.separated(", ");
        for f in chunk {
            names.push_bind(f.name.as_str());
        }
        q.push(")");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn upsert_files(
    tx: &mut Transaction<'_, Sqlite>,
    folder: FolderIdx,
    device: i64,
    files: &[FileInfo],
    hashes: &[Option<BlockHash>],
) -> Result<(), DbError> {
    let rows: Vec<_> = files.iter().zip(hashes).collect();
    for chunk in rows.chunks(FILE_ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO files (folder_idx, device_idx, sequence, name, parent, type, size, permissions, \
             no_permissions, modified_s, modified_ns, modified_by, deleted, invalid, version, block_size, \
             blocklist_hash, symlink_target) ",
        );
        q.push_values(chunk, |mut row, (f, h)| {
            row.push_bind(folder.0)
                .push_bind(device)
                .push_bind(f.sequence)
                .push_bind(f.name.as_str())
                .push_bind(f.parent())
                .push_bind(f.file_type.to_wire())
                .push_bind(i64::try_from(f.size).unwrap_or(i64::MAX))
                .push_bind(i64::from(f.permissions))
                .push_bind(f.no_permissions)
                .push_bind(f.modified_s)
                .push_bind(f.modified_ns)
                .push_bind(f.modified_by.0 as i64)
                .push_bind(f.deleted)
                .push_bind(f.invalid)
                .push_bind(f.version.to_bytes())
                .push_bind(i64::from(f.block_size))
                .push_bind(h.map(|h| h.to_vec()))
                .push_bind(f.symlink_target.as_str());
        });
        q.push(
            " ON CONFLICT (folder_idx, device_idx, name) DO UPDATE SET sequence = excluded.sequence, \
             type = excluded.type, size = excluded.size, permissions = excluded.permissions, \
             no_permissions = excluded.no_permissions, modified_s = excluded.modified_s, \
             modified_ns = excluded.modified_ns, modified_by = excluded.modified_by, \
             deleted = excluded.deleted, invalid = excluded.invalid, version = excluded.version, \
             block_size = excluded.block_size, blocklist_hash = excluded.blocklist_hash, \
             symlink_target = excluded.symlink_target",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops a block list's hash-lookup rows once no local file uses it, and the list itself once
/// no file (local or remote) does.
pub(super) async fn collect_blocklist(
    tx: &mut Transaction<'_, Sqlite>,
    hash: &BlockHash,
) -> Result<(), DbError> {
    let local_users =
        sqlx::query("SELECT EXISTS (SELECT 1 FROM files WHERE blocklist_hash = ? AND device_idx = 0)")
            .bind(hash.as_slice())
            .fetch_one(&mut **tx)
            .await?;
    if local_users.try_get::<bool, _>(0)? {
        return Ok(());
    }
    let Some(row) = sqlx::query("SELECT blocks FROM blocklists WHERE blocklist_hash = ?")
        .bind(hash.as_slice())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(());
    };
    let blocks = decode_blocks(&row.try_get::<Vec<u8>, _>(0)?)
        .ok_or_else(|| DbError::Corrupt { what: "block list", name: String::from("(garbage collection)") })?;
    // Delete by primary key, block by block: no secondary index on blocklist_hash is needed.
    for (i, b) in blocks.iter().enumerate() {
        sqlx::query("DELETE FROM blocks WHERE hash = ? AND blocklist_hash = ? AND idx = ?")
            .bind(b.hash.as_slice())
            .bind(hash.as_slice())
            .bind(i as i64)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "DELETE FROM blocklists WHERE blocklist_hash = ?1
         AND NOT EXISTS (SELECT 1 FROM files WHERE blocklist_hash = ?1)",
    )
    .bind(hash.as_slice())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

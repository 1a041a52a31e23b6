//! The block index: SQLite through sqlx. **The only crate that contains SQL**, and the only one
//! that depends on sqlx (`.ci/crate-graph.py` checks it).
//!
//! It owns the database file, its schema (`migrations/`, embedded at build time and applied on
//! open) and every query. Callers see folders, files and blocks, never rows or statements.
//!
//! Sizing: a folder may hold a million files and a hundred million blocks, so nothing here loads
//! a whole folder. Reads are per directory, per name or streamed; writes are batched into one
//! transaction of multi-row statements per call.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

mod browse;
mod codec;
mod files;
mod invites;
mod memo;
mod remote;

// The protocol's types, under the names the index's modules use for them.
use peerfold_proto::{bep, identity};

pub use browse::{BrowseEntry, BrowsePage, MAX_BROWSE_PAGE};
pub use files::{BlockLocation, FolderCounts, LocalWriter, PullIntent};
pub use invites::StoredInvite;
pub use remote::{
    Conflict, DeviceIdx, GlobalFile, MAX_PENDING_DEVICES, NeedCounts, NeedKind, NeededItem, PendingDevice,
    PendingFolder, ReceiveOnlyChange, RemoteIndex,
};

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

/// A folder's row number in the index; obtained from [`Index::register_folder`] or
/// [`Index::folder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FolderIdx(i64);

impl FolderIdx {
    /// A row number no folder has (SQLite numbers rows from 1): reads of a folder the index
    /// never recorded find nothing, without registering it.
    pub const NONE: FolderIdx = FolderIdx(-1);
}

/// Errors from the block index.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the index database {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the index database schema up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("index database query failed")]
    Query(#[from] sqlx::Error),
    #[error("the index database holds a malformed {what} for {name:?}")]
    Corrupt { what: &'static str, name: String },
    /// A folder row number whose rows were dropped (the folder was removed) or never made:
    /// what holds it must register the folder again, if it is still configured.
    #[error("the index holds no folder {0:?} (it was removed)")]
    NoSuchFolder(FolderIdx),
}

/// The migrations in `migrations/`, compiled into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Entries deleted per statement when a folder is dropped.
const DROP_PAGE: i64 = 10_000;

/// Reader connections. WAL mode lets them read while a write transaction is open.
const READERS: u32 = 4;
/// Page cache of the one writer connection, in KiB (SQLite's negative `cache_size`): batches of
/// random-key inserts (block hashes) touch pages all over the file, and a miss is a read. Most
/// of a daemon's memory at a million files (issue 21's 250 MB bound): 64 MiB here and 8 MiB per
/// reader scanned a million files no faster than these (19–24 s against 20–22 s, 100,000 small
/// files 2.9 s against 2.8 s) and took 110 MB instead of 69.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of each reader connection, in KiB. Readers walk one directory or page at a time.
const READER_CACHE_KIB: i64 = 4 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1000). Batches of random-key
/// inserts dirty pages all over the file; checkpointing less often copies each such page to the
/// database once per checkpoint instead of once per few transactions.
const WAL_CHECKPOINT_PAGES: u32 = 32768;

/// The block index of one Peerfold home.
///
/// SQLite allows one writer at a time; the index makes that explicit with a write pool of one
/// connection (with the large cache) and a pool of readers (with small ones), so memory is
/// bounded and a read never waits for a write connection.
#[derive(Clone, Debug)]
pub struct Index {
    read: SqlitePool,
    write: SqlitePool,
    aggregates: std::sync::Arc<memo::Aggregates>,
    /// The database file (`None` in memory): the puller keeps its disk from filling up.
    file: Option<std::sync::Arc<Path>>,
}

impl Index {
    /// Opens (creating if needed) the index at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        let opts = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        let open = async {
            let write = pool(opts.clone(), 1, WRITER_CACHE_KIB).await?;
            MIGRATOR.run(&write).await?;
            let read = pool(opts, READERS, READER_CACHE_KIB).await?;
            Ok(Self { read, write, aggregates: Default::default(), file: Some(path.into()) })
        };
        open.await.map_err(|e| match e {
            DbError::Query(source) => DbError::Open { path: path.to_owned(), source },
            e => e,
        })
    }

    /// Opens an existing index for reading only, beside whatever process may be writing it
    /// (WAL lets a reader see the last committed state while a writer works): no migrations,
    /// no folder registered, every write refused by SQLite. What `peerfold check` reads.
    pub async fn open_read_only(path: &Path) -> Result<Self, DbError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", (-READER_CACHE_KIB).to_string());
        let read = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|source| DbError::Open { path: path.to_owned(), source })?;
        Ok(Self { write: read.clone(), read, aggregates: Default::default(), file: Some(path.into()) })
    }

    /// An index in memory, for tests and dry runs. One connection serves reads and writes,
    /// since every connection to `:memory:` would be a different database.
    pub async fn open_in_memory() -> Result<Self, DbError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = pool(opts, 1, WRITER_CACHE_KIB).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { read: pool.clone(), write: pool, aggregates: Default::default(), file: None })
    }

    /// The database file, `None` for an index in memory.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// The folder's row number, registering the folder (with a fresh random index ID) if new.
    /// Only what runs a configured folder registers it (its task, `peerfold scan`, a
    /// connection sharing it); readers use [`Index::folder`].
    pub async fn register_folder(&self, folder_id: &str) -> Result<FolderIdx, DbError> {
        if let Some(idx) = self.aggregates.folder(folder_id) {
            return Ok(idx);
        }
        let idx = self.folder_row(folder_id).await?;
        self.aggregates.remember_folder(folder_id, idx);
        Ok(idx)
    }

    /// The folder's row number if the index has recorded the folder; never writes (what
    /// read-only paths such as `peerfold check` and status use).
    pub async fn folder(&self, folder_id: &str) -> Result<Option<FolderIdx>, DbError> {
        if let Some(idx) = self.aggregates.folder(folder_id) {
            return Ok(Some(idx));
        }
        let row = sqlx::query("SELECT idx FROM folders WHERE folder_id = ?")
            .bind(folder_id)
            .fetch_optional(&self.read)
            .await?;
        let idx = row.map(|r| r.try_get(0)).transpose()?.map(FolderIdx);
        if let Some(idx) = idx {
            self.aggregates.remember_folder(folder_id, idx);
        }
        Ok(idx)
    }

    /// The IDs of every folder the index holds rows for.
    pub async fn folder_ids(&self) -> Result<Vec<String>, DbError> {
        let rows =
            sqlx::query("SELECT folder_id FROM folders ORDER BY folder_id").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Deletes everything the index holds for the folder (a folder removed from the
    /// configuration), in one transaction: its row, this device's and peers' entries, global
    /// versions, remote index IDs, conflicts, pull intents, and the block lists only its files
    /// used. Returns false if the index had no such folder.
    pub async fn drop_folder(&self, folder_id: &str) -> Result<bool, DbError> {
        let mut tx = self.write.begin().await?;
        let Some(row) = sqlx::query("SELECT idx FROM folders WHERE folder_id = ?")
            .bind(folder_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let folder = FolderIdx(row.try_get(0)?);
        // A page of entries at a time, so a folder of millions of files never sits in memory;
        // each page's block lists are collected once their last user is gone.
        loop {
            let rows = sqlx::query(
                "DELETE FROM files WHERE idx IN (SELECT idx FROM files WHERE folder_idx = ? LIMIT ?)
                 RETURNING blocklist_hash",
            )
            .bind(folder.0)
            .bind(DROP_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut lists = std::collections::HashSet::new();
            for row in &rows {
                if let Some(h) = row.try_get::<Option<Vec<u8>>, _>(0)?
                    && let Ok(h) = crate::bep::BlockHash::try_from(h.as_slice())
                {
                    lists.insert(h);
                }
            }
            for h in &lists {
                files::collect_blocklist(&mut tx, h).await?;
            }
        }
        // The other tables' rows go with the folder's (ON DELETE CASCADE, foreign keys on).
        sqlx::query("DELETE FROM folders WHERE idx = ?").bind(folder.0).execute(&mut *tx).await?;
        tx.commit().await?;
        self.aggregates.forget_folder(folder_id, folder);
        self.aggregates.committed();
        Ok(true)
    }

    /// Deletes the rows of every folder not in `keep` (folders removed from the configuration
    /// while no engine ran, as Syncthing does on start); returns the IDs dropped.
    pub async fn drop_folders_except(&self, keep: &[&str]) -> Result<Vec<String>, DbError> {
        let mut dropped = Vec::new();
        for id in self.folder_ids().await? {
            if !keep.contains(&id.as_str()) && self.drop_folder(&id).await? {
                dropped.push(id);
            }
        }
        Ok(dropped)
    }

    /// How many rows of any table belong to the folder row `folder` (0 once it is dropped):
    /// for tests and diagnostics.
    pub async fn folder_row_count(&self, folder: FolderIdx) -> Result<u64, DbError> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM folders WHERE idx = ?1)
                  + (SELECT count(*) FROM files WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM globals WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM remote_indexes WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM conflicts WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM pull_intents WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM local_counts WHERE folder_idx = ?1)
                  + (SELECT count(*) FROM need_counts WHERE folder_idx = ?1)",
        )
        .bind(folder.0)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    /// How many block lists the index holds (each shared by every file with the same blocks):
    /// for tests and diagnostics.
    pub async fn blocklist_count(&self) -> Result<u64, DbError> {
        let row = sqlx::query("SELECT (SELECT count(*) FROM blocklists) + (SELECT count(*) FROM blocks)")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    async fn folder_row(&self, folder_id: &str) -> Result<FolderIdx, DbError> {
        if let Some(row) = sqlx::query("SELECT idx FROM folders WHERE folder_id = ?")
            .bind(folder_id)
            .fetch_optional(&self.read)
            .await?
        {
            return Ok(FolderIdx(row.try_get(0)?));
        }
        // A zero index ID means "none" in BEP, so never hand one out.
        let index_id = rand::random::<i64>().max(1);
        let row = sqlx::query(
            "INSERT INTO folders (folder_id, index_id) VALUES (?, ?)
             ON CONFLICT (folder_id) DO UPDATE SET folder_id = excluded.folder_id
             RETURNING idx",
        )
        .bind(folder_id)
        .bind(index_id)
        .fetch_optional(&self.write)
        .await?;
        // Seen once in CI with two callers registering the same folder at once: the upsert
        // returned no row. The row exists either way; read it on the writer's connection.
        let row = match row {
            Some(row) => row,
            None => {
                sqlx::query("SELECT idx FROM folders WHERE folder_id = ?")
                    .bind(folder_id)
                    .fetch_one(&self.write)
                    .await?
            }
        };
        Ok(FolderIdx(row.try_get(0)?))
    }

    /// Changes the index has committed so far: while it stays the same, every read would
    /// give the same answer (what a long download checks before reading its holders again).
    pub fn commits(&self) -> u64 {
        self.aggregates.commits()
    }

    /// The last sequence number this device gave to a change in the folder (0 when none).
    pub async fn folder_sequence(&self, folder: FolderIdx) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT sequence FROM folders WHERE idx = ?")
            .bind(folder.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(DbError::NoSuchFolder(folder))?;
        Ok(row.try_get(0)?)
    }

    /// This device's index ID for the folder (BEP delta indexes).
    pub async fn folder_index_id(&self, folder: FolderIdx) -> Result<u64, DbError> {
        let row = sqlx::query("SELECT index_id FROM folders WHERE idx = ?")
            .bind(folder.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(DbError::NoSuchFolder(folder))?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    /// The migrations that have been applied, oldest first (for diagnostics and tests).
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

/// A pool of `max` connections with the index's settings and a page cache of `cache_kib`.
async fn pool(opts: SqliteConnectOptions, max: u32, cache_kib: i64) -> Result<SqlitePool, DbError> {
    let opts = opts
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL: a crash can lose the last transactions but never corrupts the file; the
        // scanner finds anything lost on its next pass.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .pragma("cache_size", (-cache_kib).to_string())
        .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string())
        // Statement journals of the multi-row writes stay in memory: each statement is bounded
        // (see `files.rs`), and on disk they cost a write per touched page.
        .pragma("temp_store", "MEMORY");
    Ok(SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        // An in-memory database lives only as long as its connection.
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await?)
}

#[cfg(test)]
mod tests;

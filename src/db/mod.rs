//! The block index: SQLite through sqlx. **The only module that contains SQL.**
//!
//! It owns the database file, its schema (`migrations/`, embedded at build time and applied on
//! open) and every query. Callers see folders, files and blocks, never rows or statements.
//!
//! Sizing: a folder may hold a million files and a hundred million blocks, so nothing here loads
//! a whole folder. Reads are per directory, per name or streamed; writes are batched into one
//! transaction of multi-row statements per call.

mod codec;
mod files;
mod memo;
mod remote;

pub use files::{BlockLocation, FolderCounts, LocalWriter, PullIntent};
pub use remote::{
    Conflict, DeviceIdx, GlobalFile, MAX_PENDING_DEVICES, NeedCounts, NeedKind, NeededItem, PendingDevice,
    PendingFolder, ReceiveOnlyChange, RemoteIndex,
};

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

/// A folder's row number in the index; obtained from [`Index::folder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FolderIdx(i64);

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
}

/// The migrations in `migrations/`, compiled into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Reader connections. WAL mode lets them read while a write transaction is open.
const READERS: u32 = 4;
/// Page cache of the one writer connection, in KiB (SQLite's negative `cache_size`): batches of
/// random-key inserts (block hashes) touch pages all over the file, and a miss is a read.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Page cache of each reader connection, in KiB. Readers walk one directory or page at a time.
const READER_CACHE_KIB: i64 = 8 * 1024;

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
    pub async fn folder(&self, folder_id: &str) -> Result<FolderIdx, DbError> {
        if let Some(idx) = self.aggregates.folder(folder_id) {
            return Ok(idx);
        }
        let idx = self.folder_row(folder_id).await?;
        self.aggregates.remember_folder(folder_id, idx);
        Ok(idx)
    }

    /// The folder's row number if the index has ever recorded the folder; registers nothing.
    pub async fn existing_folder(&self, folder_id: &str) -> Result<Option<FolderIdx>, DbError> {
        let row = sqlx::query("SELECT idx FROM folders WHERE folder_id = ?")
            .bind(folder_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.map(FolderIdx))
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
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// This device's index ID for the folder (BEP delta indexes).
    pub async fn folder_index_id(&self, folder: FolderIdx) -> Result<u64, DbError> {
        let row = sqlx::query("SELECT index_id FROM folders WHERE idx = ?")
            .bind(folder.0)
            .fetch_one(&self.read)
            .await?;
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

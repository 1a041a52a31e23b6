-- The block index: every folder's files as this device and its peers announce them.
-- Append-only: a shipped migration is never edited (sqlx checks its checksum).

-- Folders known to the index. `sequence` is the last sequence number this device gave to a
-- change in the folder; `index_id` identifies this device's index for delta exchange (BEP).
CREATE TABLE folders (
    idx        INTEGER PRIMARY KEY,
    folder_id  TEXT    NOT NULL UNIQUE,
    sequence   INTEGER NOT NULL DEFAULT 0,
    index_id   INTEGER NOT NULL
) STRICT;

-- Remote devices, numbered so that file rows carry a small integer instead of 32 bytes.
-- Index 0 is reserved for this device and never stored here.
CREATE TABLE devices (
    idx        INTEGER PRIMARY KEY CHECK (idx > 0),
    device_id  BLOB    NOT NULL UNIQUE CHECK (length(device_id) = 32)
) STRICT;

-- What we hold of each remote device's index per folder: its index ID and the highest sequence
-- received, so that a reconnect asks only for what changed.
CREATE TABLE remote_indexes (
    folder_idx    INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    device_idx    INTEGER NOT NULL REFERENCES devices (idx) ON DELETE CASCADE,
    index_id      INTEGER NOT NULL,
    max_sequence  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (folder_idx, device_idx)
) STRICT, WITHOUT ROWID;

-- Block lists, stored once however many files (local or remote) share them.
-- `blocks` holds, per block in order, its size (u32 BE) and SHA-256 (32 bytes); offsets are the
-- running sum of sizes. `blocklist_hash` is SHA-256 over the block hashes. WITHOUT ROWID: a
-- rowid table with a BLOB key would be two B-trees, two random-key inserts per new list.
CREATE TABLE blocklists (
    blocklist_hash  BLOB NOT NULL PRIMARY KEY,
    blocks          BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- Every block of every block list some local file uses, keyed by its hash: the puller's
-- "where do I already have this block" lookup. Remote-only block lists have no rows here.
CREATE TABLE blocks (
    hash            BLOB    NOT NULL,
    blocklist_hash  BLOB    NOT NULL,
    idx             INTEGER NOT NULL,
    offset          INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    PRIMARY KEY (hash, blocklist_hash, idx)
) STRICT, WITHOUT ROWID;

-- One row per (folder, device, name): device_idx 0 is this device, others are peers' indexes in
-- the same shape, so later stages can compute the global state and what is needed in SQL.
-- Integers that are u64 on the wire (modified_by) are stored as their i64 bit pattern.
-- `blocklist_hash` names a row of `blocklists`; the writer inserts that row in the same
-- transaction. It is not a declared foreign key: the check is a random-key lookup per file
-- written, a large part of indexing many small files.
CREATE TABLE files (
    idx             INTEGER PRIMARY KEY,
    folder_idx      INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    device_idx      INTEGER NOT NULL,
    sequence        INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    parent          TEXT    NOT NULL,
    type            INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    permissions     INTEGER NOT NULL,
    no_permissions  INTEGER NOT NULL,
    modified_s      INTEGER NOT NULL,
    modified_ns     INTEGER NOT NULL,
    modified_by     INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    invalid         INTEGER NOT NULL,
    local_flags     INTEGER NOT NULL DEFAULT 0,
    version         BLOB    NOT NULL,
    block_size      INTEGER NOT NULL,
    blocklist_hash  BLOB,
    symlink_target  TEXT    NOT NULL DEFAULT '',
    UNIQUE (folder_idx, device_idx, name)
) STRICT;

-- Index exchange sends a device's entries in sequence order.
CREATE UNIQUE INDEX files_by_sequence ON files (folder_idx, device_idx, sequence);
-- The scanner compares one directory at a time with what is on disk, in name order.
CREATE INDEX files_local_by_parent ON files (folder_idx, parent, name) WHERE device_idx = 0;
-- From a block list to the files that use it (block reuse, garbage collection).
CREATE INDEX files_by_blocklist ON files (blocklist_hash) WHERE blocklist_hash IS NOT NULL;

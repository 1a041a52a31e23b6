-- Peers' indexes in use: the global version of each name, what this device needs, and what
-- peers asked of the user (devices wanting to connect, folders offered), and conflicts kept.
-- Append-only: a shipped migration is never edited (sqlx checks its checksum).

-- Peers' entries by name: the global version of a name is computed from every device's entry
-- for it, and the (folder, device, name) key cannot find "every device" without a scan.
-- Partial, so that scanning an unshared folder pays nothing for it.
CREATE INDEX files_remote_by_name ON files (folder_idx, name) WHERE device_idx <> 0;

-- The global version of every name that some peer has an entry for (a name only this device
-- has is its own global version and has no row). `device_idx` is a device holding the global
-- version, 0 when this device does; `need` is set when this device must act to reach it.
-- Kept up to date in the same transaction as every write to `files`.
CREATE TABLE globals (
    folder_idx  INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    device_idx  INTEGER NOT NULL,
    type        INTEGER NOT NULL,
    deleted     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    need        INTEGER NOT NULL,
    PRIMARY KEY (folder_idx, name)
) STRICT, WITHOUT ROWID;

-- What the puller walks, in name order (parents before children).
CREATE INDEX globals_needed ON globals (folder_idx, name) WHERE need;

-- Devices that connected without being configured, for the user to accept or dismiss.
CREATE TABLE pending_devices (
    device_id  BLOB    NOT NULL PRIMARY KEY CHECK (length(device_id) = 32),
    name       TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Folders a configured device offered that are not shared with it here.
CREATE TABLE pending_folders (
    device_id  BLOB    NOT NULL CHECK (length(device_id) = 32),
    folder_id  TEXT    NOT NULL,
    label      TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (device_id, folder_id)
) STRICT, WITHOUT ROWID;

-- Conflict copies this device made: the copy's name, the file it was taken from, and who
-- made the winning version.
CREATE TABLE conflicts (
    folder_idx   INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    copy_name    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    winner_by    INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (folder_idx, copy_name)
) STRICT, WITHOUT ROWID;

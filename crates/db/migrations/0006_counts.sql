-- Counts kept in the transactions that change them: what this device has of a folder, and
-- what it still needs. Status pages poll both at any moment (exact, always); counting the
-- rows each time cost ~100 ms per poll at 100k files, most of a syncing device's SQLite time.
-- Triggers keep them exact whatever statement writes `files` or `globals`, and whatever
-- connection settings it runs under (no reliance on `recursive_triggers`).
-- Append-only: a shipped migration is never edited (sqlx checks its checksum).

-- This device's entries (`files` rows with device_idx 0) by kind; `bytes` sums `size`.
CREATE TABLE local_counts (
    folder_idx  INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    type        INTEGER NOT NULL,
    deleted     INTEGER NOT NULL,
    invalid     INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (folder_idx, type, deleted, invalid)
) STRICT, WITHOUT ROWID;

INSERT INTO local_counts (folder_idx, type, deleted, invalid, items, bytes)
    SELECT folder_idx, type, deleted, invalid, count(*), sum(size) FROM files
    WHERE device_idx = 0 GROUP BY folder_idx, type, deleted, invalid;

-- An upsert's DO UPDATE fires the UPDATE trigger, not the INSERT one.
CREATE TRIGGER local_counts_insert AFTER INSERT ON files WHEN NEW.device_idx = 0 BEGIN
    INSERT INTO local_counts (folder_idx, type, deleted, invalid, items, bytes)
        VALUES (NEW.folder_idx, NEW.type, NEW.deleted, NEW.invalid, 1, NEW.size)
        ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER local_counts_delete AFTER DELETE ON files WHEN OLD.device_idx = 0 BEGIN
    UPDATE local_counts SET items = items - 1, bytes = bytes - OLD.size
        WHERE folder_idx = OLD.folder_idx AND type = OLD.type AND deleted = OLD.deleted
            AND invalid = OLD.invalid;
END;

-- Most rewrites of an entry (a new version of the same file) change none of the key, and
-- cost nothing here.
CREATE TRIGGER local_counts_update AFTER UPDATE ON files
    WHEN (OLD.device_idx = 0 OR NEW.device_idx = 0)
        AND (OLD.device_idx IS NOT NEW.device_idx OR OLD.folder_idx IS NOT NEW.folder_idx
            OR OLD.type IS NOT NEW.type OR OLD.deleted IS NOT NEW.deleted
            OR OLD.invalid IS NOT NEW.invalid OR OLD.size IS NOT NEW.size)
BEGIN
    UPDATE local_counts SET items = items - 1, bytes = bytes - OLD.size
        WHERE OLD.device_idx = 0 AND folder_idx = OLD.folder_idx AND type = OLD.type
            AND deleted = OLD.deleted AND invalid = OLD.invalid;
    INSERT INTO local_counts (folder_idx, type, deleted, invalid, items, bytes)
        SELECT NEW.folder_idx, NEW.type, NEW.deleted, NEW.invalid, 1, NEW.size
        WHERE NEW.device_idx = 0
        ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;

-- Names this device needs (`globals` rows with `need`); `bytes` counts a deletion as 0.
CREATE TABLE need_counts (
    folder_idx  INTEGER NOT NULL PRIMARY KEY REFERENCES folders (idx) ON DELETE CASCADE,
    items       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO need_counts (folder_idx, items, bytes)
    SELECT folder_idx, count(*), sum(CASE WHEN deleted THEN 0 ELSE size END) FROM globals
    WHERE need GROUP BY folder_idx;

-- `globals` is written with INSERT OR REPLACE, whose implicit delete fires no DELETE trigger
-- unless `recursive_triggers` is on: the row about to be replaced is taken off here instead.
CREATE TRIGGER need_counts_replaced BEFORE INSERT ON globals
    WHEN EXISTS (SELECT 1 FROM globals WHERE folder_idx = NEW.folder_idx AND name = NEW.name AND need)
BEGIN
    UPDATE need_counts SET items = items - 1,
            bytes = bytes - (SELECT CASE WHEN deleted THEN 0 ELSE size END FROM globals
                             WHERE folder_idx = NEW.folder_idx AND name = NEW.name)
        WHERE folder_idx = NEW.folder_idx;
END;

CREATE TRIGGER need_counts_insert AFTER INSERT ON globals WHEN NEW.need BEGIN
    INSERT INTO need_counts (folder_idx, items, bytes)
        VALUES (NEW.folder_idx, 1, CASE WHEN NEW.deleted THEN 0 ELSE NEW.size END)
        ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER need_counts_delete AFTER DELETE ON globals WHEN OLD.need BEGIN
    UPDATE need_counts SET items = items - 1,
            bytes = bytes - CASE WHEN OLD.deleted THEN 0 ELSE OLD.size END
        WHERE folder_idx = OLD.folder_idx;
END;

CREATE TRIGGER need_counts_update AFTER UPDATE ON globals
    WHEN OLD.need OR NEW.need BEGIN
    UPDATE need_counts SET items = items - 1,
            bytes = bytes - CASE WHEN OLD.deleted THEN 0 ELSE OLD.size END
        WHERE OLD.need AND folder_idx = OLD.folder_idx;
    INSERT INTO need_counts (folder_idx, items, bytes)
        SELECT NEW.folder_idx, 1, CASE WHEN NEW.deleted THEN 0 ELSE NEW.size END
        WHERE NEW.need
        ON CONFLICT DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
END;

-- What the puller is about to put in place, written before it touches the file and removed
-- when the name's local entry is next written. A crash between the puller's rename and its
-- index commit leaves the new content on disk with the index not knowing it: the scanner then
-- finds the content here and records it under the version that was pulled, instead of as a
-- new local change (which would have made a conflict copy, or undone a remote delete).
-- `blocklist_hash` is the pulled content's (SHA-256 over its block hashes).
CREATE TABLE pull_intents (
    folder_idx      INTEGER NOT NULL REFERENCES folders (idx) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    version         BLOB    NOT NULL,
    modified_by     INTEGER NOT NULL,
    blocklist_hash  BLOB    NOT NULL,
    PRIMARY KEY (folder_idx, name)
) STRICT, WITHOUT ROWID;

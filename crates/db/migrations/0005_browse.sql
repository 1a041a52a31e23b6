-- Browsing a folder's global tree one directory at a time (selective sync): the children of a
-- directory from every device's index, in name order, a page at a time. This device's entries
-- already have `files_local_by_parent`; this is the same for peers' entries, so that a page
-- is a range read on both however many children the directory has.
-- Append-only: a shipped migration is never edited (sqlx checks its checksum).
CREATE INDEX files_remote_by_parent ON files (folder_idx, parent, name) WHERE device_idx <> 0;

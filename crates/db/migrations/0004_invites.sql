-- Invitations this device made (`peerfold invite`): a joiner that proves it holds `secret`
-- (an HMAC bound to its own certificate, see SECURITY.md) is added as a device and the
-- `folders` (a JSON array of folder IDs) are shared with it. `uses_left` counts down; a row
-- past `expires_at` (Unix seconds) or at 0 uses is refused and kept, so the refusal can say why.
CREATE TABLE invites (
    id          BLOB    NOT NULL PRIMARY KEY,
    secret      BLOB    NOT NULL,
    folders     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

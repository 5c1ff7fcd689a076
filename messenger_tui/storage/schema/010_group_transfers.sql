-- Schema version 10: files and voice messages in groups (app/group_files.py). A transfer
-- belongs to a contact (1:1) or to a group (transfers.group_row), exactly one of them, like
-- a message (006). SQLite cannot drop NOT NULL from contact_id, so the table is rebuilt with
-- the same row ids and its index.
CREATE TABLE transfers_v10 (
    id              INTEGER PRIMARY KEY,
    message_row     INTEGER UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    contact_id      INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    direction       TEXT NOT NULL,
    status          TEXT NOT NULL,
    name            TEXT NOT NULL,
    mime_type       TEXT NOT NULL,
    size            INTEGER NOT NULL,
    path            TEXT,
    spool           TEXT,
    blob_id         BLOB,
    blob_size       INTEGER NOT NULL DEFAULT 0,
    done_bytes      INTEGER NOT NULL DEFAULT 0,
    state           BLOB,
    source_mtime_ns INTEGER,
    sha256          TEXT,
    duration_ms     INTEGER,
    waveform        BLOB,
    error           TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    thumbnail       BLOB,
    group_row       INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    CHECK ((contact_id IS NULL) != (group_row IS NULL))
);
INSERT INTO transfers_v10 (id, message_row, contact_id, direction, status, name, mime_type,
    size, path, spool, blob_id, blob_size, done_bytes, state, source_mtime_ns, sha256,
    duration_ms, waveform, error, created_at_ms, updated_at_ms, thumbnail)
    SELECT id, message_row, contact_id, direction, status, name, mime_type, size, path, spool,
    blob_id, blob_size, done_bytes, state, source_mtime_ns, sha256, duration_ms, waveform,
    error, created_at_ms, updated_at_ms, thumbnail FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_v10 RENAME TO transfers;
CREATE INDEX transfers_by_status ON transfers (status);

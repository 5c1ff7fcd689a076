-- Schema version 8: attachment transfers (app/transfers.py). One row per file sent or
-- received; the message row of the conversation links to it through message_row. Every
-- field a transfer needs to resume after a disconnect or a restart is here: the status, the
-- relay's blob id, the bytes done, the spool file and (sealed with the database) the key.
CREATE TABLE transfers (
    id              INTEGER PRIMARY KEY,
    message_row     INTEGER UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    direction       TEXT NOT NULL,               -- up | down
    status          TEXT NOT NULL,               -- core/attachments/transfer_states.py
    name            TEXT NOT NULL,               -- sanitised file name
    mime_type       TEXT NOT NULL,
    size            INTEGER NOT NULL,            -- the file's real size
    path            TEXT,                        -- the source (up) or the saved file (down)
    spool           TEXT,                        -- ciphertext spool file (both directions)
    blob_id         BLOB,                        -- the relay's id, once known
    blob_size       INTEGER NOT NULL DEFAULT 0,
    done_bytes      INTEGER NOT NULL DEFAULT 0,  -- of blob_size: uploaded or fetched
    state           BLOB,                        -- encryptor snapshot (up) or pointer (down)
    source_mtime_ns INTEGER,                     -- the source when sealing began (up)
    sha256          TEXT,                        -- of the saved file (down, when done)
    duration_ms     INTEGER,                     -- a voice message's length (up)
    waveform        BLOB,                        -- a voice message's bars, one byte each (up)
    error           TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX transfers_by_status ON transfers (status);

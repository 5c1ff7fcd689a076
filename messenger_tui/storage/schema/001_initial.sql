-- Schema version 1: contacts, messages (+FTS5), ratchet sessions, prekeys, outbox,
-- received-envelope dedupe, settings.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE contacts (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE COLLATE NOCASE,
    identity          BLOB NOT NULL UNIQUE,          -- Ed25519 public key (the address)
    added_at_ms       INTEGER NOT NULL,
    verified          INTEGER NOT NULL DEFAULT 0,     -- safety number checked by the user
    previous_identity BLOB,                           -- set when the key changed
    key_changed       INTEGER NOT NULL DEFAULT 0,     -- 1: sending blocked until accepted
    blocked           INTEGER NOT NULL DEFAULT 0,
    auto_added        INTEGER NOT NULL DEFAULT 0,     -- created by an incoming message
    announced_name    TEXT                            -- the name the contact gives itself
);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,               -- local display order
    contact_id     INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    message_id     BLOB NOT NULL,                     -- sender-chosen id (receipts name it)
    outgoing       INTEGER NOT NULL,
    kind           TEXT NOT NULL DEFAULT 'text',      -- text | notice
    body           TEXT NOT NULL,
    sent_at_ms     INTEGER NOT NULL,                  -- sender's clock
    received_at_ms INTEGER,                           -- local clock, incoming only
    state          TEXT NOT NULL,                     -- queued|sent|delivered|read|received|seen|error
    UNIQUE (contact_id, outgoing, message_id)
);
CREATE INDEX messages_by_contact ON messages (contact_id, id);

CREATE VIRTUAL TABLE messages_fts USING fts5 (body, content = 'messages', content_rowid = 'id');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TABLE sessions (
    peer          BLOB NOT NULL,
    base_key      BLOB NOT NULL,                      -- X3DH ephemeral key naming the session
    state         BLOB NOT NULL,                      -- serialized ratchet session
    active        INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (peer, base_key)
) WITHOUT ROWID;

CREATE TABLE signed_prekeys (
    id            INTEGER PRIMARY KEY,
    data          BLOB NOT NULL,                      -- serialized SignedPrekey (private part)
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE one_time_prekeys (
    id        INTEGER PRIMARY KEY,
    data      BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient     BLOB NOT NULL,
    envelope_id   BLOB NOT NULL UNIQUE,
    payload       BLOB NOT NULL,                      -- plaintext payload until sealed
    body          BLOB,                               -- sealed envelope, resent byte-identical
    message_row   INTEGER,                            -- messages.id of a text, for its state
    kind          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX outbox_by_recipient ON outbox (recipient, seq);

CREATE TABLE received_envelopes (
    sender         BLOB NOT NULL,
    envelope_id    BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sender, envelope_id)
) WITHOUT ROWID;

-- Base keys of every session accepted from a handshake: a handshake replayed after its
-- session left the archive is a duplicate, not a new session (and not a second message).
CREATE TABLE accepted_base_keys (
    base_key       BLOB PRIMARY KEY,
    peer           BLOB NOT NULL,
    accepted_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

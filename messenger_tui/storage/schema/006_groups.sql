-- Schema version 6: group chats (docs/protocol.md "Groups in the app").
-- A conversation is a contact or a group: messages.contact_id (1:1) or messages.group_row
-- (group), exactly one of them set. A group message also names its author
-- (messages.sender, an identity key; our own for outgoing). SQLite cannot drop NOT NULL from
-- a column, so the messages table is rebuilt with the same row ids (the FTS index keeps
-- pointing at them), indexes and triggers.

CREATE TABLE groups (
    id             INTEGER PRIMARY KEY,
    group_id       BLOB NOT NULL UNIQUE,          -- 16 random bytes chosen by the creator
    name           TEXT NOT NULL,                 -- the membership head's name (a cache)
    log            BLOB NOT NULL,                 -- serialized membership GroupLog
    sending_key    BLOB,                          -- our SendingSenderKey; NULL: start one
    rotate         INTEGER NOT NULL DEFAULT 0,    -- 1: a member went; new key before sending
    pending        BLOB,                          -- held group messages (PendingGroupMessages)
    send_seq       INTEGER NOT NULL DEFAULT 0,    -- our last GroupText seq in this group
    is_member      INTEGER NOT NULL DEFAULT 1,    -- 0: we left or were removed
    muted          INTEGER NOT NULL DEFAULT 0,
    dropped        INTEGER NOT NULL DEFAULT 0,    -- group messages dropped (non-members, bad)
    created_at_ms  INTEGER NOT NULL
);

-- The members at the head, with what we know of them.
CREATE TABLE group_members (
    group_row   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    identity    BLOB NOT NULL,
    admin       INTEGER NOT NULL DEFAULT 0,
    name        TEXT,                             -- the name it gives itself in the group
    key_sent    INTEGER,                          -- key id of our sender key queued to it
    PRIMARY KEY (group_row, identity)
) WITHOUT ROWID;

-- Other members' sender keys (serialized SenderKeyRecord), one record per (group, sender).
CREATE TABLE group_sender_keys (
    group_row   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    sender      BLOB NOT NULL,
    record      BLOB NOT NULL,
    PRIMARY KEY (group_row, sender)
) WITHOUT ROWID;

-- Group messages waiting for the relay: sealed once with our sender key, uploaded once
-- (SendMulti) to the recipients still listed in group_outbox_to. A recipient is not sent a
-- row before the pairwise outbox rows queued to it before the row (its sender key, the
-- membership change) were stored: after_outbox_seq.
CREATE TABLE group_outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_row        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    envelope_id      BLOB NOT NULL UNIQUE,
    body             BLOB NOT NULL,
    message_row      INTEGER,
    after_outbox_seq INTEGER NOT NULL,
    created_at_ms    INTEGER NOT NULL
);
CREATE TABLE group_outbox_to (
    seq        INTEGER NOT NULL REFERENCES group_outbox(seq) ON DELETE CASCADE,
    identity   BLOB NOT NULL,
    PRIMARY KEY (seq, identity)
) WITHOUT ROWID;

CREATE TABLE messages_v6 (
    id             INTEGER PRIMARY KEY,
    contact_id     INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    message_id     BLOB NOT NULL,
    outgoing       INTEGER NOT NULL,
    kind           TEXT NOT NULL DEFAULT 'text',
    body           TEXT NOT NULL,
    sent_at_ms     INTEGER NOT NULL,
    received_at_ms INTEGER,
    state          TEXT NOT NULL,
    pos            INTEGER NOT NULL DEFAULT 0,
    seq            INTEGER,
    group_row      INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    sender         BLOB,
    CHECK ((contact_id IS NULL) != (group_row IS NULL)),
    UNIQUE (contact_id, outgoing, message_id)
);
INSERT INTO messages_v6 (id, contact_id, message_id, outgoing, kind, body, sent_at_ms,
    received_at_ms, state, pos, seq)
    SELECT id, contact_id, message_id, outgoing, kind, body, sent_at_ms, received_at_ms, state,
    pos, seq FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v6 RENAME TO messages;
CREATE INDEX messages_by_contact ON messages (contact_id, id);
CREATE INDEX messages_by_position ON messages (contact_id, pos);
CREATE INDEX messages_unread_incoming ON messages (contact_id, pos)
    WHERE outgoing = 0 AND kind = 'text' AND state = 'received';
CREATE UNIQUE INDEX messages_group_unique ON messages (group_row, sender, outgoing, message_id)
    WHERE group_row IS NOT NULL;
CREATE INDEX messages_by_group_position ON messages (group_row, pos) WHERE group_row IS NOT NULL;
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- Per-member state of our own group messages (delivered, read).
CREATE TABLE group_receipts (
    message_row INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member      BLOB NOT NULL,
    state       TEXT NOT NULL,                    -- delivered | read
    PRIMARY KEY (message_row, member)
) WITHOUT ROWID;

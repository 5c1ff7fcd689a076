-- Schema version 7: disappearing messages (core/disappearing.py).
-- disappearing_timers: each conversation's timer, a versioned register (the highest
-- (version, author) wins). ``conversation`` is a conversation key: 'contact:<contacts.id>' for a
-- 1:1 conversation (other kinds of conversation use their own prefix). No row: off, version 0.
-- messages.expire_after_s: the timer a message was sent or received under (NULL: none);
-- messages.expires_at_ms: when it is purged (NULL: not counting: no timer, or not read yet).
-- The FTS5 index deletes for real ('secure-delete'): a purged message leaves no token behind
-- (without it FTS5 records a deletion beside the old entry until segments merge).

CREATE TABLE disappearing_timers (
    conversation  TEXT PRIMARY KEY,
    seconds       INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    author        BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER disappearing_timers_contact_gone AFTER DELETE ON contacts BEGIN
    DELETE FROM disappearing_timers WHERE conversation = 'contact:' || old.id;
END;

ALTER TABLE messages ADD COLUMN expire_after_s INTEGER;
ALTER TABLE messages ADD COLUMN expires_at_ms INTEGER;
CREATE INDEX messages_expiring ON messages (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

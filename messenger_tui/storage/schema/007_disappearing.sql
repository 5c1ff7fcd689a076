-- Schema version 7: disappearing messages (core/disappearing.py).
-- disappearing_timers: each conversation's timer, a versioned register (the highest
-- (version, author) wins). ``conversation`` is a conversation key: 'contact:<contacts.id>' for a
-- 1:1 conversation (other kinds of conversation use their own prefix). No row: off, version 0.
-- messages.expire_after_s: the timer a message was stored under (NULL: none), set at insert;
-- messages.expires_at_ms: when it is purged (NULL: not counting: no timer, or not read yet).
--
-- Messages stored under a timer are indexed in their own full-text index, messages_fts_timed,
-- which deletes for real ('secure-delete': a purged message leaves no token behind; without it
-- FTS5 records a deletion beside the old entry until segments merge). It holds only the live
-- timed messages, so that costs little; on the main index, with every message ever kept, a
-- secure delete costs ~10 ms per message at 100,000 messages (docs/performance.md), so it
-- stays off there and the triggers route each row to its index.

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

CREATE VIRTUAL TABLE messages_fts_timed USING fts5 (
    body, content = 'messages', content_rowid = 'id'
);
INSERT INTO messages_fts_timed (messages_fts_timed, rank) VALUES ('secure-delete', 1);

DROP TRIGGER messages_ai;
DROP TRIGGER messages_ad;
CREATE TRIGGER messages_ai AFTER INSERT ON messages WHEN new.expire_after_s IS NULL BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages WHEN old.expire_after_s IS NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_timed_ai AFTER INSERT ON messages
WHEN new.expire_after_s IS NOT NULL BEGIN
    INSERT INTO messages_fts_timed (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_timed_ad AFTER DELETE ON messages
WHEN old.expire_after_s IS NOT NULL BEGIN
    INSERT INTO messages_fts_timed (messages_fts_timed, rowid, body)
    VALUES ('delete', old.id, old.body);
END;

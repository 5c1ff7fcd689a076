-- Schema version 5: unread incoming texts found by a seek, not a scan.
-- Opening a conversation marks its unread incoming texts read (Messages.unread_incoming). With
-- only the (contact_id, pos) index that query visited every row of the conversation: 24 MiB of
-- pages for 100,000 messages, which SQLCipher decrypts again on every open because they do not
-- fit the page cache (39 ms plain, 85 ms encrypted; docs/performance.md). A partial index holds
-- just the unread ones, normally a handful.

CREATE INDEX messages_unread_incoming ON messages (contact_id, pos)
    WHERE outgoing = 0 AND kind = 'text' AND state = 'received';

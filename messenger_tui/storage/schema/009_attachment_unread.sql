-- Schema version 9: received files and voice messages count as unread (and notify) like texts,
-- and an image's thumbnail is kept with its transfer.
-- The partial index of unread incoming messages (005, rebuilt by 006) held texts only, so a
-- received file was never unread; it now holds every kind a person sends.
DROP INDEX IF EXISTS messages_unread_incoming;
CREATE INDEX messages_unread_incoming ON messages (contact_id, pos)
    WHERE outgoing = 0 AND kind IN ('text', 'attachment', 'voice') AND state = 'received';
-- The thumbnail carried in an image's pointer (a small JPEG, at most 16 KiB): for a sent image
-- the one made at send (a received one's is inside its pointer, in ``state``).
ALTER TABLE transfers ADD COLUMN thumbnail BLOB;

-- Schema version 3: conversation order that does not depend on arrival.
-- messages.pos is the display order within a conversation (it was the row id): a new message
-- goes after the conversation's last one; an incoming message that arrives after ones its
-- sender sent later (a lower messages.seq) is placed before them. messages.seq is the
-- sender's per-conversation sequence from the encrypted payload (NULL: none, an old sender).
-- contacts.send_seq is the last sequence this profile gave a message to that contact.

ALTER TABLE messages ADD COLUMN pos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN seq INTEGER;
UPDATE messages SET pos = id * 1048576;
CREATE INDEX messages_by_position ON messages (contact_id, pos);
ALTER TABLE contacts ADD COLUMN send_seq INTEGER NOT NULL DEFAULT 0;

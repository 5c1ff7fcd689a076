-- Schema version 2: mute per contact (no toast, bell or desktop notification for their
-- messages; unread counts still update).

ALTER TABLE contacts ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;

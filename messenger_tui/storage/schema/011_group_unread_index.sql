-- Schema version 11: a group's unread incoming messages found by a seek, not a scan.
-- Every burst of a group backlog counts the group's unread messages (its read model) and, with
-- the group on screen, marks them read (GroupMessages.unread_count, unread). Both walked every
-- row of the group through messages_by_group_position and read each row to test its state:
-- 5,000 rows a burst, the longest event-loop stall of a 5,000-message backlog
-- (docs/performance.md). A partial index holds just the unread ones, normally a handful.
CREATE INDEX messages_group_unread ON messages (group_row, id)
    WHERE group_row IS NOT NULL AND outgoing = 0 AND kind IN ('text', 'attachment', 'voice')
    AND state = 'received';

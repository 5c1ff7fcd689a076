"""Groups: the membership log, sender keys, held messages, the group outbox, group messages
and per-member receipts (schema 006). Blobs are the core structs, serialized by the app.

One repository made of three parts along the tables' seams: the roster
(:mod:`.group_roster`), the outbox (:mod:`.group_outbox`) and the messages with their
receipts (:mod:`.group_messages`); the row types are in :mod:`.group_rows`."""

from __future__ import annotations

from messenger_tui.storage.db import Database
from messenger_tui.storage.group_messages import GroupMessages
from messenger_tui.storage.group_outbox import GroupOutbox
from messenger_tui.storage.group_roster import GroupRoster
from messenger_tui.storage.group_rows import GroupMessageRow, GroupOutboxRow, GroupRow, MemberRow

__all__ = ["GroupMessageRow", "GroupOutboxRow", "GroupRow", "Groups", "MemberRow"]


class Groups(GroupRoster, GroupOutbox, GroupMessages):
    """Call the writing methods inside ``store.db.transaction()``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.sender_keys_version = 0

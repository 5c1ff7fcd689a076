"""Disappearing messages in the database: each conversation's timer, message deadlines, purge.

A purge deletes the expired messages (their FTS5 index follows by trigger, and deletes for
real: schema 007 keeps timed messages in ``messages_fts_timed`` with ``secure-delete``), the
outbox rows still holding their plaintext, and
then writes the WAL back into the database file and truncates it, so that with
``secure_delete`` (freed pages and cells zeroed: :mod:`messenger_tui.storage.db`) no byte of an
expired message is left in any file of the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from messenger_tui.core.disappearing import OFF, TimerSetting
from messenger_tui.storage.db import Database


def contact_conversation(contact_id: int) -> str:
    """The conversation key of the 1:1 conversation with a contact."""
    return f"contact:{contact_id}"


def group_conversation(group_row: int) -> str:
    """The conversation key of a group (its local row id)."""
    return f"group:{group_row}"


@dataclass(frozen=True)
class Purged:
    """What one purge removed: message row ids by contact id (1:1 conversations) and by group
    row id (groups)."""

    rows: dict[int, list[int]]
    groups: dict[int, list[int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.rows.values()) + sum(
            len(ids) for ids in self.groups.values()
        )


class Expiry:
    def __init__(self, db: Database) -> None:
        self._db = db

    def timer(self, conversation: str) -> TimerSetting:
        """The conversation's timer (:data:`OFF` when nobody ever set it)."""
        row = self._db.execute(
            "SELECT seconds, version, author FROM disappearing_timers WHERE conversation = ?",
            (conversation,),
        ).fetchone()
        if row is None:
            return OFF
        return TimerSetting(version=int(row[1]), author=bytes(row[2]), seconds=int(row[0]))

    def set_timer(self, conversation: str, setting: TimerSetting, now_ms: int) -> None:
        self._db.execute(
            "INSERT INTO disappearing_timers (conversation, seconds, version, author, "
            "updated_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation) DO UPDATE SET "
            "seconds = excluded.seconds, version = excluded.version, author = excluded.author, "
            "updated_at_ms = excluded.updated_at_ms",
            (conversation, setting.seconds, setting.version, setting.author, now_ms),
        )

    def set_deadline(self, row_id: int, expires_at_ms: int) -> None:
        """Start a message's countdown: it is purged at ``expires_at_ms``. (The timer it is
        stored under, ``expire_after_s``, is given to ``Messages.insert``.)"""
        self._db.execute(
            "UPDATE messages SET expires_at_ms = ? WHERE id = ?", (expires_at_ms, row_id)
        )

    def start_at_read(self, row_ids: list[int], read_ms: int) -> None:
        """Incoming messages were shown: those stored under a timer start counting now (a
        deadline already set is kept)."""
        self._db.executemany(
            "UPDATE messages SET expires_at_ms = ? + expire_after_s * 1000 WHERE id = ? "
            "AND expire_after_s > 0 AND expires_at_ms IS NULL",
            [(read_ms, i) for i in row_ids],
        )

    def earliest(self) -> int | None:
        """The next deadline of any message (an index seek)."""
        row = self._db.execute(
            "SELECT min(expires_at_ms) FROM messages WHERE expires_at_ms IS NOT NULL"
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def purge(self, now_ms: int, *, limit: int = -1) -> Purged:
        """Delete the messages whose deadline passed, the ``limit`` earliest (-1: all), with
        their FTS entries and any outbox row holding them, in one transaction; then checkpoint
        the WAL (TRUNCATE). Returns what went."""
        rows: dict[int, list[int]] = {}
        groups: dict[int, list[int]] = {}
        with self._db.transaction():
            gone = self._db.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                "WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ? "
                "ORDER BY expires_at_ms LIMIT ?) RETURNING id, contact_id, group_row",
                (now_ms, limit),
            ).fetchall()
            for row_id, contact_id, group_row in gone:
                if contact_id is not None:
                    rows.setdefault(int(contact_id), []).append(int(row_id))
                else:
                    groups.setdefault(int(group_row), []).append(int(row_id))
            if gone:
                ids = [(int(r[0]),) for r in gone]
                self._db.executemany("DELETE FROM outbox WHERE message_row = ?", ids)
                # a group message still waiting for the relay goes too (as a 1:1 one does)
                self._db.executemany("DELETE FROM group_outbox WHERE message_row = ?", ids)
        if gone:
            self.checkpoint()
        return Purged(rows, groups)

    def checkpoint(self) -> None:
        """Write the WAL back and truncate it to zero bytes: the old page images in it (which
        held the deleted rows) are gone from disk."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

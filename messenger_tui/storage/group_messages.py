"""Group messages, their full-text search and per-member receipts: the message part of
:class:`~messenger_tui.storage.groups.Groups`."""

from __future__ import annotations

from typing import Any

from messenger_tui.core.message_states import MessageState
from messenger_tui.storage.db import Database, OperationalError
from messenger_tui.storage.group_rows import MESSAGE_COLS, GroupMessageRow, message_from_sql
from messenger_tui.storage.messages import (
    FTS_INDEXES,
    MATCH_END,
    MATCH_START,
    OUTGOING_ORDER,
    POS_GAP,
    SNIPPET_TOKENS,
)


class GroupMessages:
    """Group rows of ``messages`` and the rows of ``group_receipts``."""

    _db: Database

    # ------------------------------------------------------------ messages

    def insert_message(
        self,
        row_id: int,
        sender: bytes,
        message_id: bytes,
        *,
        outgoing: bool,
        body: str,
        sent_at_ms: int,
        state: MessageState,
        received_at_ms: int | None = None,
        kind: str = "text",
        seq: int | None = None,
        expire_after_s: int | None = None,
    ) -> GroupMessageRow | None:
        """Insert a group message (after the group's last); None if already stored.
        ``expire_after_s``: the disappearing-message timer it is stored under (as
        ``Messages.insert``)."""
        # One statement (a backlog stores thousands): the position after the group's last,
        # nothing when the (group, sender, direction, id) is stored already.
        r = self._db.execute(
            "INSERT INTO messages (group_row, sender, message_id, outgoing, kind, body, "
            "sent_at_ms, received_at_ms, state, pos, seq, expire_after_s) "
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "coalesce((SELECT max(pos) FROM messages WHERE group_row = ?), 0) + ?, ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM messages WHERE group_row = ? AND sender = ? "
            "AND outgoing = ? AND message_id = ?) RETURNING id, pos",
            (
                row_id,
                sender,
                message_id,
                int(outgoing),
                kind,
                body,
                sent_at_ms,
                received_at_ms,
                state,
                row_id,
                POS_GAP,
                seq,
                expire_after_s or None,
                row_id,
                sender,
                int(outgoing),
                message_id,
            ),
        ).fetchone()
        if r is None:
            return None
        # the row as inserted (no read back: this runs once per message of a backlog)
        return GroupMessageRow(
            id=int(r[0]),
            group_row=row_id,
            sender=sender,
            message_id=message_id,
            outgoing=outgoing,
            kind=kind,
            body=body,
            sent_at_ms=sent_at_ms,
            received_at_ms=received_at_ms,
            state=state,
            pos=int(r[1]),
        )

    def message(self, message_row: int) -> GroupMessageRow | None:
        r = self._db.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE id = ? AND group_row IS NOT NULL",
            (message_row,),
        ).fetchone()
        return message_from_sql(r) if r else None

    def message_seq(self, message_row: int) -> int:
        """A message's place in its sender's order (0: none)."""
        r = self._db.execute("SELECT seq FROM messages WHERE id = ?", (message_row,)).fetchone()
        return int(r[0]) if r and r[0] is not None else 0

    def message_count(self, row_id: int) -> int:
        """Rows of the group's conversation (messages and notices)."""
        r = self._db.execute("SELECT COUNT(*) FROM messages WHERE group_row = ?", (row_id,))
        return int(r.fetchone()[0])

    def history(self, row_id: int, limit: int = 50) -> list[GroupMessageRow]:
        rows = self._db.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE group_row = ? ORDER BY pos DESC LIMIT ?",
            (row_id, limit),
        ).fetchall()
        return [message_from_sql(r) for r in reversed(rows)]

    def unread(self, row_id: int | None = None) -> list[GroupMessageRow]:
        sql = (
            f"SELECT {MESSAGE_COLS} FROM messages WHERE group_row IS NOT NULL AND outgoing = 0 "
            "AND kind IN ('text', 'attachment', 'voice') AND state = 'received'"
        )
        params: tuple[int, ...] = ()
        if row_id is not None:
            sql += " AND group_row = ?"
            params = (row_id,)
        rows = self._db.execute(sql + " ORDER BY id", params).fetchall()
        return [message_from_sql(r) for r in rows]

    def unread_count(self, row_id: int) -> int:
        """How many of :meth:`unread` there are for one group (without loading them)."""
        r = self._db.execute(
            "SELECT COUNT(*) FROM messages WHERE group_row = ? AND outgoing = 0 "
            "AND kind IN ('text', 'attachment', 'voice') AND state = 'received'",
            (row_id,),
        )
        return int(r.fetchone()[0])

    def outgoing_rows(self, row_id: int, message_ids: list[bytes]) -> dict[bytes, int]:
        """Our own messages in the group with these ids: id -> message row."""
        found: dict[bytes, int] = {}
        for mid in message_ids:
            r = self._db.execute(
                "SELECT id FROM messages WHERE group_row = ? AND outgoing = 1 AND message_id = ?",
                (row_id, mid),
            ).fetchone()
            if r is not None:
                found[mid] = int(r[0])
        return found

    def search(self, query: str, limit: int = 100) -> list[GroupMessageRow]:
        """Group messages matching an FTS5 query (quoted by the caller), newest first."""
        return [row for row, _snippet in self.search_snippets(query, limit=limit)]

    def search_snippets(
        self, query: str, *, group_row: int | None = None, limit: int = 100
    ) -> list[tuple[GroupMessageRow, str]]:
        """Group messages matching an FTS5 query (quoted by the caller: ``fts_query``), in
        both full-text indexes (messages under a disappearing timer are in the timed one),
        newest first, each with a snippet around the match (the terms between
        :data:`~messenger_tui.storage.messages.MATCH_START` and ``MATCH_END``)."""
        columns = ", ".join("m." + c.strip() for c in MESSAGE_COLS.split(","))
        rows: list[tuple[Any, ...]] = []
        for index in FTS_INDEXES:
            sql = (
                f"SELECT {columns}, snippet({index}, 0, ?, ?, '…', ?) FROM {index} "
                f"JOIN messages m ON m.id = {index}.rowid WHERE {index} MATCH ? "
                "AND m.group_row IS NOT NULL"
            )
            params: list[object] = [MATCH_START, MATCH_END, SNIPPET_TOKENS, query]
            if group_row is not None:
                sql += " AND m.group_row = ?"
                params.append(group_row)
            sql += " ORDER BY m.id DESC LIMIT ?"
            params.append(limit)
            try:
                rows.extend(self._db.execute(sql, tuple(params)).fetchall())
            except OperationalError:  # defensive: the query is quoted, this should not be
                return []
        rows.sort(key=lambda r: int(r[0]), reverse=True)
        return [(message_from_sql(r[:-1]), str(r[-1])) for r in rows[:limit]]

    # ------------------------------------------------------------ receipts

    def advance_receipt(self, message_row: int, member: bytes, state: MessageState) -> bool:
        """Record ``member``'s delivered/read state of our message; never backwards."""
        r = self._db.execute(
            "SELECT state FROM group_receipts WHERE message_row = ? AND member = ?",
            (message_row, member),
        ).fetchone()
        if r is not None and OUTGOING_ORDER.get(str(r[0]), 0) >= OUTGOING_ORDER[state]:
            return False
        self._db.execute(
            "INSERT INTO group_receipts (message_row, member, state) VALUES (?, ?, ?) "
            "ON CONFLICT (message_row, member) DO UPDATE SET state = excluded.state",
            (message_row, member, state),
        )
        return True

    def receipts(self, message_row: int) -> dict[bytes, str]:
        rows = self._db.execute(
            "SELECT member, state FROM group_receipts WHERE message_row = ?", (message_row,)
        ).fetchall()
        return {bytes(r[0]): str(r[1]) for r in rows}

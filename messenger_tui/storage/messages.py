"""Messages of all conversations (one conversation per contact) and their delivery state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.core.message_states import MessageState, is_message_state
from messenger_tui.storage.db import Database, OperationalError

#: Outgoing states in the order they advance; a receipt never moves a message backwards.
OUTGOING_ORDER = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
#: Distance between the positions of messages stored one after the other: room for a late
#: message between them (halved each time one is placed in the same gap; then the tail moves).
POS_GAP = 1 << 20
#: How many of a conversation's newest messages a late incoming message may move back past.
#: Relay refusals and retries make a message late by at most one send window (512); the bound
#: stops a peer's low ``seq`` from burying a new message deep in the history.
REORDER_WINDOW = 2000


@dataclass(frozen=True)
class MessageRow:
    id: int
    contact_id: int
    message_id: bytes
    outgoing: bool
    kind: str
    body: str
    sent_at_ms: int
    received_at_ms: int | None
    state: MessageState
    #: Display order within the conversation (see :meth:`Messages.insert`).
    pos: int = 0
    #: The sender's per-conversation sequence (None: the sender did not give one).
    seq: int | None = None


_COLUMNS = (
    "id, contact_id, message_id, outgoing, kind, body, sent_at_ms, received_at_ms, state, pos, seq"
)
_M_COLUMNS = ", ".join("m." + c.strip() for c in _COLUMNS.split(","))
#: Marks around the matched terms in :meth:`Messages.search_text` snippets.
MATCH_START = "\x02"
MATCH_END = "\x03"
#: Tokens of context around the match in a snippet.
SNIPPET_TOKENS = 16
#: The full-text indexes searched: every message's, and (schema 007) the one of messages
#: stored under a disappearing-message timer, which deletes for real.
FTS_INDEXES = ("messages_fts", "messages_fts_timed")


def fts_query(text: str) -> str | None:
    """A safe FTS5 query for what a user typed: every word becomes a quoted phrase (so FTS5
    operators and special characters such as ``" * ( ) : ^ -`` or ``AND``/``NEAR`` are plain
    text), all words must occur, and the last one matches as a prefix (search as you type).
    None when there is nothing to search for."""
    words = text.split()
    if not words:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    if not text[-1].isspace():
        quoted[-1] += "*"
    return " ".join(quoted)


#: The position of a paging anchor (a message row id). For a row id that is not in the
#: conversation (deleted, or a "newest" sentinel above every id): the position of the last
#: message stored before it, so paging still means "before/after that point".
_ANCHOR = (
    "(SELECT coalesce((SELECT pos FROM messages WHERE id = ? AND contact_id = ?), "
    "(SELECT coalesce(max(pos), 0) FROM messages WHERE contact_id = ? AND id < ?)))"
)


def _anchor_args(contact_id: int, row_id: int) -> tuple[int, int, int, int]:
    return (row_id, contact_id, contact_id, row_id)


def _row(r: tuple[Any, ...]) -> MessageRow:
    return MessageRow(
        id=int(r[0]),
        contact_id=int(r[1]),
        message_id=bytes(r[2]),
        outgoing=bool(r[3]),
        kind=str(r[4]),
        body=str(r[5]),
        sent_at_ms=int(r[6]),
        received_at_ms=int(r[7]) if r[7] is not None else None,
        state=r[8] if is_message_state(r[8]) else "error",
        pos=int(r[9]),
        seq=int(r[10]) if r[10] is not None else None,
    )


class Messages:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(
        self,
        contact_id: int,
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
    ) -> MessageRow | None:
        """Insert; returns None if this (contact, direction, id) is already stored.
        ``expire_after_s``: the disappearing-message timer it is stored under (its deadline is
        set by :class:`~messenger_tui.storage.expiry.Expiry`; it is indexed for search apart,
        in the index that deletes for real: schema 007).

        The message goes after the conversation's last one, except an incoming one with a
        sender sequence ``seq`` that arrives after messages its sender sent later (a higher
        ``seq``, among the newest :data:`REORDER_WINDOW`): it is placed just before the first
        of those, where it belongs in the sender's order. Call inside a transaction."""
        if self._db.execute(
            "SELECT 1 FROM messages WHERE contact_id = ? AND outgoing = ? AND message_id = ?",
            (contact_id, int(outgoing), message_id),
        ).fetchone():
            return None
        pos = self._position(contact_id, None if outgoing else seq)
        cur = self._db.execute(
            "INSERT INTO messages (contact_id, message_id, outgoing, kind, body, "
            "sent_at_ms, received_at_ms, state, pos, seq, expire_after_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                contact_id,
                message_id,
                int(outgoing),
                kind,
                body,
                sent_at_ms,
                received_at_ms,
                state,
                pos,
                seq,
                expire_after_s or None,
            ),
        )
        return self.by_id(int(cur.lastrowid or 0))

    def _position(self, contact_id: int, seq: int | None) -> int:
        """Where a new message goes: after the last one, or (a late incoming message with
        sender sequence ``seq``) just before the first newer-sequenced one in the window."""
        last = self._db.execute(
            "SELECT max(pos) FROM messages WHERE contact_id = ?", (contact_id,)
        ).fetchone()[0]
        if last is None:
            return POS_GAP
        if seq is None:
            return int(last) + POS_GAP
        newest = self._db.execute(
            "SELECT seq FROM messages WHERE contact_id = ? AND outgoing = 0 AND seq IS NOT NULL "
            "ORDER BY pos DESC LIMIT 1",
            (contact_id,),
        ).fetchone()
        if newest is None or int(newest[0]) < seq:
            return int(last) + POS_GAP  # the usual case: in order
        successor = self._db.execute(
            "SELECT min(pos) FROM (SELECT pos, seq, outgoing FROM messages WHERE contact_id = ? "
            "ORDER BY pos DESC LIMIT ?) WHERE outgoing = 0 AND seq > ?",
            (contact_id, REORDER_WINDOW, seq),
        ).fetchone()[0]
        if successor is None:
            return int(last) + POS_GAP
        after = int(successor)
        before_row = self._db.execute(
            "SELECT max(pos) FROM messages WHERE contact_id = ? AND pos < ?", (contact_id, after)
        ).fetchone()[0]
        before = int(before_row) if before_row is not None else 0
        if after - before < 2:
            # No room left in this gap: move the tail up by one gap.
            self._db.execute(
                "UPDATE messages SET pos = pos + ? WHERE contact_id = ? AND pos >= ?",
                (POS_GAP, contact_id, after),
            )
            after += POS_GAP
        return (before + after) // 2

    def by_id(self, row_id: int) -> MessageRow | None:
        r = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE id = ? AND contact_id IS NOT NULL", (row_id,)
        ).fetchone()  # a group's row is storage/groups.py's
        return _row(r) if r else None

    def history(
        self, contact_id: int, *, limit: int = 50, before_id: int | None = None
    ) -> list[MessageRow]:
        """The newest ``limit`` messages before message row ``before_id`` in display order,
        oldest first (one page)."""
        if before_id is None:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE contact_id = ? ORDER BY pos DESC LIMIT ?",
                (contact_id, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE contact_id = ? AND pos < "
                f"{_ANCHOR} + 1 - (SELECT count(*) FROM messages WHERE id = ? AND contact_id = ?) "
                "ORDER BY pos DESC LIMIT ?",
                (contact_id, *_anchor_args(contact_id, before_id), before_id, contact_id, limit),
            ).fetchall()
        return [_row(r) for r in reversed(rows)]

    def history_after(self, contact_id: int, after_id: int, *, limit: int = 50) -> list[MessageRow]:
        """The oldest ``limit`` messages after message row ``after_id`` in display order,
        oldest first (the next page)."""
        return self._from(contact_id, after_id, limit, inclusive=False)

    def _from(
        self, contact_id: int, row_id: int, limit: int, *, inclusive: bool
    ) -> list[MessageRow]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE contact_id = ? AND pos "
            f"{'>=' if inclusive else '>'} {_ANCHOR} ORDER BY pos LIMIT ?",
            (contact_id, *_anchor_args(contact_id, row_id), limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def history_around(self, contact_id: int, row_id: int, *, limit: int = 50) -> list[MessageRow]:
        """A page of about ``limit`` messages with ``row_id`` in the middle, oldest first:
        where a search result opens. Empty if the row is not in this conversation."""
        before = self.history(contact_id, limit=max(1, limit // 2), before_id=row_id)
        after = self._from(contact_id, row_id, max(1, limit - len(before)), inclusive=True)
        if not after or after[0].id != row_id:
            return []
        return before + after

    def set_state(self, row_id: int, state: MessageState) -> None:
        self._db.execute("UPDATE messages SET state = ? WHERE id = ?", (state, row_id))

    def advance_outgoing(
        self, contact_id: int, message_ids: list[bytes], state: MessageState
    ) -> list[int]:
        """Move own messages forward to ``state`` (never backwards); returns changed row ids."""
        rank = OUTGOING_ORDER[state]
        lower = [s for s, r in OUTGOING_ORDER.items() if r < rank]
        changed: list[int] = []
        marks = ",".join("?" * len(lower))
        for mid in message_ids:
            rows = self._db.execute(
                f"UPDATE messages SET state = ? WHERE contact_id = ? AND outgoing = 1 "
                f"AND message_id = ? AND state IN ({marks}) RETURNING id",
                (state, contact_id, mid, *lower),
            ).fetchall()
            changed.extend(int(r[0]) for r in rows)
        return changed

    def advance_outgoing_row(self, row_id: int, state: MessageState) -> bool:
        """Move one own message forward to ``state``; False if it was already further."""
        rank = OUTGOING_ORDER[state]
        lower = [s for s, r in OUTGOING_ORDER.items() if r < rank]
        marks = ",".join("?" * len(lower))
        cur = self._db.execute(
            f"UPDATE messages SET state = ? WHERE id = ? AND state IN ({marks})",
            (state, row_id, *lower),
        )
        return int(cur.rowcount) > 0

    def unread_incoming(self, contact_id: int) -> list[MessageRow]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE contact_id = ? AND outgoing = 0 "
            "AND kind IN ('text', 'attachment', 'voice') AND state = 'received' ORDER BY pos",
            (contact_id,),
        ).fetchall()
        return [_row(r) for r in rows]

    def mark_seen_if_unread(self, row_id: int) -> bool:
        """Mark one incoming message seen; False if it was not unread."""
        cur = self._db.execute(
            "UPDATE messages SET state = 'seen' WHERE id = ? AND outgoing = 0 "
            "AND state = 'received'",
            (row_id,),
        )
        return int(cur.rowcount) > 0

    def mark_seen(self, row_ids: list[int]) -> None:
        self._db.executemany(
            "UPDATE messages SET state = 'seen' WHERE id = ?", [(i,) for i in row_ids]
        )

    def search(
        self, query: str, *, contact_id: int | None = None, limit: int = 50
    ) -> list[MessageRow]:
        """Full-text search (FTS5 syntax), newest first."""
        rows: list[tuple[Any, ...]] = []
        for index in FTS_INDEXES:
            sql = (
                f"SELECT {_M_COLUMNS} FROM {index} "
                f"JOIN messages m ON m.id = {index}.rowid WHERE {index} MATCH ?"
            )
            params: list[object] = [query]
            if contact_id is not None:
                sql += " AND m.contact_id = ?"
                params.append(contact_id)
            else:
                sql += " AND m.contact_id IS NOT NULL"  # group messages: storage/groups.py
            sql += " ORDER BY m.id DESC LIMIT ?"
            params.append(limit)
            rows.extend(self._db.execute(sql, tuple(params)).fetchall())
        rows.sort(key=lambda r: int(r[0]), reverse=True)
        return [_row(r) for r in rows[:limit]]

    def search_text(
        self, text: str, *, contact_id: int | None = None, limit: int = 100
    ) -> list[tuple[MessageRow, str]]:
        """Search for what a user typed (see :func:`fts_query`; never an FTS5 syntax error),
        newest first: each matching message with a snippet around the match, the matched
        terms between :data:`MATCH_START` and :data:`MATCH_END`."""
        query = fts_query(text)
        if query is None:
            return []
        rows: list[tuple[Any, ...]] = []
        for index in FTS_INDEXES:
            sql = (
                f"SELECT {_M_COLUMNS}, snippet({index}, 0, ?, ?, '…', ?) FROM {index} "
                f"JOIN messages m ON m.id = {index}.rowid WHERE {index} MATCH ?"
            )
            params: list[object] = [MATCH_START, MATCH_END, SNIPPET_TOKENS, query]
            if contact_id is not None:
                sql += " AND m.contact_id = ?"
                params.append(contact_id)
            else:
                sql += " AND m.contact_id IS NOT NULL"  # group messages: storage/groups.py
            sql += " ORDER BY m.id DESC LIMIT ?"
            params.append(limit)
            try:
                rows.extend(self._db.execute(sql, tuple(params)).fetchall())
            except OperationalError:  # defensive: the query is quoted, this should not be
                return []
        rows.sort(key=lambda r: int(r[0]), reverse=True)
        return [(_row(r[:-1]), str(r[-1])) for r in rows[:limit]]

    def count(self, contact_id: int) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM messages WHERE contact_id = ?", (contact_id,)
            ).fetchone()[0]
        )

"""Groups: the membership log, sender keys, held messages, the group outbox, group messages
and per-member receipts (schema 006). Blobs are the core structs, serialized by the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.core.message_states import MessageState, is_message_state
from messenger_tui.storage.db import Database, OperationalError
from messenger_tui.storage.messages import (
    FTS_INDEXES,
    MATCH_END,
    MATCH_START,
    OUTGOING_ORDER,
    POS_GAP,
    SNIPPET_TOKENS,
)


@dataclass(frozen=True)
class GroupRow:
    id: int
    group_id: bytes
    name: str
    log: bytes
    sending_key: bytes | None
    rotate: bool
    pending: bytes | None
    send_seq: int
    is_member: bool
    muted: bool
    dropped: int


@dataclass(frozen=True)
class MemberRow:
    identity: bytes
    admin: bool
    name: str | None
    key_sent: int | None


@dataclass(frozen=True)
class GroupMessageRow:
    id: int
    group_row: int
    sender: bytes
    message_id: bytes
    outgoing: bool
    kind: str
    body: str
    sent_at_ms: int
    received_at_ms: int | None
    state: MessageState
    pos: int


@dataclass(frozen=True)
class GroupOutboxRow:
    seq: int
    group_row: int
    envelope_id: bytes
    body: bytes
    message_row: int | None
    after_outbox_seq: int
    recipients: tuple[bytes, ...]


_G = "id, group_id, name, log, sending_key, rotate, pending, send_seq, is_member, muted, dropped"
_M = (
    "id, group_row, sender, message_id, outgoing, kind, body, sent_at_ms, received_at_ms, "
    "state, pos"
)


def _group(r: tuple[Any, ...]) -> GroupRow:
    return GroupRow(
        id=int(r[0]),
        group_id=bytes(r[1]),
        name=str(r[2]),
        log=bytes(r[3]),
        sending_key=bytes(r[4]) if r[4] is not None else None,
        rotate=bool(r[5]),
        pending=bytes(r[6]) if r[6] is not None else None,
        send_seq=int(r[7]),
        is_member=bool(r[8]),
        muted=bool(r[9]),
        dropped=int(r[10]),
    )


def _message(r: tuple[Any, ...]) -> GroupMessageRow:
    return GroupMessageRow(
        id=int(r[0]),
        group_row=int(r[1]),
        sender=bytes(r[2]),
        message_id=bytes(r[3]),
        outgoing=bool(r[4]),
        kind=str(r[5]),
        body=str(r[6]),
        sent_at_ms=int(r[7]),
        received_at_ms=int(r[8]) if r[8] is not None else None,
        state=r[9] if is_message_state(r[9]) else "error",
        pos=int(r[10]),
    )


class Groups:
    """Call the writing methods inside ``store.db.transaction()``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------ groups

    def insert(self, group_id: bytes, name: str, log: bytes, now_ms: int) -> GroupRow:
        cur = self._db.execute(
            "INSERT INTO groups (group_id, name, log, created_at_ms) VALUES (?, ?, ?, ?)",
            (group_id, name, log, now_ms),
        )
        row = self.by_id(int(cur.lastrowid or 0))
        assert row is not None
        return row

    def by_id(self, row_id: int) -> GroupRow | None:
        r = self._db.execute(f"SELECT {_G} FROM groups WHERE id = ?", (row_id,)).fetchone()
        return _group(r) if r else None

    def by_group_id(self, group_id: bytes) -> GroupRow | None:
        r = self._db.execute(f"SELECT {_G} FROM groups WHERE group_id = ?", (group_id,)).fetchone()
        return _group(r) if r else None

    def by_name(self, name: str) -> list[GroupRow]:
        rows = self._db.execute(
            f"SELECT {_G} FROM groups WHERE name = ? COLLATE NOCASE ORDER BY is_member DESC, id",
            (name,),
        ).fetchall()
        return [_group(r) for r in rows]

    def all(self) -> list[GroupRow]:
        return [_group(r) for r in self._db.execute(f"SELECT {_G} FROM groups ORDER BY id")]

    def update(self, row_id: int, **fields: object) -> None:
        allowed = {
            "name",
            "log",
            "sending_key",
            "rotate",
            "pending",
            "send_seq",
            "is_member",
            "muted",
        }
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"unknown group fields: {sorted(set(fields) - allowed)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE groups SET {assignments} WHERE id = ?", (*fields.values(), row_id)
        )

    def next_send_seq(self, row_id: int) -> int:
        r = self._db.execute(
            "UPDATE groups SET send_seq = send_seq + 1 WHERE id = ? RETURNING send_seq", (row_id,)
        ).fetchone()
        return int(r[0])

    def count_dropped(self, row_id: int) -> None:
        self._db.execute("UPDATE groups SET dropped = dropped + 1 WHERE id = ?", (row_id,))

    # ------------------------------------------------------------ members

    def members(self, row_id: int) -> list[MemberRow]:
        rows = self._db.execute(
            "SELECT identity, admin, name, key_sent FROM group_members WHERE group_row = ? "
            "ORDER BY identity",
            (row_id,),
        ).fetchall()
        return [
            MemberRow(bytes(r[0]), bool(r[1]), r[2], int(r[3]) if r[3] is not None else None)
            for r in rows
        ]

    def set_members(self, row_id: int, members: list[tuple[bytes, bool]]) -> None:
        """The members at the head: new ones added, gone ones removed, admin flags set."""
        keep = {identity for identity, _ in members}
        for old in self.members(row_id):
            if old.identity not in keep:
                self._db.execute(
                    "DELETE FROM group_members WHERE group_row = ? AND identity = ?",
                    (row_id, old.identity),
                )
        for identity, admin in members:
            self._db.execute(
                "INSERT INTO group_members (group_row, identity, admin) VALUES (?, ?, ?) "
                "ON CONFLICT (group_row, identity) DO UPDATE SET admin = excluded.admin",
                (row_id, identity, int(admin)),
            )

    def member_count(self, row_id: int) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM group_members WHERE group_row = ?", (row_id,)
            ).fetchone()[0]
        )

    def member_announced_name(self, row_id: int, identity: bytes) -> str | None:
        r = self._db.execute(
            "SELECT name FROM group_members WHERE group_row = ? AND identity = ?",
            (row_id, identity),
        ).fetchone()
        return str(r[0]) if r and r[0] is not None else None

    def without_key(self, row_id: int, key_id: int, me: bytes) -> list[bytes]:
        """Members (not ``me``) that were not queued our sender key ``key_id``."""
        rows = self._db.execute(
            "SELECT identity FROM group_members WHERE group_row = ? AND identity != ? "
            "AND (key_sent IS NULL OR key_sent != ?) ORDER BY identity",
            (row_id, me, key_id),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def delivery_access(self, identities: list[bytes]) -> dict[bytes, bytes | None]:
        """The delivery secrets of these identities (contacts'; None: none or not a contact),
        in one query."""
        found: dict[bytes, bytes | None] = dict.fromkeys(identities)
        for start in range(0, len(identities), 500):
            chunk = identities[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(
                f"SELECT identity, delivery_access FROM contacts WHERE identity IN ({marks})",
                tuple(chunk),
            ):
                found[bytes(r[0])] = bytes(r[1]) if r[1] is not None else None
        return found

    def set_member_name(self, row_id: int, identity: bytes, name: str) -> None:
        self._db.execute(
            "UPDATE group_members SET name = ? WHERE group_row = ? AND identity = ?",
            (name, row_id, identity),
        )

    def set_key_sent(self, row_id: int, identity: bytes, key_id: int | None) -> None:
        self._db.execute(
            "UPDATE group_members SET key_sent = ? WHERE group_row = ? AND identity = ?",
            (key_id, row_id, identity),
        )

    def reset_key_sent(self, row_id: int) -> None:
        self._db.execute("UPDATE group_members SET key_sent = NULL WHERE group_row = ?", (row_id,))

    # ------------------------------------------------------------ sender keys of others

    def sender_key(self, row_id: int, sender: bytes) -> bytes | None:
        r = self._db.execute(
            "SELECT record FROM group_sender_keys WHERE group_row = ? AND sender = ?",
            (row_id, sender),
        ).fetchone()
        return bytes(r[0]) if r else None

    def put_sender_key(self, row_id: int, sender: bytes, record: bytes) -> None:
        self._db.execute(
            "INSERT INTO group_sender_keys (group_row, sender, record) VALUES (?, ?, ?) "
            "ON CONFLICT (group_row, sender) DO UPDATE SET record = excluded.record",
            (row_id, sender, record),
        )

    def drop_sender_key(self, row_id: int, sender: bytes) -> None:
        self._db.execute(
            "DELETE FROM group_sender_keys WHERE group_row = ? AND sender = ?", (row_id, sender)
        )

    # ------------------------------------------------------------ group outbox

    def enqueue(
        self,
        row_id: int,
        envelope_id: bytes,
        body: bytes,
        recipients: list[bytes],
        after_outbox_seq: int,
        now_ms: int,
        *,
        message_row: int | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO group_outbox (group_row, envelope_id, body, message_row, "
            "after_outbox_seq, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (row_id, envelope_id, body, message_row, after_outbox_seq, now_ms),
        )
        seq = int(cur.lastrowid or 0)
        self._db.executemany(
            "INSERT INTO group_outbox_to (seq, identity) VALUES (?, ?)",
            [(seq, identity) for identity in recipients],
        )
        return seq

    def pending_sends(self, limit: int = 100) -> list[GroupOutboxRow]:
        rows = self._db.execute(
            "SELECT seq, group_row, envelope_id, body, message_row, after_outbox_seq "
            "FROM group_outbox ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        result = []
        for r in rows:
            to = self._db.execute(
                "SELECT identity FROM group_outbox_to WHERE seq = ? ORDER BY identity", (r[0],)
            ).fetchall()
            result.append(
                GroupOutboxRow(
                    seq=int(r[0]),
                    group_row=int(r[1]),
                    envelope_id=bytes(r[2]),
                    body=bytes(r[3]),
                    message_row=int(r[4]) if r[4] is not None else None,
                    after_outbox_seq=int(r[5]),
                    recipients=tuple(bytes(t[0]) for t in to),
                )
            )
        return result

    def stored_for(self, seq: int, identities: list[bytes]) -> bool:
        """The relay stored row ``seq`` for these recipients; True when none is left (the
        row is then removed)."""
        self._db.executemany(
            "DELETE FROM group_outbox_to WHERE seq = ? AND identity = ?",
            [(seq, identity) for identity in identities],
        )
        left = self._db.execute(
            "SELECT count(*) FROM group_outbox_to WHERE seq = ?", (seq,)
        ).fetchone()[0]
        if int(left) == 0:
            self._db.execute("DELETE FROM group_outbox WHERE seq = ?", (seq,))
            return True
        return False

    def drop_recipient(self, row_id: int, identity: bytes) -> None:
        """A member went: nothing more is uploaded to it."""
        self._db.execute(
            "DELETE FROM group_outbox_to WHERE identity = ? AND seq IN "
            "(SELECT seq FROM group_outbox WHERE group_row = ?)",
            (identity, row_id),
        )
        self._db.execute(
            "DELETE FROM group_outbox WHERE group_row = ? AND seq NOT IN "
            "(SELECT seq FROM group_outbox_to)",
            (row_id,),
        )

    def outbox_tail(self) -> int:
        """The last seq of the pairwise outbox (0: empty ever)."""
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])

    def pairwise_waiting(self, identity: bytes, upto_seq: int) -> bool:
        """Whether a pairwise outbox row to ``identity`` at or before ``upto_seq`` waits."""
        return (
            self._db.execute(
                "SELECT 1 FROM outbox WHERE recipient = ? AND seq <= ? LIMIT 1",
                (identity, upto_seq),
            ).fetchone()
            is not None
        )

    def outbox_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM group_outbox").fetchone()[0])

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
        if self._db.execute(
            "SELECT 1 FROM messages WHERE group_row = ? AND sender = ? AND outgoing = ? "
            "AND message_id = ?",
            (row_id, sender, int(outgoing), message_id),
        ).fetchone():
            return None
        last = self._db.execute(
            "SELECT max(pos) FROM messages WHERE group_row = ?", (row_id,)
        ).fetchone()[0]
        pos = (int(last) if last is not None else 0) + POS_GAP
        cur = self._db.execute(
            "INSERT INTO messages (group_row, sender, message_id, outgoing, kind, body, "
            "sent_at_ms, received_at_ms, state, pos, seq, expire_after_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                pos,
                seq,
                expire_after_s or None,
            ),
        )
        # the row as inserted (no read back: this runs once per message of a backlog)
        return GroupMessageRow(
            id=int(cur.lastrowid or 0),
            group_row=row_id,
            sender=sender,
            message_id=message_id,
            outgoing=outgoing,
            kind=kind,
            body=body,
            sent_at_ms=sent_at_ms,
            received_at_ms=received_at_ms,
            state=state,
            pos=pos,
        )

    def message(self, message_row: int) -> GroupMessageRow | None:
        r = self._db.execute(
            f"SELECT {_M} FROM messages WHERE id = ? AND group_row IS NOT NULL", (message_row,)
        ).fetchone()
        return _message(r) if r else None

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
            f"SELECT {_M} FROM messages WHERE group_row = ? ORDER BY pos DESC LIMIT ?",
            (row_id, limit),
        ).fetchall()
        return [_message(r) for r in reversed(rows)]

    def unread(self, row_id: int | None = None) -> list[GroupMessageRow]:
        sql = (
            f"SELECT {_M} FROM messages WHERE group_row IS NOT NULL AND outgoing = 0 "
            "AND kind IN ('text', 'attachment', 'voice') AND state = 'received'"
        )
        params: tuple[int, ...] = ()
        if row_id is not None:
            sql += " AND group_row = ?"
            params = (row_id,)
        rows = self._db.execute(sql + " ORDER BY id", params).fetchall()
        return [_message(r) for r in rows]

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
        columns = ", ".join("m." + c.strip() for c in _M.split(","))
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
        return [(_message(r[:-1]), str(r[-1])) for r in rows[:limit]]

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

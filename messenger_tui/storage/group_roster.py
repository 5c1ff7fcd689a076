"""Groups, their members and the sender keys of others: the roster part of
:class:`~messenger_tui.storage.groups.Groups`."""

from __future__ import annotations

from messenger_tui.storage.db import Database
from messenger_tui.storage.group_rows import GROUP_COLS, GroupRow, MemberRow, group_from_sql


class GroupRoster:
    """Rows of ``groups``, ``group_members`` and ``group_sender_keys``."""

    _db: Database
    #: Bumped (in memory) whenever the sender keys we hold of others may have changed in a
    #: way our group send grants depend on (app/group_grants.py): a new key, a key dropped,
    #: a group left. Counts only up; a rolled-back change costs one needless recompute.
    sender_keys_version: int

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
        r = self._db.execute(f"SELECT {GROUP_COLS} FROM groups WHERE id = ?", (row_id,)).fetchone()
        return group_from_sql(r) if r else None

    def by_group_id(self, group_id: bytes) -> GroupRow | None:
        r = self._db.execute(
            f"SELECT {GROUP_COLS} FROM groups WHERE group_id = ?", (group_id,)
        ).fetchone()
        return group_from_sql(r) if r else None

    def by_name(self, name: str) -> list[GroupRow]:
        rows = self._db.execute(
            f"SELECT {GROUP_COLS} FROM groups WHERE name = ? COLLATE NOCASE "
            "ORDER BY is_member DESC, id",
            (name,),
        ).fetchall()
        return [group_from_sql(r) for r in rows]

    def all(self) -> list[GroupRow]:
        return [
            group_from_sql(r)
            for r in self._db.execute(f"SELECT {GROUP_COLS} FROM groups ORDER BY id")
        ]

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
        if "is_member" in fields:
            self.sender_keys_version += 1
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

    def member_sender_keys(self) -> list[tuple[bytes, bytes, bytes]]:
        """(group id, sender, record) of every sender key we hold of a current member of a
        group we are in."""
        rows = self._db.execute(
            "SELECT g.group_id, k.sender, k.record FROM group_sender_keys k "
            "JOIN groups g ON g.id = k.group_row AND g.is_member = 1 "
            "JOIN group_members m ON m.group_row = k.group_row AND m.identity = k.sender "
            "ORDER BY g.id, k.sender"
        ).fetchall()
        return [(bytes(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def sender_key_changed(self) -> None:
        """A new sender key of another member was stored (see :attr:`sender_keys_version`)."""
        self.sender_keys_version += 1

    def drop_sender_key(self, row_id: int, sender: bytes) -> None:
        self.sender_keys_version += 1
        self._db.execute(
            "DELETE FROM group_sender_keys WHERE group_row = ? AND sender = ?", (row_id, sender)
        )

"""Contacts: names, identity keys, verification and key-change state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.storage.db import Database


@dataclass(frozen=True)
class ContactRow:
    id: int
    name: str
    identity: bytes
    added_at_ms: int
    verified: bool
    previous_identity: bytes | None
    key_changed: bool
    blocked: bool
    auto_added: bool
    announced_name: str | None
    muted: bool = False


_COLUMNS = (
    "id, name, identity, added_at_ms, verified, previous_identity, key_changed, blocked, "
    "auto_added, announced_name, muted"
)


def _row(r: tuple[Any, ...] | None) -> ContactRow | None:
    if r is None:
        return None
    return ContactRow(
        id=int(r[0]),
        name=str(r[1]),
        identity=bytes(r[2]),
        added_at_ms=int(r[3]),
        verified=bool(r[4]),
        previous_identity=bytes(r[5]) if r[5] is not None else None,
        key_changed=bool(r[6]),
        blocked=bool(r[7]),
        auto_added=bool(r[8]),
        announced_name=str(r[9]) if r[9] is not None else None,
        muted=bool(r[10]),
    )


class Contacts:
    """Contact rows. Names are unique without regard to case."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[ContactRow]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM contacts ORDER BY name").fetchall()
        return [c for c in map(_row, rows) if c is not None]

    def by_name(self, name: str) -> ContactRow | None:
        return _row(
            self._db.execute(f"SELECT {_COLUMNS} FROM contacts WHERE name = ?", (name,)).fetchone()
        )

    def by_identity(self, identity: bytes) -> ContactRow | None:
        return _row(
            self._db.execute(
                f"SELECT {_COLUMNS} FROM contacts WHERE identity = ?", (identity,)
            ).fetchone()
        )

    def by_id(self, contact_id: int) -> ContactRow | None:
        return _row(
            self._db.execute(
                f"SELECT {_COLUMNS} FROM contacts WHERE id = ?", (contact_id,)
            ).fetchone()
        )

    def insert(
        self,
        name: str,
        identity: bytes,
        now_ms: int,
        *,
        auto_added: bool = False,
        announced_name: str | None = None,
    ) -> ContactRow:
        cur = self._db.execute(
            "INSERT INTO contacts (name, identity, added_at_ms, auto_added, announced_name) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, identity, now_ms, int(auto_added), announced_name),
        )
        row = self.by_id(int(cur.lastrowid or 0))
        assert row is not None
        return row

    def rename(self, contact_id: int, name: str) -> None:
        self._db.execute(
            "UPDATE contacts SET name = ?, auto_added = 0 WHERE id = ?", (name, contact_id)
        )

    def confirm(self, contact_id: int) -> None:
        """The user added this contact explicitly (it is no longer a message request)."""
        self._db.execute("UPDATE contacts SET auto_added = 0 WHERE id = ?", (contact_id,))

    def change_identity(self, contact_id: int, new_identity: bytes) -> None:
        """Record a new key for the contact; sending stays blocked until :meth:`accept_key`."""
        self._db.execute(
            "UPDATE contacts SET previous_identity = identity, identity = ?, key_changed = 1, "
            "verified = 0 WHERE id = ?",
            (new_identity, contact_id),
        )

    def accept_key(self, contact_id: int) -> None:
        """The user reviewed the safety number: unblock and mark verified."""
        self._db.execute(
            "UPDATE contacts SET key_changed = 0, verified = 1 WHERE id = ?", (contact_id,)
        )

    def set_blocked(self, contact_id: int, blocked: bool) -> None:
        self._db.execute("UPDATE contacts SET blocked = ? WHERE id = ?", (int(blocked), contact_id))

    def set_muted(self, contact_id: int, muted: bool) -> None:
        """Muted: no notifications for their messages (unread counts still update)."""
        self._db.execute("UPDATE contacts SET muted = ? WHERE id = ?", (int(muted), contact_id))

    def delivery_access(self, identity: bytes) -> bytes | None:
        """The delivery secret ``identity`` gave us (presented when sending to it), if any."""
        row = self._db.execute(
            "SELECT delivery_access FROM contacts WHERE identity = ?", (identity,)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def set_delivery_access(self, identity: bytes, secret: bytes) -> None:
        """Remember the delivery secret ``identity`` sent us (its latest one wins)."""
        self._db.execute(
            "UPDATE contacts SET delivery_access = ? WHERE identity = ?", (secret, identity)
        )

    def next_send_seq(self, contact_id: int, now_ms: int) -> int:
        """The sequence for the next message to this contact: above the last one and at least
        the clock (ms), so it keeps rising after the contact is deleted and added again or
        the profile is made anew. Call inside the transaction that queues the message."""
        row = self._db.execute(
            "UPDATE contacts SET send_seq = max(send_seq + 1, ?) WHERE id = ? RETURNING send_seq",
            (now_ms, contact_id),
        ).fetchone()
        if row is None:
            raise KeyError(contact_id)
        return int(row[0])

    def delete(self, contact_id: int) -> None:
        self._db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))

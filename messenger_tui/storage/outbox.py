"""The outbox: payloads waiting for the relay to store them, drained in order.

A row is first stored with its plaintext payload; it is sealed (encrypted) once, in the same
transaction that saves the advanced ratchet state, and from then on resent byte-identical until
the relay answers Stored, so a retry can never advance the ratchet twice or duplicate a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger_tui.storage.db import Database


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    recipient: bytes
    envelope_id: bytes
    payload: bytes
    body: bytes | None
    message_row: int | None
    kind: str


_COLUMNS = "seq, recipient, envelope_id, payload, body, message_row, kind"


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(
        seq=int(r[0]),
        recipient=bytes(r[1]),
        envelope_id=bytes(r[2]),
        payload=bytes(r[3]),
        body=bytes(r[4]) if r[4] is not None else None,
        message_row=int(r[5]) if r[5] is not None else None,
        kind=str(r[6]),
    )


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(
        self,
        recipient: bytes,
        envelope_id: bytes,
        payload: bytes,
        kind: str,
        now_ms: int,
        *,
        message_row: int | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (recipient, envelope_id, payload, message_row, kind, "
            "created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (recipient, envelope_id, payload, message_row, kind, now_ms),
        )
        return int(cur.lastrowid or 0)

    def pending(self, *, after_seq: int = 0, limit: int = 1000) -> list[OutboxRow]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [_row(r) for r in rows]

    def seal(self, seq: int, body: bytes) -> bool:
        """Store the sealed body; False if the row no longer exists."""
        return (
            int(self._db.execute("UPDATE outbox SET body = ? WHERE seq = ?", (body, seq)).rowcount)
            > 0
        )

    def remove(self, seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def count(self) -> int:
        """Rows waiting, less the delivery-access grants (control rows the user never sees)."""
        return int(
            self._db.execute("SELECT count(*) FROM outbox WHERE kind != 'access'").fetchone()[0]
        )

    def drop_recipient(self, recipient: bytes) -> None:
        self._db.execute("DELETE FROM outbox WHERE recipient = ?", (recipient,))

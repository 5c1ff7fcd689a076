"""Envelopes already processed, so a redelivery (crash before ack) is acked, not shown twice."""

from __future__ import annotations

from messenger_tui.storage.db import Database


class ReceivedEnvelopes:
    def __init__(self, db: Database) -> None:
        self._db = db

    def seen(self, sender: bytes, envelope_id: bytes) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM received_envelopes WHERE sender = ? AND envelope_id = ?",
                (sender, envelope_id),
            ).fetchone()
            is not None
        )

    def record(self, sender: bytes, envelope_id: bytes, now_ms: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO received_envelopes (sender, envelope_id, received_at_ms) "
            "VALUES (?, ?, ?)",
            (sender, envelope_id, now_ms),
        )

    def prune(self, before_ms: int) -> None:
        """Forget records older than the relay's TTL: such envelopes cannot come again."""
        self._db.execute("DELETE FROM received_envelopes WHERE received_at_ms < ?", (before_ms,))

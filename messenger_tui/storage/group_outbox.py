"""The group outbox (one row per group message to upload, with the recipients it waits
for): the outbox part of :class:`~messenger_tui.storage.groups.Groups`."""

from __future__ import annotations

from messenger_tui.storage.db import Database
from messenger_tui.storage.group_rows import GroupOutboxRow


class GroupOutbox:
    """Rows of ``group_outbox`` and ``group_outbox_to``."""

    _db: Database

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

"""Our own prekeys: signed prekeys (kept a while after rotation) and one-time prekeys."""

from __future__ import annotations

from messenger_tui.storage.db import Database


class Prekeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_signed(self, prekey_id: int, data: bytes, created_at_ms: int) -> None:
        self._db.execute(
            "INSERT INTO signed_prekeys (id, data, created_at_ms) VALUES (?, ?, ?)",
            (prekey_id, data, created_at_ms),
        )

    def signed(self, prekey_id: int) -> bytes | None:
        r = self._db.execute(
            "SELECT data FROM signed_prekeys WHERE id = ?", (prekey_id,)
        ).fetchone()
        return bytes(r[0]) if r else None

    def newest_signed(self) -> tuple[int, bytes, int] | None:
        r = self._db.execute(
            "SELECT id, data, created_at_ms FROM signed_prekeys ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (int(r[0]), bytes(r[1]), int(r[2])) if r else None

    def prune_signed(self, keep_after_ms: int) -> None:
        """Forget signed prekeys created before ``keep_after_ms``, never the newest."""
        self._db.execute(
            "DELETE FROM signed_prekeys WHERE created_at_ms < ? "
            "AND id != (SELECT max(id) FROM signed_prekeys)",
            (keep_after_ms,),
        )

    def add_one_time(self, rows: list[tuple[int, bytes]]) -> None:
        self._db.executemany("INSERT INTO one_time_prekeys (id, data) VALUES (?, ?)", rows)

    def one_time(self, prekey_id: int) -> bytes | None:
        r = self._db.execute(
            "SELECT data FROM one_time_prekeys WHERE id = ?", (prekey_id,)
        ).fetchone()
        return bytes(r[0]) if r else None

    def delete_one_time(self, prekey_id: int) -> None:
        self._db.execute("DELETE FROM one_time_prekeys WHERE id = ?", (prekey_id,))

    def unpublished_one_time(self) -> list[tuple[int, bytes]]:
        rows = self._db.execute(
            "SELECT id, data FROM one_time_prekeys WHERE published = 0 ORDER BY id"
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def mark_published(self, ids: list[int]) -> None:
        self._db.executemany(
            "UPDATE one_time_prekeys SET published = 1 WHERE id = ?", [(i,) for i in ids]
        )

    def max_one_time_id(self) -> int:
        r = self._db.execute("SELECT max(id) FROM one_time_prekeys").fetchone()
        return int(r[0]) if r and r[0] is not None else 0

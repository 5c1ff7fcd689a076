"""Ratchet sessions per peer: one active, a few archived ones kept to decrypt late messages."""

from __future__ import annotations

from messenger_tui.storage.db import Database

#: Sessions kept per peer besides the active one (messages sealed under an older session
#: after simultaneous initiation or a peer's reinstall can still be opened).
ARCHIVED_SESSIONS = 4


class Sessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    def for_peer(self, peer: bytes) -> list[tuple[bytes, bytes, bool]]:
        """(base_key, state, active) for the peer, active first, then most recent."""
        rows = self._db.execute(
            "SELECT base_key, state, active FROM sessions WHERE peer = ? "
            "ORDER BY active DESC, updated_at_ms DESC",
            (peer,),
        ).fetchall()
        return [(bytes(r[0]), bytes(r[1]), bool(r[2])) for r in rows]

    def active(self, peer: bytes) -> tuple[bytes, bytes] | None:
        r = self._db.execute(
            "SELECT base_key, state FROM sessions WHERE peer = ? AND active = 1", (peer,)
        ).fetchone()
        return (bytes(r[0]), bytes(r[1])) if r else None

    def save(
        self, peer: bytes, base_key: bytes, state: bytes, now_ms: int, *, make_active: bool
    ) -> None:
        """Store a session's new state; ``make_active`` makes it the one used for sending."""
        if make_active:
            self._db.execute(
                "UPDATE sessions SET active = 0 WHERE peer = ? AND active = 1 AND base_key != ?",
                (peer, base_key),
            )
        updated = self._db.execute(
            "UPDATE sessions SET state = ?, updated_at_ms = ?, active = max(active, ?) "
            "WHERE peer = ? AND base_key = ?",
            (state, now_ms, int(make_active), peer, base_key),
        ).rowcount
        if updated:
            return
        self._db.execute(
            "INSERT INTO sessions (peer, base_key, state, active, updated_at_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (peer, base_key, state, int(make_active), now_ms),
        )
        self._db.execute(
            "DELETE FROM sessions WHERE peer = ? AND active = 0 AND base_key NOT IN ("
            "SELECT base_key FROM sessions WHERE peer = ? AND active = 0 "
            "ORDER BY updated_at_ms DESC LIMIT ?)",
            (peer, peer, ARCHIVED_SESSIONS),
        )

    def remember_accepted(self, peer: bytes, base_key: bytes, now_ms: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO accepted_base_keys (base_key, peer, accepted_at_ms) "
            "VALUES (?, ?, ?)",
            (base_key, peer, now_ms),
        )

    def was_accepted(self, base_key: bytes) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM accepted_base_keys WHERE base_key = ?", (base_key,)
            ).fetchone()
            is not None
        )

    def forget_accepted_before(self, before_ms: int) -> None:
        """Handshakes older than every kept signed prekey cannot be accepted anyway."""
        self._db.execute("DELETE FROM accepted_base_keys WHERE accepted_at_ms < ?", (before_ms,))

    def delete_peer(self, peer: bytes) -> None:
        self._db.execute("DELETE FROM sessions WHERE peer = ?", (peer,))

"""Per-profile settings as text key/values (name, relay URL, counters)."""

from __future__ import annotations

from messenger_tui.storage.db import Database


class SettingsTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def next_counter(self, key: str, start: int = 1) -> int:
        """Return the counter's value and advance it (call inside a transaction)."""
        value = int(self.get(key) or start)
        self.set(key, str(value + 1))
        return value

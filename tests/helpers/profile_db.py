"""Peeking into a profile's encrypted database from a test (another process writes it)."""

from __future__ import annotations

from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from messenger_tui.core.crypto import keystore
from messenger_tui.storage.db import key_pragma


def database_key(home: Path, passphrase: str | None = None) -> bytes:
    """The key the profile in ``home`` keeps its database under."""
    return keystore.unlock((home / "identity.json").read_bytes(), passphrase)[1]


def read_only(
    home: Path, passphrase: str | None = None, timeout: float = 0.1
) -> sqlcipher.Connection:
    """A read-only connection to the profile's database (the same SQLite library as the
    client's, so locks are seen)."""
    conn = sqlcipher.connect(f"file:{home / 'messenger.db'}?mode=ro", uri=True, timeout=timeout)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(key_pragma(database_key(home, passphrase)))
    return conn

"""The database in SQLCipher: nothing readable without the key, a wrong key is its own error and
changes nothing, freed pages are zeroed, re-encryption is whole or not at all."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from messenger_tui.storage import cipher
from messenger_tui.storage.db import Database, is_plaintext
from messenger_tui.storage.errors import CorruptDatabase, WrongDatabaseKey
from messenger_tui.storage.store import Store

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
SECRET = "cipher-canary-7f3a"


def _fill(store: Store, n: int = 50) -> None:
    with store.db.transaction():
        cid = store.contacts.insert("bob", os.urandom(32), 1).id
        for i in range(n):
            store.messages.insert(
                cid, os.urandom(16), outgoing=bool(i % 2), kind="text",
                body=f"{SECRET} message {i}", sent_at_ms=i, received_at_ms=i, state="sent",
            )  # fmt: skip


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_no_plaintext_in_the_file_or_its_wal_and_fts_still_works(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = Store.open(path, KEY)
    try:
        _fill(store)
        assert (tmp_path / "m.db-wal").stat().st_size > 0  # the rows are in the WAL now
        for name, data in _files(tmp_path).items():
            assert SECRET.encode() not in data, name
            assert KEY not in data and KEY.hex().encode() not in data, name
        hits = store.messages.search_text("canary messa")
        assert len(hits) == 50
        assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert store.db.execute("PRAGMA cipher_version").fetchone()[0].startswith("4.")
    finally:
        store.close()
    for name in os.listdir(tmp_path):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert not is_plaintext(path)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()
    shell = subprocess.run(
        ["sqlite3", str(path), "SELECT body FROM messages"], capture_output=True, text=True
    )
    assert shell.returncode != 0 and "not a database" in shell.stderr
    assert SECRET not in shell.stdout


def test_deleted_rows_leave_no_plaintext_in_freed_pages(tmp_path: Path) -> None:
    # Unencrypted, so that the bytes are visible: secure_delete must zero them on delete.
    path = tmp_path / "plain.db"
    store = Store.open(path)
    try:
        _fill(store, 200)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert SECRET.encode() in path.read_bytes()
        with store.db.transaction():
            store.db.execute("DELETE FROM messages")
        store.db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    assert SECRET.encode() not in path.read_bytes()


def test_wrong_key_is_its_own_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = Store.open(path, KEY)
    _fill(store)
    store.close()
    before = _files(tmp_path)
    with pytest.raises(WrongDatabaseKey, match="does not open with this key") as info:
        Database.open(path, OTHER)
    assert "damaged" in str(info.value)  # SQLCipher cannot tell the two apart: both named
    assert not isinstance(info.value, CorruptDatabase)
    with pytest.raises(CorruptDatabase):
        Database.open(path)  # no key: an encrypted file is not a database
    assert _files(tmp_path) == before


def test_a_plain_file_is_not_opened_with_a_key(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    Store.open(path).close()
    before = path.read_bytes()
    with pytest.raises(WrongDatabaseKey, match="not encrypted yet"):
        Database.open(path, KEY)
    assert path.read_bytes() == before


@pytest.mark.parametrize("old", [None, KEY], ids=["from-plain", "from-key"])
def test_reencrypt_keeps_everything_and_only_the_new_key_opens(
    tmp_path: Path, old: bytes | None
) -> None:
    path = tmp_path / "m.db"
    store = Store.open(path, old)
    _fill(store)
    version = store.db.execute("PRAGMA user_version").fetchone()[0]
    store.close()
    steps: list[str] = []
    cipher.reencrypt(path, old, OTHER, on_step=steps.append)
    assert steps == ["checkpointed", "exported", "synced", "backed-up", "swapped", "done"]
    assert sorted(os.listdir(tmp_path)) == ["m.db"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET.encode() not in path.read_bytes()
    store = Store.open(path, OTHER)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == version
        assert len(store.messages.search_text("canary")) == 50
        assert store.db.quick_check() == "ok"
    finally:
        store.close()
    with pytest.raises((WrongDatabaseKey, CorruptDatabase)):
        Database.open(path, old)


def test_database_rekey_on_an_open_connection(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = Store.open(path, KEY)
    _fill(store)
    store.db.rekey(OTHER)
    assert store.db.has_key(OTHER) and not store.db.has_key(KEY)
    assert len(store.messages.search_text("canary")) == 50  # the same objects keep working
    with store.db.transaction():
        store.settings.set("after", "rekey")
    store.close()
    reopened = Store.open(path, OTHER)
    assert reopened.settings.get("after") == "rekey"
    reopened.close()


def test_failed_reencryption_leaves_the_old_file_open(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = Store.open(path, KEY)
    _fill(store)
    before_rows = store.messages.count(1)

    def fail(step: str) -> None:
        if step == "exported":
            raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        store.db.rekey(OTHER, on_step=fail)
    assert store.db.has_key(KEY)
    assert store.messages.count(1) == before_rows
    store.close()
    assert sorted(os.listdir(tmp_path)) == ["m.db"]  # the half-done copy is removed at once

"""Schema upgrades: a version-1 database (before mute) opens as the current version with its
data kept and the new column at its default."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from messenger_tui.storage.db import SCHEMA_VERSION, _split_sql
from messenger_tui.storage.store import Store


def _version_1_database(path: Path) -> None:
    sql = resources.files("messenger_tui.storage.schema").joinpath("001_initial.sql").read_text()
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _split_sql(sql):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO contacts (name, identity, added_at_ms) VALUES ('bob', ?, 1)", (b"b" * 32,)
    )
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_version_1_upgrades_to_muted_contacts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_1_database(path)
    store = Store.open(path)
    try:
        assert SCHEMA_VERSION >= 2
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        bob = store.contacts.by_name("bob")
        assert bob is not None and bob.muted is False
        with store.db.transaction():
            store.contacts.set_muted(bob.id, True)
        muted = store.contacts.by_id(bob.id)
        assert muted is not None and muted.muted is True
    finally:
        store.close()
    again = Store.open(path)  # reopening does not apply the step again
    try:
        reopened = again.contacts.by_name("bob")
        assert reopened is not None and reopened.muted is True
    finally:
        again.close()

"""Client storage: schema, typed errors, outbox order, receipts only move forward, dedupe."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlcipher3 import dbapi2 as sqlcipher

from messenger_tui.storage.db import SCHEMA_VERSION, Database
from messenger_tui.storage.errors import (
    CorruptDatabase,
    DatabaseLocked,
    ProfileInUse,
    SchemaTooNew,
)
from messenger_tui.storage.profile_lock import ProfileLock
from messenger_tui.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


def _contact(store: Store, name: str = "bob") -> int:
    with store.db.transaction():
        return store.contacts.insert(name, os.urandom(32), 1).id


def test_schema_is_created_in_wal_mode(store: Store) -> None:
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_keeps_data(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "m.db")
    with s.db.transaction():
        s.settings.set("name", "alice")
    s.close()
    s = Store.open(tmp_path / "m.db")
    assert s.settings.get("name") == "alice"
    s.close()


def test_corrupt_file_is_a_typed_error_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    junk = b"this is not sqlite" * 100
    path.write_bytes(junk)
    with pytest.raises(CorruptDatabase, match="damaged"):
        Database.open(path)
    assert path.read_bytes() == junk


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upgrade"):
        Database.open(path)


def test_locked_database_is_a_typed_error(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "m.db")
    # the same SQLite library as the store's (two copies of SQLite in one process do not
    # see each other's POSIX locks)
    other = sqlcipher.connect(tmp_path / "m.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    s.db.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(DatabaseLocked, match="locked"), s.db.transaction():
        s.settings.set("x", "y")
    other.execute("ROLLBACK")
    other.close()
    s.close()


def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    cid = _contact(store)
    with pytest.raises(RuntimeError), store.db.transaction():
        store.messages.insert(cid, b"m" * 16, outgoing=True, body="x", sent_at_ms=1, state="queued")
        store.outbox.enqueue(b"r" * 32, b"e" * 16, b"p", "text", 1)
        raise RuntimeError("crash between the writes")
    assert store.messages.count(cid) == 0
    assert store.outbox.count() == 0


def test_outbox_drains_in_insertion_order_and_seals_once(store: Store) -> None:
    with store.db.transaction():
        for i in range(5):
            store.outbox.enqueue(b"r" * 32, os.urandom(16), bytes([i]), "text", i)
    rows = store.outbox.pending()
    assert [r.payload for r in rows] == [bytes([i]) for i in range(5)]
    store.outbox.seal(rows[0].seq, b"sealed")
    assert store.outbox.pending()[0].body == b"sealed"
    assert [r.seq for r in store.outbox.pending(after_seq=rows[2].seq)] == [
        rows[3].seq,
        rows[4].seq,
    ]


def test_receipts_only_move_state_forward(store: Store) -> None:
    cid = _contact(store)
    mid = os.urandom(16)
    row = store.messages.insert(cid, mid, outgoing=True, body="hi", sent_at_ms=1, state="queued")
    assert row is not None
    assert store.messages.advance_outgoing_row(row.id, "sent")
    assert store.messages.advance_outgoing(cid, [mid], "read") == [row.id]
    # a late delivery receipt does not move "read" back to "delivered"
    assert store.messages.advance_outgoing(cid, [mid], "delivered") == []
    assert not store.messages.advance_outgoing_row(row.id, "sent")
    stored = store.messages.by_id(row.id)
    assert stored is not None and stored.state == "read"


def test_duplicate_incoming_message_is_ignored(store: Store) -> None:
    cid = _contact(store)
    mid = os.urandom(16)
    first = store.messages.insert(
        cid, mid, outgoing=False, body="a", sent_at_ms=1, state="received"
    )
    again = store.messages.insert(
        cid, mid, outgoing=False, body="a", sent_at_ms=1, state="received"
    )
    assert first is not None and again is None
    assert store.messages.count(cid) == 1


def test_history_pages_oldest_first(store: Store) -> None:
    cid = _contact(store)
    with store.db.transaction():
        for i in range(10):
            store.messages.insert(
                cid, os.urandom(16), outgoing=False, body=f"m{i}", sent_at_ms=i, state="received"
            )
    page = store.messages.history(cid, limit=3)
    assert [m.body for m in page] == ["m7", "m8", "m9"]
    older = store.messages.history(cid, limit=3, before_id=page[0].id)
    assert [m.body for m in older] == ["m4", "m5", "m6"]


def test_full_text_search(store: Store) -> None:
    cid = _contact(store)
    store.messages.insert(
        cid, os.urandom(16), outgoing=False, body="lunch at noon?", sent_at_ms=1, state="received"
    )
    store.messages.insert(
        cid, os.urandom(16), outgoing=True, body="see you", sent_at_ms=2, state="sent"
    )
    assert [m.body for m in store.messages.search("lunch")] == ["lunch at noon?"]
    assert store.messages.search("dinner") == []


def test_sessions_keep_one_active_and_bounded_archive(store: Store) -> None:
    peer = b"p" * 32
    for i in range(8):
        store.sessions.save(peer, bytes([i]) * 32, b"state%d" % i, i, make_active=True)
    sessions = store.sessions.for_peer(peer)
    assert sum(1 for _, _, active in sessions if active) == 1
    assert sessions[0][0] == bytes([7]) * 32 and sessions[0][2]
    assert len(sessions) <= 5
    # saving an archived session without make_active keeps the active one
    store.sessions.save(peer, bytes([6]) * 32, b"newer", 99, make_active=False)
    assert store.sessions.active(peer) == (bytes([7]) * 32, b"state7")


def test_key_change_is_recorded_and_accept_clears_it(store: Store) -> None:
    cid = _contact(store)
    before = store.contacts.by_id(cid)
    assert before is not None
    old = before.identity
    store.contacts.change_identity(cid, b"n" * 32)
    row = store.contacts.by_id(cid)
    assert row is not None
    assert row.key_changed and row.previous_identity == old and row.identity == b"n" * 32
    store.contacts.accept_key(cid)
    row = store.contacts.by_id(cid)
    assert row is not None
    assert not row.key_changed and row.verified


def test_profile_lock_is_exclusive(tmp_path: Path) -> None:
    with ProfileLock(tmp_path), pytest.raises(ProfileInUse, match="in use by process"):
        ProfileLock(tmp_path).acquire()
    with ProfileLock(tmp_path):  # released on exit
        pass

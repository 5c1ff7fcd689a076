"""Purging expired messages leaves no byte of them in any file (a plain database, so the raw
bytes can be searched: the encrypted profile adds SQLCipher on top of the same purge)."""

from __future__ import annotations

import os
from pathlib import Path

from messenger_tui.core import disappearing as dm
from messenger_tui.storage.expiry import contact_conversation
from messenger_tui.storage.store import Store

MARKER = "zqxjvanish"


def _files_with(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes()]


def _fill(
    store: Store, contact_id: int, n: int, *, deadline: int | None, tag: str, timer: int | None = 5
) -> list[int]:
    rows = []
    with store.db.transaction():
        for i in range(n):
            row = store.messages.insert(
                contact_id, os.urandom(16), outgoing=bool(i % 2),
                body=f"{tag}{MARKER}{i:03d} and some other words {i}",
                sent_at_ms=1000 + i, state="seen", expire_after_s=timer,
            )  # fmt: skip
            assert row is not None
            if deadline is not None:
                store.expiry.set_deadline(row.id, deadline)
            rows.append(row.id)
    return rows


def test_purge_leaves_no_byte_in_db_wal_shm_or_fts(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
    kept = _fill(store, bob, 10, deadline=None, tag="keep", timer=None)  # no timer
    kept += _fill(store, bob, 10, deadline=None, tag="keep")  # timed, never read
    gone = _fill(store, bob, 50, deadline=6000, tag="gone")
    assert store.expiry.earliest() == 6000
    assert len(store.messages.search_text(f"gone{MARKER}")) == 50
    assert _files_with(tmp_path, b"gone" + MARKER.encode())  # the plain file holds it now

    assert store.expiry.purge(5999).count == 0
    purged = store.expiry.purge(6000)
    assert purged.rows == {bob: gone}
    assert store.messages.search_text(f"gone{MARKER}") == []
    assert len(store.messages.search_text(f"keep{MARKER}")) == 20
    assert store.expiry.earliest() is None
    assert (tmp_path / "m.db-wal").stat().st_size == 0
    assert _files_with(tmp_path, b"gone" + MARKER.encode()) == []
    assert _files_with(tmp_path, b"keep" + MARKER.encode()) == ["m.db"]
    assert [m.id for m in store.messages.history(bob, limit=100)] == kept
    store.close()
    assert _files_with(tmp_path, b"gone" + MARKER.encode()) == []


def test_outbox_rows_of_expired_messages_go_too(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1)
    (row,) = _fill(store, bob.id, 1, deadline=10, tag="queued")
    with store.db.transaction():
        store.outbox.enqueue(bob.identity, os.urandom(16), MARKER.encode(), "text", 1,
                             message_row=row)  # fmt: skip
    store.expiry.purge(10)
    assert store.outbox.count() == 0
    assert _files_with(tmp_path, MARKER.encode()) == []
    store.close()


def test_read_starts_the_countdown_once(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
    (row,) = _fill(store, bob, 1, deadline=None, tag="unread")
    untimed = store.messages.insert(
        bob, os.urandom(16), outgoing=False, body="x", sent_at_ms=1, state="received"
    )
    assert untimed is not None
    with store.db.transaction():
        store.expiry.start_at_read([row, untimed.id], 50_000)
        store.expiry.start_at_read([row], 90_000)  # shown again: the first read counts
    assert store.expiry.earliest() == 55_000
    assert store.expiry.purge(55_000).rows == {bob: [row]}
    assert store.messages.by_id(untimed.id) is not None
    store.close()


def test_timer_register_per_conversation_and_gone_with_the_contact(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
    key = contact_conversation(bob)
    assert store.expiry.timer(key) == dm.OFF
    setting = dm.change(dm.OFF, 300, b"a" * 32)
    with store.db.transaction():
        store.expiry.set_timer(key, setting, 5)
    assert store.expiry.timer(key) == setting
    with store.db.transaction():
        store.contacts.delete(bob)
    assert store.db.execute("SELECT count(*) FROM disappearing_timers").fetchone()[0] == 0
    store.close()


def test_purge_in_batches_earliest_first(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
    late = _fill(store, bob, 5, deadline=200, tag="late")
    early = _fill(store, bob, 5, deadline=100, tag="early")

    def purge(limit: int) -> list[int]:
        return sorted(store.expiry.purge(300, limit=limit).rows[bob])

    assert purge(3) == early[:3]
    assert purge(3) == sorted([*early[3:], late[0]])
    assert purge(-1) == late[1:]
    store.close()


def test_purge_names_the_group_and_drops_its_outbox_row(tmp_path: Path) -> None:
    """A group message's purge is reported under its group row (never under a contact), with
    the group outbox row still holding it; 1:1 messages purged at once keep their contact."""
    store = Store.open(tmp_path / "m.db")
    me = os.urandom(32)
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
        group = store.groups.insert(os.urandom(16), "team", b"log", 1).id
        group_rows = []
        for i in range(5):
            row = store.groups.insert_message(
                group, me, os.urandom(16), outgoing=True, body=f"grp{MARKER}{i}",
                sent_at_ms=1000 + i, state="queued", expire_after_s=5,
            )  # fmt: skip
            assert row is not None
            store.expiry.set_deadline(row.id, 6000)
            group_rows.append(row.id)
        store.groups.enqueue(group, os.urandom(16), b"sealed", [os.urandom(32)], 0, 1,
                             message_row=group_rows[0])  # fmt: skip
    one = _fill(store, bob, 3, deadline=6000, tag="pair")
    purged = store.expiry.purge(6000)
    assert purged.groups == {group: group_rows}
    assert purged.rows == {bob: one}
    assert purged.count == 8
    assert store.groups.outbox_count() == 0
    assert store.groups.history(group, 50) == []
    assert _files_with(tmp_path, b"grp" + MARKER.encode()) == []
    store.close()

"""Conversation order by the sender's sequence (storage/messages.py, schema 003): a message
that arrives after ones its sender wrote later is placed before them, whatever the order of
arrival; paging follows the display order; the sender's sequence keeps rising."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_tui.storage.db import _split_sql
from messenger_tui.storage.messages import REORDER_WINDOW
from messenger_tui.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


def _contact(store: Store, name: str = "bob") -> int:
    with store.db.transaction():
        return store.contacts.insert(name, name.encode().ljust(32, b"."), 1).id


def _receive(store: Store, cid: int, seq: int | None, text: str | None = None) -> None:
    with store.db.transaction():
        store.messages.insert(
            cid,
            (text or f"in {seq}").encode().ljust(16, b".")[:16],
            outgoing=False,
            body=text or f"in {seq}",
            sent_at_ms=1,
            state="received",
            seq=seq,
        )


def _send(store: Store, cid: int, text: str) -> None:
    with store.db.transaction():
        store.messages.insert(
            cid,
            text.encode().ljust(16, b".")[:16],
            outgoing=True,
            body=text,
            sent_at_ms=1,
            state="queued",
        )


def _bodies(store: Store, cid: int) -> list[str]:
    return [m.body for m in store.messages.history(cid, limit=10_000)]


def test_a_late_message_goes_before_the_ones_sent_after_it(store: Store) -> None:
    cid = _contact(store)
    for seq in (1, 2, 4, 5):
        _receive(store, cid, seq)
    _send(store, cid, "my reply")
    _receive(store, cid, 3)  # refused by the relay for now, resent later
    _receive(store, cid, 6)
    assert _bodies(store, cid) == ["in 1", "in 2", "in 3", "in 4", "in 5", "my reply", "in 6"]


def test_messages_without_a_sequence_keep_arrival_order(store: Store) -> None:
    cid = _contact(store)
    _receive(store, cid, 5)
    _receive(store, cid, None, "old client")
    _receive(store, cid, 2)  # late, goes before 5
    assert _bodies(store, cid) == ["in 2", "in 5", "old client"]


def test_a_late_message_moves_back_at_most_the_window(store: Store) -> None:
    cid = _contact(store)
    _receive(store, cid, 10)
    for i in range(REORDER_WINDOW):
        _send(store, cid, f"mine {i}")
    _receive(store, cid, 5)  # its successor is out of the window: it goes at the end
    assert _bodies(store, cid)[-1] == "in 5"
    assert _bodies(store, cid)[0] == "in 10"


def test_a_full_gap_moves_the_tail(store: Store) -> None:
    cid = _contact(store)
    _receive(store, cid, 1000)
    _send(store, cid, "after")
    for seq in range(999, 960, -1):  # each one before the last: halves the same gap 39 times
        _receive(store, cid, seq)
    assert _bodies(store, cid) == [f"in {s}" for s in range(961, 1001)] + ["after"]


def test_paging_and_unread_follow_the_display_order(store: Store) -> None:
    cid = _contact(store)
    for seq in (1, 2, 4, 5, 3):
        _receive(store, cid, seq)
    rows = store.messages.history(cid, limit=100)
    assert [m.body for m in rows] == ["in 1", "in 2", "in 3", "in 4", "in 5"]
    three = rows[2]
    assert three.id > rows[4].id  # stored last, shown third
    assert [m.body for m in store.messages.history(cid, limit=2, before_id=three.id)] == [
        "in 1",
        "in 2",
    ]
    assert [m.body for m in store.messages.history_after(cid, three.id, limit=5)] == [
        "in 4",
        "in 5",
    ]
    # An anchor that is no row of the conversation (the view's "newest page" sentinel).
    newest = store.messages.history(cid, limit=2, before_id=2**62)
    assert [m.body for m in newest] == ["in 4", "in 5"]
    around = store.messages.history_around(cid, three.id, limit=3)
    assert [m.body for m in around] == ["in 2", "in 3", "in 4"]
    assert [m.body for m in store.messages.unread_incoming(cid)] == [m.body for m in rows]


def test_send_sequence_rises_above_the_last_and_the_clock(store: Store) -> None:
    cid = _contact(store)
    with store.db.transaction():
        first = store.contacts.next_send_seq(cid, 1_000)
        second = store.contacts.next_send_seq(cid, 1_000)  # same millisecond
        third = store.contacts.next_send_seq(cid, 500)  # the clock stepped back
        fourth = store.contacts.next_send_seq(cid, 9_000)
    assert (first, second, third, fourth) == (1_000, 1_001, 1_002, 9_000)


def test_version_2_database_gets_positions_in_row_order(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for name in ("001_initial.sql", "002_contact_muted.sql"):
        sql = resources.files("messenger_tui.storage.schema").joinpath(name).read_text()
        for statement in _split_sql(sql):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO contacts (name, identity, added_at_ms) VALUES ('bob', ?, 1)", (b"b" * 32,)
    )
    for i in range(3):
        conn.execute(
            "INSERT INTO messages (contact_id, message_id, outgoing, body, sent_at_ms, state) "
            "VALUES (1, ?, 0, ?, 1, 'seen')",
            (bytes([i]) * 16, f"old {i}"),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    store = Store.open(path)
    try:
        assert _bodies(store, 1) == ["old 0", "old 1", "old 2"]
        _receive(store, 1, 7)
        _receive(store, 1, 3)
        assert _bodies(store, 1) == ["old 0", "old 1", "old 2", "in 3", "in 7"]
        bob = store.contacts.by_name("bob")
        assert bob is not None
        with store.db.transaction():
            assert store.contacts.next_send_seq(bob.id, 42) == 42
    finally:
        store.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), count=st.integers(min_value=1, max_value=30))
def test_any_arrival_order_shows_the_senders_order(
    tmp_path: Path, data: st.DataObject, count: int
) -> None:
    """Whatever the relay and the retries did to the order of arrival (any permutation),
    with our own replies in between: their messages show in the order they wrote them."""
    arrival = data.draw(st.permutations(range(1, count + 1)))
    replies = data.draw(st.lists(st.booleans(), min_size=count, max_size=count))
    path = tmp_path / f"p{data.draw(st.integers(0, 2**32))}.db"
    store = Store.open(path)
    try:
        cid = _contact(store)
        mine = []
        for seq, reply in zip(arrival, replies, strict=True):
            _receive(store, cid, seq)
            if reply:
                mine.append(f"reply {seq}")
                _send(store, cid, mine[-1])
        shown = _bodies(store, cid)
        assert [b for b in shown if b.startswith("in ")] == [f"in {s}" for s in range(1, count + 1)]
        assert [b for b in shown if b.startswith("reply ")] == mine
    finally:
        store.close()
        path.unlink()

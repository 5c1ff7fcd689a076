"""A group's unread incoming messages are counted and listed by a seek on a partial index
(schema 011), with the same answers as before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_tui.core.message_states import MessageState
from messenger_tui.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


def plan(store: Store, sql: str, params: tuple[object, ...]) -> str:
    return " ".join(
        str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    )


def test_group_unread_count_and_list_use_the_partial_index(store: Store) -> None:
    me, bob = os.urandom(32), os.urandom(32)
    with store.db.transaction():
        team = store.groups.insert(os.urandom(16), "team", b"log", 1).id
        other = store.groups.insert(os.urandom(16), "other", b"log", 1).id
        for i in range(300):
            outgoing = i % 3 == 0
            state: MessageState = "sent" if outgoing else ("seen" if i < 290 else "received")
            store.groups.insert_message(
                team if i % 5 else other,
                me if outgoing else bob,
                os.urandom(16),
                outgoing=outgoing,
                body=f"m{i}",
                sent_at_ms=i,
                state=state,
                kind=("text", "attachment", "voice", "notice")[i % 4],
            )
    count_sql = (
        "SELECT COUNT(*) FROM messages WHERE group_row = ? AND outgoing = 0 "
        "AND kind IN ('text', 'attachment', 'voice') AND state = 'received'"
    )
    assert "messages_group_unread" in plan(store, count_sql, (team,))
    expected = [f"m{i}" for i in range(290, 300) if i % 3 != 0 and i % 4 != 3 and i % 5 != 0]
    assert [m.body for m in store.groups.unread(team)] == expected
    assert store.groups.unread_count(team) == len(expected)
    # Marked read: gone from the index's answers.
    with store.db.transaction():
        store.messages.mark_seen([m.id for m in store.groups.unread(team)])
    assert store.groups.unread(team) == []
    assert store.groups.unread_count(team) == 0

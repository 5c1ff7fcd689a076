"""Opening a conversation finds its unread incoming texts, files and voice messages by a seek
on a partial index (schema 009)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger_tui.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


def test_unread_incoming_uses_the_partial_index_and_stays_correct(store: Store) -> None:
    with store.db.transaction():
        bob = store.contacts.insert("bob", os.urandom(32), 1).id
        for i in range(300):
            store.messages.insert(
                bob,
                os.urandom(16),
                outgoing=i % 3 == 0,
                body=f"m{i}",
                sent_at_ms=i,
                state="sent" if i % 3 == 0 else ("seen" if i < 290 else "received"),
                kind=("text", "attachment", "voice", "notice")[i % 4],
            )
    plan = " ".join(
        str(row[-1])
        for row in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE contact_id = ? AND outgoing = 0 "
            "AND kind IN ('text', 'attachment', 'voice') AND state = 'received' ORDER BY pos",
            (bob,),
        ).fetchall()
    )
    assert "messages_unread_incoming" in plan, plan
    unread = store.messages.unread_incoming(bob)
    expected = [f"m{i}" for i in range(290, 300) if i % 3 != 0 and i % 4 != 3]
    assert [m.body for m in unread] == expected
    assert {m.kind for m in unread} == {"text", "attachment", "voice"}

"""Issue 13, test 3: three users create a group via the CLI with a real relay process, chat,
one is removed and sees nothing afterwards; the relay's database holds each group body once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from messenger_tui.relay.sqlite_store import DB_FILE
from tests.helpers.cli import User
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def shared_bodies(relay: RelayProcess) -> list[tuple[int, int]]:
    """(references, body length) of every shared body the relay holds."""
    db = sqlite3.connect(f"file:{relay.data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        return [
            (int(r), int(n))
            for r, n in db.execute("SELECT refs, length(body) FROM shared_bodies ORDER BY body_id")
        ]
    finally:
        db.close()


def group_texts(user: User) -> list[tuple[str, str, str]]:
    lines = user.run("receive", "--json").message_lines()
    return [(m["group"], m["from"], m["text"]) for m in lines if "group" in m]


def test_group_chat_remove_and_one_body_per_message(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        users = {name: User(tmp_path, name) for name in ("alice", "bob", "carol")}
        addresses = {name: user.init(relay.url) for name, user in users.items()}
        for name, user in users.items():
            for other, address in addresses.items():
                if other != name:
                    user.run("contacts", "add", address, "--name", other)
        alice, bob, carol = users["alice"], users["bob"], users["carol"]

        alice.run("group", "create", "team", "--members", "bob,carol")
        alice.run("group", "send", "team", "hello team")
        alice.run("group", "send", "team", "second")
        # one upload each: two bodies, each referenced by bob's and carol's mailbox
        bodies = shared_bodies(relay)
        assert [refs for refs, _ in bodies] == [2, 2], bodies

        assert group_texts(bob) == [("team", "alice", "hello team"), ("team", "alice", "second")]
        assert group_texts(carol) == [("team", "alice", "hello team"), ("team", "alice", "second")]
        assert shared_bodies(relay) == []  # both acked: the bodies are gone

        bob.run("group", "send", "team", "bob here")
        assert group_texts(carol) == [("team", "bob", "bob here")]
        assert group_texts(alice) == [("team", "bob", "bob here")]
        members = [m["name"] for m in carol.run("group", "members", "team", "--json").json_lines()]
        assert sorted(members) == ["alice", "bob", "me"]

        alice.run("group", "remove", "team", "carol")
        alice.run("group", "send", "team", "after carol")
        # the new body went to bob's mailbox only
        assert [refs for refs, _ in shared_bodies(relay)] == [1]
        bob.run("receive")  # bob learns of the removal (and the message)
        bob.run("send", "team", "bob after carol")  # send takes a group name too
        assert [refs for refs, _ in shared_bodies(relay)] == [1]  # to alice only
        assert group_texts(alice) == [("team", "bob", "bob after carol")]
        assert group_texts(carol) == []
        carol_history = carol.run("group", "history", "team", "--json").json_lines()
        texts = [m["text"] for m in carol_history if m["kind"] == "text"]
        assert texts == ["hello team", "second", "bob here"]
        listed = carol.run("group", "list", "--json").json_lines()
        assert listed[0]["name"] == "team" and listed[0]["member"] is False
        bob_history = bob.run("history", "team", "--json").json_lines()
        assert [m["text"] for m in bob_history if m["kind"] == "text"] == [
            "hello team",
            "second",
            "bob here",
            "after carol",
            "bob after carol",
        ]

        # per-member receipts: bob and carol stored and read alice's first message
        own = [
            m
            for m in alice.run("group", "history", "team", "--json").json_lines()
            if m["direction"] == "out"
        ]
        assert (own[0]["text"], own[0]["delivered"], own[0]["read"]) == ("hello team", 2, 2)

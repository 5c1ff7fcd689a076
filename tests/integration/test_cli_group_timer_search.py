"""The CLI with a group's name: ``timer GROUP [DURATION]`` sets the group's timer for every
member, and ``search`` finds group messages (with the group's name) beside 1:1 ones, through
a real relay process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import User
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def test_group_timer_and_search_from_the_cli(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
        a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
        alice.run("contacts", "add", b_addr, "--name", "bob")
        bob.run("contacts", "add", a_addr, "--name", "alice")
        alice.run("group", "create", "team", "--members", "bob")
        alice.run("send", "bob", "pairwise pizza")
        alice.run("timer", "team", "1h")
        assert "#team: disappearing messages 1 h" in alice.run("timer", "team").out
        alice.run("send", "team", "group pizza")
        lines = bob.run("receive", "--json").json_lines()
        assert {"type": "timer", "group": "team", "seconds": 3600} in lines
        assert "#team: disappearing messages 1 h" in bob.run("timer", "team").out

        hits = bob.run("search", "pizza", "--json").json_lines()
        assert [(h.get("group"), h.get("contact"), h["text"]) for h in hits] == [
            ("team", None, "group pizza"),
            (None, "alice", "pairwise pizza"),
        ]
        assert hits[0]["snippet"] == "group pizza" and hits[0]["from"] == "alice"
        only_group = bob.run("search", "pizza", "--contact", "team", "--json").json_lines()
        assert [h["text"] for h in only_group] == ["group pizza"]
        assert "#team alice: group pizza" in bob.run("search", "pizza").out

"""Peer text printed by `receive` and `history` cannot drive the user's terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import User
from tests.helpers.relay_process import RelayProcess


@pytest.mark.slow
def test_receive_and_history_print_escapes_not_control_bytes(
    tmp_path: Path, relay: RelayProcess
) -> None:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    alice.run("send", "bob", "look \x1b]0;pwned\x07 here")
    for out in (bob.run("receive").out, bob.run("history", "alice").out):
        assert "\x1b" not in out and "\x07" not in out
        assert "look \\x1b]0;pwned\\x07 here" in out
    # JSON output keeps the exact text (json escapes it)
    got = bob.run("history", "alice", "--json").json_lines()
    assert got[0]["text"] == "look \x1b]0;pwned\x07 here"

"""Two people on one machine talk through a real relay process, using only the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import User
from tests.helpers.relay_process import RelayProcess

from .conftest import EchoRelay

pytestmark = pytest.mark.slow


@pytest.fixture
def pair(tmp_path: Path, relay: RelayProcess) -> tuple[User, User]:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr = alice.init(relay.url)
    b_addr = bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    return alice, bob


def test_both_ways_then_offline_backlog_in_order_with_receipts(pair: tuple[User, User]) -> None:
    alice, bob = pair
    alice.run("send", "bob", "hello bob")
    got = bob.run("receive", "--json").json_lines()
    assert [(m["from"], m["text"]) for m in got] == [("alice", "hello bob")]
    assert {"id", "from", "text", "sent_at"} <= set(got[0])

    bob.run("send", "alice", "hi alice")
    lines = alice.run("receive", "--json").json_lines()
    got = [m for m in lines if m["type"] == "message"]
    assert [(m["from"], m["text"]) for m in got] == [("bob", "hi alice")]
    # bob's client stored and read "hello bob": receipts are JSON objects too
    receipts = [(r["state"], r["text"]) for r in lines if r["type"] == "receipt"]
    assert ("delivered", "hello bob") in receipts and ("read", "hello bob") in receipts

    # bob is offline (no process of his runs) while alice sends 20 messages
    texts = [f"offline message {i:02d}" for i in range(20)]
    for text in texts:
        alice.run("send", "bob", text)
    lines = bob.run("receive", "--json").json_lines()
    got = [m for m in lines if m["type"] == "message"]
    assert [m["text"] for m in got] == texts  # all 20, in order, exactly once
    # and alice's receipts for "hi alice", as JSON objects beside the messages
    assert {(r["state"], r["text"]) for r in lines if r["type"] == "receipt"} == {
        ("delivered", "hi alice"),
        ("read", "hi alice"),
    }
    assert len({m["id"] for m in got}) == 20
    assert bob.run("receive", "--json").json_lines() == []  # nothing shown twice

    # alice learns that bob's client stored the messages and that he read them
    alice.run("receive", "--json")
    history = alice.run("history", "bob", "--json", "--limit", "100").json_lines()
    own = [m for m in history if m["direction"] == "out"]
    assert len(own) == 21
    assert all(m["state"] == "read" for m in own), {m["state"] for m in own}
    bob_history = bob.run("history", "alice", "--json", "--limit", "100").json_lines()
    assert [m["text"] for m in bob_history if m["direction"] == "in"] == ["hello bob", *texts]


def test_message_request_from_unknown_sender(tmp_path: Path, relay: RelayProcess) -> None:
    alice, carol = User(tmp_path, "alice"), User(tmp_path, "carol")
    a_addr = alice.init(relay.url)
    carol.init(relay.url)
    carol.run("contacts", "add", a_addr, "--name", "alice")
    carol.run("send", "alice", "you do not know me yet")
    got = alice.run("receive", "--json").json_lines()
    assert [(m["from"], m["text"]) for m in got] == [("carol", "you do not know me yet")]
    listed = alice.run("contacts", "list", "--json").json_lines()
    assert listed[0]["name"] == "carol" and listed[0]["message_request"] is True
    # carol learns her message was delivered, not that a stranger read it
    carol.run("receive")
    states = [m["state"] for m in carol.run("history", "alice", "--json").json_lines()]
    assert states == ["delivered"]
    # once alice accepts the request, reading sends receipts again
    alice.run("contacts", "add", carol.address, "--name", "carol")
    carol.run("send", "alice", "now you know me")
    alice.run("receive")
    carol.run("receive")
    states = [m["state"] for m in carol.run("history", "alice", "--json").json_lines()]
    assert states == ["delivered", "read"]


def test_echo_contact_replies(tmp_path: Path, relay_with_echo: tuple[EchoRelay, str]) -> None:
    relay, echo_address = relay_with_echo
    me = User(tmp_path, "me")
    me.init(relay.url)
    me.run("contacts", "add", echo_address, "--name", "Echo")
    me.run("send", "Echo", "ping through the ratchet")
    lines = me.run("receive", "--json", "--timeout", "20").json_lines()
    got = [m for m in lines if m["type"] == "message"]
    assert [m["text"] for m in got] == ["echo: ping through the ratchet"]
    assert all(r["type"] == "receipt" for r in lines if r not in got)

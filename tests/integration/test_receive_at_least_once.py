"""`receive --json` under SIGKILL: every message is printed, none is marked read unprinted, and
a crash prints at most the one line it interrupted again (same `id`, the documented dedupe key).
Also: delivered/read receipts are JSON objects. The relay is a real process; so is `receive`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from messenger_tui.core.address import decode_address
from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.clients import client, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow
COUNT = 1500
TRIALS = 12


def _read_lines_then_kill(home: Path, kill_after: int) -> tuple[list[dict[str, object]], bool]:
    """Run `receive --json --follow`, SIGKILL it after ``kill_after`` message lines, and return
    every line it printed (including what was still in the pipe) and whether it was killed."""
    proc = subprocess.Popen(
        cli_command(home, "receive", "--json", "--follow"),
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[dict[str, object]] = []
    killed = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
        if sum(1 for m in lines if m["type"] == "message") >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    if not killed:
        os.kill(proc.pid, signal.SIGKILL)
    lines.extend(json.loads(rest) for rest in proc.stdout.read().splitlines() if rest.strip())
    proc.wait(10)
    proc.stdout.close()
    return lines, killed


async def test_sigkill_mid_print_repeats_at_most_one_line_per_crash(
    tmp_path: Path, relay: RelayProcess
) -> None:
    texts = [f"line {i:04d}" for i in range(COUNT)]
    bob = User(tmp_path, "bob")
    async with client(tmp_path, "alice", relay.url) as alice:
        bob_addr = bob.init(relay.url)
        alice.add_contact(bob_addr, "bob")
        bob.run("contacts", "add", alice.address, "--name", "alice")
        await alice.connect(timeout=10)
        # Bob's client grants alice his delivery secret when it next connects (see
        # test_crash_safety.py); without it her burst would wait as a message request.
        bob.run("receive", "--timeout", "5")
        bob_id = decode_address(bob_addr)
        await wait_for(lambda: alice.store.contacts.delivery_access(bob_id) is not None, 30)
        for text in texts:
            await alice.send_text(alice.contact("bob").id, text)
        await wait_for(lambda: alice.outbox_count() == 0, timeout=60)

    rng = random.Random(11)
    printed: list[dict[str, object]] = []
    kills = 0
    for _ in range(TRIALS):
        remaining = COUNT - len({m["id"] for m in printed})
        if remaining <= 1:
            break
        lines, killed = _read_lines_then_kill(bob.home, rng.randint(1, 20))
        got = [m for m in lines if m["type"] == "message"]
        # A kill that landed mid-print: the run printed only part of what was left.
        kills += killed and len({m["id"] for m in got}) < remaining
        printed.extend(got)
        print(f"trial: {len(got)} lines of {remaining} left, killed={killed}")
    printed.extend(m for m in bob.run("receive", "--json").json_lines() if m["type"] == "message")

    ids = [m["id"] for m in printed]
    by_id: dict[object, str] = {}
    for m in printed:
        assert isinstance(m["text"], str), m
        by_id[m["id"]] = m["text"]
    duplicates = len(ids) - len(set(ids))
    assert kills >= 5, kills  # kills that landed mid-print
    assert sorted(by_id.values()) == texts  # every message printed: nothing marked unprinted
    print(f"{kills} kills mid-print, {len(ids)} lines printed, {duplicates} duplicates")
    assert duplicates <= kills, (duplicates, kills)  # at most the interrupted line per crash
    deduped = list(dict.fromkeys(ids))
    assert [by_id[i] for i in deduped] == texts  # in the sender's order
    assert bob.run("receive", "--json").json_lines() == []  # all marked read now


def test_receive_json_reports_delivered_and_read_receipts(
    tmp_path: Path, relay: RelayProcess
) -> None:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    alice.run("send", "bob", "did you get this?")
    sent = alice.run("history", "bob", "--json").json_lines()[-1]
    bob.run("receive", "--json", "--no-read")  # stored: a delivery receipt only
    lines = alice.run("receive", "--json").json_lines()
    assert lines == [
        {
            "type": "receipt",
            "state": "delivered",
            "id": sent["id"],
            "contact": "bob",
            "text": "did you get this?",
            "sent_at_ms": sent["sent_at_ms"],
        }
    ]
    bob.run("receive", "--json")  # now read
    lines = alice.run("receive", "--json").json_lines()
    assert [(r["type"], r["state"], r["id"]) for r in lines] == [("receipt", "read", sent["id"])]

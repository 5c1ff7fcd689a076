"""Disappearing messages end to end, through a real relay process (issue 13, test 4).

A 5 s timer and 50 messages read by the recipient: 6 s after the read no byte of them is in
either profile directory, neither in the raw files (database, WAL, shm, logs, identity) nor in
any page of the database and WAL decrypted with the profile's key (free pages included), and
search finds nothing; the same when both processes were SIGKILLed before the expiry and
started again after it. Two members changing the timer at once converge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.profile import ProfilePaths, open_profile
from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.clients import client, introduce, next_event, wait_for
from tests.helpers.relay_process import RelayProcess
from tests.helpers.sqlcipher_pages import database_plaintext, wal_plaintext

pytestmark = pytest.mark.slow

MARKER = "vanishmarker"
KEPT = "keptmarker"
COUNT = 50


class Follow:
    """``messenger-tui receive --follow --json`` in the background, its lines collected."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            cli_command(home, "receive", "--follow", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(),
        )
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.append(json.loads(line))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line.get("type") == kind]

    def wait(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(f"receive --follow exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; lines so far: {self.lines[-5:]}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def following(home: Path) -> Iterator[Follow]:
    f = Follow(home)
    try:
        yield f
    finally:
        f.stop(signal.SIGKILL)


def db_key(home: Path) -> bytes:
    profile = open_profile(home, None)
    try:
        key = profile.store.db._key
        assert key is not None
        return key
    finally:
        profile.close()


def traces(home: Path, key: bytes, needle: bytes) -> list[str]:
    """Where ``needle`` still is: raw files under ``home``, and decrypted database/WAL pages."""
    found = [str(p) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]
    database = ProfilePaths(home).database
    if needle in database_plaintext(key, database):
        found.append(f"{database.name} (decrypted)")
    if needle in wal_plaintext(key, database.with_name(database.name + "-wal")):
        found.append(f"{database.name}-wal (decrypted)")
    return found


def setup_pair(tmp_path: Path, relay: RelayProcess, timer: str) -> tuple[User, User]:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    # A message from before the timer: it stays (the decryption below must find it).
    alice.run("send", "bob", f"{KEPT} from before the timer")
    bob.run("receive", "--json")
    alice.run("timer", "bob", timer)
    assert f"{int(timer[:-1])} s" in alice.run("timer", "bob").out
    return alice, bob


def send_many(root: Path, relay_url: str) -> None:
    async def go() -> None:
        async with client(root, "alice", relay_url) as alice:
            await alice.connect(timeout=10)
            for i in range(COUNT):
                await alice.send_text(alice.contact("bob").id, f"{MARKER} number {i:02d}")
            assert await alice.wait_outbox_empty(60)

    asyncio.run(go())


def marker_lines(f: Follow) -> list[dict[str, Any]]:
    return [m for m in f.of_type("message") if MARKER in m["text"]]


def assert_gone_and_kept(user: User, contact: str) -> None:
    assert user.run("search", MARKER, "--json").json_lines() == []
    history = user.run("history", contact, "--json", "--limit", "500").json_lines()
    texts = [m["text"] for m in history]
    assert not [t for t in texts if MARKER in t]
    assert any(KEPT in t for t in texts)


def test_expired_messages_leave_no_byte_in_either_profile(
    tmp_path: Path, relay: RelayProcess
) -> None:
    alice, bob = setup_pair(tmp_path, relay, "5s")
    keys = {u.name: db_key(u.home) for u in (alice, bob)}
    with following(bob.home) as bob_rx:
        bob_rx.wait(lambda: bool(bob_rx.of_type("timer")))
        assert bob_rx.of_type("timer")[0] == {"type": "timer", "contact": "alice", "seconds": 5}
        send_many(tmp_path, relay.url)
        with following(alice.home) as alice_rx:
            bob_rx.wait(lambda: len(marker_lines(bob_rx)) == COUNT)
            read_at = time.monotonic()  # receive marks each line read as it prints it
            bob_rx.wait(lambda: sum(e["count"] for e in bob_rx.of_type("expired")) >= COUNT)
            expired_after = time.monotonic() - read_at
            time.sleep(max(0.0, read_at + 6.0 - time.monotonic()))
            # Both processes still run: the scheduler purged and checkpointed.
            for user in (alice, bob):
                assert traces(user.home, keys[user.name], MARKER.encode()) == []
                assert traces(user.home, keys[user.name], KEPT.encode()), "control not found"
            alice_rx.stop()
        bob_rx.stop()
    assert expired_after <= 6.0, expired_after
    assert_gone_and_kept(bob, "alice")
    assert_gone_and_kept(alice, "bob")


def test_expiry_while_killed_is_purged_at_the_next_start(
    tmp_path: Path, relay: RelayProcess
) -> None:
    # 10 s: room to start alice's process and kill it before her copies expire.
    alice, bob = setup_pair(tmp_path, relay, "10s")
    keys = {u.name: db_key(u.home) for u in (alice, bob)}
    with following(bob.home) as bob_rx:
        bob_rx.wait(lambda: bool(bob_rx.of_type("timer")))
        send_many(tmp_path, relay.url)
        bob_rx.wait(lambda: len(marker_lines(bob_rx)) == COUNT)
        read_at = time.monotonic()
        with following(alice.home) as alice_rx:
            alice_rx.wait(lambda: len(alice_rx.of_type("receipt")) >= COUNT)
            alice_rx.stop(signal.SIGKILL)  # before alice's copies expire (10 s after sending)
            assert not alice_rx.of_type("expired")
        bob_rx.stop(signal.SIGKILL)
        assert not bob_rx.of_type("expired")
    time.sleep(max(0.0, read_at + 11.0 - time.monotonic()))
    # Nothing ran at the expiry: the messages are still on disk (control), until a start.
    for user in (alice, bob):
        assert traces(user.home, keys[user.name], MARKER.encode()), user.name
    assert bob.run("search", MARKER, "--json").json_lines() == []  # purged before the search
    assert alice.run("search", MARKER, "--json").json_lines() == []
    for user in (alice, bob):
        assert traces(user.home, keys[user.name], MARKER.encode()) == []
    assert_gone_and_kept(bob, "alice")
    assert_gone_and_kept(alice, "bob")


async def test_two_members_changing_the_timer_at_once_converge(
    tmp_path: Path, relay: RelayProcess
) -> None:
    async with (
        client(tmp_path, "alice", relay.url) as alice,
        client(tmp_path, "bob", relay.url) as bob,
    ):
        await introduce(alice, bob)
        await alice.start()
        await bob.start()
        a_events, b_events = alice.subscribe(), bob.subscribe()
        for round_no, (a_value, b_value) in enumerate([(300, 60), (0, 3600), (30, 5)]):
            # Both change it from the same version, before either hears of the other's change.
            alice.set_disappearing_timer(alice.contact("bob").id, a_value)
            bob.set_disappearing_timer(bob.contact("alice").id, b_value)
            winner = a_value if alice.identity.public > bob.identity.public else b_value

            def converged(w: int = winner) -> bool:
                return (
                    alice.disappearing_timer(alice.contact("bob").id) == w
                    and bob.disappearing_timer(bob.contact("alice").id) == w
                )

            await wait_for(converged, timeout=30)
            a_setting = alice._timers.current(alice.contact("bob").id)
            b_setting = bob._timers.current(bob.contact("alice").id)
            assert a_setting == b_setting and a_setting.version == round_no + 1
        # A text sent now carries the converged timer and does not change it.
        await alice.send_text(alice.contact("bob").id, "after the race")
        await next_event(b_events, ev.MessageReceived)
        bob_timer = bob.disappearing_timer(bob.contact("alice").id)
        assert bob_timer == alice.disappearing_timer(alice.contact("bob").id)
        del a_events

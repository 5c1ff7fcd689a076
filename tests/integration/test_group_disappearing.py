"""Disappearing messages in a group, end to end through a real relay process (issue 13, test 4
for groups): a member sets the group's timer in the group channel and every member takes it;
messages expire on every member's profile (no byte of them left in any profile directory,
decrypted pages included; search finds nothing; the purge names the group); two members who
change the timer at once converge on the same setting on every member; an expiry while the
profile was closed is purged at the next start.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from messenger_tui.storage.expiry import group_conversation
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess
from tests.integration.test_disappearing import db_key, traces

pytestmark = pytest.mark.slow

MARKER = "groupvanish"
KEPT = "groupkept"
NAMES = ("alice", "bob", "carol")


def group_texts(s: MessengerService, marker: str) -> list[str]:
    return [m.text for m in s.groups.history("team", limit=500) if marker in m.text]


def expired_of(events: list[ev.Event]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for e in events:
        if isinstance(e, ev.GroupMessagesExpired):
            counts[e.group_row] = counts.get(e.group_row, 0) + len(e.message_rows)
        assert not isinstance(e, ev.MessagesExpired), "a group purge named a contact"
    return counts


async def collect(queue: asyncio.Queue[ev.Event], into: list[ev.Event]) -> None:
    while True:
        into.append(await queue.get())


async def three_in_a_group(
    alice: MessengerService, bob: MessengerService, carol: MessengerService
) -> None:
    await introduce(alice, bob)
    await introduce(alice, carol)
    await introduce(bob, carol)
    for s in (alice, bob, carol):
        await s.start()
    alice.groups.create("team", ["bob", "carol"])
    await wait_for(lambda: all(len(s.groups.all()) == 1 for s in (bob, carol)))


async def test_group_messages_expire_on_every_member(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
            client(tmp_path, "carol", relay.url) as carol,
        ):
            members = (alice, bob, carol)
            await three_in_a_group(alice, bob, carol)
            alice.groups.send_text("team", f"{KEPT} from before the timer")
            await wait_for(lambda: all(group_texts(s, KEPT) for s in members))

            seen: dict[str, list[ev.Event]] = {s.name: [] for s in members}
            tasks = [asyncio.create_task(collect(s.subscribe(), seen[s.name])) for s in members]
            assert alice.groups.set_timer("team", 5)
            assert not alice.groups.set_timer("team", 5)  # unchanged: nothing sent
            await wait_for(lambda: all(s.groups.timer("team") == 5 for s in members))
            # stored first, then the event reaches each subscriber's queue and `collect`
            await wait_for(
                lambda: all(
                    any(isinstance(e, ev.GroupTimerChanged) for e in seen[s.name])
                    for s in (bob, carol)
                )
            )
            for s in (bob, carol):
                changed = [e for e in seen[s.name] if isinstance(e, ev.GroupTimerChanged)]
                assert [(e.group.name, e.seconds, e.by_me) for e in changed] == [("team", 5, False)]

            for i in range(20):
                sender = (alice, bob)[i % 2]
                sender.groups.send_text("team", f"{MARKER} number {i:02d}")
            await wait_for(lambda: all(len(group_texts(s, MARKER)) == 20 for s in members))
            assert await alice.groups.wait_sent(30) and await bob.groups.wait_sent(30)
            # Stored under the timer, and only the sender's copies count yet.
            for s in members:
                rows = s.store.db.execute(
                    "SELECT expire_after_s, expires_at_ms IS NOT NULL, outgoing FROM messages "
                    "WHERE body LIKE ?",
                    (f"{MARKER}%",),
                ).fetchall()
                assert len(rows) == 20 and {r[0] for r in rows} == {5}
                assert all(bool(r[1]) == bool(r[2]) for r in rows), s.name
            for s in members:
                s.groups.mark_read("team")
            read_at = asyncio.get_running_loop().time()
            group_rows = {s.name: s.groups.group("team").id for s in members}

            def all_expired() -> bool:
                return all(
                    expired_of(seen[s.name]).get(group_rows[s.name], 0) >= 20 for s in members
                )

            await wait_for(all_expired, timeout=15)
            assert asyncio.get_running_loop().time() - read_at <= 6.5
            for t in tasks:
                t.cancel()
            for s in members:
                assert s.groups.search(MARKER) == []
                assert s.search(MARKER) == []
                assert group_texts(s, MARKER) == []
                assert group_texts(s, KEPT), "the message from before the timer stays"
                assert "set disappearing messages to 5 s" in " ".join(
                    m.text for m in s.groups.history("team", limit=500)
                )
            keys = {s.name: db_key_of(s) for s in members}
        # Every process closed: no byte of the expired messages in any profile directory.
        for name in NAMES:
            assert traces(tmp_path / name, keys[name], MARKER.encode()) == [], name
            assert traces(tmp_path / name, keys[name], KEPT.encode()), "control not found"


def db_key_of(s: MessengerService) -> bytes:
    key = s.store.db._key
    assert key is not None
    return key


async def test_expiry_while_closed_is_purged_at_the_next_start(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
            client(tmp_path, "carol", relay.url) as carol,
        ):
            await three_in_a_group(alice, bob, carol)
            bob.groups.set_timer("team", 3)
            await wait_for(lambda: all(s.groups.timer("team") == 3 for s in (alice, carol)))
            for i in range(10):
                alice.groups.send_text("team", f"{MARKER} {i}")
            await wait_for(lambda: len(group_texts(carol, MARKER)) == 10)
            carol.groups.mark_read("team")
        # carol's copies expire while nothing runs
        await asyncio.sleep(3.5)
        assert traces(tmp_path / "carol", db_key(tmp_path / "carol"), MARKER.encode())
        async with client(tmp_path, "carol", relay.url) as carol:
            # purged when the service was built, before anything is shown
            assert group_texts(carol, MARKER) == []
            assert carol.groups.search(MARKER) == []
            key = db_key_of(carol)
        assert traces(tmp_path / "carol", key, MARKER.encode()) == []


async def test_two_members_changing_the_group_timer_at_once_converge(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
            client(tmp_path, "carol", relay.url) as carol,
        ):
            members = (alice, bob, carol)
            await three_in_a_group(alice, bob, carol)
            for round_no, (a_value, b_value) in enumerate([(300, 60), (0, 3600), (30, 5)]):
                # Both change it from the same version before either hears of the other's.
                alice.groups.set_timer("team", a_value)
                bob.groups.set_timer("team", b_value)
                winner = a_value if alice.identity.public > bob.identity.public else b_value

                def converged(w: int = winner) -> bool:
                    return all(s.groups.timer("team") == w for s in members)

                await wait_for(converged, timeout=30)
                settings = {
                    s.store.expiry.timer(group_conversation(s.groups.group("team").id))
                    for s in members
                }
                assert len(settings) == 1
                (setting,) = settings
                assert setting.version == round_no + 1
            # A text carries the converged timer and changes nothing.
            carol.groups.send_text("team", "after the race")
            await wait_for(lambda: any(group_texts(s, "after the race") for s in (alice, bob)))
            await wait_for(lambda: all(group_texts(s, "after the race") for s in (alice, bob)))
            assert len({s.groups.timer("team") for s in members}) == 1

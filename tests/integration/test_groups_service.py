"""Group chats through the real service and a real relay process (in-process clients).

Three people: alice creates a group with bob and carol, everyone chats, receipts come back
per member, alice removes carol; carol keeps every key she had and reads nothing sent after;
bob and alice rotated their sender keys before sending again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from messenger_tui.app.group_models import GroupMessage
from messenger_tui.app.service import MessengerService
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def texts(service: MessengerService, group: str) -> list[tuple[str, str]]:
    return [
        (m.sender_name, m.text)
        for m in service.groups.history(group, limit=500)
        if m.kind == "text"
    ]


def own(service: MessengerService, group: str) -> list[GroupMessage]:
    return [m for m in service.groups.history(group, limit=500) if m.outgoing]


async def test_create_chat_receipts_remove(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
            client(tmp_path, "carol", relay.url) as carol,
        ):
            await introduce(alice, bob)
            await introduce(alice, carol)
            await introduce(bob, carol)
            for s in (alice, bob, carol):
                await s.start()

            group = alice.groups.create("team", ["bob", "carol"])
            assert group.admin and len(group.members) == 3
            await wait_for(lambda: len(bob.groups.all()) == 1 and len(carol.groups.all()) == 1)

            def keys(s: MessengerService) -> list[tuple[bytes, bool]]:
                return [(m.identity, m.admin) for m in s.groups.group("team").members]

            assert keys(bob) == keys(carol) == keys(alice)

            alice.groups.send_text("team", "hello team")
            await wait_for(lambda: ("alice", "hello team") in texts(bob, "team"))
            await wait_for(lambda: ("alice", "hello team") in texts(carol, "team"))
            bob.groups.send_text("team", "hi from bob")
            await wait_for(lambda: ("bob", "hi from bob") in texts(carol, "team"))
            await wait_for(lambda: ("bob", "hi from bob") in texts(alice, "team"))

            # per-member receipts: both members stored alice's message, then read it
            await wait_for(lambda: own(alice, "team")[0].delivered == 2)
            bob.groups.mark_read("team")
            carol.groups.mark_read("team")
            await wait_for(lambda: own(alice, "team")[0].read == 2)
            assert own(alice, "team")[0].recipients == 2

            alice.groups.remove("team", ["carol"])
            await wait_for(lambda: not carol.groups.group("team").is_member)
            await wait_for(lambda: len(bob.groups.group("team").members) == 2)
            carol_keys = dict(
                carol.store.db.execute("SELECT sender, record FROM group_sender_keys").fetchall()
            )
            alice.groups.send_text("team", "after carol left")
            bob.groups.send_text("team", "bob after carol left")
            await wait_for(lambda: ("alice", "after carol left") in texts(bob, "team"))
            await wait_for(lambda: ("bob", "bob after carol left") in texts(alice, "team"))
            await asyncio.sleep(1.0)
            assert ("alice", "after carol left") not in texts(carol, "team")
            assert ("bob", "bob after carol left") not in texts(carol, "team")
            assert carol_keys  # she kept every key she had; none opens the new messages
            # alice and bob started new sender keys after the removal
            alice_row = alice.store.groups.by_id(group.id)
            assert alice_row is not None and not alice_row.rotate

"""The short fan-out form through the real service and a real relay process.

alice, bob and carol in a group: once each member registered its grants, a group message
names its recipients by 8-byte reference (none in the long form); after alice removes carol,
bob's and alice's grants drop carol's key, and the relay refuses carol's short send to them
(``not_granted``) with the credential she still holds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from messenger_tui.app.group_grants import sending_credential
from messenger_tui.app.group_sender import GroupSender
from messenger_tui.app.service import MessengerService
from messenger_tui.core import wire
from messenger_tui.core.groups import send_credential as sc
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.relay.sqlite_store import DB_FILE
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def sender_of(service: MessengerService) -> GroupSender:
    group_sender = service._group_sender
    assert isinstance(group_sender, GroupSender)
    return group_sender


def texts(service: MessengerService) -> list[tuple[str, str]]:
    return [
        (m.sender_name, m.text)
        for m in service.groups.history("team", limit=100)
        if m.kind == "text"
    ]


def grants_of(relay: RelayProcess) -> set[tuple[bytes, bytes, bytes]]:
    """(recipient, sender, verifier) rows of the running relay's grant table."""
    db = sqlite3.connect(f"file:{relay.data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT recipient, sender, verifier FROM group_grants").fetchall()
        return {(bytes(r[0]), bytes(r[1]), bytes(r[2])) for r in rows}
    finally:
        db.close()


def credential_of(service: MessengerService) -> bytes:
    (row,) = service.store.groups.by_name("team")
    assert row.sending_key is not None
    return sending_credential(msgspec.msgpack.decode(row.sending_key, type=sk.SendingSenderKey))


async def test_short_form_and_removed_members_credential_refused(tmp_path: Path) -> None:
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
            a, b, c = (s.identity.public for s in (alice, bob, carol))

            alice.groups.create("team", ["bob", "carol"])
            await wait_for(lambda: len(bob.groups.all()) == 1 and len(carol.groups.all()) == 1)
            # Everyone sends once (distributing its sender key); then every member grants
            # the other two.
            for s, text in ((alice, "hello"), (bob, "hi"), (carol, "hey")):
                s.groups.send_text("team", text)
            await wait_for(lambda: all(len(texts(s)) == 3 for s in (alice, bob, carol)))

            def granted() -> set[tuple[bytes, bytes]]:
                return {(recipient, sender) for recipient, sender, _ in grants_of(relay)}

            everyone = {(x, y) for x in (a, b, c) for y in (a, b, c) if x != y}
            await wait_for(lambda: granted() == everyone)

            # Now a message names both recipients by reference, none by identity.
            before = sender_of(alice).named_short, sender_of(alice).named_long
            alice.groups.send_text("team", "short form")
            await wait_for(lambda: ("alice", "short form") in texts(bob))
            await wait_for(lambda: ("alice", "short form") in texts(carol))
            assert sender_of(alice).named_short == before[0] + 2
            assert sender_of(alice).named_long == before[1]

            carol_credential = credential_of(carol)
            alice.groups.remove("team", ["carol"])
            await wait_for(lambda: not carol.groups.group("team").is_member)
            await wait_for(lambda: len(bob.groups.group("team").members) == 2)
            # bob and alice dropped carol's key: their grants of her went.
            await wait_for(lambda: not {(b, c), (a, c)} & granted())

            # carol still holds her credential; the relay refuses it for both of them.
            refs = b"".join(sc.recipient_ref(carol_credential, who) for who in (a, b))
            answer = await carol._client.submit_short(b"\x01" * 16, b"body", carol_credential, refs)
            assert [r.code for r in answer.results] == [wire.ErrorCode.NOT_GRANTED] * 2

            # The remaining members still reach each other (short or, until the new key's
            # grant is in, long form).
            bob.groups.send_text("team", "after carol")
            await wait_for(lambda: ("bob", "after carol") in texts(alice))

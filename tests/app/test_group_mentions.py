"""Mentions, group typing, the per-member receipt list and group mute at the app level,
with real crypto and stores and the transport by hand (the helpers of test_groups.py)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from messenger_tui.app import events as ev
from messenger_tui.app.models import Contact
from messenger_tui.app.rows import contact_model
from messenger_tui.core import payload as pl

from .test_groups import (
    Member,
    deliver_group,
    deliver_pairwise,
    group_bodies,
    member,
    pairwise,
    trio,
)

__all__ = ["trio"]  # the fixture

Trio = tuple[Member, Member, Member]


def received(m: Member) -> list[ev.GroupMessageReceived]:
    return [e for e in m.events if isinstance(e, ev.GroupMessageReceived)]


def test_mentions_travel_as_keys_and_mark_only_the_mentioned(tmp_path: Path, trio: Trio) -> None:
    a, b, c = trio
    outsider = member(tmp_path, "outsider")
    # a non-member and the sender itself are left out of the list
    a.chats.send_text("team", "@bob look", [b.key, a.key, outsider.key])
    body = group_bodies(a, b)
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    deliver_group(a, b, body)
    deliver_group(a, c, group_bodies(a, c))
    assert [e.mentioned for e in received(b)] == [True]
    assert [e.mentioned for e in received(c)] == [False]


def test_a_text_without_the_field_mentions_no_one(trio: Trio) -> None:
    a, b, _ = trio
    a.chats.send_text("team", "@bob plain, no list")
    deliver_pairwise(a, b)
    deliver_group(a, b, group_bodies(a, b))
    assert [e.mentioned for e in received(b)] == [False]  # the text alone never mentions


def test_old_group_text_decodes_and_mentions_are_bounded() -> None:
    old = msgspec.msgpack.encode({"t": "group_text", "id": b"i" * 16, "text": "x", "sent_at_ms": 1})
    decoded = pl.decode_payload(old)
    assert isinstance(decoded, pl.GroupText) and decoded.mentions is None
    too_many = pl.GroupText(id=b"i" * 16, text="x", sent_at_ms=1, mentions=[b"k" * 32] * 257)
    try:
        pl.decode_payload(pl.encode_payload(too_many))
    except pl.MalformedPayload:
        pass
    else:
        raise AssertionError("257 mentions decoded")


def test_group_typing_from_members_only(tmp_path: Path, trio: Trio) -> None:
    a, b, _ = trio
    group_id = a.chats.group("team").group_id
    got = b.inbound.typing(a.key, pl.GroupTyping(group_id=group_id, active=True))
    assert got is not None and got.active and got.name == "alice"
    assert got.group.name == "team"
    stranger = member(tmp_path, "mallory")
    assert b.inbound.typing(stranger.key, pl.GroupTyping(group_id=group_id, active=True)) is None
    assert b.inbound.typing(a.key, pl.GroupTyping(group_id=b"?" * 16, active=True)) is None
    assert b.chats.group("team").dropped == 0  # typing is never counted as a dropped message


async def test_send_typing_goes_to_contact_members(trio: Trio) -> None:
    a, _, _ = trio
    sent: list[tuple[str, pl.GroupTyping]] = []

    async def typing_to(contact: Contact, payload: pl.GroupTyping) -> None:
        sent.append((contact.name, payload))

    def contact_of(contact_id: int) -> Contact | None:
        row = a.store.contacts.by_id(contact_id)
        return contact_model(row) if row is not None else None

    a.chats._typing_to = typing_to
    a.chats._contact_of = contact_of
    await a.chats.send_typing("team", True)
    assert sorted(name for name, _ in sent) == ["bob", "carol"]
    assert all(p.active and p.group_id == a.chats.group("team").group_id for _, p in sent)


def test_receipts_list_who_read_who_got_who_waits(trio: Trio) -> None:
    a, b, c = trio
    mine = a.chats.send_text("team", "hi")
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    deliver_group(a, b, group_bodies(a, b))
    deliver_pairwise(b, a)  # bob: delivered
    b.chats.mark_read("team")
    deliver_pairwise(b, a)  # bob: read
    assert a.chats.receipts(mine) == [("bob", "read"), ("carol", "waiting")]
    deliver_group(a, c, group_bodies(a, c))
    deliver_pairwise(c, a)
    assert a.chats.receipts(mine) == [("bob", "read"), ("carol", "delivered")]
    assert pairwise(a, b) == []


def test_group_mute_is_kept(trio: Trio) -> None:
    a, _, _ = trio
    assert not a.chats.group("team").muted
    assert a.chats.set_muted("team", True).muted
    assert a.chats.group("team").muted
    assert not a.chats.set_muted("team", False).muted

"""The app's group part with real crypto and real stores, the transport faked by hand: what
one member queues (pairwise outbox rows, group outbox rows) is handed to another's
GroupInbound. Covers the rules of app/groups.py and app/group_inbound.py that the end-to-end
tests do not reach: held messages and resend requests, non-members dropped and counted,
invitations from strangers ignored, rotation after a removal, the migration of 1:1 rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_book import PAIRWISE_KIND, GroupBook
from messenger_tui.app.group_inbound import GroupInbound
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.models import Contact
from messenger_tui.app.rows import contact_model
from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.storage.db import _split_sql
from messenger_tui.storage.store import Store


@dataclass
class Member:
    name: str
    identity: IdentityKeyPair
    store: Store
    chats: GroupChats
    inbound: GroupInbound
    events: list[ev.Event]

    @property
    def key(self) -> bytes:
        return self.identity.public


def member(tmp_path: Path, name: str) -> Member:
    store = Store.open(tmp_path / f"{name}.db")
    identity = IdentityKeyPair.generate()
    directory = ContactDirectory(store.contacts)
    book = GroupBook(store, identity.public, directory, lambda: 1_000)
    events: list[ev.Event] = []

    def contact(n: str) -> Contact:
        row = store.contacts.by_name(n)
        if row is None:
            raise BadInput(f"no contact {n}")
        return contact_model(row)

    chats = GroupChats(
        store,
        identity,
        book,
        contact=contact,
        own_name=lambda: name,
        now_ms=lambda: 1_000,
        emit=events.append,
        wake=lambda: None,
    )
    return Member(name, identity, store, chats, GroupInbound(store, book, lambda: 1_000), events)


def befriend(*members: Member) -> None:
    for a in members:
        for b in members:
            if a is not b:
                with a.store.db.transaction():
                    a.store.contacts.insert(b.name, b.key, 0)


def pairwise(sender: Member, to: Member) -> list[pl.Payload]:
    """The group control payloads ``sender`` queued to ``to``, taken out of its outbox."""
    rows = [r for r in sender.store.outbox.pending() if r.recipient == to.key]
    for r in rows:
        sender.store.outbox.remove(r.seq)
    return [pl.decode_payload(r.payload) for r in rows if r.kind == PAIRWISE_KIND]


def deliver_pairwise(sender: Member, to: Member) -> None:
    contact = to.store.contacts.by_identity(sender.key)
    with to.store.db.transaction():
        for payload in pairwise(sender, to):
            to.inbound.on_pairwise(contact, sender.key, payload, to.events)


def group_bodies(sender: Member, to: Member) -> list[bytes]:
    """The group messages ``sender`` queued for ``to`` (crossed off as stored)."""
    bodies = []
    for row in sender.store.groups.pending_sends():
        if to.key in row.recipients:
            bodies.append(row.body)
            with sender.store.db.transaction():
                sender.store.groups.stored_for(row.seq, [to.key])
    return bodies


def deliver_group(sender: Member, to: Member, bodies: list[bytes]) -> None:
    with to.store.db.transaction():
        for body in bodies:
            frame = wire.Deliver(
                id=b"\x00" * 16, sender=sender.key, body=body, stored_at_ms=0, header=b""
            )
            to.inbound.on_group_message(frame, to.events)
        to.inbound.flush_receipts()


def texts(m: Member, group: str = "team") -> list[str]:
    return [x.text for x in m.chats.history(group) if x.kind == "text"]


@pytest.fixture
def trio(tmp_path: Path) -> tuple[Member, Member, Member]:
    a, b, c = member(tmp_path, "alice"), member(tmp_path, "bob"), member(tmp_path, "carol")
    befriend(a, b, c)
    a.chats.create("team", ["bob", "carol"])
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    return a, b, c


def test_create_send_receive_and_receipts(trio: tuple[Member, Member, Member]) -> None:
    a, b, _ = trio
    assert [g.name for g in b.chats.all()] == ["team"]
    a.chats.send_text("team", "hello")
    deliver_pairwise(a, b)  # the sender key first, as the group outbox orders it
    deliver_group(a, b, group_bodies(a, b))
    assert texts(b) == ["hello"]
    assert any(isinstance(e, ev.GroupMessageReceived) for e in b.events)
    deliver_pairwise(b, a)  # bob's delivered receipt
    assert a.chats.history("team")[-1].delivered == 1
    b.chats.mark_read("team")
    deliver_pairwise(b, a)
    mine = a.chats.history("team")[-1]
    assert (mine.delivered, mine.read, mine.recipients) == (1, 1, 2)


def test_message_before_its_key_is_held_asked_for_and_released(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, _ = trio
    a.chats.send_text("team", "early")
    keys = pairwise(a, b)  # the key travels late
    deliver_group(a, b, group_bodies(a, b))
    assert texts(b) == []
    row = b.store.groups.by_group_id(b.chats.group("team").group_id)
    assert row is not None and row.pending is not None  # held, not dropped
    requests = pairwise(b, a)
    assert [type(p) for p in requests] == [pl.GroupKeyRequest]
    with b.store.db.transaction():
        for payload in keys:
            b.inbound.on_pairwise(None, a.key, payload, b.events)
    assert texts(b) == ["early"]


def test_non_member_message_dropped_and_counted(
    tmp_path: Path, trio: tuple[Member, Member, Member]
) -> None:
    a, b, _ = trio
    mallory = member(tmp_path, "mallory")
    sending = sk.new_sender_key(a.chats.group("team").group_id)
    text = pl.GroupText(id=b"m" * 16, text="let me in", sent_at_ms=0)
    _, body = sk.group_encrypt(sending, pl.encode_payload(text))
    deliver_group(mallory, b, [body])
    assert texts(b) == [] and b.chats.group("team").dropped == 1


def test_invitation_from_a_stranger_is_ignored(tmp_path: Path) -> None:
    a, stranger = member(tmp_path, "alice"), member(tmp_path, "eve")
    befriend(stranger, a)  # eve knows alice; alice does not know eve
    with a.store.db.transaction():
        a.store.contacts.delete(a.store.contacts.by_name("eve").id)  # type: ignore[union-attr]
    stranger.chats.create("spam", ["alice"])
    deliver_pairwise(stranger, a)
    assert a.chats.all() == []


def test_removal_rotates_keys_and_removed_member_reads_nothing(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, c = trio
    a.chats.send_text("team", "before")
    for m in (b, c):
        deliver_pairwise(a, m)
        deliver_group(a, m, group_bodies(a, m))
    old_key = a.store.groups.by_id(a.chats.group("team").id).sending_key  # type: ignore[union-attr]
    a.chats.remove("team", ["carol"])
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    assert not c.chats.group("team").is_member
    a.chats.send_text("team", "after")
    new_key = a.store.groups.by_id(a.chats.group("team").id).sending_key  # type: ignore[union-attr]
    assert new_key != old_key
    assert [type(p) for p in pairwise(a, c)] == []  # no new key for carol
    bodies = group_bodies(a, b)
    assert group_bodies(a, c) == []  # nothing uploaded to carol
    deliver_pairwise(a, b)
    deliver_group(a, b, bodies)
    assert texts(b) == ["before", "after"]
    # carol, holding every key she had, is handed the new body anyway: she cannot read it
    with c.store.db.transaction():
        c.store.groups.update(c.chats.group("team").id, is_member=1)
    deliver_group(a, c, bodies)
    assert texts(c) == ["before"]
    with pytest.raises(BadInput, match="not members"):
        a.chats.remove("team", ["carol"])


def test_version_5_database_keeps_its_messages_and_index(tmp_path: Path) -> None:
    """Schema 006 rebuilds the messages table: rows, ids, the full-text index and the
    per-contact queries survive, and group rows stay out of the 1:1 queries."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in range(1, 6):
        name = next(
            f.name
            for f in resources.files("messenger_tui.storage.schema").iterdir()
            if f.name.startswith(f"00{step}_")
        )
        sql = resources.files("messenger_tui.storage.schema").joinpath(name).read_text()
        for statement in _split_sql(sql):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO contacts (name, identity, added_at_ms) VALUES ('bob', ?, 1)", (b"b" * 32,)
    )
    for i in range(3):
        conn.execute(
            "INSERT INTO messages (contact_id, message_id, outgoing, body, sent_at_ms, state, pos) "
            "VALUES (1, ?, 0, ?, 1, 'received', ?)",
            (bytes([i]) * 16, f"old findme {i}", i + 1),
        )
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    store = Store.open(path)
    try:
        assert [m.body for m in store.messages.history(1)] == [f"old findme {i}" for i in range(3)]
        assert len(store.messages.search('"findme"')) == 3
        assert len(store.messages.unread_incoming(1)) == 3
        with store.db.transaction():
            group = store.groups.insert(b"g" * 16, "team", b"", 1)
            store.groups.insert_message(
                group.id,
                b"s" * 32,
                b"x" * 16,
                outgoing=False,
                body="group findme",
                sent_at_ms=1,
                state="received",
            )
        assert len(store.messages.search('"findme"')) == 3  # 1:1 search: 1:1 rows
        assert [m.body for m in store.groups.search('"findme"')] == ["group findme"]
        assert len(store.groups.unread()) == 1 and len(store.messages.unread_incoming(1)) == 3
    finally:
        store.close()


def test_promoted_member_may_remove_and_everyone_converges(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, c = trio
    with pytest.raises(BadInput, match="only admins"):
        b.chats.remove("team", ["carol"])
    a.chats.set_admin("team", ["bob"], True)
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    assert b.chats.group("team").admin
    b.chats.remove("team", ["carol"])
    deliver_pairwise(b, a)
    deliver_pairwise(b, c)
    for m in (a, b):
        assert sorted(x.identity for x in m.chats.group("team").members) == sorted([a.key, b.key])
    assert not c.chats.group("team").is_member
    assert a.store.groups.by_id(a.chats.group("team").id).rotate  # type: ignore[union-attr]


def test_added_member_gets_every_senders_key_and_reads_only_later_messages(
    tmp_path: Path, trio: tuple[Member, Member, Member]
) -> None:
    a, b, c = trio
    dave = member(tmp_path, "dave")
    for m in (a, b, c):
        with m.store.db.transaction():
            m.store.contacts.insert("dave", dave.key, 0)
        with dave.store.db.transaction():
            dave.store.contacts.insert(m.name, m.key, 0)
    a.chats.send_text("team", "before dave")
    early = group_bodies(a, b)
    a.chats.add("team", ["dave"])
    for m in (b, c, dave):
        deliver_pairwise(a, m)
    assert [x.identity for x in dave.chats.group("team").members] == [
        x.identity for x in a.chats.group("team").members
    ]
    deliver_group(a, dave, early)  # the relay never sends it to him; even so: unreadable
    assert texts(dave) == []
    a.chats.send_text("team", "welcome dave")
    b.chats.send_text("team", "hi dave")
    for sender in (a, b):
        deliver_pairwise(sender, dave)
        deliver_group(sender, dave, group_bodies(sender, dave))
    assert texts(dave) == ["welcome dave", "hi dave"]


def test_key_lost_and_resent_later_says_the_held_message_is_lost(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, _ = trio
    a.chats.send_text("team", "its key is lost")
    pairwise(a, b)  # the distribution never arrives
    deliver_group(a, b, group_bodies(a, b))
    deliver_pairwise(b, a)  # bob's resend request: alice answers with her chain as it is now
    deliver_pairwise(a, b)
    assert texts(b) == []
    notices = [m.text for m in b.chats.history("team") if m.kind == "notice"]
    assert any("arrived before its key and is lost" in n for n in notices), notices
    assert b.chats.group("team").dropped == 1
    a.chats.send_text("team", "the next one opens")
    deliver_group(a, b, group_bodies(a, b))
    assert texts(b) == ["the next one opens"]

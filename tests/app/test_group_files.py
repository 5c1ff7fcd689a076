"""app/group_files.py with real crypto and real stores, the transport faked by hand as in
test_groups.py: a file's pointer is sealed once under the sender key and queued once to the
members at that moment; each member stores the message and a ``new`` download of the same
blob; a member removed before the pointer went never gets it (nor can it open it); a member's
file counts as unread; a download from a member who is not a contact is never automatic."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import cast

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.group_files import GroupFiles, incoming_attachment
from messenger_tui.app.group_inbound import GroupInbound
from messenger_tui.app.transfers import TransferManager
from messenger_tui.core import payload as pl
from messenger_tui.core.attachments import AttachmentEncryptor, AttachmentPointer
from messenger_tui.storage.transfers import TransferRow
from tests.app.test_groups import (
    Member,
    befriend,
    deliver_group,
    deliver_pairwise,
    group_bodies,
    member,
)

SIZE = 70_000


class _Manager:
    """Stands in for the transfer manager, which GroupFiles only registers itself with here
    (the tests call the port's methods as the manager would)."""

    groups: object = None


def with_files(m: Member) -> GroupFiles:
    m.inbound.attachments = functools.partial(incoming_attachment, m.store)
    book = m.chats._book
    return GroupFiles(
        m.store,
        book,
        m.chats,
        cast(TransferManager, _Manager()),
        own_name=lambda: m.name,
        now_ms=lambda: 2_000,
        emit=m.events.append,
        wake=lambda: None,
    )


def upload(
    m: Member, group: str = "team", name: str = "plan.pdf"
) -> tuple[TransferRow, AttachmentPointer]:
    """An own file message and its finished upload, as GroupFiles._send and the manager leave
    them just before the pointer goes."""
    row = m.store.groups.by_name(group)[0]
    enc = AttachmentEncryptor.start(SIZE)
    with m.store.db.transaction():
        message = m.store.groups.insert_message(
            row.id, m.key, os.urandom(16), outgoing=True, body=f"[file] {name}",
            sent_at_ms=2_000, state="queued", kind="attachment",
            seq=m.store.groups.next_send_seq(row.id),
        )  # fmt: skip
        assert message is not None
        transfer = m.store.transfers.insert(
            contact_id=None, group_row=row.id, direction="up", status="sending", name=name,
            mime_type="application/pdf", size=SIZE, now_ms=2_000, message_row=message.id,
            state=enc.snapshot(), blob_id=b"B" * 16, blob_size=enc.layout.blob_size,
        )  # fmt: skip
    pointer = AttachmentPointer(
        blob_id=b"B" * 16, key=enc.key, digest=b"D" * 32, size=SIZE,
        padded_size=enc.padded_size, name=name, mime_type="application/pdf",
        chunk_size=enc.chunk_size,
    )  # fmt: skip
    return transfer, pointer


def downloads(m: Member) -> list[TransferRow]:
    return [t for t in m.store.transfers.all() if t.direction == "down"]


@pytest.fixture
def trio(tmp_path: Path) -> tuple[Member, Member, Member]:
    a, b, c = member(tmp_path, "alice"), member(tmp_path, "bob"), member(tmp_path, "carol")
    befriend(a, b, c)
    a.chats.create("team", ["bob", "carol"])
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    return a, b, c


def test_one_sealed_pointer_for_every_member_and_each_stores_a_download(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, c = trio
    files = with_files(a)
    for m in (b, c):
        with_files(m)
    transfer, pointer = upload(a)
    with a.store.db.transaction():
        assert files.send_pointer(transfer, pointer)
    queued = a.store.groups.pending_sends()
    assert len(queued) == 1  # one ciphertext, fanned out by the relay
    assert set(queued[0].recipients) == {b.key, c.key}
    assert queued[0].message_row == transfer.message_row
    assert b"plan.pdf" not in queued[0].body and pointer.key not in queued[0].body
    for m in (b, c):
        deliver_pairwise(a, m)  # the sender key first
        bodies = group_bodies(a, m)
        deliver_group(a, m, bodies)
        deliver_group(a, m, bodies)  # a redelivery stores nothing twice
        (got,) = downloads(m)
        assert (got.status, got.group_row, got.contact_id) == (
            "new",
            m.chats.group("team").id,
            None,
        )
        assert (got.blob_id, got.size, got.name) == (pointer.blob_id, SIZE, "plan.pdf")
        (message,) = [x for x in m.chats.history("team") if x.kind == "attachment"]
        assert (message.sender_name, message.text) == ("alice", "[file] plan.pdf")
        assert got.message_row == message.id
        assert m.chats.group("team").unread == 1  # a file is unread like a text
        received = [e for e in m.events if isinstance(e, ev.GroupMessageReceived)]
        assert [e.message.kind for e in received] == ["attachment"]
    # both members' delivered receipts reach alice's file message
    for m in (b, c):
        deliver_pairwise(m, a)
    mine = a.chats.message(transfer.message_row or 0)
    assert mine is not None and (mine.delivered, mine.recipients) == (2, 2)


def test_a_member_removed_before_the_pointer_never_gets_the_key(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, c = trio
    files = with_files(a)
    with_files(b)
    with_files(c)
    a.chats.send_text("team", "before")  # carol holds alice's first sender key
    for m in (b, c):
        deliver_pairwise(a, m)
        deliver_group(a, m, group_bodies(a, m))
    a.chats.remove("team", ["carol"])
    deliver_pairwise(a, b)
    deliver_pairwise(a, c)
    transfer, pointer = upload(a)
    with a.store.db.transaction():
        assert files.send_pointer(transfer, pointer)
    (queued,) = a.store.groups.pending_sends()
    assert queued.recipients == (b.key,)
    # carol is handed bob's copy anyway (as a relay could): she cannot open it
    deliver_pairwise(a, c)
    deliver_group(a, c, [queued.body])
    assert downloads(c) == []
    deliver_pairwise(a, b)
    deliver_group(a, b, group_bodies(a, b))
    assert [t.blob_id for t in downloads(b)] == [pointer.blob_id]


def test_the_pointer_does_not_go_after_we_left(trio: tuple[Member, Member, Member]) -> None:
    a, _, _ = trio
    files = with_files(a)
    transfer, pointer = upload(a)
    a.chats.leave("team")
    with a.store.db.transaction():
        assert not files.send_pointer(transfer, pointer)
    message = a.chats.message(transfer.message_row or 0)
    assert message is not None and message.state == "error"
    changed = [e for e in a.events if isinstance(e, ev.GroupMessageStateChanged)]
    assert [e.message.state for e in changed] == ["error"]
    assert a.store.groups.pending_sends() == []


def test_a_download_from_a_member_who_is_not_a_contact_waits_to_be_asked(
    trio: tuple[Member, Member, Member],
) -> None:
    a, b, _ = trio
    files = with_files(a)
    bob_files = with_files(b)
    transfer, pointer = upload(a)
    with a.store.db.transaction():
        files.send_pointer(transfer, pointer)
    deliver_pairwise(a, b)
    deliver_group(a, b, group_bodies(a, b))
    (got,) = downloads(b)
    assert not bob_files.sender_is_stranger(got)
    alice = b.store.contacts.by_identity(a.key)
    assert alice is not None
    with b.store.db.transaction():
        b.store.contacts.set_blocked(alice.id, True)
    assert bob_files.sender_is_stranger(got)


def test_without_a_sink_a_file_is_dropped_and_counted(trio: tuple[Member, Member, Member]) -> None:
    a, b, _ = trio
    files = with_files(a)
    assert isinstance(b.inbound, GroupInbound) and b.inbound.attachments is None
    transfer, pointer = upload(a)
    with a.store.db.transaction():
        files.send_pointer(transfer, pointer)
    deliver_pairwise(a, b)
    deliver_group(a, b, group_bodies(a, b))
    assert downloads(b) == [] and b.chats.group("team").dropped == 1


def test_the_pointer_payload_is_the_one_to_one_attachment() -> None:
    enc = AttachmentEncryptor.start(10)
    pointer = AttachmentPointer(
        blob_id=b"B" * 16, key=enc.key, digest=b"D" * 32, size=10,
        padded_size=enc.padded_size, name="a.txt", mime_type="text/plain",
    )  # fmt: skip
    payload = pl.Attachment(id=b"i" * 16, pointer=pointer, sent_at_ms=1, seq=3)
    assert pl.decode_payload(pl.encode_payload(payload)) == payload

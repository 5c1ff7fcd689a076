"""The group parts of the service, wired together: the book of stored groups, their
disappearing timers, inbound group messages (on the service's receiver), the group outbox's
sender, the chats (:mod:`.groups`), group calls (:mod:`.group_calls`) and group files
(:mod:`.group_files`). The composition root (:mod:`.service`) calls :func:`wire_groups` once
and keeps what it returns."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from messenger_tui.app import events as ev
from messenger_tui.app.call_ports import CallPorts, make_group_call_manager
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.group_book import GroupBook
from messenger_tui.app.group_calls import GroupCallManager
from messenger_tui.app.group_files import GroupFiles, incoming_attachment
from messenger_tui.app.group_inbound import GroupInbound
from messenger_tui.app.group_sender import GroupSender
from messenger_tui.app.group_timer import GroupTimers
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.models import Contact
from messenger_tui.app.receiver import Receiver
from messenger_tui.app.transfers import TransferManager
from messenger_tui.core import payload as pl
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.media.ports import AudioFactory
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient


@dataclass(frozen=True)
class GroupParts:
    chats: GroupChats
    sender: GroupSender
    calls: GroupCallManager
    files: GroupFiles


def wire_groups(
    store: Store,
    identity: IdentityKeyPair,
    directory: ContactDirectory,
    client: RelayClient,
    receiver: Receiver,
    transfers: TransferManager,
    call_ports: CallPorts,
    *,
    now_ms: Callable[[], int],
    emit: Callable[[ev.Event], None],
    wake: Callable[[], None],
    reschedule_expiry: Callable[[], None],
    contact: Callable[[str], Contact],
    contact_of: Callable[[int], Contact | None],
    own_name: Callable[[], str],
    typing_to: Callable[[Contact, pl.GroupTyping], Awaitable[None]],
    audio_factory: AudioFactory,
    other_call_busy: Callable[[], bool],
) -> GroupParts:
    """Build the group parts and hook them into ``receiver`` (inbound group messages, their
    attachments, and who counts as a group member for group call messages)."""
    book = GroupBook(store, identity.public, directory, now_ms)
    timers = GroupTimers(store, book, now_ms, reschedule_expiry)
    receiver.groups = inbound = GroupInbound(store, book, now_ms, timers)
    chats = GroupChats(
        store,
        identity,
        book,
        contact=contact,
        own_name=own_name,
        now_ms=now_ms,
        emit=emit,
        wake=wake,
        typing_to=typing_to,
        contact_of=contact_of,
        timers=timers,
    )
    calls = make_group_call_manager(
        call_ports,
        groups=chats.all,
        emit=emit,
        audio_factory=audio_factory,
        other_call_busy=other_call_busy,
    )
    receiver.group_member = functools.partial(is_group_member, chats)
    files = GroupFiles(
        store, book, chats, transfers, own_name=own_name, now_ms=now_ms, emit=emit, wake=wake
    )
    inbound.attachments = functools.partial(incoming_attachment, store)
    return GroupParts(chats, GroupSender(store, client, book, emit), calls, files)


def is_group_member(chats: GroupChats, identity: bytes) -> bool:
    """A member of a group we are in (group call messages are taken from them)."""
    return any(
        group.is_member and any(m.identity == identity for m in group.members)
        for group in chats.all()
    )

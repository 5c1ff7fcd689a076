"""Group messages that arrived before their sender key: held, never dropped silently.

A group message raises :class:`~messenger_tui.core.errors.NoSenderKey` when its distribution
message has not arrived yet (the pairwise channel and the group fan-out are separate queues)
or was lost. The caller holds it here and, when :func:`hold_message` says so, asks the sender
over the pairwise channel to resend its distribution message; when a distribution arrives it
calls :func:`release_messages` and decrypts what comes back, in arrival order.

Rules:

1. Hold only messages from current members (check membership first): the bound below is then
   per member, and members are admitted by admins, not free identities.
2. At most :data:`MAX_HELD_PER_SENDER` messages per sender and :data:`MAX_HELD_PER_GROUP` per
   group; past either bound the oldest message of that sender (of the group for the second)
   is evicted and *returned* to the caller, which reports it (never a silent drop).
3. One resend request per (sender, key id) at a time: the first held message asks, and the
   next held message asks again only once :data:`RESEND_INTERVAL_MS` has passed.
4. A message held longer than :data:`MAX_HOLD_MS` is returned by :func:`expire_messages`
   (reported as undecryptable; the sender never answered).

Pure: every function returns a new :class:`PendingGroupMessages`; time is an argument.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: Most messages held per sender in one group.
MAX_HELD_PER_SENDER: Final = 256
#: Most messages held per group, all senders together.
MAX_HELD_PER_GROUP: Final = 2048
#: Least time between two resend requests for the same (sender, key id).
RESEND_INTERVAL_MS: Final = 30_000
#: A held message older than this is given up on.
MAX_HOLD_MS: Final = 7 * 24 * 3600 * 1000


class HeldMessage(msgspec.Struct, frozen=True, array_like=True):
    """A group message waiting for sender key ``key_id`` of ``sender`` (an identity key)."""

    sender: bytes
    key_id: int
    held_ms: int
    data: bytes


class ResendRequest(msgspec.Struct, frozen=True):
    """Ask ``sender`` (pairwise) to resend its distribution message for ``key_id``."""

    group_id: bytes
    sender: bytes
    key_id: int


class _Requested(msgspec.Struct, frozen=True, array_like=True):
    sender: bytes
    key_id: int
    at_ms: int


class PendingGroupMessages(msgspec.Struct, frozen=True, kw_only=True):
    """The held messages of one group, oldest first, and the open resend requests."""

    group_id: bytes
    held: tuple[HeldMessage, ...] = ()
    requested: tuple[_Requested, ...] = ()


class HoldResult(msgspec.Struct, frozen=True):
    """What :func:`hold_message` did: the new buffer, a request to send (or ``None``), and
    the messages evicted to make room (report them)."""

    pending: PendingGroupMessages
    request: ResendRequest | None
    evicted: tuple[HeldMessage, ...]


def hold_message(
    pending: PendingGroupMessages, sender: bytes, key_id: int, data: bytes, now_ms: int
) -> HoldResult:
    """Hold ``data`` (a group message of ``sender`` under ``key_id``) by the module's rules."""
    held = [*pending.held, HeldMessage(sender, key_id, now_ms, data)]
    evicted: list[HeldMessage] = []
    mine = [index for index, message in enumerate(held) if message.sender == sender]
    if len(mine) > MAX_HELD_PER_SENDER:
        evicted.append(held.pop(mine[0]))
    if len(held) > MAX_HELD_PER_GROUP:
        evicted.append(held.pop(0))

    request: ResendRequest | None = None
    requested = list(pending.requested)
    previous = next(
        (i for i, r in enumerate(requested) if r.sender == sender and r.key_id == key_id), None
    )
    if previous is None or now_ms - requested[previous].at_ms >= RESEND_INTERVAL_MS:
        if previous is not None:
            del requested[previous]
        requested.append(_Requested(sender, key_id, now_ms))
        request = ResendRequest(pending.group_id, sender, key_id)
    # requests are only open for keys with messages held
    waiting = {(message.sender, message.key_id) for message in held}
    requested = [r for r in requested if (r.sender, r.key_id) in waiting]
    new = PendingGroupMessages(
        group_id=pending.group_id, held=tuple(held), requested=tuple(requested)
    )
    return HoldResult(new, request, tuple(evicted))


def release_messages(
    pending: PendingGroupMessages, sender: bytes, key_id: int
) -> tuple[PendingGroupMessages, tuple[bytes, ...]]:
    """Take out every held message of ``sender`` under ``key_id`` (its distribution has
    arrived), oldest first. A message that still fails is the caller's to report."""
    released = tuple(m.data for m in pending.held if m.sender == sender and m.key_id == key_id)
    if not released:
        return pending, ()
    held = tuple(m for m in pending.held if not (m.sender == sender and m.key_id == key_id))
    requested = tuple(
        r for r in pending.requested if not (r.sender == sender and r.key_id == key_id)
    )
    new = PendingGroupMessages(group_id=pending.group_id, held=held, requested=requested)
    return new, released


def drop_sender(
    pending: PendingGroupMessages, sender: bytes
) -> tuple[PendingGroupMessages, tuple[HeldMessage, ...]]:
    """Take out every held message of ``sender`` (it left or was removed: report them)."""
    dropped = tuple(m for m in pending.held if m.sender == sender)
    if not dropped:
        return pending, ()
    held = tuple(m for m in pending.held if m.sender != sender)
    requested = tuple(r for r in pending.requested if r.sender != sender)
    new = PendingGroupMessages(group_id=pending.group_id, held=held, requested=requested)
    return new, dropped


def expire_messages(
    pending: PendingGroupMessages, now_ms: int
) -> tuple[PendingGroupMessages, tuple[HeldMessage, ...]]:
    """Take out the messages held for longer than :data:`MAX_HOLD_MS` (report them)."""
    expired = tuple(m for m in pending.held if now_ms - m.held_ms > MAX_HOLD_MS)
    if not expired:
        return pending, ()
    held = tuple(m for m in pending.held if now_ms - m.held_ms <= MAX_HOLD_MS)
    waiting = {(message.sender, message.key_id) for message in held}
    requested = tuple(r for r in pending.requested if (r.sender, r.key_id) in waiting)
    return PendingGroupMessages(group_id=pending.group_id, held=held, requested=requested), expired

"""Payloads: what travels inside the end-to-end encrypted channel.

The relay sees only the sealed envelope; these structs are the plaintext. Receipts and typing
notices are payloads too, so the relay cannot tell a receipt from a message except by size and
timing. Encode with :func:`encode_payload`; :func:`decode_payload` raises
:class:`MalformedPayload` so a bad plaintext from a buggy peer becomes a visible error.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from messenger_tui.core.attachments.pointer import AttachmentPointer
from messenger_tui.core.calls.group_keys import GroupCallFrameKey, GroupCallInvite, GroupCallOver
from messenger_tui.core.errors import CoreError, MalformedAttachmentPointer

#: Longest text message accepted (bytes of UTF-8); keeps envelopes well under MAX_ENVELOPE.
MAX_TEXT_BYTES: Final = 64 * 1024


class MalformedPayload(CoreError):
    """A decrypted plaintext that is not a payload this version understands."""


class _Payload(msgspec.Struct, tag_field="t", frozen=True):
    pass


class TimerStamp(msgspec.Struct, frozen=True):
    """The disappearing-message timer a text was sent under (core/disappearing.py): its
    seconds (0: off), version, and the identity key of the member who set that version."""

    seconds: Annotated[int, msgspec.Meta(ge=0, le=2**31)]
    version: Annotated[int, msgspec.Meta(ge=0, le=2**62)]
    author: Annotated[bytes, msgspec.Meta(max_length=64)] = b""


class Text(_Payload, tag="text", frozen=True):
    """A chat message. ``id`` is 16 random bytes chosen by the sender (receipts name it)."""

    id: bytes
    text: str
    sent_at_ms: int
    #: The sender's display name; lets a recipient label a sender it has not added yet.
    sender_name: str | None = None
    #: The sender's delivery secret (core/delivery_access.py): the recipient presents it to
    #: the relay when writing back, so its messages pass the sender's stranger quota.
    access: bytes | None = None
    #: The sender's per-conversation sequence: strictly rising in the order the sender wrote
    #: (see docs/protocol.md "Order"). The recipient orders the conversation by it, whatever
    #: the order of arrival. 0: not given (a sender before this field existed).
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    #: The conversation's disappearing-message timer as the sender saw it. None: no statement
    #: (a sender before this field existed); never read as "off" (docs/protocol.md "Timers").
    timer: TimerStamp | None = None


class Receipt(_Payload, tag="receipt", frozen=True):
    """Delivery or read receipt for the peer's messages with these ids."""

    kind: Literal["delivered", "read"]
    ids: list[bytes]


class Typing(_Payload, tag="typing", frozen=True):
    """The sender started (``active``) or stopped typing. Sent as an ephemeral frame."""

    active: bool


class Access(_Payload, tag="access", frozen=True):
    """The sender's delivery secret (core/delivery_access.py), given to a contact the sender
    added, unblocked, or re-keyed after a rotation: the recipient presents it to the relay
    when writing back, so its messages pass the sender's stranger quota. Sent through the
    outbox like a receipt; never shown."""

    secret: bytes


class GroupChange(_Payload, tag="group_change", frozen=True):
    """A signed membership change (core/groups/membership.py, encoded), sent pairwise to
    every member of the group before and after it (a new member: its welcome)."""

    change: bytes


class GroupKey(_Payload, tag="group_key", frozen=True):
    """The sender's sender-key distribution message for one group (core/groups/sender_keys.py,
    89 bytes): lets the recipient read the sender's group messages from then on. Pairwise
    only (it carries a chain key)."""

    distribution: bytes


class GroupKeyRequest(_Payload, tag="group_key_request", frozen=True):
    """Ask the recipient to resend its distribution message for ``key_id`` in ``group_id``
    (a group message arrived before it: core/groups/pending.py)."""

    group_id: bytes
    key_id: int


class GroupReceipt(_Payload, tag="group_receipt", frozen=True):
    """Delivery or read receipt, sent pairwise to the author, for its group messages."""

    group_id: bytes
    kind: Literal["delivered", "read"]
    ids: list[bytes]


class GroupText(_Payload, tag="group_text", frozen=True):
    """A group chat message: the plaintext of a sender-key group message (whose header names
    the group). Fields as :class:`Text`; ``seq`` is the sender's sequence in this group."""

    id: bytes
    text: str
    sent_at_ms: int
    sender_name: str | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    #: The members the text mentions (``@name``), by identity key, so a rename keeps them;
    #: absent or None: none. At most :data:`MAX_MENTIONS`.
    mentions: Annotated[list[bytes], msgspec.Meta(max_length=256)] | None = None
    #: The group's disappearing-message timer it was sent under, as :attr:`Text.timer`
    #: (absent: no statement, never "off").
    timer: TimerStamp | None = None


#: At most this many mentions in one group text (a group has at most 256 members).
MAX_MENTIONS = 256


class GroupTyping(_Payload, tag="group_typing", frozen=True):
    """The sender started (``active``) or stopped typing in the group ``group_id``. Sent as an
    ephemeral frame to each member that is a contact (pairwise), like :class:`Typing`."""

    group_id: bytes
    active: bool


class Attachment(_Payload, tag="attachment", frozen=True):
    """A file (or a voice message: the pointer's duration and waveform are set) on the relay's
    blob route: ``pointer`` has everything needed to fetch, check and decrypt it
    (docs/protocol.md "Attachments: the message"). ``id``, ``sent_at_ms``, ``sender_name``,
    ``access`` and ``seq`` mean what they mean in :class:`Text`."""

    id: bytes
    pointer: AttachmentPointer
    sent_at_ms: int
    sender_name: str | None = None
    access: bytes | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0


class Timer(_Payload, tag="timer", frozen=True):
    """The sender set the conversation's disappearing-message timer to ``seconds`` (0: off)
    as change number ``version`` (core/disappearing.py: the highest version wins; the sender's
    identity key breaks a tie). Sent through the outbox; shown as a notice."""

    seconds: Annotated[int, msgspec.Meta(ge=0, le=2**31)]
    version: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class GroupTimer(_Payload, tag="group_timer", frozen=True):
    """The sender set the group's disappearing-message timer to ``seconds`` (0: off) as change
    number ``version``: :class:`Timer` for a group, sent once in the group channel (sealed with
    the sender's sender key, so its author is the signing sender; core/disappearing.py: the
    highest ``(version, author)`` wins on every member)."""

    seconds: Annotated[int, msgspec.Meta(ge=0, le=2**31)]
    version: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


Payload = (
    Text
    | Receipt
    | Typing
    | Access
    | (GroupChange | GroupKey | GroupKeyRequest | GroupReceipt | GroupText | GroupTyping)
    | Attachment
    | Timer
    | GroupTimer
    | (GroupCallInvite | GroupCallFrameKey | GroupCallOver)  # group calls: core/calls/group_keys.py
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Payload] = msgspec.msgpack.Decoder(Payload)


def encode_payload(payload: Payload) -> bytes:
    """Serialize a payload; the result is what the ratchet encrypts."""
    if isinstance(payload, Text | GroupText) and len(payload.text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ValueError(f"message too long: at most {MAX_TEXT_BYTES // 1024} KiB of text")
    return _encoder.encode(payload)


def decode_payload(data: bytes) -> Payload:
    """Parse a decrypted plaintext. Raises :class:`MalformedPayload`."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, MalformedAttachmentPointer) as exc:
        raise MalformedPayload(f"unreadable payload: {exc}") from None
    except RecursionError:  # an unknown field nested deeper than the recursion limit
        raise MalformedPayload("unreadable payload: nested too deeply") from None

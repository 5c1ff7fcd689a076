"""Group call control frames on the media route (sans-I/O).

A group call leg opens the same ``/media`` websocket as a 1:1 leg and authenticates the same
way (``challenge`` -> ``auth`` -> ``auth_ok``), then sends :class:`GroupJoin` instead of
``media_join``. After ``group_joined`` the connection carries group media frames (first byte
``0x02``, :mod:`messenger_tui.core.calls.group_frames`) both ways, and msgpack control frames
tagged by ``t``. See docs/protocol.md, "Group calls".

The relay keys the room by SHA-256 of the join token
(:func:`messenger_tui.core.calls.group_keys.room_id`): only members, who got the call secret
over the E2E channel, can derive the token, so a stranger who knows the call id joins nothing.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeVar

import msgspec

from messenger_tui.core.calls.group_frames import GROUP_FRAME_PREFIX
from messenger_tui.core.calls.group_keys import (
    GROUP_JOIN_TOKEN_LEN,
    MAX_GROUP_CALL_PARTICIPANTS,
)
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import Error, decode_bounded

#: How many speakers the relay forwards to each receiver at most (the loudest, by level byte).
MAX_FORWARDED_SPEAKERS: Final = 3


class GroupErrorCode:
    """``Error.code`` values of group legs (besides the media route's and the wire's)."""

    ROOM_FULL: Final = "room_full"  # the call has MAX_GROUP_CALL_PARTICIPANTS legs already


class _GroupFrame(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=False):
    """Base of every group control frame."""


# ---------------------------------------------------------------- client -> relay


class GroupJoin(_GroupFrame, tag="group_join", frozen=True):
    """Join the group call whose room is SHA-256(``token``). Sent once, after ``auth_ok``."""

    token: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class GroupLeave(_GroupFrame, tag="group_leave", frozen=True):
    """Leave the call: the relay tells the others at once and closes the leg (1000)."""


# ---------------------------------------------------------------- relay -> client


class GroupJoined(_GroupFrame, tag="group_joined", frozen=True):
    """The join succeeded: the identities of the other participants connected now."""

    participants: list[bytes]
    max_participants: int = MAX_GROUP_CALL_PARTICIPANTS
    max_speakers: int = MAX_FORWARDED_SPEAKERS
    alone_timeout_ms: int = 0
    max_frame: int = 1500


class ParticipantChange(_GroupFrame, tag="group_member", frozen=True):
    """A participant joined (``present=True``) or left (``False``): rotate the frame key."""

    identity: bytes
    present: bool


GroupClientFrame = GroupJoin | GroupLeave
GroupRelayFrame = GroupJoined | ParticipantChange | Error

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[GroupClientFrame] = msgspec.msgpack.Decoder(
    GroupClientFrame
)
_relay_decoder: msgspec.msgpack.Decoder[GroupRelayFrame] = msgspec.msgpack.Decoder(GroupRelayFrame)


def encode_group_control(
    frame: GroupJoin | GroupLeave | GroupJoined | ParticipantChange | Error,
) -> bytes:
    """Serialize a control frame for a binary websocket message."""
    return _encoder.encode(frame)


def is_group_frame(data: bytes | str) -> bool:
    """Whether a websocket message is a group media frame (forwarded opaque)."""
    return isinstance(data, bytes) and data[:1] == GROUP_FRAME_PREFIX


def decode_group_client_frame(data: bytes | str) -> GroupClientFrame:
    """Decode a control frame a group leg sent. Raises MalformedFrame."""
    frame = _decode(_client_decoder, data)
    if isinstance(frame, GroupJoin) and len(frame.token) != GROUP_JOIN_TOKEN_LEN:
        raise MalformedFrame(f"join token must be {GROUP_JOIN_TOKEN_LEN} bytes")
    return frame


def decode_group_relay_frame(data: bytes | str) -> GroupRelayFrame:
    """Decode a control frame the relay sent on a group leg. Raises MalformedFrame."""
    return _decode(_relay_decoder, data)


def try_group_join(data: bytes | str) -> GroupJoin | None:
    """The :class:`GroupJoin` if ``data`` is one, else None (never raises)."""
    if not isinstance(data, bytes) or data[:1] == GROUP_FRAME_PREFIX:
        return None
    try:
        frame = decode_group_client_frame(data)
    except MalformedFrame:
        return None
    return frame if isinstance(frame, GroupJoin) else None


def _decode(decoder: msgspec.msgpack.Decoder[T], data: bytes | str) -> T:
    if isinstance(data, str):
        raise MalformedFrame("text frames are not part of the protocol; send binary frames")
    if data[:1] == GROUP_FRAME_PREFIX:
        raise MalformedFrame("a group media frame is not a control frame")
    return decode_bounded(decoder, data, "control frame")

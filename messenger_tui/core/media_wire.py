"""Media route wire format: the control frames of a call leg's media connection (sans-I/O).

A call leg opens its own websocket to the relay at the path :data:`MEDIA_PATH`, authenticates
exactly like the message link (``challenge`` -> ``auth`` -> ``auth_ok`` of
:mod:`messenger_tui.core.wire`), then sends :class:`MediaJoin`. After that two kinds of binary
websocket messages share the connection, told apart by their first byte:

* a **media frame** starts with :data:`MEDIA_FRAME_FIRST_BYTE` (``0x01``, the media frame
  version of :mod:`messenger_tui.core.crypto.media_frame`); the relay forwards it verbatim to
  the other leg and never looks further than that byte;
* a **control frame** is a msgpack map (first byte ``0x80``-``0x8f``, ``0xde`` or ``0xdf``)
  tagged by ``t``, like every frame of :mod:`messenger_tui.core.wire`.

:func:`is_media_frame` tells them apart; :func:`decode_media_client_frame` (relay side) and
:func:`decode_media_relay_frame` (client side) raise :class:`MalformedFrame` on anything that
is not a well-formed control frame of the expected direction. See docs/protocol.md,
"Calls: media route".
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeVar

import msgspec

from messenger_tui.core.crypto.media_frame import MEDIA_FRAME_VERSION
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import Error, decode_bounded

#: Request path of the media route (the message link is any other path, normally ``/``).
MEDIA_PATH: Final = "/media"
#: Length of the join token (``MediaKeys.join_token``, an HKDF block both parties derive).
JOIN_TOKEN_LEN: Final = 32
#: First byte of every media frame; control frames never start with it.
MEDIA_FRAME_FIRST_BYTE: Final = MEDIA_FRAME_VERSION
#: The same as a one-byte prefix, for ``data[:1] == MEDIA_FRAME_PREFIX`` on hot paths.
MEDIA_FRAME_PREFIX: Final = bytes([MEDIA_FRAME_FIRST_BYTE])
#: Largest media frame the relay forwards (a 20 ms Opus frame with redundancy is ~150 bytes).
MAX_MEDIA_FRAME: Final = 1500


class Leg(IntEnum):
    """Which end of the call a connection is."""

    CALLER = 0
    CALLEE = 1

    @property
    def other(self) -> Leg:
        """The opposite leg."""
        return Leg.CALLEE if self is Leg.CALLER else Leg.CALLER


class MediaErrorCode:
    """``Error.code`` values the media route adds to :class:`messenger_tui.core.wire.ErrorCode`
    (which it also uses: ``malformed``, ``unauthenticated``, ``auth_failed``, ``bad_request``,
    ``too_large``)."""

    LEG_TAKEN: Final = "leg_taken"  # another identity holds this leg of this call
    ALONE_TIMEOUT: Final = "alone_timeout"  # the other leg did not show up in time
    REPLACED: Final = "replaced"  # a newer connection of the same identity took this leg


class _MediaFrame(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=False):
    """Base of every media control frame."""


# ---------------------------------------------------------------- client -> relay


class MediaJoin(_MediaFrame, tag="media_join", frozen=True):
    """Join the call whose legs show ``token``, as ``leg`` (0 caller, 1 callee). Sent once,
    right after ``auth_ok``."""

    token: bytes
    leg: int


# ---------------------------------------------------------------- relay -> client


class MediaJoined(_MediaFrame, tag="media_joined", frozen=True):
    """The join succeeded. ``peer`` says whether the other leg is connected now;
    ``alone_timeout_ms`` is how long this leg may stay alone before the relay closes it."""

    leg: int
    peer: bool
    alone_timeout_ms: int
    max_frame: int = MAX_MEDIA_FRAME


class MediaPeer(_MediaFrame, tag="media_peer", frozen=True):
    """The other leg connected (``present=True``) or went away (``False``)."""

    present: bool


MediaClientFrame = MediaJoin
MediaRelayFrame = MediaJoined | MediaPeer | Error

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[MediaJoin] = msgspec.msgpack.Decoder(MediaJoin)
_relay_decoder: msgspec.msgpack.Decoder[MediaRelayFrame] = msgspec.msgpack.Decoder(MediaRelayFrame)


def encode_media_control(frame: MediaJoin | MediaJoined | MediaPeer | Error) -> bytes:
    """Serialize a control frame for a binary websocket message."""
    return _encoder.encode(frame)


def is_media_frame(data: bytes | str) -> bool:
    """Whether a websocket message is a media frame (forwarded opaque) rather than control."""
    return isinstance(data, bytes) and len(data) > 0 and data[0] == MEDIA_FRAME_FIRST_BYTE


def decode_media_client_frame(data: bytes | str) -> MediaClientFrame:
    """Decode a control frame a leg sent, checking field values. Raises MalformedFrame."""
    frame = _decode(_client_decoder, data)
    if len(frame.token) != JOIN_TOKEN_LEN:
        raise MalformedFrame(f"join token must be {JOIN_TOKEN_LEN} bytes, got {len(frame.token)}")
    if frame.leg not in (Leg.CALLER, Leg.CALLEE):
        raise MalformedFrame(f"leg must be 0 (caller) or 1 (callee), got {frame.leg}")
    return frame


def decode_media_relay_frame(data: bytes | str) -> MediaRelayFrame:
    """Decode a control frame the relay sent on a media connection. Raises MalformedFrame."""
    return _decode(_relay_decoder, data)


def _decode(decoder: msgspec.msgpack.Decoder[T], data: bytes | str) -> T:
    if isinstance(data, str):
        raise MalformedFrame("text frames are not part of the protocol; send binary frames")
    if data[:1] == MEDIA_FRAME_PREFIX:
        raise MalformedFrame("a media frame is not a control frame")
    return decode_bounded(decoder, data, "control frame")

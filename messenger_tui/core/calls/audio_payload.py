"""The plaintext inside a media frame: one Opus packet, or one plus the previous frame's copy.

Layout, by the frame header's payload type:

- ``OPUS``: the Opus packet of this frame, as is.
- ``OPUS_RED``: ``primary_len (u16 BE) || primary || redundant``, where ``redundant`` is the
  Opus packet of the *previous* frame (sequence - 1), empty in the first frame. One lost packet
  is then repaired at full quality from the next one (measured at 5 % loss: WB-PESQ 3.43 with
  the copy against 2.25 with in-band FEC alone, docs/notes/calls.md). With a constant-bitrate
  encoder every packet of a call has the same size, so sizes still say nothing about speech.
"""

from __future__ import annotations

from typing import Final

from messenger_tui.core.crypto.media_frame import MalformedMediaFrame, PayloadType

_LEN_BYTES: Final = 2


def pack_audio(primary: bytes, redundant: bytes | None = None) -> tuple[PayloadType, bytes]:
    """``(payload_type, payload)`` for a frame carrying ``primary`` and, when given (``b""`` for
    the first frame), the previous frame's packet."""
    if redundant is None:
        return PayloadType.OPUS, primary
    if len(primary) > 0xFFFF:
        raise ValueError("Opus packet too large")
    return PayloadType.OPUS_RED, len(primary).to_bytes(_LEN_BYTES, "big") + primary + redundant


def unpack_audio(payload_type: PayloadType, payload: bytes) -> tuple[bytes, bytes | None]:
    """``(primary, redundant or None)``. Raises :class:`MalformedMediaFrame` on a bad layout
    (only an authenticated but buggy peer can send one)."""
    if payload_type is PayloadType.OPUS:
        return payload, None
    if payload_type is not PayloadType.OPUS_RED:
        raise MalformedMediaFrame(f"{payload_type.name} is not an audio payload")
    if len(payload) < _LEN_BYTES:
        raise MalformedMediaFrame("redundant audio payload without its length")
    size = int.from_bytes(payload[:_LEN_BYTES], "big")
    if _LEN_BYTES + size > len(payload):
        raise MalformedMediaFrame("redundant audio payload shorter than its primary length")
    primary = payload[_LEN_BYTES : _LEN_BYTES + size]
    redundant = payload[_LEN_BYTES + size :]
    return primary, (redundant or None)

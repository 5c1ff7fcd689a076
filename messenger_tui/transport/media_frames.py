"""The media leg's websocket frames, framed and split by hand on the per-frame path.

websockets' sans-I/O protocol costs about 100 us of a call's CPU per 20 ms frame on this
design's 2-core reference machine (a generator-based parser with several Python frames per
websocket frame, a ``Frame`` object and a buffer copy each way): measured with two clients that
only move call-sized frames, 1.4 % of a core with websockets' framing against 1.0 % with the
helpers below (docs/performance.md, History, "Calls 11"). A call's budget is 3 %. So, on the
media leg only, and only once websockets' connection is open:

- :func:`client_binary_frame` writes a media frame as a masked, final binary websocket frame
  (RFC 6455 section 5.2), byte for byte what websockets writes for the same payload and mask.
  :class:`MaskKeys` hands out the 4-byte masking keys, fresh from ``os.urandom`` (read 4 KiB at
  a time rather than one system call per frame).
- :class:`ServerFrameSplitter` cuts what the relay sends into whole frames. A final, unmasked
  binary frame that holds a media frame goes straight to the call; every other whole frame
  (pings, pongs, close, the relay's control messages) goes to websockets unchanged, so
  websockets still answers pings, tracks pongs for its keepalive and runs the closing
  handshake. Anything unusual (a fragmented message, a masked or reserved-bit frame, a length
  over the limit) makes the splitter give up: it hands websockets everything from that frame
  on, and websockets fails or handles the connection exactly as it would have.

Because websockets only ever receives whole frames from the splitter, its parser is between
frames whenever the splitter runs. :func:`parser_between_frames` checks that before the
splitter takes over (and answers False, leaving everything to websockets, on a websockets
version whose parser it does not recognise).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from websockets.protocol import Protocol, State

try:  # websockets' C helper; its pure-Python twin otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets ships the extension on common platforms
    from websockets.utils import apply_mask

__all__ = [
    "MaskKeys",
    "ServerFrameSplitter",
    "client_binary_frame",
    "parser_between_frames",
]

_FIN: Final = 0x80
_RSV: Final = 0x70
_MASKED: Final = 0x80
_OP_BINARY: Final = 0x2
#: Opcodes of whole frames the splitter passes to websockets: text, binary, close, ping, pong.
_WHOLE_OPCODES: Final = frozenset({0x1, 0x2, 0x8, 0x9, 0xA})
#: Largest payload of a 16-bit length; media frames are far smaller (MAX_MEDIA_FRAME).
_MAX_16_BIT: Final = 0xFFFF
_MASK_POOL_BYTES: Final = 4096


class MaskKeys:
    """Fresh 4-byte masking keys for client frames, read from ``os.urandom`` 4 KiB at a time.
    Every key is used once."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool = os.urandom(_MASK_POOL_BYTES)
            at = 0
        self._at = at + 4
        return self._pool[at : at + 4]


def client_binary_frame(payload: bytes, mask: bytes) -> bytes:
    """``payload`` as one final binary frame from a client: header, ``mask`` (4 bytes), masked
    payload. Raises ValueError for an empty payload or one over 65,535 bytes (media frames are
    never either)."""
    size = len(payload)
    if size < 126:
        if not size:
            raise ValueError("a media frame is never empty")
        header = bytes((_FIN | _OP_BINARY, _MASKED | size))
    elif size <= _MAX_16_BIT:
        header = bytes((_FIN | _OP_BINARY, _MASKED | 126)) + size.to_bytes(2, "big")
    else:
        raise ValueError("a media frame is at most 65,535 bytes")
    masked: bytes = apply_mask(payload, mask)
    return header + mask + masked


def parser_between_frames(protocol: Protocol) -> bool:
    """Whether websockets' parser of this open connection has consumed every byte it was given
    and waits for the first byte of a frame, outside a fragmented message: then a splitter can
    take over the byte stream at this point. False whenever that cannot be confirmed."""
    if protocol.state is not State.OPEN or protocol.reader.buffer:
        return False
    if getattr(protocol, "current_size", 0) is not None:  # inside a fragmented message
        return False
    generator: Any = protocol.parser
    while (inner := getattr(generator, "gi_yieldfrom", None)) is not None:
        generator = inner
    code = getattr(generator, "gi_code", None)
    # Protocol.parse waits for a frame's first byte in StreamReader.at_eof; inside a frame it
    # waits in read_exact
    return code is not None and code.co_name == "at_eof"


class ServerFrameSplitter:
    """Cuts the bytes a websocket server sends into whole frames (see the module doc).

    :meth:`feed` calls ``on_media(payload)`` for each final binary frame whose payload starts
    with ``media_first_byte`` and ``on_other(frame_bytes)`` for each other whole frame;
    ``on_other`` returns False to stop (the connection is closing: the rest is websockets').
    An incomplete frame at the end waits for the next :meth:`feed`.
    """

    __slots__ = ("_first", "_max", "_on_media", "_on_other", "_pending")

    def __init__(
        self,
        on_media: Callable[[bytes], None],
        on_other: Callable[[bytes], bool],
        *,
        max_size: int,
        media_first_byte: int,
    ) -> None:
        self._on_media = on_media
        self._on_other = on_other
        self._max = min(max_size, _MAX_16_BIT)
        self._first = media_first_byte
        self._pending = b""

    def feed(self, data: bytes) -> bytes | None:
        """Split ``data``. Returns None while the splitter keeps the stream; otherwise it gave
        up, and returns the bytes from the first frame it does not take (maybe empty), for
        websockets: the caller hands them over and uses a new splitter only once
        :func:`parser_between_frames` holds again."""
        buf = self._pending + data if self._pending else data
        size = len(buf)
        at = 0
        while size - at >= 2:
            first = buf[at]
            length = buf[at + 1]
            header = 2
            if length & _MASKED or first & _RSV or not first & _FIN:
                # masked by a server, extensions, or a fragment: websockets' to judge
                return self._give_up(buf, at)
            if length == 126:
                if size - at < 4:
                    break  # the extended length has not arrived yet
                length = (buf[at + 2] << 8) | buf[at + 3]
                header = 4
            elif length == 127:
                return self._give_up(buf, at)  # 64-bit length: far over any limit here
            if length > self._max or first & 0x0F not in _WHOLE_OPCODES:
                return self._give_up(buf, at)
            end = at + header + length
            if end > size:
                break  # the rest of this frame has not arrived yet
            if first & 0x0F == _OP_BINARY and length and buf[at + header] == self._first:
                self._on_media(buf[at + header : end])
            elif not self._on_other(buf[at:end]):
                return self._give_up(buf, end)
            at = end
        self._pending = buf[at:]
        return None

    def take_pending(self) -> bytes:
        """The bytes of an incomplete frame held for the next :meth:`feed` (cleared)."""
        pending, self._pending = self._pending, b""
        return pending

    def _give_up(self, buf: bytes, at: int) -> bytes:
        self._pending = b""
        return buf[at:]

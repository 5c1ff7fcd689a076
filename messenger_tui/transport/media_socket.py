"""The socket of a call's media leg: a websocket connection that hands media frames to the
link straight from the transport callback.

Everything else (pings, pongs, close, control messages) goes through websockets as usual.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from messenger_tui.core.media_wire import MEDIA_FRAME_FIRST_BYTE, MEDIA_FRAME_PREFIX
from messenger_tui.transport.media_frames import ServerFrameSplitter, parser_between_frames

#: Largest incoming websocket message (media frames are at most 1,500 bytes).
MAX_MESSAGE = 8 * 1024


class MediaConnection(ClientConnection):
    """The media leg's websocket. Once :attr:`on_media_frame` is set, incoming media frames go
    to it straight from the socket's ``data_received``, not through websockets' message queue
    and a wake-up of the task reading it; while websockets' parser is between frames, a
    :class:`~messenger_tui.transport.media_frames.ServerFrameSplitter` also takes them out of
    the byte stream before websockets parses them (every other frame still goes through
    websockets: pings, pongs, close, control messages). The handler runs inside the protocol
    callback: it must not block or raise."""

    on_media_frame: Callable[[bytes], None] | None = None
    _splitter: ServerFrameSplitter | None = None
    #: Media frames the splitter delivered (the rest came through websockets' parser).
    split_frames = 0

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is None:
            if self.on_media_frame is None or not parser_between_frames(self.protocol):
                super().data_received(data)
                return
            splitter = self._splitter = ServerFrameSplitter(
                self._split_media,
                self._split_other,
                max_size=MAX_MESSAGE,
                media_first_byte=MEDIA_FRAME_FIRST_BYTE,
            )
        rest = splitter.feed(data)
        if rest is not None:  # gave up: websockets judges the rest; maybe a new one later
            self._splitter = None
            if rest:
                super().data_received(rest)

    def _split_media(self, frame: bytes) -> None:
        handler = self.on_media_frame
        if handler is None:  # the link is dropping this connection: voice is never queued
            return
        self.split_frames += 1
        handler(frame)

    def _split_other(self, frame: bytes) -> bool:
        super().data_received(frame)
        return self.protocol.state is State.OPEN

    def eof_received(self) -> None:
        splitter, self._splitter = self._splitter, None
        if splitter is not None and (rest := splitter.take_pending()):
            super().data_received(rest)  # a frame cut short: websockets reports it
        super().eof_received()

    def process_event(self, event: object) -> None:
        handler = self.on_media_frame
        if (
            handler is not None
            and isinstance(event, Frame)
            and event.opcode is Opcode.BINARY
            and event.fin
            and event.data[:1] == MEDIA_FRAME_PREFIX
        ):
            handler(bytes(event.data))
            return
        super().process_event(event)  # type: ignore[arg-type]

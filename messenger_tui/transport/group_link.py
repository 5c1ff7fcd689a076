"""The client end of a group call's leg: one websocket at the relay's ``/media``.

Connects like a 1:1 media link (TCP/TLS/pin, Challenge -> Auth -> AuthOk through
:mod:`messenger_tui.transport.dialer`), then ``group_join(token)`` -> ``group_joined``
(:mod:`messenger_tui.core.group_media_wire`). Then:

* :meth:`GroupLink.send` never blocks: it writes a group frame (first byte 0x02) straight to
  the socket, or drops it (False, counted) when not joined or the write buffer is over
  ``send_buffer_limit``. Voice is never queued.
* Incoming group frames go to ``on_frame`` (synchronously, in arrival order); the relay's
  roster to ``on_joined(participants)`` once and ``on_member(identity, present)`` per change
  (feed both to :class:`messenger_tui.core.calls.group_call.GroupCall`, which rotates keys);
  the end to ``on_ended(reason)``.
* :meth:`GroupLink.leave` sends ``group_leave`` (the relay tells the others at once) and
  closes.

A drop ends the leg (``on_ended``); rejoining is the call's business (rule 9 of
core/calls/group_call.py: the app opens a new leg with the same token; the relay lets the same
identity replace its own stale group leg). Nothing logged contains the join token, keys or
frame bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messenger_tui.core import group_media_wire as gw
from messenger_tui.core.calls.group_frames import GROUP_FRAME_PREFIX
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import Error
from messenger_tui.transport.dialer import authenticate, connection_class, open_socket
from messenger_tui.transport.errors import TransportError
from messenger_tui.transport.media_frames import MaskKeys, client_binary_frame
from messenger_tui.transport.media_join import media_endpoint
from messenger_tui.transport.urls import parse_relay_url

logger = logging.getLogger(__name__)

#: Bytes waiting in the socket's write buffer above which :meth:`GroupLink.send` drops.
SEND_BUFFER_LIMIT = 4 * 1024
#: Incoming messages buffered before the socket stops reading (3 streams x 50 frames/s).
MAX_QUEUE = 256
MAX_MESSAGE = 8 * 1024


class GroupJoinRefused(TransportError):
    """The relay refused the group join (room full, malformed...)."""


@dataclass
class GroupLinkCounters:
    sent: int = 0
    dropped: int = 0
    received: int = 0


class GroupLink:
    """One participant's leg of a group call (see the module docstring)."""

    def __init__(
        self,
        relay_url: str,
        identity_public: bytes,
        sign: Callable[[bytes], bytes],
        *,
        join_token: bytes,
        on_frame: Callable[[bytes], None],
        on_joined: Callable[[list[bytes]], None],
        on_member: Callable[[bytes, bool], None],
        on_ended: Callable[[str], None],
        connect_timeout: float = 5.0,
        send_buffer_limit: int = SEND_BUFFER_LIMIT,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = media_endpoint(parse_relay_url(relay_url))
        self._identity = bytes(identity_public)
        self._sign = sign
        self._token = bytes(join_token)
        self._on_frame = on_frame
        self._on_joined = on_joined
        self._on_member = on_member
        self._on_ended = on_ended
        self._connect_timeout = connect_timeout
        self._send_limit = send_buffer_limit
        self._ssl_context = ssl_context
        self._clock = clock
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()
        self._masks = MaskKeys()
        self._ended = False
        self.counters = GroupLinkCounters()
        self.error: str | None = None

    @property
    def joined(self) -> bool:
        return self._joined.is_set() and not self._ended

    def start(self) -> None:
        """Connect and join in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_joined(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._joined.wait()
        except TimeoutError:
            return False
        return not self._ended

    def send(self, frame: bytes) -> bool:
        """Write one sealed group frame now, or drop it (False, counted)."""
        ws = self._ws
        if not frame or frame[:1] != GROUP_FRAME_PREFIX:
            raise ValueError("a group frame starts with the byte 0x02")
        if (
            ws is None
            or not self.joined
            or ws.protocol.state is not State.OPEN
            or ws.transport.is_closing()
            or ws.transport.get_write_buffer_size() > self._send_limit
        ):
            self.counters.dropped += 1
            return False
        ws.transport.write(client_binary_frame(frame, self._masks.next()))
        self.counters.sent += 1
        return True

    async def leave(self) -> None:
        """Tell the relay we leave (it tells the others at once), then close."""
        ws = self._ws
        if ws is not None and self.joined:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(gw.encode_group_control(gw.GroupLeave()))
        await self.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._end("left")

    def _end(self, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self._joined.set()
        self._on_ended(reason)

    async def _run(self) -> None:
        display = self.endpoint.display
        try:
            ws = await open_socket(
                self.endpoint,
                connect_timeout=self._connect_timeout,
                max_size=MAX_MESSAGE,
                max_queue=MAX_QUEUE,
                ping_interval=3.0,
                ping_timeout=3.0,
                close_timeout=1.0,
                ssl_context=self._ssl_context,
                conn_class=connection_class(self.endpoint),
            )
            self._ws = ws
            await authenticate(
                ws,
                self.endpoint,
                self._identity,
                self._sign,
                clock=self._clock,
                connect_timeout=self._connect_timeout,
            )
            await ws.send(gw.encode_group_control(gw.GroupJoin(token=self._token)))
            async with asyncio.timeout(self._connect_timeout):
                answer = gw.decode_group_relay_frame(await ws.recv())
            if isinstance(answer, Error):
                raise GroupJoinRefused(
                    f"relay {display} refused the group call join ({answer.code}): {answer.message}"
                )
            if not isinstance(answer, gw.GroupJoined):
                raise GroupJoinRefused(f"relay {display} answered the join with {answer!r}")
            self._joined.set()
            self._on_joined(list(answer.participants))
            await self._read(ws)
            self._end(f"group call connection to relay {display} closed")
        except asyncio.CancelledError:
            raise
        except (TransportError, MalformedFrame, ConnectionClosed, OSError, TimeoutError) as exc:
            self.error = str(exc) or type(exc).__name__
            logger.info("group call leg ended: %s", self.error)
            self._end(self.error)

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            try:
                data = await ws.recv()
            except ConnectionClosed:
                return
            if type(data) is bytes and data[:1] == GROUP_FRAME_PREFIX:
                self.counters.received += 1
                self._on_frame(data)
                continue
            try:
                frame = gw.decode_group_relay_frame(data)
            except MalformedFrame as exc:
                logger.warning("skipping an undecodable group control frame: %s", exc)
                continue
            if isinstance(frame, gw.ParticipantChange):
                self._on_member(frame.identity, frame.present)
            elif isinstance(frame, Error):
                logger.info("group relay error (%s): %s", frame.code, frame.message)

"""The outgoing side of one websocket: an ordered, byte-bounded queue.

Everything the relay sends on a connection goes through its :class:`FrameQueue`, so frames from
different producers (the session, the commit batcher, the delivery pusher, other sessions'
signals) never interleave mid-write and never make a producer wait for a slow client.

:meth:`FrameQueue.put` never blocks. Frames put during one event-loop turn are written together
at the end of the turn with one transport write (one syscall instead of one per frame). When
the client does not read fast enough and the transport buffer passes the write limit, the
writer task (:meth:`FrameQueue.run`, which the session must run) takes over and sends through
websockets, waiting for the client. Producers check :meth:`FrameQueue.congested` (the pusher
stops, ephemeral frames are dropped, the session stops reading) and are called back through
``on_space`` when the queue has room again. Call :meth:`FrameQueue.close` when the connection ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messenger_tui.core import wire
from messenger_tui.relay.wakeup import Wakeup

#: The same encoding as :func:`messenger_tui.core.wire.encode`, minus a call level.
_encode = msgspec.msgpack.Encoder().encode
#: Most bytes coalesced into one transport write.
_BATCH_BYTES: Final = 256 * 1024


class FrameQueue:
    """Frames waiting for one connection. See the module docstring."""

    def __init__(
        self,
        connection: ServerConnection,
        *,
        limit_bytes: int,
        write_limit: int = 64 * 1024,
        on_space: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._loop = asyncio.get_running_loop()
        self._limit = limit_bytes
        self._write_limit = write_limit
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._flush_scheduled = False
        self._blocked = False  # the writer task is sending (the client reads slowly)
        self._wake = Wakeup()
        self._empty = Wakeup()
        self._empty.set()
        self._empty_set = True
        self._closed = False
        # The websockets sans-I/O protocol and transport, for coalesced writes (see
        # _write_batch); None falls back to connection.send for every frame.
        self._protocol = getattr(connection, "protocol", None)
        self._transport = getattr(connection, "transport", None)
        self.on_space = on_space
        #: Frames handed to the websocket, and ephemeral frames dropped, so far.
        self.frames_sent = 0
        self.dropped = 0

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in this queue (not yet handed to the websocket)."""
        return self._queued_bytes

    @property
    def closed(self) -> bool:
        """Whether the outbox stopped accepting frames (the connection is ending)."""
        return self._closed

    def congested(self) -> bool:
        """Whether producers should hold back (queue at its byte bound, or closed)."""
        return self._closed or self._queued_bytes >= self._limit

    def put(self, frame: wire.RelayFrame) -> None:
        """Queue a frame; never blocks. Ignored once the connection is closing."""
        if self._closed:
            return
        data = _encode(frame)
        self._queue.append(data)
        self._queued_bytes += len(data)
        if self._empty_set:
            self._empty_set = False
            self._empty.clear()
        if not self._flush_scheduled and not self._blocked:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def try_put(self, frame: wire.RelayFrame) -> bool:
        """Queue an ephemeral frame unless congested; False means it was dropped."""
        if self.congested():
            self.dropped += 1
            return False
        self.put(frame)
        return True

    async def flush(self, timeout: float) -> None:
        """Wait until every queued frame was handed to the websocket (or ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        """Stop accepting frames and drop what is queued; wakes producers waiting for room."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._empty_set = True
        self._empty.set()
        self._wake.set()
        if self.on_space is not None:
            self.on_space()

    # ------------------------------------------------------------------------- writing

    def _flush(self) -> None:
        """End of the loop turn: write what is queued, or hand over to the writer task."""
        self._flush_scheduled = False
        if self._closed or self._blocked:
            return
        was_congested = self._queued_bytes >= self._limit
        while self._queue:
            if not self._write_batch():
                self._blocked = True
                self._wake.set()
                break
        self._after_write(was_congested)

    def _after_write(self, was_congested: bool) -> None:
        if not self._queue:
            self._empty_set = True
            self._empty.set()
        if was_congested and self._queued_bytes < self._limit and self.on_space is not None:
            self.on_space()

    async def run(self) -> None:
        """The slow path: send through websockets while the client's buffer is full. Runs
        until the connection closes or :meth:`close` is called."""
        connection = self._connection
        queue = self._queue
        try:
            while not self._closed:
                self._wake.clear()
                await self._wake.wait()
                while self._blocked and queue and not self._closed:
                    was_congested = self._queued_bytes >= self._limit
                    data = queue.popleft()
                    self._queued_bytes -= len(data)
                    await connection.send(data)  # waits until the client has read enough
                    self.frames_sent += 1
                    while queue and self._write_batch():
                        pass
                    self._after_write(was_congested)
                self._blocked = False
        except ConnectionClosed:
            pass
        finally:
            self.close()

    def _write_batch(self) -> bool:
        """Write queued frames (up to 256 KiB) with ONE transport write if the connection is
        open and its transport buffer is below the write limit; False when it wrote nothing.

        This drives the websockets sans-I/O protocol the same way
        :func:`websockets.asyncio.server.broadcast` does; ``connection.send`` is the fallback.
        """
        protocol = self._protocol
        transport = self._transport
        if protocol is None or transport is None or protocol.state is not State.OPEN:
            return False
        if transport.is_closing() or transport.get_write_buffer_size() >= self._write_limit:
            return False
        queue = self._queue
        budget = _BATCH_BYTES
        count = 0
        while queue and budget > 0:
            data = queue.popleft()
            self._queued_bytes -= len(data)
            budget -= len(data)
            protocol.send_binary(data)
            count += 1
        chunks = protocol.data_to_send()
        payload = b"".join(chunks)
        if payload:
            transport.write(payload)
        if not all(chunks):  # end-of-stream marker: half-close like websockets does
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        self.frames_sent += count
        return True

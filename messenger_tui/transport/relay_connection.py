"""One authenticated websocket to the relay and everything whose lifetime is bound to it.

The :class:`~messenger_tui.transport.client.RelayClient` opens these and decides when to open
the next one; a :class:`RelayConnection` only carries frames while it lives:

* one reader task decodes frames and dispatches them in arrival order: answers go to the
  waiting futures (:class:`~.pending_answers.PendingAnswers`), everything else to the app's
  ``on_frame``; frames it cannot decode are logged (size and error only) and skipped, the
  connection stays up;
* one writer task drains an unbounded FIFO of encoded frames, so synchronous submissions can
  pipeline thousands of sends without awaiting;
* when it ends (closed, dropped, replaced, failed) every waiter fails with
  :class:`NotConnected`, its tasks stop and ``on_lost`` tells the client why, once;
* nothing logged contains keys, signatures or bodies.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from messenger_tui.core.close_codes import CLOSE_REPLACED
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import (
    AuthOk,
    Bundle,
    Challenge,
    Deliver,
    Drained,
    Error,
    Ok,
    Presence,
    RelayFrame,
    SignalDeliver,
    Stored,
    StoredMulti,
    decode_relay_frame,
)
from messenger_tui.transport.pending_answers import PendingAnswers

logger = logging.getLogger(__name__)

FrameHandler = Callable[[RelayFrame], Awaitable[None]]

#: Why a connection ended when the relay closed it with CLOSE_REPLACED.
REPLACED_REASON = (
    "another instance of this profile connected to the relay and took "
    "over (the same identity key is in use elsewhere)"
)


class RelayConnection:
    """One authenticated connection: its socket, outbound queue, reader and writer, and the
    answers it waits for."""

    def __init__(
        self,
        ws: ClientConnection,
        challenge: Challenge,
        auth: AuthOk,
        *,
        display: str,
        on_frame: FrameHandler,
        on_answer: Callable[[RelayConnection], None],
        on_lost: Callable[[RelayConnection, str], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.challenge = challenge
        self.auth = auth
        self.display = display
        self._on_frame = on_frame
        self._on_answer = on_answer
        self._on_lost = on_lost
        self.alive = True
        self.outq: collections.deque[bytes] = collections.deque()
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()  # set while nothing is queued or being written
        self.idle.set()
        self.pending = PendingAnswers()
        self.lost: asyncio.Future[str] = loop.create_future()
        #: The relay closed us with 4000: another instance of this identity took over.
        self.replaced = False
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.on_connected: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading and writing."""
        self.reader = asyncio.create_task(self._read_loop(), name="relay-reader")
        self.writer = asyncio.create_task(self._write_loop(), name="relay-writer")

    def enqueue(self, data: bytes) -> None:
        self.outq.append(data)
        self.idle.clear()
        self.wakeup.set()

    async def flush(self, timeout: float) -> bool:
        """Wait until the queue is written; False on timeout or when the connection ends."""
        if self.idle.is_set():
            return True
        idle: asyncio.Future[Any] = asyncio.ensure_future(self.idle.wait())
        waiting: list[asyncio.Future[Any]] = [idle, self.lost]
        try:
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        return self.idle.is_set() and self.alive

    def shut(self, reason: str) -> None:
        """Mark the connection dead: fail its waiters, drop its queue, stop its tasks."""
        self.alive = False
        self.pending.fail_all(
            f"connection to relay {self.display} lost before the answer arrived "
            f"({reason}); retry after reconnecting"
        )
        self.outq.clear()
        current = asyncio.current_task()
        for task in (self.reader, self.writer, self.on_connected):
            if task is not None and task is not current and not task.done():
                task.cancel()
        if not self.lost.done():
            self.lost.set_result(reason)

    async def close(self) -> None:
        try:
            await self.ws.close()
        except Exception:
            self.ws.transport.abort()

    # ------------------------------------------------------------------ tasks

    async def _read_loop(self) -> None:
        ws = self.ws
        reason = "connection closed"
        try:
            while True:
                try:
                    data = await ws.recv()
                except ConnectionClosed as exc:
                    reason = f"connection closed: {exc}"
                    if exc.rcvd is not None and exc.rcvd.code == CLOSE_REPLACED:
                        self.replaced = True
                        reason = REPLACED_REASON
                    break
                try:
                    frame = decode_relay_frame(data)
                except MalformedFrame as exc:
                    logger.warning(
                        "skipping a %d-byte frame from relay %s that cannot be decoded: %s",
                        len(data),
                        self.display,
                        exc,
                    )
                    continue
                await self._dispatch(frame)
        except asyncio.CancelledError:
            if self.alive:  # cancelled from outside: do not leave the socket open
                ws.transport.abort()
            raise
        except Exception as exc:
            logger.exception("relay reader failed")
            reason = f"client error: {exc!r}"
            ws.transport.abort()
        finally:
            self._on_lost(self, reason)

    async def _dispatch(self, frame: RelayFrame) -> None:
        if isinstance(frame, Drained | Stored | StoredMulti | Bundle | Ok):
            self._on_answer(self)  # the relay answered on this connection
        if isinstance(frame, Stored | StoredMulti | Bundle | Ok):
            if self.pending.answer(frame) or isinstance(frame, Stored | StoredMulti):
                return
            if isinstance(frame, Ok) and frame.ref == 0:
                await self._deliver(frame)  # unsolicited: "your one-time prekeys run low"
            else:
                logger.debug("ignoring a %s for a request no longer pending", frame_tag(frame))
        elif isinstance(frame, Error):
            if not self.pending.refuse(frame):
                await self._deliver(frame)
        elif isinstance(frame, Deliver | Drained | Presence | SignalDeliver):
            await self._deliver(frame)
        else:
            logger.warning("ignoring an unexpected %s frame after authentication", frame_tag(frame))

    async def _deliver(self, frame: RelayFrame) -> None:
        try:
            await self._on_frame(frame)
        except Exception:
            logger.exception("on_frame handler failed on a %s frame", frame_tag(frame))

    async def _write_loop(self) -> None:
        ws = self.ws
        queue = self.outq
        try:
            while True:
                if not queue:
                    self.idle.set()
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                await ws.send(queue.popleft())
        except ConnectionClosed:
            pass  # the reader sees the close and reports it
        except Exception:
            logger.exception("relay writer failed")
            ws.transport.abort()


def frame_tag(frame: object) -> str:
    """A frame's type name, for logs (never its content)."""
    return type(frame).__name__

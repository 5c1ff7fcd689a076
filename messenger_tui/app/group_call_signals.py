"""Group call messages out over the E2E channel, for
:class:`~messenger_tui.app.group_calls.GroupCallManager`.

Invites, frame keys and "call over" messages are sealed in the member's pairwise session and
sent as ephemeral ``signal`` frames (never stored by the relay; dropped for an offline
member), one at a time, in order, from one task: so a rotated key goes out right after the
relay says who joined or left, and the sealer's switch-over (1 s) covers its trip.

A frame key that could not be sent (the relay connection down a moment, no session yet) is
tried again :data:`KEY_RETRIES` times, :data:`KEY_RETRY_S` apart, while we are still in that
call (manager rule 5): without it that member hears nothing of us until the next rotation.

Nothing here logs keys, secrets or plaintext (only the message's type).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from messenger_tui.core.calls.group_keys import GroupCallFrameKey, GroupCallMessage
from messenger_tui.core.payload import encode_payload

log = logging.getLogger(__name__)

#: A frame key that could not be sent is tried again this often, this many times.
KEY_RETRY_S = 0.5
KEY_RETRIES = 4


class GroupCallSignals:
    """The manager's E2E sends (see the module docstring). Loop-only.

    ``send_signal(member, plaintext)`` seals and sends one (False: not sent);
    ``still_in_call(call_id)`` guards key retries; ``spawn`` runs a retry as the manager's
    background task (so closing the manager waits for it)."""

    def __init__(
        self,
        send_signal: Callable[[bytes, bytes], Awaitable[bool]],
        *,
        still_in_call: Callable[[bytes], bool],
        spawn: Callable[[Awaitable[None]], None],
    ) -> None:
        self._send_signal = send_signal
        self._still_in_call = still_in_call
        self._spawn = spawn
        self._queue: asyncio.Queue[tuple[bytes, GroupCallMessage]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def queue(self, member: bytes, message: GroupCallMessage) -> None:
        """Send ``message`` to ``member`` after the ones queued before it."""
        self._queue.put_nowait((member, message))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until everything queued was tried."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self) -> None:
        while True:
            member, message = await self._queue.get()
            try:
                sent = await self._send_signal(member, encode_payload(message))
            except Exception as exc:  # a failed send must not stop the later ones
                log.warning("group call message could not be sent: %s", type(exc).__name__)
                sent = False
            finally:
                self._queue.task_done()
            if not sent:
                log.info("group call %s not sent (offline or no session)", _tag(message))
                if isinstance(message, GroupCallFrameKey):
                    self._retry_key(member, message, KEY_RETRIES)

    def _retry_key(self, member: bytes, message: GroupCallFrameKey, left: int) -> None:
        if left <= 0:
            return

        async def again() -> None:
            await asyncio.sleep(KEY_RETRY_S)
            if not self._still_in_call(message.call_id):
                return
            try:
                sent = await self._send_signal(member, encode_payload(message))
            except Exception:
                sent = False
            if not sent:
                self._retry_key(member, message, left - 1)

        self._spawn(again())


def _tag(message: GroupCallMessage) -> str:
    return type(message).__name__

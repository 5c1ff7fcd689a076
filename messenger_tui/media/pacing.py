"""A 20 ms clock on the event loop for audio ends that have no device clock of their own.

:class:`LoopPacer` calls ``step()`` once per frame at absolute deadlines on a grid shared by
every pacer of the process: multiples of 20 ms of ``loop.time()``. A headless call's WAV
source and WAV sink therefore fire in the same loop iteration, so the call wakes the process
once per 20 ms for both instead of once per end, and no frame crosses a thread (no
``call_soon_threadsafe``, no GIL hand-off), with no thread of its own (measured: a small part
of a call's CPU, docs/performance.md, History, "Calls 10"; the codec and the per-frame Python
are the rest).

Absolute deadlines keep scheduling jitter from accumulating into drift. After a stall longer
than :data:`MAX_LAG_S` (a suspended machine, a blocked loop) the pacer rejoins the grid at the
next slot instead of bursting the missed frames.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Final

from messenger_tui.media.ports import FRAME_MS

FRAME_S: Final = FRAME_MS / 1000
#: A pacer this far behind its schedule rejoins the grid rather than catching up.
MAX_LAG_S: Final = 0.2


class LoopPacer:
    """Calls ``step()`` every 20 ms on ``loop`` until it returns False or :meth:`stop`.

    Call :meth:`start` on the loop's thread. :meth:`stop` may be called from any thread (a
    media session stops its ends from a worker thread): once it returns, ``step`` is not
    called again unless it is running right now on the loop thread, so a caller that must
    exclude a step in flight holds its own lock in ``step`` and in its stop path.
    """

    def __init__(self, step: Callable[[], object], *, phase_s: float = 0.0) -> None:
        """``phase_s`` (0 to 20 ms) shifts this pacer's slots off the shared grid: an end with
        a clock of its own phase, as a real device has (the delay benchmark draws one)."""
        if not 0.0 <= phase_s < FRAME_S:
            raise ValueError("phase_s must be within one frame")
        self._step = step
        self._phase = phase_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._slot = 0
        self._stopped = False
        self._guard = threading.Lock()  # orders stop() against rescheduling

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin at the next grid slot. Raises RuntimeError when started twice."""
        if self._loop is not None:
            raise RuntimeError("LoopPacer already started")
        self._loop = loop or asyncio.get_running_loop()
        self._slot = math.floor((self._loop.time() - self._phase) / FRAME_S) + 1
        self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        with self._guard:
            if not self._stopped:
                self._handle = loop.call_at(self._slot * FRAME_S + self._phase, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        if self._stopped or loop is None:
            return
        now = loop.time() - self._phase
        if now - self._slot * FRAME_S > MAX_LAG_S:
            self._slot = math.floor(now / FRAME_S)  # stalled: rejoin the grid, no burst
        if self._step() is False:
            self._stopped = True
            return
        self._slot += 1
        self._schedule()

    def stop(self) -> None:
        """Stop; idempotent, from any thread."""
        with self._guard:
            if self._stopped:
                return
            self._stopped = True
            handle, self._handle = self._handle, None
        loop = self._loop
        if handle is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            handle.cancel()
        else:  # asyncio handles are not thread-safe: hand the cancel to the loop
            try:
                loop.call_soon_threadsafe(handle.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass

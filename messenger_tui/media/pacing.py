"""A 20 ms clock on the event loop for audio ends that have no device clock of their own.

:class:`LoopPacer` calls ``step()`` once per frame at absolute deadlines on a grid shared by
every pacer of the process: multiples of 20 ms of ``loop.time()``. A headless call's WAV
source and WAV sink therefore fire in the same loop iteration, so the call wakes the process
once per 20 ms for both instead of once per end, and no frame crosses a thread (no
``call_soon_threadsafe``, no GIL hand-off), with no thread of its own (measured: a small part
of a call's CPU, docs/performance.md, History, "Calls 10"; the codec and the per-frame Python
are the rest).

Absolute deadlines keep scheduling jitter from accumulating into drift. A step that runs a
frame or more late (the loop, or the whole process, did not get the CPU: a busy machine) first
waits :data:`CATCH_UP_GAP_S`, once: the loop then delivers what arrived meanwhile (a call's
frames take a few loop iterations from the socket to the jitter buffer) before the step pulls.
Without that, the steps that catch up ran ahead of the frames that had arrived during the
stall, and a call's playout concealed them as lost (measured, Echo's sound test beside two
busy loops: 80 ms stalls, two frames concealed and then dropped as late per stall;
docs/performance.md, "Calls under load"). After a stall longer than :data:`MAX_LAG_S` (a
suspended machine) the pacer rejoins the grid at the next slot instead of bursting the missed
frames; shorter stalls (a busy machine: 250 ms seen) are caught up, as a device's buffer
would, so a WAV end neither loses nor shifts audio.
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
MAX_LAG_S: Final = 1.0
#: A step a frame or more late waits this long first (once), so the loop handles the I/O
#: that queued up meanwhile before the step runs.
CATCH_UP_GAP_S: Final = 0.002


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
        self._deferred = False  # this late step already let the loop catch up on I/O
        self._stopped = False
        self._guard = threading.Lock()  # orders stop() against rescheduling
        #: Steps that ran a frame or more after their slot (a busy loop or machine).
        self.late_steps = 0
        #: Stalls over :data:`MAX_LAG_S` after which the pacer rejoined the grid, and the
        #: slots those rejoins skipped (frames never stepped).
        self.rejoins = 0
        self.skipped_slots = 0
        #: The largest lag of a step behind its slot, in seconds.
        self.max_lag_s = 0.0

    @property
    def slot_time(self) -> float:
        """The loop time of the slot being stepped (or next to be): the tick's time on the
        pacer's own clock, however late the loop runs it."""
        return self._slot * FRAME_S + self._phase

    def summary(self) -> str:
        """The counters, for a log line."""
        return (
            f"late steps {self.late_steps} (max {self.max_lag_s * 1000:.0f} ms), "
            f"rejoins {self.rejoins} (skipped {self.skipped_slots} frames)"
        )

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
        lag = now - self._slot * FRAME_S
        if lag >= FRAME_S and not self._deferred:
            self.late_steps += 1
            self.max_lag_s = max(self.max_lag_s, lag)
            self._deferred = True  # let the loop deliver what arrived during the stall
            with self._guard:
                if not self._stopped:
                    self._handle = loop.call_later(CATCH_UP_GAP_S, self._fire)
            return
        self._deferred = False
        if lag > MAX_LAG_S:
            slot = math.floor(now / FRAME_S)  # stalled: rejoin the grid, no burst
            self.rejoins += 1
            self.skipped_slots += slot - self._slot
            self._slot = slot
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

"""A delay line that plays back what it hears: Echo's "microphone" is its "speaker", late.

:class:`DelayLoop` offers a :class:`~messenger_tui.media.ports.AudioSink` (``.sink``) and an
:class:`~messenger_tui.media.ports.AudioSource` (``.source``) driven by one clock on the event
loop: every 20 ms it pulls one decoded frame from the call (what the caller said) and captures
the frame pulled ``delay_s`` earlier, so the caller hears themselves after that delay, through
the whole encrypted path (decode, encode, seal, relay, open). Until the line is full it
captures silence, so frames flow from the first tick (the caller's media connects at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from messenger_tui.media.pacing import LoopPacer
from messenger_tui.media.ports import FRAME_MS, SILENCE


class DelayLoop:
    """Start both halves (in any order) through the media session; stop either to stop."""

    def __init__(self, delay_s: float = 1.5) -> None:
        self.delay_frames = max(0, round(delay_s * 1000 / FRAME_MS))
        self._line: deque[bytes] = deque()
        self._pull: Callable[[], bytes] | None = None
        self._on_frame: Callable[[bytes], None] | None = None
        self._pacer: LoopPacer | None = None
        self._last_pacer: LoopPacer | None = None  # kept for its counters after stop()
        self.source = _LoopSource(self)
        self.sink = _LoopSink(self)

    def _attach_source(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame
        self._ensure_running()

    def _attach_sink(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._ensure_running()

    def _ensure_running(self) -> None:
        if self._pacer is None and self._pull is not None and self._on_frame is not None:
            self._pacer = LoopPacer(self.tick)
            self._pacer.start()

    def timing_summary(self) -> str | None:
        """The pacer's counters (late steps, rejoins), for the call's summary line."""
        pacer = self._pacer or self._last_pacer
        return None if pacer is None else pacer.summary()

    def stop(self) -> None:
        """Idempotent; may be called from any thread (the session stops its ends off the
        loop). No callback runs once the ends are detached here."""
        self._pull = self._on_frame = None
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            self._last_pacer = pacer
            pacer.stop()
        self._line.clear()

    def tick(self) -> None:
        """One 20 ms step: take what the call plays, give back what it played back then."""
        pull, on_frame = self._pull, self._on_frame
        if pull is None or on_frame is None:
            return
        self._line.append(pull())
        out = self._line.popleft() if len(self._line) > self.delay_frames else SILENCE
        on_frame(out)


class _LoopSource:
    def __init__(self, loop: DelayLoop) -> None:
        self._loop = loop

    def timing_summary(self) -> str | None:
        return self._loop.timing_summary()

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self._loop._attach_source(on_frame)

    def stop(self) -> None:
        self._loop.stop()


class _LoopSink:
    def __init__(self, loop: DelayLoop) -> None:
        self._loop = loop

    def start(self, pull: Callable[[], bytes]) -> None:
        self._loop._attach_sink(pull)

    def stop(self) -> None:
        self._loop.stop()

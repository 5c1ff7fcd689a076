"""Two media sessions in one process, in simulated time, over an impairing in-memory carrier.

Everything runs on the test's thread: sources and sinks are manual-paced WAV files (or test
doubles), the sessions' clock is :class:`SimClock`, and an event queue orders capture ticks,
playout ticks and frame deliveries. Seconds of call take a fraction of a second, and the same
seed gives the same frames, losses and recordings.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from messenger_tui.core.calls.media_keys import CallKeyPair, CallRole, MediaKeys, derive_media_keys
from messenger_tui.media.codec import OpusSettings
from messenger_tui.media.jitter_buffer import JitterBufferConfig
from messenger_tui.media.ports import FRAME_BYTES
from messenger_tui.media.session import MediaSession
from messenger_tui.media.wav_io import WavSink, WavSource

CALL_ID = bytes(range(16))


def call_keys(seed: int = 1) -> tuple[MediaKeys, MediaKeys]:
    """(caller's, callee's) media keys of one call, from seeded key pairs."""
    rng = random.Random(seed)
    caller = CallKeyPair.generate(lambda n: rng.randbytes(n))
    callee = CallKeyPair.generate(lambda n: rng.randbytes(n))
    alice = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=caller, peer_public=callee.public
    )
    bob = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLEE, own=callee, peer_public=caller.public
    )
    return alice, bob


class SimClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Impairment:
    """What the link does to each frame: ``loss`` probability, one-way ``delay_s`` plus a
    uniform ``jitter_s``, and with probability ``reorder`` an extra ``reorder_s`` hold-back."""

    loss: float = 0.0
    delay_s: float = 0.02
    jitter_s: float = 0.0
    reorder: float = 0.0
    reorder_s: float = 0.03


@dataclass
class SimLink:
    """One direction of the in-memory carrier (a :class:`MediaCarrier`)."""

    sim: CallSim
    impairment: Impairment
    rng: random.Random
    deliver: Callable[[bytes], None] = lambda frame: None
    up: bool = True
    sent: list[bytes] = field(default_factory=list)
    #: Rewrites (or drops, with None) each frame in flight, e.g. to tamper.
    mangle: Callable[[bytes], bytes | None] | None = None
    lost: int = 0
    #: The other direction: where the peer's frames come from (its ``deliver`` is ours).
    inbound: SimLink | None = None

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        if self.inbound is not None:
            self.inbound.deliver = on_frame

    def send(self, frame: bytes) -> bool:
        if not self.up:
            return False
        self.sent.append(frame)
        imp = self.impairment
        # draw every random number for every frame, so a change of one setting does not
        # shift the others' sequences
        lose = self.rng.random() < imp.loss
        extra = self.rng.uniform(0.0, imp.jitter_s)
        held = self.rng.random() < imp.reorder
        if lose:
            self.lost += 1
            return True
        if self.mangle is not None:
            mangled = self.mangle(frame)
            if mangled is None:
                return True
            frame = mangled
        delay = imp.delay_s + extra + (imp.reorder_s if held else 0.0)
        self.sim.schedule(self.sim.clock.now + delay, lambda: self.deliver(frame))
        return True


class CallSim:
    """An event queue in simulated time."""

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock()
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def schedule(self, at: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (at, next(self._order), action))

    def every(
        self, period_s: float, action: Callable[[], object], *, start: float | None = None
    ) -> None:
        """Run ``action`` every ``period_s`` from ``start`` (default: now) on."""
        first = self.clock.now if start is None else start

        def tick(at: float) -> None:
            action()
            self.schedule(at + period_s, lambda: tick(at + period_s))

        self.schedule(first, lambda: tick(first))

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            at, _, action = heapq.heappop(self._queue)
            self.clock.now = at
            action()
        self.clock.now = end

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now + seconds)


class FrameSource:
    """A manual AudioSource of generated frames (``frame(n)`` for the n-th)."""

    def __init__(self, frame: Callable[[int], bytes] = lambda n: bytes(FRAME_BYTES)) -> None:
        self._frame = frame
        self._on_frame: Callable[[bytes], None] | None = None
        self.n = 0

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame

    def tick(self, frames: int = 1) -> int:
        for _ in range(frames):
            if self._on_frame is None:
                return 0
            self._on_frame(self._frame(self.n))
            self.n += 1
        return frames

    def stop(self) -> None:
        self._on_frame = None


class FrameSink:
    """A manual AudioSink that keeps what it pulled."""

    def __init__(self) -> None:
        self._pull: Callable[[], bytes] | None = None
        self.frames: list[bytes] = []

    def start(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull

    def tick(self, frames: int = 1) -> int:
        for _ in range(frames):
            if self._pull is None:
                return 0
            self.frames.append(self._pull())
        return frames

    def stop(self) -> None:
        self._pull = None


Source = WavSource | FrameSource
Sink = WavSink | FrameSink


@dataclass
class Leg:
    session: MediaSession
    source: Source
    sink: Sink
    link: SimLink  # the link this leg sends on
    connected: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


@dataclass
class Call:
    sim: CallSim
    alice: Leg
    bob: Leg
    loop: asyncio.AbstractEventLoop

    def start(
        self, *, sink_phase_s: float = 0.007, sink_period_s: tuple[float, float] = (0.02, 0.02)
    ) -> None:
        """Start both sessions; capture ticks every 20 ms, each sink on its own clock
        (``sink_period_s`` a little off 20 ms simulates device clock drift)."""
        for leg, period in ((self.alice, sink_period_s[0]), (self.bob, sink_period_s[1])):
            leg.session.start()
            self.sim.every(0.02, leg.source.tick)
            self.sim.every(period, leg.sink.tick, start=self.sim.clock.now + sink_phase_s)

    def stop(self) -> None:
        self.alice.session.close()
        self.bob.session.close()


def _stamper(times: list[float], clock: SimClock) -> Callable[[], None]:
    """A callback that appends the clock's time to ``times`` (bound now, not at call time)."""
    return lambda: times.append(clock.now)


@contextmanager
def make_call(
    *,
    alice_source: Source | None = None,
    bob_source: Source | None = None,
    alice_sink: Sink | None = None,
    bob_sink: Sink | None = None,
    to_bob: Impairment | None = None,
    to_alice: Impairment | None = None,
    seed: int = 7,
    settings: OpusSettings | None = None,
    redundancy: bool = True,
    lost_after_s: float = 10.0,
    jitter_config: JitterBufferConfig | None = None,
) -> Iterator[Call]:
    """Alice (caller) and Bob (callee) sessions over a :class:`SimLink` each way."""
    sim = CallSim()
    loop = asyncio.new_event_loop()
    alice_keys, bob_keys = call_keys()
    rng = random.Random(seed)
    link_ab = SimLink(sim, to_bob or Impairment(), random.Random(rng.random()))
    link_ba = SimLink(sim, to_alice or Impairment(), random.Random(rng.random()))
    legs = []
    for keys, link, source, sink in (
        (alice_keys, link_ab, alice_source, alice_sink),
        (bob_keys, link_ba, bob_source, bob_sink),
    ):
        source = source or FrameSource()
        sink = sink or FrameSink()
        connected: list[float] = []
        lost: list[str] = []
        session = MediaSession(
            keys,
            link,
            source,
            sink,
            loop=loop,
            settings=settings,
            clock=sim.clock,
            on_connected=_stamper(connected, sim.clock),
            on_lost=lost.append,
            redundancy=redundancy,
            lost_after_s=lost_after_s,
            jitter_config=jitter_config,
        )
        legs.append(Leg(session, source, sink, link, connected, lost))
    alice, bob = legs
    link_ab.inbound, link_ba.inbound = link_ba, link_ab  # each session starts its inbound
    call = Call(sim, alice, bob, loop)
    try:
        yield call
    finally:
        call.stop()
        loop.close()


def speech_call(
    tmp: Path,
    alice_wav: Path,
    bob_wav: Path,
    *,
    seconds: float,
    **kwargs: object,
) -> tuple[Path, Path]:
    """Alice plays ``alice_wav`` and records Bob, and the other way round; returns
    (what Bob recorded, what Alice recorded)."""
    bob_rec, alice_rec = tmp / "bob-recorded.wav", tmp / "alice-recorded.wav"
    with make_call(
        alice_source=WavSource(alice_wav, pace="manual"),
        bob_source=WavSource(bob_wav, pace="manual"),
        alice_sink=WavSink(alice_rec, pace="manual"),
        bob_sink=WavSink(bob_rec, pace="manual"),
        **kwargs,  # type: ignore[arg-type]
    ) as call:
        call.start()
        call.sim.run_for(seconds)
    return bob_rec, alice_rec

"""Adaptive jitter buffer for 20 ms audio frames: reorders, drops late frames, picks concealment.

The buffer never decodes. Each :meth:`JitterBuffer.pull` says what to decode for this tick (a
:class:`Playout`); the caller does it with the codec:

========================  =========================================================
``Playout.kind``          what the caller decodes
========================  =========================================================
``FRAME``                 ``packet`` normally (the frame's own packet)
``REDUNDANT``             ``packet`` normally (the copy carried by the next packet)
``FEC``                   ``packet`` with ``fec=True`` (in-band FEC of the next packet)
``PLC``                   nothing: Opus packet loss concealment (``decode(b"")``)
``SILENCE``               nothing: still buffering, play zeros, leave the decoder alone
========================  =========================================================

Timing: push every opened frame with its arrival time, and pull exactly once per 20 ms tick of
the *output device's* clock. Both times must be read from the same local clock (e.g.
``time.monotonic()`` in ms); the device only decides *when* pulls happen. Tests drive it in
simulated time.

Algorithm (parameters in :class:`JitterBufferConfig`):

- Each arrival gives a transit offset ``d = arrival - sequence * 20 ms``. Over the last 250
  arrivals (5 s), ``base = min(d)`` is the fastest path seen and ``d - base`` is that packet's
  jitter.
- ``target = clamp(p95(jitter) + 20 ms, 20, 200)``: the 95th percentile, as WebRTC's NetEq does,
  plus one frame so that when a frame is missing the *next* packet (which carries its redundant
  copy and its in-band FEC) has usually arrived. Until 25 arrivals are seen the target is the
  start delay (60 ms).
- The current delay of the frame due is ``now - (sequence * 20 ms + base)``. It is kept in a
  dead band ``[target - 5, target + 25)`` by whole frames, which is what keeps clock drift
  between sender and receiver from growing (or draining) the buffer:

  * above the band at every tick of the last 200 ms (``adjust_interval`` ticks): drop one
    frame, at most once per 200 ms (at once above ``max_delay + 25``). One late pull (a busy
    machine runs the output's tick a few ms late, and it reads the clock late) looks like
    that much excess delay; dropping on it threw a frame out of the speech, and the stretch
    that refilled the buffer another (measured in Echo's sound test beside two busy loops:
    4-5 drops and as many stretches on each side, WB-PESQ 2.0-3.2 instead of 3.5;
    docs/performance.md, "Calls under load");
  * the frame due is missing and the delay is below the target, or packets have been arriving
    late: play one PLC frame *without* consuming it (a stretch: the frame is probably just
    late, and waiting for it grows the delay by one frame);
  * below the band while the frame is there: stretch too, at most once per 200 ms.

- A missing frame is concealed by, in this order of quality: the redundant copy in the next
  packet, the next packet's in-band FEC, Opus PLC. (Measured at 5 % loss, WB-PESQ: 3.43 with
  the copy, 2.25 with FEC, 2.09 with PLC only.)
- A packet for a slot already played or concealed is *late* and dropped. 25 late packets in a
  row (or one more than a second ahead of the playout) mean the sender's numbering jumped: the
  buffer restarts (``resyncs``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

#: Duration of one frame.
FRAME_MS: Final = 20
#: How many slot outcomes are remembered to classify late packets.
_OUTCOME_MEMORY: Final = 512


class PlayoutKind(Enum):
    FRAME = "frame"
    REDUNDANT = "redundant"
    FEC = "fec"
    PLC = "plc"
    SILENCE = "silence"


class Concealment(Enum):
    """How a missing frame was filled."""

    REDUNDANCY = "redundancy"
    FEC = "fec"
    PLC = "plc"


_CONCEALMENT_OF: Final = {
    PlayoutKind.REDUNDANT: Concealment.REDUNDANCY,
    PlayoutKind.FEC: Concealment.FEC,
    PlayoutKind.PLC: Concealment.PLC,
}


@dataclass(frozen=True, slots=True)
class Playout:
    """What to play for one tick. ``sequence`` is the frame this tick plays (``None`` for
    silence and stretches); ``packet`` is what to hand the decoder (see the module table)."""

    kind: PlayoutKind
    sequence: int | None = None
    packet: bytes | None = None
    #: A PLC frame inserted to grow the delay; the frame due was not consumed.
    stretched: bool = False


@dataclass(frozen=True, slots=True)
class JitterBufferConfig:
    frame_ms: int = FRAME_MS
    min_delay_ms: float = 20.0
    max_delay_ms: float = 200.0
    #: Target used until ``warmup_arrivals`` packets have been seen.
    start_delay_ms: float = 60.0
    warmup_arrivals: int = 25
    #: Arrivals in the jitter window (250 = 5 s).
    history: int = 250
    percentile: float = 0.95
    #: Drop a frame when the delay is this far above the target.
    drop_margin_ms: float = 25.0
    #: Stretch with a frame present when the delay is this far below the target.
    stretch_margin_ms: float = 5.0
    #: Fewest ticks between two drops, and between two stretches with the frame present.
    adjust_interval: int = 10
    #: This many late packets in a row restart the playout.
    resync_late_run: int = 25
    #: A packet this many frames ahead of the playout restarts it.
    resync_ahead: int = 50

    def __post_init__(self) -> None:
        # a drop must not land below the stretch threshold (nor a stretch above the drop
        # threshold), or the delay would oscillate by a frame every adjust_interval
        if self.drop_margin_ms + self.stretch_margin_ms < self.frame_ms:
            raise ValueError("drop_margin_ms + stretch_margin_ms must be at least one frame")
        if not 0 < self.min_delay_ms <= self.max_delay_ms:
            raise ValueError("need 0 < min_delay_ms <= max_delay_ms")


@dataclass(slots=True)
class JitterStats:
    """Counters and gauges for the call's statistics view. Delays are in ms."""

    received: int = 0
    duplicates: int = 0
    #: Packets that arrived after their slot was played, concealed or dropped.
    late: int = 0
    #: Slots concealed whose packet never arrived (a late arrival moves it to ``late``).
    lost: int = 0
    played: int = 0
    concealed: dict[Concealment, int] = field(default_factory=lambda: dict.fromkeys(Concealment, 0))
    #: Frames skipped to shrink the delay; PLC frames inserted to grow it.
    dropped: int = 0
    stretched: int = 0
    resyncs: int = 0
    buffering: bool = True
    current_delay_ms: float = 0.0
    target_delay_ms: float = 0.0
    #: RFC 3550 interarrival jitter (smoothed mean deviation of transit time).
    jitter_ms: float = 0.0
    #: The 95th percentile of jitter in the window, which sets the target.
    jitter_p95_ms: float = 0.0

    @property
    def concealed_total(self) -> int:
        return sum(self.concealed.values())


class JitterBuffer:
    """One receive stream's jitter buffer. See the module docstring for the contract."""

    def __init__(self, config: JitterBufferConfig | None = None) -> None:
        self.config = config or JitterBufferConfig()
        self.stats = JitterStats(target_delay_ms=self.config.start_delay_ms)
        self._frames: dict[int, bytes] = {}
        self._redundant: dict[int, bytes] = {}  # copies, keyed by the frame they stand for
        self._next: int | None = None  # the frame due at the next tick; None while buffering
        self._transits: deque[float] = deque()  # the window, oldest first
        self._ordered: list[float] = []  # the same values, sorted (the percentile and the base)
        self._last_transit: float | None = None
        self._outcomes: dict[int, str] = {}  # slot -> "played" | "concealed" | "dropped"
        self._late_run = 0
        self._since_drop = 0
        self._since_stretch = 0
        #: The delay of the frame due at each of the last ``adjust_interval`` ticks (since
        #: the last drop or stretch), plus the base then: a drop needs all of them above
        #: the band (or one above the bound).
        self._recent_delays: deque[float] = deque(maxlen=self.config.adjust_interval)

    # ------------------------------------------------------------------ input

    def push(
        self, sequence: int, packet: bytes, arrival_ms: float, redundant: bytes | None = None
    ) -> None:
        """Add the frame ``sequence`` (its Opus packet) that arrived at ``arrival_ms``;
        ``redundant`` is the copy of frame ``sequence - 1`` it carries, if any."""
        cfg = self.config
        nxt = self._next
        if nxt is not None and sequence >= nxt + cfg.resync_ahead:
            self._resync()  # the sender's numbering jumped ahead
            nxt = None
        if nxt is not None and sequence < nxt:
            self._on_late(sequence, arrival_ms)
            return
        if sequence in self._frames:
            self.stats.duplicates += 1
            return
        self._late_run = 0
        self._record_transit(sequence, arrival_ms)
        self.stats.received += 1
        self._frames[sequence] = packet
        previous = sequence - 1
        if redundant and previous not in self._frames and (nxt is None or previous >= nxt):
            self._redundant[previous] = redundant

    def _on_late(self, sequence: int, arrival_ms: float) -> None:
        outcome = self._outcomes.get(sequence)
        if outcome == "played":
            self.stats.duplicates += 1
            return
        # the network delivered it, just too late: it was not lost, and its delay is exactly
        # the jitter the target must learn about
        self.stats.late += 1
        if outcome == "concealed":
            self.stats.lost -= 1
            del self._outcomes[sequence]
        assert self._next is not None
        if self._next - sequence < self.config.resync_ahead:
            self._record_transit(sequence, arrival_ms)
        # else: seconds behind is a numbering jump, not network jitter
        self._late_run += 1
        if self._late_run >= self.config.resync_late_run:
            self._resync()  # numbering jumped back (e.g. a restarted sender)

    def _record_transit(self, sequence: int, arrival_ms: float) -> None:
        transit = arrival_ms - sequence * self.config.frame_ms
        if self._last_transit is not None:
            # RFC 3550 section 6.4.1: J += (|D| - J) / 16
            self.stats.jitter_ms += (abs(transit - self._last_transit) - self.stats.jitter_ms) / 16
        self._last_transit = transit
        transits, ordered = self._transits, self._ordered
        if len(transits) >= self.config.history:
            del ordered[bisect_left(ordered, transits.popleft())]
        transits.append(transit)
        insort(ordered, transit)

    def _resync(self) -> None:
        self.stats.resyncs += 1
        self._frames.clear()
        self._redundant.clear()
        self._outcomes.clear()
        self._transits.clear()
        self._ordered.clear()
        self._last_transit = None
        self._next = None
        self._late_run = 0
        self._recent_delays.clear()
        self.stats.buffering = True

    # ------------------------------------------------------------------ output

    def target_delay_ms(self) -> float:
        """The delay the buffer steers towards, from the jitter window."""
        cfg = self.config
        n = len(self._transits)
        if n < cfg.warmup_arrivals:
            self.stats.jitter_p95_ms = 0.0
            return min(max(cfg.start_delay_ms, cfg.min_delay_ms), cfg.max_delay_ms)
        ordered = self._ordered
        p95 = ordered[max(math.ceil(cfg.percentile * n) - 1, 0)] - ordered[0]
        self.stats.jitter_p95_ms = p95
        return min(max(p95 + cfg.frame_ms, cfg.min_delay_ms), cfg.max_delay_ms)

    def _delay(self, sequence: int, now_ms: float) -> float:
        return now_ms - (sequence * self.config.frame_ms + self._ordered[0])

    def pull(self, now_ms: float) -> Playout:
        """What to play for the device tick at ``now_ms``; call once per 20 ms of device time."""
        cfg = self.config
        stats = self.stats
        target = self.target_delay_ms()
        stats.target_delay_ms = target
        if self._next is None:
            if not self._frames:
                return Playout(PlayoutKind.SILENCE)
            first = min(self._frames)
            stats.current_delay_ms = self._delay(first, now_ms)
            if stats.current_delay_ms < target:
                return Playout(PlayoutKind.SILENCE)
            self._next = first
            stats.buffering = False
            self._since_drop = self._since_stretch = cfg.adjust_interval
        self._since_drop += 1
        self._since_stretch += 1
        seq = self._next
        delay = self._delay(seq, now_ms)
        present = seq in self._frames
        recent = self._recent_delays
        base = self._ordered[0]
        recent.append(delay + base)  # the base moves with the window: kept without it
        if self._since_drop >= cfg.adjust_interval and (
            (len(recent) == recent.maxlen and min(recent) - base >= target + cfg.drop_margin_ms)
            or delay >= cfg.max_delay_ms + cfg.drop_margin_ms  # the bound holds at once
        ):
            # too much buffered, for 200 ms: the sender's clock is faster, or the jitter
            # calmed down (not just this tick running late)
            self._settle(seq, "dropped")
            stats.dropped += 1
            self._since_drop = 0
            recent.clear()
            seq += 1
            delay -= cfg.frame_ms
            present = seq in self._frames
        elif (not present and (delay < target or self._waiting_helps(delay))) or (
            delay < target - cfg.stretch_margin_ms and self._since_stretch >= cfg.adjust_interval
        ):
            # too little buffered: wait one frame for it (the sender's clock is slower, or the
            # jitter grew); Opus PLC fills the gap
            stats.stretched += 1
            self._since_stretch = 0
            recent.clear()  # the frame due is not consumed: its delay grows by a frame
            stats.current_delay_ms = delay + cfg.frame_ms
            return Playout(PlayoutKind.PLC, stretched=True)
        stats.current_delay_ms = delay
        self._next = seq + 1
        if present:
            stats.played += 1
            playout = Playout(PlayoutKind.FRAME, seq, self._frames[seq])
            self._settle(seq, "played")
            return playout
        if seq in self._redundant:
            playout = Playout(PlayoutKind.REDUNDANT, seq, self._redundant[seq])
        elif seq + 1 in self._frames:
            playout = Playout(PlayoutKind.FEC, seq, self._frames[seq + 1])
        else:
            playout = Playout(PlayoutKind.PLC, seq)
        stats.concealed[_CONCEALMENT_OF[playout.kind]] += 1
        stats.lost += 1
        self._settle(seq, "concealed")
        return playout

    def _waiting_helps(self, delay: float) -> bool:
        """The frame due is missing but packets are arriving late: the path got slower, so
        wait for it now rather than after the jitter window has learned the new delay."""
        return self._late_run > 0 and delay + self.config.frame_ms <= self.config.max_delay_ms

    def _settle(self, sequence: int, outcome: str) -> None:
        """Slot ``sequence`` is done: forget its packets, remember what happened to it."""
        self._frames.pop(sequence, None)
        self._redundant.pop(sequence, None)
        self._outcomes[sequence] = outcome
        self._outcomes.pop(sequence - _OUTCOME_MEMORY, None)

    @property
    def buffered(self) -> int:
        """Frames waiting to be played."""
        return len(self._frames)

"""The played audio kept for the echo canceller, and the reference it is handed.

:class:`ReferenceLine` keeps the played samples in a ring indexed by the played-sample count
(:meth:`~ReferenceLine.write`), and fills a captured frame's reference from the played samples
starting at a given count (:meth:`~ReferenceLine.fill`): through SpeexDSP's resampler, down to
the canceller's rate (16 kHz: the ring holds 48 kHz samples) and at the ratio the drift
estimate says (:mod:`messenger_tui.media.echo_drift`), so the echo stays put in
the canceller's filter while the two clocks part. The resampler always runs (a ratio of
exactly 1 without drift): switching it on later would move the reference and cost the filter
its convergence.

The resampled reference reads :data:`HEADROOM_MS` behind the requested count, so it can run
faster than the played audio comes in (the microphone's clock fast) for a while; when the
headroom is used up, or the requested count jumps (a new delay or offset), it starts again at
the requested count.
"""

from __future__ import annotations

import ctypes
import math
from typing import Final

from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.speex_dsp import Resampler

HEADROOM_MS: Final = 2
#: Input handed to the resampler per frame beyond one frame (a ratio up to 1 + 1/60).
STAGE_EXTRA: Final = 16
#: The resampler's ratio is num / RATIO_DEN. SpeexDSP rescales its phase by the old and new
#: denominators when the ratio changes, in 32 bits: a denominator above 2**16 overflows (it
#: refuses the change). That is a step of 15 ppm; the ratio set for a frame alternates
#: between the two nearest steps so their mean is the drift (each held while the position
#: error stays within :data:`HOLD_STEPS`).
RATIO_DEN: Final = 1 << 16
#: SpeexDSP's quality 1 (16 taps a phase, 48 for the 3:1 decimation): the drift makes the
#: ratio fractional, which SpeexDSP computes by interpolating its filter table, 4 products a
#: tap; quality 2 cost 6 M instructions a second of call more for the same ERLE offline.
RESAMPLER_QUALITY: Final = 1
#: How far (in steps of 1 / RATIO_DEN over a frame: 0.015 samples) the reference may run
#: ahead of or behind the drift before the ratio's step changes: 0.06 samples.
HOLD_STEPS: Final = 4.0


class ReferenceLine:
    """The played audio by count (48 kHz), and the drift-resampled reference at
    ``out_rate`` (a divisor of 48 kHz)."""

    def __init__(self, ring_samples: int, out_rate: int = SAMPLE_RATE) -> None:
        if SAMPLE_RATE % out_rate:
            raise ValueError(f"the reference's rate must divide {SAMPLE_RATE}")
        self.ring_samples = ring_samples
        #: Played samples per reference sample (without drift), and reference samples a frame.
        self._decimation = SAMPLE_RATE // out_rate
        self.frame_out = FRAME_SAMPLES // self._decimation
        self._ring = (ctypes.c_int16 * ring_samples)()
        self._ring_address = ctypes.addressof(self._ring)
        self.played_count = 0
        self._stage = (ctypes.c_int16 * (FRAME_SAMPLES + STAGE_EXTRA))()
        self._stage_address = ctypes.addressof(self._stage)
        self._resampler = Resampler(RESAMPLER_QUALITY, SAMPLE_RATE, out_rate)
        self._headroom = HEADROOM_MS * SAMPLE_RATE // 1000
        #: The count the resampler reads next, and the requested count it goes with.
        self._feed = 0
        self._expected: int | None = None
        self.ppm = 0.0
        #: The step in use (RATIO_DEN - step: 0 until a drift is set, the resampler's exact
        #: initial ratio) and the position lost to it so far, in step-frames.
        self._step = 0
        self._error = 0.0
        self._num = RATIO_DEN * self._decimation
        #: How many times the reference started again (a jump, or the headroom used up).
        self.restarts = 0
        #: How many samples the reference lags the requested count (headroom and drift).
        self.lag = 0

    def write(self, frame: bytes) -> None:
        """The next played frame (:data:`FRAME_BYTES` bytes)."""
        start = self.played_count % self.ring_samples
        # the ring is a whole number of frames, so a frame never wraps
        ctypes.memmove(self._ring_address + 2 * start, frame, FRAME_BYTES)
        self.played_count += FRAME_SAMPLES

    def set_ppm(self, ppm: float) -> None:
        """Read the played audio ``1 - ppm / 1e6`` samples per reference sample."""
        self.ppm = ppm

    def _next_ratio(self) -> None:
        """The ratio for the next frame (the alternation in :data:`RATIO_DEN`): the step in
        use is kept while the position it has lost or gained against the drift stays within
        :data:`HOLD_STEPS`, then the other side's step takes over. (Alternating every frame
        cost a recomputation of SpeexDSP's filter table each frame: 8 M instructions a second
        of call.)"""
        target = self.ppm * RATIO_DEN / 1e6
        error = self._error + target - self._step
        if abs(error) > HOLD_STEPS:
            step = math.floor(target) + (1 if error > 0 else 0)
            if step == 0:
                # never num == den * decimation once drifting: SpeexDSP reduces the ratio to
                # 1/1 (3/1) and its phase, rescaled to a denominator of 1, loses the fraction
                # of a sample it had (a jump in the reference each time the ratio passed 1)
                step = 1 if error > 0 else -1
            error += self._step - step
            self._step = step
            num = (RATIO_DEN - step) * self._decimation
            if num != self._num:
                self._num = num
                self._resampler.set_ratio(num, RATIO_DEN)
        self._error = error

    def copy(self, first: int, address: int, count: int) -> None:
        """The played samples from count ``first`` into ``count`` int16 at ``address``
        (silence where they were not played yet or are gone from the ring)."""
        filled = 0
        played, size = self.played_count, self.ring_samples
        while filled < count:
            index = first + filled
            if index < 0 or index >= played or index < played - size:
                if index >= played:
                    run = count - filled
                elif index < 0:
                    run = min(count - filled, -index)
                else:
                    run = min(count - filled, played - size - index)
                ctypes.memset(address + 2 * filled, 0, 2 * run)
            else:
                position = index % size
                run = min(count - filled, size - position, played - index)
                ctypes.memmove(address + 2 * filled, self._ring_address + 2 * position, 2 * run)
            filled += run

    def fill(self, first: int, address: int) -> bool:
        """The reference for a captured frame aligned with played count ``first``, into one
        frame at ``address`` (:attr:`frame_out` samples at the output rate), resampled for
        the drift; True when it restarted (the filter's alignment jumped)."""
        restarted = False
        if self._expected != first:
            restarted = True
        elif self._feed + FRAME_SAMPLES + 2 > self.played_count:
            restarted = True  # the headroom is used up
        if restarted:
            self.restarts += 1
            self._resampler.restart()
            self._feed = first - self._headroom
        self._expected = first + FRAME_SAMPLES
        self._next_ratio()
        available = max(0, min(FRAME_SAMPLES + STAGE_EXTRA, self.played_count - self._feed))
        self.copy(self._feed, self._stage_address, available)
        wanted = self.frame_out
        used, made = self._resampler.process(self._stage_address, available, address, wanted)
        if made < wanted:
            ctypes.memset(address + 2 * made, 0, 2 * (wanted - made))
        self._feed += used
        self.lag = first + FRAME_SAMPLES - self._feed
        return restarted

    def close(self) -> None:
        self._resampler.close()

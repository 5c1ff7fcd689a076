"""The delay from played audio to its echo in the captured audio, by cross-correlating
envelopes (used by :class:`~messenger_tui.media.voice_processing.VoiceProcessor` to place its
reference delay line)."""

from __future__ import annotations

import math
from itertools import accumulate
from operator import mul
from typing import Final

from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE

#: Largest device delay (playback to capture) the delay line can hold.
MAX_DELAY_MS: Final = 500
#: How much earlier than the devices' timestamps say the echo may come (the timestamps of
#: PulseAudio's ALSA plugin were off by up to ~150 ms; played audio is in the ring as soon as
#: the sink pulls it, ahead of its playing).
MAX_AHEAD_MS: Final = 200
#: Envelope block: one value per 2 ms.
ENVELOPE_BLOCK: Final = SAMPLE_RATE // 500
ENVELOPE_PER_FRAME: Final = FRAME_SAMPLES // ENVELOPE_BLOCK
#: A sample's magnitude in the envelope: its high byte's (little-endian int16, so |x| / 256
#: rounded down), by a table :meth:`bytes.translate` applies in C. A block's value is then a
#: sum over bytes (small ints, no allocation): the Python loop over every second sample cost
#: 20 M instructions a second of call, every 12th 5 M and lost the echo in noise (its
#: correlation 0.29 where every second sample's was 0.49; the high bytes' 0.55). The price:
#: an echo below ~-60 dBFS (RMS 27) has no envelope.
_MAGNITUDE: Final = bytes(b if b < 128 else 255 - b for b in range(256))
#: A search around the delay found covers this much each side of it.
NARROW_MS: Final = 40
#: A search first compares envelopes of this many blocks summed (4 ms) ...
COARSE: Final = 2
#: ... then this many blocks each side of the best of them, at 2 ms.
FINE_REACH: Final = 3


class DelayEstimator:
    """Estimates the delay from played audio to its echo in the captured audio.

    Both signals are reduced to envelopes (the magnitude summed over :data:`ENVELOPE_BLOCK`
    samples, at 1/256 resolution: :data:`_MAGNITUDE`), kept for ``window_s`` seconds.
    :meth:`estimate` cross-correlates the mean-removed envelopes for every lag from
    ``-max_ahead_ms`` (the echo before the timestamps say its sound plays: they can be wrong)
    to ``max_delay_ms`` and
    returns the best lag in samples when its normalised correlation is at least
    ``min_correlation`` and the far end spoke (else ``None``: keep the previous estimate).
    Pure Python on 500 envelope values a second: one product of ~1,650 values per lag (each
    lag's mean and energy come from running sums), ~350 lags, every few seconds.
    """

    def __init__(
        self,
        *,
        window_s: float = 4.0,
        max_delay_ms: int = MAX_DELAY_MS,
        max_ahead_ms: int = MAX_AHEAD_MS,
        min_correlation: float = 0.3,
    ) -> None:
        self._size = int(window_s * SAMPLE_RATE) // ENVELOPE_BLOCK
        self._max_lag = max_delay_ms * SAMPLE_RATE // 1000 // ENVELOPE_BLOCK
        self._min_lag = -(max_ahead_ms * SAMPLE_RATE // 1000 // ENVELOPE_BLOCK)
        self._min_correlation = min_correlation
        self._played: list[float] = []
        self._captured: list[float] = []
        self.last_correlation = 0.0
        #: The last estimate :meth:`step` finished (samples; None: the audio did not say).
        self.result: int | None = None
        # an estimate in progress (begin/step)
        self._cap: list[float] = []
        self._ref_all: list[float] = []
        self._ref_sums: list[float] = []
        self._ref_squares: list[float] = []
        self._cap_energy = 0.0
        self._next_lag = self._stop_lag = 0
        #: The pass in progress: its envelope blocks per value (COARSE or 1), its largest lag.
        self._scale = 1
        self._pass_max_lag = self._max_lag
        self._best_lag: int | None = None
        self._best = 0.0

    @staticmethod
    def _envelope(frame: bytes | memoryview, out: list[float]) -> None:
        magnitudes = bytes(frame)[1::2].translate(_MAGNITUDE)
        for start in range(0, len(magnitudes), ENVELOPE_BLOCK):
            out.append(float(sum(magnitudes[start : start + ENVELOPE_BLOCK])))

    def reset(self) -> None:
        """Forget the history (the two signals' alignment changed)."""
        self._played.clear()
        self._captured.clear()

    def add(self, played: bytes | memoryview, captured: bytes | memoryview) -> None:
        """The played and captured frames of the same 20 ms of the stream counters."""
        self._envelope(played, self._played)
        self._envelope(captured, self._captured)
        excess = len(self._played) - self._size
        if excess > 0:
            del self._played[:excess]
            del self._captured[:excess]

    def estimate(self) -> int | None:
        """The delay in samples, or ``None`` when the recent audio does not say."""
        if not self.begin():
            return None
        while not self.step(self._max_lag - self._min_lag + 1):
            pass
        return self.result

    def begin(self, around: int | None = None, *, fine: bool = False) -> bool:
        """Start an estimate over the recent audio, to be computed by :meth:`step` (False:
        not enough audio yet). A call spreads the work over frames this way: an estimate is
        ~20 ms of CPU at once (60 ms under load), which the event loop, and the device
        thread waiting for the GIL, would feel as a stall. ``around``: search only within
        :data:`NARROW_MS` of this delay (samples): the echo found, whether it is still there
        (a tenth of the lags). Either search compares envelopes of :data:`COARSE` blocks summed
        first (a quarter of the products), then the :data:`FINE_REACH` blocks each side of
        the best coarse lag at the full resolution (``fine``: that second pass)."""
        played, captured = self._played, self._captured
        scale = 1
        if not fine:
            scale = COARSE
            played = [a + b for a, b in zip(played[::2], played[1::2])]
            captured = [a + b for a, b in zip(captured[::2], captured[1::2])]
        max_lag, min_lag = self._max_lag // scale, -(-self._min_lag // scale)
        span = max_lag - min_lag
        # captured[i] ~ played[i - lag] for lag in [min_lag, max_lag]: the captured values
        # compared are those with played values on both sides (a negative lag, the echo
        # before the timestamps say it plays, needs played values after it)
        n = len(captured) - span
        if n < span:
            return False
        first = max_lag
        cap = captured[first : first + n]
        cap_mean = sum(cap) / n
        self._cap = [v - cap_mean for v in cap]
        self._cap_energy = math.fsum(map(mul, self._cap, self._cap))
        self._ref_all = ref_all = played[: first + n - min_lag]
        # each lag's mean and energy from running sums: one pass per lag (the product)
        self._ref_sums = list(accumulate(ref_all, initial=0.0))
        self._ref_squares = list(accumulate(map(mul, ref_all, ref_all), initial=0.0))
        self._scale, self._pass_max_lag = scale, max_lag
        self._next_lag, self._stop_lag = min_lag, max_lag + 1
        if around is not None:
            centre = round(around / ENVELOPE_BLOCK / scale)
            reach = (
                FINE_REACH if fine else NARROW_MS * SAMPLE_RATE // 1000 // ENVELOPE_BLOCK // scale
            )
            self._next_lag = max(min_lag, centre - reach)
            self._stop_lag = max(self._next_lag, min(max_lag + 1, centre + reach + 1))
        self._best_lag, self._best = None, 0.0
        return True

    def step(self, lags: int) -> bool:
        """Try the next ``lags`` lags of the estimate :meth:`begin` started; True when it is
        done (:attr:`result` then holds it)."""
        cap, ref_all, cap_energy = self._cap, self._ref_all, self._cap_energy
        sums, squares = self._ref_sums, self._ref_squares
        n = len(cap)
        stop = min(self._stop_lag, self._next_lag + lags)
        for lag in range(self._next_lag, stop):
            start = self._pass_max_lag - lag
            total = sums[start + n] - sums[start]
            energy = squares[start + n] - squares[start] - total * total / n
            if energy <= 1e-6 * n or cap_energy <= 0.0:
                continue
            # sum((r - mean) * c) == sum(r * c) since sum(c) == 0
            score = sum(map(mul, ref_all[start : start + n], cap)) / math.sqrt(energy * cap_energy)
            if score > self._best:
                self._best_lag, self._best = lag, score
        self._next_lag = stop
        if stop < self._stop_lag:
            return False
        best = self._best_lag
        coarse = self._scale != 1
        if (
            coarse
            and best is not None
            and self.begin(best * self._scale * ENVELOPE_BLOCK, fine=True)
        ):
            return False  # the coarse pass is done: now around its best lag
        self.last_correlation = self._best
        ok = best is not None and self._best >= self._min_correlation
        self.result = best * ENVELOPE_BLOCK if ok and best is not None else None
        self._cap, self._ref_all, self._ref_sums, self._ref_squares = [], [], [], []
        return True

"""Clock drift between playback and capture, tracked from the echo canceller's own filter.

Two devices (or PulseAudio's adaptive resampling between a sink and a source) run on clocks
tens of ppm apart: the echo of played sample ``n`` reaches the microphone at captured sample
``n / (1 + e) + d``, so the echo slides along the filter by ``e`` samples per sample (50 ppm:
2.4 samples a second at 48 kHz). SpeexDSP's filter does not follow such a slide once it has
converged: it removed 14 dB instead of 28 under 50 ppm (docs/performance.md).

:class:`DriftTracker` reads the filter's impulse response every :data:`DRIFT_EVERY_FRAMES`
frames and measures how far it moved since the previous reading: the sub-sample lag that best
matches the taps around the strongest one (cross-correlation over ±:data:`MAX_SHIFT` samples,
refined by a parabola through the best three). That movement is what the reference still
lacks; the tracker adds it, times a loop gain, to its drift estimate :attr:`DriftTracker.ppm`,
which the reference line (:class:`~messenger_tui.media.echo_reference.ReferenceLine`) applies
by resampling the played audio. As the estimate converges the slide the filter sees goes to
zero and the estimate stays. The filter follows a moving echo only partly, and each reading
is noisy (the filter adapts between readings): a loop gain of 0.3 was measured best (offline
harness, 50 ppm: estimate 49.2 ppm, ERLE 30.0 dB after 2 s; one clock: 0.2 ppm, 28.8 dB;
gain 1.0 oscillated between 0 and 105 ppm, 25.8 and 17.8 dB).
"""

from __future__ import annotations

import ctypes
from operator import mul
from typing import Final

from messenger_tui.media.ports import FRAME_SAMPLES
from messenger_tui.media.speex_dsp import EchoCanceller

#: Frames (20 ms) between two readings of the filter.
DRIFT_EVERY_FRAMES: Final = 12
#: Taps each side of the strongest one compared between readings (8 ms at 16 kHz).
DRIFT_WINDOW: Final = 128
#: The strongest tap is looked for among every this-many-th (the window covers the rest).
PEAK_STRIDE: Final = 4
#: Largest slide between two readings (samples): 3 is 260 ppm at 12 frames.
MAX_SHIFT: Final = 3
#: The readings' match must be at least this good (normalised correlation) to count.
MIN_MATCH: Final = 0.8
#: The measured slide (in ppm) times this is added to the estimate.
LOOP_GAIN: Final = 0.3
#: The estimate never goes beyond this (ppm): consumer devices are within ±100.
MAX_PPM: Final = 300.0


class DriftTracker:
    """The drift estimate (:attr:`ppm`; positive: the echo comes later and later)."""

    def __init__(self, canceller: EchoCanceller, frame_samples: int = FRAME_SAMPLES) -> None:
        """``frame_samples``: samples per 20 ms frame at the canceller's rate."""
        self._canceller = canceller
        self._frame_samples = frame_samples
        self._taps = (ctypes.c_int32 * canceller.filter_length)()
        self._view = memoryview(self._taps).cast("B").cast("i")
        #: The previous reading's taps around its centre (from centre - window - shift).
        self._previous: list[int] | None = None
        self._centre = 0
        self.ppm = 0.0
        #: The last slide measured (samples between two readings), for the log.
        self.last_shift = 0.0

    def forget(self) -> None:
        """The alignment jumped (a new delay or offset): the next reading starts afresh."""
        self._previous = None

    def update(self, frames: int) -> bool:
        """Read the filter after ``frames`` frames of far-end speech since the last reading;
        True when the estimate changed. Only what is compared becomes Python numbers: every
        :data:`PEAK_STRIDE`-th tap to find the strongest, and the taps around the previous
        reading's centre (a whole filter as a list was most of the tracker's cost)."""
        self._canceller.impulse_response(self._taps)
        view = self._view
        previous, centre = self._previous, self._centre
        coarse = view[::PEAK_STRIDE].tolist()
        high, low = max(coarse), min(coarse)
        strongest = coarse.index(high if high >= -low else low) * PEAK_STRIDE
        reach = DRIFT_WINDOW + MAX_SHIFT
        self._centre = min(max(strongest, reach), len(view) - reach - 1)
        if previous is None or frames <= 0:
            self._previous = view[self._centre - reach : self._centre + reach + 1].tolist()
            return False
        # the taps now around the previous centre, and around the new one for next time
        taps = view[centre - reach : centre + reach + 1].tolist()
        if self._centre == centre:
            self._previous = taps
        else:
            self._previous = view[self._centre - reach : self._centre + reach + 1].tolist()
        # (both lists start at centre - reach)
        before = previous[MAX_SHIFT : MAX_SHIFT + 2 * DRIFT_WINDOW]
        scores = []
        for lag in range(-MAX_SHIFT, MAX_SHIFT + 1):
            now = taps[MAX_SHIFT + lag : MAX_SHIFT + 2 * DRIFT_WINDOW + lag]
            scores.append(float(sum(map(mul, before, now))))
        energy_before = float(sum(map(mul, before, before)))
        now = taps[MAX_SHIFT : MAX_SHIFT + 2 * DRIFT_WINDOW]
        energy_now = float(sum(map(mul, now, now)))
        best = max(range(len(scores)), key=scores.__getitem__)
        if energy_before <= 0.0 or energy_now <= 0.0 or not 0 < best < len(scores) - 1:
            return False
        if scores[best] / (energy_before * energy_now) ** 0.5 < MIN_MATCH:
            return False
        a, b, c = scores[best - 1], scores[best], scores[best + 1]
        curve = a - 2 * b + c
        shift = best - MAX_SHIFT + (0.5 * (a - c) / curve if curve < 0 else 0.0)
        self.last_shift = shift
        samples = frames * self._frame_samples
        ppm = self.ppm + LOOP_GAIN * shift / samples * 1e6
        self.ppm = max(-MAX_PPM, min(MAX_PPM, ppm))
        return True

"""Audio levels for meters: RMS of one PCM frame, dBFS, and a peak-hold meter.

Pure and stdlib-only (no numpy, no ``audioop``, which is deprecated): safe to call from a
PortAudio callback thread for one 20 ms frame (960 samples).

* :func:`frame_level` - RMS of a 16-bit little-endian mono frame, scaled so a full-scale
  square wave is 1.0 and silence is 0.0 (a full-scale sine is about 0.707).
* :func:`level_to_dbfs` - that level in dB relative to full scale (``-inf`` clamps to
  :data:`MIN_DBFS`).
* :class:`LevelMeter` - what a UI bar shows: a smoothed level with fast attack and a slower
  release, plus a peak marker that holds for a while and then falls.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from typing import Final

#: Largest magnitude of a 16-bit sample (as the scale for 1.0).
FULL_SCALE: Final = 32768.0
#: The floor :func:`level_to_dbfs` reports for silence (16-bit PCM's noise floor is ~-96 dBFS).
MIN_DBFS: Final = -96.0

_BIG_ENDIAN: Final = sys.byteorder == "big"


def frame_level(pcm: bytes, stride: int = 1) -> float:
    """RMS of 16-bit signed little-endian mono PCM, scaled to 0..1 (1.0 = full-scale square).

    ``stride`` > 1 estimates it from every ``stride``-th sample (a meter's reading at a
    fraction of the cost; a tone at a multiple of 48 kHz / ``stride`` would alias). A
    trailing odd byte is ignored; empty input is 0.0."""
    if stride < 1:
        raise ValueError("stride must be at least 1")
    n = len(pcm) // 2
    if n == 0:
        return 0.0
    samples = array("h")
    samples.frombytes(pcm[: n * 2])
    if _BIG_ENDIAN:  # pragma: no cover - PCM is little-endian on the wire
        samples.byteswap()
    if stride > 1:
        samples = samples[::stride]
        n = len(samples)
    # Exact integer sum of squares (math.sumprod is 3.12+); ~30 us for a 960-sample frame.
    total = sum(map(operator.mul, samples, samples))
    level = math.sqrt(total / n) / FULL_SCALE
    return min(level, 1.0)


def level_to_dbfs(level: float) -> float:
    """A :func:`frame_level` value in dBFS (0.0 at full scale), never below :data:`MIN_DBFS`."""
    if level <= 0.0:
        return MIN_DBFS
    return max(MIN_DBFS, 20.0 * math.log10(level))


def dbfs_to_fraction(dbfs: float, floor: float = -60.0) -> float:
    """Map dBFS to 0..1 for drawing a bar: ``floor`` dB and below is 0, 0 dBFS is 1."""
    if dbfs <= floor:
        return 0.0
    if dbfs >= 0.0:
        return 1.0
    return (dbfs - floor) / -floor


class LevelMeter:
    """A UI level meter: smoothed level (fast attack, slow release) and a held peak.

    Feed it one level per frame with :meth:`update` (``now`` in seconds, from any monotonic
    clock; tests pass a fake one). Read :attr:`level` and :attr:`peak` (both 0..1, linear) or
    the dBFS / bar-fraction views. Pure: no threads, no clock of its own.

    * attack: a louder frame raises :attr:`level` at once;
    * release: a quieter one lowers it by at most ``release_db_per_s`` dB per second;
    * peak: the highest level holds for ``hold_s`` seconds, then falls at
      ``peak_fall_db_per_s``.
    """

    def __init__(
        self,
        *,
        release_db_per_s: float = 24.0,
        hold_s: float = 1.0,
        peak_fall_db_per_s: float = 12.0,
    ) -> None:
        self.release_db_per_s = release_db_per_s
        self.hold_s = hold_s
        self.peak_fall_db_per_s = peak_fall_db_per_s
        self._level_db = MIN_DBFS
        self._peak_db = MIN_DBFS
        self._peak_at: float | None = None
        self._last: float | None = None

    def update(self, level: float, now: float) -> None:
        """Take one measured level (0..1, e.g. from :func:`frame_level`) at time ``now``."""
        db = level_to_dbfs(level)
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self._level_db = self._decayed(self._level_db, dt, self.release_db_per_s, db)
        if db >= self._peak_db or self._peak_at is None:
            self._peak_db = db
            self._peak_at = now
        elif now - self._peak_at > self.hold_s:
            falling_for = min(dt, now - self._peak_at - self.hold_s)
            self._peak_db = self._decayed(self._peak_db, falling_for, self.peak_fall_db_per_s, db)
        self._peak_db = max(self._peak_db, self._level_db)

    @staticmethod
    def _decayed(current: float, dt: float, rate: float, floor: float) -> float:
        if floor >= current:
            return floor
        return max(floor, current - rate * dt)

    def reset(self) -> None:
        self._level_db = MIN_DBFS
        self._peak_db = MIN_DBFS
        self._peak_at = None
        self._last = None

    @property
    def level_dbfs(self) -> float:
        return self._level_db

    @property
    def peak_dbfs(self) -> float:
        return self._peak_db

    @property
    def level(self) -> float:
        """Smoothed level, linear 0..1."""
        return 0.0 if self._level_db <= MIN_DBFS else 10.0 ** (self._level_db / 20.0)

    @property
    def peak(self) -> float:
        """Held peak, linear 0..1."""
        return 0.0 if self._peak_db <= MIN_DBFS else 10.0 ** (self._peak_db / 20.0)

    def bar(self, floor_db: float = -60.0) -> tuple[float, float]:
        """(level, peak) as 0..1 fractions of a bar whose left end is ``floor_db``."""
        return dbfs_to_fraction(self._level_db, floor_db), dbfs_to_fraction(self._peak_db, floor_db)

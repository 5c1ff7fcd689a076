"""Levels for meters: frame RMS, dBFS, and the peak-hold meter."""

from __future__ import annotations

import math
from array import array

import pytest

from messenger_tui.media.levels import (
    MIN_DBFS,
    LevelMeter,
    dbfs_to_fraction,
    frame_level,
    level_to_dbfs,
)
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE


def pcm(samples: list[int]) -> bytes:
    return array("h", samples).tobytes()


def sine(freq: float, amplitude: float, n: int = FRAME_SAMPLES) -> bytes:
    return pcm(
        [
            round(amplitude * 32767 * math.sin(2 * math.pi * freq * i / SAMPLE_RATE))
            for i in range(n)
        ]
    )


def test_silence_is_zero() -> None:
    assert frame_level(bytes(FRAME_BYTES)) == 0.0
    assert frame_level(b"") == 0.0
    assert level_to_dbfs(0.0) == MIN_DBFS


def test_full_scale_square_is_one() -> None:
    square = pcm([-32768 if (i // 24) % 2 else 32767 for i in range(FRAME_SAMPLES)])
    assert frame_level(square) == pytest.approx(1.0, abs=1e-4)
    assert level_to_dbfs(frame_level(square)) == pytest.approx(0.0, abs=1e-3)
    assert frame_level(pcm([-32768] * FRAME_SAMPLES)) == 1.0  # never above 1


@pytest.mark.parametrize("amplitude", [1.0, 0.5, 0.1, 0.01])
def test_sine_rms(amplitude: float) -> None:
    # 440 Hz over 20 ms is 8.8 periods; 1 kHz is exactly 20, so its RMS is exact.
    level = frame_level(sine(1000, amplitude))
    assert level == pytest.approx(amplitude / math.sqrt(2), rel=1e-3)
    assert level_to_dbfs(level) == pytest.approx(20 * math.log10(amplitude) - 3.0103, abs=0.02)


def test_odd_trailing_byte_is_ignored_and_dc_counts() -> None:
    assert frame_level(pcm([16384] * 10) + b"\x7f") == pytest.approx(0.5)


def test_dbfs_floor_and_bar_fraction() -> None:
    assert level_to_dbfs(1e-9) == MIN_DBFS
    assert dbfs_to_fraction(0.0) == 1.0
    assert dbfs_to_fraction(-30.0) == pytest.approx(0.5)
    assert dbfs_to_fraction(-80.0) == 0.0


def test_meter_attacks_at_once_releases_slowly_and_holds_its_peak() -> None:
    meter = LevelMeter(release_db_per_s=20.0, hold_s=1.0, peak_fall_db_per_s=10.0)
    assert meter.level == 0.0 and meter.peak == 0.0
    meter.update(0.5, now=0.0)  # -6 dBFS
    assert meter.level == pytest.approx(0.5)
    assert meter.peak == pytest.approx(0.5)
    meter.update(0.0, now=0.5)  # silence: the bar falls 10 dB in 0.5 s
    assert meter.level_dbfs == pytest.approx(level_to_dbfs(0.5) - 10.0)
    assert meter.peak_dbfs == pytest.approx(level_to_dbfs(0.5))  # held
    meter.update(0.0, now=1.5)  # hold ended at 1.0: the peak fell for 0.5 s at 10 dB/s
    assert meter.peak_dbfs == pytest.approx(level_to_dbfs(0.5) - 5.0)
    assert meter.level_dbfs == pytest.approx(level_to_dbfs(0.5) - 30.0)
    meter.update(0.9, now=1.6)  # a louder frame: both jump up
    assert meter.level == pytest.approx(0.9)
    assert meter.peak == pytest.approx(0.9)
    level, peak = meter.bar()
    assert 0.0 < level <= peak <= 1.0
    meter.reset()
    assert meter.bar() == (0.0, 0.0)


def test_a_strided_level_reads_like_the_full_one() -> None:
    """The call meters read every 4th sample: the same level for speech-band signals."""
    for freq, amplitude in ((1000, 0.5), (440, 0.1), (3000, 0.8)):
        frame = sine(freq, amplitude)
        assert frame_level(frame, 4) == pytest.approx(frame_level(frame), rel=0.03)
    assert frame_level(bytes(FRAME_BYTES), 4) == 0.0
    assert frame_level(pcm([16384] * 10), 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        frame_level(bytes(FRAME_BYTES), 0)

"""The echo canceller's alignment of playback and capture by the devices' timestamps (pure:
fake timestamps, no device).

Two PortAudio streams start apart and run on their own callbacks; each played frame comes
with the time its first sample reaches the speaker (DAC time) and each captured frame with the
time its first sample left the microphone (ADC time). The processor maps a captured count onto
the played count of the same moment: ``offset_samples``. These tests drive
:class:`~messenger_tui.media.voice_processing.VoiceProcessor` with invented timelines and
check that offset against the one the timeline implies.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest

from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.speex_dsp import EchoCanceller
from messenger_tui.media.voice_processing import (
    OFFSET_FRAMES,
    OFFSET_SLACK_MS,
    VoiceProcessor,
    VoiceSettings,
)

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
#: How close the offset must come (2 ms: the reference is handed over 30 ms early anyway).
TOLERANCE = 2 * SAMPLE_RATE // 1000
#: What one captured frame carries: a quiet, constant signal (no echo to find, no gate).
QUIET = (b"\x10\x00") * (FRAME_BYTES // 2)


@pytest.fixture
def processor() -> Iterator[VoiceProcessor]:
    vp = VoiceProcessor(VoiceSettings(noise_suppression=False, gain_control=False))
    yield vp
    vp.close()


def _run(
    vp: VoiceProcessor,
    *,
    seconds: float,
    play_start: float,
    capture_start: float,
    dac_ahead: float = 0.06,
    adc_behind: float = 0.02,
    jitter_s: float = 0.0,
    dropped_capture: range = range(0),
    seed: int = 1,
) -> None:
    """Both streams' callbacks in time order. Playback callback k runs at ``play_start + k
    * FRAME_S`` and its frame plays ``dac_ahead`` later; capture callback j runs at
    ``capture_start + j * FRAME_S`` with a frame captured ``adc_behind`` earlier. Each
    timestamp is off by up to ``jitter_s`` (scheduling); the capture frames numbered in
    ``dropped_capture`` are lost (an input overflow: their time passes, no frame comes)."""
    rng = random.Random(seed)
    events: list[tuple[float, str, int]] = []
    k = 0
    while play_start + k * FRAME_S < seconds:
        events.append((play_start + k * FRAME_S, "play", k))
        k += 1
    j = 0
    while capture_start + j * FRAME_S < seconds:
        if j not in dropped_capture:
            events.append((capture_start + j * FRAME_S, "capture", j))
        j += 1
    events.sort()
    for at, kind, _ in events:
        noise = rng.uniform(-jitter_s, jitter_s)
        if kind == "play":
            vp.played(QUIET, at + dac_ahead + noise)
        else:
            vp.process(QUIET, at - adc_behind + noise)


def _expected(play_start: float, capture_start: float, dac_ahead: float, adc_behind: float) -> int:
    """The played count at the moment captured sample 0 was taken, minus 0."""
    first_played_at = play_start + dac_ahead
    first_captured_at = capture_start - adc_behind
    return round((first_captured_at - first_played_at) * SAMPLE_RATE)


@pytest.mark.parametrize("apart_s", [0.0, 0.35, 2.0])
def test_streams_started_apart_are_aligned_by_their_timestamps(
    processor: VoiceProcessor, apart_s: float
) -> None:
    """The capture stream opens ``apart_s`` after the playback one (2 s is what PulseAudio
    took here): the offset is that time less the two latencies, within 2 ms."""
    _run(processor, seconds=apart_s + 3.0, play_start=0.0, capture_start=apart_s,
         jitter_s=0.004)  # fmt: skip
    expected = _expected(0.0, apart_s, 0.06, 0.02)
    if abs(expected) <= OFFSET_SLACK_MS * SAMPLE_RATE // 1000:
        # within the slack, the count alignment (0) stands: the delay estimate covers it
        assert processor.offset_samples == 0
    else:
        assert abs(processor.offset_samples - expected) <= TOLERANCE, (
            processor.offset_samples,
            expected,
        )


def test_scheduling_jitter_does_not_move_the_alignment(
    processor: VoiceProcessor, caplog: pytest.LogCaptureFixture
) -> None:
    """Callbacks jittering by +-8 ms over 10 s: the median over each window keeps the offset
    where it was first set (each move would cost the filter its convergence)."""
    caplog.set_level(logging.INFO, logger="messenger_tui.media.voice_processing")
    _run(processor, seconds=11.0, play_start=0.0, capture_start=1.0, jitter_s=0.008)
    moves = [r for r in caplog.records if "behind playback" in r.getMessage()]
    assert len(moves) == 1, [r.getMessage() for r in moves]
    assert abs(processor.offset_samples - _expected(0.0, 1.0, 0.06, 0.02)) <= TOLERANCE


def test_an_input_overflow_that_loses_frames_shifts_the_reference(
    processor: VoiceProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five captured frames lost (100 ms): equal counts are no longer the same moment. The
    offset grows by those 4,800 samples within one median window, and the canceller is not
    reset for it (only the reference moves)."""
    resets: list[object] = []
    monkeypatch.setattr(EchoCanceller, "reset", lambda self: resets.append(self))
    _run(processor, seconds=6.0, play_start=0.0, capture_start=1.0,
         dropped_capture=range(150, 155))  # fmt: skip
    expected = _expected(0.0, 1.0, 0.06, 0.02) + 5 * FRAME_SAMPLES
    assert abs(processor.offset_samples - expected) <= TOLERANCE
    assert resets == []


def test_without_timestamps_the_counts_are_aligned_as_they_are(
    processor: VoiceProcessor,
) -> None:
    for _ in range(3 * OFFSET_FRAMES):
        processor.played(QUIET)
        processor.process(QUIET)
    assert processor.offset_samples == 0

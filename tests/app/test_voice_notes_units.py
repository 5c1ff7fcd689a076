"""Voice message recording and playback without devices: the sink's and source's threads are
driven by the test (it plays the device clock), the encoder and decoder are the real ones."""

from __future__ import annotations

import array
import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from messenger_tui.app.errors import BadInput
from messenger_tui.app.voice_playback import VoicePlayer, decode_file, resample_frame
from messenger_tui.app.voice_recording import MAX_RECORDING_MS, VoiceRecording
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES
from messenger_tui.media.voice_note import read_voice_note


class DrivenSource:
    """A microphone whose frames the test pushes."""

    def __init__(self) -> None:
        self.on_frame: Callable[[bytes], None] | None = None
        self.stopped = False

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self.on_frame = on_frame

    def stop(self) -> None:
        self.stopped = True


class DrivenSink:
    """A speaker whose clock the test ticks (one pull per 20 ms frame)."""

    def __init__(self) -> None:
        self.pull: Callable[[], bytes] | None = None
        self.stopped = False

    def start(self, pull: Callable[[], bytes]) -> None:
        self.pull = pull

    def stop(self) -> None:
        self.stopped = True


def ramp(n: int) -> array.array[int]:
    return array.array("h", [i % 30000 for i in range(n)])


def test_resampling_reads_speed_samples_per_sample_and_pads_with_silence() -> None:
    samples = ramp(FRAME_SAMPLES * 3)
    one = array.array("h", resample_frame(samples, 0.0, 1.0))
    assert list(one) == list(samples[:FRAME_SAMPLES])
    two = array.array("h", resample_frame(samples, 0.0, 2.0))
    assert list(two) == list(samples[0 : FRAME_SAMPLES * 2 : 2])
    half_step = array.array("h", resample_frame(samples, 0.5, 1.5))
    assert half_step[0] == 0 and half_step[1] == 2  # 0.5 → 0, 2.0 → 2
    tail = array.array("h", resample_frame(samples, FRAME_SAMPLES * 2.5, 1.0))
    assert len(tail) * 2 == FRAME_BYTES and not any(tail[FRAME_SAMPLES // 2 :])


async def test_player_pauses_seeks_changes_speed_and_ends() -> None:
    sink = DrivenSink()
    player = VoicePlayer(sink, ramp(48_000 * 10), message_row=7)  # 10 s
    assert player.duration_ms == 10_000
    await player.play()
    assert sink.pull is not None
    for _ in range(50):  # one second
        sink.pull()
    assert player.position_ms == 1_000
    player.pause()
    assert sink.pull() == bytes(FRAME_BYTES) and player.position_ms == 1_000
    player.seek(5_000)
    assert player.position_ms == 6_000
    player.seek(-60_000)
    assert player.position_ms == 0
    assert player.next_speed() == 1.5 and player.next_speed() == 2.0
    await player.play()
    for _ in range(50):  # one second of the device's clock = two of the message
        sink.pull()
    assert player.position_ms == 2_000
    for _ in range(200):
        sink.pull()
    assert player.ended and not player.playing and player.position_ms == 0
    assert player.next_speed() == 1.0
    await player.close()
    assert sink.stopped


async def test_recording_stops_at_the_limit_and_cancel_removes_everything() -> None:
    source = DrivenSource()
    recording = await VoiceRecording.start(source)
    assert source.on_frame is not None
    loud = array.array("h", [8000, -8000] * (FRAME_SAMPLES // 2)).tobytes()
    frames = MAX_RECORDING_MS // 20
    for i in range(frames + 50):
        source.on_frame(loud)
        if i % 200 == 0:  # the device's pace, roughly: let the encoder keep up
            while not recording._queue.empty():
                await asyncio.sleep(0.001)
    assert recording.at_limit and recording.elapsed_ms == MAX_RECORDING_MS
    assert recording.dropped == 0
    assert recording.level == 0.0  # over the limit the meter falls silent
    path, info = await recording.finish()
    assert source.stopped
    assert info.duration_ms == MAX_RECORDING_MS
    assert read_voice_note(path).duration_ms == MAX_RECORDING_MS
    size = path.stat().st_size
    print(f"5 min recording: {size} bytes")
    assert size < 1_200_000
    samples = await asyncio.to_thread(decode_file, path)
    assert len(samples) == MAX_RECORDING_MS * 48
    recording.folder.joinpath("voice.ogg").unlink()

    source = DrivenSource()
    recording = await VoiceRecording.start(source)
    assert source.on_frame is not None
    source.on_frame(loud)
    assert recording.level > 0.1
    deadline = time.monotonic() + 5
    while not recording.path.stat().st_size and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await recording.cancel()
    assert source.stopped and not recording.folder.exists()


async def test_an_empty_recording_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = DrivenSource()
    recording = await VoiceRecording.start(source)
    with pytest.raises(BadInput, match="nothing was recorded"):
        await recording.finish()
    assert not recording.folder.exists()
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS not really")
    with pytest.raises(BadInput, match=r"cannot play broken\.ogg"):
        decode_file(broken)

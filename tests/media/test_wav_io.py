"""WAV source and sink: format checks, frames, end of file, manual and realtime pacing."""

from __future__ import annotations

import subprocess
import threading
import time
import wave
from pathlib import Path

import pytest

from messenger_tui.media.ports import FRAME_BYTES, AudioUnavailable
from messenger_tui.media.wav_io import WavFormatError, WavSink, WavSource, read_wav_frames


def write_wav(path: Path, pcm: bytes, *, rate: int = 48000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def numbered_frames(n: int) -> list[bytes]:
    return [bytes([i + 1, 0]) * (FRAME_BYTES // 2) for i in range(n)]


def test_frames_are_read_and_the_last_is_padded(tmp_path: Path) -> None:
    frames = numbered_frames(3)
    path = write_wav(tmp_path / "a.wav", b"".join(frames) + b"\x07\x00" * 10)
    got = read_wav_frames(path)
    assert got[:3] == frames and len(got) == 4
    assert got[3] == b"\x07\x00" * 10 + bytes(FRAME_BYTES - 20)


def test_other_formats_are_refused_with_the_conversion(tmp_path: Path) -> None:
    espeak = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(espeak), "hello"], check=True)  # 22.05 kHz
    for path in (
        espeak,
        write_wav(tmp_path / "stereo.wav", bytes(400), channels=2),
        tmp_path / "not.wav",
    ):
        if path.name == "not.wav":
            path.write_bytes(b"RIFF nonsense")
        with pytest.raises(WavFormatError) as info:
            WavSource(path)
        assert isinstance(info.value, AudioUnavailable)
        assert info.value.fix is not None and "sox" in info.value.fix
    with pytest.raises(WavFormatError, match="22050 Hz"):
        read_wav_frames(espeak)


def test_manual_source_plays_the_file_then_silence_or_stops(tmp_path: Path) -> None:
    frames = numbered_frames(3)
    path = write_wav(tmp_path / "a.wav", b"".join(frames))
    ends: list[int] = []
    got: list[bytes] = []
    source = WavSource(path, pace="manual", on_end=lambda: ends.append(len(got)))
    source.start(got.append)
    assert source.tick(5) == 5
    assert got == [*frames, bytes(FRAME_BYTES), bytes(FRAME_BYTES)]
    assert source.finished and ends == [3]
    source.stop()
    assert source.tick() == 0  # nothing after stop

    got.clear()
    stopping = WavSource(path, pace="manual", at_end="stop")
    stopping.start(got.append)
    assert stopping.tick(5) == 3 and got == frames

    got.clear()
    looping = WavSource(path, pace="manual", loop_audio=True)
    looping.start(got.append)
    looping.tick(7)
    assert got == [*frames, *frames, frames[0]]
    assert looping.duration_s == pytest.approx(0.06)


def test_manual_sink_records_every_pulled_frame(tmp_path: Path) -> None:
    frames = numbered_frames(4)
    pulls = iter([*frames[:2], b"short", frames[3]])
    sink = WavSink(tmp_path / "out.wav", pace="manual")
    sink.start(lambda: next(pulls))
    assert sink.tick(4) == 4
    sink.stop()
    sink.stop()
    assert sink.tick() == 0
    got = read_wav_frames(tmp_path / "out.wav")
    assert got == [frames[0], frames[1], (b"short" + bytes(FRAME_BYTES))[:FRAME_BYTES], frames[3]]


def test_thread_paced_source_keeps_absolute_deadlines(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", b"".join(numbered_frames(10)))
    times: list[float] = []
    source = WavSource(path, pace="thread")  # silence after the file
    start = time.monotonic()
    source.start(lambda frame: times.append(time.monotonic()))
    time.sleep(0.61)
    source.stop()
    count = len(times)
    time.sleep(0.05)
    assert len(times) == count  # no frame after stop() returned
    assert 29 <= count <= 32
    # frame n is due at start + n * 20 ms: the error does not grow along the run
    late = [t - (start + 0.02 * n) for n, t in enumerate(times)]
    assert max(late) < 0.015
    assert abs(late[-1] - late[0]) < 0.015


def test_thread_paced_sink_pulls_on_its_own_thread_and_closes_the_file(tmp_path: Path) -> None:
    threads: set[int] = set()

    def pull() -> bytes:
        threads.add(threading.get_ident())
        return b"\x01\x00" * (FRAME_BYTES // 2)

    sink = WavSink(tmp_path / "out.wav", pace="thread")
    sink.start(pull)
    time.sleep(0.3)
    sink.stop()
    assert threading.get_ident() not in threads and len(threads) == 1
    with wave.open(str(tmp_path / "out.wav"), "rb") as wav:
        assert wav.getframerate() == 48000 and wav.getnchannels() == 1
        assert 13 <= wav.getnframes() // 960 <= 16


def test_unwritable_sink_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioUnavailable):
        WavSink(tmp_path / "missing" / "out.wav").start(lambda: bytes(FRAME_BYTES))

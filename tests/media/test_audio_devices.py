"""Real audio devices: DeviceSource, DeviceSink and LevelMonitor through PortAudio on a
private PulseAudio server (tests/helpers/pulseaudio.py), and the failures that must become
AudioUnavailable rather than crashes.

PulseAudio passes 48 kHz mono s16 through unchanged at 100 % volume, so what goes into a
pipe source comes out of a DeviceSource sample for sample (and likewise DeviceSink → pipe
sink); the tests still compare by correlation, which tolerates a resampler.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from messenger_tui.media.audio_check import LevelMonitor
from messenger_tui.media.audio_io import (
    DeviceSink,
    DeviceSource,
    _explain,
    list_devices,
    resolve_device,
)
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, AudioUnavailable
from tests.helpers.pulseaudio import PulseServer, no_audio_env, read_wav_pcm, tone_pcm
from tests.helpers.speech import find_offset, speech_wav

# real-time playback and capture: never beside another timing test (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("realtime")

_names = itertools.count()


@pytest.fixture
def mic_and_speaker(pulse_server: PulseServer) -> Iterator[tuple[Any, Any]]:
    """A fresh pipe source and pipe sink, and this process's PortAudio pointed at them."""
    n = next(_names)
    mic = pulse_server.add_pipe_source(f"mic{n}")
    speaker = pulse_server.add_pipe_sink(f"speaker{n}")
    with pulse_server.use(source=mic.name, sink=speaker.name):
        yield mic, speaker


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    wav = speech_wav(tmp_path_factory.mktemp("speech"), "Hello, this is a microphone test.")
    return read_wav_pcm(wav)


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * SAMPLE_RATE / len(x)


def matched_correlation(reference: np.ndarray, recording: np.ndarray) -> tuple[int, float]:
    """Where ``reference`` sits in ``recording`` and the normalised correlation there."""
    offset = find_offset(reference, recording)
    assert 0 <= offset <= len(recording) - len(reference), f"offset {offset}"
    part = recording[offset : offset + len(reference)]
    corr = float(np.dot(part, reference) / (np.linalg.norm(part) * np.linalg.norm(reference)))
    return offset, corr


def collect() -> tuple[list[bytes], Callable[[bytes], None]]:
    frames: list[bytes] = []
    return frames, frames.append


# --------------------------------------------------------------------------- device names


def test_devices_listed_and_chosen_by_name(mic_and_speaker: tuple[Any, Any]) -> None:
    inputs, outputs = list_devices()
    assert "pulse" in inputs and "pulse" in outputs
    assert resolve_device("pulse", "input")[1] == "pulse"  # exact
    assert resolve_device("PULS", "output")[1] == "pulse"  # case-insensitive substring
    assert resolve_device(None, "input")[1] in inputs  # the system default

    source = DeviceSource("Built-in Microphone")
    with pytest.raises(AudioUnavailable) as caught:
        source.start(lambda frame: None)
    assert "no microphone called 'Built-in Microphone'" in caught.value.reason
    assert "'pulse'" in caught.value.reason  # lists what there is
    assert caught.value.fix
    assert not source.running
    with pytest.raises(AudioUnavailable, match="no speaker called 'HDMI 7'"):
        DeviceSink("HDMI 7").start(lambda: bytes(FRAME_BYTES))


# --------------------------------------------------------------------------- capture


def test_source_captures_a_tone_in_20ms_frames(mic_and_speaker: tuple[Any, Any]) -> None:
    mic, _ = mic_and_speaker
    source = DeviceSource("pulse")
    frames, on_frame = collect()
    source.start(on_frame)
    try:
        assert source.device_name == "pulse"
        time.sleep(0.2)
        mic.feed_tone(440, 0.8, amplitude=0.3)
        mic.wait_fed()
        time.sleep(0.3)
    finally:
        source.stop()
    count = len(frames)
    time.sleep(0.1)
    assert len(frames) == count, "on_frame was called after stop() returned"
    assert {len(f) for f in frames} == {FRAME_BYTES}
    assert 55 <= count <= 75  # ~1.3 s of 20 ms frames
    x = samples(b"".join(frames))
    loud = x[np.abs(x) > 0]
    assert len(loud) >= 0.75 * SAMPLE_RATE
    assert abs(dominant_hz(loud[:32768]) - 440) < 3
    levels = [frame_level(f) for f in frames]
    assert max(levels) == pytest.approx(0.3 / np.sqrt(2), rel=0.03)
    assert min(levels) < 0.001  # silence before the tone
    stats = source.stats()
    assert stats.frames == count and stats.callback_errors == 0
    assert 0 < stats.latency_s < 0.2


@pytest.mark.slow
def test_source_captures_speech_and_level_monitor_follows_it(
    mic_and_speaker: tuple[Any, Any], speech: bytes
) -> None:
    mic, _ = mic_and_speaker
    levels: list[float] = []
    monitor = LevelMonitor("pulse", levels.append)
    source = DeviceSource(None)  # the default device, which PULSE_SOURCE points at the mic
    frames, on_frame = collect()
    monitor.start()
    source.start(on_frame)
    try:
        time.sleep(0.3)
        quiet = list(levels)
        mic.feed_pcm(speech)
        mic.wait_fed()
        time.sleep(0.3)
    finally:
        source.stop()
        monitor.stop()
    assert quiet and max(quiet) < 0.001
    assert max(levels) > 0.05  # speech is loud enough to see on the meter
    assert monitor.level < 0.001  # and the trailing silence brings it back down
    _, corr = matched_correlation(samples(speech), samples(b"".join(frames)))
    assert corr > 0.99, f"captured speech correlates {corr:.3f} with what was fed"


def test_source_survives_a_failing_callback(mic_and_speaker: tuple[Any, Any]) -> None:
    def on_frame(frame: bytes) -> None:
        raise ValueError("boom")

    source = DeviceSource("pulse")
    source.start(on_frame)
    time.sleep(0.15)
    assert source.stream_active
    source.stop()
    stats = source.stats()
    assert stats.callback_errors >= 3 and stats.last_error == "ValueError: boom"
    source.stop()  # idempotent


# --------------------------------------------------------------------------- playback


@pytest.mark.slow
def test_sink_plays_speech_that_the_pipe_sink_records(
    mic_and_speaker: tuple[Any, Any], speech: bytes
) -> None:
    _, speaker = mic_and_speaker
    tone = tone_pcm(1000, 0.4, amplitude=0.25)
    audio = tone + bytes(FRAME_BYTES * 5) + speech
    audio += bytes(-len(audio) % FRAME_BYTES)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    played = threading.Event()

    def pull() -> bytes:
        if frames:
            return frames.pop(0)
        played.set()
        return bytes(FRAME_BYTES)

    start = speaker.mark()
    sink = DeviceSink("pulse")
    sink.start(pull)
    try:
        assert played.wait(len(audio) / (2 * SAMPLE_RATE) + 3)
        time.sleep(0.3)  # the device's buffer drains
    finally:
        sink.stop()
    recording = samples(speaker.recorded(start))
    offset, corr = matched_correlation(samples(tone), recording)
    assert corr > 0.99
    assert abs(dominant_hz(recording[offset : offset + 16384]) - 1000) < 3
    _, corr = matched_correlation(samples(speech), recording)
    assert corr > 0.99, f"recorded speech correlates {corr:.3f} with what was played"
    stats = sink.stats()
    assert stats.callback_errors == 0 and stats.bad_pulls == 0
    assert stats.frames >= len(audio) // FRAME_BYTES


# --------------------------------------------------------------------------- block sizes


class _Status:
    def __init__(self, **flags: bool) -> None:
        self.__dict__.update(flags)

    def __bool__(self) -> bool:
        return any(self.__dict__.values())


def test_source_reblocks_other_host_block_sizes_and_counts_overflows() -> None:
    source = DeviceSource()
    got: list[bytes] = []
    source._on_frame = got.append
    source._running = True
    pcm = bytes(range(256)) * 30  # 7680 bytes = 4 frames
    for i in range(0, len(pcm), 1024):  # the host delivers 512-sample blocks
        chunk = pcm[i : i + 1024]
        status = _Status(input_overflow=(i == 0))
        source._callback(bytearray(chunk), len(chunk) // 2, None, status)
    assert b"".join(got) == pcm[: len(got) * FRAME_BYTES]
    assert len(got) == 4 and {len(f) for f in got} == {FRAME_BYTES}
    stats = source.stats()
    assert stats.xruns == 1 and stats.status_flags == {"input_overflow": 1}


def test_sink_writes_exactly_what_the_host_asks_for() -> None:
    sink = DeviceSink()
    counter = itertools.count()
    sink._pull = lambda: bytes([next(counter) % 256]) * FRAME_BYTES
    sink._running = True
    out = bytearray()
    for size in (512, 1000, 960, 3, 2000):  # samples per callback, as a host might ask
        buf = bytearray(size * 2)
        sink._callback(buf, size, None, _Status(output_underflow=(size == 3)))
        out += buf
    expected = b"".join(bytes([i]) * FRAME_BYTES for i in range(len(out) // FRAME_BYTES + 1))
    assert out == expected[: len(out)]
    sink._pull = lambda: b"\x01\x00" * 10  # a short frame is padded with silence
    buf = bytearray(FRAME_BYTES)
    sink._carry.clear()
    sink._callback(buf, FRAME_SAMPLES, None, None)
    assert buf == b"\x01\x00" * 10 + bytes(FRAME_BYTES - 20)
    stats = sink.stats()
    assert stats.bad_pulls == 1 and stats.xruns == 1


def test_removed_pipes_stop_their_threads_and_leave_the_server() -> None:
    """The harness itself: a removed pipe's thread ends and its modules are unloaded, so a
    session-wide server does not pile up real-time threads (they once slowed the UI tests
    after them tenfold)."""
    with PulseServer() as server:
        mic = server.add_pipe_source("mic")
        speaker = server.add_pipe_sink("speaker")
        threads = [mic._thread, speaker._thread]
        assert all(t.is_alive() for t in threads)
        for pipe in (mic, speaker):
            server.remove(pipe)
            server.remove(pipe)  # idempotent
        assert not any(t.is_alive() for t in threads)
        assert not server.sources and not server.sinks
        modules = server.pactl("list", "short", "modules")
        assert "module-pipe-source" not in modules and "module-pipe-sink" not in modules
        assert "module-loopback" not in modules
        again = server.add_pipe_source("mic")  # the name is free again
        assert again._thread.is_alive()


def test_a_server_that_dies_mid_stream_is_reported_not_hung() -> None:
    with PulseServer() as server:
        server.add_pipe_source("mic")
        server.add_pipe_sink("speaker")
        with server.use(source="mic", sink="speaker"):
            source, sink = DeviceSource(), DeviceSink()
            source.start(lambda frame: None)
            sink.start(lambda: bytes(FRAME_BYTES))
            time.sleep(0.2)
            assert server.proc is not None
            server.proc.kill()  # like unplugging the only device
            deadline = time.monotonic() + 5
            while (source.stream_active or sink.stream_active) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert source.stats().device_lost and sink.stats().device_lost
            assert source.stats().last_error == "the microphone stopped unexpectedly"
            source.stop()
            sink.stop()


@pytest.mark.parametrize(
    ("error", "reason", "fix"),
    [
        ("Error opening RawInputStream: Invalid sample rate [PaErrorCode -9997]",
         "the microphone 'hw:1' does not support 48000 Hz mono", "pick another device"),
        ("Error opening RawInputStream: Device unavailable [PaErrorCode -9985]",
         "the microphone 'hw:1' is busy or unavailable", "close the program using it"),
        ("Error opening RawInputStream: Invalid number of channels [PaErrorCode -9998]",
         "the microphone 'hw:1' cannot record mono audio", "pick another device"),
        ("Error starting stream: Unanticipated host error [PaErrorCode -9999]",
         "the microphone 'hw:1' could not be opened", None),
    ],
)  # fmt: skip
def test_portaudio_errors_become_reasons(error: str, reason: str, fix: str | None) -> None:
    exc = _explain(RuntimeError(error), "input", "hw:1")
    assert exc.reason.startswith(reason) and error in exc.reason
    if fix is None:
        assert exc.fix is None
    else:
        assert exc.fix is not None and exc.fix.startswith(fix)


# --------------------------------------------------------------------------- no devices


_CHILD_NO_DEVICES = """
import json
from messenger_tui.media.audio_check import LevelMonitor, probe_audio
from messenger_tui.media.audio_io import DeviceSink, DeviceSource, list_devices
from messenger_tui.media.ports import AudioUnavailable

out = {}
try:
    out["list"] = list_devices()
except AudioUnavailable as exc:
    out["list"] = exc.reason
for label, start in (
    ("source", lambda: DeviceSource().start(lambda frame: None)),
    ("sink", lambda: DeviceSink().start(lambda: b"")),
    ("named", lambda: DeviceSource("pulse").start(lambda frame: None)),
    ("monitor", lambda: LevelMonitor(None, lambda level: None).start()),
):
    try:
        start()
        out[label] = "started?!"
    except AudioUnavailable as exc:
        out[label] = [exc.reason, exc.fix]
probe = probe_audio()
out["probe"] = [probe.available, probe.reason]
print(json.dumps(out))
"""


def run_child(code: str, env: dict[str, str], timeout: float = 20) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stderr
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def test_no_devices_at_all_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    out = run_child(_CHILD_NO_DEVICES, no_audio_env(tmp_path))
    assert out["list"] == [[], []]
    assert out["source"][0] == "no microphone device found; calls are unavailable (chat works)"
    assert "PulseAudio" in out["source"][1]
    assert out["sink"][0] == "no speaker device found; calls are unavailable (chat works)"
    assert out["named"][0].startswith("no microphone device found")
    assert out["monitor"][0].startswith("no microphone device found")
    assert out["probe"] == [False, out["source"][0]]


def test_missing_portaudio_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    code = "import ctypes.util\nctypes.util.find_library = lambda name: None\n"
    out = run_child(code + _CHILD_NO_DEVICES, no_audio_env(tmp_path))
    assert out["list"].startswith("PortAudio is not installed")
    for label in ("source", "sink", "named", "monitor"):
        reason, fix = out[label]
        assert reason.startswith("PortAudio is not installed"), reason
        assert "libportaudio2" in fix
    assert out["probe"][0] is False


def test_missing_sounddevice_package_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(AudioUnavailable, match="the sounddevice package is missing"):
        DeviceSink().start(lambda: b"")


# --------------------------------------------------------------------------- child process

_CHILD_LOOPBACK = """
import collections, json, sys, time
from messenger_tui.media.audio_io import DeviceSink, DeviceSource

# What a call client does with the devices: capture from the default input, play on the
# default output. Here what is captured is played straight back, after 60 ms of prefill
# (a crude jitter buffer: both devices run on the server's clock, but their callbacks are
# scheduled independently).
queue = collections.deque(maxlen=50)
silence = bytes(1920)
playing = False
def pull():
    global playing
    playing = playing or len(queue) >= 3
    return queue.popleft() if playing and queue else silence
sink = DeviceSink()
source = DeviceSource()
sink.start(pull)
source.start(queue.append)
print("ready", flush=True)
sys.stdin.readline()
source.stop()
sink.stop()
out = {"source": source.stats().__dict__, "sink": sink.stats().__dict__}
print(json.dumps(out), flush=True)
"""


@pytest.mark.slow
def test_child_process_uses_its_own_source_and_sink(
    pulse_server: PulseServer, speech: bytes
) -> None:
    """The set-up of the two-client call test: a client process whose default devices are
    its own pipe source and pipe sink, picked by environment variables alone."""
    n = next(_names)
    mic = pulse_server.add_pipe_source(f"child-mic{n}")
    speaker = pulse_server.add_pipe_sink(f"child-speaker{n}")
    other = pulse_server.add_pipe_sink(f"other-speaker{n}")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD_LOOPBACK],
        env=pulse_server.child_env(source=mic.name, sink=speaker.name),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        time.sleep(0.2)
        start, other_start = speaker.mark(), other.mark()
        mic.feed_pcm(speech)
        mic.wait_fed()
        time.sleep(0.5)
        proc.stdin.write("\n")
        proc.stdin.flush()
        stats = json.loads(proc.stdout.readline())
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stats["source"]["device"] in ("default", "pulse")
    assert stats["source"]["callback_errors"] == 0 and stats["sink"]["callback_errors"] == 0
    _, corr = matched_correlation(samples(speech), samples(speaker.recorded(start)))
    assert corr > 0.95, f"looped-back speech correlates {corr:.3f}; child stats {stats}"
    assert not np.any(samples(other.recorded(other_start))), "played to the wrong sink"

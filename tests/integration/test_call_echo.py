"""Echo cancellation in a real call through PulseAudio devices (issue 15, "What must be
shown" 1).

Alice (the far end) calls with WAV files: she plays her speech and records what she hears.
Bob answers through real PortAudio devices on a private PulseAudio server, in a "room": his
speaker is a pipe sink (recorded), and what it plays leaks into his microphone through a
``module-loopback`` from the speaker's monitor into a null sink whose monitor is Bob's
microphone (the speaker's sound reaching the microphone at full level, after PulseAudio's own
buffering: a fixed delay of ~100-200 ms the canceller must estimate). Bob says nothing, so all
Alice hears is her own voice coming back.

The call runs twice, echo cancellation on (the default) and off (``[calls]
echo_cancellation = false`` in Bob's config.toml; noise suppression and gain control stay on
in both). The figure: the energy of what Alice hears over her speech, from 2 s after it
starts (the canceller's convergence) to its end, off over on, in dB: at least 25 dB.

What it takes (docs/architecture.md, "The capture chain's modules"): a two-sided delay search
(the timestamps put the reference after its echo in some runs), following the loopback's
drift (its adaptive resampling runs 30-60 ppm off), and the gain control never raising its
gain on the echo (it gave back 16 dB). Where Bob's device streams lose frames mid-call it
still falls short (the xfail below).
"""

from __future__ import annotations

import itertools
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.call_process import CallProcess, make_pair
from tests.helpers.cli import User
from tests.helpers.pulseaudio import RATE, PulseServer, read_wav_pcm, write_wav
from tests.helpers.relay_process import RelayProcess
from tests.helpers.speech import SENTENCES, find_offset, speech_wav

# echo cancellation in a real-time call: never beside another timing test (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("realtime")]

#: The bar (issue 15): the far end hears its own voice at least this much lower.
MIN_ECHO_REDUCTION_DB = 25.0
#: The canceller's convergence time, not counted.
CONVERGED_S = 2.0
_names = itertools.count()


@pytest.fixture
def pair(tmp_path: Path, relay: RelayProcess) -> tuple[User, User]:
    return make_pair(tmp_path, relay.url)


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return _samples(wav.readframes(wav.getnframes()))


def _far_speech(tmp_path: Path) -> Path:
    """Both test sentences, one after the other (~13 s of speech)."""
    pcm = b"".join(read_wav_pcm(speech_wav(tmp_path / "speech", text)) for text in SENTENCES)
    return write_wav(tmp_path / "far.wav", pcm)


def _echo_call(
    pair: tuple[User, User], server: PulseServer, tmp_path: Path, far: Path, *, cancel: bool
) -> np.ndarray:
    """One call as in the module doc; what Alice heard."""
    alice, bob = pair
    n = next(_names)
    speaker = server.add_pipe_sink(f"bob-speaker{n}")
    room = f"bob-room{n}"
    modules = [
        server.pactl("load-module", "module-null-sink", f"sink_name={room}",
                     f"rate={RATE}", "channels=1").strip(),
        server.pactl("load-module", "module-loopback", f"source={speaker.name}.monitor",
                     f"sink={room}", "source_dont_move=true", "sink_dont_move=true",
                     "latency_msec=60").strip(),
    ]  # fmt: skip
    (bob.home / "config.toml").write_text(
        f"[calls]\necho_cancellation = {'true' if cancel else 'false'}\n"
    )
    heard = tmp_path / f"alice-heard-{'on' if cancel else 'off'}.wav"
    talk_s = len(read_wav_pcm(far)) / (RATE * 2) + 3.0
    bob_env = server.child_env(source=f"{room}.monitor", sink=speaker.name)
    try:
        with CallProcess(
            bob.home,
            "answer",
            "--verbose",
            "--duration",
            f"{talk_s + 5:.1f}",
            "--timeout",
            "30",
            env=bob_env,
        ) as answering:
            answering.wait_for("waiting for a call", timeout=30)
            with CallProcess(
                alice.home, "call", "bob", "--play", str(far), "--record", str(heard),
                "--duration", f"{talk_s:.1f}",
            ) as calling:  # fmt: skip
                calling.wait_for("in a call with bob", timeout=30)
                assert calling.wait(timeout=talk_s + 30) == 0, calling.transcript()
            answering.wait(timeout=30)
            transcript = answering.transcript()
    finally:
        for module in reversed(modules):
            server.pactl("unload-module", module)
        server.remove(speaker)
    print(f"bob ({'canceller on' if cancel else 'canceller off'}):\n{transcript}")
    return _read(heard)


def _level_db(signal: np.ndarray) -> float:
    return 10 * float(np.log10(np.mean(signal**2) + 1e-9))


@pytest.mark.xfail(
    # not strict: it reaches the bar in some runs (a strict xfail would fail CI on those)
    strict=False,
    reason="reaches the bar in runs where Bob's device streams lose no frames, not in the "
    "others; at 16 kHz (2026-12-04): 3 of 6 quiet runs, 0 of 2 beside two busy loops "
    "(docs/performance.md, 'Echo canceller at 16 kHz'). "
    "(2026-12-03, 2-core VM shared by six sessions): 42.0, 37.4, 32.6, 33.0 dB; 18.9 dB "
    "in a run that converged slowly; 10.7 and 18.4 dB in runs where the streams lost 20 ms "
    "(within the timestamps' 30 ms slack, never followed) and 100 ms (followed 1 s late). "
    "Following the timestamps' steps faster lost more runs (they also creep and jump with "
    "the echo staying put): docs/performance.md, 'Echo canceller: drift, the real call, CPU'",
)
def test_far_end_hears_its_own_voice_25_db_lower_with_the_canceller_on(
    pair: tuple[User, User], pulse_server: PulseServer, tmp_path: Path
) -> None:
    far = _far_speech(tmp_path)
    far_samples = _read(far)
    off = _echo_call(pair, pulse_server, tmp_path, far, cancel=False)
    time.sleep(0.5)
    on = _echo_call(pair, pulse_server, tmp_path, far, cancel=True)

    # Where Alice's voice comes back in her recording (the off run has it at full level; the
    # on run has the same path, set up the same way: its offset is searched the same way
    # and must agree within 0.3 s, else the off run's is used).
    start_off = find_offset(far_samples, off)
    start_on = find_offset(far_samples, on)
    if abs(start_on - start_off) > 0.3 * RATE:
        start_on = start_off
    length = len(far_samples) - int(CONVERGED_S * RATE)
    skip = int(CONVERGED_S * RATE)
    window_off = off[start_off + skip : start_off + skip + length]
    window_on = on[start_on + skip : start_on + skip + length]
    assert len(window_off) > RATE * 5, "the off run's recording does not cover the speech"
    level_far = _level_db(far_samples[skip:])
    level_off, level_on = _level_db(window_off), _level_db(window_on)
    reduction = level_off - level_on
    print(
        f"far speech {level_far:.1f} dB; Alice hears herself at {level_off:.1f} dB with the "
        f"canceller off, {level_on:.1f} dB on: {reduction:.1f} dB lower "
        f"(echo at +{(start_off / RATE) * 1000:.0f} ms / +{(start_on / RATE) * 1000:.0f} ms)"
    )
    # the echo path really carries her voice back when nothing cancels it
    assert level_off > level_far - 20, (level_off, level_far)
    assert reduction >= MIN_ECHO_REDUCTION_DB, f"only {reduction:.1f} dB lower"

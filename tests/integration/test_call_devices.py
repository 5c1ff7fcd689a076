"""Calls through real audio devices (issue 4, "Audio I/O" and test 4).

* Both clients capture and play through PortAudio, on a private PulseAudio server the test
  starts: each `messenger-tui` process (no --play / --record: the default devices) gets its
  own pipe source, fed with espeak-ng speech like a microphone, and its own pipe sink,
  recorded like a speaker. Each recording must contain the other side's speech.
* No audio device at all: `call` fails before ringing anyone, with the reason and the fix
  printed and exit code 12, and chat keeps working.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.call_process import CallProcess, make_pair
from tests.helpers.cli import User, cli_command
from tests.helpers.pulseaudio import RATE, SAMPLE_BYTES, PulseServer, no_audio_env, read_wav_pcm
from tests.helpers.relay_process import RelayProcess
from tests.helpers.speech import SENTENCES, find_offset, pesq_wb, speech_wav

pytestmark = pytest.mark.slow

ALICE_SAYS, BOB_SAYS = SENTENCES
_names = itertools.count()


@pytest.fixture
def pair(tmp_path: Path, relay: RelayProcess) -> tuple[User, User]:
    return make_pair(tmp_path, relay.url)


@pytest.mark.xdist_group("realtime")
def test_call_through_pulseaudio_devices_both_ways(
    pair: tuple[User, User], pulse_server: PulseServer, tmp_path: Path
) -> None:
    alice, bob = pair
    n = next(_names)
    a_mic, a_speaker = (
        pulse_server.add_pipe_source(f"alice-mic{n}"),
        pulse_server.add_pipe_sink(f"alice-speaker{n}"),
    )
    b_mic, b_speaker = (
        pulse_server.add_pipe_source(f"bob-mic{n}"),
        pulse_server.add_pipe_sink(f"bob-speaker{n}"),
    )
    alice_src = speech_wav(tmp_path, ALICE_SAYS)
    bob_src = speech_wav(tmp_path, BOB_SAYS)
    speech_s = max(len(read_wav_pcm(p)) for p in (alice_src, bob_src)) / (RATE * SAMPLE_BYTES)
    talk_s = speech_s + 2.5  # the speech starts ~0.5 s into the call, plus device latency

    a_env = pulse_server.child_env(source=a_mic.name, sink=a_speaker.name)
    b_env = pulse_server.child_env(source=b_mic.name, sink=b_speaker.name)
    with CallProcess(
        bob.home, "answer", "--verbose", "--duration", f"{talk_s:.1f}", "--timeout", "30", env=b_env
    ) as answering:
        answering.wait_for("waiting for a call", timeout=30)
        with CallProcess(
            alice.home, "call", "bob", "--verbose", "--duration", f"{talk_s:.1f}", env=a_env
        ) as calling:
            calling.wait_for("in a call with bob", timeout=30)
            answering.wait_for("in a call with alice", timeout=30)
            time.sleep(0.3)  # let both jitter buffers settle on the first frames
            # Both speak at once, from the same moment on each speaker's timeline.
            a_mark, b_mark = a_speaker.mark(), b_speaker.mark()
            a_mic.feed(alice_src)
            b_mic.feed(bob_src)
            assert calling.wait(timeout=talk_s + 30) == 0, calling.transcript()
            assert answering.wait(timeout=30) == 0, answering.transcript()
    # what each side's echo canceller and devices did (shown with a failure)
    print("alice:", calling.transcript(), "bob:", answering.transcript(), sep="\n")

    for who, src, speaker, mark in (
        ("bob", alice_src, b_speaker, b_mark),
        ("alice", bob_src, a_speaker, a_mark),
    ):
        heard = speaker.save_wav(tmp_path / f"{who}-heard.wav", since=mark)
        delay_s = find_offset(_samples(read_wav_pcm(src)), _samples(read_wav_pcm(heard))) / RATE
        score = pesq_wb(src, heard)
        print(f"{who} heard the other through the devices: delay {delay_s * 1000:.0f} ms, "
              f"PESQ-WB {score:.2f}")  # fmt: skip
        # Mouth to ear: capture block, Opus, relay, jitter buffer, PulseAudio's playback
        # buffer (~60 ms here). The same speech, not a stale copy or silence.
        assert 0.04 <= delay_s <= 0.5, delay_s
        assert score >= 3.0, f"{who} heard the other at PESQ-WB {score:.2f}"


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def test_no_audio_device_fails_the_call_with_a_reason_and_chat_still_works(
    pair: tuple[User, User], tmp_path: Path
) -> None:
    alice, bob = pair
    no_audio = no_audio_env(tmp_path)
    with CallProcess(
        bob.home, "answer", "--record", str(tmp_path / "bob.wav"), "--timeout", "30"
    ) as answering:
        answering.wait_for("waiting for a call", timeout=30)
        with CallProcess(alice.home, "call", "bob", "--duration", "5", env=no_audio) as calling:
            code = calling.wait(timeout=40)
        print(f"alice (no devices), exit {code}:\n{calling.transcript()}")
        assert code == 12, calling.transcript()
        # The reason, and what to do about it, are printed.
        assert re.search(r"no (microphone|speaker) device found", calling.transcript())
        assert "chat works" in calling.transcript()
        assert "PulseAudio" in calling.transcript()
        # The devices are checked before anyone is rung: bob's phone stays silent.
        time.sleep(1.5)  # more than an offer takes through the relay
        assert answering.returncode is None and not answering.has_line("is calling"), (
            answering.transcript()
        )

    # Chat is unaffected, in the same soundless environment.
    sent = subprocess.run(
        cli_command(alice.home, "send", "bob", "still here without a microphone"),
        capture_output=True, text=True, timeout=60, env=no_audio, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    got = bob.run("receive", "--json").json_lines()
    assert [m["text"] for m in got] == ["still here without a microphone"]

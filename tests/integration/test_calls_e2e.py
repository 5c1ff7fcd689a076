"""Voice calls end to end: two headless clients (`messenger-tui call` / `answer`, separate
processes) through a real relay process; speech made with espeak-ng goes both ways through
Opus, the media frame AEAD, the relay's media route and the jitter buffer, and each recording
is scored with wideband PESQ against what the other side played. Also Echo's sound test."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.relay_process import RelayProcess
from tests.helpers.speech import SENTENCES, pesq_wb, speech_wav

from .conftest import EchoRelay

pytestmark = pytest.mark.slow

ALICE_SAYS, BOB_SAYS = SENTENCES


@pytest.fixture
def pair(tmp_path: Path, relay: RelayProcess) -> tuple[User, User]:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr = alice.init(relay.url)
    b_addr = bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    return alice, bob


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return data, rate


def start_answer(user: User, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cli_command(user.home, "answer", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "waiting for a call…" once connected to the relay
    assert "waiting for a call" in line, line + proc.stderr.read()
    return proc


@pytest.mark.xdist_group("realtime")
def test_call_both_ways_through_the_relay_scores_pesq(
    pair: tuple[User, User], tmp_path: Path
) -> None:
    alice, bob = pair
    alice_src = speech_wav(tmp_path, ALICE_SAYS, voice="en")
    bob_src = speech_wav(tmp_path, BOB_SAYS, voice="en")
    alice_rec, bob_rec = tmp_path / "alice-heard.wav", tmp_path / "bob-heard.wav"
    talk = max(wav_seconds(alice_src), wav_seconds(bob_src)) + 1.5

    answering = start_answer(
        bob, "--play", str(bob_src), "--record", str(bob_rec), "--timeout", "30"
    )
    try:
        called = subprocess.run(
            cli_command(alice.home, "call", "bob", "--play", str(alice_src), "--record",
                        str(alice_rec), "--duration", f"{talk:.1f}"),
            capture_output=True, text=True, timeout=90, env=cli_env(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _, bob_err = answering.communicate(timeout=30)
    finally:
        answering.kill()
    assert called.returncode == 0, called.stderr
    assert answering.returncode == 0, bob_err
    assert "in a call with bob" in called.stderr
    assert "in a call with alice" in bob_err

    bob_heard = pesq_wb(alice_src, bob_rec)
    alice_heard = pesq_wb(bob_src, alice_rec)
    print(f"PESQ-WB: bob heard alice {bob_heard:.2f}, alice heard bob {alice_heard:.2f}")
    assert bob_heard >= 3.3
    assert alice_heard >= 3.3

    # The call log shows the call on both sides.
    a_hist = alice.run("history", "bob", "--json").json_lines()
    b_hist = bob.run("history", "alice", "--json").json_lines()
    assert [m["text"] for m in a_hist if m["kind"] == "call"][-1].startswith("Outgoing call, 0:")
    assert [m["text"] for m in b_hist if m["kind"] == "call"][-1].startswith("Incoming call, 0:")


def test_unknown_contact_is_bad_input(pair: tuple[User, User]) -> None:
    alice, _bob = pair
    proc = subprocess.run(
        cli_command(alice.home, "call", "nobody"),
        capture_output=True, text=True, timeout=30, env=cli_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 4 and "nobody" in proc.stderr


@pytest.mark.xdist_group("realtime")
def test_echo_plays_your_voice_back_after_a_delay(
    relay_with_echo: tuple[EchoRelay, str], tmp_path: Path
) -> None:
    echo_relay, echo_address = relay_with_echo
    me = User(tmp_path, "me")
    me.init(echo_relay.url)
    me.run("contacts", "add", echo_address, "--name", "Echo")
    src = speech_wav(tmp_path, ALICE_SAYS, voice="en")
    heard = tmp_path / "echo-heard.wav"
    talk = wav_seconds(src) + 2.5
    proc = subprocess.run(
        cli_command(me.home, "call", "--verbose", "Echo", "--play", str(src), "--record",
                    str(heard), "--duration", f"{talk:.1f}"),
        capture_output=True, text=True, timeout=90, env=cli_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    print("caller:", *[line for line in proc.stderr.splitlines() if "media: " in line])
    print("Echo:", *echo_relay.echo_summaries())
    sent, rate = read_pcm(src)
    got, got_rate = read_pcm(heard)
    assert rate == got_rate
    # Where does the sent speech appear in the recording? Cross-correlate envelopes.
    step = rate // 100  # 10 ms
    env_sent = np.abs(sent[: len(sent) // step * step]).reshape(-1, step).mean(axis=1)
    env_got = np.abs(got[: len(got) // step * step]).reshape(-1, step).mean(axis=1)
    corr = np.correlate(env_got - env_got.mean(), env_sent - env_sent.mean(), mode="valid")
    delay_s = int(np.argmax(corr)) * step / rate
    print(f"Echo delay as heard: {delay_s:.2f} s")
    # Echo's 1.5 s line plus the path there and back (jitter buffers, codec, relay).
    assert 1.45 <= delay_s <= 1.9
    start = int(delay_s * rate)
    aligned = heard.with_name("echo-aligned.wav")
    with wave.open(str(aligned), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(got[start : start + len(sent)].astype("<i2").tobytes())
    score = pesq_wb(src, aligned)
    print(f"Echo round trip PESQ-WB: {score:.2f}")
    assert score >= 3.0  # two passes through the codec


@pytest.mark.xdist_group("realtime")
def test_echo_call_with_play_waits_for_the_echo_of_the_files_end(
    relay_with_echo: tuple[EchoRelay, str], tmp_path: Path
) -> None:
    """Without --duration the headless call hangs up only after Echo answered the whole file:
    the echo of its last spoken 0.5 s is in the recording (it used to be cut 1 s after the
    file ended, while Echo answers 1.5 s late)."""
    echo_relay, echo_address = relay_with_echo
    me = User(tmp_path, "me")
    me.init(echo_relay.url)
    me.run("contacts", "add", echo_address, "--name", "Echo")
    src = speech_wav(tmp_path, ALICE_SAYS, voice="en")
    heard = tmp_path / "echo-whole.wav"
    proc = subprocess.run(
        cli_command(me.home, "call", "Echo", "--play", str(src), "--record", str(heard)),
        capture_output=True, text=True, timeout=90, env=cli_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sent, rate = read_pcm(src)
    got, _ = read_pcm(heard)
    step = rate // 100  # 10 ms envelopes
    env_sent = np.abs(sent[: len(sent) // step * step]).reshape(-1, step).mean(axis=1)
    env_got = np.abs(got[: len(got) // step * step]).reshape(-1, step).mean(axis=1)
    corr = np.correlate(env_got - env_got.mean(), env_sent - env_sent.mean(), mode="valid")
    delay = int(np.argmax(corr))  # in 10 ms steps
    assert 145 <= delay <= 190, delay
    voiced = np.nonzero(env_sent > 0.1 * env_sent.max())[0]
    last = int(voiced[-1]) + 1  # end of the last spoken 10 ms
    tail_sent = env_sent[last - 50 : last].mean()
    tail_got = env_got[delay + last - 50 : delay + last]
    print(f"echo delay {delay * 10} ms; recording {len(env_got) * 10} ms, speech ends at "
          f"{last * 10} ms: echo tail {tail_got.mean():.0f} vs sent {tail_sent:.0f}")  # fmt: skip
    assert len(tail_got) == 50, "the recording ends before the echo of the file's end"
    assert tail_got.mean() >= 0.3 * tail_sent


def test_offline_peer_never_rings_and_the_call_is_logged_unanswered(
    pair: tuple[User, User],
) -> None:
    alice, bob = pair
    # bob runs nothing: the offer is ephemeral (never stored), so nothing rings anywhere.
    proc = subprocess.run(
        cli_command(alice.home, "call", "bob", "--ring-timeout", "2", "--record",
                    str(alice.home.parent / "never.wav")),
        capture_output=True, text=True, timeout=60, env=cli_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 11, proc.stderr
    assert "calling bob" in proc.stderr
    history = alice.run("history", "bob", "--json").json_lines()
    assert [m["text"] for m in history if m["kind"] == "call"] == ["Outgoing call, cancelled"]
    # bob comes online later: no stale offer rings, and no call was stored for him.
    assert bob.run("receive", "--json").json_lines() == []

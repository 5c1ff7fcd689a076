"""The group receive path with real Opus: three participants' tones, each through its own
jitter buffer and decoder, all present in the mix; a leaver's stream goes; health lines."""

from __future__ import annotations

import numpy as np
import pytest

from messenger_tui.core.calls.audio_payload import pack_audio
from messenger_tui.core.calls.group_frames import (
    GroupFrameOpener,
    GroupFrameSealer,
    level_byte,
)
from messenger_tui.media.codec import OpusEncoder, load_opus
from messenger_tui.media.group_receive import GroupReceivePath, mix
from messenger_tui.media.group_send import GroupSendPath, pcm_level_byte
from messenger_tui.media.jitter_buffer import JitterBufferConfig
from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE

try:
    load_opus()
except Exception:  # pragma: no cover - the setup step installs libopus
    pytest.skip("libopus is not installed", allow_module_level=True)

TONES = {b"a" * 32: 440.0, b"b" * 32: 1000.0, b"c" * 32: 2500.0}


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def tone_frame(freq: float, index: int, amplitude: float = 0.2) -> bytes:
    t = (np.arange(FRAME_SAMPLES) + index * FRAME_SAMPLES) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def band_db(pcm: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)
    near = (bins > freq - 30) & (bins < freq + 30)
    return float(20 * np.log10(spectrum[near].max() + 1e-9))


def run_call(frames: int, leaver_after: int | None = None) -> tuple[np.ndarray, GroupReceivePath]:
    clock = FakeClock()
    opener = GroupFrameOpener(clock)
    senders = {}
    for identity in TONES:
        sealer = GroupFrameSealer(clock)
        opener.add_key(identity, sealer.current)
        senders[identity] = (sealer, OpusEncoder())
    path = GroupReceivePath(opener, JitterBufferConfig(), clock=clock)
    out = []
    for index in range(frames):
        clock.now += 0.02
        for identity, (sealer, encoder) in senders.items():
            if leaver_after is not None and identity == b"c" * 32 and index >= leaver_after:
                continue
            packet = encoder.encode(tone_frame(TONES[identity], index))
            ptype, payload = pack_audio(packet)
            path.receive(
                sealer.seal(payload, index * FRAME_SAMPLES, level_byte(-14, voice=True), ptype)
            )
        if leaver_after is not None and index == leaver_after:
            path.remove(b"c" * 32)
        out.append(path.pull())
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64), path


def test_every_participant_is_heard_in_the_mix() -> None:
    pcm, path = run_call(150)
    tail = pcm[-50 * FRAME_SAMPLES :]
    floor = band_db(tail, 1700.0)
    for freq in TONES.values():
        assert band_db(tail, freq) > floor + 30, freq
    health = {h.identity: h for h in path.health()}
    assert set(health) == set(TONES)
    for line in health.values():
        assert line.speaking and line.level_dbov == -14
        assert line.frames_received == 150 and line.loss_percent == 0.0


def test_a_leavers_stream_leaves_the_mix() -> None:
    pcm, path = run_call(150, leaver_after=50)
    tail = pcm[-50 * FRAME_SAMPLES :]
    floor = band_db(tail, 1700.0)
    assert band_db(tail, 440.0) > floor + 30
    assert band_db(tail, 2500.0) < floor + 10
    assert {h.identity for h in path.health()} == {b"a" * 32, b"b" * 32}


def test_mix_clips_instead_of_wrapping() -> None:
    loud = np.full(FRAME_SAMPLES, 30000, dtype="<i2").tobytes()
    mixed = np.frombuffer(mix([loud, loud]), dtype="<i2")
    assert mixed.min() == 32767
    assert mix([loud]) is loud


def test_send_path_level_byte_and_round_trip() -> None:
    clock = FakeClock()
    sealer = GroupFrameSealer(clock)
    opener = GroupFrameOpener(clock)
    opener.add_key(b"s" * 32, sealer.current)
    send = GroupSendPath(sealer, OpusEncoder())
    assert pcm_level_byte(bytes(2 * FRAME_SAMPLES)) == 127  # silence: no voice bit
    assert pcm_level_byte(tone_frame(1000.0, 0, 0.2)) == 0x80 | 17  # RMS of 0.2 sine: -17 dBov
    path = GroupReceivePath(opener, JitterBufferConfig(), clock=clock)
    out = []
    for index in range(100):
        clock.now += 0.02
        send.muted = index >= 80
        frame = send.frame(tone_frame(1000.0, index))
        assert frame[1] == (127 if send.muted else 0x80 | 17)
        path.receive(frame)
        out.append(path.pull())
    pcm = np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64)
    talk = pcm[40 * FRAME_SAMPLES : 70 * FRAME_SAMPLES]
    assert band_db(talk, 1000.0) > band_db(talk, 3000.0) + 30
    assert opener.counters.opened == 100 and opener.counters.dropped == 0

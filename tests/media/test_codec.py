"""Opus wrapper: settings reach libopus, CBR sizes, FEC and PLC, and a clear error without it."""

from __future__ import annotations

import array
import math
import random
import subprocess
import sys
import textwrap

import pytest

from messenger_tui.media.codec import (
    CodecError,
    OpusDecoder,
    OpusEncoder,
    OpusSettings,
    decode_playout,
)
from messenger_tui.media.jitter_buffer import Playout, PlayoutKind
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES

SAMPLE_RATE = 48_000


def speech_like(seconds: float, *, seed: int = 1) -> list[bytes]:
    """Voiced syllables (harmonics of a gliding 100-180 Hz pitch under a 4 Hz envelope),
    fricative-like noise bursts and pauses, as 20 ms frames of 16-bit PCM."""
    rng = random.Random(seed)
    samples = []
    phase = 0.0
    for n in range(int(seconds * SAMPLE_RATE)):
        t = n / SAMPLE_RATE
        segment = int(t * 4) % 4  # 250 ms segments: voiced, voiced, noise, pause
        if segment < 2:
            f0 = 140 + 40 * math.sin(2 * math.pi * 0.9 * t)
            phase += 2 * math.pi * f0 / SAMPLE_RATE
            envelope = math.sin(math.pi * ((t * 4) % 1)) ** 2
            value = sum(math.sin(h * phase) / h for h in range(1, 9)) * envelope * 9000
        elif segment == 2:
            value = rng.gauss(0.0, 1500.0)
        else:
            value = 0.0
        samples.append(max(-32768, min(32767, int(value))))
    pcm = array.array("h", samples).tobytes()
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


FRAMES = speech_like(2.0)


def _samples(pcm: bytes) -> array.array[int]:
    return array.array("h", pcm)


def snr_db(reference: bytes, test: bytes) -> float:
    ref, out = _samples(reference), _samples(test)
    signal = sum(x * x for x in ref)
    noise = sum((x - y) ** 2 for x, y in zip(ref, out)) or 1
    return 10 * math.log10(signal / noise)


def _loud_frames(clean: list[bytes]) -> list[int]:
    """Frames worth losing in a test: with real signal in them (RMS above 1000)."""
    loud = [
        i
        for i in range(10, len(clean) - 1)
        if sum(x * x for x in _samples(clean[i])) / FRAME_SAMPLES > 1000**2
    ]
    assert len(loud) >= 20
    return loud


def test_settings_reach_libopus() -> None:
    encoder = OpusEncoder()
    assert encoder.bitrate == 24_000
    assert not encoder.constant_bitrate  # VBR under a packet limit; the session pads
    assert OpusEncoder(OpusSettings(constant_bitrate=True)).constant_bitrate
    assert encoder.inband_fec
    assert encoder.packet_loss_percent == 10
    assert encoder.lookahead_samples == 312  # 6.5 ms: part of the 26.5 ms codec delay
    encoder.set_packet_loss_percent(20)
    assert encoder.packet_loss_percent == 20


def test_bandwidth_cap_reaches_libopus() -> None:
    """Calls cap Opus at wideband (the ctl value, read back from libopus itself)."""
    import opuslib

    capped = OpusEncoder(OpusSettings(max_bandwidth="wideband"))
    assert capped._ctl(opuslib.api.ctl.get_max_bandwidth) == opuslib.BANDWIDTH_WIDEBAND
    free = OpusEncoder()
    assert free._ctl(opuslib.api.ctl.get_max_bandwidth) == opuslib.BANDWIDTH_FULLBAND
    with pytest.raises(ValueError, match="bandwidth"):
        OpusSettings(max_bandwidth="ultraband")


@pytest.mark.parametrize(("bitrate", "size"), [(24_000, 60), (32_000, 80)])
def test_constant_bitrate_packets_all_have_one_size(bitrate: int, size: int) -> None:
    """libopus's CBR mode: speech, noise and silence alike give one size."""
    settings = OpusSettings(bitrate=bitrate, constant_bitrate=True)
    assert settings.packet_limit == size  # bitrate * 20 ms / 8
    encoder = OpusEncoder(settings)
    sizes = {len(encoder.encode(frame)) for frame in FRAMES}
    assert sizes == {size}


@pytest.mark.parametrize(("bitrate", "limit"), [(24_000, 75), (32_000, 100)])
def test_variable_bitrate_packets_stay_under_the_limit(bitrate: int, limit: int) -> None:
    """The default: sizes follow the signal (which is why the session pads every frame to
    the limit's payload size) but never pass the limit, even on noise."""
    settings = OpusSettings(bitrate=bitrate)
    assert settings.packet_limit == limit  # 1.25 x bitrate * 20 ms / 8
    encoder = OpusEncoder(settings)
    assert not encoder.constant_bitrate
    sizes = [len(encoder.encode(frame)) for frame in FRAMES]
    assert len(set(sizes)) > 5  # unpadded, sizes would leak what is said
    assert max(sizes) <= limit


def test_decode_reproduces_the_signal() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    decoded = [decoder.decode(encoder.encode(frame)) for frame in FRAMES]
    assert all(len(pcm) == FRAME_BYTES for pcm in decoded)
    source = b"".join(FRAMES)
    out = b"".join(decoded)
    delay = 312 * 2  # the codec delay, in bytes
    x, y = _samples(source[: len(source) - delay]), _samples(out[delay:])
    dot = sum(a * b for a, b in zip(x, y))
    norm = math.sqrt(sum(a * a for a in x) * sum(b * b for b in y))
    assert dot / norm > 0.7  # (the noise bursts are coded perceptually, not as waveforms)


def _decode_with_loss(packets: list[bytes], lost: int, how: str) -> bytes:
    """Decode the stream with packet ``lost`` missing; return what was played in its place."""
    decoder = OpusDecoder()
    for packet in packets[:lost]:
        decoder.decode(packet)
    if how == "fec":
        return decoder.decode_fec(packets[lost + 1])
    return decoder.conceal()


def test_in_band_fec_recovers_a_lost_frame_far_better_than_plc() -> None:
    encoder = OpusEncoder()
    packets = [encoder.encode(frame) for frame in FRAMES]
    reference = OpusDecoder()
    clean = [reference.decode(p) for p in packets]
    lost_frames = _loud_frames(clean)
    fec = [snr_db(clean[i], _decode_with_loss(packets, i, "fec")) for i in lost_frames]
    plc = [snr_db(clean[i], _decode_with_loss(packets, i, "plc")) for i in lost_frames]
    assert sum(fec) / len(fec) > 10.0
    assert sum(fec) / len(fec) > sum(plc) / len(plc) + 6.0


def test_without_fec_the_next_packet_cannot_repair() -> None:
    """The control: an encoder with FEC off gives the decoder nothing to rebuild from, so
    `decode_fec` is exactly PLC. (This is what a silently ignored FEC setting looks like.)"""
    encoder = OpusEncoder(OpusSettings(inband_fec=False))
    assert not encoder.inband_fec
    packets = [encoder.encode(frame) for frame in FRAMES]
    reference = OpusDecoder()
    lost_frames = _loud_frames([reference.decode(p) for p in packets])
    for i in lost_frames[:5]:
        assert _decode_with_loss(packets, i, "fec") == _decode_with_loss(packets, i, "plc")


def test_plc_produces_one_frame() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    for frame in FRAMES[:20]:
        decoder.decode(encoder.encode(frame))
    concealed = [decoder.conceal() for _ in range(10)]
    assert all(len(pcm) == FRAME_BYTES for pcm in concealed)
    assert any(any(_samples(pcm)) for pcm in concealed)  # it extrapolates, not silence
    fresh = OpusDecoder().conceal()
    assert len(fresh) == FRAME_BYTES


def test_decode_playout_follows_the_jitter_buffer() -> None:
    encoder = OpusEncoder()
    packets = [encoder.encode(frame) for frame in FRAMES[:30]]
    reference = OpusDecoder()
    clean = [reference.decode(p) for p in packets]
    decoder = OpusDecoder()
    out = [decode_playout(decoder, Playout(PlayoutKind.FRAME, i, packets[i])) for i in range(20)]
    assert out == clean[:20]  # same packets, same decoder state: bit-exact
    assert decode_playout(decoder, Playout(PlayoutKind.SILENCE)) == bytes(FRAME_BYTES)
    for kind, packet in (
        (PlayoutKind.REDUNDANT, packets[20]),
        (PlayoutKind.FEC, packets[21]),
        (PlayoutKind.PLC, None),
        (PlayoutKind.FRAME, b"\xff\xff\xff"),  # corrupt: concealed, never raised
    ):
        assert len(decode_playout(decoder, Playout(kind, 20, packet))) == FRAME_BYTES
    with pytest.raises(CodecError):
        decoder.decode(b"\xff\xff\xff")


def test_bad_input_is_refused() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    with pytest.raises(ValueError):
        encoder.encode(bytes(FRAME_BYTES - 2))
    with pytest.raises(ValueError):
        decoder.decode(b"")
    with pytest.raises(ValueError):
        decoder.decode_fec(b"")
    for bad in ({"bitrate": 1000}, {"packet_loss_percent": 101}, {"complexity": 11}):
        with pytest.raises(ValueError):
            OpusSettings(**bad)  # type: ignore[arg-type]
    assert FRAME_SAMPLES == 960


def test_missing_libopus_is_a_clear_typed_error() -> None:
    """In a fresh interpreter where the library cannot be found: importing the codec module
    works, creating an encoder raises CodecUnavailable naming the fix."""
    code = textwrap.dedent(
        """
        import ctypes.util
        real = ctypes.util.find_library
        ctypes.util.find_library = lambda name: None if name == "opus" else real(name)
        import messenger_tui.media.codec as codec
        try:
            codec.OpusEncoder()
        except codec.CodecUnavailable as exc:
            print("unavailable:", exc.fix, "|", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("unavailable: install it: sudo apt-get install libopus0")
    assert "calls are unavailable (chat still works)" in out

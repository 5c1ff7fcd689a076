"""Voice notes: Ogg Opus files a standard decoder plays, ~3 kB/s, WB-PESQ >= 3.5 back
through our reader and decoder; the container's CRC, lacing and damage checks; waveforms."""

from __future__ import annotations

import array
import io
import math
import random
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from messenger_tui.media.ogg_opus import (
    MAX_SEGMENTS,
    OggOpusError,
    OggOpusWriter,
    ogg_crc32,
    read_ogg_opus,
)
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES
from messenger_tui.media.voice_note import (
    MAX_LEVEL,
    VoiceNoteEncoder,
    decode_voice_note,
    encode_voice_note,
    read_voice_note,
    waveform,
)
from tests.helpers.speech import SENTENCES, pesq_wb, speech_wav


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 48000)
        return wav.readframes(wav.getnframes())


def write_pcm(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(pcm)
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("speech"), SENTENCES[0])


# ---------------------------------------------------------------- the whole path


def test_speech_to_ogg_plays_in_opusdec_and_scores_3_5(tmp_path: Path, speech: Path) -> None:
    pcm = read_pcm(speech)
    note = tmp_path / "note.ogg"
    with open(note, "wb") as out:
        info = encode_voice_note(pcm, out)
    samples = len(pcm) // 2
    assert info.samples == samples
    assert info.duration_ms == samples * 1000 // 48000
    size = note.stat().st_size
    assert size == info.bytes_written
    rate = size / (samples / 48000)
    print(f"voice note: {info.duration_ms} ms, {size} bytes, {rate:.0f} B/s")
    assert 2000 <= rate <= 3400  # about 3 kB per second (24 kb/s VBR, less in pauses)

    # a standard decoder: opusinfo finds nothing wrong, opusdec plays it, exactly as long
    report = subprocess.run(["opusinfo", str(note)], capture_output=True, text=True, check=True)
    assert "WARNING" not in report.stdout + report.stderr
    assert "ERROR" not in report.stdout + report.stderr
    assert "Pre-skip: 312" in report.stdout
    decoded = tmp_path / "opusdec.wav"
    subprocess.run(["opusdec", "--quiet", str(note), str(decoded)], check=True)
    with wave.open(str(decoded), "rb") as wav:
        assert wav.getframerate() == 48000 and wav.getnframes() == samples

    # our reader and decoder
    stream = read_voice_note(note)
    assert stream.samples == samples and stream.pre_skip == 312
    assert stream.vendor == "messenger-tui"
    ours = decode_voice_note(stream)
    assert len(ours) == len(pcm)
    ours_wav = write_pcm(tmp_path / "ours.wav", ours)
    score, score_opusdec = pesq_wb(speech, ours_wav), pesq_wb(speech, decoded)
    print(f"WB-PESQ: ours {score:.2f}, opusdec {score_opusdec:.2f}")
    assert score >= 3.5
    assert score_opusdec >= 3.5


def test_reads_opusenc_files(tmp_path: Path, speech: Path) -> None:
    """Files from the reference encoder (opus-tools' opusenc) read and decode too: our CRC,
    lacing and header parsing agree with libogg's."""
    note = tmp_path / "opusenc.ogg"
    subprocess.run(
        ["opusenc", "--quiet", "--bitrate", "24", "--framesize", "20", str(speech), str(note)],
        check=True,
    )
    stream = read_voice_note(note)
    samples = len(read_pcm(speech)) // 2
    assert stream.samples == samples
    assert stream.vendor.startswith("libopus")
    assert any(c.startswith("ENCODER=") for c in stream.comments)
    assert len(decode_voice_note(stream)) == samples * 2


def test_streaming_encoder_in_frames_equals_whole(tmp_path: Path, speech: Path) -> None:
    """A recording fed frame by frame (and in odd pieces) writes the same bytes."""
    pcm = read_pcm(speech)[: 48000 * 2 * 3 + 1234]
    whole, pieces = io.BytesIO(), io.BytesIO()
    first = encode_voice_note(pcm, whole, serial=7)
    encoder = VoiceNoteEncoder(pieces, serial=7)
    step = 3 * FRAME_BYTES // 2 + 2
    for i in range(0, len(pcm), step):
        encoder.add_pcm(pcm[i : i + step])
    assert encoder.duration_ms == first.duration_ms
    assert encoder.finish() == first
    assert pieces.getvalue() == whole.getvalue()


def test_a_tiny_recording() -> None:
    out = io.BytesIO()
    info = encode_voice_note(bytes(2), out)  # one sample
    stream = read_ogg_opus(out.getvalue())
    assert info.samples == stream.samples == 1
    (sample,) = array.array("h", decode_voice_note(stream))
    assert abs(sample) <= 4  # silence, within the codec's noise
    with pytest.raises(ValueError, match="needs some audio"):
        VoiceNoteEncoder(io.BytesIO()).finish()
    with pytest.raises(ValueError, match="even number"):
        VoiceNoteEncoder(io.BytesIO()).add_pcm(b"\x00")


# ---------------------------------------------------------------- the container


def crc_bitwise(data: bytes) -> int:
    """Ogg's CRC-32 straight from its definition, bit by bit."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


def test_ogg_crc() -> None:
    assert ogg_crc32(b"123456789") == 0x89A1897F  # CRC-32/CKSUM without its final XOR
    rng = random.Random(3)
    for n in (0, 1, 7, 255, 1000):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert ogg_crc32(data) == crc_bitwise(data)
    import zlib

    assert ogg_crc32(b"123456789") != zlib.crc32(b"123456789")


def write_packets(packets: list[bytes], samples: int = FRAME_SAMPLES) -> bytes:
    out = io.BytesIO()
    writer = OggOpusWriter(out, pre_skip=312, serial=0x1234)
    for packet in packets:
        writer.write_packet(packet, samples)
    writer.close(len(packets) * samples - 312 - 100)
    return out.getvalue()


def page_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        count = data[offset + 26]
        offset += 27 + count + sum(data[offset + 27 : offset + 27 + count])
    return offsets


def test_packets_of_every_lacing_shape_round_trip() -> None:
    rng = random.Random(5)
    sizes = [1, 254, 255, 256, 510, 765, 1275, 4000] + [rng.randrange(1, 300) for _ in range(400)]
    packets = [bytes(rng.randrange(256) for _ in range(n)) for n in sizes]
    data = write_packets(packets, samples=120)  # short packets: pages fill by segments
    stream = read_ogg_opus(data)
    assert stream.packets == packets
    assert stream.samples == len(packets) * 120 - 312 - 100
    segments = [data[offset + 26] for offset in page_offsets(data)]
    assert max(segments) <= MAX_SEGMENTS
    assert max(segments) > 200  # pages fill up to the limit
    assert len(segments) >= 4


def test_pages_hold_at_most_a_second() -> None:
    data = write_packets([b"\x08" * 60] * 260)  # 5.2 s of 20 ms packets
    offsets = page_offsets(data)
    assert len(offsets) == 2 + 6  # the two header pages, then 50 packets a page
    granules = [struct.unpack_from("<q", data, o + 6)[0] for o in offsets]
    assert granules[:4] == [0, 0, 50 * 960, 100 * 960]
    assert granules[-1] == 260 * 960 - 100  # the trimmed end
    assert data[offsets[0] + 5] == 0x02 and data[offsets[-1] + 5] == 0x04  # BOS, EOS


def test_damage_is_a_clear_error() -> None:
    data = write_packets([bytes([n % 256]) * 70 for n in range(120)])
    offsets = page_offsets(data)
    cases = {
        "fails its CRC": data[:500] + bytes([data[500] ^ 1]) + data[501:],
        "ends inside the page": data[:-10],
        "no end-of-stream page": data[: offsets[-1]],
        "not an Ogg file": b"RIFF" + data[4:],
        "the file is empty": b"",
        "page 3 is missing": data[: offsets[3]] + data[offsets[4] :],
    }
    for message, damaged in cases.items():
        with pytest.raises(OggOpusError, match=message):
            read_ogg_opus(damaged)
    other_stream = data.replace(struct.pack("<I", 0x1234), struct.pack("<I", 0x9999), 1)
    with pytest.raises(OggOpusError):
        read_ogg_opus(other_stream + data)


def test_writer_refuses_misuse() -> None:
    writer = OggOpusWriter(io.BytesIO(), pre_skip=312, serial=1)
    with pytest.raises(ValueError):
        writer.write_packet(b"", 960)
    with pytest.raises(ValueError, match="at least one packet"):
        writer.close(0)
    writer.write_packet(b"x", 960)
    with pytest.raises(ValueError, match="trimmed end"):
        writer.close(960)  # more than the packets hold after the pre-skip
    writer.close(100)
    with pytest.raises(ValueError, match="closed"):
        writer.write_packet(b"x", 960)


# ---------------------------------------------------------------- waveform


def test_waveform() -> None:
    assert waveform([0.0] * 500) == (0,) * 64
    assert waveform([]) == (0,)
    assert len(waveform([0.1] * 10)) == 10  # fewer frames than bars
    ramp = [10 ** (-3 + 3 * i / 639) for i in range(640)]  # -60 dB .. 0 dB, rising
    bars = waveform(ramp)
    assert len(bars) == 64 and bars[-1] == MAX_LEVEL and bars[0] == 0
    assert list(bars) == sorted(bars)
    loud_quiet = [0.5] * 100 + [0.005] * 100  # 40 dB apart
    assert waveform(loud_quiet, bars=2) == (MAX_LEVEL, 0)
    with pytest.raises(ValueError):
        waveform([0.1], bars=0)


def test_waveform_of_speech_shows_the_pauses(speech: Path) -> None:
    pcm = read_pcm(speech)
    info = encode_voice_note(pcm, io.BytesIO())
    bars = info.waveform
    assert len(bars) == 64 and all(0 <= b <= MAX_LEVEL for b in bars)
    assert bars[0] == 0 and bars[-1] == 0  # 0.3 s of silence at both ends
    assert max(bars) == MAX_LEVEL and sum(b >= 4 for b in bars) > 40


def test_output_gain_is_applied() -> None:
    out = io.BytesIO()
    tone = array.array(
        "h", (int(8000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(48000))
    ).tobytes()
    encode_voice_note(tone, out)
    stream = read_ogg_opus(out.getvalue())
    plain = decode_voice_note(stream)
    louder = decode_voice_note(
        type(stream)(stream.packets, stream.pre_skip, stream.end_granule, output_gain=6 * 256)
    )
    a, b = array.array("h", plain), array.array("h", louder)
    ratio = math.sqrt(sum(x * x for x in b) / sum(x * x for x in a))
    assert abs(ratio - 10 ** (6 / 20)) < 0.01

"""Voice messages: speech to an Ogg Opus file with its duration and waveform, and back.

- :class:`VoiceNoteEncoder` takes 48 kHz mono 16-bit PCM in pieces of any size (a recording's
  20 ms frames), encodes it with the call's Opus encoder (:mod:`messenger_tui.media.codec`)
  set for a file: 24 kb/s, 20 ms frames, capped at wideband like calls (better WB-PESQ at this
  rate), no in-band FEC (a file loses no packets), and writes Ogg pages with
  :mod:`messenger_tui.media.ogg_opus`. About 3 kB per second of speech. :meth:`finish`
  returns a :class:`VoiceNoteInfo`: the duration and a waveform for the pointer.
- :func:`decode_voice_note` turns a file back into PCM (pre-skip dropped, end trimmed, output
  gain applied) with our decoder. It is CPU work: run it off the event loop.
- :func:`waveform` makes the pointer's bars from per-frame levels: the RMS of each of
  ``bars`` slices, on a 40 dB scale below the loudest slice, as levels 0..7.

Files are read whole (a minute is ~180 kB); :data:`MAX_VOICE_NOTE_BYTES` bounds them.
"""

from __future__ import annotations

import array
import math
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from messenger_tui.media.codec import CodecError, OpusDecoder, OpusEncoder, OpusSettings
from messenger_tui.media.levels import frame_level, level_to_dbfs
from messenger_tui.media.ogg_opus import OggOpusError, OggOpusStream, OggOpusWriter, read_ogg_opus
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE

#: The encoder for voice messages: the call codec's setup without FEC.
VOICE_SETTINGS: Final = OpusSettings(
    bitrate=24_000, inband_fec=False, packet_loss_percent=0, max_bandwidth="wideband"
)
DEFAULT_BARS: Final = 64
MAX_LEVEL: Final = 7
#: Slices this far below the loudest one draw as level 0.
WAVEFORM_RANGE_DB: Final = 40.0
#: Largest voice-note file read (an hour at 24 kb/s is ~11 MB).
MAX_VOICE_NOTE_BYTES: Final = 32 * 1024 * 1024
MIME_TYPE: Final = "audio/ogg"


@dataclass(frozen=True, slots=True)
class VoiceNoteInfo:
    """What the pointer carries about a recording."""

    duration_ms: int
    waveform: tuple[int, ...]
    samples: int
    bytes_written: int


def duration_ms(samples: int) -> int:
    """Milliseconds of ``samples`` at 48 kHz (rounded down)."""
    return samples * 1000 // SAMPLE_RATE


def waveform(levels: list[float], bars: int = DEFAULT_BARS) -> tuple[int, ...]:
    """``bars`` levels 0..:data:`MAX_LEVEL` from per-frame RMS levels (0..1, as
    :func:`~messenger_tui.media.levels.frame_level`): fewer bars for fewer frames; all zeros
    for silence."""
    if bars < 1:
        raise ValueError("a waveform has at least one bar")
    if not levels:
        return (0,)
    bars = min(bars, len(levels))
    slice_rms = []
    for bar in range(bars):
        part = levels[bar * len(levels) // bars : (bar + 1) * len(levels) // bars]
        slice_rms.append(math.sqrt(sum(x * x for x in part) / len(part)))
    loudest = level_to_dbfs(max(slice_rms))
    if loudest <= -90.0:
        return (0,) * bars
    floor = loudest - WAVEFORM_RANGE_DB
    return tuple(
        max(0, min(MAX_LEVEL, round(MAX_LEVEL * (level_to_dbfs(rms) - floor) / WAVEFORM_RANGE_DB)))
        for rms in slice_rms
    )


class VoiceNoteEncoder:
    """PCM in, an Ogg Opus file out (see the module doc). Not thread-safe."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        settings: OpusSettings = VOICE_SETTINGS,
        serial: int | None = None,
    ) -> None:
        self._encoder = OpusEncoder(settings)
        self._pre_skip = self._encoder.lookahead_samples
        serial = secrets.randbits(32) if serial is None else serial
        self._writer = OggOpusWriter(out, pre_skip=self._pre_skip, serial=serial)
        self._buffer = bytearray()
        self._samples = 0
        self._levels: list[float] = []
        self._info: VoiceNoteInfo | None = None

    @property
    def samples(self) -> int:
        """Samples of audio taken so far."""
        return self._samples

    @property
    def duration_ms(self) -> int:
        return duration_ms(self._samples)

    def _encode(self, frame: bytes) -> None:
        self._writer.write_packet(self._encoder.encode(frame), FRAME_SAMPLES)

    def add_pcm(self, pcm: bytes) -> None:
        """Take 16-bit mono PCM at 48 kHz (any whole number of samples)."""
        if self._info is not None:
            raise ValueError("the voice note is finished")
        if len(pcm) % 2:
            raise ValueError("16-bit PCM has an even number of bytes")
        self._buffer += pcm
        self._samples += len(pcm) // 2
        while len(self._buffer) >= FRAME_BYTES:
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            self._levels.append(frame_level(frame))
            self._encode(frame)

    def finish(self, bars: int = DEFAULT_BARS) -> VoiceNoteInfo:
        """Encode the rest (padding the last frame, and the encoder's lookahead) and write
        the last page. At least one sample is needed."""
        if self._info is not None:
            return self._info
        if self._samples == 0:
            raise ValueError("a voice note needs some audio")
        if self._buffer:
            frame = bytes(self._buffer) + bytes(FRAME_BYTES - len(self._buffer))
            self._levels.append(frame_level(bytes(self._buffer)))
            self._buffer.clear()
            self._encode(frame)
        # the decoder's output lags by the pre-skip: encode until the real audio is all out
        encoded = -(-self._samples // FRAME_SAMPLES) * FRAME_SAMPLES
        while encoded < self._samples + self._pre_skip:
            self._encode(bytes(FRAME_BYTES))
            encoded += FRAME_SAMPLES
        self._writer.close(self._samples)
        self._info = VoiceNoteInfo(
            duration_ms(self._samples),
            waveform(self._levels, bars),
            self._samples,
            self._writer.bytes_written,
        )
        return self._info


def encode_voice_note(pcm: bytes, out: BinaryIO, *, serial: int | None = None) -> VoiceNoteInfo:
    """Encode a whole recording (48 kHz mono 16-bit PCM) into ``out``."""
    encoder = VoiceNoteEncoder(out, serial=serial)
    encoder.add_pcm(pcm)
    return encoder.finish()


def _apply_gain(pcm: bytes, gain_q8: int) -> bytes:
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":  # pragma: no cover - PCM is little-endian
        samples.byteswap()
    factor = 10.0 ** (gain_q8 / (20.0 * 256.0))
    scaled = array.array("h", (max(-32768, min(32767, round(x * factor))) for x in samples))
    if sys.byteorder == "big":  # pragma: no cover
        scaled.byteswap()
    return scaled.tobytes()


def decode_voice_note(stream: OggOpusStream) -> bytes:
    """The recording's PCM (48 kHz mono 16-bit), exactly :attr:`OggOpusStream.samples`
    long. Raises :class:`~messenger_tui.media.ogg_opus.OggOpusError` for packets our decoder
    cannot take (only 20 ms frames are supported, as we write them)."""
    decoder = OpusDecoder()
    out = bytearray()
    try:
        for packet in stream.packets:
            out += decoder.decode(packet)
    except CodecError as exc:
        raise OggOpusError(f"an audio packet does not decode: {exc}") from None
    start = stream.pre_skip * 2
    pcm = bytes(out[start : start + stream.samples * 2])
    if len(pcm) < stream.samples * 2:
        raise OggOpusError("the stream holds less audio than its last granule position says")
    return _apply_gain(pcm, stream.output_gain) if stream.output_gain else pcm


def read_voice_note(path: str | Path) -> OggOpusStream:
    """Read and check a voice-note file. Raises
    :class:`~messenger_tui.media.ogg_opus.OggOpusError` or :class:`OSError`."""
    with open(path, "rb") as file:
        data = file.read(MAX_VOICE_NOTE_BYTES + 1)
    if len(data) > MAX_VOICE_NOTE_BYTES:
        raise OggOpusError(f"{path}: over {MAX_VOICE_NOTE_BYTES // (1024 * 1024)} MiB")
    return read_ogg_opus(data)

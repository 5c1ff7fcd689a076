"""Playing a voice message through the chosen speaker: play/pause, seek ±5 s, 1x/1.5x/2x.

:meth:`VoicePlayer.load` reads and decodes the whole ``.ogg`` in a worker thread
(:func:`~messenger_tui.media.voice_note.read_voice_note` and
:func:`~messenger_tui.media.voice_note.decode_voice_note`: the Ogg pages of
:mod:`messenger_tui.media.ogg_opus`, opuslib's decoder; five minutes are ~29 MB of PCM, the
recording limit). The sink (:class:`~messenger_tui.media.ports.AudioSink`) pulls 20 ms frames
on its own thread; a lock guards the position, which the loop moves (seek) and the device
thread advances.

Speed is plain resampling: each output frame reads ``960 * speed`` input samples with linear
interpolation, so 1.5x and 2x also raise the pitch (like a tape played fast; no
time-stretch). Paused, the sink plays silence; at the end the player pauses at the start
position again, ready to replay (``ended`` tells the UI). :meth:`close` stops the device.
"""

from __future__ import annotations

import array
import asyncio
import threading
from pathlib import Path
from typing import Final

from messenger_tui.app.errors import AudioProblem, BadInput
from messenger_tui.media.ogg_opus import OggOpusError
from messenger_tui.media.ports import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioSink,
    AudioUnavailable,
)
from messenger_tui.media.voice_note import decode_voice_note, read_voice_note

SPEEDS: Final = (1.0, 1.5, 2.0)
SEEK_MS: Final = 5000
_SILENCE: Final = bytes(FRAME_BYTES)


def decode_file(path: Path) -> array.array[int]:
    """A voice message's samples (48 kHz mono). :class:`BadInput` for an unreadable or
    damaged file. CPU work: call it off the event loop."""
    try:
        pcm = decode_voice_note(read_voice_note(path))
    except OggOpusError as exc:
        raise BadInput(f"cannot play {path.name}: {exc}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    samples = array.array("h")
    samples.frombytes(pcm)
    return samples


def resample_frame(samples: array.array[int], start: float, speed: float) -> bytes:
    """One 20 ms output frame read from ``samples`` at ``start`` (a fractional sample
    index), ``speed`` input samples per output sample, linearly interpolated; silence past
    the end."""
    n = len(samples)
    if speed == 1.0 and start.is_integer():
        at = int(start)
        chunk = samples[at : at + FRAME_SAMPLES].tobytes()
        return chunk + bytes(FRAME_BYTES - len(chunk))
    out = array.array("h", bytes(FRAME_BYTES))
    for i in range(FRAME_SAMPLES):
        pos = start + i * speed
        k = int(pos)
        if k >= n:
            break
        frac = pos - k
        nxt = samples[k + 1] if k + 1 < n else samples[k]
        out[i] = int(samples[k] + (nxt - samples[k]) * frac)
    return out.tobytes()


class VoicePlayer:
    """Plays one loaded message (see the module doc)."""

    def __init__(self, sink: AudioSink, samples: array.array[int], message_row: int) -> None:
        self._sink = sink
        self._samples = samples
        self.message_row = message_row
        self._lock = threading.Lock()
        self._position = 0.0  # fractional sample index
        self._speed = 1.0
        self.playing = False
        self.ended = False
        self._started = False

    @classmethod
    async def load(cls, sink: AudioSink, path: Path, message_row: int) -> VoicePlayer:
        """Decode ``path`` off the loop (:class:`BadInput` when it does not decode)."""
        samples = await asyncio.to_thread(decode_file, path)
        if not samples:
            raise BadInput(f"{path.name} holds no audio")
        return cls(sink, samples, message_row)

    @property
    def duration_ms(self) -> int:
        return len(self._samples) * 1000 // SAMPLE_RATE

    @property
    def position_ms(self) -> int:
        with self._lock:
            return int(self._position) * 1000 // SAMPLE_RATE

    @property
    def speed(self) -> float:
        return self._speed

    def _pull(self) -> bytes:  # the device's thread
        with self._lock:
            if not self.playing:
                return _SILENCE
            frame = resample_frame(self._samples, self._position, self._speed)
            self._position += FRAME_SAMPLES * self._speed
            if self._position >= len(self._samples):
                self._position = 0.0
                self.playing = False
                self.ended = True
            return frame

    async def play(self) -> None:
        """Start or resume (from the start again after the end). :class:`AudioProblem`
        when the speaker cannot be opened."""
        with self._lock:
            self.playing = True
            self.ended = False
        if not self._started:
            try:
                await asyncio.to_thread(self._sink.start, self._pull)
            except AudioUnavailable as exc:
                self.playing = False
                raise AudioProblem(exc.reason, exc.fix) from None
            self._started = True

    def pause(self) -> None:
        with self._lock:
            self.playing = False

    async def toggle(self) -> None:
        if self.playing:
            self.pause()
        else:
            await self.play()

    def seek(self, delta_ms: int) -> None:
        """Move by ``delta_ms`` (clamped to the message)."""
        with self._lock:
            target = self._position + delta_ms * SAMPLE_RATE / 1000
            self._position = float(max(0, min(len(self._samples) - 1, int(target))))

    def next_speed(self) -> float:
        """1x, 1.5x, 2x, then 1x again."""
        with self._lock:
            self._speed = SPEEDS[(SPEEDS.index(self._speed) + 1) % len(SPEEDS)]
            return self._speed

    async def close(self) -> None:
        """Stop the speaker; no pull follows."""
        self.pause()
        if self._started:
            self._started = False
            await asyncio.to_thread(self._sink.stop)

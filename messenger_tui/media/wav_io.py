"""WAV files as call audio: :class:`WavSource` plays a file into a call, :class:`WavSink` records
what the call plays. They implement :class:`~messenger_tui.media.ports.AudioSource` and
:class:`~messenger_tui.media.ports.AudioSink` for headless calls (``--play`` / ``--record``) and
tests.

Format: 48 kHz mono 16-bit PCM WAV, the call's own format. Anything else is refused with a
:class:`WavFormatError` that says how to convert it (no resampling here: numpy is not a runtime
dependency, and a hand-rolled resampler would colour the audio that quality tests measure)::

    sox input.wav -r 48000 -c 1 -b 16 output.wav

Pacing:

- ``pace="loop"`` (the default): the running event loop delivers (source) or pulls (sink) one
  20 ms frame per slot of a :class:`~messenger_tui.media.pacing.LoopPacer`. Start it on the
  loop's thread (a media session does). A file has no device clock to follow, and on the loop
  a call's source and sink share one wake-up per frame and hand nothing across threads: the
  cheapest way to run a headless call.
- ``pace="thread"``: a daemon thread per end, at absolute deadlines ``start + n * 20 ms`` of
  ``time.monotonic()``, the way a device's callback thread behaves (tests that want a device's
  threading without a device). After a stall of more than :data:`MAX_LAG_S` (a suspended
  machine) the schedule restarts instead of bursting.
- ``pace="manual"``: nothing happens by itself; the caller drives frames with :meth:`tick`
  (tests in simulated time, benchmarks).
"""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final, Literal

from messenger_tui.media.pacing import MAX_LAG_S, LoopPacer
from messenger_tui.media.ports import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SILENCE, AudioUnavailable

Pace = Literal["loop", "thread", "manual"]
_PACES: Final = ("loop", "thread", "manual")
AtEnd = Literal["silence", "stop"]

_FRAME_S: Final = FRAME_MS / 1000
_WRITE_BUFFER: Final = 256 * 1024
CONVERT_HINT: Final = "convert it: sox input.wav -r 48000 -c 1 -b 16 output.wav"


class WavFormatError(AudioUnavailable, ValueError):
    """A WAV file the call cannot play as is (``reason``; ``fix`` = the sox command)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, CONVERT_HINT)


def read_wav_frames(path: str | Path) -> list[bytes]:
    """The file's audio as 20 ms frames (the last one padded with silence). Raises
    :class:`WavFormatError` for anything but 48 kHz mono 16-bit PCM, :class:`OSError` if
    the file cannot be read."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if (channels, width, rate) != (1, 2, SAMPLE_RATE):
                raise WavFormatError(
                    f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; calls need "
                    f"{SAMPLE_RATE} Hz mono 16-bit PCM"
                )
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"{path}: not a PCM WAV file ({exc})") from exc
    frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + bytes(FRAME_BYTES - len(frames[-1]))
    return frames


def _steps(step: Callable[[], bool], frames: int) -> int:
    """Run ``step`` up to ``frames`` times, until it returns False; how many ran."""
    done = 0
    while done < frames and step():
        done += 1
    return done


class _ThreadPacer:
    """A daemon thread calling ``step()`` once per 20 ms at absolute monotonic deadlines,
    until ``step`` returns False or :meth:`stop`."""

    def __init__(self, name: str, step: Callable[[], bool]) -> None:
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            lag = time.monotonic() - (start + n * _FRAME_S)
            if lag < 0:
                if self._stop.wait(-lag):
                    return
            elif lag > MAX_LAG_S:
                start, n = time.monotonic(), 0
            if self._stop.is_set() or not self._step():
                return
            n += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()


def _pacer(
    pace: Pace, name: str, step: Callable[[], bool], phase_s: float = 0.0
) -> _ThreadPacer | LoopPacer | None:
    """The started pacer of one end (None for manual pacing)."""
    pacer: _ThreadPacer | LoopPacer
    if pace == "manual":
        return None
    pacer = LoopPacer(step, phase_s=phase_s) if pace == "loop" else _ThreadPacer(name, step)
    pacer.start()
    return pacer


def _timing_summary(pacer: _ThreadPacer | LoopPacer | None) -> str | None:
    return pacer.summary() if isinstance(pacer, LoopPacer) else None


class WavSource:
    """Plays a WAV file into a call, one 20 ms frame at a time (see the module doc).

    ``loop_audio``: start over at the end of the file. Otherwise, at the end, ``at_end``
    decides: ``"silence"`` keeps delivering silent frames (the call goes on, like a muted
    microphone), ``"stop"`` delivers nothing more. Either way :attr:`finished` becomes true and
    ``on_end`` (if given) is called once, from the delivering thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        loop_audio: bool = False,
        pace: Pace = "loop",
        at_end: AtEnd = "silence",
        on_end: Callable[[], None] | None = None,
    ) -> None:
        if pace not in _PACES:
            raise ValueError("pace is 'loop', 'thread' or 'manual'")
        if at_end not in ("silence", "stop"):
            raise ValueError("at_end is 'silence' or 'stop'")
        self.path = Path(path)
        self._frames = read_wav_frames(self.path)
        self.loop_audio = loop_audio
        self.pace: Pace = pace
        self.at_end: AtEnd = at_end
        self._on_end = on_end
        self._on_frame: Callable[[bytes], None] | None = None
        self._position = 0
        self._pacer: _ThreadPacer | LoopPacer | None = None
        self._timing: _ThreadPacer | LoopPacer | None = None  # kept after stop(): counters
        self._lock = threading.RLock()  # serialises delivery with stop()
        self.frames_delivered = 0
        self.finished = False

    @property
    def duration_s(self) -> float:
        """Length of the file's audio."""
        return len(self._frames) * _FRAME_S

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        if self._on_frame is not None:
            raise RuntimeError("WavSource already started")
        self._on_frame = on_frame
        self._pacer = _pacer(self.pace, f"wav-source:{self.path.name}", self._deliver)
        self._timing = self._pacer

    def timing_summary(self) -> str | None:
        """The loop pacer's counters (late steps, rejoins), for the call's summary line."""
        return _timing_summary(self._timing)

    def tick(self, frames: int = 1) -> int:
        """Manual pacing: deliver up to ``frames`` frames now; returns how many were."""
        if self.pace != "manual":
            raise RuntimeError("tick() drives a WavSource with pace='manual'")
        return _steps(self._deliver, frames)

    def _next_frame(self) -> bytes | None:
        if self._position < len(self._frames):
            frame = self._frames[self._position]
            self._position += 1
            return frame
        if not self.finished:
            self.finished = True
            if self._on_end is not None:
                self._on_end()
        if self.loop_audio and self._frames:
            self._position = 1
            return self._frames[0]
        return SILENCE if self.at_end == "silence" else None

    def _deliver(self) -> bool:
        with self._lock:
            on_frame = self._on_frame
            if on_frame is None:
                return False
            frame = self._next_frame()
            if frame is None:
                return False
            self.frames_delivered += 1
            on_frame(frame)
            return True

    def stop(self) -> None:
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer.stop()
        with self._lock:
            self._on_frame = None


class WavSink:
    """Records what a call plays into a 48 kHz mono 16-bit WAV file: pulls one frame per 20 ms
    (on the loop, on its own thread, or at each :meth:`tick` with ``pace="manual"``) and
    writes it. The file is
    complete and closed when :meth:`stop` returns."""

    def __init__(self, path: str | Path, *, pace: Pace = "loop", phase_s: float = 0.0) -> None:
        """``phase_s``: with ``pace="loop"``, shift the pulls off the shared 20 ms grid (see
        :class:`~messenger_tui.media.pacing.LoopPacer`)."""
        if pace not in _PACES:
            raise ValueError("pace is 'loop', 'thread' or 'manual'")
        self.path = Path(path)
        self.pace: Pace = pace
        self.phase_s = phase_s
        self._pull: Callable[[], bytes] | None = None
        self._writer: wave.Wave_write | None = None
        self._file: BinaryIO | None = None
        self._pacer: _ThreadPacer | LoopPacer | None = None
        self._timing: _ThreadPacer | LoopPacer | None = None  # kept after stop(): counters
        self._lock = threading.RLock()  # serialises writing with stop()
        self.frames_written = 0

    def start(self, pull: Callable[[], bytes]) -> None:
        if self._pull is not None or self._writer is not None:
            raise RuntimeError("WavSink already started")
        try:
            # a write system call every few seconds of audio rather than every 4 frames
            file = self.path.open("wb", buffering=_WRITE_BUFFER)
        except OSError as exc:
            raise AudioUnavailable(f"cannot write {self.path}: {exc}") from exc
        writer = wave.open(file, "wb")  # noqa: SIM115 - closed in stop()
        self._file = file
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        self._writer = writer
        self._pull = pull
        self._pacer = _pacer(self.pace, f"wav-sink:{self.path.name}", self._write_one, self.phase_s)
        self._timing = self._pacer

    def timing_summary(self) -> str | None:
        """The loop pacer's counters (late steps, rejoins), for the call's summary line."""
        return _timing_summary(self._timing)

    def tick(self, frames: int = 1) -> int:
        """Manual pacing: pull and write ``frames`` frames now; returns how many were."""
        if self.pace != "manual":
            raise RuntimeError("tick() drives a WavSink with pace='manual'")
        return _steps(self._write_one, frames)

    def _write_one(self) -> bool:
        with self._lock:
            pull, writer = self._pull, self._writer
            if pull is None or writer is None:
                return False
            pcm = pull()
            if len(pcm) != FRAME_BYTES:  # a misbehaving pull must not shift the recording
                pcm = (pcm + SILENCE)[:FRAME_BYTES]
            writer.writeframesraw(pcm)
            self.frames_written += 1
            return True

    def stop(self) -> None:
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer.stop()
        with self._lock:
            self._pull = None
            writer, self._writer = self._writer, None
            file, self._file = self._file, None
            if writer is not None:
                writer.close()  # patches the header's sizes; leaves our file open
            if file is not None:
                file.close()

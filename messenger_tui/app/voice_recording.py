"""Recording a voice message from a microphone (the conversation's record key).

A :class:`VoiceRecording` opens an :class:`~messenger_tui.media.ports.AudioSource` (the chosen
microphone) and hands each 20 ms frame, without blocking the device thread, to a worker
thread that encodes it at once into an Ogg Opus file (:class:`~messenger_tui.media.voice_note.
VoiceNoteEncoder`: 24 kb/s mono) in a private temporary folder. So sending needs only the
last frame's encoding and the file's last page, off the event loop (:meth:`finish`), and the
PCM never piles up in memory. The live level (0..1, the last frame's RMS) and the elapsed
time are read by the UI at its own pace.

Lifecycle (written rules, one way only): ``recording`` → ``finished`` (:meth:`finish`: the
file and its :class:`VoiceNoteInfo`) or ``cancelled`` (:meth:`cancel`: the folder removed).
At :data:`MAX_RECORDING_MS` the microphone's frames are dropped (``at_limit``; the UI says
so) and the recording waits for Enter or Esc. A recording with no frame cannot be sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Final

from messenger_tui.app.errors import AudioProblem, BadInput
from messenger_tui.media.codec import CodecError
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_MS, AudioSource, AudioUnavailable
from messenger_tui.media.voice_note import VoiceNoteEncoder, VoiceNoteInfo

#: Longest recording (five minutes; ~0.9 MB at 24 kb/s).
MAX_RECORDING_MS: Final = 5 * 60 * 1000
_MAX_FRAMES: Final = MAX_RECORDING_MS // FRAME_MS
#: Frames waiting for the encoder at most (10 s): a stalled encoder drops, never grows.
_QUEUE_FRAMES: Final = 500
_STOP: Final = b""


class VoiceRecording:
    """One recording (see the module doc). Create with :meth:`start`."""

    def __init__(self, source: AudioSource, folder: Path) -> None:
        self._source = source
        self.folder = folder
        self.path = folder / "voice.ogg"
        self.state = "recording"
        self.level = 0.0
        self._frames = 0
        self.dropped = 0
        self._queue: queue.Queue[bytes] = queue.Queue(_QUEUE_FRAMES)
        self._file = self.path.open("wb")
        self._encoder = VoiceNoteEncoder(self._file)
        self._error: str | None = None
        self._worker = threading.Thread(target=self._encode, name="voice-record", daemon=True)

    @classmethod
    async def start(cls, source: AudioSource) -> VoiceRecording:
        """Open ``source`` and start recording. :class:`AudioProblem` when the microphone
        (or Opus) cannot be used; nothing is left behind then."""
        folder = Path(tempfile.mkdtemp(prefix="messenger-tui-voice-"))
        try:
            recording = cls(source, folder)
        except CodecError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise AudioProblem(f"cannot encode voice messages: {exc}") from None
        recording._worker.start()
        try:
            await asyncio.to_thread(source.start, recording._on_frame)
        except AudioUnavailable as exc:
            await recording._discard()
            raise AudioProblem(exc.reason, exc.fix) from None
        return recording

    @property
    def elapsed_ms(self) -> int:
        return self._frames * FRAME_MS

    @property
    def at_limit(self) -> bool:
        return self._frames >= _MAX_FRAMES

    def _on_frame(self, frame: bytes) -> None:  # the device's thread: never blocks
        if self.state != "recording" or self._frames >= _MAX_FRAMES:
            self.level = 0.0
            return
        self.level = frame_level(frame)
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.dropped += 1
            return
        self._frames += 1

    def _encode(self) -> None:  # the worker thread
        while True:
            frame = self._queue.get()
            if frame is _STOP:
                return
            if self._error is None:
                try:
                    self._encoder.add_pcm(frame)
                except (CodecError, OSError, ValueError) as exc:
                    self._error = str(exc)

    def _stop_worker(self) -> None:  # blocking: run off the loop
        with contextlib.suppress(Exception):
            self._source.stop()
        self._queue.put(_STOP)
        self._worker.join()

    async def finish(self) -> tuple[Path, VoiceNoteInfo]:
        """Stop the microphone and close the file. :class:`BadInput` for an empty
        recording and :class:`AudioProblem` when encoding failed (the file is removed in
        both cases)."""
        if self.state != "recording":
            raise BadInput(f"the recording is {self.state}")
        self.state = "finishing"
        await asyncio.to_thread(self._stop_worker)
        if self._frames == 0 or self._error is not None:
            problem = self._error
            self.state = "cancelled"
            await asyncio.to_thread(self._remove)
            if problem is None:
                raise BadInput("nothing was recorded (is the microphone working?)")
            raise AudioProblem(f"cannot encode the voice message: {problem}")

        def close() -> VoiceNoteInfo:
            try:
                return self._encoder.finish()
            finally:
                self._file.close()

        info = await asyncio.to_thread(close)
        self.state = "finished"
        return self.path, info

    async def cancel(self) -> None:
        """Stop and remove the temporary file (idempotent; a finished one stays)."""
        if self.state not in ("recording", "finishing"):
            return
        self.state = "cancelled"
        await self._discard()

    async def _discard(self) -> None:
        await asyncio.to_thread(self._stop_worker)
        await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)

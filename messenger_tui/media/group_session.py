"""A group call's media session: the audio ends, the send path and the receive path joined.

::

    source (mic / WAV) --on_frame--> loop: [voice.process] -> GroupSendPath.frame
                                           -> send(frame) (the leg)
    leg --receive(frame)--> GroupReceivePath (per-participant jitter buffers)
    sink (speaker / WAV) --pull--> GroupReceivePath.pull (the mix) [-> voice.played(mix)]

**Echo cancellation** (``voice``, a
:class:`~messenger_tui.media.voice_processing.CaptureProcessor`, given for a microphone in a
room): the reference is the *mix as played*, the very frame the sink pulled, handed to
``voice.played`` in the order the device takes it, with the device's ``play_time`` when the
sink has one; each captured frame goes through ``voice.process`` (with the source's
``capture_time``, taken on the device thread) before the level byte and the encoder, also
while muted (the canceller keeps tracking the room). The session closes the processor.

It never opens a socket: ``send`` is the leg's non-blocking write (a dropped frame is gone),
and the leg hands incoming frames to :meth:`GroupMediaSession.receive`. Capture callbacks
may come from a device thread; they are handed to the loop with ``call_soon_threadsafe``
(the sealer is not thread-safe). Ends that open slowly (PortAudio) start off the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from messenger_tui.core.calls.group_frames import GroupFrameOpener, GroupFrameSealer
from messenger_tui.media.codec import OpusEncoder, OpusSettings
from messenger_tui.media.group_receive import GroupReceivePath, ParticipantHealth
from messenger_tui.media.group_send import GroupSendPath
from messenger_tui.media.jitter_buffer import JitterBufferConfig
from messenger_tui.media.ports import FRAME_BYTES, AudioSink, AudioSource
from messenger_tui.media.voice_processing import CaptureProcessor
from messenger_tui.media.voice_settings import hand_played

log = logging.getLogger(__name__)


class GroupMediaSession:
    """One participant's audio in a group call (see the module docstring)."""

    def __init__(
        self,
        sealer: GroupFrameSealer,
        opener: GroupFrameOpener,
        send: Callable[[bytes], bool],
        source: AudioSource,
        sink: AudioSink,
        *,
        loop: asyncio.AbstractEventLoop,
        settings: OpusSettings | None = None,
        jitter: JitterBufferConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        voice: CaptureProcessor | None = None,
    ) -> None:
        self._send = send
        self._clock = clock
        self.voice = voice
        self._source = source
        self._sink = sink
        self._loop = loop
        self.send_path = GroupSendPath(sealer, OpusEncoder(settings))
        self.receive_path = GroupReceivePath(opener, jitter or JitterBufferConfig(), clock=clock)
        self._started = False
        self._stopped = False
        self.frames_sent = 0
        self.frames_dropped = 0

    @property
    def muted(self) -> bool:
        return self.send_path.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.send_path.muted = value

    def receive(self, frame: bytes) -> None:
        """A frame from the leg (on the loop)."""
        if not self._stopped:
            self.receive_path.receive(frame)

    def remove(self, identity: bytes) -> None:
        """A participant left: its stream goes."""
        self.receive_path.remove(identity)

    def health(self) -> list[ParticipantHealth]:
        return self.receive_path.health()

    async def start_async(self) -> None:
        """Start the sink and the source (off the loop when one opens slowly)."""
        if self._started:
            return
        self._started = True
        if getattr(self._source, "opens_slowly", False) or getattr(
            self._sink, "opens_slowly", False
        ):
            await asyncio.to_thread(self._start_ends)
        else:
            self._start_ends()

    def _start_ends(self) -> None:
        self._sink.start(self.receive_path.pull if self.voice is None else self._pull_played)
        try:
            self._source.start(self._on_capture)
        except BaseException:
            self._sink.stop()
            raise

    def _pull_played(self) -> bytes:
        """The sink's callback with a capture processor: the mix it plays is also the echo
        reference (in the order the device takes it)."""
        frame = self.receive_path.pull()
        voice = self.voice
        if voice is not None and not hand_played(voice, frame, self._sink, self._clock):
            self.voice = None
        return frame

    def _on_capture(self, pcm: bytes) -> None:
        if self._stopped or len(pcm) != FRAME_BYTES:
            return
        # the time it left the device, for the echo canceller (the loop may run it later)
        at: float | None = None
        if self.voice is not None:
            at = getattr(self._source, "capture_time", None)
            if at is None:
                at = self._clock()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._send_one(pcm, at)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed under a device thread
                self._loop.call_soon_threadsafe(self._send_one, pcm, at)

    def _send_one(self, pcm: bytes, at: float | None = None) -> None:
        if self._stopped:
            return
        try:
            voice = self.voice
            if voice is not None:
                pcm = bytes(voice.process(pcm, self._clock() if at is None else at))
            frame = self.send_path.frame(pcm)
        except Exception as exc:  # never raise into the capture path; counted
            self.frames_dropped += 1
            if self.frames_dropped == 1:
                log.warning("group call frame not sent: %s", type(exc).__name__)
            return
        if self._send(frame):
            self.frames_sent += 1
        else:
            self.frames_dropped += 1

    async def stop(self) -> None:
        """Stop both ends (off the loop: a device stop can block); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            await asyncio.to_thread(self._stop_ends)
        else:
            voice, self.voice = self.voice, None
            if voice is not None:
                voice.close()

    def _stop_ends(self) -> None:
        try:
            self._source.stop()
        finally:
            try:
                self._sink.stop()
            finally:
                voice, self.voice = self.voice, None
                if voice is not None:
                    voice.close()

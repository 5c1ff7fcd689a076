"""A call's send path: captured PCM -> voice processing (echo cancellation, noise
suppression, gain control; devices only) -> Opus -> padded payload -> sealed frame -> carrier.

Runs on the event loop's thread; a source that captures on a device thread hands each frame
over with ``call_soon_threadsafe`` (a frame captured on the loop's own thread is processed at
once). Per frame this is the hot path of a call (the Opus encode is most of it): no
allocation or call is added here that the frame does not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from typing import Final

from messenger_tui.core.calls.audio_payload import audio_payload_size, pack_audio
from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.crypto.media_frame import MediaFrameSealer
from messenger_tui.media.codec import OpusEncoder, OpusSettings
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SILENCE, MediaCarrier
from messenger_tui.media.voice_processing import CaptureProcessor

log = logging.getLogger(__name__)

#: Levels are measured on every 4th frame (12.5 a second, more than a terminal meter draws),
#: from every 4th sample: an RMS over all 960 samples costs 30-90 us in pure Python, a few %
#: of the call's CPU budget; 240 samples read the same on a meter.
LEVEL_EVERY: Final = 4
LEVEL_STRIDE: Final = 4
#: Weight of a new peer loss report in the encoder's loss hint (exponential smoothing).
_LOSS_SMOOTHING: Final = 0.5


class SendPath:
    """Encodes, seals and sends each captured frame; seals the receiver reports too.

    ``after_frame(now)`` runs after every captured frame (the session's housekeeping).
    Counters are plain attributes, read by the session on the loop."""

    def __init__(
        self,
        keys: MediaKeys,
        carrier: MediaCarrier,
        settings: OpusSettings,
        *,
        redundancy: bool,
        clock: Callable[[], float],
        loop: asyncio.AbstractEventLoop,
        after_frame: Callable[[float], None],
        voice: CaptureProcessor | None = None,
    ) -> None:
        self._carrier = carrier
        #: Processes each captured frame before the encoder (None: sent as captured).
        self.voice = voice
        #: When the frame being handed over was captured (a device source's ADC time), or
        #: None: the clock's time at the hand-over is used.
        self.capture_time: Callable[[], float | None] = lambda: None
        self._clock = clock
        self._loop = loop
        self._after_frame = after_frame
        self._redundancy = redundancy
        self.encoder = OpusEncoder(settings)
        #: Every audio frame's payload is padded to this size: constant sizes on the wire.
        self.payload_size = audio_payload_size(settings.packet_limit, redundancy)
        self._sealer = MediaFrameSealer(keys.send_key, keys.send_direction)
        self._report_sealer = MediaFrameSealer(keys.send_key, keys.send_direction, control=True)
        #: Set by the session while it runs; frames captured otherwise are ignored.
        self.active = False
        self.loop_thread: int | None = None
        self.muted = False
        self._previous_packet: bytes | None = None
        self._send_errors = 0
        self.captured = 0
        self.bad_frames = 0
        self.last_capture_at: float | None = None
        self.frames_sent = 0
        self.send_failed = 0
        self.bytes_sent = 0
        self.reports_sent = 0
        self.last_send_ok_at: float | None = None
        self.last_send_ok = False
        self.mic_level = 0.0
        self.encoder_loss = settings.packet_loss_percent
        self._peer_loss_smoothed: float | None = None
        if redundancy:
            # every packet carries the previous frame in full: in-band FEC (the previous frame
            # again, at lower quality, in the same packet) can never repair anything the copy
            # does not, so a loss hint would only take bits from the audio (measured: WB-PESQ
            # 3.34 at hint 0, 3.15 at 5 %, 2.28 at 10 %)
            self.set_encoder_loss(0)

    def on_source_frame(self, pcm: bytes) -> None:
        """The source's callback; may run on a device thread, must not block."""
        if not self.active:
            return
        if threading.get_ident() == self.loop_thread:
            self.on_captured(pcm)
            return
        # the time it left the device, for the echo canceller (the loop may run it later)
        at = None
        if self.voice is not None:
            at = self.capture_time()
            if at is None:
                at = self._clock()
        with contextlib.suppress(RuntimeError):  # loop closed while the device winds down
            self._loop.call_soon_threadsafe(self.on_captured, pcm, at)

    def on_captured(self, pcm: bytes, at: float | None = None) -> None:
        if not self.active:
            return
        now = self._clock()
        if len(pcm) != FRAME_BYTES:
            self.bad_frames += 1
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        self.captured += 1
        self.last_capture_at = now
        if self.voice is not None:
            # also while muted: the echo canceller keeps tracking the room
            pcm = bytes(self.voice.process(pcm, now if at is None else at))
        if self.captured % LEVEL_EVERY == 1:
            self.mic_level = frame_level(pcm, LEVEL_STRIDE)
        if self.muted:
            pcm = SILENCE
        packet = self.encoder.encode(pcm)
        redundant = (self._previous_packet or b"") if self._redundancy else None
        self._previous_packet = packet
        payload_type, payload = pack_audio(packet, redundant, self.payload_size)
        timestamp = self._sealer.next_sequence * FRAME_SAMPLES
        frame = self._sealer.seal(payload, timestamp, payload_type)
        if self.send(frame):
            self.frames_sent += 1
            self.bytes_sent += len(frame)
            self.last_send_ok_at = now
        else:
            self.send_failed += 1
        self._after_frame(now)

    def send(self, frame: bytes) -> bool:
        try:
            ok = bool(self._carrier.send(frame))
        except Exception:
            self._send_errors += 1
            if self._send_errors == 1:  # 50 a second otherwise: log the first only
                log.exception("media carrier failed to send (further failures are counted)")
            ok = False
        self.last_send_ok = ok
        return ok

    def send_report(self, encoded: bytes) -> None:
        """Seal an encoded receiver report on the control stream and send it."""
        timestamp = max(self._sealer.next_sequence - 1, 0) * FRAME_SAMPLES
        if self.send(self._report_sealer.seal(encoded, timestamp)):
            self.reports_sent += 1

    def peer_loss(self, loss_percent: float) -> None:
        """The peer reported this loss of our frames: smooth it into the encoder's hint."""
        smoothed = self._peer_loss_smoothed
        smoothed = (
            loss_percent
            if smoothed is None
            else smoothed + _LOSS_SMOOTHING * (loss_percent - smoothed)
        )
        self._peer_loss_smoothed = smoothed
        if not self._redundancy:
            self.set_encoder_loss(min(100, math.ceil(smoothed)))

    def set_encoder_loss(self, percent: int) -> None:
        if percent != self.encoder_loss:
            self.encoder.set_packet_loss_percent(percent)
            self.encoder_loss = percent

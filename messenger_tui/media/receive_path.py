"""A call's receive path and playout: sealed frames in, PCM out.

::

    receive  carrier -> receive(frame) on the loop: open (drops counted) -> audio:
             unpack_audio -> JitterBuffer.push(arrival = clock)   | report: RTT, peer loss
    playout  sink.pull (the sink's clock, maybe a device thread): JitterBuffer.pull ->
             decode_playout -> FRAME_BYTES of PCM, at once, always

The jitter buffer is shared by the loop (push) and the sink (pull); :attr:`ReceivePath.lock`
guards exactly those calls (and the session's reads of its statistics). The decoder belongs
to the sink's thread. The carrier calls :meth:`ReceivePath.receive` directly, and the sink
:meth:`ReceivePath.pull`: per frame this is a hot path; nothing is added here that the frame
does not need.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from messenger_tui.core.calls.audio_payload import unpack_audio
from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.calls.report import (
    MalformedReport,
    ReceiverReport,
    ReportFlags,
    round_trip_us,
)
from messenger_tui.core.crypto.media_frame import (
    MalformedMediaFrame,
    MediaFrame,
    MediaFrameCounters,
    MediaFrameOpener,
)
from messenger_tui.media.codec import OpusDecoder, decode_playout
from messenger_tui.media.jitter_buffer import JitterBuffer, JitterBufferConfig, PlayoutKind
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_BYTES, SILENCE
from messenger_tui.media.send_path import LEVEL_EVERY, LEVEL_STRIDE

log = logging.getLogger(__name__)

_U32: Final = 0xFFFFFFFF
_PLAYED_KINDS: Final = frozenset({PlayoutKind.FRAME, PlayoutKind.REDUNDANT, PlayoutKind.FEC})


def us32(seconds: float) -> int:
    """Seconds as the reports' 32-bit microsecond clock."""
    return round(seconds * 1_000_000) & _U32


class ReceivePath:
    """Opens the peer's frames into the jitter buffer and plays them out.

    ``on_connected()`` runs at the first authentic frame; ``on_peer_loss(percent)`` with each
    peer report that states our loss (the send path's encoder hint)."""

    def __init__(
        self,
        keys: MediaKeys,
        jitter_config: JitterBufferConfig,
        *,
        clock: Callable[[], float],
        on_connected: Callable[[], None] | None,
        on_peer_loss: Callable[[float], None],
    ) -> None:
        self._clock = clock
        self._on_connected = on_connected
        self._on_peer_loss = on_peer_loss
        self._opener = MediaFrameOpener(keys.receive_key, keys.receive_direction)
        self.jb = JitterBuffer(jitter_config)
        self.lock = threading.Lock()  # guards self.jb: push (loop) vs pull (sink thread)
        self.decoder = OpusDecoder()
        #: Set by the session while it runs; frames otherwise are ignored, the sink plays
        #: silence.
        self.active = False
        self.connected = False
        self.last_authentic_at: float | None = None
        self.frames_received = 0
        self.bytes_received = 0
        self.highest_seq: int | None = None
        self.first_seq: int | None = None
        self.bad_payloads = 0
        self.reports_received = 0
        self.peer_report: ReceiverReport | None = None
        self.peer_report_at = 0.0
        self.rtt_ms: float | None = None
        # playout (sink thread; plain ints and floats, read by the loop)
        self.pulls = 0
        self.peer_frames_played = 0
        self.remote_level = 0.0
        self._playout_errors = 0

    @property
    def counters(self) -> MediaFrameCounters:
        """The opener's drop counters (authentication, replay, malformed)."""
        return self._opener.counters

    def receive(self, frame: bytes) -> None:
        """One frame from the carrier (on the loop). Never raises for bad input: drops are
        counted."""
        if not self.active:
            return
        opened = self._opener.open(frame)
        if opened is None:
            return
        now = self._clock()
        self.last_authentic_at = now
        if not self.connected:
            self.connected = True
            if self._on_connected is not None:
                self._on_connected()
        if opened.header.control:
            self._on_report(opened, now)
        else:
            self._on_audio(opened, len(frame), now)

    def _on_audio(self, frame: MediaFrame, size: int, now: float) -> None:
        try:
            primary, redundant = unpack_audio(frame.header.payload_type, frame.payload)
        except MalformedMediaFrame:
            self.bad_payloads += 1
            return
        sequence = frame.header.sequence
        self.frames_received += 1
        self.bytes_received += size
        if self.highest_seq is None:
            self.first_seq = sequence
            self.highest_seq = sequence
        elif sequence > self.highest_seq:
            self.highest_seq = sequence
        with self.lock:
            self.jb.push(sequence, primary, now * 1000.0, redundant)

    def _on_report(self, frame: MediaFrame, now: float) -> None:
        try:
            report = ReceiverReport.decode(frame.payload)
        except MalformedReport:
            self.bad_payloads += 1
            return
        self.reports_received += 1
        self.peer_report = report
        self.peer_report_at = now
        rtt_us = round_trip_us(report, us32(now))
        if rtt_us is not None:
            self.rtt_ms = rtt_us / 1000.0
        if report.has(ReportFlags.HAVE_HIGHEST):
            self._on_peer_loss(report.loss_percent)

    def pull(self) -> bytes:
        """The sink's callback: one frame to play, at once (maybe on a device thread)."""
        if not self.active:
            return SILENCE
        try:
            now_ms = self._clock() * 1000.0
            with self.lock:
                playout = self.jb.pull(now_ms)
            self.pulls += 1
            if playout.kind is PlayoutKind.SILENCE:
                self.remote_level = 0.0
                return SILENCE
            pcm = decode_playout(self.decoder, playout)
            if playout.kind in _PLAYED_KINDS:
                self.peer_frames_played += 1
            if self.pulls % LEVEL_EVERY == 1:
                self.remote_level = frame_level(pcm, LEVEL_STRIDE)
        except Exception:  # never raise into a device callback
            self._playout_errors += 1
            if self._playout_errors == 1:
                log.exception("media playout failed (further failures are counted)")
            return SILENCE
        return pcm if len(pcm) == FRAME_BYTES else SILENCE

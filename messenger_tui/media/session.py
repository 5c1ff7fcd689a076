"""A call's media session: captured PCM to sealed frames, sealed frames to played PCM.

::

    send     source.on_frame (maybe a device thread) --call_soon_threadsafe--> loop:
             Opus encode -> pack_audio(packet, previous packet, padded to the call's one
             payload size) -> seal (audio stream) -> carrier.send
    receive  carrier -> receive(frame) on the loop: open (drops counted) -> audio:
             unpack_audio -> JitterBuffer.push(arrival = clock)   | report: statistics, RTT,
                                                                    encoder loss hint
    playout  sink.pull (the sink's clock, maybe a device thread): JitterBuffer.pull ->
             decode_playout -> FRAME_BYTES of PCM, at once, always

The jitter buffer is shared by the loop (push) and the sink (pull); a lock guards exactly
those two calls. The decoder belongs to the sink's thread, the encoder and everything else to
the loop. About once a second (:meth:`MediaSession.poll`, run by a loop timer and after every
captured frame) the session seals a receiver report on the control stream
(:mod:`messenger_tui.core.calls.report`), refreshes the per-second statistics, and checks that
the peer is still there (``on_lost`` after ``lost_after_s`` without an authentic frame).

Time comes from ``clock`` (seconds, monotonic); tests pass a simulated clock and drive capture
and playout ticks themselves (a frame captured on the loop's own thread is processed at once,
without a loop iteration), so a whole call runs deterministically in simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from messenger_tui.core.calls.audio_payload import audio_payload_size, pack_audio, unpack_audio
from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.calls.report import (
    MalformedReport,
    ReceiverReport,
    ReportFlags,
    fraction_lost,
    round_trip_us,
)
from messenger_tui.core.crypto.media_frame import (
    MalformedMediaFrame,
    MediaFrame,
    MediaFrameOpener,
    MediaFrameSealer,
)
from messenger_tui.media.codec import (
    OpusDecoder,
    OpusEncoder,
    OpusSettings,
    decode_playout,
)
from messenger_tui.media.jitter_buffer import (
    Concealment,
    JitterBuffer,
    JitterBufferConfig,
    PlayoutKind,
)
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SILENCE,
    AudioSink,
    AudioSource,
    MediaCarrier,
)
from messenger_tui.media.stats import HISTORY_LEN, MediaHistory, MediaStats

log = logging.getLogger(__name__)

_U32: Final = 0xFFFFFFFF
#: How often the loop timer runs :meth:`MediaSession.poll` (reports are once a second).
_POLL_INTERVAL_S: Final = 0.25
#: A capture or a send older than this no longer counts as "capturing" / "sending".
_FRESH_S: Final = 0.5
#: A peer report older than this many report intervals no longer vouches for the peer.
_REPORT_STALE_INTERVALS: Final = 2.5
#: Weight of a new peer loss report in the encoder's loss hint (exponential smoothing).
_LOSS_SMOOTHING: Final = 0.5
#: Opus complexity of calls when no settings are given. Measured here (libopus 1.3.1, 24 kb/s
#: VBR under the 75-byte limit, wideband), encode per frame and WB-PESQ: 8: 255 us, 4.1;
#: 7: 190 us, 4.0; 6: 173 us, 4.0 (the same SILK settings as 7, without the tonality analysis
#: a voice-only, bandwidth-capped stream does not use); 5: 124 us, 3.7 (docs/notes/calls.md).
DEFAULT_COMPLEXITY: Final = 6
#: The jitter buffer of calls: it starts at 40 ms (not 60) and trusts its statistics after
#: 10 arrivals (not 25), so it settles within the first ~300 ms of a call, before anyone
#: speaks, instead of dropping frames into the first words (each whole-frame drop or stretch
#: inside speech costs WB-PESQ: clean path 3.43 -> 3.82 with this start).
DEFAULT_JITTER_CONFIG: Final = JitterBufferConfig(start_delay_ms=40.0, warmup_arrivals=10)
#: Levels are measured on every 4th frame (12.5 a second, more than a terminal meter draws),
#: from every 4th sample: an RMS over all 960 samples costs 30-90 us in pure Python, a few %
#: of the call's CPU budget; 240 samples read the same on a meter.
_LEVEL_EVERY: Final = 4
_LEVEL_STRIDE: Final = 4
_PLAYED_KINDS: Final = frozenset({PlayoutKind.FRAME, PlayoutKind.REDUNDANT, PlayoutKind.FEC})


class MediaSession:
    """One call's media, between an audio source and sink and a carrier. See the module doc.

    ``on_connected()`` runs on the loop at the first authentic frame from the peer;
    ``on_lost(reason)`` runs once when nothing authentic arrived for ``lost_after_s`` while
    started (from :meth:`start`, or from the last authentic frame). Construction loads libopus
    (:class:`~messenger_tui.media.codec.CodecUnavailable` without it).
    """

    def __init__(
        self,
        keys: MediaKeys,
        carrier: MediaCarrier,
        source: AudioSource,
        sink: AudioSink,
        *,
        loop: asyncio.AbstractEventLoop,
        settings: OpusSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_connected: Callable[[], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        redundancy: bool = True,
        lost_after_s: float = 10.0,
        report_interval_s: float = 1.0,
        jitter_config: JitterBufferConfig | None = None,
        wideband: bool = True,
    ) -> None:
        self._carrier = carrier
        self._source = source
        self._sink = sink
        self._loop = loop
        self._clock = clock
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._redundancy = redundancy
        self._lost_after_s = lost_after_s
        self._report_interval_s = report_interval_s
        settings = settings or OpusSettings(complexity=DEFAULT_COMPLEXITY)
        if wideband and settings.max_bandwidth is None:
            settings = dataclasses.replace(settings, max_bandwidth="wideband")
        self.settings = settings
        self._send_errors = 0
        self._playout_errors = 0
        self._encoder = OpusEncoder(self.settings)
        #: Every audio frame's payload is padded to this size: constant sizes on the wire.
        self.payload_size = audio_payload_size(self.settings.packet_limit, redundancy)
        self._decoder = OpusDecoder()
        self._sealer = MediaFrameSealer(keys.send_key, keys.send_direction)
        self._report_sealer = MediaFrameSealer(keys.send_key, keys.send_direction, control=True)
        self._opener = MediaFrameOpener(keys.receive_key, keys.receive_direction)
        self._jb = JitterBuffer(jitter_config or DEFAULT_JITTER_CONFIG)
        self._lock = threading.Lock()  # guards self._jb: push (loop) vs pull (sink thread)
        self._ends_lock = threading.Lock()  # starting vs stopping source and sink

        self._started = False
        self._stopped = False
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._muted = False
        self._started_at = 0.0

        # send side (loop thread)
        self._previous_packet: bytes | None = None
        self._captured = 0
        self._bad_frames = 0
        self._last_capture_at: float | None = None
        self._frames_sent = 0
        self._send_failed = 0
        self._bytes_sent = 0
        self._last_send_ok_at: float | None = None
        self._last_send_ok = False
        self._mic_level = 0.0
        self._encoder_loss = self.settings.packet_loss_percent
        if redundancy:
            # every packet carries the previous frame in full: in-band FEC (the previous frame
            # again, at lower quality, in the same packet) can never repair anything the copy
            # does not, so a loss hint would only take bits from the audio (measured: WB-PESQ
            # 3.34 at hint 0, 3.15 at 5 %, 2.28 at 10 %)
            self._set_encoder_loss(0)
        self._peer_loss_smoothed: float | None = None

        # receive side (loop thread)
        self._connected = False
        self._lost_fired = False
        self._last_authentic_at: float | None = None
        self._frames_received = 0
        self._bytes_received = 0
        self._highest_seq: int | None = None
        self._bad_payloads = 0
        self._reports_sent = 0
        self._reports_received = 0
        self._peer_report: ReceiverReport | None = None
        self._peer_report_at = 0.0
        self._rtt_ms: float | None = None

        # playout side (sink thread; plain ints and floats, read by the loop)
        self._pulls = 0
        self._peer_frames_played = 0
        self._remote_level = 0.0

        # per-interval state for reports and the per-second statistics (loop thread)
        self._next_report_at = 0.0
        self._interval_start = 0.0
        self._prev_highest: int | None = None
        self._prev_received = 0
        self._prev_captured = 0
        self._prev_played = 0
        self._prev_bytes_sent = 0
        self._prev_bytes_received = 0
        self._loss_percent = 0.0
        self._send_kbps = 0.0
        self._receive_kbps = 0.0
        self._history: dict[str, deque[float]] = {
            name: deque(maxlen=HISTORY_LEN)
            for name in ("jitter_ms", "loss_percent", "jb_delay_ms", "send_kbps", "receive_kbps")
        }
        self._rtt_history: deque[float | None] = deque(maxlen=HISTORY_LEN)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the sink and the source (call on the loop). Raises what they raise
        (:class:`~messenger_tui.media.ports.AudioUnavailable`), having stopped what started.
        With devices, prefer :meth:`start_async` (their open blocks)."""
        self._begin()
        self._start_ends()
        self._arm_timer()

    async def start_async(self) -> None:
        """:meth:`start`, with ends that open slowly (``opens_slowly``: PortAudio devices,
        whose first open loads PortAudio and lists every device, ~50 ms here and seconds on
        some hosts) opened on a worker thread, so the loop (the UI) does not stall. Raises
        what :meth:`start` raises. Stopped meanwhile (:meth:`stop`), the session closes the
        ends as soon as they are open and returns without raising."""
        self._begin()
        if _opens_slowly(self._source) or _opens_slowly(self._sink):
            await asyncio.to_thread(self._start_ends)
        else:
            self._start_ends()
        if self._started:
            self._arm_timer()

    def _begin(self) -> None:
        if self._started or self._stopped:
            raise RuntimeError("a media session starts once")
        self._loop_thread = threading.get_ident()
        now = self._clock()
        self._started_at = now
        self._interval_start = now
        self._next_report_at = now + self._report_interval_s
        self._started = True

    def _start_ends(self) -> None:
        """Start the sink and the source (any thread); on failure, close the session."""
        try:
            with self._ends_lock:  # close() waits for an open in progress, then stops it
                if not self._started:
                    return
                self._sink.start(self._pull)
                self._source.start(self._on_source_frame)
        except BaseException:
            self.close()
            raise

    def _arm_timer(self) -> None:
        self._timer = self._loop.call_later(_POLL_INTERVAL_S, self._on_timer)

    def close(self) -> None:
        """Stop the source, the sink and the timer, synchronously (a device's stop may wait
        for its thread). Idempotent; after it, nothing is sent, received frames are ignored
        and the sink gets silence."""
        if self._stopped:
            return
        self._stopped = True
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._ends_lock:
            for part in (self._source, self._sink):
                try:
                    part.stop()
                except Exception:  # a device that fails to close must not keep the other open
                    log.exception("stopping %s failed", type(part).__name__)

    async def stop(self) -> None:
        """:meth:`close` without blocking the loop: the session stops at once (nothing more
        sent or played), the devices are stopped on a worker thread."""
        if self._stopped:
            return
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await asyncio.to_thread(self.close)

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        """Muted, the session keeps sending encoded silence at the same bitrate (the relay
        cannot see mute)."""
        self._muted = bool(value)

    # ------------------------------------------------------------------ send path

    def _on_source_frame(self, pcm: bytes) -> None:
        """The source's callback; may run on a device thread, must not block."""
        if not self._started:
            return
        if threading.get_ident() == self._loop_thread:
            self._on_captured(pcm)
            return
        with contextlib.suppress(RuntimeError):  # loop closed while the device winds down
            self._loop.call_soon_threadsafe(self._on_captured, pcm)

    def _on_captured(self, pcm: bytes) -> None:
        if not self._started:
            return
        now = self._clock()
        if len(pcm) != FRAME_BYTES:
            self._bad_frames += 1
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        self._captured += 1
        self._last_capture_at = now
        if self._captured % _LEVEL_EVERY == 1:
            self._mic_level = frame_level(pcm, _LEVEL_STRIDE)
        if self._muted:
            pcm = SILENCE
        packet = self._encoder.encode(pcm)
        redundant = (self._previous_packet or b"") if self._redundancy else None
        self._previous_packet = packet
        payload_type, payload = pack_audio(packet, redundant, self.payload_size)
        timestamp = self._sealer.next_sequence * FRAME_SAMPLES
        frame = self._sealer.seal(payload, timestamp, payload_type)
        if self._send(frame):
            self._frames_sent += 1
            self._bytes_sent += len(frame)
            self._last_send_ok_at = now
        else:
            self._send_failed += 1
        self.poll(now)

    def _send(self, frame: bytes) -> bool:
        try:
            ok = bool(self._carrier.send(frame))
        except Exception:
            self._send_errors += 1
            if self._send_errors == 1:  # 50 a second otherwise: log the first only
                log.exception("media carrier failed to send (further failures are counted)")
            ok = False
        self._last_send_ok = ok
        return ok

    # ------------------------------------------------------------------ receive path

    def receive(self, frame: bytes) -> None:
        """One frame from the carrier (on the loop). Never raises for bad input: drops are
        counted in :meth:`stats`."""
        if not self._started:
            return
        opened = self._opener.open(frame)
        if opened is None:
            return
        now = self._clock()
        self._last_authentic_at = now
        if not self._connected:
            self._connected = True
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
            self._bad_payloads += 1
            return
        sequence = frame.header.sequence
        self._frames_received += 1
        self._bytes_received += size
        if self._highest_seq is None:
            self._prev_highest = sequence - 1
            self._highest_seq = sequence
        elif sequence > self._highest_seq:
            self._highest_seq = sequence
        with self._lock:
            self._jb.push(sequence, primary, now * 1000.0, redundant)

    def _on_report(self, frame: MediaFrame, now: float) -> None:
        try:
            report = ReceiverReport.decode(frame.payload)
        except MalformedReport:
            self._bad_payloads += 1
            return
        self._reports_received += 1
        self._peer_report = report
        self._peer_report_at = now
        rtt_us = round_trip_us(report, _us(now))
        if rtt_us is not None:
            self._rtt_ms = rtt_us / 1000.0
        if report.has(ReportFlags.HAVE_HIGHEST):
            loss = report.loss_percent
            smoothed = self._peer_loss_smoothed
            smoothed = loss if smoothed is None else smoothed + _LOSS_SMOOTHING * (loss - smoothed)
            self._peer_loss_smoothed = smoothed
            if not self._redundancy:
                self._set_encoder_loss(min(100, math.ceil(smoothed)))

    def _set_encoder_loss(self, percent: int) -> None:
        if percent != self._encoder_loss:
            self._encoder.set_packet_loss_percent(percent)
            self._encoder_loss = percent

    # ------------------------------------------------------------------ playout

    def _pull(self) -> bytes:
        """The sink's callback: one frame to play, at once (maybe on a device thread)."""
        if not self._started:
            return SILENCE
        try:
            now_ms = self._clock() * 1000.0
            with self._lock:
                playout = self._jb.pull(now_ms)
            self._pulls += 1
            if playout.kind is PlayoutKind.SILENCE:
                self._remote_level = 0.0
                return SILENCE
            pcm = decode_playout(self._decoder, playout)
            if playout.kind in _PLAYED_KINDS:
                self._peer_frames_played += 1
            if self._pulls % _LEVEL_EVERY == 1:
                self._remote_level = frame_level(pcm, _LEVEL_STRIDE)
        except Exception:  # never raise into a device callback
            self._playout_errors += 1
            if self._playout_errors == 1:
                log.exception("media playout failed (further failures are counted)")
            return SILENCE
        return pcm if len(pcm) == FRAME_BYTES else SILENCE

    # ------------------------------------------------------------------ housekeeping

    def _on_timer(self) -> None:
        self._timer = None
        if not self._started:
            return
        try:
            self.poll()
        finally:
            if self._started:
                self._arm_timer()

    def poll(self, now: float | None = None) -> None:
        """Send the receiver report when one is due and check for a lost peer. Runs on the
        loop timer and after each captured frame; tests in simulated time may call it."""
        if not self._started:
            return
        if now is None:
            now = self._clock()
        if now >= self._next_report_at:
            self._close_interval(now)
            self._send_report(now)
            self._next_report_at += self._report_interval_s
            if self._next_report_at <= now:  # fell behind (a stalled loop): do not burst
                self._next_report_at = now + self._report_interval_s
        if not self._lost_fired:
            since = self._last_authentic_at
            if since is None:
                since = self._started_at
            if now - since >= self._lost_after_s:
                self._lost_fired = True
                if self._on_lost is not None:
                    self._on_lost(f"no media from peer for {self._lost_after_s:g} s")

    def _close_interval(self, now: float) -> None:
        """Per-second figures: loss, bitrates, and the histories."""
        elapsed = max(now - self._interval_start, 1e-3)
        self._interval_start = now
        received = self._frames_received - self._prev_received
        if self._highest_seq is not None and self._prev_highest is not None:
            expected = self._highest_seq - self._prev_highest
            self._loss_percent = (
                max(0.0, (expected - received) * 100.0 / expected) if (expected > 0) else 0.0
            )
        self._send_kbps = (self._bytes_sent - self._prev_bytes_sent) * 8 / elapsed / 1000.0
        self._receive_kbps = (
            (self._bytes_received - self._prev_bytes_received) * 8 / elapsed / 1000.0
        )
        self._prev_bytes_sent = self._bytes_sent
        self._prev_bytes_received = self._bytes_received
        with self._lock:
            jitter = self._jb.stats.jitter_ms
            delay = self._jb.stats.current_delay_ms
        history = self._history
        history["jitter_ms"].append(jitter)
        history["loss_percent"].append(self._loss_percent)
        history["jb_delay_ms"].append(delay)
        history["send_kbps"].append(self._send_kbps)
        history["receive_kbps"].append(self._receive_kbps)
        self._rtt_history.append(self._rtt_ms)

    def _send_report(self, now: float) -> None:
        flags = ReportFlags.NONE
        received = self._frames_received - self._prev_received
        if received > 0:
            flags |= ReportFlags.RECEIVING
        played = self._peer_frames_played
        if played != self._prev_played:
            flags |= ReportFlags.PLAYING
        if self._captured != self._prev_captured:
            flags |= ReportFlags.CAPTURING
        if self._muted:
            flags |= ReportFlags.MUTED
        echo_us = echo_delay_us = 0
        if self._peer_report is not None:
            flags |= ReportFlags.ECHO
            echo_us = self._peer_report.sent_us
            echo_delay_us = _us(now - self._peer_report_at)
        highest = 0
        fraction = 0
        if self._highest_seq is not None and self._prev_highest is not None:
            flags |= ReportFlags.HAVE_HIGHEST
            highest = self._highest_seq
            fraction = fraction_lost(self._highest_seq - self._prev_highest, received)
            self._prev_highest = self._highest_seq
        with self._lock:
            stats = self._jb.stats
            jitter_ms, late = stats.jitter_ms, stats.late
            jb_delay, jb_target = stats.current_delay_ms, stats.target_delay_ms
        report = ReceiverReport(
            sent_us=_us(now),
            flags=flags,
            echo_us=echo_us,
            echo_delay_us=echo_delay_us,
            highest_sequence=highest,
            received=self._frames_received,
            fraction_lost=fraction,
            jitter_us=round(jitter_ms * 1000),
            jb_delay_ms=round(jb_delay),
            jb_target_ms=round(jb_target),
            late=late,
        )
        self._prev_received = self._frames_received
        self._prev_played = played
        self._prev_captured = self._captured
        timestamp = max(self._sealer.next_sequence - 1, 0) * FRAME_SAMPLES
        if self._send(self._report_sealer.seal(report.encode(), timestamp)):
            self._reports_sent += 1

    # ------------------------------------------------------------------ statistics

    def stats(self) -> MediaStats:
        """A snapshot for the UI (call on the loop)."""
        now = self._clock()
        with self._lock:
            jb = self._jb.stats
            jitter_ms, late = jb.jitter_ms, jb.late
            jb_delay, jb_target = jb.current_delay_ms, jb.target_delay_ms
            concealed = dict(jb.concealed)
            jb_dropped, jb_stretched = jb.dropped, jb.stretched
        counters = self._opener.counters
        peer = self._peer_report
        fresh_peer = peer is not None and (
            now - self._peer_report_at <= _REPORT_STALE_INTERVALS * self._report_interval_s
        )
        history = self._history
        return MediaStats(
            rtt_ms=self._rtt_ms,
            jitter_ms=jitter_ms,
            loss_percent=self._loss_percent,
            peer_loss_percent=peer.loss_percent if peer is not None else None,
            peer_jitter_ms=peer.jitter_us / 1000.0 if peer is not None else None,
            late_frames=late,
            jb_delay_ms=jb_delay,
            jb_target_ms=jb_target,
            send_kbps=self._send_kbps,
            receive_kbps=self._receive_kbps,
            mic_level=self._mic_level,
            remote_level=self._remote_level,
            frames_sent=self._frames_sent,
            frames_send_failed=self._send_failed,
            frames_received=self._frames_received,
            reports_sent=self._reports_sent,
            reports_received=self._reports_received,
            auth_failed=counters.auth_failed,
            replayed=counters.replayed + counters.too_old,
            malformed=counters.malformed + self._bad_payloads,
            concealed_redundancy=concealed[Concealment.REDUNDANCY],
            concealed_fec=concealed[Concealment.FEC],
            concealed_plc=concealed[Concealment.PLC],
            jb_dropped=jb_dropped,
            jb_stretched=jb_stretched,
            encoder_loss_percent=self._encoder_loss,
            muted=self._muted,
            connected=self._connected,
            capturing=self.running and _recent(self._last_capture_at, now),
            sending=self.running and self._last_send_ok and _recent(self._last_send_ok_at, now),
            peer_receiving=fresh_peer and peer is not None and peer.has(ReportFlags.RECEIVING),
            peer_playing=fresh_peer and peer is not None and peer.has(ReportFlags.PLAYING),
            peer_muted=fresh_peer and peer is not None and peer.has(ReportFlags.MUTED),
            audio_problem=_device_problem(self._source, "microphone")
            or _device_problem(self._sink, "speaker"),
            history=MediaHistory(
                rtt_ms=tuple(self._rtt_history),
                jitter_ms=tuple(history["jitter_ms"]),
                loss_percent=tuple(history["loss_percent"]),
                jb_delay_ms=tuple(history["jb_delay_ms"]),
                send_kbps=tuple(history["send_kbps"]),
                receive_kbps=tuple(history["receive_kbps"]),
            ),
        )

    def __repr__(self) -> str:  # never print keys
        state = "running" if self.running else "stopped" if self._stopped else "new"
        return f"MediaSession({state}, sent={self._frames_sent}, received={self._frames_received})"


def _opens_slowly(end: object) -> bool:
    return bool(getattr(end, "opens_slowly", False))


def _device_problem(end: object, kind: str) -> str | None:
    """Why a device end stopped by itself (PortAudio devices report it in their
    ``stats()``; WAV files and loops have no such thing)."""
    stats = getattr(end, "stats", None)
    if not callable(stats):
        return None
    try:
        snapshot = stats()
    except Exception:  # a device's bookkeeping must never break the call's statistics
        return None
    if not getattr(snapshot, "device_lost", False):
        return None
    reason = getattr(snapshot, "last_error", None)
    return str(reason) if reason else f"the {kind} stopped"


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000) & _U32


def _recent(at: float | None, now: float) -> bool:
    return at is not None and now - at <= _FRESH_S

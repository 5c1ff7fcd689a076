"""A call's media session: captured PCM to sealed frames, sealed frames to played PCM.

The session owns the lifecycle and hands the work to three parts, each in its own module:

* :class:`~messenger_tui.media.send_path.SendPath`: source frames -> voice processing (a
  :class:`~messenger_tui.media.voice_processing.CaptureProcessor`, when given: echo
  cancellation against what the sink played, noise suppression, gain control) -> Opus encode ->
  ``pack_audio`` (the previous packet too, padded to the call's one payload size) -> seal
  (audio stream) -> ``carrier.send``;
* :class:`~messenger_tui.media.receive_path.ReceivePath`: ``carrier`` -> open -> jitter buffer;
  the sink pulls decoded PCM from it on its own clock;
* :class:`~messenger_tui.media.intervals.IntervalAccounting` (pure): the per-second figures
  and the receiver report.

The source calls the send path, the carrier (``carrier.start(on_frame)``) and the sink the
receive path directly: no hop through the session per frame. About once a second
(:meth:`MediaSession.poll`, run by a loop timer and after every captured frame) the session
seals a receiver report on the control stream (:mod:`messenger_tui.core.calls.report`),
refreshes the per-second statistics, and checks that the peer is still there (``on_lost``
after ``lost_after_s`` without an authentic frame).

Time comes from ``clock`` (seconds, monotonic); tests pass a simulated clock and drive capture
and playout ticks themselves (a frame captured on the loop's own thread is processed at once,
without a loop iteration), so a whole call runs deterministically in simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.calls.report import ReportFlags
from messenger_tui.media.codec import OpusSettings
from messenger_tui.media.intervals import Counters, IntervalAccounting
from messenger_tui.media.jitter_buffer import Concealment, JitterBufferConfig
from messenger_tui.media.ports import AudioSink, AudioSource, MediaCarrier
from messenger_tui.media.receive_path import ReceivePath
from messenger_tui.media.send_path import SendPath
from messenger_tui.media.stats import MediaStats
from messenger_tui.media.voice_processing import CaptureProcessor
from messenger_tui.media.voice_settings import hand_played

log = logging.getLogger(__name__)

#: How often the loop timer runs :meth:`MediaSession.poll` (reports are once a second).
_POLL_INTERVAL_S: Final = 0.25
#: A capture or a send older than this no longer counts as "capturing" / "sending".
_FRESH_S: Final = 0.5
#: A peer report older than this many report intervals no longer vouches for the peer.
_REPORT_STALE_INTERVALS: Final = 2.5
#: Opus complexity of calls when no settings are given. Measured here (libopus 1.3.1, 24 kb/s
#: VBR under the 75-byte limit, wideband), encode per frame and WB-PESQ: 8: 255 us, 4.1;
#: 7: 190 us, 4.0; 6: 173 us, 4.0 (the same SILK settings as 7, without the tonality analysis
#: a voice-only, bandwidth-capped stream does not use); 5: 124 us, 3.7 (docs/performance.md).
DEFAULT_COMPLEXITY: Final = 6
#: The jitter buffer of calls: it starts at 40 ms (not 60) and trusts its statistics after
#: 10 arrivals (not 25), so it settles within the first ~300 ms of a call, before anyone
#: speaks, instead of dropping frames into the first words (each whole-frame drop or stretch
#: inside speech costs WB-PESQ: clean path 3.43 -> 3.82 with this start).
DEFAULT_JITTER_CONFIG: Final = JitterBufferConfig(start_delay_ms=40.0, warmup_arrivals=10)


class MediaSession:
    """One call's media, between an audio source and sink and a carrier. See the module doc.

    ``on_connected()`` runs on the loop at the first authentic frame from the peer;
    ``on_lost(reason)`` runs once when nothing authentic arrived for ``lost_after_s`` while
    started (from :meth:`start`, or from the last authentic frame). Construction loads libopus
    (:class:`~messenger_tui.media.codec.CodecUnavailable` without it).

    ``voice``: the capture processor (the session closes it). It gets every frame the sink
    plays, as the sink takes it from :meth:`ReceivePath.pull` (the far end's audio as it
    goes to the device: the echo reference), and processes every captured frame before the
    encoder, each with its time at the device (a device end's ``play_time`` /
    ``capture_time``, from PortAudio's DAC and ADC timestamps; else the session clock's time
    when it was handed over): the processor aligns playback and capture by those times.
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
        voice: CaptureProcessor | None = None,
    ) -> None:
        self._carrier = carrier
        self.voice = voice
        self._source = source
        self._sink = sink
        self._loop = loop
        self._clock = clock
        self._on_lost = on_lost
        self._lost_after_s = lost_after_s
        self._report_interval_s = report_interval_s
        settings = settings or OpusSettings(complexity=DEFAULT_COMPLEXITY)
        if wideband and settings.max_bandwidth is None:
            settings = dataclasses.replace(settings, max_bandwidth="wideband")
        self.settings = settings
        self._send = SendPath(
            keys,
            carrier,
            settings,
            redundancy=redundancy,
            clock=clock,
            loop=loop,
            after_frame=self.poll,
            voice=voice,
        )
        if voice is not None and hasattr(source, "capture_time"):
            self._send.capture_time = lambda: getattr(source, "capture_time", None)
        self._rx = ReceivePath(
            keys,
            jitter_config or DEFAULT_JITTER_CONFIG,
            clock=clock,
            on_connected=on_connected,
            on_peer_loss=self._send.peer_loss,
        )
        self._intervals = IntervalAccounting(report_interval_s)
        #: Every audio frame's payload is padded to this size: constant sizes on the wire.
        self.payload_size = self._send.payload_size
        #: One frame from the carrier (on the loop); never raises for bad input. The carrier
        #: gets it at :meth:`start`; it is the receive path's own method (no hop per frame).
        self.receive: Callable[[bytes], None] = self._rx.receive
        self._ends_lock = threading.Lock()  # starting vs stopping source and sink
        self._started = False
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._started_at = 0.0
        self._began = False  # started once: close() logs the call's summary
        self._lost_fired = False

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
        now = self._clock()
        self._started_at = now
        self._began = True
        self._intervals.begin(now)
        self._set_running(True)
        self._send.loop_thread = threading.get_ident()
        self._carrier.start(self.receive)

    def _set_running(self, running: bool) -> None:
        self._started = running
        self._send.active = running
        self._rx.active = running

    def _start_ends(self) -> None:
        """Start the sink and the source (any thread); on failure, close the session."""
        try:
            with self._ends_lock:  # close() waits for an open in progress, then stops it
                if not self._started:
                    return
                self._sink.start(self._rx.pull if self.voice is None else self._pull_played)
                self._source.start(self._send.on_source_frame)

        except BaseException:
            self.close()
            raise

    def _pull_played(self) -> bytes:
        """The sink's callback with a capture processor: the frame to play is also the echo
        reference (in the order the device takes it)."""
        frame = self._rx.pull()
        voice = self.voice
        if voice is not None and not hand_played(voice, frame, self._sink, self._clock):
            self.voice = self._send.voice = None
        return frame

    def _arm_timer(self) -> None:
        self._timer = self._loop.call_later(_POLL_INTERVAL_S, self._on_timer)

    def close(self) -> None:
        """Stop the source, the sink and the timer, synchronously (a device's stop may wait
        for its thread). Idempotent; after it, nothing is sent, received frames are ignored
        and the sink gets silence."""
        if self._stopped:
            return
        self._stopped = True
        self._set_running(False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._ends_lock:
            for part in (self._source, self._sink):
                try:
                    part.stop()
                except Exception:  # a device that fails to close must not keep the other open
                    log.exception("stopping %s failed", type(part).__name__)
            if self._began and log.isEnabledFor(logging.INFO):
                log.info("%s", self.summary())
            voice, self.voice = self.voice, None
            self._send.voice = None
            if voice is not None:
                voice.close()

    async def stop(self) -> None:
        """:meth:`close` without blocking the loop: the session stops at once (nothing more
        sent or played), the devices are stopped on a worker thread."""
        if self._stopped:
            return
        self._set_running(False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await asyncio.to_thread(self.close)

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    @property
    def muted(self) -> bool:
        return self._send.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        """Muted, the session keeps sending encoded silence at the same bitrate (the relay
        cannot see mute)."""
        self._send.muted = bool(value)

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
        if self._intervals.due(now):
            self._report(now)
        if not self._lost_fired:
            since = self._rx.last_authentic_at
            if since is None:
                since = self._started_at
            if now - since >= self._lost_after_s:
                self._lost_fired = True
                if self._on_lost is not None:
                    self._on_lost(f"no media from peer for {self._lost_after_s:g} s")

    def _report(self, now: float) -> None:
        """Close the interval and send the receiver report (once a second)."""
        send, rx = self._send, self._rx
        with rx.lock:
            jb = rx.jb.stats
            jitter_ms, late = jb.jitter_ms, jb.late
            jb_delay, jb_target = jb.current_delay_ms, jb.target_delay_ms
        counters = Counters(
            frames_received=rx.frames_received,
            highest_seq=rx.highest_seq,
            first_seq=rx.first_seq,
            bytes_sent=send.bytes_sent,
            bytes_received=rx.bytes_received,
            captured=send.captured,
            peer_frames_played=rx.peer_frames_played,
            rtt_ms=rx.rtt_ms,
            jitter_ms=jitter_ms,
            late=late,
            jb_delay_ms=jb_delay,
            jb_target_ms=jb_target,
        )
        report = self._intervals.close(
            now,
            counters,
            muted=send.muted,
            peer_report=rx.peer_report,
            peer_report_at=rx.peer_report_at,
        )
        send.send_report(report.encode())

    # ------------------------------------------------------------------ statistics

    def stats(self) -> MediaStats:
        """A snapshot for the UI (call on the loop)."""
        now = self._clock()
        send, rx, intervals = self._send, self._rx, self._intervals
        with rx.lock:
            jb = rx.jb.stats
            jitter_ms, late = jb.jitter_ms, jb.late
            jb_delay, jb_target = jb.current_delay_ms, jb.target_delay_ms
            concealed = dict(jb.concealed)
            jb_dropped, jb_stretched = jb.dropped, jb.stretched
        counters = rx.counters
        peer = rx.peer_report
        fresh_peer = peer is not None and (
            now - rx.peer_report_at <= _REPORT_STALE_INTERVALS * self._report_interval_s
        )
        return MediaStats(
            rtt_ms=rx.rtt_ms,
            jitter_ms=jitter_ms,
            loss_percent=intervals.loss_percent,
            peer_loss_percent=peer.loss_percent if peer is not None else None,
            peer_jitter_ms=peer.jitter_us / 1000.0 if peer is not None else None,
            late_frames=late,
            jb_delay_ms=jb_delay,
            jb_target_ms=jb_target,
            send_kbps=intervals.send_kbps,
            receive_kbps=intervals.receive_kbps,
            mic_level=send.mic_level,
            remote_level=rx.remote_level,
            frames_sent=send.frames_sent,
            frames_send_failed=send.send_failed,
            frames_received=rx.frames_received,
            reports_sent=send.reports_sent,
            reports_received=rx.reports_received,
            auth_failed=counters.auth_failed,
            replayed=counters.replayed + counters.too_old,
            malformed=counters.malformed + rx.bad_payloads,
            concealed_redundancy=concealed[Concealment.REDUNDANCY],
            concealed_fec=concealed[Concealment.FEC],
            concealed_plc=concealed[Concealment.PLC],
            jb_dropped=jb_dropped,
            jb_stretched=jb_stretched,
            encoder_loss_percent=send.encoder_loss,
            muted=send.muted,
            connected=rx.connected,
            capturing=self.running and _recent(send.last_capture_at, now),
            sending=self.running and send.last_send_ok and _recent(send.last_send_ok_at, now),
            peer_receiving=fresh_peer and peer is not None and peer.has(ReportFlags.RECEIVING),
            peer_playing=fresh_peer and peer is not None and peer.has(ReportFlags.PLAYING),
            peer_muted=fresh_peer and peer is not None and peer.has(ReportFlags.MUTED),
            audio_problem=_device_problem(self._source, "microphone")
            or _device_problem(self._sink, "speaker"),
            history=intervals.history(),
        )

    def summary(self) -> str:
        """One line of the call's media counters (no keys, no audio): what the far end's
        audio went through here (jitter buffer) and how the audio ends kept time."""
        send, rx = self._send, self._rx
        with rx.lock:
            jb = rx.jb.stats
            concealed = dict(jb.concealed)
            played, late, lost = jb.played, jb.late, jb.lost
            dropped, stretched, resyncs = jb.dropped, jb.stretched, jb.resyncs
            target = jb.target_delay_ms
        parts = [
            f"media: sent {send.frames_sent} (failed {send.send_failed}), "
            f"received {rx.frames_received}, played {played}, late {late}, lost {lost}, "
            f"concealed {concealed[Concealment.REDUNDANCY]} by copy / "
            f"{concealed[Concealment.FEC]} by FEC / {concealed[Concealment.PLC]} by PLC, "
            f"buffer dropped {dropped} and stretched {stretched} frames, resyncs {resyncs}, "
            f"target {target:.0f} ms"
        ]
        for kind, end in (("source", self._source), ("sink", self._sink)):
            timing = getattr(end, "timing_summary", None)
            if callable(timing):
                with contextlib.suppress(Exception):  # bookkeeping never breaks a hang-up
                    text = timing()
                    if text:
                        parts.append(f"{kind}: {text}")
        return "; ".join(parts)

    def __repr__(self) -> str:  # never print keys
        state = "running" if self.running else "stopped" if self._stopped else "new"
        sent, received = self._send.frames_sent, self._rx.frames_received
        return f"MediaSession({state}, sent={sent}, received={received})"


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


def _recent(at: float | None, now: float) -> bool:
    return at is not None and now - at <= _FRESH_S

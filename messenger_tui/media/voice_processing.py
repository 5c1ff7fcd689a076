"""Echo cancellation, noise suppression and gain control on a call's capture path.

:class:`VoiceProcessor` takes each played frame (:meth:`~VoiceProcessor.played`: the far end's
audio as it went to the speaker, from the sink's ``pull``) and each captured frame
(:meth:`~VoiceProcessor.process`), both 20 ms of 48 kHz mono int16, and returns the captured
frame with the echo of the played audio removed, the background noise suppressed and the
level evened out. The engine is SpeexDSP (:mod:`messenger_tui.media.speex_dsp`).

Choices (measured in docs/performance.md, "Echo cancellation and noise suppression"):

- **At 16 kHz** (the call is wideband): the capture goes down and the output back up
  through :mod:`messenger_tui.media.voice_rate`, the reference is drawn at 16 kHz by the
  drift resampler. A third of the samples and of the taps: about a fifth of the cost at
  48 kHz; the output has nothing above ~7 kHz and comes ~2 ms later.
- **Frames of 10 ms, two per call frame.** SpeexDSP's filter adapts once per frame; 10 ms
  frames (160 samples at 16 kHz) converge faster than 20 ms ones (and keep the near end in
  double talk: 20 ms frames lost 6 dB of it).
- **A 160 ms filter** (2,560 taps at 16 kHz): a living room's echo tail (RT60 0.2-0.4 s;
  the tail below -30 dB matters little once the preprocessor suppresses the residual) plus
  the :data:`DELAY_MARGIN_MS` safety margin of the alignment below.
- **The delay is estimated, not assumed.** Played and captured audio are counted sample by
  sample from the start of the call, so with one duplex stream (one clock) the echo of played
  sample ``n`` reaches the microphone at captured sample ``n + d`` for a fixed device delay
  ``d``. :class:`~messenger_tui.media.echo_delay.DelayEstimator` finds ``d`` by
  cross-correlating the two signals' envelopes (2 ms blocks, mean removed, normalised) over
  the last few seconds, on both sides of the devices' timestamps; a reference delay line then
  hands the canceller the played audio from ``d - margin`` samples earlier, so the filter
  sees aligned signals and its taps cover the room.
- **Clock drift is followed.** Two clocks (separate devices, or PulseAudio's adaptive
  resampling in between) drift apart by tens of ppm, which the filter cannot track:
  :mod:`messenger_tui.media.echo_drift` measures the slide from the filter itself and
  :mod:`messenger_tui.media.echo_reference` resamples the reference by it.
- **Residual echo suppression**: the preprocessor is given the canceller's state
  (``SPEEX_PREPROCESS_SET_ECHO_STATE``) and removes what the linear filter left (soft clipping
  in a small loudspeaker is not linear).
- **The canceller's output is used only while it removes echo**
  (:mod:`messenger_tui.media.echo_gate`).
- **No allocation per frame**: the ring, the sub-frame buffers and the output are ctypes
  buffers created once; :meth:`~VoiceProcessor.process` returns a view of the output buffer.

Each stage is a setting (:class:`~messenger_tui.media.voice_settings.VoiceSettings`, with the
:class:`~messenger_tui.media.voice_settings.CaptureProcessor` protocol and the pass-through,
re-exported here): echo cancellation, noise suppression and gain control, all on by default.
Without libspeexdsp, :func:`open_voice_processor` returns a pass-through processor whose
:attr:`~PassThrough.status` says why.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Final

from messenger_tui.media.echo_delay import (
    MAX_AHEAD_MS,
    MAX_DELAY_MS,
    DelayEstimator,
)
from messenger_tui.media.echo_drift import DRIFT_EVERY_FRAMES, DriftTracker
from messenger_tui.media.echo_gate import EchoGate
from messenger_tui.media.echo_reference import ReferenceLine
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.speex_dsp import (
    SPEEX_PREPROCESS_SET_AGC,
    SPEEX_PREPROCESS_SET_AGC_INCREMENT,
    SPEEX_PREPROCESS_SET_AGC_MAX_GAIN,
    SPEEX_PREPROCESS_SET_AGC_TARGET,
    SPEEX_PREPROCESS_SET_DENOISE,
    SPEEX_PREPROCESS_SET_DEREVERB,
    SPEEX_PREPROCESS_SET_ECHO_SUPPRESS,
    SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE,
    SPEEX_PREPROCESS_SET_NOISE_SUPPRESS,
    EchoCanceller,
    Preprocessor,
    VoiceProcessingUnavailable,
)
from messenger_tui.media.voice_rate import (
    PROCESS_FRAME,
    PROCESS_RATE,
    PROCESS_SUBFRAME,
    RateBridge,
)
from messenger_tui.media.voice_settings import CaptureProcessor, PassThrough, VoiceSettings

__all__ = [
    "CaptureProcessor",
    "PassThrough",
    "VoiceProcessor",
    "VoiceSettings",
    "open_voice_processor",
]

log = logging.getLogger(__name__)

#: 10 ms at the call's rate (the preprocessor's delay, in 48 kHz samples).
SUBFRAME_SAMPLES: Final = SAMPLE_RATE // 100
SUBFRAMES: Final = PROCESS_FRAME // PROCESS_SUBFRAME
FILTER_MS: Final = 160
#: The reference is handed over this much earlier than the estimated delay, so a small
#: estimation error or drift never puts the echo before the reference (the filter cannot
#: cancel an echo that precedes its reference).
DELAY_MARGIN_MS: Final = 30
#: A new estimate moves the delay line only when the echo would fall outside the first
#: this-many ms of the filter (or before it): each move costs the filter its convergence, and
#: an echo anywhere in that stretch leaves the rest of the filter for the room's tail.
COVERED_MS: Final = 80
#: The gain control's gain is held (never raised) while the far end was heard within this
#: many frames and the canceller removes its echo (see VoiceProcessor._hold_gain) ...
AGC_HOLD_FRAMES: Final = 15
#: ... and may rise again at SpeexDSP's default pace (dB a second) after.
AGC_INCREMENT_DB: Final = 12
#: Until the echo is found, an estimate is tried this often (frames), not every 2 s.
RETRY_FRAMES: Final = 10
#: Timestamped frames: the offset between the played and the captured sample counts is the
#: median over this many frames (callbacks come with scheduling jitter) ...
OFFSET_FRAMES: Final = 50
#: ... and a new median replaces the one in use only when they differ by more than this
#: (a stream that started later, or lost frames to an overflow; clock drift is slower, and
#: the drift tracker follows it). Tried: 12 ms over 25 frames, to follow a single lost frame
#: (20 ms) at once, and following at once a step agreed on by 4 frames (held filter meanwhile,
#: or a sharp step only: a frame close to the offset, then four agreeing 15 ms away); under load
#: PulseAudio's timestamps also crept and jumped by 10-235 ms with the echo staying put, and
#: following them lost more runs than it saved (1 of 3 and 2 of 6 runs passed, against 4 of
#: 7 with these values: docs/performance.md).
OFFSET_SLACK_MS: Final = 30
#: An estimate is computed this many lags per captured frame (10 frames for the 500 ms
#: search: ~2 ms of CPU a frame instead of ~20 ms at once every few seconds).
ESTIMATE_LAGS_PER_FRAME: Final = 26


def open_voice_processor(settings: VoiceSettings | None = None) -> CaptureProcessor:
    """A :class:`VoiceProcessor` for ``settings``, or a :class:`PassThrough` saying why not."""
    settings = settings or VoiceSettings()
    if not (settings.echo_cancellation or settings.noise_suppression or settings.gain_control):
        return PassThrough("voice processing off (settings)")
    try:
        return VoiceProcessor(settings)
    except VoiceProcessingUnavailable as exc:
        return PassThrough(str(exc))


class VoiceProcessor:
    """SpeexDSP echo canceller + preprocessor for 20 ms frames of 48 kHz mono int16.

    Call :meth:`played` with every frame the sink plays, in order, and :meth:`process` with
    every captured frame, in order. Both count samples from the start; the estimated delay
    maps one count onto the other. The two may run on different threads (the sink's device
    thread and the event loop): a lock orders them.
    """

    def __init__(
        self,
        settings: VoiceSettings | None = None,
        *,
        estimate_every_s: float = 2.0,
        estimator: DelayEstimator | None = None,
    ) -> None:
        self.settings = settings = settings or VoiceSettings()
        rate = SAMPLE_RATE
        self._canceller: EchoCanceller | None = None
        if settings.echo_cancellation:
            self._canceller = EchoCanceller(
                PROCESS_SUBFRAME, PROCESS_RATE * FILTER_MS // 1000, PROCESS_RATE
            )
        self._preprocessor: Preprocessor | None = None
        if settings.noise_suppression or settings.gain_control or self._canceller:
            pre = Preprocessor(PROCESS_SUBFRAME, PROCESS_RATE)
            pre.set_int(SPEEX_PREPROCESS_SET_DENOISE, int(settings.noise_suppression))
            pre.set_int(SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, settings.noise_suppress_db)
            pre.set_int(SPEEX_PREPROCESS_SET_AGC, int(settings.gain_control))
            if settings.gain_control:
                pre.set_int(SPEEX_PREPROCESS_SET_AGC_TARGET, settings.agc_target)
                pre.set_int(SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, settings.agc_max_gain_db)
            pre.set_int(SPEEX_PREPROCESS_SET_DEREVERB, 0)
            if self._canceller is not None:
                # the echo state is attached while the canceller's output is used (_gate)
                pre.set_int(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, settings.echo_suppress_db)
                pre.set_int(
                    SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, settings.echo_suppress_active_db
                )
            self._preprocessor = pre
        # the played audio, as a ring of int16 samples indexed by the played-sample count
        self._ahead = MAX_AHEAD_MS * rate // 1000
        self._ring_samples = (
            (MAX_DELAY_MS + MAX_AHEAD_MS) * rate // 1000 // FRAME_SAMPLES + 4
        ) * FRAME_SAMPLES
        self._line = ReferenceLine(self._ring_samples, PROCESS_RATE)
        self._drift = (
            DriftTracker(self._canceller, PROCESS_FRAME) if self._canceller is not None else None
        )
        self._rate = RateBridge()
        self._frames_since_drift = 0
        self._far_hangover = 0
        self._gain_held = False
        self._far_frames = 0
        self._captured_count = 0
        # timestamps: the played count at the last played() and its time; the offset (in
        # samples) from a captured count to the played count of the same moment
        self._played_at: float | None = None
        self._offsets: list[int] = []
        self._offset = 0
        self._last_median = 0
        self._delay = settings.initial_delay_ms * rate // 1000
        #: Until a delay is set (an estimate), the reference is never ahead of the capture's
        #: moment: the margin applies only to a delay found
        self._delay_set = False
        #: Whether an estimate has found the echo (until then one is tried as soon as the
        #: history allows, not every few seconds)
        self._found = False
        self._margin = DELAY_MARGIN_MS * rate // 1000
        #: The reference's delay behind the captured audio in use (the delay line's, or less
        #: while the sink has not pulled that far)
        self._ref_delay = 0
        self._covered = COVERED_MS * rate // 1000
        # 48 kHz: the captured frame, the played one of the same count (the estimator's), the
        # output; PROCESS_RATE: the capture (near), the reference and the processed frame
        self._capture = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._same_time = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._same_time_address = ctypes.addressof(self._same_time)
        self._out = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._near = (ctypes.c_int16 * PROCESS_FRAME)()
        self._reference = (ctypes.c_int16 * PROCESS_FRAME)()
        self._processed = (ctypes.c_int16 * PROCESS_FRAME)()
        self._capture_address = ctypes.addressof(self._capture)
        self._near_address = ctypes.addressof(self._near)
        self._reference_address = ctypes.addressof(self._reference)
        self._processed_address = ctypes.addressof(self._processed)
        self._out_address = ctypes.addressof(self._out)
        self._out_view = memoryview(self._out).cast("B")
        self._near_samples = memoryview(self._near).cast("B").cast("h")
        self._reference_samples = memoryview(self._reference).cast("B").cast("h")
        self._processed_samples = memoryview(self._processed).cast("B").cast("h")
        #: The output's delay behind the capture (48 kHz samples): the resamplers' and the
        #: preprocessor's 10 ms frame.
        self.latency_samples = self._rate.latency + (SUBFRAME_SAMPLES if self._preprocessor else 0)
        self._echo_gate = EchoGate()
        self._estimator = estimator if estimator is not None else DelayEstimator()
        self._estimate_every = max(1, int(estimate_every_s * 1000) // 20)
        self._frames_since_estimate = 0
        self._estimating = False
        self._lock = threading.Lock()
        self.status = self._describe()

    def _describe(self) -> str:
        stages = [
            name
            for name, on in (
                ("echo cancellation", self._canceller is not None),
                ("noise suppression", self.settings.noise_suppression),
                ("gain control", self.settings.gain_control),
            )
            if on
        ]
        return "voice processing: " + ", ".join(stages) + " (SpeexDSP)"

    @property
    def delay_samples(self) -> int:
        """The delay the reference line applies now (the estimate, before the margin)."""
        return self._delay

    @property
    def offset_samples(self) -> int:
        """The played count minus the captured count of the same moment, as the devices'
        timestamps say (0 until timestamped frames arrive; see :meth:`_follow_timestamps`)."""
        return self._offset

    def set_delay(self, samples: int) -> None:
        """Align the reference to a delay of ``samples`` (clamped to what the ring holds)."""
        limit = self._ring_samples - 2 * FRAME_SAMPLES - self._ahead
        with self._lock:
            self._delay = max(-self._ahead, min(samples, limit))
            self._delay_set = True

    def played(self, frame: bytes, at: float | None = None) -> None:
        """The next frame the sink played (exactly :data:`FRAME_BYTES` bytes); ``at``: when
        its first sample plays (seconds, the same clock as :meth:`process`'s)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a played frame is {FRAME_BYTES} bytes of 16-bit mono PCM")
        with self._lock:
            self._line.write(frame)
            if at is not None:
                self._played_at = at

    def _follow_timestamps(self, at: float) -> None:
        """Map the captured count onto the played one by the devices' timestamps (under the
        lock): two streams start apart, and a stream that overflows loses frames, so equal
        counts are not the same moment. The played count at ``at`` is the last played
        frame's end, or earlier at :data:`SAMPLE_RATE` when ``at`` is before it."""
        played_at = self._played_at
        if played_at is None:
            return
        # the played sample at ``at`` (the last played frame started at ``played_at``), never
        # past that frame: the estimator compares with frames in the ring
        since = min(FRAME_SAMPLES, round((at - played_at) * SAMPLE_RATE))
        now_played = self._line.played_count - FRAME_SAMPLES + since
        sample = now_played - self._captured_count
        self._offsets.append(sample)
        if len(self._offsets) >= OFFSET_FRAMES:
            offsets = sorted(self._offsets)
            self._offsets.clear()
            median = offsets[len(offsets) // 2]
            self._last_median = median
            if abs(median - self._offset) > OFFSET_SLACK_MS * SAMPLE_RATE // 1000:
                self._move_offset(median)

    def _move_offset(self, offset: int) -> None:
        log.info("echo canceller: capture is %d ms behind playback", offset // 48)
        self._offset = offset
        self._estimator.reset()  # its history was aligned by the old offset
        self._found = False
        self._frames_since_estimate = 0
        self._estimating = False

    def _fill_reference(self) -> None:
        """Fill the reference with the played samples aligned with the captured frame,
        resampled for the clocks' drift (:mod:`messenger_tui.media.echo_reference`)."""
        # never past the newest played sample (a delay line set ahead of the timestamps,
        # before the sink has pulled that far)
        shift = self._delay - self._margin
        if not self._delay_set:
            shift = max(0, shift)
        first = min(
            self._captured_count + self._offset - shift,
            self._line.played_count - FRAME_SAMPLES,
        )
        if self._line.fill(first, self._reference_address) and self._drift is not None:
            self._drift.forget()
            self._frames_since_drift = 0
        self._ref_delay = self._captured_count + self._offset - first + self._line.lag

    def _follow_drift(self) -> None:
        """Every :data:`DRIFT_EVERY_FRAMES` frames in which the far end was mostly heard (the
        filter adapts only then), update the drift estimate from the filter and resample the
        reference by it."""
        self._frames_since_drift += 1
        self._far_frames += self._echo_gate.far_active
        if self._drift is None or self._frames_since_drift < DRIFT_EVERY_FRAMES:
            return
        frames, self._frames_since_drift = self._frames_since_drift, 0
        far, self._far_frames = self._far_frames, 0
        if 2 * far < frames:
            self._drift.forget()
            return
        if self._drift.update(frames):
            with self._lock:
                self._line.set_ppm(self._drift.ppm)

    def process(self, frame: bytes, at: float | None = None) -> memoryview:
        """The captured ``frame`` processed: a view of an internal buffer, valid until the
        next call (copy it to keep it). ``at``: when its first sample was captured (with the
        played frames' times, the two counts are aligned by time; without, by count)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a captured frame is {FRAME_BYTES} bytes of 16-bit mono PCM")
        ctypes.memmove(self._capture_address, frame, FRAME_BYTES)
        self._rate.down(self._capture_address, self._near_address)
        near, processed = self._near_address, self._processed_address
        canceller, pre = self._canceller, self._preprocessor
        if canceller is not None:
            with self._lock:
                if at is not None:
                    self._follow_timestamps(at)
                self._fill_reference()
                same_time = self._same_time_played()
            if same_time is not None:
                self._estimate_delay(same_time, frame)
            reference = self._reference_address
            for k in range(SUBFRAMES):
                offset = 2 * k * PROCESS_SUBFRAME
                canceller.cancel(near + offset, reference + offset, processed + offset)
            if not self._gate():
                ctypes.memmove(processed, near, 2 * PROCESS_FRAME)
            self._follow_drift()
        else:
            ctypes.memmove(processed, near, 2 * PROCESS_FRAME)
        if pre is not None:
            if canceller is not None and self.settings.gain_control:
                self._hold_gain(pre)
            for k in range(SUBFRAMES):
                pre.run(processed + 2 * k * PROCESS_SUBFRAME)
        self._rate.up(processed, self._out_address)
        self._captured_count += FRAME_SAMPLES
        return self._out_view

    def _hold_gain(self, pre: Preprocessor) -> None:
        """Keep the gain control from raising its gain while the capture is the far end's
        echo (the canceller removing it, the far end heard within :data:`AGC_HOLD_FRAMES`):
        it would raise the residual echo back toward its target level (measured through
        PulseAudio's loopback: the far end heard itself 18 dB lower instead of 34). Lowering
        the gain stays allowed."""
        gate = self._echo_gate
        if gate.far_active:
            self._far_hangover = AGC_HOLD_FRAMES
        elif self._far_hangover:
            self._far_hangover -= 1
        hold = gate.cancelling and self._far_hangover > 0
        if hold != self._gain_held:
            self._gain_held = hold
            pre.set_int(SPEEX_PREPROCESS_SET_AGC_INCREMENT, 0 if hold else AGC_INCREMENT_DB)

    @property
    def cancelling(self) -> bool:
        """Whether the canceller's output goes out now (:mod:`messenger_tui.media.echo_gate`)."""
        return self._echo_gate.cancelling

    def _gate(self) -> bool:
        """Whether the canceller's output (in the output buffer) replaces the capture
        (:mod:`messenger_tui.media.echo_gate`). The residual echo suppressor follows: it is
        given the canceller's state only then (its echo estimate is the filter's output, noise
        where there is no echo)."""
        gate = self._echo_gate
        if gate.update(self._reference_samples, self._near_samples, self._processed_samples):
            self._set_cancelling(gate.cancelling)
        return gate.cancelling

    def _set_cancelling(self, on: bool) -> None:
        if not on:
            self._found = False  # the echo may have moved: estimate again at once
        log.info("echo canceller: %s", "cancelling" if on else "no echo removed, bypassed")
        if self._preprocessor is not None:
            self._preprocessor.set_echo_state(self._canceller if on else None)

    def _same_time_played(self) -> bytes | None:
        """The played frame at the same count as the captured frame (no delay), copied (call
        under the lock); ``None`` when it is not in the ring."""
        start = self._captured_count + self._offset
        played_count = self._line.played_count
        if (
            start < 0
            or start + FRAME_SAMPLES > played_count
            or start < (played_count - self._ring_samples)
        ):
            return None
        # (a copy: the frame may wrap around the end of the ring)
        self._line.copy(start, self._same_time_address, FRAME_SAMPLES)
        return bytes(self._same_time)

    def _estimate_delay(self, same_time: bytes, frame: bytes) -> None:
        """Feed the estimator the played audio at the same count as ``frame``, and every few
        seconds re-align the delay line to its estimate, computed a slice of lags per frame
        (:data:`ESTIMATE_LAGS_PER_FRAME`) outside the lock: the sink's device thread must
        not wait for it."""
        self._estimator.add(same_time, frame)
        self._frames_since_estimate += 1
        if self._estimating:
            if not self._estimator.step(ESTIMATE_LAGS_PER_FRAME):
                return
            self._estimating = False
            estimate = self._estimator.result
            log.debug(
                "echo canceller: echo delay %s (correlation %.2f), timestamps say capture is "
                "%d ms behind (offset in use %d ms), reference %.1f ms behind (%d restarts), "
                "drift %.1f ppm, canceller %.1f dB, %s",
                "?" if estimate is None else f"{estimate / 48:.1f} ms",
                self._estimator.last_correlation,
                self._last_median // 48,
                self._offset // 48,
                self._ref_delay / 48,
                self._line.restarts,
                self._line.ppm,
                self._echo_gate.removed_db,
                "cancelling" if self._echo_gate.cancelling else "bypassed",
            )
            if estimate is None:
                self._found = False  # (also when a search around it missed: all again)
            else:
                self._found = True
                lead = estimate - self._ref_delay
                if not self._margin // 3 <= lead <= self._covered:
                    log.info(
                        "echo canceller: echo delay %d ms (correlation %.2f)",
                        estimate // 48,
                        self._estimator.last_correlation,
                    )
                    self.set_delay(estimate)
        elif self._frames_since_estimate >= (self._estimate_every if self._found else RETRY_FRAMES):
            self._frames_since_estimate = 0
            # once the echo is found, the next estimates look around it only (a collapse or
            # a timestamp move clears _found: the whole range again)
            around = self._estimator.result if self._found else None
            self._estimating = self._estimator.begin(around)

    def close(self) -> None:
        if self._canceller is not None:
            result = self._estimator.result
            log.info(
                "echo canceller: at the end, echo delay %s, reference %.1f ms behind, drift "
                "%.1f ppm, canceller removing %.1f dB (%s)",
                "?" if result is None else f"{result / 48:.1f} ms",
                self._ref_delay / 48,
                self._line.ppm,
                self._echo_gate.removed_db,
                "cancelling" if self._echo_gate.cancelling else "bypassed",
            )
        self._line.close()
        self._rate.close()
        if self._preprocessor is not None:
            self._preprocessor.close()
        if self._canceller is not None:
            self._canceller.close()

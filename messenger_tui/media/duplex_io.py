"""One duplex PortAudio stream for a call's microphone and speaker: one clock for both.

The echo canceller (:mod:`messenger_tui.media.voice_processing`) maps each played sample to
the captured sample its echo lands in by counting samples on both sides. With one duplex
stream the two counts advance together, block by block, in the same callback: the device
delay between them stays fixed for the whole call. Two separate streams (two devices, or a
host that cannot open them together) each run on their own clock and drift apart by tens of
ppm; the processor then follows the drift with its periodic delay estimate.

:class:`DuplexDevice` gives a :class:`~messenger_tui.media.ports.AudioSource` face
(:attr:`~DuplexDevice.source`) and an :class:`~messenger_tui.media.ports.AudioSink` face
(:attr:`~DuplexDevice.sink`) of one stream. The media session starts the sink first (it only
records ``pull``), then the source, whose start opens the stream; stopping either face closes
it. When PortAudio refuses the duplex stream (the microphone and the speaker on different host
APIs, or a device that cannot do both at this rate), the device falls back to two separate
streams (:class:`~messenger_tui.media.audio_io.DeviceSource` and
:class:`~messenger_tui.media.audio_io.DeviceSink`) and says so in :attr:`DuplexDevice.mode`.

Per callback the stream plays ``pull()`` and hands the captured block to ``on_frame`` (both
exactly one 20 ms frame: the stream is opened with that block size; other sizes are
re-blocked). The device's own timing gives the echo delay's first estimate
(:meth:`DuplexDevice.echo_delay_hint_s`): the mean over callbacks of the output block's DAC
time minus the input block's ADC time, or, when the host reports no timestamps, the stream's
input plus output latency.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from messenger_tui.media.audio_io import (
    DeviceSink,
    DeviceSource,
    _DeviceStream,
    _explain,
    _sounddevice,
    resolve_device,
)
from messenger_tui.media.ports import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, AudioUnavailable

log = logging.getLogger(__name__)

#: Callbacks whose timestamps go into the delay hint (the first second).
_TIMING_CALLBACKS = 50


class DuplexDevice(_DeviceStream):
    """A microphone and a speaker on one PortAudio stream (see the module doc)."""

    direction = "input"  # for error messages: the stream is opened by the source's start

    def __init__(
        self,
        microphone: str | None = None,
        speaker: str | None = None,
        *,
        latency: str | float = "low",
    ) -> None:
        super().__init__(microphone, latency=latency)
        self.speaker = speaker
        self._pull: Callable[[], bytes] | None = None
        self._on_frame: Callable[[bytes], None] | None = None
        self._in_carry = bytearray()
        self._out_carry = bytearray()
        self._fallback: tuple[DeviceSource, DeviceSink] | None = None
        self._start_lock = threading.Lock()
        self._timing_sum = 0.0
        self._timing_count = 0
        self._latency_hint = 0.0
        #: "duplex" (one stream, one clock), "separate" (the fallback), or "" before start.
        self.mode = ""
        self.source = _SourceFace(self)
        self.sink = _SinkFace(self)

    # -- the faces' calls

    def _set_pull(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull

    def _start(self, on_frame: Callable[[bytes], None]) -> None:
        with self._start_lock:
            if self._running or self._fallback is not None:
                raise RuntimeError("DuplexDevice already started")
            pull = self._pull
            if pull is None:
                raise RuntimeError("start the sink face before the source face")
            self._on_frame = on_frame
            try:
                self._start_stream(self._callback)
                self.mode = "duplex"
                return
            except AudioUnavailable as exc:
                why = exc.reason
            sink, source = DeviceSink(self.speaker), DeviceSource(self.requested)
            sink.start(pull)
            try:
                source.start(on_frame)
            except BaseException:
                sink.stop()
                raise
            self._fallback = (source, sink)
            self.mode = "separate"
            log.info("no duplex audio stream (%s): microphone and speaker run apart", why)

    def _open(self, sd: Any, index: int, callback: Callable[..., None]) -> Any:
        out_index, _ = resolve_device(self.speaker, "output")
        stream = sd.RawStream(
            samplerate=SAMPLE_RATE,
            blocksize=FRAME_SAMPLES,
            device=(index, out_index),
            channels=1,
            dtype="int16",
            latency=self.latency,
            callback=callback,
            finished_callback=self._finished,
        )
        self._latency_hint = float(sum(stream.latency))
        return stream

    def _start_stream(self, callback: Callable[..., None]) -> None:
        # the base class stores a float latency; a duplex stream reports (input, output)
        sd = _sounddevice()
        index, name = resolve_device(self.requested, "input")
        from messenger_tui.media.audio_io import DeviceStats, _open_lock, _open_streams

        self._stats = DeviceStats(device=name)
        try:
            stream = self._open(sd, index, callback)
        except AudioUnavailable:
            raise
        except Exception as exc:  # PortAudioError, or ValueError for bad settings
            raise _explain(exc, "input", name) from exc
        self._stats.latency_s = self._latency_hint
        self._stream = stream
        self._running = True
        with _open_lock:
            _open_streams.add(self)
        try:
            stream.start()
        except Exception as exc:
            self._close()
            raise _explain(exc, "input", name) from exc

    def stop(self) -> None:
        """Close the stream (or the two fallback streams). Idempotent."""
        with self._start_lock:
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            for end in fallback:
                end.stop()
        self._close()

    # -- the device

    def echo_delay_hint_s(self) -> float | None:
        """The device's own estimate of the delay from a played sample to the captured one
        (None when it has none)."""
        if self._fallback is not None:
            return None
        if self._timing_count:
            mean = self._timing_sum / self._timing_count
            if 0.0 < mean < 1.0:
                return mean
        return self._latency_hint or None

    def stats(self) -> Any:
        fallback = self._fallback
        if fallback is not None:
            return fallback[0].stats()
        return super().stats()

    def _callback(
        self, indata: Any, outdata: Any, frames: int, time_info: Any, status: Any
    ) -> None:
        with self._lock:
            self._stats.callbacks += 1
            self._count_status(status)
        pull, on_frame = self._pull, self._on_frame
        need = len(outdata)
        if not self._running or pull is None or on_frame is None:
            outdata[:] = bytes(need)
            return
        if self._timing_count < _TIMING_CALLBACKS:
            try:
                delay = float(time_info.outputBufferDacTime) - float(time_info.inputBufferAdcTime)
            except (AttributeError, TypeError, ValueError):
                delay = 0.0
            if 0.0 < delay < 1.0:
                self._timing_sum += delay
                self._timing_count += 1
        # play: the carry holds what a host with another block size has not taken yet
        while len(self._out_carry) < need:
            self._out_carry += self._next_frame(pull)
        outdata[:] = bytes(self._out_carry[:need])
        del self._out_carry[:need]
        # capture
        data = bytes(indata)
        if len(data) == FRAME_BYTES and not self._in_carry:
            chunks = [data]
        else:
            self._in_carry += data
            chunks = []
            while len(self._in_carry) >= FRAME_BYTES:
                chunks.append(bytes(self._in_carry[:FRAME_BYTES]))
                del self._in_carry[:FRAME_BYTES]
        for chunk in chunks:
            try:
                on_frame(chunk)
            except Exception as exc:  # never let the device thread die
                with self._lock:
                    self._note_error(exc)
            else:
                with self._lock:
                    self._stats.frames += 1

    def _next_frame(self, pull: Callable[[], bytes]) -> bytes:
        try:
            frame = pull()
        except Exception as exc:
            with self._lock:
                self._note_error(exc)
            return bytes(FRAME_BYTES)
        if len(frame) != FRAME_BYTES:
            with self._lock:
                self._stats.bad_pulls += 1
            frame = bytes(frame[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
        return frame


class _SourceFace:
    """The microphone side of a :class:`DuplexDevice` (an ``AudioSource``)."""

    opens_slowly = True
    #: A microphone in a room: its capture may hold the echo of the speaker.
    acoustic = True

    def __init__(self, device: DuplexDevice) -> None:
        self.device = device

    @property
    def requested(self) -> str | None:
        """The microphone asked for (None: the system default)."""
        return self.device.requested

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self.device._start(on_frame)

    def stop(self) -> None:
        self.device.stop()

    def stats(self) -> Any:
        return self.device.stats()


class _SinkFace:
    """The speaker side of a :class:`DuplexDevice` (an ``AudioSink``): its start records
    ``pull``; the stream opens with the source."""

    opens_slowly = True

    def __init__(self, device: DuplexDevice) -> None:
        self.device = device

    @property
    def requested(self) -> str | None:
        """The speaker asked for (None: the system default)."""
        return self.device.speaker

    def start(self, pull: Callable[[], bytes]) -> None:
        self.device._set_pull(pull)

    def stop(self) -> None:
        self.device.stop()

    def echo_delay_hint_s(self) -> float | None:
        return self.device.echo_delay_hint_s()

    def stats(self) -> Any:
        fallback = self.device._fallback
        if fallback is not None:
            return fallback[1].stats()
        return self.device.stats()

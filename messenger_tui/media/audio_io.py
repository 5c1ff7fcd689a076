"""Audio devices through PortAudio (sounddevice). The only module that imports sounddevice.

* :class:`DeviceSource` / :class:`DeviceSink` are the real-device
  :class:`~messenger_tui.media.ports.AudioSource` / :class:`~messenger_tui.media.ports.AudioSink`:
  48 kHz mono int16 in 20 ms blocks (960 samples), low latency, driven by PortAudio's callback
  thread. The input callback copies each frame (PortAudio reuses its buffer) and hands it to
  ``on_frame`` without blocking; the output callback calls ``pull()`` and writes exactly what
  the host asks for (a small carry buffer absorbs hosts that use other block sizes).
* :func:`list_devices` names the inputs and outputs; :func:`refresh_devices` re-scans them
  (PortAudio enumerates devices once, when it initialises).
* The settings mic test's :class:`~messenger_tui.media.audio_check.LevelMonitor` and the
  doctor's probes are in :mod:`messenger_tui.media.audio_check`.

Devices are chosen by name: an exact match first, then a case-insensitive substring; ``None``
is the system default. Every failure (PortAudio missing, no such device, device busy, an
unsupported rate, a stream error) raises :class:`~messenger_tui.media.ports.AudioUnavailable`
with a human reason and, where there is one, a fix; chat never depends on any of it.

``sounddevice`` is imported lazily, on first use, so a machine without PortAudio imports this
module (and the whole app) fine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from messenger_tui.media.ports import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioUnavailable,
)

Direction = Literal["input", "output"]

_FIX_PORTAUDIO = "install it: sudo apt-get install libportaudio2 (make setup does)"
FIX_HEADLESS = (
    "connect a device, or on a headless machine start PulseAudio "
    "(`pulseaudio --start`) and install libasound2-plugins so PortAudio sees 'pulse'"
)

# Streams this process has open (PortAudio must not be re-initialised under them).
_open_lock = threading.Lock()
_open_streams: set[object] = set()


# --------------------------------------------------------------------------- PortAudio access


def _sounddevice() -> Any:
    """Import sounddevice (which loads PortAudio), or raise :class:`AudioUnavailable`."""
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise AudioUnavailable(f"PortAudio is not installed ({exc})", _FIX_PORTAUDIO) from exc
    except ImportError as exc:
        raise AudioUnavailable(
            f"the sounddevice package is missing ({exc})", "run make setup"
        ) from exc
    return sounddevice


def _query_devices(sd: Any) -> list[dict[str, Any]]:
    try:
        return [dict(d) for d in sd.query_devices()]
    except Exception as exc:  # PortAudio can fail in many host-specific ways
        raise AudioUnavailable(f"PortAudio could not list devices ({exc})", None) from exc


def list_devices() -> tuple[list[str], list[str]]:
    """Names of the input devices and of the output devices PortAudio sees (either may be
    empty). Raises :class:`AudioUnavailable` only when PortAudio itself is unusable."""
    devices = _query_devices(_sounddevice())
    inputs = [str(d["name"]) for d in devices if int(d["max_input_channels"]) > 0]
    outputs = [str(d["name"]) for d in devices if int(d["max_output_channels"]) > 0]
    return inputs, outputs


def refresh_devices() -> None:
    """Re-scan devices (PortAudio lists them once, when it initialises): after plugging in a
    headset, or once a sound server has started. Only possible while this process has no
    stream open; raises :class:`AudioUnavailable` otherwise."""
    sd = _sounddevice()
    with _open_lock:
        if _open_streams:
            raise AudioUnavailable(
                "cannot re-scan audio devices while a call or mic test is using one",
                "end the call or the mic test first",
            )
        try:
            sd._terminate()
            sd._initialize()
        except Exception as exc:
            raise AudioUnavailable(f"PortAudio could not re-scan devices ({exc})", None) from exc


def _kind(direction: Direction) -> str:
    return "microphone" if direction == "input" else "speaker"


def resolve_device(name: str | None, direction: Direction) -> tuple[int, str]:
    """The PortAudio index and name of the device called ``name`` (exact name first, then a
    case-insensitive substring; ``None`` is the default device) that can ``direction``."""
    sd = _sounddevice()
    devices = _query_devices(sd)
    channels_key = "max_input_channels" if direction == "input" else "max_output_channels"
    usable = [(i, d) for i, d in enumerate(devices) if int(d[channels_key]) > 0]
    kind = _kind(direction)
    if not usable:
        raise AudioUnavailable(
            f"no {kind} device found; calls are unavailable (chat works)", FIX_HEADLESS
        )
    if name is None:
        try:
            index = int(sd.default.device[0 if direction == "input" else 1])
        except Exception:  # sounddevice raises on some hosts when there is no default
            index = -1
        if 0 <= index < len(devices) and int(devices[index][channels_key]) > 0:
            return index, str(devices[index]["name"])
        index, info = usable[0]  # no usable default: the first device that can do it
        return index, str(info["name"])
    for index, info in usable:
        if str(info["name"]) == name:
            return index, name
    wanted = name.casefold()
    for index, info in usable:
        if wanted in str(info["name"]).casefold():
            return index, str(info["name"])
    names = ", ".join(repr(str(d["name"])) for _, d in usable)
    raise AudioUnavailable(
        f"no {kind} called {name!r} (available: {names})",
        "pick another device in settings, or connect that one",
    )


def _explain(exc: BaseException, direction: Direction, device: str) -> AudioUnavailable:
    """A PortAudio error as a reason a person can act on."""
    text = str(exc)
    kind = _kind(direction)
    lowered = text.lower()
    if "sample rate" in lowered or "-9997" in text:
        return AudioUnavailable(
            f"the {kind} {device!r} does not support {SAMPLE_RATE} Hz mono ({text})",
            "pick another device, or use 'pulse'/'default', which resample",
        )
    if "unavailable" in lowered or "busy" in lowered or "-9985" in text:
        return AudioUnavailable(
            f"the {kind} {device!r} is busy or unavailable ({text})",
            "close the program using it, or pick 'pulse'/'default' to share it",
        )
    if "channel" in lowered or "-9998" in text:
        return AudioUnavailable(
            f"the {kind} {device!r} cannot {'record' if direction == 'input' else 'play'} "
            f"mono audio ({text})",
            "pick another device",
        )
    return AudioUnavailable(f"the {kind} {device!r} could not be opened ({text})", None)


# --------------------------------------------------------------------------- streams


@dataclass
class DeviceStats:
    """Counters of one device stream, for the call's statistics view.

    ``xruns`` counts callbacks whose status reported an overflow (input: audio was lost
    because the callback ran late) or an underflow (output: the device played a gap)."""

    device: str = ""
    frames: int = 0
    callbacks: int = 0
    xruns: int = 0
    status_flags: dict[str, int] = field(default_factory=dict)
    callback_errors: int = 0
    last_error: str | None = None
    #: Frames ``pull`` returned at the wrong size (padded or trimmed); sinks only.
    bad_pulls: int = 0
    #: Latency PortAudio reports for the stream, in seconds.
    latency_s: float = 0.0
    #: PortAudio's estimate of the callback's share of its time budget (0..1).
    cpu_load: float = 0.0
    #: The stream ended without :meth:`stop` (the device went away, or a host error).
    device_lost: bool = False


def _device_ahead(time_info: Any, output: bool) -> float:
    """How far the block's DAC time is ahead of now (output), or its ADC time behind
    (input), in seconds, from PortAudio's timestamps; 0 when the host gives none."""
    try:
        now = float(time_info.currentTime)
        at = float(time_info.outputBufferDacTime if output else time_info.inputBufferAdcTime)
    except (AttributeError, TypeError, ValueError):
        return 0.0
    ahead = at - now if output else now - at
    return ahead if now > 0.0 and 0.0 <= ahead < 2.0 else 0.0


_XRUN_FLAGS = ("input_overflow", "output_underflow")
_OTHER_FLAGS = ("input_underflow", "output_overflow", "priming_output")


class _DeviceStream:
    direction: Direction
    #: start() blocks (loads PortAudio, lists devices, opens the stream): the media session
    #: runs it on a worker thread (MediaSession.start_async).
    opens_slowly = True

    def __init__(self, device: str | None = None, *, latency: str | float = "low") -> None:
        self.requested = device
        self.latency = latency
        self._stream: Any = None
        self._lock = threading.Lock()
        self._running = False
        self._stats = DeviceStats()

    @property
    def device_name(self) -> str | None:
        """The PortAudio name of the open device (None before :meth:`start`)."""
        return self._stats.device or None

    @property
    def running(self) -> bool:
        return self._running

    def stats(self) -> DeviceStats:
        """A snapshot of the counters (safe from any thread)."""
        with self._lock:
            snap = DeviceStats(**{**self._stats.__dict__})
            snap.status_flags = dict(self._stats.status_flags)
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # the stream may close under us
                snap.cpu_load = float(stream.cpu_load)
        return snap

    def _count_status(self, status: Any) -> None:
        if not status:
            return
        for flag in (*_XRUN_FLAGS, *_OTHER_FLAGS):
            if getattr(status, flag, False):
                self._stats.status_flags[flag] = self._stats.status_flags.get(flag, 0) + 1
                if flag in _XRUN_FLAGS:
                    self._stats.xruns += 1

    def _note_error(self, exc: BaseException) -> None:
        self._stats.callback_errors += 1
        self._stats.last_error = f"{type(exc).__name__}: {exc}"

    def _open(self, sd: Any, index: int, callback: Callable[..., None]) -> Any:
        cls = sd.RawInputStream if self.direction == "input" else sd.RawOutputStream
        return cls(
            samplerate=SAMPLE_RATE,
            blocksize=FRAME_SAMPLES,
            device=index,
            channels=1,
            dtype="int16",
            latency=self.latency,
            callback=callback,
            finished_callback=self._finished,
        )

    def _finished(self) -> None:
        # PortAudio calls this when the stream stops, ours or not.
        if self._running:
            with self._lock:
                self._stats.device_lost = True
                self._stats.last_error = f"the {_kind(self.direction)} stopped unexpectedly"

    def _start_stream(self, callback: Callable[..., None]) -> None:
        if self._running:
            raise RuntimeError(f"{type(self).__name__} already started")
        sd = _sounddevice()
        index, name = resolve_device(self.requested, self.direction)
        self._stats = DeviceStats(device=name)
        try:
            stream = self._open(sd, index, callback)
        except Exception as exc:  # PortAudioError, or ValueError for bad settings
            raise _explain(exc, self.direction, name) from exc
        self._stats.latency_s = float(stream.latency)
        self._stream = stream
        self._running = True
        with _open_lock:
            _open_streams.add(self)
        try:
            stream.start()
        except Exception as exc:
            self._close()
            raise _explain(exc, self.direction, name) from exc

    def _close(self) -> None:
        self._running = False
        stream, self._stream = self._stream, None
        if stream is not None:
            # stop() waits for a running callback, and none follows. Either call may fail
            # when the device went away; the stream is gone either way.
            with contextlib.suppress(Exception):
                stream.stop()
            with contextlib.suppress(Exception):
                stream.close()
        with _open_lock:
            _open_streams.discard(self)

    def stop(self) -> None:
        """Stop the stream; no callback into the caller follows once this returns.
        Idempotent."""
        self._close()

    @property
    def stream_active(self) -> bool:
        """True while PortAudio is running the stream (False after a fatal device error)."""
        stream = self._stream
        return bool(stream is not None and stream.active)


class DeviceSource(_DeviceStream):
    """A microphone: :class:`~messenger_tui.media.ports.AudioSource` on a PortAudio input.

    ``on_frame`` runs on PortAudio's callback thread with a fresh ``bytes`` object of
    :data:`FRAME_BYTES`; it must not block (hand it on with ``loop.call_soon_threadsafe``).
    An exception from it is counted in :meth:`stats` and the stream goes on."""

    direction: Direction = "input"
    #: A microphone in a room: its capture may hold the speaker's echo (ports.AudioSource).
    acoustic = True

    def __init__(self, device: str | None = None, *, latency: str | float = "low") -> None:
        super().__init__(device, latency=latency)
        self._on_frame: Callable[[bytes], None] | None = None
        self._carry = bytearray()
        #: When the frame being handed to ``on_frame`` was captured (``time.monotonic``,
        #: from PortAudio's ADC timestamp), read by the echo canceller during the call.
        self.capture_time: float | None = None

    def start(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame
        self._carry = bytearray()
        self._start_stream(self._callback)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        on_frame = self._on_frame
        with self._lock:
            self._stats.callbacks += 1
            self._count_status(status)
        if not self._running or on_frame is None:
            return
        data = bytes(indata)  # copy: PortAudio reuses the buffer after we return
        self.capture_time = time.monotonic() - _device_ahead(time_info, False)
        if len(data) == FRAME_BYTES and not self._carry:
            chunks = [data]
        else:  # the host chose another block size: re-block into 20 ms frames
            self._carry += data
            chunks = []
            while len(self._carry) >= FRAME_BYTES:
                chunks.append(bytes(self._carry[:FRAME_BYTES]))
                del self._carry[:FRAME_BYTES]
        for chunk in chunks:
            try:
                on_frame(chunk)
            except Exception as exc:  # never let the device thread die
                with self._lock:
                    self._note_error(exc)
            else:
                with self._lock:
                    self._stats.frames += 1


class DeviceSink(_DeviceStream):
    """A speaker: :class:`~messenger_tui.media.ports.AudioSink` on a PortAudio output.

    ``pull`` runs on PortAudio's callback thread once per 20 ms of the device's clock and
    must return :data:`FRAME_BYTES` at once. A frame of another size is padded with silence
    or trimmed (and counted); an exception from ``pull`` plays silence (and is counted)."""

    direction: Direction = "output"

    def __init__(self, device: str | None = None, *, latency: str | float = "low") -> None:
        super().__init__(device, latency=latency)
        self._pull: Callable[[], bytes] | None = None
        self._carry = bytearray()
        #: When the frame ``pull`` is about to return will be played (``time.monotonic``,
        #: from PortAudio's DAC timestamp), read by the echo canceller during the pull.
        self.play_time: float | None = None

    def start(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._carry = bytearray()
        self._start_stream(self._callback)

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
        with self._lock:
            self._stats.frames += 1
        return frame

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        pull = self._pull
        need = len(outdata)
        with self._lock:
            self._stats.callbacks += 1
            self._count_status(status)
        if not self._running or pull is None:
            outdata[:] = bytes(need)
            return
        # the carry's bytes play first; a pulled frame plays after them
        carried = len(self._carry) / (2 * SAMPLE_RATE)
        self.play_time = time.monotonic() + _device_ahead(time_info, True) + carried
        if need == FRAME_BYTES and not self._carry:
            outdata[:] = self._next_frame(pull)
            return
        while len(self._carry) < need:  # the host asks for another size: carry the rest
            self._carry += self._next_frame(pull)
        outdata[:] = bytes(self._carry[:need])
        del self._carry[:need]

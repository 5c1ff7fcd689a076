"""Checking audio without a call: the settings screen's mic test and the doctor's probes.

* :class:`LevelMonitor` opens an input (a :class:`~messenger_tui.media.audio_io.DeviceSource`)
  and reports its live level (the settings mic test).
* :func:`probe_audio` / :func:`probe_opus` answer "can this machine do calls?" without ever
  raising (``messenger-tui doctor``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from messenger_tui.media.audio_io import FIX_HEADLESS, DeviceSource, DeviceStats, list_devices
from messenger_tui.media.levels import frame_level
from messenger_tui.media.ports import FRAME_MS, AudioUnavailable


class LevelMonitor:
    """The live level of an input device, for the settings screen's mic test.

    ``on_level`` gets a 0..1 level (RMS, as :func:`~messenger_tui.media.levels.frame_level`;
    the loudest frame of each ``interval_ms``) on PortAudio's callback thread; it must not
    block. :attr:`level` holds the latest value for callers that poll instead."""

    def __init__(
        self,
        device: str | None,
        on_level: Callable[[float], None],
        *,
        interval_ms: int = FRAME_MS,
    ) -> None:
        self.device = device
        self.on_level = on_level
        self._every = max(1, interval_ms // FRAME_MS)
        self._source = DeviceSource(device)
        self._count = 0
        self._loudest = 0.0
        self.level = 0.0

    @property
    def device_name(self) -> str | None:
        return self._source.device_name

    @property
    def running(self) -> bool:
        return self._source.running

    def stats(self) -> DeviceStats:
        return self._source.stats()

    def start(self) -> None:
        """Open the device and start reporting; raises :class:`AudioUnavailable`."""
        self._count = 0
        self._loudest = 0.0
        self._source.start(self._on_frame)

    def stop(self) -> None:
        """Stop; no ``on_level`` call follows once this returns. Idempotent."""
        self._source.stop()

    def _on_frame(self, frame: bytes) -> None:
        self._loudest = max(self._loudest, frame_level(frame))
        self._count += 1
        if self._count >= self._every:
            level, self._loudest, self._count = self._loudest, 0.0, 0
            self.level = level
            self.on_level(level)


@dataclass(frozen=True)
class AudioProbe:
    available: bool
    reason: str | None = None
    fix: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def probe_audio() -> AudioProbe:
    """List input and output devices; explain what is missing and how to fix it."""
    try:
        inputs, outputs = list_devices()
    except AudioUnavailable as exc:
        return AudioProbe(False, exc.reason, exc.fix)
    if not inputs or not outputs:
        missing = "microphone" if not inputs else "speaker"
        return AudioProbe(
            False,
            f"no {missing} device found; calls are unavailable (chat works)",
            FIX_HEADLESS,
            inputs,
            outputs,
        )
    return AudioProbe(True, None, None, inputs, outputs)


def probe_opus() -> AudioProbe:
    """Check that libopus loads (the codec of calls), the same way the codec loads it."""
    from messenger_tui.media.codec import CodecUnavailable, load_opus

    try:
        load_opus()
    except CodecUnavailable as exc:
        return AudioProbe(False, exc.reason, exc.fix)
    return AudioProbe(True)

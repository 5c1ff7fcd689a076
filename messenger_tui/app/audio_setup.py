"""Call audio devices on the app side: choosing them, listing them, the settings' mic test.

PortAudio is imported only when one of these runs (the CLI's chat commands never load it).
Devices are chosen by name in the settings (``microphone``, ``speaker``; "" = the system
default); :func:`check_devices` says before a call rings that one is missing, instead of a
call that fails once answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from messenger_tui.app.errors import AudioProblem
from messenger_tui.app.models import AudioDevices, Settings
from messenger_tui.media.ports import AudioSink, AudioSource, AudioUnavailable

if TYPE_CHECKING:
    from messenger_tui.media.audio_check import LevelMonitor

#: How often the settings' mic test reports the microphone's level.
MIC_TEST_INTERVAL_MS = 100


def device_audio(
    microphone: str | None = None, speaker: str | None = None
) -> tuple[AudioSource, AudioSink]:
    """The microphone and speaker called so (PortAudio names; None: the system default).

    Two streams, not one duplex stream: PortAudio's ALSA duplex stream on the ``pulse``
    device delivered no callback at all, or stopped at its first underrun, here (PulseAudio
    16, PortAudio 19.6). The echo canceller aligns the two by the times the device threads
    hand over each frame (:meth:`~messenger_tui.media.voice_processing.VoiceProcessor.process`).
    """
    from messenger_tui.media.audio_io import DeviceSink, DeviceSource

    return DeviceSource(microphone), DeviceSink(speaker)


def settings_audio(settings: Settings) -> tuple[AudioSource, AudioSink]:
    """The microphone and speaker the settings name (the system's defaults if none)."""
    return device_audio(settings.microphone or None, settings.speaker or None)


def check_devices(settings: Settings) -> None:
    """:class:`AudioProblem` if the microphone or speaker the settings name is missing."""
    from messenger_tui.media.audio_io import resolve_device

    try:
        resolve_device(settings.microphone or None, "input")
        resolve_device(settings.speaker or None, "output")
    except AudioUnavailable as exc:
        raise AudioProblem(exc.reason, exc.fix) from None


async def scan_devices(*, rescan: bool = False) -> AudioDevices:
    """The input and output devices PortAudio reports, or why there are none (never
    raises). ``rescan``: look again first (a headset plugged in since the start; not
    possible while a call or a mic test has a device open, then the last list is used)."""
    from messenger_tui.media.audio_io import list_devices, refresh_devices

    def scan() -> AudioDevices:
        try:
            if rescan:
                with contextlib.suppress(AudioUnavailable):
                    refresh_devices()
            inputs, outputs = list_devices()
        except AudioUnavailable as exc:
            return AudioDevices(problem=exc.reason, fix=exc.fix)
        problem = fix = None
        if not inputs or not outputs:
            missing = "microphone" if not inputs else "speaker"
            problem = f"no {missing} device found; calls have no audio (chat works)"
            fix = "connect one, or start a sound server (PulseAudio, PipeWire)"
        return AudioDevices(tuple(inputs), tuple(outputs), problem, fix)

    return await asyncio.to_thread(scan)


async def start_mic_test(device: str | None, on_level: Callable[[float], None]) -> MicLevelTest:
    """Open the microphone ``device`` (None: the system default) and report its level
    (0..1, about ten times a second) to ``on_level``, which runs on the device's thread
    and must not block. :class:`AudioProblem` when it cannot be opened. Stop it with
    the returned handle's ``stop()``."""
    from messenger_tui.media.audio_check import LevelMonitor

    monitor = LevelMonitor(device, on_level, interval_ms=MIC_TEST_INTERVAL_MS)
    try:
        await asyncio.to_thread(monitor.start)
    except AudioUnavailable as exc:
        raise AudioProblem(exc.reason, exc.fix) from None
    return MicLevelTest(monitor)


class MicLevelTest:
    """A running settings mic test (:func:`start_mic_test`)."""

    def __init__(self, monitor: LevelMonitor) -> None:
        self._monitor = monitor

    @property
    def device(self) -> str | None:
        """The PortAudio name of the open microphone."""
        return self._monitor.device_name

    def stop(self) -> None:
        """Close the microphone; no level follows once this returns. Idempotent."""
        self._monitor.stop()

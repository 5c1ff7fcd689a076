"""Audio devices through PortAudio (sounddevice). The only module that imports sounddevice.

For now it answers "can this machine do calls, and with which devices?" without ever raising:
a missing PortAudio library or no devices is a reason in the result, and chat keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
        import sounddevice
    except OSError as exc:  # PortAudio shared library missing
        return AudioProbe(
            False,
            f"PortAudio is not installed ({exc})",
            "install it: sudo apt-get install libportaudio2",
        )
    except ImportError as exc:
        return AudioProbe(False, f"the sounddevice package is missing ({exc})", "run make setup")
    try:
        devices = sounddevice.query_devices()
    except Exception as exc:  # PortAudio can fail in many host-specific ways
        return AudioProbe(False, f"PortAudio could not list devices ({exc})", None)
    inputs = [str(d["name"]) for d in devices if int(d["max_input_channels"]) > 0]
    outputs = [str(d["name"]) for d in devices if int(d["max_output_channels"]) > 0]
    if not inputs or not outputs:
        missing = "microphone" if not inputs else "speaker"
        return AudioProbe(
            False,
            f"no {missing} device found; calls are unavailable (chat works)",
            "connect a device, or on a headless machine start PulseAudio "
            "(`pulseaudio --start`) and install libasound2-plugins so PortAudio sees 'pulse'",
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

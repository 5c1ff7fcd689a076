"""What a call's capture processing is given and what it offers (re-exported by
:mod:`messenger_tui.media.voice_processing`, whose :class:`VoiceProcessor` implements it):
:class:`VoiceSettings` (which stages run), the :class:`CaptureProcessor` protocol the media
session calls on each frame, and :class:`PassThrough` (no processing, and why)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Which stages run; all on by default."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    gain_control: bool = True
    #: Deepest noise attenuation (dB, negative), SpeexDSP's default.
    noise_suppress_db: int = -15
    #: Residual echo attenuation (dB, negative) in single talk and while the near end talks.
    echo_suppress_db: int = -40
    echo_suppress_active_db: int = -15
    #: The level automatic gain control aims for (int16 RMS, about -18 dBFS).
    agc_target: int = 4000
    #: Largest gain it applies (dB), for quiet microphones.
    agc_max_gain_db: int = 20
    #: The device delay to assume until the first estimate (ms).
    initial_delay_ms: int = 0


class CaptureProcessor(Protocol):
    """What the media session calls on each frame (a :class:`VoiceProcessor` or a
    :class:`PassThrough`)."""

    status: str

    def played(self, frame: bytes, at: float | None = None) -> None: ...

    def process(self, frame: bytes, at: float | None = None) -> bytes | memoryview: ...

    def set_delay(self, samples: int) -> None: ...

    def close(self) -> None: ...


def hand_played(
    voice: CaptureProcessor, frame: bytes, sink: object, clock: Callable[[], float]
) -> bool:
    """Give ``voice`` the frame the device plays now as its echo reference, stamped with the
    sink's ``play_time`` when it has one, else ``clock()``. Called from the device callback:
    never raises; False when the processor failed (logged), and the caller turns voice
    processing off for the call."""
    try:
        at = getattr(sink, "play_time", None)
        voice.played(frame, clock() if at is None else at)
    except Exception:  # never raise into a device callback
        logging.getLogger(__name__).exception(
            "echo reference failed; voice processing is off for this call"
        )
        return False
    return True


class PassThrough:
    """No processing (libspeexdsp missing, or every stage off); :attr:`status` says why."""

    def __init__(self, status: str) -> None:
        self.status = status

    def played(self, frame: bytes, at: float | None = None) -> None:
        pass

    def process(self, frame: bytes, at: float | None = None) -> bytes | memoryview:
        return frame

    def set_delay(self, samples: int) -> None:
        pass

    def close(self) -> None:
        pass

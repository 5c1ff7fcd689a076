"""The capture's way down to the voice processor's 16 kHz and the processed frame's way back
to the call's 48 kHz (:class:`RateBridge`, used by
:class:`~messenger_tui.media.voice_processing.VoiceProcessor`), through SpeexDSP's resampler.

The call is wideband (Opus sends up to 8 kHz of audio), so nothing it keeps is lost: the
resamplers pass up to ~7 kHz (0.88 of 8 kHz at quality 2, ~60 dB stopband).
"""

from __future__ import annotations

from typing import Final

from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE
from messenger_tui.media.speex_dsp import Resampler

#: The canceller's and the preprocessor's rate (the call is wideband).
PROCESS_RATE: Final = 16_000
DECIMATION: Final = SAMPLE_RATE // PROCESS_RATE
#: A call frame (20 ms) and a SpeexDSP frame (10 ms) at :data:`PROCESS_RATE`.
PROCESS_FRAME: Final = FRAME_SAMPLES // DECIMATION
PROCESS_SUBFRAME: Final = PROCESS_RATE // 100
#: SpeexDSP's resampler quality both ways (the reference's, fractional for the drift, uses 1:
#: :mod:`messenger_tui.media.echo_reference`).
RATE_QUALITY: Final = 2


class RateBridge:
    """48 kHz frames down to :data:`PROCESS_RATE` and back, one 20 ms frame at a time, each
    way a continuous stream (no restart: the filters' state carries over)."""

    def __init__(self) -> None:
        self._down = Resampler(RATE_QUALITY, SAMPLE_RATE, PROCESS_RATE)
        self._up = Resampler(RATE_QUALITY, PROCESS_RATE, SAMPLE_RATE)
        #: The way back's delay behind the way down's input (48 kHz samples): the two
        #: filters' half lengths (~2 ms).
        self.latency = self._down.latency + DECIMATION * self._up.latency

    def down(self, source: int, out: int) -> None:
        """:data:`~messenger_tui.media.ports.FRAME_SAMPLES` int16 at address ``source`` to
        :data:`PROCESS_FRAME` at ``out``."""
        self._down.process(source, FRAME_SAMPLES, out, PROCESS_FRAME)

    def up(self, source: int, out: int) -> None:
        """:data:`PROCESS_FRAME` int16 at address ``source`` to a call frame at ``out``."""
        self._up.process(source, PROCESS_FRAME, out, FRAME_SAMPLES)

    def close(self) -> None:
        self._down.close()
        self._up.close()

"""A group call's send path: PCM in, a sealed group frame with its level byte out.

::

    capture frame (FRAME_BYTES) -> level (RMS, dBov) -> Opus -> pack_audio (CBR padding)
            -> GroupFrameSealer.seal(level byte) -> carrier

The level byte (RFC 6464 style, :func:`messenger_tui.core.calls.group_frames.level_byte`) is
the frame's RMS level in dBov (0 dBov = the RMS of a full-scale square wave, as
:func:`messenger_tui.media.levels.frame_level` scales it), and its voice bit is set above
:data:`VOICE_DBOV`. A muted microphone sends silent frames at level 127 without the voice bit
(constant bitrate: the relay cannot see mute from frame sizes, only from the level byte, which
the threat model names).
"""

from __future__ import annotations

from typing import Final

from messenger_tui.core.calls.audio_payload import pack_audio
from messenger_tui.core.calls.group_frames import SILENT_LEVEL, GroupFrameSealer, level_byte
from messenger_tui.media.codec import OpusEncoder
from messenger_tui.media.levels import frame_level, level_to_dbfs
from messenger_tui.media.ports import FRAME_SAMPLES, SILENCE

#: Frames louder than this (dBov) carry the voice activity bit.
VOICE_DBOV: Final = -50.0
#: Every 4th sample is enough for a level (see frame_level).
_STRIDE: Final = 4


def pcm_level_byte(pcm: bytes) -> int:
    """The level byte of one PCM frame (127 without the voice bit for digital silence)."""
    level = frame_level(pcm, _STRIDE)
    if level <= 0.0:
        return SILENT_LEVEL
    dbov = level_to_dbfs(level)
    return level_byte(dbov, voice=dbov > VOICE_DBOV)


class GroupSendPath:
    """Encodes and seals one participant's frames (the loop calls :meth:`frame` per 20 ms)."""

    def __init__(
        self, sealer: GroupFrameSealer, encoder: OpusEncoder, *, payload_size: int = 0
    ) -> None:
        self._sealer = sealer
        self._encoder = encoder
        self._payload_size = payload_size
        self._previous: bytes | None = None
        self.muted = False
        self.frames = 0

    def frame(self, pcm: bytes) -> bytes:
        """The sealed frame for ``pcm`` (the next 20 ms of capture)."""
        if self.muted:
            pcm = SILENCE
            level = SILENT_LEVEL
        else:
            level = pcm_level_byte(pcm)
        packet = self._encoder.encode(pcm)
        redundant = self._previous if self._previous is not None else b""
        payload_type, payload = pack_audio(packet, redundant, self._payload_size)
        self._previous = packet
        timestamp = self._sealer.next_sequence * FRAME_SAMPLES
        self.frames += 1
        return self._sealer.seal(payload, timestamp, level, payload_type)

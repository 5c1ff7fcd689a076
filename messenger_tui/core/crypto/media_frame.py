"""Media frame sealing: one XChaCha20-Poly1305 box per 20 ms audio frame, plus a replay window.

Frame layout (all integers big-endian)::

    header (11 bytes, sent in clear, authenticated as associated data)
      0  version       u8   = 1
      1  flags         u8   = 0 in version 1 (any other bit set: malformed)
      2  payload_type  u8   1 = one Opus packet, 2 = Opus packet + redundant previous frame
      3  sequence      u32  frame counter of the sender's capture clock, from 0
      7  timestamp     u32  48 kHz sample clock of the frame's first sample (wraps)
    11  ciphertext    payload sealed under the sending direction's key, 16-byte tag appended

    nonce (24 bytes, never sent) = direction (u8) || 15 zero bytes || sequence (u64)

Each direction of a call has its own fresh key (:mod:`messenger_tui.core.calls.media_keys`), so
a (key, nonce) pair repeats only if a sender reuses a sequence number, which
:class:`MediaFrameSealer` refuses to do. The direction byte in the nonce is defence in depth: a
frame reflected back to its sender fails even if both directions shared a key by mistake.

The receive side is :class:`MediaFrameOpener`. A frame that is malformed, fails to
authenticate, repeats a sequence number or is older than the replay window is dropped and
counted in :class:`MediaFrameCounters`; ``open`` then returns ``None`` and never raises into
the audio path (pass ``strict=True`` to get the typed error instead, e.g. in tests). The window
advances only on authenticated frames, so forged frames cannot push real ones out of it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from messenger_tui.core.crypto.primitives import AEAD_KEY_LEN, aead_decrypt, aead_encrypt
from messenger_tui.core.errors import CryptoError, DecryptionFailed

#: First byte of every media frame.
MEDIA_FRAME_VERSION: Final = 1
_HEADER: Final = struct.Struct(">BBBII")
#: Length of the clear header that is also the associated data.
MEDIA_HEADER_LEN: Final = _HEADER.size
#: Poly1305 tag appended to the sealed payload.
MEDIA_TAG_LEN: Final = 16
#: Largest payload sealed or opened: two Opus packets of the largest size (1275 B) and framing.
MAX_MEDIA_PAYLOAD: Final = 4096
#: Highest sequence number; a sender that reaches it must end the call (2.7 years of 20 ms).
MAX_SEQUENCE: Final = 0xFFFFFFFF
#: Default replay window in frames: 5.12 s of 20 ms frames, far beyond the jitter buffer's 200 ms.
DEFAULT_REPLAY_WINDOW: Final = 256


class MediaDirection(IntEnum):
    """Which way a frame travels; each direction has its own key and nonce space."""

    CALLER_TO_CALLEE = 0
    CALLEE_TO_CALLER = 1


class PayloadType(IntEnum):
    """What the sealed payload holds (see :mod:`messenger_tui.core.calls.audio_payload`)."""

    OPUS = 1
    OPUS_RED = 2


class MalformedMediaFrame(DecryptionFailed):
    """Bytes that are not a media frame of this version (too short, unknown version or flags)."""


class ReplayedMediaFrame(DecryptionFailed):
    """An authentic frame whose sequence number was already seen or is older than the window."""


@dataclass(frozen=True, slots=True)
class MediaFrameHeader:
    """The clear part of a media frame; it is the associated data of the AEAD."""

    sequence: int
    timestamp: int
    payload_type: PayloadType = PayloadType.OPUS
    flags: int = 0
    version: int = MEDIA_FRAME_VERSION

    def pack(self) -> bytes:
        """The 11 header bytes."""
        if not 0 <= self.sequence <= MAX_SEQUENCE:
            raise ValueError("sequence out of range")
        return _HEADER.pack(
            self.version, self.flags, int(self.payload_type), self.sequence, self.timestamp
        )

    @classmethod
    def unpack(cls, data: bytes) -> MediaFrameHeader:
        """Parse the header at the start of ``data``; raises :class:`MalformedMediaFrame`."""
        if len(data) < MEDIA_HEADER_LEN:
            raise MalformedMediaFrame("shorter than a media frame header")
        version, flags, ptype, sequence, timestamp = _HEADER.unpack_from(data)
        if version != MEDIA_FRAME_VERSION:
            raise MalformedMediaFrame(f"unknown media frame version {version}")
        if flags != 0:
            raise MalformedMediaFrame("reserved flag bits set")
        try:
            payload_type = PayloadType(ptype)
        except ValueError:
            raise MalformedMediaFrame(f"unknown payload type {ptype}") from None
        return cls(sequence, timestamp, payload_type, flags, version)


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """An opened frame: its authenticated header and plaintext payload."""

    header: MediaFrameHeader
    payload: bytes


def media_nonce(direction: MediaDirection, sequence: int) -> bytes:
    """The 24-byte nonce of frame ``sequence`` travelling in ``direction``."""
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError("sequence out of range")
    return bytes([int(direction)]) + bytes(15) + sequence.to_bytes(8, "big")


def _check_key(key: bytes) -> None:
    if len(key) != AEAD_KEY_LEN:
        raise CryptoError("media keys are 32 bytes")


def seal_media_frame(
    key: bytes, direction: MediaDirection, header: MediaFrameHeader, payload: bytes
) -> bytes:
    """Seal one frame. The caller must never seal two frames with one (key, sequence);
    :class:`MediaFrameSealer` keeps that promise for you."""
    _check_key(key)
    if len(payload) > MAX_MEDIA_PAYLOAD:
        raise ValueError(f"media payload over {MAX_MEDIA_PAYLOAD} bytes")
    ad = header.pack()
    return ad + aead_encrypt(key, media_nonce(direction, header.sequence), payload, ad)


def open_media_frame(key: bytes, direction: MediaDirection, data: bytes) -> MediaFrame:
    """Authenticate and decrypt one frame (no replay check: see :class:`MediaFrameOpener`).

    Raises :class:`MalformedMediaFrame` or :class:`DecryptionFailed` (tampered, wrong key,
    wrong direction).
    """
    _check_key(key)
    header = MediaFrameHeader.unpack(data)
    if len(data) < MEDIA_HEADER_LEN + MEDIA_TAG_LEN:
        raise MalformedMediaFrame("shorter than header and tag")
    if len(data) > MEDIA_HEADER_LEN + MAX_MEDIA_PAYLOAD + MEDIA_TAG_LEN:
        raise MalformedMediaFrame("media frame too large")
    ad = data[:MEDIA_HEADER_LEN]
    payload = aead_decrypt(
        key, media_nonce(direction, header.sequence), data[MEDIA_HEADER_LEN:], ad
    )
    return MediaFrame(header, payload)


class MediaFrameSealer:
    """The sending side of one call direction: numbers frames from 0 and seals them.

    Call :meth:`seal` once per 20 ms frame, including silent ones (constant bitrate: a muted
    microphone still sends, so the relay cannot see mute). The sequence number counts the
    sender's capture clock; if a frame is not sent, call :meth:`skip` so the numbers stay
    aligned with time (the receiver's jitter buffer schedules by sequence number).
    """

    def __init__(self, key: bytes, direction: MediaDirection, *, first_sequence: int = 0) -> None:
        _check_key(key)
        self._key = key
        self._direction = direction
        self._next = first_sequence

    @property
    def next_sequence(self) -> int:
        """The sequence number the next sealed frame gets."""
        return self._next

    def seal(
        self, payload: bytes, timestamp: int, payload_type: PayloadType = PayloadType.OPUS
    ) -> bytes:
        """Seal ``payload`` as the next frame. Raises ``OverflowError`` after 2**32 frames."""
        if self._next > MAX_SEQUENCE:
            raise OverflowError("media sequence numbers exhausted; end the call")
        header = MediaFrameHeader(self._next, timestamp & 0xFFFFFFFF, payload_type)
        frame = seal_media_frame(self._key, self._direction, header, payload)
        self._next += 1
        return frame

    def skip(self, frames: int = 1) -> None:
        """Advance the sequence number without sending (frames never captured or not sent)."""
        if frames < 0:
            raise ValueError("cannot skip backwards")
        self._next += frames

    def __repr__(self) -> str:  # never print the key
        return f"MediaFrameSealer(direction={self._direction.name}, next={self._next})"


@dataclass(slots=True)
class MediaFrameCounters:
    """What the receive side did with each frame. ``received`` = the sum of the others."""

    received: int = 0
    opened: int = 0
    malformed: int = 0
    auth_failed: int = 0
    replayed: int = 0
    too_old: int = 0

    @property
    def dropped(self) -> int:
        return self.malformed + self.auth_failed + self.replayed + self.too_old


class ReplayWindow:
    """Sliding-window replay check over sequence numbers (as in IPsec, RFC 4303 3.4.3).

    Remembers the highest accepted number and a bitmap of the ``size`` numbers below it.
    :meth:`check` is side-effect free; call :meth:`accept` only after the frame authenticated.
    """

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW) -> None:
        if size < 1:
            raise ValueError("replay window must hold at least one frame")
        self.size = size
        self._highest = -1
        self._bitmap = 0  # bit i set: highest - i was accepted

    def check(self, sequence: int) -> str:
        """``"new"``, ``"replay"`` (already accepted) or ``"too_old"`` (left the window)."""
        if sequence > self._highest:
            return "new"
        offset = self._highest - sequence
        if offset >= self.size:
            return "too_old"
        return "replay" if self._bitmap >> offset & 1 else "new"

    def accept(self, sequence: int) -> None:
        """Record ``sequence`` as seen (it must have passed :meth:`check` as ``"new"``)."""
        if sequence > self._highest:
            shift = sequence - self._highest
            # a jump past the whole window forgets it (and avoids a huge shift)
            kept = self._bitmap << shift if shift < self.size else 0
            self._bitmap = (kept | 1) & ((1 << self.size) - 1)
            self._highest = sequence
        else:
            self._bitmap |= 1 << (self._highest - sequence)


class MediaFrameOpener:
    """The receiving side of one call direction: authenticates, decrypts and de-duplicates.

    Feed every binary media frame to :meth:`open`; pass what it returns (when not ``None``) to
    the jitter buffer. Reordered frames within the window are accepted; the jitter buffer, not
    this class, decides what is too late to play.
    """

    def __init__(
        self, key: bytes, direction: MediaDirection, *, window: int = DEFAULT_REPLAY_WINDOW
    ) -> None:
        _check_key(key)
        self._key = key
        self._direction = direction
        self._window = ReplayWindow(window)
        self.counters = MediaFrameCounters()

    def open(self, data: bytes, *, strict: bool = False) -> MediaFrame | None:
        """The opened frame, or ``None`` when it was dropped (and counted).

        With ``strict=True`` a drop raises :class:`MalformedMediaFrame`,
        :class:`DecryptionFailed` or :class:`ReplayedMediaFrame` instead.
        """
        counters = self.counters
        counters.received += 1
        try:
            frame = open_media_frame(self._key, self._direction, data)
        except MalformedMediaFrame:
            counters.malformed += 1
            if strict:
                raise
            return None
        except DecryptionFailed:
            counters.auth_failed += 1
            if strict:
                raise
            return None
        sequence = frame.header.sequence
        verdict = self._window.check(sequence)
        if verdict != "new":
            if verdict == "replay":
                counters.replayed += 1
            else:
                counters.too_old += 1
            if strict:
                raise ReplayedMediaFrame(f"frame {sequence}: {verdict.replace('_', ' ')}")
            return None
        self._window.accept(sequence)
        counters.opened += 1
        return frame

    def __repr__(self) -> str:  # never print the key
        return f"MediaFrameOpener(direction={self._direction.name}, counters={self.counters})"

"""Media frame sealing: one XChaCha20-Poly1305 box per 20 ms audio frame, plus a replay window.

Frame layout (all integers big-endian)::

    header (11 bytes, sent in clear, authenticated as associated data)
      0  version       u8   = 1
      1  flags         u8   bit 0 = CONTROL (the control stream); any other bit: malformed
      2  payload_type  u8   1 = one Opus packet, 2 = Opus packet + redundant previous frame
                            (audio stream); 3 = receiver report (control stream only)
      3  sequence      u32  the stream's frame counter, from 0 (audio: one per 20 ms of the
                            sender's capture clock; control: one per report)
      7  timestamp     u32  48 kHz sample clock of the frame's first sample (wraps; a report
                            carries the audio clock of the last frame sent before it)
    11  ciphertext    payload sealed under the sending direction's key, 16-byte tag appended

    nonce (24 bytes, never sent) = direction (u8) || stream (u8: 0 audio, 1 control)
                                   || 14 zero bytes || sequence (u64)

Two streams share a direction's key: audio frames and control frames (receiver reports,
:mod:`messenger_tui.core.calls.report`). Each has its own sequence counter and replay window,
and the stream byte in the nonce keeps their (key, nonce) pairs apart, so reports never reuse
an audio nonce and never leave holes in the audio sequence numbers the jitter buffer
schedules by. The flag is in the header, hence authenticated: moving a frame from one stream
to the other fails the tag.

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

from messenger_tui.core.crypto.primitives import (
    AEAD_KEY_LEN,
    KeyedAead,
    aead_decrypt,
    aead_encrypt,
)
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
#: Header flag of the control stream (receiver reports); it also selects the nonce's stream byte.
FLAG_CONTROL: Final = 0x01
_KNOWN_FLAGS: Final = FLAG_CONTROL


class MediaDirection(IntEnum):
    """Which way a frame travels; each direction has its own key and nonce space."""

    CALLER_TO_CALLEE = 0
    CALLEE_TO_CALLER = 1


class PayloadType(IntEnum):
    """What the sealed payload holds (see :mod:`messenger_tui.core.calls.audio_payload`)."""

    OPUS = 1
    OPUS_RED = 2
    #: A receiver report (control stream only).
    REPORT = 3


#: Payload types of each stream: audio frames carry Opus, control frames carry reports.
_CONTROL_TYPES: Final = frozenset({PayloadType.REPORT})


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

    @property
    def control(self) -> bool:
        """True for a control-stream frame (a report), False for audio."""
        return bool(self.flags & FLAG_CONTROL)

    def pack(self) -> bytes:
        """The 11 header bytes."""
        if not 0 <= self.sequence <= MAX_SEQUENCE:
            raise ValueError("sequence out of range")
        if self.flags & ~_KNOWN_FLAGS or self.control != (self.payload_type in _CONTROL_TYPES):
            raise ValueError("flags and payload type disagree (reports use the control stream)")
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
        if flags & ~_KNOWN_FLAGS:
            raise MalformedMediaFrame("reserved flag bits set")
        try:
            payload_type = PayloadType(ptype)
        except ValueError:
            raise MalformedMediaFrame(f"unknown payload type {ptype}") from None
        if bool(flags & FLAG_CONTROL) != (payload_type in _CONTROL_TYPES):
            raise MalformedMediaFrame(f"payload type {payload_type.name} on the wrong stream")
        return cls(sequence, timestamp, payload_type, flags, version)


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """An opened frame: its authenticated header and plaintext payload."""

    header: MediaFrameHeader
    payload: bytes


def _nonce_prefix(direction: MediaDirection, control: bool) -> bytes:
    return bytes([int(direction), int(control)]) + bytes(14)


def media_nonce(direction: MediaDirection, sequence: int, *, control: bool = False) -> bytes:
    """The 24-byte nonce of frame ``sequence`` of the audio (or ``control``) stream travelling
    in ``direction``."""
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError("sequence out of range")
    return _nonce_prefix(direction, control) + sequence.to_bytes(8, "big")


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
    nonce = media_nonce(direction, header.sequence, control=header.control)
    return ad + aead_encrypt(key, nonce, payload, ad)


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
    nonce = media_nonce(direction, header.sequence, control=header.control)
    payload = aead_decrypt(key, nonce, data[MEDIA_HEADER_LEN:], ad)
    return MediaFrame(header, payload)


class MediaFrameSealer:
    """The sending side of one stream of one call direction: numbers frames from 0, seals them.

    Audio (the default): call :meth:`seal` once per 20 ms frame, including silent ones
    (constant bitrate: a muted microphone still sends, so the relay cannot see mute). The
    sequence number counts the sender's capture clock; if a frame is not sent, call
    :meth:`skip` so the numbers stay aligned with time (the receiver's jitter buffer schedules
    by sequence number).

    ``control=True``: the control stream of the same key (reports), with its own numbers and
    nonces; its frames default to :attr:`PayloadType.REPORT`.
    """

    def __init__(
        self,
        key: bytes,
        direction: MediaDirection,
        *,
        first_sequence: int = 0,
        control: bool = False,
    ) -> None:
        _check_key(key)
        self._aead = KeyedAead(key, MAX_MEDIA_PAYLOAD)
        self._direction = direction
        self._next = first_sequence
        self._control = control
        self._flags = FLAG_CONTROL if control else 0
        self._nonce_prefix = _nonce_prefix(direction, control)

    @property
    def next_sequence(self) -> int:
        """The sequence number the next sealed frame gets."""
        return self._next

    @property
    def control(self) -> bool:
        """True for the control stream's sealer."""
        return self._control

    def seal(
        self, payload: bytes, timestamp: int, payload_type: PayloadType | None = None
    ) -> bytes:
        """Seal ``payload`` as the next frame of this stream (``payload_type`` defaults to
        ``OPUS``, or ``REPORT`` on the control stream). Raises ``OverflowError`` after 2**32
        frames and ``ValueError`` for a payload type of the other stream."""
        sequence = self._next
        if sequence > MAX_SEQUENCE:
            raise OverflowError("media sequence numbers exhausted; end the call")
        if payload_type is None:
            payload_type = PayloadType.REPORT if self._control else PayloadType.OPUS
        elif self._control != (payload_type in _CONTROL_TYPES):
            raise ValueError("flags and payload type disagree (reports use the control stream)")
        if len(payload) > MAX_MEDIA_PAYLOAD:
            raise ValueError(f"media payload over {MAX_MEDIA_PAYLOAD} bytes")
        # the same bytes as seal_media_frame(), without building a header object per frame
        ad = _HEADER.pack(
            MEDIA_FRAME_VERSION, self._flags, payload_type, sequence, timestamp & 0xFFFFFFFF
        )
        nonce = self._nonce_prefix + sequence.to_bytes(8, "big")
        frame = ad + self._aead.encrypt(nonce, payload, ad)
        self._next = sequence + 1
        return frame

    def skip(self, frames: int = 1) -> None:
        """Advance the sequence number without sending (frames never captured or not sent)."""
        if frames < 0:
            raise ValueError("cannot skip backwards")
        self._next += frames

    def __repr__(self) -> str:  # never print the key
        stream = "control" if self._control else "audio"
        return f"MediaFrameSealer(direction={self._direction.name}, {stream}, next={self._next})"


@dataclass(slots=True)
class MediaFrameCounters:
    """What the receive side did with each frame. ``received`` = ``opened`` + ``dropped``;
    ``control`` counts the control-stream frames (reports) among ``opened``."""

    received: int = 0
    opened: int = 0
    control: int = 0
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
    the jitter buffer (audio) or the report handling (``frame.header.control``). Each stream
    has its own replay window. Reordered frames within the window are accepted; the jitter
    buffer, not this class, decides what is too late to play.
    """

    def __init__(
        self, key: bytes, direction: MediaDirection, *, window: int = DEFAULT_REPLAY_WINDOW
    ) -> None:
        _check_key(key)
        self._aead = KeyedAead(key, MAX_MEDIA_PAYLOAD)
        self._direction = direction
        self._nonce_prefixes = (_nonce_prefix(direction, False), _nonce_prefix(direction, True))
        self._windows = (ReplayWindow(window), ReplayWindow(window))  # audio, control
        self.counters = MediaFrameCounters()

    def open(self, data: bytes, *, strict: bool = False) -> MediaFrame | None:
        """The opened frame, or ``None`` when it was dropped (and counted).

        With ``strict=True`` a drop raises :class:`MalformedMediaFrame`,
        :class:`DecryptionFailed` or :class:`ReplayedMediaFrame` instead.
        """
        counters = self.counters
        counters.received += 1
        try:
            frame = self._open(data)
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
        control = frame.header.control
        window = self._windows[control]
        verdict = window.check(sequence)
        if verdict != "new":
            if verdict == "replay":
                counters.replayed += 1
            else:
                counters.too_old += 1
            if strict:
                raise ReplayedMediaFrame(f"frame {sequence}: {verdict.replace('_', ' ')}")
            return None
        window.accept(sequence)
        counters.opened += 1
        if control:
            counters.control += 1
        return frame

    def _open(self, data: bytes) -> MediaFrame:
        """As :func:`open_media_frame` with this opener's key."""
        header = MediaFrameHeader.unpack(data)
        if len(data) < MEDIA_HEADER_LEN + MEDIA_TAG_LEN:
            raise MalformedMediaFrame("shorter than header and tag")
        if len(data) > MEDIA_HEADER_LEN + MAX_MEDIA_PAYLOAD + MEDIA_TAG_LEN:
            raise MalformedMediaFrame("media frame too large")
        nonce = self._nonce_prefixes[header.flags & FLAG_CONTROL] + header.sequence.to_bytes(
            8, "big"
        )
        ad = data[:MEDIA_HEADER_LEN]
        return MediaFrame(header, self._aead.decrypt(nonce, data[MEDIA_HEADER_LEN:], ad))

    def __repr__(self) -> str:  # never print the key
        return f"MediaFrameOpener(direction={self._direction.name}, counters={self.counters})"

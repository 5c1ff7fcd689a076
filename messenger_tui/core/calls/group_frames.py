"""Group call media frames: per-participant frame keys, rotation, a clear level byte (sans-I/O).

Each participant of a group call seals its own audio frames under its own random **frame key**
(XChaCha20-Poly1305, the AEAD of 1:1 frames) and sends that key to every other participant
over the pairwise E2E channel (:class:`messenger_tui.core.calls.group_keys.GroupCallFrameKey`).
The relay forwards frames (a selective forwarding unit, relay/group_media.py) and reads only
the first two bytes: the version and the level.

Frame layout (all integers big-endian)::

    header (15 bytes, sent in clear, authenticated as associated data)
      0  version       u8   = 2 (1:1 frames are version 1; the relay tells them apart by it)
      1  level         u8   RFC 6464 style: bit 7 = voice activity, bits 0-6 = level in -dBov
                            (0 = 0 dBov, the loudest; 127 = -127 dBov or digital silence)
      2  payload_type  u8   1 = one Opus packet, 2 = Opus packet + redundant previous frame
      3  key_id        u32  which of the sender's frame keys sealed the frame (random per key)
      7  sequence      u32  the sender's frame counter (continues across key rotations)
     11  timestamp     u32  48 kHz sample clock of the frame's first sample (wraps)
    15  ciphertext    payload sealed under the frame key, 16-byte tag appended

    nonce (24 bytes, never sent) = key_id (u32) || 12 zero bytes || sequence (u64)

The level is authenticated: a relay that alters it makes the frame fail at every receiver
(the same as dropping it), and receivers can trust it for their speaking markers.

**Rotation** (:class:`GroupFrameSealer`). On every join and every leave each participant calls
:meth:`GroupFrameSealer.rotate`: a fresh random key with a fresh key id, announced at once to
the participants present *now* (so a leaver never gets it, and a joiner never gets a key that
sealed audio sent before it joined). The sealer keeps sealing with the old key for
:data:`SWITCH_OVER_S` (the time the announcement needs to arrive), then switches. A rotation
while another is pending replaces the pending key (which a leaver may have received) but never
postpones the switch: the switch time is the earlier of the pending one and now + switch-over,
so a stream of joins cannot keep an old key in use.

**What a leaver opens.** A leaver keeps every key it was given. Frames sealed after the
remaining participants' switch-over are under keys it never received, so it opens nothing sent
later than (the time a participant learns of the leave) + :data:`SWITCH_OVER_S` after it left.
The relay reports a leave at once (``group_member``), so the bound is about 1 s plus a network
delay; the issue's budget is 3.5 s.

**Receiving** (:class:`GroupFrameOpener`). One opener holds every sender's keys by key id. A
key id held by another sender is refused. Once a sender's newer key opens a frame (or
:data:`SWITCH_OVER_S` after it was announced, whichever is first), its older keys are accepted
for :data:`GRACE_S` more (frames in flight, reordered around the switch) and then dropped. Each
sender has one replay window over its sequence numbers. ``open`` returns ``None`` for a dropped
frame and counts why in :class:`GroupFrameCounters`; it never raises into the audio path unless
``strict=True``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from messenger_tui.core.crypto.media_frame import (
    DEFAULT_REPLAY_WINDOW,
    MAX_MEDIA_PAYLOAD,
    MAX_SEQUENCE,
    MEDIA_TAG_LEN,
    MalformedMediaFrame,
    PayloadType,
    ReplayedMediaFrame,
    ReplayWindow,
)
from messenger_tui.core.crypto.primitives import AEAD_KEY_LEN, KeyedAead, Rng, default_rng
from messenger_tui.core.errors import CryptoError, DecryptionFailed

#: First byte of every group call frame (1:1 frames start with 1).
GROUP_FRAME_VERSION: Final = 2
GROUP_FRAME_PREFIX: Final = bytes([GROUP_FRAME_VERSION])
_HEADER: Final = struct.Struct(">BBBIII")
#: Length of the clear header (the associated data).
GROUP_HEADER_LEN: Final = _HEADER.size
#: Offset of the level byte (the relay reads it for speaker selection).
LEVEL_OFFSET: Final = 1
#: Bit 7 of the level byte: the sender's voice activity flag (RFC 6464 "V").
VOICE_FLAG: Final = 0x80
#: Quietest level (-127 dBov, also digital silence).
SILENT_LEVEL: Final = 127
#: Seconds between a rotation and the first frame sealed under the new key.
SWITCH_OVER_S: Final = 1.0
#: Seconds a superseded key still opens frames (reordered and in-flight frames), then dropped.
GRACE_S: Final = 1.5
#: Keys a receiver holds per sender at most (current, pending, superseded in its grace).
MAX_KEYS_PER_SENDER: Final = 3
_AUDIO_TYPES: Final = frozenset({PayloadType.OPUS, PayloadType.OPUS_RED})

#: A function returning the time in seconds, monotonic.
MonotonicClock = Callable[[], float]


class KeyIdConflict(CryptoError):
    """A frame key whose id another sender holds, or the same sender's id with another key."""


class UnknownFrameKey(DecryptionFailed):
    """A frame under a key id this receiver does not hold (never given, or dropped)."""


def level_byte(dbov: float, *, voice: bool) -> int:
    """The level byte of a frame whose audio level is ``dbov`` (<= 0; clamped to -127)."""
    level = min(SILENT_LEVEL, max(0, round(-dbov)))
    return level | (VOICE_FLAG if voice else 0)


def level_dbov(byte: int) -> int:
    """The level (in dBov, 0 to -127) that a level byte says."""
    return -(byte & SILENT_LEVEL)


@dataclass(frozen=True, slots=True, repr=False)
class FrameKey:
    """One frame key of one sender: what the E2E announcement carries."""

    key_id: int
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != AEAD_KEY_LEN:
            raise CryptoError("frame keys are 32 bytes")
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise CryptoError("frame key ids are 32-bit")

    def __repr__(self) -> str:  # never print the key
        return f"FrameKey(key_id={self.key_id:#010x})"


@dataclass(frozen=True, slots=True)
class GroupFrameHeader:
    """The clear part of a group frame (the associated data)."""

    level: int
    payload_type: PayloadType
    key_id: int
    sequence: int
    timestamp: int

    @property
    def voice(self) -> bool:
        return bool(self.level & VOICE_FLAG)

    @classmethod
    def unpack(cls, data: bytes) -> GroupFrameHeader:
        """Parse the header at the start of ``data``; raises :class:`MalformedMediaFrame`."""
        if len(data) < GROUP_HEADER_LEN + MEDIA_TAG_LEN:
            raise MalformedMediaFrame("shorter than a group frame header and tag")
        if len(data) > GROUP_HEADER_LEN + MAX_MEDIA_PAYLOAD + MEDIA_TAG_LEN:
            raise MalformedMediaFrame("group frame too large")
        version, level, ptype, key_id, sequence, timestamp = _HEADER.unpack_from(data)
        if version != GROUP_FRAME_VERSION:
            raise MalformedMediaFrame(f"not a group frame (version {version})")
        if ptype not in _AUDIO_TYPES:
            raise MalformedMediaFrame(f"unknown group payload type {ptype}")
        return cls(level, PayloadType(ptype), key_id, sequence, timestamp)


@dataclass(frozen=True, slots=True)
class GroupFrame:
    """An opened frame: who sent it (as announced with its key), header, plaintext."""

    sender: bytes
    header: GroupFrameHeader
    payload: bytes


def group_nonce(key_id: int, sequence: int) -> bytes:
    """The 24-byte nonce of frame ``sequence`` under key ``key_id``."""
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError("sequence out of range")
    return key_id.to_bytes(4, "big") + bytes(12) + sequence.to_bytes(8, "big")


def seal_group_frame(
    key: FrameKey,
    *,
    sequence: int,
    timestamp: int,
    level: int,
    payload: bytes,
    payload_type: PayloadType = PayloadType.OPUS,
) -> bytes:
    """Seal one frame (no state: the caller must never repeat a (key, sequence));
    :class:`GroupFrameSealer` keeps that promise."""
    if payload_type not in _AUDIO_TYPES:
        raise ValueError("group frames carry Opus payloads only")
    if not 0 <= level <= 0xFF:
        raise ValueError("level is one byte")
    if len(payload) > MAX_MEDIA_PAYLOAD:
        raise ValueError(f"media payload over {MAX_MEDIA_PAYLOAD} bytes")
    ad = _HEADER.pack(
        GROUP_FRAME_VERSION,
        level,
        payload_type,
        key.key_id,
        sequence,
        timestamp & 0xFFFFFFFF,
    )
    aead = KeyedAead(key.key, MAX_MEDIA_PAYLOAD)
    return ad + aead.encrypt(group_nonce(key.key_id, sequence), payload, ad)


def new_frame_key(rng: Rng = default_rng, *, avoid: frozenset[int] = frozenset()) -> FrameKey:
    """A fresh random frame key whose id is none of ``avoid``."""
    while True:
        key_id = int.from_bytes(rng(4), "big")
        if key_id not in avoid:
            return FrameKey(key_id, rng(AEAD_KEY_LEN))


class GroupFrameSealer:
    """The sending side of one participant: seals frames, rotates its key with a switch-over.

    Create at call start; announce :attr:`current` to the participants present. On every join
    or leave call :meth:`rotate` and announce the key it returns to the participants present
    then. Call :meth:`seal` once per 20 ms frame (silent ones too: constant bitrate).
    """

    def __init__(
        self,
        clock: MonotonicClock,
        rng: Rng = default_rng,
        *,
        switch_over_s: float = SWITCH_OVER_S,
        first_sequence: int = 0,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._switch_over = switch_over_s
        self._used: set[int] = set()
        self._current = self._fresh()
        self._aead = KeyedAead(self._current.key, MAX_MEDIA_PAYLOAD)
        self._pending: FrameKey | None = None
        self._switch_at = 0.0
        self._next = first_sequence
        self.rotations = 0

    def _fresh(self) -> FrameKey:
        key = new_frame_key(self._rng, avoid=frozenset(self._used))
        self._used.add(key.key_id)
        return key

    @property
    def current(self) -> FrameKey:
        """The key frames are sealed with now (after applying a due switch)."""
        self._switch_if_due()
        return self._current

    @property
    def pending(self) -> FrameKey | None:
        """The announced key waiting for its switch-over, if any."""
        self._switch_if_due()
        return self._pending

    @property
    def next_sequence(self) -> int:
        return self._next

    def rotate(self) -> FrameKey:
        """A new key to announce now; frames use it from the switch time on (see module doc)."""
        self._switch_if_due()
        now = self._clock()
        switch_at = now + self._switch_over
        if self._pending is not None:
            switch_at = min(switch_at, self._switch_at)
        self._pending = self._fresh()
        self._switch_at = switch_at
        self.rotations += 1
        return self._pending

    def _switch_if_due(self) -> None:
        if self._pending is not None and self._clock() >= self._switch_at:
            self._current, self._pending = self._pending, None
            self._aead = KeyedAead(self._current.key, MAX_MEDIA_PAYLOAD)

    def seal(
        self,
        payload: bytes,
        timestamp: int,
        level: int,
        payload_type: PayloadType = PayloadType.OPUS,
    ) -> bytes:
        """Seal ``payload`` as the next frame; ``level`` is the level byte
        (:func:`level_byte`)."""
        sequence = self._next
        if sequence > MAX_SEQUENCE:
            raise OverflowError("media sequence numbers exhausted; end the call")
        if payload_type not in _AUDIO_TYPES:
            raise ValueError("group frames carry Opus payloads only")
        if not 0 <= level <= 0xFF:
            raise ValueError("level is one byte")
        if len(payload) > MAX_MEDIA_PAYLOAD:
            raise ValueError(f"media payload over {MAX_MEDIA_PAYLOAD} bytes")
        self._switch_if_due()
        key_id = self._current.key_id
        ad = _HEADER.pack(
            GROUP_FRAME_VERSION, level, payload_type, key_id, sequence, timestamp & 0xFFFFFFFF
        )
        frame = ad + self._aead.encrypt(group_nonce(key_id, sequence), payload, ad)
        self._next = sequence + 1
        return frame

    def skip(self, frames: int = 1) -> None:
        """Advance the sequence number without sending."""
        if frames < 0:
            raise ValueError("cannot skip backwards")
        self._next += frames

    def __repr__(self) -> str:  # never print a key
        return f"GroupFrameSealer(key_id={self._current.key_id:#010x}, next={self._next})"


@dataclass(slots=True)
class GroupFrameCounters:
    """What the receive side did with each frame; ``received`` = ``opened`` + ``dropped``."""

    received: int = 0
    opened: int = 0
    malformed: int = 0
    unknown_key: int = 0
    auth_failed: int = 0
    replayed: int = 0
    too_old: int = 0

    @property
    def dropped(self) -> int:
        return self.malformed + self.unknown_key + self.auth_failed + self.replayed + self.too_old


@dataclass(slots=True, repr=False)
class _HeldKey:
    sender: bytes
    key: FrameKey
    aead: KeyedAead
    order: int  # install order within the sender: higher is newer
    announced_at: float
    superseded_at: float | None = None  # when a newer key of the sender took over


@dataclass(slots=True)
class _Sender:
    window: ReplayWindow
    keys: list[_HeldKey] = field(default_factory=list)
    installed: int = 0


class GroupFrameOpener:
    """The receiving side for every other participant of a call (see the module doc)."""

    def __init__(
        self,
        clock: MonotonicClock,
        *,
        window: int = DEFAULT_REPLAY_WINDOW,
        switch_over_s: float = SWITCH_OVER_S,
        grace_s: float = GRACE_S,
    ) -> None:
        self._clock = clock
        self._window = window
        self._switch_over = switch_over_s
        self._grace = grace_s
        self._keys: dict[int, _HeldKey] = {}
        self._senders: dict[bytes, _Sender] = {}
        self._next_expiry = float("inf")  # the earliest time a superseded key is due to go
        self.counters = GroupFrameCounters()

    def senders(self) -> list[bytes]:
        return list(self._senders)

    def key_ids(self, sender: bytes) -> list[int]:
        """The key ids held for ``sender`` now, oldest first (after expiring due keys)."""
        self._expire()
        state = self._senders.get(sender)
        return [held.key.key_id for held in state.keys] if state else []

    def add_key(self, sender: bytes, key: FrameKey) -> bool:
        """Install a key ``sender`` announced; False if it was already held (idempotent).

        Raises :class:`KeyIdConflict` when the id belongs to another sender or to another key
        of this sender (nothing changes then)."""
        self._expire()
        held = self._keys.get(key.key_id)
        if held is not None:
            if held.sender != sender or held.key.key != key.key:
                raise KeyIdConflict(f"frame key id {key.key_id:#010x} is already in use")
            return False
        state = self._senders.get(sender)
        if state is None:
            state = self._senders[sender] = _Sender(ReplayWindow(self._window))
        now = self._clock()
        state.installed += 1
        new = _HeldKey(sender, key, KeyedAead(key.key, MAX_MEDIA_PAYLOAD), state.installed, now)
        # the older keys stop being current at the sender's switch-over at the latest
        for older in state.keys:
            self._supersede(older, now + self._switch_over)
        state.keys.append(new)
        self._keys[key.key_id] = new
        while len(state.keys) > MAX_KEYS_PER_SENDER:
            self._drop(state.keys[0])
        return True

    def remove_sender(self, sender: bytes) -> None:
        """Forget a participant that left: its keys and replay window."""
        state = self._senders.pop(sender, None)
        if state is not None:
            for held in state.keys:
                self._keys.pop(held.key.key_id, None)

    def _drop(self, held: _HeldKey) -> None:
        state = self._senders[held.sender]
        state.keys.remove(held)
        self._keys.pop(held.key.key_id, None)

    def _supersede(self, held: _HeldKey, at: float) -> None:
        if held.superseded_at is None or held.superseded_at > at:
            held.superseded_at = at
            self._next_expiry = min(self._next_expiry, at + self._grace)

    def _expire(self) -> None:
        now = self._clock()
        if now < self._next_expiry:
            return
        self._next_expiry = float("inf")
        for held in list(self._keys.values()):
            if held.superseded_at is None:
                continue
            due = held.superseded_at + self._grace
            if now >= due:
                self._drop(held)
            else:
                self._next_expiry = min(self._next_expiry, due)

    def open(self, data: bytes, *, strict: bool = False) -> GroupFrame | None:
        """The opened frame, or ``None`` when dropped (and counted). ``strict=True`` raises
        :class:`MalformedMediaFrame`, :class:`UnknownFrameKey`, :class:`DecryptionFailed` or
        :class:`ReplayedMediaFrame` instead."""
        counters = self.counters
        counters.received += 1
        self._expire()
        try:
            header = GroupFrameHeader.unpack(data)
            held = self._keys.get(header.key_id)
            if held is None:
                counters.unknown_key += 1
                raise UnknownFrameKey(f"no frame key {header.key_id:#010x}")
            ad = data[:GROUP_HEADER_LEN]
            nonce = group_nonce(header.key_id, header.sequence)
            payload = held.aead.decrypt(nonce, data[GROUP_HEADER_LEN:], ad)
        except MalformedMediaFrame:
            counters.malformed += 1
            if strict:
                raise
            return None
        except UnknownFrameKey:
            if strict:
                raise
            return None
        except DecryptionFailed:
            counters.auth_failed += 1
            if strict:
                raise
            return None
        state = self._senders[held.sender]
        verdict = state.window.check(header.sequence)
        if verdict != "new":
            if verdict == "replay":
                counters.replayed += 1
            else:
                counters.too_old += 1
            if strict:
                raise ReplayedMediaFrame(f"frame {header.sequence}: {verdict.replace('_', ' ')}")
            return None
        state.window.accept(header.sequence)
        now = self._clock()
        for older in state.keys:  # a newer key in use: the older ones enter their grace
            if older.order < held.order:
                self._supersede(older, now)
        counters.opened += 1
        return GroupFrame(held.sender, header, payload)

    def __repr__(self) -> str:  # never print a key
        return f"GroupFrameOpener(senders={len(self._senders)}, counters={self.counters})"

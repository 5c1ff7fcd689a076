"""Wake-ups across relay nodes (rule 3 of relay/node_bus.py), carrying the envelopes.

A commit on node A for a recipient connected elsewhere is announced on the recipient's bus
channel. When the envelopes committed for one recipient in one publishing round fit in
:data:`WAKE_PAYLOAD_MAX` bytes (at most :data:`WAKE_MAX_ENVELOPES` of them), the message
carries them: ``E`` + records (below), and the node holding the recipient offers them to the
connection's delivery pusher, which pushes them from memory when they directly follow what
it has seen (no mailbox read, no Redis round trip). Larger batches send a plain ``W``, and
the pusher re-reads the mailbox. The mailbox stays the truth: the pusher ignores an offered
envelope at or before its cursor (already delivered), and an envelope whose seq does not
directly follow the last one seen (a wake-up was lost or arrived out of order) makes it
re-read the store after its cursor instead, so delivery stays exactly-once per connection
and in order; a lost last wake-up is made good by the re-read on (re)subscription.

One record (big-endian): seq u64, stored_at_ms i64, msg_id length u8, header length i32
(-1: no header), body length u32, then the sender (``wire.KEY_LEN`` bytes), the msg_id, the
header and the body.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from messenger_tui.core import wire
from messenger_tui.relay.store import StoredEnvelope

WAKE: Final = b"W"
ENVELOPES: Final = b"E"
#: Largest ``E`` message (bytes): a batch for one recipient above it goes as a plain ``W``.
WAKE_PAYLOAD_MAX: Final = 16 * 1024
#: Most envelopes one ``E`` message carries.
WAKE_MAX_ENVELOPES: Final = 64

_RECORD: Final = struct.Struct(">QqBiI")


def record_size(envelope: StoredEnvelope) -> int:
    """Bytes ``envelope`` takes in an ``E`` message."""
    header = 0 if envelope.header is None else len(envelope.header)
    return _RECORD.size + len(envelope.sender) + len(envelope.msg_id) + header + len(envelope.body)


def encode_envelopes(envelopes: Iterable[StoredEnvelope]) -> bytes:
    """The ``E`` message carrying ``envelopes`` (the caller keeps it within the bounds)."""
    parts = [ENVELOPES]
    for envelope in envelopes:
        header = envelope.header
        parts.append(
            _RECORD.pack(
                envelope.seq,
                envelope.stored_at_ms,
                len(envelope.msg_id),
                -1 if header is None else len(header),
                len(envelope.body),
            )
        )
        parts += (envelope.sender, envelope.msg_id, header or b"", envelope.body)
    return b"".join(parts)


def decode_envelopes(recipient: bytes, payload: bytes) -> list[StoredEnvelope] | None:
    """The envelopes of an ``E`` message's payload (after the tag), or None if it is
    malformed (the caller then re-reads the mailbox, as for ``W``)."""
    out: list[StoredEnvelope] = []
    pos, end = 0, len(payload)
    view = memoryview(payload)
    try:
        while pos < end:
            seq, stored_at, id_len, header_len, body_len = _RECORD.unpack_from(view, pos)
            pos += _RECORD.size
            fields_end = pos + wire.KEY_LEN + id_len + max(header_len, 0) + body_len
            if header_len < -1 or fields_end > end:
                return None
            sender = payload[pos : pos + wire.KEY_LEN]
            pos += wire.KEY_LEN
            msg_id = payload[pos : pos + id_len]
            pos += id_len
            header = None
            if header_len >= 0:
                header = payload[pos : pos + header_len]
                pos += header_len
            body = payload[pos : pos + body_len]
            pos += body_len
            out.append(StoredEnvelope(seq, recipient, sender, msg_id, body, stored_at, header))
    except struct.error:
        return None
    return out or None


class PendingWakes:
    """Wake-ups waiting for the next publishing round: per recipient, the envelopes to carry,
    or None once they no longer fit one ``E`` message (a plain ``W``, bounded memory)."""

    __slots__ = ("_bytes", "_pending")

    def __init__(self) -> None:
        self._pending: dict[bytes, list[StoredEnvelope] | None] = {}
        self._bytes: dict[bytes, int] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, recipient: bytes, envelope: StoredEnvelope | None) -> None:
        """Announce ``envelope`` (None: "something was committed") to ``recipient``."""
        if recipient in self._pending:
            carried = self._pending[recipient]
            if carried is None:
                return
        else:
            carried = self._pending[recipient] = []
            self._bytes[recipient] = 1
        if envelope is None:
            self._plain(recipient)
            return
        size = self._bytes[recipient] + record_size(envelope)
        if size > WAKE_PAYLOAD_MAX or len(carried) >= WAKE_MAX_ENVELOPES:
            self._plain(recipient)
            return
        carried.append(envelope)
        self._bytes[recipient] = size

    def _plain(self, recipient: bytes) -> None:
        self._pending[recipient] = None
        self._bytes.pop(recipient, None)

    def take(self) -> list[tuple[bytes, bytes]]:
        """(recipient, message) for every pending wake-up, emptying the queue."""
        pending, self._pending, self._bytes = self._pending, {}, {}
        return [
            (recipient, WAKE if carried is None else encode_envelopes(carried))
            for recipient, carried in pending.items()
        ]

    def restore(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Put back a round whose publishing failed (as plain wake-ups: newer envelopes may
        have been queued meanwhile, and the re-read covers them all)."""
        for recipient, _ in messages:
            self._plain(recipient)

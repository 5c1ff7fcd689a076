"""The wake-up messages of relay/node_wake.py: envelopes carried up to a bound, a plain
wake-up beyond it, malformed payloads refused (the receiver then re-reads the mailbox)."""

from __future__ import annotations

from messenger_tui.relay.node_wake import (
    ENVELOPES,
    WAKE,
    WAKE_MAX_ENVELOPES,
    WAKE_PAYLOAD_MAX,
    PendingWakes,
    decode_envelopes,
    encode_envelopes,
)
from messenger_tui.relay.store import StoredEnvelope

BOB = b"b" * 32
CAROL = b"c" * 32


def envelope(seq: int, body: bytes = b"hi", header: bytes | None = None) -> StoredEnvelope:
    return StoredEnvelope(seq, BOB, b"a" * 32, seq.to_bytes(16, "big"), body, 1_700 + seq, header)


def test_envelopes_round_trip_with_and_without_a_header() -> None:
    envelopes = [envelope(1), envelope(2, b"", b""), envelope(3, b"x" * 300, b"h" * 40)]
    message = encode_envelopes(envelopes)
    assert message[:1] == ENVELOPES
    assert decode_envelopes(BOB, message[1:]) == envelopes


def test_a_malformed_payload_decodes_to_none() -> None:
    payload = encode_envelopes([envelope(1), envelope(2)])[1:]
    assert decode_envelopes(BOB, payload[:-1]) is None  # truncated body
    assert decode_envelopes(BOB, payload[:10]) is None  # truncated record head
    assert decode_envelopes(BOB, b"") is None
    bad_header = bytearray(payload)
    bad_header[17:21] = (-2).to_bytes(4, "big", signed=True)
    assert decode_envelopes(BOB, bytes(bad_header)) is None


def test_pending_wakes_carry_a_batch_per_recipient_in_order() -> None:
    pending = PendingWakes()
    pending.add(BOB, envelope(1))
    pending.add(CAROL, None)
    pending.add(BOB, envelope(2))
    messages = dict(pending.take())
    assert decode_envelopes(BOB, messages[BOB][1:]) == [envelope(1), envelope(2)]
    assert messages[CAROL] == WAKE
    assert not pending and pending.take() == []


def test_a_batch_over_the_bounds_becomes_a_plain_wakeup() -> None:
    pending = PendingWakes()
    pending.add(BOB, envelope(1, b"x" * (WAKE_PAYLOAD_MAX // 2)))
    pending.add(BOB, envelope(2, b"x" * (WAKE_PAYLOAD_MAX // 2)))
    pending.add(BOB, envelope(3))  # still plain: the re-read covers it
    assert pending.take() == [(BOB, WAKE)]
    for seq in range(1, WAKE_MAX_ENVELOPES + 2):
        pending.add(BOB, envelope(seq))
    assert pending.take() == [(BOB, WAKE)]
    pending.add(BOB, envelope(1))
    pending.add(BOB, None)  # something not carried: a plain wake-up
    assert pending.take() == [(BOB, WAKE)]


def test_a_failed_round_is_put_back_as_plain_wakeups() -> None:
    pending = PendingWakes()
    pending.add(BOB, envelope(1))
    batch = pending.take()
    pending.add(BOB, envelope(2))  # queued while the failed round was in flight
    pending.restore(batch)
    assert pending.take() == [(BOB, WAKE)]

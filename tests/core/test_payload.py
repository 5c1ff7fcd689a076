"""Decrypted payloads: typed errors for anything that is not a payload, however it is built."""

from __future__ import annotations

import msgspec
import pytest

from messenger_tui.core import payload as pl


def _nested(depth: int) -> bytes:
    # A text payload whose last field (unknown to us) holds `depth` nested one-element
    # arrays: msgpack 0x91 is "array of 1", built by hand (msgspec will not encode it).
    head = msgspec.msgpack.encode(
        {"t": "text", "id": b"x" * 16, "text": "hi", "sent_at_ms": 1, "zz": None}
    )
    assert head.endswith(b"\xc0")
    return head[:-1] + b"\x91" * depth + b"\x00"


def test_an_unknown_field_nested_deeper_than_the_recursion_limit_is_malformed() -> None:
    with pytest.raises(pl.MalformedPayload, match="nested too deeply"):
        pl.decode_payload(_nested(100_000))


def test_a_shallow_unknown_field_is_ignored_for_forward_compatibility() -> None:
    decoded = pl.decode_payload(_nested(5))
    assert isinstance(decoded, pl.Text) and decoded.text == "hi"


def test_access_round_trips_and_old_texts_decode_without_the_new_fields() -> None:
    grant = pl.Access(secret=b"s" * 32)
    assert pl.decode_payload(pl.encode_payload(grant)) == grant
    old = msgspec.msgpack.encode({"t": "text", "id": b"i" * 16, "text": "a", "sent_at_ms": 5})
    text = pl.decode_payload(old)
    assert isinstance(text, pl.Text) and text.seq == 0 and text.access is None


def test_an_attachment_round_trips_and_a_bad_pointer_is_a_malformed_payload() -> None:
    from messenger_tui.core.attachments import AttachmentPointer, padded_size

    pointer = AttachmentPointer(
        blob_id=b"\x01" * 32,
        key=b"\x02" * 32,
        digest=b"\x03" * 32,
        size=1000,
        padded_size=padded_size(1000),
        name="voice.ogg",
        mime_type="audio/ogg",
        duration_ms=2500,
        waveform=(0, 3, 7),
    )
    message = pl.Attachment(id=b"i" * 16, pointer=pointer, sent_at_ms=5, seq=3)
    assert pl.decode_payload(pl.encode_payload(message)) == message
    raw = msgspec.msgpack.decode(pl.encode_payload(message))
    raw["pointer"]["name"] = "../../etc/passwd"
    with pytest.raises(pl.MalformedPayload, match="name"):
        pl.decode_payload(msgspec.msgpack.encode(raw))
    raw["pointer"]["name"] = "ok.ogg"
    raw["pointer"]["padded_size"] = 999
    with pytest.raises(pl.MalformedPayload, match="padded_size"):
        pl.decode_payload(msgspec.msgpack.encode(raw))

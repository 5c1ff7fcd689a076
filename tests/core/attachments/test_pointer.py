"""The attachment pointer: round trip, every field bounded, voice rules, typed errors."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest

from messenger_tui.core.attachments.padding import padded_size
from messenger_tui.core.attachments.pointer import (
    MAX_THUMBNAIL_BYTES,
    MAX_WAVEFORM_BARS,
    AttachmentPointer,
    decode_pointer,
    encode_pointer,
)
from messenger_tui.core.errors import MalformedAttachmentPointer


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "blob_id": bytes(range(32)),
        "key": bytes(range(32, 64)),
        "digest": bytes(range(64, 96)),
        "size": 12_345,
        "padded_size": padded_size(12_345),
        "name": "holiday photo.jpg",
        "mime_type": "image/jpeg",
        "thumbnail": b"\xff\xd8thumb",
    }
    base.update(changes)
    return base


VOICE = {
    "name": "voice.ogg",
    "mime_type": "audio/ogg",
    "thumbnail": None,
    "duration_ms": 12_340,
    "waveform": (0, 1, 3, 7, 5, 2),
}


def test_round_trip_and_size() -> None:
    for extra in ({}, VOICE):
        pointer = AttachmentPointer(**fields(**extra))
        data = encode_pointer(pointer)
        assert decode_pointer(data) == pointer
        assert len(data) < 400  # without the thumbnail: a pointer is small
    big = AttachmentPointer(**fields(thumbnail=bytes(MAX_THUMBNAIL_BYTES)))
    assert len(encode_pointer(big)) < 17 * 1024  # far under an envelope (96 KiB)
    assert AttachmentPointer(**fields(**VOICE)).is_voice
    assert AttachmentPointer(**fields()).layout.blob_size > 12_345


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"blob_id": b"short"}, "blob_id"),
        ({"blob_id": bytes(65)}, "blob_id"),
        ({"key": bytes(31)}, "key"),
        ({"digest": bytes(33)}, "digest"),
        ({"size": -1}, "size"),
        ({"size": 1 << 41, "padded_size": 1 << 41}, "size"),
        ({"padded_size": 12_345}, "padded_size"),
        ({"chunk_size": 1000}, "chunk_size"),
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "../etc/passwd"}, "name"),
        ({"name": "a\\b"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "csi\x9b"}, "name"),
        ({"name": ".."}, "name"),
        ({"mime_type": "image"}, "mime_type"),
        ({"mime_type": "image/png; x=1"}, "mime_type"),
        ({"mime_type": "a/" + "b" * 130}, "mime_type"),
        ({"thumbnail": b""}, "thumbnail"),
        ({"thumbnail": bytes(MAX_THUMBNAIL_BYTES + 1)}, "thumbnail"),
        ({**VOICE, "waveform": None}, "duration_ms/waveform"),
        ({**VOICE, "duration_ms": None}, "duration_ms/waveform"),
        ({**VOICE, "duration_ms": 0}, "duration_ms"),
        ({**VOICE, "duration_ms": 3_600_001}, "duration_ms"),
        ({**VOICE, "waveform": ()}, "waveform"),
        ({**VOICE, "waveform": (1,) * (MAX_WAVEFORM_BARS + 1)}, "waveform"),
        ({**VOICE, "waveform": (0, 8)}, "waveform"),
        ({**VOICE, "waveform": (-1,)}, "waveform"),
        ({**VOICE, "mime_type": "audio/mpeg"}, "mime_type"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedAttachmentPointer, match=f"pointer: {field} "):
        AttachmentPointer(**fields(**change))
    # the same from the wire (what a peer sends): a typed error naming the field
    raw = msgspec.msgpack.encode(fields(**change))
    with pytest.raises(MalformedAttachmentPointer, match=field.split("/")[0]):
        decode_pointer(raw)


def test_garbage_and_wrong_types_are_typed_errors() -> None:
    for raw in (b"", os.urandom(50), msgspec.msgpack.encode({"blob_id": 1})):
        with pytest.raises(MalformedAttachmentPointer, match="unreadable attachment pointer"):
            decode_pointer(raw)
    with pytest.raises(MalformedAttachmentPointer):
        decode_pointer(msgspec.msgpack.encode(fields(size="12")))


def test_nested_in_another_struct_it_is_validated_too() -> None:
    """A payload struct that carries a pointer (core/payload.py) gets the same checks."""

    class Carrier(msgspec.Struct, frozen=True):
        pointer: AttachmentPointer

    raw = msgspec.msgpack.encode({"pointer": fields(key=bytes(3))})
    with pytest.raises(msgspec.ValidationError, match="key must be 32 bytes"):
        msgspec.msgpack.decode(raw, type=Carrier)


def test_repr_shows_no_key() -> None:
    pointer = AttachmentPointer(**fields())
    assert pointer.key.hex() not in repr(pointer) and "key" not in repr(pointer)

"""Blob route wire format: the frames of an attachment upload or download (sans-I/O).

A client opens its own websocket to the relay at :data:`BLOB_PATH`, authenticates exactly like
the message link (``challenge`` -> ``auth`` -> ``auth_ok`` of :mod:`messenger_tui.core.wire`),
then sends requests; every frame is one binary websocket message holding one msgpack struct
tagged by ``t``. Refusals are :class:`messenger_tui.core.wire.Error` with ``ref`` echoing the
request's ``ref`` (or the blob id for a chunk). See docs/protocol.md, "Attachments: blob route".

Upload::

    blob_create(ref, size)         -> blob_created(ref, id, offset=0, max_chunk, window)
    blob_resume(ref, id)           -> blob_offset(ref, id, offset, size, complete)
    blob_chunk(id, offset, data)   -> blob_ack(id, offset, complete)      (offset: bytes stored)

Download (anyone authenticated who knows the id)::

    blob_get(ref, id, offset)      -> blob_info(ref, id, size), blob_data(id, offset, data)...,
                                      blob_end(id)
"""

from __future__ import annotations

import base64
from typing import Final, TypeVar

import msgspec

from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import Error, decode_bounded

#: Request path of the blob route (the message link is any other path, normally ``/``).
BLOB_PATH: Final = "/blob"
#: Length of a blob id: 32 random bytes chosen by the relay (unguessable: 256 bits).
BLOB_ID_LEN: Final = 32
#: Largest ``data`` of one blob_chunk or blob_data.
MAX_BLOB_CHUNK: Final = 256 * 1024
#: Largest websocket message on a blob connection: a chunk and its framing.
MAX_BLOB_MESSAGE: Final = MAX_BLOB_CHUNK + 1024
#: Unacknowledged chunks a client may have in flight (the relay says it in blob_created).
DEFAULT_BLOB_WINDOW: Final = 8


class BlobErrorCode:
    """``Error.code`` values the blob route adds to :class:`messenger_tui.core.wire.ErrorCode`
    (it also uses ``malformed``, ``unauthenticated``, ``auth_failed``, ``bad_request``,
    ``not_found``, ``forbidden``, ``too_large``, ``internal``)."""

    QUOTA_BYTES: Final = "quota_bytes"  # the identity's stored blob bytes would exceed its quota
    QUOTA_COUNT: Final = "quota_count"  # the identity holds as many blobs as allowed
    TOO_MANY_UPLOADS: Final = "too_many_uploads"  # unfinished uploads of this identity at bound
    RELAY_FULL: Final = "relay_full"  # the relay's blob space is exhausted
    BAD_OFFSET: Final = "bad_offset"  # a chunk not at the stored offset (resume first)
    INCOMPLETE: Final = "incomplete"  # blob_get of an upload that is not finished


class _BlobFrame(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=False):
    """Base of every blob route frame."""


# ---------------------------------------------------------------- client -> relay


class BlobCreate(_BlobFrame, tag="blob_create", frozen=True):
    """Start an upload of a ``size``-byte blob (the ciphertext's exact length)."""

    ref: int
    size: int


class BlobResume(_BlobFrame, tag="blob_resume", frozen=True):
    """Ask how many bytes of the caller's own upload ``id`` the relay holds."""

    ref: int
    id: bytes


class BlobChunk(_BlobFrame, tag="blob_chunk", frozen=True):
    """Bytes ``offset .. offset + len(data)`` of upload ``id``; ``offset`` must be what the
    relay holds (the last ack, or blob_offset after a resume)."""

    id: bytes
    offset: int
    data: bytes


class BlobGet(_BlobFrame, tag="blob_get", frozen=True):
    """Stream a finished blob from ``offset`` to its end."""

    ref: int
    id: bytes
    offset: int = 0


# ---------------------------------------------------------------- relay -> client


class BlobCreated(_BlobFrame, tag="blob_created", frozen=True):
    """The upload exists under ``id``; send chunks of at most ``max_chunk`` bytes, at most
    ``window`` of them unacknowledged."""

    ref: int
    id: bytes
    offset: int = 0
    max_chunk: int = MAX_BLOB_CHUNK
    window: int = DEFAULT_BLOB_WINDOW


class BlobOffset(_BlobFrame, tag="blob_offset", frozen=True):
    """Answer to blob_resume: the relay holds ``offset`` of ``size`` bytes."""

    ref: int
    id: bytes
    offset: int
    size: int
    complete: bool
    max_chunk: int = MAX_BLOB_CHUNK
    window: int = DEFAULT_BLOB_WINDOW


class BlobAck(_BlobFrame, tag="blob_ack", frozen=True):
    """The relay holds ``offset`` bytes of ``id`` (written; synced to disk at least every few
    MiB and before ``complete``); ``complete``: the blob is finished and downloadable."""

    id: bytes
    offset: int
    complete: bool = False


class BlobInfo(_BlobFrame, tag="blob_info", frozen=True):
    """Answer to blob_get: ``size`` bytes in all; blob_data frames follow."""

    ref: int
    id: bytes
    size: int


class BlobData(_BlobFrame, tag="blob_data", frozen=True):
    """Bytes ``offset .. offset + len(data)`` of blob ``id``."""

    id: bytes
    offset: int
    data: bytes


class BlobEnd(_BlobFrame, tag="blob_end", frozen=True):
    """Every requested byte of ``id`` was sent."""

    id: bytes
    size: int


BlobClientFrame = BlobCreate | BlobResume | BlobChunk | BlobGet
BlobRelayFrame = BlobCreated | BlobOffset | BlobAck | BlobInfo | BlobData | BlobEnd | Error

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_client_decoder: msgspec.msgpack.Decoder[BlobClientFrame] = msgspec.msgpack.Decoder(BlobClientFrame)
_relay_decoder: msgspec.msgpack.Decoder[BlobRelayFrame] = msgspec.msgpack.Decoder(BlobRelayFrame)


def encode_blob_frame(frame: BlobClientFrame | BlobRelayFrame) -> bytes:
    """Serialize a frame for a binary websocket message."""
    return _encoder.encode(frame)


def decode_blob_client_frame(data: bytes | str) -> BlobClientFrame:
    """Decode a frame a client sent on the blob route, checking field values.
    Raises MalformedFrame."""
    frame = _decode(_client_decoder, data)
    if not isinstance(frame, BlobCreate) and len(frame.id) != BLOB_ID_LEN:
        raise MalformedFrame(f"a blob id is {BLOB_ID_LEN} bytes, got {len(frame.id)}")
    if isinstance(frame, BlobCreate) and frame.size < 1:
        raise MalformedFrame("a blob has at least one byte")
    if isinstance(frame, BlobChunk | BlobGet) and frame.offset < 0:
        raise MalformedFrame("a blob offset is not negative")
    if isinstance(frame, BlobChunk) and not 0 < len(frame.data) <= MAX_BLOB_CHUNK:
        raise MalformedFrame(f"a blob chunk holds 1 to {MAX_BLOB_CHUNK} bytes")
    return frame


def decode_blob_relay_frame(data: bytes | str) -> BlobRelayFrame:
    """Decode a frame the relay sent on a blob connection. Raises MalformedFrame."""
    return _decode(_relay_decoder, data)


def _decode(decoder: msgspec.msgpack.Decoder[T], data: bytes | str) -> T:
    if isinstance(data, str):
        raise MalformedFrame("text frames are not part of the protocol; send binary frames")
    return decode_bounded(decoder, data, "blob frame")


def blob_id_text(blob_id: bytes) -> str:
    """A blob id as its file name: lowercase base32 without padding (52 characters)."""
    return base64.b32encode(blob_id).decode("ascii").rstrip("=").lower()


def blob_id_from_text(text: str) -> bytes:
    """The inverse of :func:`blob_id_text`; ValueError for anything else."""
    if len(text) != 52 or not text.isalnum() or not text.islower():
        raise ValueError("not a blob id")
    raw = base64.b32decode(text.upper() + "====")
    if len(raw) != BLOB_ID_LEN or blob_id_text(raw) != text:
        raise ValueError("not a blob id")
    return raw

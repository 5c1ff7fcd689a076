"""The attachment pointer: what the end-to-end message carries about a blob on the relay.

Everything a recipient needs to fetch, check, decrypt, show and save the file: the blob id,
the file key, the blob's digest, the real and padded sizes, the chunk size, the name and MIME
type, an optional small thumbnail, and for a voice message its duration and waveform. Every
field is bounded so a pointer stays well inside one envelope (docs/protocol.md
"Attachments: chunk format and pointer"). Decoding (alone or nested in a payload struct)
validates every field; a bad one raises
:class:`~messenger_tui.core.errors.MalformedAttachmentPointer` naming it.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from messenger_tui.core.attachments.layout import (
    DEFAULT_CHUNK_SIZE,
    DIGEST_LEN,
    KEY_LEN,
    BlobLayout,
    check_chunk_size,
)
from messenger_tui.core.attachments.padding import MAX_ATTACHMENT_SIZE, padded_size
from messenger_tui.core.errors import MalformedAttachmentPointer

MIN_BLOB_ID_LEN: Final = 16
MAX_BLOB_ID_LEN: Final = 64
MAX_NAME_CHARS: Final = 255
MAX_MIME_LEN: Final = 127
#: Largest thumbnail (a small JPEG or PNG): keeps a pointer far under an envelope's 96 KiB.
MAX_THUMBNAIL_BYTES: Final = 16 * 1024
#: Longest voice message (one hour).
MAX_VOICE_MS: Final = 3_600_000
MAX_WAVEFORM_BARS: Final = 128
#: Waveform levels are 0..7: one of the eight block characters ▁▂▃▄▅▆▇█ each.
MAX_WAVEFORM_LEVEL: Final = 7
VOICE_MIME: Final = "audio/ogg"

# RFC 6838 restricted names: type "/" subtype
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}")


def _bad(field: str, why: str) -> MalformedAttachmentPointer:
    return MalformedAttachmentPointer(f"attachment pointer: {field} {why}")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


class AttachmentPointer(msgspec.Struct, frozen=True, kw_only=True):
    """A file on the relay, sealed with ``key``; see the module doc."""

    blob_id: bytes
    key: bytes
    digest: bytes
    #: The file's real size (the blob holds :attr:`padded_size` bytes of plaintext).
    size: int
    padded_size: int
    #: As the sender named it (already passed through ``sanitize_filename``); the
    #: receiver sanitises it again before saving.
    name: str
    mime_type: str
    chunk_size: int = DEFAULT_CHUNK_SIZE
    thumbnail: bytes | None = None
    #: Voice messages only (both or neither): the length, and :data:`MAX_WAVEFORM_BARS` or
    #: fewer levels of 0..:data:`MAX_WAVEFORM_LEVEL`.
    duration_ms: int | None = None
    waveform: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not MIN_BLOB_ID_LEN <= len(self.blob_id) <= MAX_BLOB_ID_LEN:
            raise _bad("blob_id", f"must be {MIN_BLOB_ID_LEN}-{MAX_BLOB_ID_LEN} bytes")
        if len(self.key) != KEY_LEN:
            raise _bad("key", f"must be {KEY_LEN} bytes")
        if len(self.digest) != DIGEST_LEN:
            raise _bad("digest", f"must be {DIGEST_LEN} bytes")
        if not 0 <= self.size <= MAX_ATTACHMENT_SIZE:
            raise _bad("size", f"must be 0-{MAX_ATTACHMENT_SIZE} bytes")
        if self.padded_size != padded_size(self.size):
            raise _bad("padded_size", f"must be {padded_size(self.size)} for size {self.size}")
        try:
            check_chunk_size(self.chunk_size)
        except ValueError as exc:
            raise _bad("chunk_size", str(exc)) from None
        self._check_name()
        if len(self.mime_type) > MAX_MIME_LEN or not _MIME.fullmatch(self.mime_type):
            raise _bad("mime_type", "must be a type/subtype such as image/png")
        if self.thumbnail is not None and not 0 < len(self.thumbnail) <= MAX_THUMBNAIL_BYTES:
            raise _bad("thumbnail", f"must be 1-{MAX_THUMBNAIL_BYTES} bytes")
        self._check_voice()

    def _check_name(self) -> None:
        name = self.name
        if not name or len(name) > MAX_NAME_CHARS:
            raise _bad("name", f"must be 1-{MAX_NAME_CHARS} characters")
        if "/" in name or "\\" in name or _has_control(name) or name in (".", ".."):
            raise _bad("name", "must be a single file name without control characters")

    def _check_voice(self) -> None:
        if (self.duration_ms is None) != (self.waveform is None):
            raise _bad("duration_ms/waveform", "must both be set (a voice message) or neither")
        if self.duration_ms is None or self.waveform is None:
            return
        if not 0 < self.duration_ms <= MAX_VOICE_MS:
            raise _bad("duration_ms", f"must be 1-{MAX_VOICE_MS}")
        if not 0 < len(self.waveform) <= MAX_WAVEFORM_BARS:
            raise _bad("waveform", f"must have 1-{MAX_WAVEFORM_BARS} bars")
        if any(not 0 <= level <= MAX_WAVEFORM_LEVEL for level in self.waveform):
            raise _bad("waveform", f"levels must be 0-{MAX_WAVEFORM_LEVEL}")
        if self.mime_type != VOICE_MIME:
            raise _bad("mime_type", f"of a voice message must be {VOICE_MIME}")

    @property
    def is_voice(self) -> bool:
        return self.duration_ms is not None

    @property
    def layout(self) -> BlobLayout:
        """Offsets and sizes of the blob (its size is what the relay stores)."""
        return BlobLayout(self.size, self.chunk_size)

    def __repr__(self) -> str:  # never print the key
        return (
            f"AttachmentPointer(name={self.name!r}, size={self.size}, "
            f"mime_type={self.mime_type!r}, voice={self.is_voice})"
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AttachmentPointer)


def encode_pointer(pointer: AttachmentPointer) -> bytes:
    """The pointer as msgpack (a map of the field names)."""
    return _encoder.encode(pointer)


def decode_pointer(data: bytes) -> AttachmentPointer:
    """Parse and validate a pointer. Raises
    :class:`~messenger_tui.core.errors.MalformedAttachmentPointer`."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedAttachmentPointer(f"unreadable attachment pointer: {exc}") from None

"""The attachment blob format: header, chunk layout, nonces and the digest chain.

A file becomes a *blob* that the relay stores and serves by id. The blob is::

    header (21 bytes) || chunk 0 || chunk 1 || ... || chunk n-1

- The plaintext is the file followed by zero bytes up to :func:`padded_size` (the relay sees
  only the bucket). It is cut into chunks of ``chunk_size`` bytes (64 KiB; a power of two
  between 1 KiB and 4 MiB, named in the pointer and the header); the last chunk may be
  shorter; there is always at least one.
- Header: ``b"MTAT"``, version ``1``, ``log2(chunk_size)`` (one byte each after the magic),
  then a 15-byte random nonce prefix.
- Chunk ``i`` is ``XChaCha20-Poly1305-IETF(key, nonce_i, plaintext_i, ad=header)``: the
  plaintext and a 16-byte tag, with ``nonce_i = prefix || u64be(i) || last`` where ``last``
  is ``0x01`` for the final chunk and ``0x00`` otherwise (Hoang, Reyhanitabar, Rogaway and
  Vizar's STREAM). A flipped byte, a chunk moved to another place, a chunk of another file
  and a blob cut at a chunk boundary all fail that chunk's tag (the cut one because no chunk
  but the last is sealed as last).
- Digest (in the pointer, checked at the end): a SHA-256 chain over the blob,
  ``d = SHA-256("messenger-tui attachment digest v1" || header)`` then
  ``d = SHA-256(d || chunk_i)`` for each chunk. It commits the pointer to one exact blob:
  the per-chunk tags prove "encrypted by someone with the key", the digest proves "this
  encryption", so everyone given the pointer gets byte-identical content. (It does not make
  the AEAD key-committing: a sender who hands different people different keys for one blob
  is outside what the digest checks; it could as well hand them different blobs.)

The encryption itself (and why the format is this way) is in
:mod:`messenger_tui.core.attachments.stream`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Final

from messenger_tui.core.attachments.padding import MAX_ATTACHMENT_SIZE, padded_size
from messenger_tui.core.crypto.primitives import AEAD_KEY_LEN, AEAD_TAG_LEN
from messenger_tui.core.errors import TamperedAttachment

MAGIC: Final = b"MTAT"
VERSION: Final = 1
NONCE_PREFIX_LEN: Final = 15
HEADER_LEN: Final = len(MAGIC) + 2 + NONCE_PREFIX_LEN
KEY_LEN: Final = AEAD_KEY_LEN
DIGEST_LEN: Final = 32
TAG_LEN: Final = AEAD_TAG_LEN
DEFAULT_CHUNK_SIZE: Final = 64 * 1024
MIN_CHUNK_SIZE: Final = 1024
MAX_CHUNK_SIZE: Final = 4 * 1024 * 1024
DIGEST_LABEL: Final = b"messenger-tui attachment digest v1"
_LAST: Final = b"\x01"
_NOT_LAST: Final = b"\x00"
_INDEX: Final = struct.Struct(">Q")


def check_chunk_size(chunk_size: int) -> int:
    """``log2(chunk_size)``; ValueError unless a power of two in the allowed range."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE or chunk_size & (chunk_size - 1):
        raise ValueError(
            f"chunk size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes"
        )
    return chunk_size.bit_length() - 1


@dataclass(frozen=True, slots=True)
class BlobLayout:
    """Where everything is in the blob of a ``size``-byte file."""

    size: int
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: The plaintext's size after padding (derived).
    padded_size: int = field(init=False)
    #: Chunks in the blob, at least one (derived).
    chunk_count: int = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_ATTACHMENT_SIZE:
            raise ValueError(f"attachment size must be 0 to {MAX_ATTACHMENT_SIZE} bytes")
        check_chunk_size(self.chunk_size)
        padded = padded_size(self.size)
        object.__setattr__(self, "padded_size", padded)
        object.__setattr__(self, "chunk_count", max(1, -(-padded // self.chunk_size)))

    @property
    def blob_size(self) -> int:
        """The blob's length: what the relay stores and sees."""
        return HEADER_LEN + self.padded_size + self.chunk_count * TAG_LEN

    def chunk_plaintext_len(self, index: int) -> int:
        """Padded plaintext bytes in chunk ``index``."""
        self._check(index)
        return min(self.chunk_size, self.padded_size - index * self.chunk_size)

    def real_len(self, index: int) -> int:
        """Bytes of the file (not padding) in chunk ``index``."""
        self._check(index)
        return max(0, min(self.chunk_size, self.size - index * self.chunk_size))

    def unit_start(self, index: int) -> int:
        """Blob offset where unit ``index`` starts (0 for the first: it holds the header);
        ``unit_start(chunk_count)`` is the blob's size."""
        if not 0 <= index <= self.chunk_count:
            raise IndexError(f"chunk {index} of {self.chunk_count}")
        if index == self.chunk_count:
            return self.blob_size
        return 0 if index == 0 else HEADER_LEN + index * (self.chunk_size + TAG_LEN)

    def unit_len(self, index: int) -> int:
        """Bytes of unit ``index`` (with the header for unit 0)."""
        extra = HEADER_LEN if index == 0 else 0
        return extra + self.chunk_plaintext_len(index) + TAG_LEN

    def unit_at(self, offset: int) -> int:
        """The unit holding blob byte ``offset`` (``chunk_count`` at the end of the blob):
        where to resume when the relay holds ``offset`` bytes."""
        if not 0 <= offset <= self.blob_size:
            raise ValueError(f"offset {offset} outside a blob of {self.blob_size} bytes")
        if offset == self.blob_size:
            return self.chunk_count
        if offset < HEADER_LEN:
            return 0
        return min(self.chunk_count, (offset - HEADER_LEN) // (self.chunk_size + TAG_LEN))

    def _check(self, index: int) -> None:
        if not 0 <= index < self.chunk_count:
            raise IndexError(f"chunk {index} of {self.chunk_count}")


def build_header(chunk_size: int, prefix: bytes) -> bytes:
    return MAGIC + bytes([VERSION, check_chunk_size(chunk_size)]) + prefix


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + _INDEX.pack(index) + (_LAST if last else _NOT_LAST)


def digest_start(header: bytes) -> bytes:
    return hashlib.sha256(DIGEST_LABEL + header).digest()


def digest_step(chain: bytes, chunk: bytes) -> bytes:
    h = hashlib.sha256(chain)
    h.update(chunk)
    return h.digest()


def check_key_and_digest(key: bytes, chain: bytes | None) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"an attachment key is {KEY_LEN} bytes")
    if chain is None or len(chain) != DIGEST_LEN:
        raise ValueError(f"an attachment digest is {DIGEST_LEN} bytes")


def parse_header(header: bytes) -> tuple[int, bytes]:
    """(chunk size, nonce prefix) of a blob header, or :class:`TamperedAttachment`."""
    if len(header) != HEADER_LEN or header[: len(MAGIC)] != MAGIC:
        raise TamperedAttachment("the blob does not start with an attachment header")
    version, log2 = header[len(MAGIC)], header[len(MAGIC) + 1]
    if version != VERSION:
        raise TamperedAttachment(f"attachment format version {version} is not supported")
    chunk_size = 1 << log2
    try:
        check_chunk_size(chunk_size)
    except ValueError as exc:
        raise TamperedAttachment(f"the blob header's chunk size is invalid: {exc}") from None
    return chunk_size, header[-NONCE_PREFIX_LEN:]

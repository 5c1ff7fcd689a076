"""Chunked attachment encryption: a STREAM construction on XChaCha20-Poly1305, driven one
unit at a time, resumable from saved state. The format is in
:mod:`messenger_tui.core.attachments.layout` (and docs/protocol.md "Attachments").

Design choices:

- **Independent chunks, not libsodium's secretstream.** Chunk ``i`` is a pure function of the
  key, the header, ``i`` and its plaintext. secretstream's state after chunk ``k`` depends on
  every earlier tag and lives inside PyNaCl's object (no supported way to save it), so a
  transfer could not resume after a restart. With STREAM, an upload re-seals any chunk from
  the file (:meth:`AttachmentEncryptor.seal_chunk`: identical bytes, so a relay holding part
  of a chunk can take the rest), and a download resumes at any chunk boundary.
- **A digest chain, not SHA-256 of the blob.** ``hashlib`` cannot save a hash's midstate, so a
  plain SHA-256 would need the whole blob again after a restart. The chain's state is one
  32-byte value, saved in :meth:`~AttachmentEncryptor.snapshot`; it is as collision resistant
  as SHA-256 (a collision of two blobs gives a collision of SHA-256 at some step).
- **Deterministic sealing has one hazard:** sealing chunk ``i`` twice with *different*
  plaintext under one key leaks their XOR. Chunks are only re-sealed from the same file; a
  caller resuming an upload must check the file did not change (size and modification time,
  kept beside the snapshot) and otherwise start over with a fresh key
  (:class:`~messenger_tui.core.errors.AttachmentSourceChanged` catches a size change).

Both directions are driven one *unit* at a time: unit ``i`` is the blob's bytes of chunk ``i``
(unit 0 begins with the header). :class:`BlobLayout` gives every unit's offset and size, so a
transport can resume at any unit. Snapshots (msgpack) hold the file key: store them as secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from messenger_tui.core.attachments.layout import (
    DEFAULT_CHUNK_SIZE,
    HEADER_LEN,
    KEY_LEN,
    NONCE_PREFIX_LEN,
    BlobLayout,
    build_header,
    check_key_and_digest,
    chunk_nonce,
    digest_start,
    digest_step,
    parse_header,
)
from messenger_tui.core.crypto.primitives import KeyedAead, Rng, default_rng
from messenger_tui.core.errors import (
    AttachmentSourceChanged,
    CorruptTransferState,
    DecryptionFailed,
    DigestMismatch,
    TamperedAttachment,
    TruncatedAttachment,
)


class _EncryptorState(msgspec.Struct, frozen=True, tag="attachment-encryptor/1"):
    key: bytes
    header: bytes
    size: int
    next_index: int
    chain: bytes


class _DecryptorState(msgspec.Struct, frozen=True, tag="attachment-decryptor/1"):
    key: bytes
    digest: bytes
    size: int
    chunk_size: int
    next_index: int
    header: bytes | None
    chain: bytes | None
    plaintext_offset: int


_ENC_STATE = msgspec.msgpack.Decoder(_EncryptorState)
_DEC_STATE = msgspec.msgpack.Decoder(_DecryptorState)
_STATE_ENCODER = msgspec.msgpack.Encoder()


class AttachmentEncryptor:
    """Encrypts one file into its blob, one unit at a time::

        enc = AttachmentEncryptor.start(size)
        while not enc.done:
            upload(enc.encrypt_next(file.read(enc.next_real_len)))
        pointer fields: enc.key, enc.digest, enc.size, enc.padded_size

    :meth:`snapshot` saves the state between units; :meth:`restore` continues from it (seek
    the file to :attr:`plaintext_offset`) with byte-identical output. Not thread-safe (one
    output buffer is reused): one encryptor per thread.
    """

    def __init__(self, key: bytes, header: bytes, size: int, next_index: int, chain: bytes):
        self.layout = BlobLayout(size, parse_header(header)[0])
        self._key = key
        self.header = header
        self._prefix = header[-NONCE_PREFIX_LEN:]
        self._aead = KeyedAead(key, self.layout.chunk_size)
        self._next = next_index
        self._chain = chain

    @classmethod
    def start(
        cls, size: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE, rng: Rng = default_rng
    ) -> AttachmentEncryptor:
        """A new encryption of a ``size``-byte file under a fresh random key."""
        BlobLayout(size, chunk_size)  # validates
        header = build_header(chunk_size, rng(NONCE_PREFIX_LEN))
        return cls(rng(KEY_LEN), header, size, 0, digest_start(header))

    @property
    def key(self) -> bytes:
        return self._key

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def padded_size(self) -> int:
        return self.layout.padded_size

    @property
    def chunk_size(self) -> int:
        return self.layout.chunk_size

    @property
    def next_index(self) -> int:
        return self._next

    @property
    def done(self) -> bool:
        return self._next >= self.layout.chunk_count

    @property
    def next_real_len(self) -> int:
        """Bytes of the file the next unit takes (0 for a unit of padding only)."""
        return 0 if self.done else self.layout.real_len(self._next)

    @property
    def plaintext_offset(self) -> int:
        """Bytes of the file sealed so far: where to read next."""
        return min(self.size, self._next * self.chunk_size)

    @property
    def ciphertext_offset(self) -> int:
        """Bytes of the blob produced so far."""
        return self.layout.unit_start(self._next)

    @property
    def digest(self) -> bytes:
        """The blob's digest (for the pointer); only once :attr:`done`."""
        if not self.done:
            raise RuntimeError("the digest is known only after the last chunk")
        return self._chain

    def seal_chunk(self, index: int, real: bytes) -> bytes:
        """Unit ``index`` for the file's bytes ``real`` of that chunk, without advancing: to
        re-send a unit the relay lost or half-received (the bytes are identical as long as
        the file is)."""
        layout = self.layout
        want = layout.real_len(index)
        if len(real) != want:
            raise ValueError(f"chunk {index} takes {want} bytes of the file, not {len(real)}")
        plain_len = layout.chunk_plaintext_len(index)
        if plain_len > want:
            real = bytes(real) + bytes(plain_len - want)
        last = index == layout.chunk_count - 1
        sealed = self._aead.encrypt(chunk_nonce(self._prefix, index, last), real, self.header)
        return self.header + sealed if index == 0 else sealed

    def encrypt_next(self, real: bytes) -> bytes:
        """The next unit, for exactly :attr:`next_real_len` bytes of the file."""
        if self.done:
            raise RuntimeError("every chunk is already encrypted")
        unit = self.seal_chunk(self._next, real)
        self._chain = digest_step(self._chain, unit[HEADER_LEN:] if self._next == 0 else unit)
        self._next += 1
        return unit

    def snapshot(self) -> bytes:
        """The state between units, to persist (it holds the key: store it as a secret)."""
        state = _EncryptorState(self._key, self.header, self.size, self._next, self._chain)
        return _STATE_ENCODER.encode(state)

    @classmethod
    def restore(cls, snapshot: bytes) -> AttachmentEncryptor:
        """An encryptor continuing from :meth:`snapshot`. Raises
        :class:`~messenger_tui.core.errors.CorruptTransferState`."""
        try:
            state = _ENC_STATE.decode(snapshot)
            check_key_and_digest(state.key, state.chain)
            layout = BlobLayout(state.size, parse_header(state.header)[0])
            if not 0 <= state.next_index <= layout.chunk_count:
                raise ValueError("chunk index out of range")
            return cls(state.key, state.header, state.size, state.next_index, state.chain)
        except (msgspec.DecodeError, ValueError, TamperedAttachment) as exc:
            raise CorruptTransferState(f"unreadable encryptor state: {exc}") from None

    def __repr__(self) -> str:  # never print the key
        return f"AttachmentEncryptor(size={self.size}, next_index={self._next})"


class AttachmentDecryptor:
    """Checks and decrypts one blob, one unit at a time; nothing of a unit is returned unless
    it authenticated::

        dec = AttachmentDecryptor(key, digest, size)
        while not dec.done:
            tmp.write(dec.decrypt_next(download(dec.next_unit_len)))
        dec.finish()              # DigestMismatch / TruncatedAttachment
        rename tmp to its final name

    A failed unit raises :class:`~messenger_tui.core.errors.TamperedAttachment` (or
    :class:`~messenger_tui.core.errors.TruncatedAttachment` if it is short) and changes
    nothing. Since the digest is known only at the end, the caller writes to a temporary
    file and renames it only after :meth:`finish`. Not thread-safe, like the encryptor.
    """

    def __init__(
        self,
        key: bytes,
        digest: bytes,
        size: int,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        check_key_and_digest(key, digest)
        self.layout = BlobLayout(size, chunk_size)
        self._key = key
        self._digest = digest
        self._aead = KeyedAead(key, chunk_size)
        self._next = 0
        self._header: bytes | None = None
        self._chain: bytes | None = None
        self._released = 0

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def next_index(self) -> int:
        return self._next

    @property
    def done(self) -> bool:
        """Every unit authenticated (:meth:`finish` still checks the digest)."""
        return self._next >= self.layout.chunk_count

    @property
    def next_unit_len(self) -> int:
        """Bytes :meth:`decrypt_next` wants next (0 when done)."""
        return 0 if self.done else self.layout.unit_len(self._next)

    @property
    def ciphertext_offset(self) -> int:
        """Bytes of the blob verified so far: where to resume the download."""
        return self.layout.unit_start(self._next)

    @property
    def plaintext_offset(self) -> int:
        """Bytes of the file released so far (truncate a resumed temporary file to this)."""
        return self._released

    def decrypt_next(self, unit: bytes) -> bytes:
        """The file's bytes in the next unit (padding removed), once it authenticated."""
        if self.done:
            raise TamperedAttachment(
                f"data after the final chunk ({len(unit)} bytes past {self.layout.blob_size})"
            )
        index, layout = self._next, self.layout
        want = layout.unit_len(index)
        if len(unit) < want:
            raise TruncatedAttachment(
                f"the attachment ends inside chunk {index + 1} of {layout.chunk_count} "
                f"({len(unit)} of its {want} bytes)"
            )
        if len(unit) > want:
            raise ValueError(f"unit {index} is {want} bytes; pass exactly next_unit_len")
        header, chain = self._header, self._chain
        body = unit
        if index == 0:
            header = bytes(unit[:HEADER_LEN])
            if parse_header(header)[0] != layout.chunk_size:
                raise TamperedAttachment("the blob's header names another chunk size")
            chain = digest_start(header)
            body = unit[HEADER_LEN:]
        assert header is not None and chain is not None  # set by unit 0 (restore keeps them)
        prefix = header[-NONCE_PREFIX_LEN:]
        last = index == layout.chunk_count - 1
        try:
            plain = self._aead.decrypt(chunk_nonce(prefix, index, last), bytes(body), header)
        except DecryptionFailed:
            raise TamperedAttachment(
                f"chunk {index + 1} of {layout.chunk_count} failed authentication: changed, "
                "moved, cut short or not part of this attachment"
            ) from None
        real_len = layout.real_len(index)
        if real_len < len(plain) and plain[real_len:] != bytes(len(plain) - real_len):
            raise TamperedAttachment(f"chunk {index + 1} has non-zero padding past the file")
        self._header, self._chain = header, digest_step(chain, bytes(body))
        self._next += 1
        self._released += real_len
        return plain[:real_len] if real_len < len(plain) else plain

    def finish(self) -> None:
        """Raises :class:`~messenger_tui.core.errors.TruncatedAttachment` if units are
        missing, :class:`~messenger_tui.core.errors.DigestMismatch` if the blob is not the
        one the pointer names. Returns only when the file is complete and right."""
        if not self.done:
            raise TruncatedAttachment(
                f"the attachment ended after {self._next} of {self.layout.chunk_count} chunks "
                f"({self.ciphertext_offset} of {self.layout.blob_size} bytes)"
            )
        if self._chain != self._digest:
            raise DigestMismatch(
                "every chunk authenticated, but the blob's digest differs from the one in "
                "the message (the sender's file was encrypted more than once?)"
            )

    def snapshot(self) -> bytes:
        """The state between units, to persist (it holds the key: store it as a secret)."""
        state = _DecryptorState(
            self._key,
            self._digest,
            self.size,
            self.layout.chunk_size,
            self._next,
            self._header,
            self._chain,
            self._released,
        )
        return _STATE_ENCODER.encode(state)

    @classmethod
    def restore(cls, snapshot: bytes) -> AttachmentDecryptor:
        """A decryptor continuing from :meth:`snapshot`. Raises
        :class:`~messenger_tui.core.errors.CorruptTransferState`."""
        try:
            state = _DEC_STATE.decode(snapshot)
            dec = cls(state.key, state.digest, state.size, chunk_size=state.chunk_size)
            layout = dec.layout
            if not 0 <= state.next_index <= layout.chunk_count:
                raise ValueError("chunk index out of range")
            if (state.header is None) != (state.next_index == 0) or (
                (state.chain is None) != (state.header is None)
            ):
                raise ValueError("header and chain must be present after the first chunk")
            if state.header is not None:
                if parse_header(state.header)[0] != layout.chunk_size:
                    raise ValueError("header of another chunk size")
                check_key_and_digest(state.key, state.chain)
            released = min(layout.size, state.next_index * layout.chunk_size)
            if state.plaintext_offset != released:
                raise ValueError("released bytes do not match the chunk index")
        except (msgspec.DecodeError, ValueError, TamperedAttachment) as exc:
            raise CorruptTransferState(f"unreadable decryptor state: {exc}") from None
        dec._next, dec._header, dec._chain = state.next_index, state.header, state.chain
        dec._released = released
        return dec

    def __repr__(self) -> str:  # never print the key
        return f"AttachmentDecryptor(size={self.size}, next_index={self._next})"


def encrypt_pieces(encryptor: AttachmentEncryptor, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The blob's remaining units from the file's remaining bytes in pieces of any size (from
    :attr:`~AttachmentEncryptor.plaintext_offset` on). After the last unit,
    ``encryptor.digest`` is set. Raises
    :class:`~messenger_tui.core.errors.AttachmentSourceChanged` if the pieces add up to more
    or less than the announced size. Holds at most one chunk of the file besides a piece."""
    carry = b""  # the start of the next chunk, when a piece ended inside it
    extra = 0
    for piece in pieces:
        view, position = memoryview(piece), 0
        if carry:
            position = min(len(view), encryptor.next_real_len - len(carry))
            carry += view[:position]
            if len(carry) < encryptor.next_real_len:
                continue
            yield encryptor.encrypt_next(carry)
            carry = b""
        while 0 < (want := encryptor.next_real_len) <= len(view) - position:
            yield encryptor.encrypt_next(bytes(view[position : position + want]))
            position += want
        if position < len(view):
            if encryptor.next_real_len == 0:
                extra = len(view) - position
                break
            carry = bytes(view[position:])
    missing = encryptor.next_real_len - len(carry)
    if extra or missing:
        word = "longer" if extra else "shorter"
        raise AttachmentSourceChanged(
            f"the file is {extra or missing} bytes {word} than the {encryptor.size} announced "
            "when its upload started; start again"
        )
    while not encryptor.done:  # chunks of padding only
        yield encryptor.encrypt_next(b"")


def decrypt_pieces(decryptor: AttachmentDecryptor, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The file's bytes, unit by unit as each authenticates, from the blob's remaining bytes
    in pieces of any size (from :attr:`~AttachmentDecryptor.ciphertext_offset` on). Holds at
    most one unit besides a piece. Raises as :meth:`AttachmentDecryptor.decrypt_next`, and
    :class:`~messenger_tui.core.errors.TruncatedAttachment` if the pieces end inside a unit.
    Call :meth:`AttachmentDecryptor.finish` after it."""
    carry = b""
    for piece in pieces:
        view, position = memoryview(piece), 0
        if carry:
            position = min(len(view), decryptor.next_unit_len - len(carry))
            carry += view[:position]
            if len(carry) < decryptor.next_unit_len:
                continue
            yield decryptor.decrypt_next(carry)
            carry = b""
        while 0 < (want := decryptor.next_unit_len) <= len(view) - position:
            yield decryptor.decrypt_next(bytes(view[position : position + want]))
            position += want
        if position < len(view):
            if decryptor.done:
                decryptor.decrypt_next(bytes(view[position:]))  # raises: after the final chunk
            carry = bytes(view[position:])
    if carry:
        decryptor.decrypt_next(carry)  # raises TruncatedAttachment

"""Chunked attachment encryption: the exact format, round trips, every kind of damage caught
chunk by chunk with nothing released from the bad chunk, and resumption from saved state."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

import nacl.bindings
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_tui.core.attachments.layout import DIGEST_LABEL, HEADER_LEN, BlobLayout
from messenger_tui.core.attachments.padding import padded_size
from messenger_tui.core.attachments.stream import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_pieces,
    encrypt_pieces,
)
from messenger_tui.core.errors import (
    AttachmentIntegrityError,
    AttachmentSourceChanged,
    CorruptTransferState,
    DigestMismatch,
    TamperedAttachment,
    TruncatedAttachment,
)

CHUNK = 1024  # the smallest chunk size: many chunks from small files
TAG = 16
EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 7]
sizes = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 9 * CHUNK))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fixed_rng(*chunks: bytes) -> Callable[[int], bytes]:
    it = iter(chunks)

    def rng(n: int) -> bytes:
        chunk = next(it)
        if len(chunk) != n:
            pytest.fail("rng length")
        return chunk

    return rng


def encrypt(data: bytes, chunk_size: int = CHUNK) -> tuple[AttachmentEncryptor, bytes]:
    enc = AttachmentEncryptor.start(len(data), chunk_size=chunk_size)
    blob = b"".join(encrypt_pieces(enc, [data]))
    return enc, blob


def decryptor(enc: AttachmentEncryptor) -> AttachmentDecryptor:
    return AttachmentDecryptor(enc.key, enc.digest, enc.size, chunk_size=enc.chunk_size)


def units(blob: bytes, layout: BlobLayout) -> list[bytes]:
    return [
        blob[layout.unit_start(i) : layout.unit_start(i) + layout.unit_len(i)]
        for i in range(layout.chunk_count)
    ]


def decrypt_collect(dec: AttachmentDecryptor, pieces: list[bytes]) -> tuple[bytes, Exception]:
    """(plaintext released before the error, the error) - the error is required."""
    released = bytearray()
    try:
        for plain in decrypt_pieces(dec, pieces):
            released += plain
        dec.finish()
    except AttachmentIntegrityError as exc:
        return bytes(released), exc
    pytest.fail("damage went unnoticed")


def test_known_answer() -> None:
    """A fixed key and nonce prefix give these exact bytes; and the same bytes built by hand
    from the format's description (docs/protocol.md) with libsodium directly."""
    prefix, key = bytes(range(15)), bytes(range(100, 132))
    enc = AttachmentEncryptor.start(17, chunk_size=CHUNK, rng=fixed_rng(prefix, key))
    assert enc.key == key
    blob = b"".join(encrypt_pieces(enc, [b"hello, ", b"attachment"]))
    assert hashlib.sha256(blob).hexdigest() == (
        "c35b8a48d9226b93367e8ef62420848cbc4642b5e2291a3300cbc178572e9090"
    )
    assert enc.digest.hex() == "f22ccb41d0c9f87fc35cfcea3243c1ef3ce4e5c6e1ee45c7ebd47cea06f19b18"

    header = b"MTAT" + bytes([1, 10]) + prefix
    nonce = prefix + (0).to_bytes(8, "big") + b"\x01"  # chunk 0, the last one
    plaintext = b"hello, attachment" + bytes(541 - 17)  # padded to the smallest bucket
    sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, nonce, key)
    assert blob == header + sealed
    chain = hashlib.sha256(DIGEST_LABEL + header).digest()
    assert enc.digest == hashlib.sha256(chain + sealed).digest()
    assert len(blob) == HEADER_LEN + 541 + TAG == enc.layout.blob_size


def test_known_answer_two_chunks_nonces() -> None:
    """Chunk 1 of 2 uses index 1 with the last flag; chunk 0 index 0 without it."""
    prefix, key = bytes(15), bytes(32)
    enc = AttachmentEncryptor.start(CHUNK + 5, chunk_size=CHUNK, rng=fixed_rng(prefix, key))
    data = bytes([7]) * (CHUNK + 5)
    blob = b"".join(encrypt_pieces(enc, [data]))
    header = b"MTAT\x01\x0a" + prefix
    pad = padded_size(CHUNK + 5)
    seal = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    c0 = seal(data[:CHUNK], header, prefix + (0).to_bytes(8, "big") + b"\x00", key)
    c1 = seal(
        data[CHUNK:] + bytes(pad - len(data)),
        header,
        prefix + (1).to_bytes(8, "big") + b"\x01",
        key,
    )
    assert blob == header + c0 + c1
    chain = hashlib.sha256(DIGEST_LABEL + header).digest()
    chain = hashlib.sha256(chain + c0).digest()
    assert enc.digest == hashlib.sha256(chain + c1).digest()


@FAST
@given(size=sizes, piece=st.integers(1, 3000), seed=st.binary(min_size=8, max_size=8))
def test_round_trip_any_size_any_pieces(size: int, piece: int, seed: bytes) -> None:
    data = (hashlib.sha256(seed).digest() * (size // 32 + 1))[:size]
    enc = AttachmentEncryptor.start(size, chunk_size=CHUNK)
    blob = b"".join(encrypt_pieces(enc, [data[i : i + piece] for i in range(0, size, piece)]))
    assert len(blob) == enc.layout.blob_size == BlobLayout(size, CHUNK).blob_size
    dec = decryptor(enc)
    out = b"".join(decrypt_pieces(dec, [blob[i : i + piece] for i in range(0, len(blob), piece)]))
    dec.finish()
    assert out == data
    assert dec.plaintext_offset == size and dec.ciphertext_offset == len(blob)


def test_default_chunk_size_round_trip() -> None:
    for size in (0, 65535, 65536, 65537, 300_000):
        data = os.urandom(size)
        enc, blob = encrypt(data, chunk_size=65536)
        dec = decryptor(enc)
        assert b"".join(decrypt_pieces(dec, [blob])) == data
        dec.finish()


def test_the_relay_sees_only_the_bucket() -> None:
    """Files of different sizes in one bucket make blobs of one size."""
    a, b = BlobLayout(60_000, CHUNK), BlobLayout(padded_size(60_000), CHUNK)
    assert a.padded_size == b.padded_size and a.blob_size == b.blob_size
    assert BlobLayout(1, CHUNK).blob_size == BlobLayout(541, CHUNK).blob_size


@FAST
@given(size=sizes, data=st.data())
def test_any_flipped_byte_is_caught_at_its_chunk(size: int, data: st.DataObject) -> None:
    plain = os.urandom(size)
    enc, blob = encrypt(plain)
    layout = enc.layout
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(blob)
    damaged[position] ^= 1 << bit
    released, error = decrypt_collect(decryptor(enc), [bytes(damaged)])
    assert isinstance(error, TamperedAttachment)
    bad = layout.unit_at(position)
    # everything before the damaged chunk, nothing of it or after it
    assert released == plain[: bad * CHUNK]


@FAST
@given(size=sizes, data=st.data())
def test_truncation_anywhere_is_caught(size: int, data: st.DataObject) -> None:
    plain = os.urandom(size)
    enc, blob = encrypt(plain)
    layout = enc.layout
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    released, error = decrypt_collect(decryptor(enc), [blob[:cut]])
    assert isinstance(error, TruncatedAttachment)
    complete = layout.unit_at(cut)  # units entirely before the cut
    assert released == plain[: complete * CHUNK]


@FAST
@given(size=st.integers(2 * CHUNK, 9 * CHUNK))
def test_truncation_at_every_chunk_boundary(size: int) -> None:
    plain = os.urandom(size)
    enc, blob = encrypt(plain)
    layout = enc.layout
    for k in range(layout.chunk_count):
        dec = decryptor(enc)
        released, error = decrypt_collect(dec, [blob[: layout.unit_start(k)]])
        assert isinstance(error, TruncatedAttachment), k
        assert f"after {k} of {layout.chunk_count} chunks" in str(error)
        assert released == plain[: k * CHUNK]


@FAST
@given(size=st.integers(3 * CHUNK, 9 * CHUNK), data=st.data())
def test_swapped_chunks_are_caught(size: int, data: st.DataObject) -> None:
    plain = os.urandom(size)
    enc, blob = encrypt(plain)
    layout = enc.layout
    parts = units(blob, layout)
    parts[0] = parts[0][HEADER_LEN:]
    full = [i for i in range(layout.chunk_count) if layout.chunk_plaintext_len(i) == CHUNK]
    i, j = sorted(data.draw(st.lists(st.sampled_from(full), min_size=2, max_size=2, unique=True)))
    parts[i], parts[j] = parts[j], parts[i]
    swapped = blob[:HEADER_LEN] + b"".join(parts)
    released, error = decrypt_collect(decryptor(enc), [swapped])
    assert isinstance(error, TamperedAttachment)
    assert f"chunk {i + 1} of" in str(error)
    assert released == plain[: i * CHUNK]


def test_a_middle_chunk_presented_as_the_last_one() -> None:
    """A blob cut after chunk 2 of 5, read as a 2-chunk file: chunk 2 was not sealed as
    the last one, so it fails (the size in the pointer is end-to-end authenticated; this
    is the STREAM last flag at work)."""
    plain = os.urandom(4096)  # padded to 4,201 bytes: 5 chunks
    enc, blob = encrypt(plain)
    assert enc.layout.chunk_count == 5
    shorter = AttachmentDecryptor(enc.key, enc.digest, 1900, chunk_size=CHUNK)  # 2 chunks
    assert shorter.layout.chunk_count == 2
    released, error = decrypt_collect(shorter, [blob[: enc.layout.unit_start(2)]])
    assert isinstance(error, TamperedAttachment) and "chunk 2 of 2" in str(error)
    assert released == plain[:CHUNK]


def test_data_after_the_final_chunk() -> None:
    enc, blob = encrypt(os.urandom(2000))
    _, error = decrypt_collect(decryptor(enc), [blob + b"x"])
    assert isinstance(error, TamperedAttachment)
    assert "after the final chunk" in str(error)


def test_a_blob_of_another_file_fails_its_first_chunk() -> None:
    enc_a, _ = encrypt(os.urandom(3000))
    _, blob_b = encrypt(os.urandom(3000))
    released, error = decrypt_collect(decryptor(enc_a), [blob_b])
    assert isinstance(error, TamperedAttachment) and released == b""


def test_the_same_file_encrypted_twice_is_a_digest_mismatch() -> None:
    """Same key, another nonce prefix: every chunk authenticates, the digest does not match.
    (What the digest is for: the pointer names exactly one blob.)"""
    data = os.urandom(5000)
    first, _ = encrypt(data)
    key = first.key
    second = AttachmentEncryptor.start(
        len(data), chunk_size=CHUNK, rng=fixed_rng(os.urandom(15), key)
    )
    other_blob = b"".join(encrypt_pieces(second, [data]))
    dec = decryptor(first)
    assert b"".join(decrypt_pieces(dec, [other_blob])) == data
    with pytest.raises(DigestMismatch, match="digest differs"):
        dec.finish()


def test_a_wrong_digest_in_the_pointer() -> None:
    enc, blob = encrypt(os.urandom(100))
    dec = AttachmentDecryptor(enc.key, bytes(32), enc.size, chunk_size=CHUNK)
    list(decrypt_pieces(dec, [blob]))
    with pytest.raises(DigestMismatch):
        dec.finish()


def test_header_damage_names_the_problem() -> None:
    enc, blob = encrypt(os.urandom(100))
    for change, message in (
        (b"XTAT", "does not start with an attachment header"),
        (b"MTAT\x02", "version 2 is not supported"),
        (b"MTAT\x01\x0b", "another chunk size"),
        (b"MTAT\x01\x30", "chunk size is invalid"),
    ):
        damaged = change + blob[len(change) :]
        with pytest.raises(TamperedAttachment, match=message):
            list(decrypt_pieces(decryptor(enc), [damaged]))


def test_a_failed_chunk_changes_nothing() -> None:
    """After a damaged unit is refused, the good unit still decrypts: a retry works."""
    plain = os.urandom(3 * CHUNK)
    enc, blob = encrypt(plain)
    dec = decryptor(enc)
    parts = units(blob, enc.layout)
    assert dec.decrypt_next(parts[0]) == plain[:CHUNK]
    state = dec.snapshot()
    with pytest.raises(TamperedAttachment):
        dec.decrypt_next(bytes([parts[1][0] ^ 1]) + parts[1][1:])
    with pytest.raises(TruncatedAttachment, match="ends inside chunk 2"):
        dec.decrypt_next(parts[1][:-1])
    assert dec.snapshot() == state
    assert dec.decrypt_next(parts[1]) == plain[CHUNK : 2 * CHUNK]


def test_nonzero_padding_is_refused() -> None:
    """A sender whose pointer understates the size (same bucket): the extra bytes sit where
    padding must be zero."""
    plain = os.urandom(700)
    enc, blob = encrypt(plain)
    liar = AttachmentDecryptor(enc.key, enc.digest, 695, chunk_size=CHUNK)
    assert liar.layout.padded_size == enc.layout.padded_size == 725
    with pytest.raises(TamperedAttachment, match="non-zero padding"):
        list(decrypt_pieces(liar, [blob]))


@FAST
@given(size=sizes, data=st.data())
def test_encryptor_resumes_from_a_snapshot(size: int, data: st.DataObject) -> None:
    """Encrypt units 0..k-1, save the state, restore it (a new process), continue: the same
    bytes and digest as one uninterrupted run."""
    plain = os.urandom(size)
    enc = AttachmentEncryptor.start(size, chunk_size=CHUNK)
    k = data.draw(st.integers(0, enc.layout.chunk_count), label="k")
    head = b""
    while enc.next_index < k:
        start = enc.plaintext_offset
        head += enc.encrypt_next(plain[start : start + enc.next_real_len])
    saved = enc.snapshot()
    restored = AttachmentEncryptor.restore(saved)
    assert restored.ciphertext_offset == len(head)
    rest = plain[restored.plaintext_offset :]
    blob = head + b"".join(encrypt_pieces(restored, [rest]))
    uninterrupted = b"".join(encrypt_pieces(enc, [rest]))
    assert blob == head + uninterrupted
    assert restored.digest == enc.digest
    # any unit re-sealed later is identical (a relay holding half of one takes the rest)
    layout = enc.layout
    for i in range(layout.chunk_count):
        real = plain[i * CHUNK : i * CHUNK + layout.real_len(i)]
        unit = blob[layout.unit_start(i) : layout.unit_start(i) + layout.unit_len(i)]
        assert restored.seal_chunk(i, real) == unit
    dec = decryptor(restored)
    assert b"".join(decrypt_pieces(dec, [blob])) == plain
    dec.finish()


@FAST
@given(size=sizes, data=st.data())
def test_decryptor_resumes_from_a_snapshot(size: int, data: st.DataObject) -> None:
    plain = os.urandom(size)
    enc, blob = encrypt(plain)
    layout = enc.layout
    k = data.draw(st.integers(0, layout.chunk_count), label="k")
    dec = decryptor(enc)
    head = b"".join(decrypt_pieces(dec, [blob[: layout.unit_start(k)]]))
    restored = AttachmentDecryptor.restore(dec.snapshot())
    assert restored.ciphertext_offset == layout.unit_start(k)
    assert restored.plaintext_offset == len(head)
    tail = b"".join(decrypt_pieces(restored, [blob[restored.ciphertext_offset :]]))
    restored.finish()
    assert head + tail == plain


def test_unit_at_maps_relay_offsets_to_resume_points() -> None:
    layout = BlobLayout(5 * CHUNK, CHUNK)
    assert layout.unit_at(0) == 0
    assert layout.unit_at(HEADER_LEN + CHUNK + TAG - 1) == 0
    assert layout.unit_at(HEADER_LEN + CHUNK + TAG) == 1 == layout.unit_at(layout.unit_start(1))
    assert layout.unit_at(layout.blob_size) == layout.chunk_count
    assert layout.unit_start(layout.chunk_count) == layout.blob_size
    with pytest.raises(ValueError):
        layout.unit_at(layout.blob_size + 1)


def test_corrupt_snapshots_are_typed_errors() -> None:
    enc, _ = encrypt(os.urandom(5000))
    dec = decryptor(enc)
    good_enc, good_dec = AttachmentEncryptor.start(10).snapshot(), dec.snapshot()
    for bad in (b"", b"\x00", os.urandom(40), good_enc[:-3], good_dec[:-3]):
        with pytest.raises(CorruptTransferState):
            AttachmentEncryptor.restore(bad)
        with pytest.raises(CorruptTransferState):
            AttachmentDecryptor.restore(bad)
    with pytest.raises(CorruptTransferState):
        AttachmentEncryptor.restore(good_dec)  # the other kind
    tampered = good_enc.replace(b"MTAT", b"XTAT")
    with pytest.raises(CorruptTransferState, match="header"):
        AttachmentEncryptor.restore(tampered)


def test_a_file_that_changed_size_is_refused() -> None:
    for actual in (999, 1001, 5000):
        enc = AttachmentEncryptor.start(1000, chunk_size=CHUNK)
        word = "longer" if actual > 1000 else "shorter"
        with pytest.raises(AttachmentSourceChanged, match=f"bytes {word} than the 1000"):
            list(encrypt_pieces(enc, [os.urandom(actual)]))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="power of two"):
        AttachmentEncryptor.start(10, chunk_size=1000)
    with pytest.raises(ValueError, match="power of two"):
        BlobLayout(10, 8 * 1024 * 1024)
    with pytest.raises(ValueError):
        AttachmentEncryptor.start(-1)
    enc = AttachmentEncryptor.start(10, chunk_size=CHUNK)
    with pytest.raises(ValueError, match="takes 10 bytes"):
        enc.encrypt_next(b"x")
    with pytest.raises(RuntimeError, match="only after the last chunk"):
        _ = enc.digest
    enc.encrypt_next(bytes(10))
    with pytest.raises(RuntimeError):
        enc.encrypt_next(b"")
    with pytest.raises(ValueError, match="32 bytes"):
        AttachmentDecryptor(bytes(31), bytes(32), 10)
    assert enc.key.hex() not in repr(enc) and "key" not in repr(decryptor(enc))


def _pieces_of(blob: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(blob), size):
        yield blob[i : i + size]


def test_decrypt_pieces_buffers_at_most_one_unit() -> None:
    """A slow producer of 1-byte pieces: the decryptor yields each unit as soon as it is
    complete (the buffer never holds more than one unit)."""
    plain = os.urandom(3 * CHUNK)
    enc, blob = encrypt(plain)
    dec = decryptor(enc)
    fed = 0

    def counted() -> Iterator[bytes]:
        nonlocal fed
        for piece in _pieces_of(blob, 1):
            fed += 1
            yield piece

    for index, plain_unit in enumerate(decrypt_pieces(dec, counted())):
        assert fed == enc.layout.unit_start(index) + enc.layout.unit_len(index)
        assert plain_unit == plain[index * CHUNK : (index + 1) * CHUNK][: len(plain_unit)]
    dec.finish()

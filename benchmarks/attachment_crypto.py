"""Attachment encryption throughput: our chunked format beside bare libsodium loops.

In one process and one run, over the same random bytes held in memory (no disk, no network):

- **ours, encrypt**: ``encrypt_pieces`` over 1 MiB pieces (what a file read gives), 64 KiB
  chunks: padding, XChaCha20-Poly1305 per chunk, the SHA-256 digest chain;
- **ours, decrypt**: ``decrypt_pieces`` over 256 KiB pieces (what a download delivers), then
  ``finish`` (the digest check);
- **baseline, secretstream**: libsodium's ``crypto_secretstream_xchacha20poly1305`` push and
  pull of the same 64 KiB chunks through PyNaCl's bindings, nothing else (the issue's other
  candidate construction);
- **baseline, AEAD only**: one ``crypto_aead_xchacha20poly1305_ietf_encrypt`` per 64 KiB chunk;
- **baseline, AEAD + SHA-256**: the same, hashing the output with one ``hashlib.sha256``: the
  floor of any format with a ciphertext digest (ours adds padding, the chain and Python).

Throughput = bytes of file / CPU time of this process (``time.process_time``) for the best of
``ROUNDS`` rounds; wall time is kept in the JSON.

    python -m benchmarks.attachment_crypto [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from benchmarks.common import Settings, fmt, md_table
from messenger_tui.core.attachments import (
    AttachmentDecryptor,
    AttachmentEncryptor,
    decrypt_pieces,
    encrypt_pieces,
)

NAME = "attachment_crypto"
TITLE = "Attachment encryption throughput"
CHUNK = 64 * 1024
READ_PIECE = 1024 * 1024
DOWNLOAD_PIECE = 256 * 1024
ROUNDS = 3
MIB = 1024 * 1024


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def _measure(name: str, size: int, work: Callable[[], object]) -> dict[str, Any]:
    runs = [_timed(work) for _ in range(ROUNDS)]
    cpu, wall = min(runs)
    return {
        "name": name,
        "mib_per_s": round(size / MIB / max(cpu, 1e-9), 1),
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
    }


def run(settings: Settings) -> dict[str, Any]:
    size = (16 if settings.quick else 128) * MIB
    data = os.urandom(size)
    reads = _pieces(data, READ_PIECE)
    units: list[bytes] = []
    encryptor = AttachmentEncryptor.start(size, chunk_size=CHUNK)

    def ours_encrypt() -> None:
        nonlocal encryptor
        encryptor = AttachmentEncryptor.start(size, chunk_size=CHUNK)
        units[:] = encrypt_pieces(encryptor, reads)

    enc_result = _measure("ours: encrypt (pad, seal, digest)", size, ours_encrypt)
    blob = b"".join(units)
    downloads = _pieces(blob, DOWNLOAD_PIECE)

    def ours_decrypt() -> None:
        dec = AttachmentDecryptor(encryptor.key, encryptor.digest, size, chunk_size=CHUNK)
        for _ in decrypt_pieces(dec, downloads):
            pass
        dec.finish()

    dec_result = _measure("ours: decrypt (open, digest, check)", size, ours_decrypt)

    chunks = _pieces(data, CHUNK)
    key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
    final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
    sealed: list[bytes] = []
    header = b""

    def stream_push() -> None:
        nonlocal header
        state = sodium.crypto_secretstream_xchacha20poly1305_state()
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
        sealed.clear()
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            tag = final if i == last else 0
            sealed.append(
                sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, None, tag)
            )

    def stream_pull() -> None:
        state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        for chunk in sealed:
            sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk, None)

    push_result = _measure("baseline: secretstream push", size, stream_push)
    pull_result = _measure("baseline: secretstream pull", size, stream_pull)
    aead_key, nonce = os.urandom(32), os.urandom(24)

    def aead_only() -> None:
        for chunk in chunks:
            sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(chunk, b"", nonce, aead_key)

    aead_result = _measure("baseline: XChaCha20-Poly1305 per chunk only", size, aead_only)

    def aead_and_hash() -> None:
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(
                sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(chunk, b"", nonce, aead_key)
            )
        digest.digest()

    floor_result = _measure("baseline: the same + SHA-256 of the output", size, aead_and_hash)
    return {
        "bytes": size,
        "chunk": CHUNK,
        "rows": [enc_result, dec_result, push_result, pull_result, aead_result, floor_result],
        "encrypt_vs_floor": round(enc_result["mib_per_s"] / floor_result["mib_per_s"], 2),
        "encrypt_vs_secretstream": round(enc_result["mib_per_s"] / push_result["mib_per_s"], 2),
        "decrypt_vs_secretstream": round(dec_result["mib_per_s"] / pull_result["mib_per_s"], 2),
        "blob_overhead_pct": round(100 * (len(blob) - size) / size, 2),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            row["name"],
            fmt(row["mib_per_s"], 0),
            fmt(row["cpu_s"] * 1000, 0),
            fmt(row["wall_s"] * 1000, 0),
        ]
        for row in result["rows"]
    ]
    table = md_table(["path", "MiB/s (CPU)", "CPU ms", "wall ms"], rows)
    return (
        f"{result['bytes'] // MIB} MiB in memory, {result['chunk'] // 1024} KiB chunks, best of "
        f"{ROUNDS}.\n\n{table}\n\nOurs against secretstream: encrypt "
        f"{result['encrypt_vs_secretstream']:.2f}x, decrypt "
        f"{result['decrypt_vs_secretstream']:.2f}x; encrypt against AEAD + SHA-256 alone (the "
        f"floor of a format with a digest): {result['encrypt_vs_floor']:.2f}x. Blob overhead "
        f"(padding to the bucket, header, tags): {result['blob_overhead_pct']:.2f} %."
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attachment_crypto")
    parser.add_argument("--quick", action="store_true", help="16 MiB instead of 128 MiB")
    args = parser.parse_args()
    result = run(Settings(workdir=Path("."), quick=args.quick))
    print(render(result))


if __name__ == "__main__":
    main()

"""Decrypt every page of an SQLCipher 4 database file (or the frames of its WAL) with the raw
key, so a test can search the plaintext of every page, free pages included: what an attacker
who learned the key would see, beyond what SQL still returns.

SQLCipher 4 defaults: 4096-byte pages, each AES-256-CBC encrypted under the raw key, with a
16-byte IV and a 64-byte HMAC-SHA512 in an 80-byte reserve at its end; page 1 starts with the
16-byte salt instead of the SQLite header. (The HMAC is not checked here.)
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PAGE = 4096
RESERVE = 80
SALT = 16
WAL_HEADER = 32
FRAME_HEADER = 24


def decrypt_page(key: bytes, page: bytes, first: bool) -> bytes:
    start = SALT if first else 0
    iv = page[PAGE - RESERVE : PAGE - RESERVE + 16]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(page[start : PAGE - RESERVE]) + decryptor.finalize()


def database_plaintext(key: bytes, path: Path) -> bytes:
    """Every page of the database file, decrypted and concatenated."""
    data = path.read_bytes()
    return b"".join(
        decrypt_page(key, data[i : i + PAGE], i == 0) for i in range(0, len(data) - PAGE + 1, PAGE)
    )


def wal_plaintext(key: bytes, path: Path) -> bytes:
    """Every frame's page in the WAL file, decrypted (empty for a missing or empty WAL)."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    out = []
    pos = WAL_HEADER
    while pos + FRAME_HEADER + PAGE <= len(data):
        page_no = int.from_bytes(data[pos : pos + 4], "big")
        out.append(
            decrypt_page(key, data[pos + FRAME_HEADER : pos + FRAME_HEADER + PAGE], page_no == 1)
        )
        pos += FRAME_HEADER + PAGE
    return b"".join(out)

"""Test helpers: deterministic randomness and *independent* reference primitives.

The reference primitives use the ``cryptography`` package and plain Python, never our code or
PyNaCl, so a test that compares against them checks our construction, not our code against
itself.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DeterministicRng:
    """SHA-256 in counter mode over a seed: ``rng(n)`` returns the next ``n`` bytes."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def flip_bit(data: bytes, bit: int) -> bytes:
    """``data`` with bit number ``bit`` (0 = lowest bit of the first byte) inverted."""
    buf = bytearray(data)
    buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


# ---------------------------------------------------------------- reference primitives


def ref_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def ref_hmac(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def ref_x25519(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(public)
    )


def ref_x25519_public(private: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


_M32 = 0xFFFFFFFF


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _M32) | (v >> (32 - c))


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2) in plain Python."""
    s = [
        0x61707865,
        0x3320646E,
        0x79622D32,
        0x6B206574,
        *struct.unpack("<8I", key),
        *struct.unpack("<4I", nonce16),
    ]

    def qr(a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & _M32
        s[d] = _rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & _M32
        s[b] = _rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & _M32
        s[d] = _rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & _M32
        s[b] = _rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return struct.pack("<8I", *s[0:4], *s[12:16])


def ref_xchacha_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 = ChaCha20-Poly1305-IETF under HChaCha20(key, nonce[:16])."""
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(
        b"\x00" * 4 + nonce[16:], plaintext, ad
    )


def ref_xchacha_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Raises ``cryptography.exceptions.InvalidTag`` on failure."""
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])).decrypt(
        b"\x00" * 4 + nonce[16:], ciphertext, ad
    )


def ref_message_key_material(mk: bytes, info: bytes) -> tuple[bytes, bytes]:
    out = ref_hkdf(mk, bytes(32), info, 56)
    return out[:32], out[32:]


# Ed25519 -> X25519 by the formulas (RFC 7748 section 4.1 birational map; RFC 8032 key
# expansion), independent of libsodium's crypto_sign_ed25519_*_to_curve25519.
_P = 2**255 - 19


def ref_ed25519_pk_to_x25519(public: bytes) -> bytes:
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


def ref_ed25519_seed_to_x25519(seed: bytes) -> bytes:
    a = bytearray(hashlib.sha512(seed).digest()[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return bytes(a)


__all__ = [
    "DeterministicRng",
    "InvalidTag",
    "flip_bit",
    "hchacha20",
    "ref_ed25519_pk_to_x25519",
    "ref_ed25519_seed_to_x25519",
    "ref_hkdf",
    "ref_hmac",
    "ref_message_key_material",
    "ref_x25519",
    "ref_x25519_public",
    "ref_xchacha_decrypt",
    "ref_xchacha_encrypt",
]

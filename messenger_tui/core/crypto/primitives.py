"""Cryptographic primitives: the only place the crypto package touches libsodium directly.

Everything above this module (identity, prekeys, X3DH, the ratchet, the keystore) is built from
these few functions, so a change of primitive is a change here. Randomness is injected: every
function that needs it takes an :data:`Rng` (``default_rng`` in production, a deterministic
stream in tests), so transcripts can be checked byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Final

import msgspec
import nacl.bindings
import nacl.exceptions
import nacl.utils
from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]  # PyNaCl's own cffi
from nacl._sodium import lib as _sodium

from messenger_tui.core.errors import CryptoError, DecryptionFailed

#: A source of random bytes: ``rng(n)`` returns ``n`` bytes.
Rng = Callable[[int], bytes]

#: The operating system's CSPRNG (libsodium's ``randombytes``).
default_rng: Final[Rng] = nacl.utils.random

#: X25519 private and public key length.
X25519_KEY_LEN: Final = 32
#: A msgspec field of exactly 32 bytes: a key, a chain key or a secret.
Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
#: XChaCha20-Poly1305 key length.
AEAD_KEY_LEN: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#: XChaCha20-Poly1305 nonce length (192 bits: random nonces are safe).
AEAD_NONCE_LEN: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#: Poly1305 tag length appended to every ciphertext.
AEAD_TAG_LEN: Final = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES

_HASH_LEN: Final = 32  # SHA-256 output
_ZERO_KEY: Final = bytes(X25519_KEY_LEN)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key`` (32 bytes)."""
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt``, expand ``length`` bytes under ``info``.

    An empty ``salt`` means 32 zero bytes, as the RFC specifies.
    """
    if not 0 < length <= 255 * _HASH_LEN:
        raise ValueError("HKDF-SHA256 output length must be in 1..8160")
    prk = hmac_sha256(salt or bytes(_HASH_LEN), ikm)
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac_sha256(prk, block + info + bytes([counter]))
        okm += block
        counter += 1
    return okm[:length]


def x25519(private: bytes, public: bytes) -> bytes:
    """X25519 Diffie-Hellman of our ``private`` and their ``public`` key (32 bytes each).

    Raises :class:`CryptoError` when the result is all zeros: ``public`` is a low-order point,
    which only a malicious peer sends (the output would not depend on our key).
    """
    if len(private) != X25519_KEY_LEN or len(public) != X25519_KEY_LEN:
        raise CryptoError("X25519 keys are 32 bytes")
    try:
        shared = nacl.bindings.crypto_scalarmult(private, public)
    except nacl.exceptions.RuntimeError:
        # libsodium refuses all-zero outputs itself; same meaning as the check below
        raise CryptoError("X25519 with a low-order public key") from None
    if hmac.compare_digest(shared, _ZERO_KEY):
        raise CryptoError("X25519 with a low-order public key")
    return shared


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key of a 32-byte private key."""
    if len(private) != X25519_KEY_LEN:
        raise CryptoError("X25519 keys are 32 bytes")
    return nacl.bindings.crypto_scalarmult_base(private)


def x25519_keypair(rng: Rng = default_rng) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair ``(private, public)`` from 32 bytes of ``rng``.

    The private key is stored as drawn; X25519 clamps it on every use.
    """
    private = rng(X25519_KEY_LEN)
    if len(private) != X25519_KEY_LEN:
        raise ValueError("the rng returned the wrong number of bytes")
    return private, x25519_public(private)


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305-IETF: ciphertext with the 16-byte tag appended.

    ``key`` is 32 bytes and ``nonce`` 24 bytes; never reuse a (key, nonce) pair.
    """
    if len(key) != AEAD_KEY_LEN or len(nonce) != AEAD_NONCE_LEN:
        raise CryptoError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """Open an :func:`aead_encrypt` ciphertext; raises :class:`DecryptionFailed` if it does not
    authenticate under ``key``, ``nonce`` and ``ad``."""
    if len(key) != AEAD_KEY_LEN or len(nonce) != AEAD_NONCE_LEN:
        raise CryptoError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce")
    if len(ciphertext) < AEAD_TAG_LEN:
        raise DecryptionFailed("ciphertext shorter than its authentication tag")
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
    except nacl.exceptions.CryptoError:
        raise DecryptionFailed("ciphertext did not authenticate") from None


class KeyedAead:
    """XChaCha20-Poly1305-IETF under one key, for a stream of small messages (a call's media
    frames, 50 a second each way): byte-identical to :func:`aead_encrypt` and
    :func:`aead_decrypt`, but the key is checked once and each message is one libsodium call
    into a buffer reused for every message. PyNaCl's bindings check and format their argument
    messages and allocate two buffers per call, which was most of a media frame's crypto time.

    Not thread-safe (the buffer is shared): use one per thread. Messages are at most
    ``max_plaintext`` bytes (ValueError beyond).
    """

    def __init__(self, key: bytes, max_plaintext: int) -> None:
        if len(key) != AEAD_KEY_LEN:
            raise CryptoError("XChaCha20-Poly1305 takes a 32-byte key")
        self._key = bytes(key)
        self._max = max_plaintext
        self._buffer = _ffi.new("unsigned char[]", max_plaintext + AEAD_TAG_LEN)
        self._length = _ffi.new("unsigned long long *")

    def encrypt(self, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
        """As :func:`aead_encrypt` with this key."""
        if len(nonce) != AEAD_NONCE_LEN:
            raise CryptoError("XChaCha20-Poly1305 takes a 24-byte nonce")
        if len(plaintext) > self._max:
            raise ValueError(f"plaintext over {self._max} bytes")
        out, length = self._buffer, self._length
        rc = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            out, length, plaintext, len(plaintext), ad, len(ad), _ffi.NULL, nonce, self._key
        )
        if rc != 0:  # pragma: no cover - libsodium's encrypt cannot fail for these sizes
            raise CryptoError("XChaCha20-Poly1305 encryption failed")
        sealed: bytes = _ffi.buffer(out, length[0])[:]
        return sealed

    def decrypt(self, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
        """As :func:`aead_decrypt` with this key (:class:`DecryptionFailed` if it does not
        authenticate)."""
        if len(nonce) != AEAD_NONCE_LEN:
            raise CryptoError("XChaCha20-Poly1305 takes a 24-byte nonce")
        if len(ciphertext) < AEAD_TAG_LEN:
            raise DecryptionFailed("ciphertext shorter than its authentication tag")
        if len(ciphertext) > self._max + AEAD_TAG_LEN:
            raise DecryptionFailed(f"ciphertext over {self._max} bytes")
        out, length = self._buffer, self._length
        rc = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, length, _ffi.NULL, ciphertext, len(ciphertext), ad, len(ad), nonce, self._key
        )
        if rc != 0:
            raise DecryptionFailed("ciphertext did not authenticate")
        opened: bytes = _ffi.buffer(out, length[0])[:]
        return opened

    def __repr__(self) -> str:  # never print the key
        return f"KeyedAead(max_plaintext={self._max})"

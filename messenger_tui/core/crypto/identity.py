"""The long-term identity key: Ed25519 for signatures, its X25519 form for X3DH.

One 32-byte seed is the whole secret. The Ed25519 public key is the user's address (see
:mod:`messenger_tui.core.address`); the X25519 forms are derived with libsodium's birational
map (``crypto_sign_ed25519_*_to_curve25519``), so a contact's address alone is enough to run
X3DH with them. Store the seed with :mod:`messenger_tui.core.crypto.keystore`.
"""

from __future__ import annotations

from typing import Final

import nacl.bindings
import nacl.exceptions

from messenger_tui.core.crypto.primitives import Rng, default_rng
from messenger_tui.core.errors import CryptoError, InvalidSignature

SEED_LEN: Final = 32
PUBLIC_KEY_LEN: Final = 32
SIGNATURE_LEN: Final = 64


class IdentityKeyPair:
    """An Ed25519 identity key pair. Never logged: ``repr`` shows the public key only."""

    __slots__ = ("_dh_private", "_dh_public", "_public", "_secret", "_seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_LEN:
            raise CryptoError("an identity seed is 32 bytes")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        self._seed = bytes(seed)
        self._secret = secret  # libsodium's 64-byte form: seed || public
        self._public = public
        self._dh_private = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret)
        self._dh_public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public)

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> IdentityKeyPair:
        """A new identity from 32 bytes of ``rng``; seal its :attr:`seed` before storing it."""
        return cls(rng(SEED_LEN))

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKeyPair:
        """Rebuild an identity from its 32-byte seed."""
        return cls(seed)

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Only the keystore should read this."""
        return self._seed

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key: what the address encodes."""
        return self._public

    @property
    def dh_private(self) -> bytes:
        """The X25519 private key derived from the seed (for X3DH)."""
        return self._dh_private

    @property
    def dh_public(self) -> bytes:
        """The X25519 public key; equals ``x25519_from_identity(self.public)``."""
        return self._dh_public

    def sign(self, message: bytes) -> bytes:
        """A 64-byte detached Ed25519 signature of ``message``."""
        signed = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:SIGNATURE_LEN]

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public={self._public.hex()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentityKeyPair):
            return NotImplemented
        return self._public == other._public

    def __hash__(self) -> int:
        return hash(self._public)

    def __copy__(self) -> IdentityKeyPair:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> IdentityKeyPair:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the seed somewhere unplanned (a cache, a crash dump); refuse.
        raise TypeError("IdentityKeyPair cannot be pickled; use the keystore")


def verify_signature(public: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 detached signature; raises :class:`InvalidSignature` if it fails.

    A key that is not a valid curve point fails the same way.
    """
    if len(public) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        raise InvalidSignature("wrong key or signature length")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError):
        raise InvalidSignature("signature does not verify") from None


def x25519_from_identity(public: bytes) -> bytes:
    """The X25519 public key of an Ed25519 identity key.

    Raises :class:`CryptoError` if ``public`` is not a valid Ed25519 point (a forged bundle).
    """
    if len(public) != PUBLIC_KEY_LEN:
        raise CryptoError("an identity public key is 32 bytes")
    try:
        return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.CryptoError):
        raise CryptoError("not a valid Ed25519 public key") from None

"""Prekeys: the X25519 keys a user publishes on the relay so others can start sessions offline.

A user keeps one *signed prekey* (rotated now and then; the identity key signs it) and a stock
of *one-time prekeys* (each handed out once by the relay, deleted by the owner once a session
used it). Other users fetch a :class:`PrekeyBundle` and call :func:`verify_bundle` before X3DH
(:func:`messenger_tui.core.crypto.x3dh.initiate` does so itself).

The signature covers ``SPK_SIGNATURE_CONTEXT || spk_public`` (see :func:`signed_prekey_message`),
so a signature made for anything else (relay authentication, another protocol) can never pass
as a prekey signature.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from messenger_tui.core.crypto.identity import IdentityKeyPair, verify_signature
from messenger_tui.core.crypto.primitives import (
    X25519_KEY_LEN,
    Key32,
    Rng,
    default_rng,
    x25519_keypair,
)
from messenger_tui.core.errors import MalformedEnvelope

#: Domain separation prefix of the signed-prekey signature.
SPK_SIGNATURE_CONTEXT: Final = b"messenger-tui/signed-prekey/v1\x00"
#: Prekey ids travel as uint32.
MAX_PREKEY_ID: Final = 2**32 - 1

Signature64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
PrekeyId = Annotated[int, msgspec.Meta(ge=0, le=MAX_PREKEY_ID)]


class SignedPrekey(msgspec.Struct, frozen=True, array_like=True):
    """A signed prekey with its private half, as the owner stores it. ``repr`` hides ``private``.

    Publish ``id``, ``public`` and ``signature``; keep the record (even after rotating to a new
    one, for a grace period) so late-arriving session starts can still be accepted.
    """

    id: PrekeyId
    public: Key32
    private: Key32
    signature: Signature64
    created_ms: int

    def __repr__(self) -> str:
        return (
            f"SignedPrekey(id={self.id}, public={self.public.hex()}, created_ms={self.created_ms})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("id", self.id),
            ("public", self.public.hex()),
            ("created_ms", self.created_ms),
        ]


class OneTimePrekey(msgspec.Struct, frozen=True, array_like=True):
    """A one-time prekey with its private half. Delete it once a session start has used it."""

    id: PrekeyId
    public: Key32
    private: Key32

    def __repr__(self) -> str:
        return f"OneTimePrekey(id={self.id}, public={self.public.hex()})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("id", self.id),
            ("public", self.public.hex()),
        ]


class PrekeyBundle(msgspec.Struct, frozen=True):
    """What the relay hands out for an identity: check it with :func:`verify_bundle`."""

    identity: bytes  # Ed25519 public key of the owner
    spk_id: int
    spk: bytes  # X25519 signed prekey
    spk_sig: bytes
    opk_id: int | None = None
    opk: bytes | None = None  # X25519 one-time prekey, absent when the relay ran out


def signed_prekey_message(spk_public: bytes) -> bytes:
    """The exact bytes the identity key signs for a signed prekey."""
    return SPK_SIGNATURE_CONTEXT + spk_public


def generate_signed_prekey(
    identity: IdentityKeyPair, prekey_id: int, now_ms: int, rng: Rng = default_rng
) -> SignedPrekey:
    """A new signed prekey; store it, then publish its id, public key and signature."""
    _check_id(prekey_id)
    private, public = x25519_keypair(rng)
    signature = identity.sign(signed_prekey_message(public))
    return SignedPrekey(
        id=prekey_id, public=public, private=private, signature=signature, created_ms=now_ms
    )


def generate_one_time_prekeys(
    first_id: int, count: int, rng: Rng = default_rng
) -> list[OneTimePrekey]:
    """``count`` one-time prekeys numbered from ``first_id``; store them, then publish them.

    The caller keeps the id counter: never reuse an id while an older key with it may exist.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    _check_id(first_id)
    _check_id(first_id + count - 1 if count else first_id)
    keys = []
    for offset in range(count):
        private, public = x25519_keypair(rng)
        keys.append(OneTimePrekey(id=first_id + offset, public=public, private=private))
    return keys


def verify_bundle(bundle: PrekeyBundle) -> None:
    """Check a fetched bundle before using it.

    Raises :class:`MalformedEnvelope` for wrong key sizes, out-of-range ids or a one-time
    prekey without its id (or the reverse), and :class:`InvalidSignature` when the signed
    prekey is not signed by ``bundle.identity``.
    """
    if len(bundle.identity) != 32 or len(bundle.spk) != X25519_KEY_LEN:
        raise MalformedEnvelope("prekey bundle keys must be 32 bytes")
    if not 0 <= bundle.spk_id <= MAX_PREKEY_ID:
        raise MalformedEnvelope("signed prekey id out of range")
    if (bundle.opk is None) != (bundle.opk_id is None):
        raise MalformedEnvelope("one-time prekey and its id must come together")
    if bundle.opk is not None and bundle.opk_id is not None:
        if len(bundle.opk) != X25519_KEY_LEN:
            raise MalformedEnvelope("one-time prekey must be 32 bytes")
        if not 0 <= bundle.opk_id <= MAX_PREKEY_ID:
            raise MalformedEnvelope("one-time prekey id out of range")
    verify_signature(bundle.identity, signed_prekey_message(bundle.spk), bundle.spk_sig)


def _check_id(prekey_id: int) -> None:
    if not 0 <= prekey_id <= MAX_PREKEY_ID:
        raise ValueError("prekey ids are uint32")

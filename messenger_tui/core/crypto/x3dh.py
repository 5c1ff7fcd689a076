"""X3DH key agreement (https://signal.org/docs/specifications/x3dh/).

The initiator A fetches B's prekey bundle and computes, with the X25519 forms of the identity
keys (IK), B's signed prekey (SPK), an ephemeral key (EK) and B's one-time prekey (OPK)::

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
    SK  = HKDF-SHA256(ikm = F || DH1 || DH2 || DH3 [|| DH4], salt = 32 zero bytes,
                      info = X3DH_INFO, length = 32)      with F = 32 bytes of 0xFF
    AD  = IK_A || IK_B      (the 32-byte Ed25519 public keys, initiator first)

B repeats the computation from the ephemeral public key A sends in its first message. Both
then hand SK to the Double Ratchet, with B's signed prekey as B's first ratchet key, and bind
every message to AD. Most callers want :mod:`messenger_tui.core.crypto.session` instead.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from messenger_tui.core.crypto.identity import IdentityKeyPair, x25519_from_identity
from messenger_tui.core.crypto.prekeys import (
    OneTimePrekey,
    PrekeyBundle,
    SignedPrekey,
    verify_bundle,
)
from messenger_tui.core.crypto.primitives import (
    Rng,
    default_rng,
    hkdf_sha256,
    x25519,
    x25519_keypair,
)
from messenger_tui.core.errors import CryptoError

#: HKDF info of the X3DH shared secret.
X3DH_INFO: Final = b"messenger-tui/x3dh/v1"
#: The X3DH "F" prefix for X25519: 32 bytes of 0xFF (never a valid DH output prefix).
X3DH_F: Final = b"\xff" * 32
X3DH_SALT: Final = bytes(32)
SHARED_SECRET_LEN: Final = 32


class X3DHInitiation(msgspec.Struct, frozen=True):
    """The initiator's result. Send ``ephemeral_public``, ``spk_id`` and ``opk_id`` (and your
    identity key) with the first message; seed the ratchet with ``shared_secret``."""

    shared_secret: bytes
    associated_data: bytes
    ephemeral_public: bytes
    spk_id: int
    opk_id: int | None

    def __repr__(self) -> str:
        return (
            f"X3DHInitiation(ephemeral_public={self.ephemeral_public.hex()}, "
            f"spk_id={self.spk_id}, opk_id={self.opk_id})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("ephemeral_public", self.ephemeral_public.hex()),
            ("spk_id", self.spk_id),
            ("opk_id", self.opk_id),
        ]


def _derive(dh_outputs: list[bytes]) -> bytes:
    return hkdf_sha256(
        X3DH_F + b"".join(dh_outputs), salt=X3DH_SALT, info=X3DH_INFO, length=SHARED_SECRET_LEN
    )


def initiate(
    identity: IdentityKeyPair, bundle: PrekeyBundle, rng: Rng = default_rng
) -> X3DHInitiation:
    """Run the initiator side against a fetched bundle.

    Raises :class:`InvalidSignature` / :class:`MalformedEnvelope` for a bad bundle (fetch it
    again or refuse the contact) and :class:`CryptoError` for a key that is not a usable point.
    """
    verify_bundle(bundle)
    ik_b = x25519_from_identity(bundle.identity)
    ek_private, ek_public = x25519_keypair(rng)
    outputs = [
        x25519(identity.dh_private, bundle.spk),
        x25519(ek_private, ik_b),
        x25519(ek_private, bundle.spk),
    ]
    if bundle.opk is not None:
        outputs.append(x25519(ek_private, bundle.opk))
    return X3DHInitiation(
        shared_secret=_derive(outputs),
        associated_data=identity.public + bundle.identity,
        ephemeral_public=ek_public,
        spk_id=bundle.spk_id,
        opk_id=bundle.opk_id,
    )


def respond(
    identity: IdentityKeyPair,
    spk: SignedPrekey,
    opk: OneTimePrekey | None,
    initiator_identity: bytes,
    ephemeral_public: bytes,
) -> tuple[bytes, bytes]:
    """Run the responder side; returns ``(shared_secret, associated_data)``.

    ``spk`` and ``opk`` are the private prekeys the initiator named (``opk`` None if it named
    none). After the first message decrypts, delete ``opk`` for good. Raises
    :class:`CryptoError` if a received key is not a usable point.
    """
    if len(ephemeral_public) != 32:
        raise CryptoError("an ephemeral key is 32 bytes")
    ik_a = x25519_from_identity(initiator_identity)
    outputs = [
        x25519(spk.private, ik_a),
        x25519(identity.dh_private, ephemeral_public),
        x25519(spk.private, ephemeral_public),
    ]
    if opk is not None:
        outputs.append(x25519(opk.private, ephemeral_public))
    return _derive(outputs), initiator_identity + identity.public

"""Per-call, per-direction media keys and the relay join token.

Choice: an X25519 exchange of fresh per-call keys, not random media keys sent in the messages.

- The offer carries the caller's fresh public key, the accept the callee's. Each side keeps its
  private key only in memory for the length of the call. Neither signalling message contains
  anything secret, so a later compromise of the ratchet (a stolen skipped message key, a
  decrypted backup of the signalling) does not reveal the media keys: calls get forward secrecy
  of their own, independent of the chat session.
- Both sides contribute randomness, so a caller with a weak random source cannot alone fix the
  keys, and a replayed offer or accept cannot make either side reuse old keys (its own half is
  new).
- The ratchet authenticates who sent each public key, so the exchange is not open to a relay in
  the middle; the call id salts the derivation and both public keys are bound into it.

Derivation (HKDF-SHA256, :func:`derive_media_keys`)::

    shared = X25519(own_private, peer_public)
    okm    = HKDF(ikm = shared, salt = call_id,
                  info = MEDIA_KEYS_INFO || caller_public || callee_public, L = 96)
    caller→callee key = okm[0:32]   callee→caller key = okm[32:64]   join token = okm[64:96]

The join token is what each leg shows the relay to join the call's media route. It is an
independent HKDF output block, so the relay (which learns it) learns nothing about the media
keys, and someone who learns only the call id cannot compute it. The relay should pair legs by
the token itself, never by the call id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from messenger_tui.core.calls.messages import CALL_ID_LEN, CALL_KEY_LEN
from messenger_tui.core.crypto.media_frame import MediaDirection
from messenger_tui.core.crypto.primitives import (
    Rng,
    default_rng,
    hkdf_sha256,
    x25519,
    x25519_keypair,
)
from messenger_tui.core.errors import CryptoError

#: HKDF info prefix of the media key derivation.
MEDIA_KEYS_INFO: Final = b"messenger-tui/call-media/v1"
#: Length of the relay join token.
JOIN_TOKEN_LEN: Final = 32
_KEY_LEN: Final = 32


class CallRole(Enum):
    """Which end of the call we are; decides which derived key sends and which receives."""

    CALLER = "caller"
    CALLEE = "callee"


@dataclass(frozen=True, slots=True, repr=False)
class CallKeyPair:
    """A fresh X25519 key pair for one call. Forget it when the call ends."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls, rng: Rng = default_rng) -> CallKeyPair:
        private, public = x25519_keypair(rng)
        return cls(private, public)

    def __repr__(self) -> str:
        return f"CallKeyPair(public={self.public.hex()[:16]}…)"


@dataclass(frozen=True, slots=True, repr=False)
class MediaKeys:
    """Everything the media session needs: seal with ``send_key`` in ``send_direction``, open
    with ``receive_key`` in the other direction, and show ``join_token`` to the relay."""

    send_key: bytes
    receive_key: bytes
    send_direction: MediaDirection
    join_token: bytes

    @property
    def receive_direction(self) -> MediaDirection:
        if self.send_direction is MediaDirection.CALLER_TO_CALLEE:
            return MediaDirection.CALLEE_TO_CALLER
        return MediaDirection.CALLER_TO_CALLEE

    def __repr__(self) -> str:  # secrets never reach logs
        return f"MediaKeys(send_direction={self.send_direction.name})"


def derive_media_keys(
    *, call_id: bytes, role: CallRole, own: CallKeyPair, peer_public: bytes
) -> MediaKeys:
    """Both sides' media keys for the call ``call_id``, seen from ``role``.

    Raises :class:`CryptoError` for wrong lengths or a low-order ``peer_public`` (only a
    malicious peer sends one; the call must fail).
    """
    if len(call_id) != CALL_ID_LEN or len(peer_public) != CALL_KEY_LEN:
        raise CryptoError("call id is 16 bytes and call keys are 32 bytes")
    shared = x25519(own.private, peer_public)
    if role is CallRole.CALLER:
        caller_public, callee_public = own.public, peer_public
    else:
        caller_public, callee_public = peer_public, own.public
    okm = hkdf_sha256(
        shared,
        salt=call_id,
        info=MEDIA_KEYS_INFO + caller_public + callee_public,
        length=2 * _KEY_LEN + JOIN_TOKEN_LEN,
    )
    to_callee, to_caller, token = okm[:32], okm[32:64], okm[64:]
    if role is CallRole.CALLER:
        return MediaKeys(to_callee, to_caller, MediaDirection.CALLER_TO_CALLEE, token)
    return MediaKeys(to_caller, to_callee, MediaDirection.CALLEE_TO_CALLER, token)

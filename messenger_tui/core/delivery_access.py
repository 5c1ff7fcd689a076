"""Delivery access: the per-recipient secret that lets contacts past the stranger quota.

Modelled on Signal's unidentified-access key. Every user holds one random
:data:`ACCESS_SECRET_LEN`-byte *delivery secret*. The user hands it to the people it writes to
inside the end-to-end channel (``Text.access``, see :mod:`messenger_tui.core.payload`); they
present it in the relay's ``Send`` frame (``Send.access``). The relay holds only the
*verifier* (:func:`delivery_verifier`, a domain-separated SHA-256 of the secret), which the
user registers over its authenticated connection (``SetDeliveryVerifier``). A Send whose
secret matches the recipient's verifier counts against the recipient's contact quota; any
other Send (no secret, a wrong one, one rotated out) is a *message request* and counts
against the small stranger quota. So a flood by strangers can fill the request quota but
never the space reserved for contacts.

A leaked verifier (a copy of the relay's database) does not let anyone past the quota: the
relay needs the preimage. A leaked secret does, until the user rotates it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

#: Bytes of a delivery secret (random) and of its verifier (SHA-256).
ACCESS_SECRET_LEN: Final = 32
VERIFIER_LEN: Final = 32
_CONTEXT: Final = b"messenger-tui/delivery-access/v1\x00"


def delivery_verifier(secret: bytes) -> bytes:
    """What the relay stores for ``secret``. Raises ValueError for a wrong length."""
    if len(secret) != ACCESS_SECRET_LEN:
        raise ValueError(f"a delivery secret is {ACCESS_SECRET_LEN} bytes, got {len(secret)}")
    return hashlib.sha256(_CONTEXT + secret).digest()


def access_matches(verifier: bytes | None, presented: bytes | None) -> bool:
    """Whether ``presented`` is the secret behind ``verifier`` (constant time in the secret's
    value; False when either is missing or ``presented`` has the wrong length)."""
    if verifier is None or presented is None or len(presented) != ACCESS_SECRET_LEN:
        return False
    return hmac.compare_digest(hashlib.sha256(_CONTEXT + presented).digest(), verifier)

"""Addresses: the shareable text form of an identity key.

An address is ``mt1`` followed by the lowercase base32 (no padding) of the 32-byte Ed25519
public key and a 4-byte checksum (BLAKE2b keyed by a fixed personalisation). The address *is*
the key, so the relay cannot substitute another key for a contact; the checksum turns typos
into a clear error instead of a message sent to nobody.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

from messenger_tui.core.errors import AddressError

PREFIX: Final = "mt1"
_KEY_LEN: Final = 32
_CHECK_LEN: Final = 4
_ENCODED_LEN: Final = 58  # ceil((32 + 4) * 8 / 5)


def _checksum(public_key: bytes) -> bytes:
    return hashlib.blake2b(public_key, digest_size=_CHECK_LEN, person=b"mtui-address").digest()


def encode_address(public_key: bytes) -> str:
    """Return the address of an Ed25519 public key."""
    if len(public_key) != _KEY_LEN:
        raise ValueError("an identity public key is 32 bytes")
    raw = public_key + _checksum(public_key)
    return PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def decode_address(text: str) -> bytes:
    """Return the public key in an address; spaces, dashes and case are ignored.

    Raises :class:`AddressError` with ``reason`` "format" or "checksum".
    """
    cleaned = "".join(ch for ch in text.strip().lower() if ch not in " -_\t\n")
    if not cleaned.startswith(PREFIX):
        raise AddressError(
            f"not a messenger-tui address (it should start with {PREFIX!r})", reason="format"
        )
    body = cleaned[len(PREFIX) :]
    if len(body) != _ENCODED_LEN:
        raise AddressError(
            f"an address has {len(PREFIX) + _ENCODED_LEN} characters, this one has "
            f"{len(cleaned)}: it was cut or pasted twice",
            reason="format",
        )
    try:
        raw = base64.b32decode(body.upper() + "=" * 6)
    except ValueError:
        raise AddressError(
            "the address contains characters outside a-z and 2-7", reason="format"
        ) from None
    key, check = raw[:_KEY_LEN], raw[_KEY_LEN:]
    if _checksum(key) != check:
        raise AddressError(
            "the address checksum does not match: a character was mistyped; copy it again",
            reason="checksum",
        )
    return key


def short_fingerprint(public_key: bytes) -> str:
    """A short human label for logs and listings (never a substitute for verification)."""
    return encode_address(public_key)[len(PREFIX) : len(PREFIX) + 8]

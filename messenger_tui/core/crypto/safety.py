"""Safety numbers: what two users compare (read aloud or by QR) to rule out a relay that
swapped keys.

The construction is Signal's ``NumericFingerprintGenerator`` (version-2 display form) with our
key encoding: for each side::

    h = FINGERPRINT_VERSION (2 bytes, 0x0000) || public (32-byte Ed25519) || stable_id
    repeat FINGERPRINT_ITERATIONS (5200) times:  h = SHA-512(h || public)
    fingerprint = h[:30]
    digits = for each 5-byte big-endian chunk of the fingerprint: chunk mod 100000, as 5 digits

The safety number is the two 30-digit strings sorted and concatenated (60 digits), so both
sides see the same number. ``stable_id`` is the user's address text in UTF-8
(:func:`address_stable_id`). Not byte-compatible with Signal: Signal hashes its 33-byte
``0x05``-prefixed Curve25519 keys, we hash the raw Ed25519 identity keys.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from messenger_tui.core.address import encode_address

FINGERPRINT_VERSION: Final = b"\x00\x00"
FINGERPRINT_ITERATIONS: Final = 5200
FINGERPRINT_LEN: Final = 30
#: First byte of the QR payload.
QR_VERSION: Final = 1
#: Length of a QR payload: version + two fingerprints.
QR_PAYLOAD_LEN: Final = 1 + 2 * FINGERPRINT_LEN
SAFETY_NUMBER_DIGITS: Final = 60


def address_stable_id(public: bytes) -> bytes:
    """The stable identifier of an identity key: its address text in UTF-8."""
    return encode_address(public).encode("utf-8")


def fingerprint(public: bytes, stable_id: bytes) -> bytes:
    """The 30-byte fingerprint of one side (iterated SHA-512)."""
    if len(public) != 32:
        raise ValueError("an identity public key is 32 bytes")
    digest = FINGERPRINT_VERSION + public + stable_id
    for _ in range(FINGERPRINT_ITERATIONS):
        digest = hashlib.sha512(digest + public).digest()
    return digest[:FINGERPRINT_LEN]


def _digits(fp: bytes) -> str:
    return "".join(
        f"{int.from_bytes(fp[i : i + 5], 'big') % 100000:05d}" for i in range(0, FINGERPRINT_LEN, 5)
    )


def safety_number(
    local_public: bytes, local_stable_id: bytes, remote_public: bytes, remote_stable_id: bytes
) -> str:
    """The 60-digit safety number of a conversation; both sides compute the same string.

    Show it with :func:`format_safety_number`.
    """
    local = _digits(fingerprint(local_public, local_stable_id))
    remote = _digits(fingerprint(remote_public, remote_stable_id))
    return local + remote if local <= remote else remote + local


def format_safety_number(number: str) -> str:
    """12 groups of 5 digits in 3 lines of 4 groups (as Signal shows it)::

    12345 67890 12345 67890
    12345 67890 12345 67890
    12345 67890 12345 67890
    """
    if len(number) != SAFETY_NUMBER_DIGITS or not number.isdigit():
        raise ValueError("a safety number is 60 digits")
    groups = [number[i : i + 5] for i in range(0, SAFETY_NUMBER_DIGITS, 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def safety_qr_payload(
    local_public: bytes, local_stable_id: bytes, remote_public: bytes, remote_stable_id: bytes
) -> bytes:
    """What our QR code encodes: ``QR_VERSION || local fingerprint || remote fingerprint``
    (61 bytes). The peer checks it with :func:`verify_safety_qr`."""
    return (
        bytes([QR_VERSION])
        + fingerprint(local_public, local_stable_id)
        + fingerprint(remote_public, remote_stable_id)
    )


def verify_safety_qr(
    scanned: bytes,
    local_public: bytes,
    local_stable_id: bytes,
    remote_public: bytes,
    remote_stable_id: bytes,
) -> bool:
    """True if ``scanned`` (the peer's QR payload) shows exactly our view of both keys.

    The peer's "local" is our "remote" and the other way round. False for a mismatch and for
    anything that is not a payload of this version: then the keys are not verified.
    """
    if len(scanned) != QR_PAYLOAD_LEN or scanned[0] != QR_VERSION:
        return False
    expected = safety_qr_payload(remote_public, remote_stable_id, local_public, local_stable_id)
    return hmac.compare_digest(scanned, expected)

"""Known answers for the group send credential, its grant verifier and recipient references
(core/groups/send_credential.py), and the derivation recomputed here from the RFC 5869 steps
with the standard library, so that a change to any label, field order or length shows."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from messenger_tui.core.groups import send_credential as sc

GROUP_ID = bytes(range(16))
SIGNING_PUBLIC = bytes(range(32, 64))
RECIPIENT = bytes(range(64, 96))
KEY_ID = 7

CREDENTIAL = "404b515530b3a4c7acab7090397cd1bd1465f1014d0b7f0594f61f7eb64f81a9"
VERIFIER = "e31c614d72ead61873337d73326da25f4911e031a45aa1370e8752e10d2cfb6e"
REFERENCE = "64e83a4dd7935725"


def _rfc5869_credential() -> bytes:
    prk = hmac.new(GROUP_ID, SIGNING_PUBLIC, hashlib.sha256).digest()  # extract
    info = sc.CREDENTIAL_INFO + KEY_ID.to_bytes(4, "big")
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # expand, one block


def test_known_answers() -> None:
    credential = sc.send_credential(GROUP_ID, KEY_ID, SIGNING_PUBLIC)
    assert credential.hex() == CREDENTIAL
    assert credential == _rfc5869_credential()
    assert sc.grant_verifier(credential).hex() == VERIFIER
    assert sc.recipient_ref(credential, RECIPIENT).hex() == REFERENCE


def test_every_input_changes_the_credential() -> None:
    base = sc.send_credential(GROUP_ID, KEY_ID, SIGNING_PUBLIC)
    assert sc.send_credential(GROUP_ID[::-1], KEY_ID, SIGNING_PUBLIC) != base
    assert sc.send_credential(GROUP_ID, KEY_ID + 1, SIGNING_PUBLIC) != base  # a rotated key
    assert sc.send_credential(GROUP_ID, KEY_ID, SIGNING_PUBLIC[::-1]) != base
    other = bytes(32)
    assert sc.recipient_ref(base, other) != sc.recipient_ref(base, RECIPIENT)


def test_malformed_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        sc.send_credential(GROUP_ID, KEY_ID, SIGNING_PUBLIC[:31])
    with pytest.raises(ValueError):
        sc.grant_verifier(b"\x00" * 31)
    with pytest.raises(ValueError):
        sc.split_refs(b"\x00" * 9)
    assert sc.split_refs(b"\x01" * 16) == [b"\x01" * 8, b"\x01" * 8]

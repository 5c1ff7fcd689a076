"""The identity key at rest."""

from __future__ import annotations

import json
from typing import TypedDict

import nacl.pwhash.argon2id as argon2id
import pytest

from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.keystore import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    is_encrypted,
    open_identity,
    public_key_of,
    seal_identity,
)
from messenger_tui.core.errors import CorruptKeyFile, CryptoError, WrongPassphrase

from ._util import DeterministicRng


class _Limits(TypedDict):
    opslimit: int
    memlimit: int


FAST: _Limits = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
SEED = bytes(range(32))
PASS = "correct horse battery staple"


def _sealed(passphrase: str | None = PASS) -> bytes:
    return seal_identity(SEED, passphrase, rng=DeterministicRng(b"keystore"), **FAST)


def _edit(data: bytes, edit: dict[str, object]) -> bytes:
    doc = json.loads(data)
    for path, value in edit.items():
        target = doc
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc).encode()


def test_defaults_are_interactive_limits() -> None:
    assert DEFAULT_OPSLIMIT == argon2id.OPSLIMIT_INTERACTIVE
    assert DEFAULT_MEMLIMIT == argon2id.MEMLIMIT_INTERACTIVE


def test_encrypted_round_trip_and_layout() -> None:
    data = _sealed()
    assert is_encrypted(data)
    identity = open_identity(data, PASS)
    assert identity.seed == SEED
    doc = json.loads(data)
    assert doc["format"] == "messenger-tui-identity" and doc["version"] == 1
    assert doc["public"] == IdentityKeyPair.from_seed(SEED).public.hex()
    assert doc["kdf"] == {
        "alg": "argon2id13",
        "opslimit": argon2id.OPSLIMIT_MIN,
        "memlimit": argon2id.MEMLIMIT_MIN,
        "salt": doc["kdf"]["salt"],
    }
    assert len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert doc["cipher"]["alg"] == "xsalsa20poly1305"
    assert len(bytes.fromhex(doc["cipher"]["nonce"])) == 24
    assert len(bytes.fromhex(doc["cipher"]["ciphertext"])) == 48
    assert SEED.hex() not in data.decode()
    assert public_key_of(data) == identity.public


def test_passphrase_is_unicode_normalised() -> None:
    data = seal_identity(SEED, "caf\u00e9", rng=DeterministicRng(b"n"), **FAST)
    assert open_identity(data, "cafe\u0301").seed == SEED  # decomposed form of the same text


def test_plain_round_trip() -> None:
    data = _sealed(None)
    assert not is_encrypted(data)
    assert json.loads(data)["seed"] == SEED.hex()
    assert open_identity(data, None).seed == SEED
    assert open_identity(data, "ignored for a plain file").seed == SEED


def test_wrong_or_missing_passphrase() -> None:
    data = _sealed()
    with pytest.raises(WrongPassphrase):
        open_identity(data, "wrong")
    with pytest.raises(WrongPassphrase):
        open_identity(data, None)
    with pytest.raises(WrongPassphrase):
        open_identity(data, "")


def test_empty_passphrase_is_refused_when_sealing() -> None:
    with pytest.raises(ValueError):
        seal_identity(SEED, "", **FAST)


@pytest.mark.parametrize(
    "edit",
    [
        {"format": "something-else"},
        {"version": 2},
        {"public": "00" * 32},  # stored public key does not match the secret
        {"public": "zz"},
        {"kdf.salt": "00"},
        {"kdf.alg": "scrypt"},
        {"kdf.memlimit": 2**45},  # a crafted file must not make us allocate terabytes
        {"kdf.opslimit": 0},
        {"cipher.nonce": "not hex"},
        {"cipher.ciphertext": "00" * 47},
        {"cipher": ...},
        {"seed": "00" * 32},
        {"extra": 1},
        {"encrypted": False},
    ],
)
def test_corrupt_files_are_typed(edit: dict[str, object]) -> None:
    data = _edit(_sealed(), edit)
    with pytest.raises(CorruptKeyFile):
        open_identity(data, PASS)


@pytest.mark.parametrize(
    "edit", [{"seed": "00" * 31}, {"seed": ...}, {"public": "11" * 32}, {"encrypted": True}]
)
def test_corrupt_plain_files_are_typed(edit: dict[str, object]) -> None:
    with pytest.raises(CorruptKeyFile):
        open_identity(_edit(_sealed(None), edit), None)


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff\xfe", b'{"format": 1}', b"null"])
def test_garbage_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptKeyFile):
        open_identity(data, PASS)
    with pytest.raises(CorruptKeyFile):
        is_encrypted(data)


def test_damaged_ciphertext_reads_as_wrong_passphrase() -> None:
    # documented: the MAC cannot tell a damaged ciphertext from a wrong passphrase
    doc = json.loads(_sealed())
    ct = bytearray(bytes.fromhex(doc["cipher"]["ciphertext"]))
    ct[0] ^= 1
    with pytest.raises(WrongPassphrase):
        open_identity(_edit(_sealed(), {"cipher.ciphertext": ct.hex()}), PASS)


def test_errors_are_crypto_errors() -> None:
    assert issubclass(CorruptKeyFile, CryptoError)
    assert issubclass(WrongPassphrase, CryptoError)

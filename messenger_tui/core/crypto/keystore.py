"""The identity key at rest: a small versioned JSON document (the caller does the file I/O).

Encrypted form (passphrase set)::

    {"format": "messenger-tui-identity", "version": 1, "encrypted": true,
     "public": "<Ed25519 public key, 64 hex>",
     "kdf": {"alg": "argon2id13", "opslimit": 2, "memlimit": 67108864, "salt": "<32 hex>"},
     "cipher": {"alg": "xsalsa20poly1305", "nonce": "<48 hex>", "ciphertext": "<96 hex>"}}

The key is ``argon2id(passphrase, salt, opslimit, memlimit)`` (``nacl.pwhash.argon2id.kdf``,
32 bytes); the 32-byte seed is sealed with ``nacl.secret.SecretBox`` (XSalsa20-Poly1305).
After opening, the public key derived from the seed must equal ``public``, so a file whose
fields were mixed up is refused instead of yielding another identity. The passphrase is
normalised to Unicode NFC and encoded as UTF-8, so the same passphrase typed on another system
still works.

Plain form (no passphrase): ``"encrypted": false`` and ``"seed": "<64 hex>"`` instead of
``kdf``/``cipher``.

The profile database (SQLCipher) has its own 32-byte key, derived here so that unlocking costs
one argon2id run: with a passphrase it is ``BLAKE2b(key=argon2id output, person="mtui-db-key")``,
a key of its own (the SecretBox key and the database key do not reveal each other), which changes
whenever the file is sealed again (new salt); without one it is ``BLAKE2b(key=seed,
person="mtui-db-plain")``, so that it is exactly as protected as the plain seed beside it.

Default cost: argon2id OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE (2 passes, 64 MiB, about
0.1 s here), because the CLI unlocks the key on every command; users who want more can seal
with higher limits, up to the SENSITIVE limits (4 passes, 1 GiB). Files asking for more than
that are refused as corrupt, so a crafted file cannot make us allocate unbounded memory.
"""

from __future__ import annotations

import hmac
import json
import unicodedata
from typing import Final

import msgspec
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.pwhash.argon2id as argon2id
import nacl.secret

from messenger_tui.core.crypto.identity import SEED_LEN, IdentityKeyPair
from messenger_tui.core.crypto.primitives import Rng, default_rng
from messenger_tui.core.errors import CorruptKeyFile, CryptoError, WrongPassphrase

KEYFILE_FORMAT: Final = "messenger-tui-identity"
KEYFILE_VERSION: Final = 1
KDF_ALG: Final = "argon2id13"
CIPHER_ALG: Final = "xsalsa20poly1305"
DEFAULT_OPSLIMIT: Final = argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT: Final = argon2id.MEMLIMIT_INTERACTIVE
MAX_OPSLIMIT: Final = argon2id.OPSLIMIT_SENSITIVE
MAX_MEMLIMIT: Final = argon2id.MEMLIMIT_SENSITIVE
_SALT_LEN: Final = argon2id.SALTBYTES
_NONCE_LEN: Final = nacl.secret.SecretBox.NONCE_SIZE
_SEALED_LEN: Final = SEED_LEN + nacl.secret.SecretBox.MACBYTES
#: Length of the profile database key (SQLCipher's raw AES-256 key).
DATABASE_KEY_LEN: Final = 32
_DB_KEY_PERSON: Final = b"mtui-db-key"
_DB_PLAIN_PERSON: Final = b"mtui-db-plain"


class _Kdf(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    alg: str
    opslimit: int
    memlimit: int
    salt: str


class _Cipher(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    alg: str
    nonce: str
    ciphertext: str


class _KeyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    format: str
    version: int
    encrypted: bool
    public: str
    kdf: _Kdf | None = None
    cipher: _Cipher | None = None
    seed: str | None = None


def _passphrase_bytes(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _check_limits(opslimit: int, memlimit: int) -> bool:
    return (
        argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT
        and argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT
    )


def _dump(doc: _KeyFile) -> bytes:
    # JSON via the stdlib so key order and indentation are stable and human-readable
    return (json.dumps(msgspec.to_builtins(doc), indent=2, sort_keys=True) + "\n").encode()


def seal_identity(
    seed: bytes,
    passphrase: str | None,
    *,
    rng: Rng = default_rng,
    opslimit: int = DEFAULT_OPSLIMIT,
    memlimit: int = DEFAULT_MEMLIMIT,
) -> bytes:
    """The key file for ``seed``: encrypted under ``passphrase``, or plain when it is None.

    Write the bytes to a file only the user can read (mode 0600). An empty passphrase is
    refused: pass None to store the key unencrypted on purpose.
    """
    public = IdentityKeyPair.from_seed(seed).public
    if passphrase is None:
        return _dump(
            _KeyFile(
                format=KEYFILE_FORMAT,
                version=KEYFILE_VERSION,
                encrypted=False,
                public=public.hex(),
                seed=seed.hex(),
            )
        )
    if passphrase == "":
        raise ValueError("empty passphrase: pass None to store the key unencrypted")
    if not _check_limits(opslimit, memlimit):
        raise ValueError("argon2id limits out of the accepted range")
    salt = rng(_SALT_LEN)
    nonce = rng(_NONCE_LEN)
    key = argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        _passphrase_bytes(passphrase),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )
    sealed = nacl.secret.SecretBox(key).encrypt(seed, nonce).ciphertext
    return _dump(
        _KeyFile(
            format=KEYFILE_FORMAT,
            version=KEYFILE_VERSION,
            encrypted=True,
            public=public.hex(),
            kdf=_Kdf(alg=KDF_ALG, opslimit=opslimit, memlimit=memlimit, salt=salt.hex()),
            cipher=_Cipher(alg=CIPHER_ALG, nonce=nonce.hex(), ciphertext=sealed.hex()),
        )
    )


def _parse(data: bytes) -> _KeyFile:
    try:
        doc = msgspec.json.decode(data, type=_KeyFile)
    except msgspec.DecodeError:
        raise CorruptKeyFile("not a messenger-tui identity key file") from None
    if doc.format != KEYFILE_FORMAT:
        raise CorruptKeyFile("not a messenger-tui identity key file")
    if doc.version != KEYFILE_VERSION:
        raise CorruptKeyFile(f"unknown key file version {doc.version}")
    return doc


def _unhex(text: str, length: int, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise CorruptKeyFile(f"key file field {what!r} is not hex") from None
    if len(value) != length:
        raise CorruptKeyFile(f"key file field {what!r} has the wrong length")
    return value


def is_encrypted(data: bytes) -> bool:
    """Whether the key file needs a passphrase; raises :class:`CorruptKeyFile` if unreadable."""
    return _parse(data).encrypted


def public_key_of(data: bytes) -> bytes:
    """The identity public key a key file claims, readable without the passphrase.

    Only a hint (e.g. to show the address on the unlock prompt): :func:`open_identity` checks it.
    """
    return _unhex(_parse(data).public, 32, "public")


def _database_key(secret: bytes, person: bytes) -> bytes:
    return nacl.hash.blake2b(
        b"",
        digest_size=DATABASE_KEY_LEN,
        key=secret,
        person=person,
        encoder=nacl.encoding.RawEncoder,
    )


def open_identity(data: bytes, passphrase: str | None) -> IdentityKeyPair:
    """Unlock a key file (see :func:`unlock`, which also gives the database key)."""
    return unlock(data, passphrase)[0]


def unlock(data: bytes, passphrase: str | None) -> tuple[IdentityKeyPair, bytes]:
    """Unlock a key file: the identity and the profile database's key (module docstring).

    Raises :class:`WrongPassphrase` when the passphrase is wrong or missing (ask again) and
    :class:`CorruptKeyFile` when the file is damaged (restore a backup). A passphrase given for
    a plain file is ignored. A damaged ciphertext cannot be told apart from a wrong passphrase.
    """
    doc = _parse(data)
    public = _unhex(doc.public, 32, "public")
    if not doc.encrypted:
        if doc.seed is None or doc.kdf is not None or doc.cipher is not None:
            raise CorruptKeyFile("plain key file must hold exactly a seed")
        seed = _unhex(doc.seed, SEED_LEN, "seed")
        db_key = _database_key(seed, _DB_PLAIN_PERSON)
    else:
        if doc.kdf is None or doc.cipher is None or doc.seed is not None:
            raise CorruptKeyFile("encrypted key file must hold kdf and cipher parameters")
        if doc.kdf.alg != KDF_ALG or doc.cipher.alg != CIPHER_ALG:
            raise CorruptKeyFile("unknown key file algorithm")
        if not _check_limits(doc.kdf.opslimit, doc.kdf.memlimit):
            raise CorruptKeyFile("argon2id limits out of the accepted range")
        salt = _unhex(doc.kdf.salt, _SALT_LEN, "salt")
        nonce = _unhex(doc.cipher.nonce, _NONCE_LEN, "nonce")
        sealed = _unhex(doc.cipher.ciphertext, _SEALED_LEN, "ciphertext")
        if passphrase is None or passphrase == "":
            raise WrongPassphrase("this identity key is encrypted: a passphrase is required")
        key = argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            _passphrase_bytes(passphrase),
            salt,
            opslimit=doc.kdf.opslimit,
            memlimit=doc.kdf.memlimit,
        )
        try:
            seed = nacl.secret.SecretBox(key).decrypt(sealed, nonce)
        except nacl.exceptions.CryptoError:
            raise WrongPassphrase("the passphrase does not unlock this identity key") from None
        db_key = _database_key(key, _DB_KEY_PERSON)
    try:
        identity = IdentityKeyPair.from_seed(seed)
    except CryptoError:
        raise CorruptKeyFile("stored seed is not usable") from None
    if not hmac.compare_digest(identity.public, public):
        raise CorruptKeyFile("stored public key does not match the stored secret")
    return identity, db_key

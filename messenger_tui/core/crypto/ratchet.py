"""The Double Ratchet (https://signal.org/docs/specifications/doubleratchet/, section 3).

Functional: every call takes a :class:`RatchetState` and returns a new one; the input is never
changed (the structs are frozen). :func:`decrypt` either returns ``(new_state, plaintext)`` or
raises, and then there is no new state at all, so a caller that stores the returned state only
after a success can never corrupt a session with a forged, tampered or replayed message.

Primitives (all names below are module constants, written down in docs/protocol.md)::

    KDF_RK(rk, dh_out) = HKDF-SHA256(ikm=dh_out, salt=rk, info=ROOT_INFO, 64) -> (rk', ck)
    KDF_CK(ck)         = (mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck, 0x02))
    message key        = HKDF-SHA256(ikm=mk, salt=32 zero bytes, info=MESSAGE_KEY_INFO, 56)
                         -> (32-byte XChaCha20-Poly1305 key, 24-byte nonce)
    ciphertext         = XChaCha20-Poly1305(key, nonce, plaintext, ad || header)
    header             = dh_public (32) || pn (uint32 BE) || n (uint32 BE)      (40 bytes)

Bounds (as libsignal): one message may skip at most :data:`MAX_SKIP` keys of a chain
(:class:`TooManySkipped` otherwise) and at most :data:`MAX_SKIPPED_KEYS` skipped keys are kept,
the oldest evicted first. A message whose key was already used (or evicted) raises
:class:`DuplicateMessage`; the state remembers the last :data:`MAX_RETIRED_CHAINS` receiving
chains so duplicates from earlier chains are told apart from forgeries.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Final, NamedTuple

import msgspec

from messenger_tui.core.crypto.primitives import (
    AEAD_KEY_LEN,
    AEAD_NONCE_LEN,
    Key32,
    Rng,
    aead_decrypt,
    aead_encrypt,
    default_rng,
    hkdf_sha256,
    hmac_sha256,
    x25519,
    x25519_keypair,
)
from messenger_tui.core.errors import (
    CryptoError,
    DecryptionFailed,
    DuplicateMessage,
    MalformedEnvelope,
    TooManySkipped,
)

#: HKDF info of the root chain (KDF_RK).
ROOT_INFO: Final = b"messenger-tui/ratchet-root/v1"
#: HKDF info that expands a message key into an AEAD key and nonce.
MESSAGE_KEY_INFO: Final = b"messenger-tui/message-key/v1"
#: HMAC input that yields a message key from a chain key.
MESSAGE_KEY_CONSTANT: Final = b"\x01"
#: HMAC input that yields the next chain key.
CHAIN_KEY_CONSTANT: Final = b"\x02"
#: Largest number of message keys one incoming message may make us derive and store.
MAX_SKIP: Final = 2000
#: Largest number of stored skipped message keys; the oldest are evicted first.
MAX_SKIPPED_KEYS: Final = 2000
#: Receiving chains remembered after a DH step, to classify late duplicates.
MAX_RETIRED_CHAINS: Final = 32
#: Encoded header length.
HEADER_LEN: Final = 40
#: Largest message number a header can carry.
MAX_COUNTER: Final = 2**32 - 1

_HEADER: Final = struct.Struct(">32sII")
_ZERO_SALT: Final = bytes(32)

Counter = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]


class Header(NamedTuple):
    """A decoded message header: the sender's ratchet key, previous chain length, number."""

    dh: bytes
    pn: int
    n: int


class SkippedKey(msgspec.Struct, frozen=True, array_like=True):
    """A message key kept for a message that has not arrived yet."""

    dh: Key32
    n: Counter
    mk: Key32

    def __repr__(self) -> str:
        return f"SkippedKey(dh={self.dh.hex()}, n={self.n})"


class RetiredChain(msgspec.Struct, frozen=True, array_like=True):
    """A receiving chain we moved past: keys ``0 .. end-1`` of ratchet key ``dh`` were derived."""

    dh: Key32
    end: Counter


class RatchetState(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a Double Ratchet session. Immutable; ``repr`` shows no secret.

    Field names follow the specification: ``dhs_*`` our current ratchet key pair, ``dhr`` the
    peer's, ``rk`` root key, ``cks``/``ckr`` sending/receiving chain keys, ``ns``/``nr``
    message numbers, ``pn`` length of our previous sending chain. ``skipped`` is in insertion
    order (the eviction order).
    """

    dhs_private: Key32
    dhs_public: Key32
    dhr: Key32 | None
    rk: Key32
    cks: Key32 | None
    ckr: Key32 | None
    ns: Counter = 0
    nr: Counter = 0
    pn: Counter = 0
    skipped: tuple[SkippedKey, ...] = ()
    retired: tuple[RetiredChain, ...] = ()

    def __repr__(self) -> str:
        dhr = self.dhr.hex() if self.dhr is not None else None
        return (
            f"RatchetState(dhs_public={self.dhs_public.hex()}, dhr={dhr}, ns={self.ns}, "
            f"nr={self.nr}, pn={self.pn}, skipped={len(self.skipped)})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("dhs_public", self.dhs_public.hex()),
            ("dhr", self.dhr.hex() if self.dhr is not None else None),
            ("ns", self.ns),
            ("nr", self.nr),
            ("pn", self.pn),
            ("skipped", len(self.skipped)),
        ]


# ---------------------------------------------------------------- KDFs and message sealing


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """Root KDF step: returns ``(new_root_key, chain_key)``."""
    out = hkdf_sha256(dh_out, salt=rk, info=ROOT_INFO, length=64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """Chain KDF step: returns ``(message_key, next_chain_key)``."""
    return hmac_sha256(ck, MESSAGE_KEY_CONSTANT), hmac_sha256(ck, CHAIN_KEY_CONSTANT)


def message_key_material(mk: bytes) -> tuple[bytes, bytes]:
    """The XChaCha20-Poly1305 ``(key, nonce)`` of message key ``mk``.

    A message key is used exactly once, so a deterministic nonce is safe.
    """
    out = hkdf_sha256(
        mk, salt=_ZERO_SALT, info=MESSAGE_KEY_INFO, length=AEAD_KEY_LEN + AEAD_NONCE_LEN
    )
    return out[:AEAD_KEY_LEN], out[AEAD_KEY_LEN:]


def seal_message(mk: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt one message under message key ``mk``; ``associated_data`` is ``AD || header``."""
    key, nonce = message_key_material(mk)
    return aead_encrypt(key, nonce, plaintext, associated_data)


def open_message(mk: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Decrypt one message; raises :class:`DecryptionFailed`."""
    key, nonce = message_key_material(mk)
    return aead_decrypt(key, nonce, ciphertext, associated_data)


# ---------------------------------------------------------------- header


def encode_header(header: Header) -> bytes:
    """The fixed 40-byte header encoding: ``dh (32) || pn (uint32 BE) || n (uint32 BE)``."""
    if len(header.dh) != 32:
        raise CryptoError("a header ratchet key is 32 bytes")
    if not (0 <= header.pn <= MAX_COUNTER and 0 <= header.n <= MAX_COUNTER):
        raise CryptoError("header counters are uint32")
    return _HEADER.pack(header.dh, header.pn, header.n)


def decode_header(data: bytes) -> Header:
    """Parse a header; raises :class:`MalformedEnvelope` if it is not exactly 40 bytes."""
    if len(data) != HEADER_LEN:
        raise MalformedEnvelope(f"a ratchet header is {HEADER_LEN} bytes, got {len(data)}")
    dh, pn, n = _HEADER.unpack(data)
    return Header(dh, pn, n)


# ---------------------------------------------------------------- initialisation


def init_initiator(
    shared_secret: bytes, responder_spk_public: bytes, rng: Rng = default_rng
) -> RatchetState:
    """Alice's state after X3DH: ready to :func:`encrypt` at once."""
    _check_len(shared_secret, "shared secret")
    _check_len(responder_spk_public, "signed prekey")
    private, public = x25519_keypair(rng)
    rk, cks = kdf_rk(shared_secret, x25519(private, responder_spk_public))
    return RatchetState(
        dhs_private=private,
        dhs_public=public,
        dhr=responder_spk_public,
        rk=rk,
        cks=cks,
        ckr=None,
    )


def init_responder(shared_secret: bytes, spk_private: bytes, spk_public: bytes) -> RatchetState:
    """Bob's state after X3DH: it must :func:`decrypt` the initiator's message before sending."""
    _check_len(shared_secret, "shared secret")
    _check_len(spk_private, "signed prekey")
    _check_len(spk_public, "signed prekey")
    return RatchetState(
        dhs_private=spk_private,
        dhs_public=spk_public,
        dhr=None,
        rk=shared_secret,
        cks=None,
        ckr=None,
    )


# ---------------------------------------------------------------- encrypt / decrypt


def encrypt(state: RatchetState, plaintext: bytes, ad: bytes) -> tuple[RatchetState, bytes, bytes]:
    """Encrypt the next message; returns ``(new_state, header, ciphertext)``.

    Store ``new_state`` before sending: a message key is never used twice, so sending the
    same message again means encrypting it again. Raises :class:`CryptoError` on a responder
    state that has not received anything yet (it has no sending chain).
    """
    if state.cks is None:
        raise CryptoError("no sending chain yet: the responder must receive a message first")
    if state.ns >= MAX_COUNTER:
        raise CryptoError("sending chain exhausted")
    mk, cks = kdf_ck(state.cks)
    header = encode_header(Header(state.dhs_public, state.pn, state.ns))
    ciphertext = seal_message(mk, plaintext, ad + header)
    return msgspec.structs.replace(state, cks=cks, ns=state.ns + 1), header, ciphertext


def decrypt(
    state: RatchetState, header: bytes, ciphertext: bytes, ad: bytes, rng: Rng = default_rng
) -> tuple[RatchetState, bytes]:
    """Decrypt a message; returns ``(new_state, plaintext)``. Store ``new_state`` only after
    the plaintext itself is stored.

    On any error ``state`` stays the current state. Raises :class:`MalformedEnvelope` (bad
    header), :class:`DecryptionFailed` (tampered, forged or not of this session),
    :class:`DuplicateMessage` (key already used or evicted: drop the message quietly),
    :class:`TooManySkipped` (more than :data:`MAX_SKIP` keys skipped in one chain).
    """
    h = decode_header(header)
    full_ad = ad + header

    # 1. A message we skipped earlier: its key is stored.
    for index, entry in enumerate(state.skipped):
        if entry.n == h.n and entry.dh == h.dh:
            plaintext = open_message(entry.mk, ciphertext, full_ad)
            remaining = state.skipped[:index] + state.skipped[index + 1 :]
            return msgspec.structs.replace(state, skipped=remaining), plaintext

    # 2. A chain we already moved past: the key was used (or evicted), or it never existed.
    if h.dh != state.dhr:
        for chain in state.retired:
            if chain.dh == h.dh:
                if h.n < chain.end:
                    raise DuplicateMessage("message key of an earlier chain already used")
                raise DecryptionFailed("message number beyond the end of an earlier chain")

    # 3. The current chain or a new one; everything below works on local copies.
    dhs_private, dhs_public = state.dhs_private, state.dhs_public
    rk, cks, ckr = state.rk, state.cks, state.ckr
    ns, nr, pn = state.ns, state.nr, state.pn
    dhr = state.dhr
    added: list[SkippedKey] = []
    retired = state.retired

    if h.dh != dhr:
        if ckr is not None and dhr is not None:
            ckr, nr = _skip(ckr, nr, h.pn, dhr, added)
            retired = (*retired, RetiredChain(dh=dhr, end=nr))[-MAX_RETIRED_CHAINS:]
        pn, ns, nr = ns, 0, 0
        dhr = h.dh
        try:
            rk, ckr = kdf_rk(rk, x25519(dhs_private, dhr))
            dhs_private, dhs_public = x25519_keypair(rng)
            rk, cks = kdf_rk(rk, x25519(dhs_private, dhr))
        except CryptoError:
            raise DecryptionFailed("header carries an unusable ratchet key") from None
    elif h.n < nr:
        raise DuplicateMessage("message key of the current chain already used")

    if ckr is None:
        # dhr matched but we never received on it: the initiator's view of the peer's
        # signed prekey, which an honest peer never uses as a ratchet key in a header
        raise DecryptionFailed("no receiving chain for this ratchet key")
    ckr, nr = _skip(ckr, nr, h.n, dhr, added)
    mk, ckr = kdf_ck(ckr)
    nr += 1
    plaintext = open_message(mk, ciphertext, full_ad)

    skipped = state.skipped
    if added:
        skipped = (*skipped, *added)[-MAX_SKIPPED_KEYS:]
    new_state = RatchetState(
        dhs_private=dhs_private,
        dhs_public=dhs_public,
        dhr=dhr,
        rk=rk,
        cks=cks,
        ckr=ckr,
        ns=ns,
        nr=nr,
        pn=pn,
        skipped=skipped,
        retired=retired,
    )
    return new_state, plaintext


def _skip(ckr: bytes, nr: int, until: int, dh: bytes, added: list[SkippedKey]) -> tuple[bytes, int]:
    """Derive and collect the keys of messages ``nr .. until-1`` of chain ``dh``."""
    if until - nr > MAX_SKIP:
        raise TooManySkipped(f"message would skip {until - nr} keys (at most {MAX_SKIP})")
    while nr < until:
        mk, ckr = kdf_ck(ckr)
        added.append(SkippedKey(dh=dh, n=nr, mk=mk))
        nr += 1
    return ckr, nr


def _check_len(value: bytes, what: str) -> None:
    if len(value) != 32:
        raise CryptoError(f"the {what} is 32 bytes")

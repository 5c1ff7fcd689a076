"""Sender keys: one encryption per group message, after libsignal's ``group_cipher``.

Each member has, per group, a *sending sender key*: a symmetric hash chain (chain key and
iteration counter) and an Ed25519 signing key pair, both fresh random values. It hands the
chain's current position and the signing *public* key to every other member once, in a
*distribution message* sent over the pairwise Double Ratchet session (which authenticates it
as coming from that member). After that a group message is encrypted once, signed, and the
same bytes go to every member.

Functional, like :mod:`messenger_tui.core.crypto.ratchet`: every call takes frozen structs and
returns new ones; a call that raises returns nothing, so a caller that stores the returned
record only after a success can never corrupt it with a forged, tampered or replayed message.

Primitives (module constants; docs/protocol.md "Groups: sender keys and membership")::

    chain step     mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck, 0x02)   (as the ratchet)
    message key    HKDF-SHA256(ikm=mk, salt=32 zero bytes, info=SENDER_MESSAGE_KEY_INFO, 56)
                   -> (32-byte XChaCha20-Poly1305 key, 24-byte nonce)
    header         version (1) || group_id (16) || key_id (u32 BE) || iteration (u32 BE)  (25)
    group message  header || XChaCha20-Poly1305(key, nonce, plaintext, ad=header)
                          || Ed25519 signature (64) over everything before it
    distribution   version (1) || group_id (16) || key_id (u32 BE) || iteration (u32 BE)
                   || chain_key (32) || signing_public (32)                          (89)

Rules and bounds (libsignal's, with our figures):

1. A receiver keeps at most :data:`MAX_SENDER_KEY_STATES` (5) states per (group, sender),
   newest first, keyed by key id; a sixth distribution evicts the oldest. A message whose key
   id is not held raises :class:`NoSenderKey` (hold it, ask for the key: :mod:`.pending`).
2. The signature is checked before any key is derived: a forged message costs one Ed25519
   verification and changes nothing (:class:`InvalidSignature`).
3. One message may advance a chain by at most :data:`MAX_FORWARD_JUMP` (2,000) iterations
   (:class:`TooManySkipped`); libsignal allows 25,000, but our relay delivers a sender's
   messages in order, so a gap means loss or reordering, and 2,000 matches the pairwise
   ratchet's ``MAX_SKIP``. The keys jumped over are kept, at most
   :data:`MAX_SKIPPED_SENDER_KEYS` (2,000) per state, oldest evicted first.
4. A message whose key was used (or evicted) raises :class:`DuplicateMessage`.
5. A distribution for a key id we hold with the same signing key never rewinds the chain (a
   used key never comes back, so a resend cannot re-enable a replay). If it starts *before*
   the first iteration we ever held (``first_iteration``: the original distribution arrived
   after a resend made at a later iteration), the keys of the iterations in between, which we
   never had, are added to the skipped keys (at most :data:`MAX_FORWARD_JUMP` of them). If it
   is more than :data:`MAX_FORWARD_JUMP` ahead of our chain, the chain moves to it (the
   skipped keys stay): how a receiver that lost a long run of messages recovers through a
   resend. The same key id with another signing key replaces the state (as libsignal).
6. Rotation: :func:`rotate_sender_key` starts a new key id with a fresh chain and signing key.
   Every remaining member rotates after a removal (or a leave) before it sends again, and
   distributes the new key only to the remaining members, so a removed member that keeps
   every key it ever had reads nothing sent afterwards.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Final, NamedTuple

import msgspec
import nacl.bindings

from messenger_tui.core.crypto.identity import verify_signature, x25519_from_identity
from messenger_tui.core.crypto.primitives import (
    AEAD_KEY_LEN,
    AEAD_NONCE_LEN,
    AEAD_TAG_LEN,
    Key32,
    Rng,
    aead_decrypt,
    aead_encrypt,
    default_rng,
    hkdf_sha256,
)
from messenger_tui.core.crypto.ratchet import kdf_ck
from messenger_tui.core.errors import (
    CryptoError,
    DuplicateMessage,
    MalformedEnvelope,
    NoSenderKey,
    TooManySkipped,
)

#: First byte of a group message.
GROUP_MESSAGE_VERSION: Final = 1
#: First byte of a sender-key distribution message.
DISTRIBUTION_VERSION: Final = 1
#: HKDF info that expands a sender message key into an AEAD key and nonce.
SENDER_MESSAGE_KEY_INFO: Final = b"messenger-tui/sender-key-message/v1"
#: Group id length (random, chosen by the group's creator).
GROUP_ID_LEN: Final = 16
#: Most sender-key states a receiver keeps per (group, sender).
MAX_SENDER_KEY_STATES: Final = 5
#: Most iterations one message may advance a receiving chain.
MAX_FORWARD_JUMP: Final = 2000
#: Most skipped message keys kept per sender-key state (oldest evicted first).
MAX_SKIPPED_SENDER_KEYS: Final = 2000
#: Largest iteration and key id (uint32).
MAX_ITERATION: Final = 2**32 - 1
#: Group message header length.
GROUP_HEADER_LEN: Final = 25
#: Ed25519 signature length.
SIGNATURE_LEN: Final = 64
#: Distribution message length.
DISTRIBUTION_LEN: Final = 89
#: Bytes a group message adds to its plaintext (header, tag, signature).
GROUP_MESSAGE_OVERHEAD: Final = GROUP_HEADER_LEN + AEAD_TAG_LEN + SIGNATURE_LEN

_HEADER: Final = struct.Struct(">B16sII")
_DISTRIBUTION: Final = struct.Struct(">B16sII32s32s")
_ZERO_SALT: Final = bytes(32)

Key64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
GroupId = Annotated[bytes, msgspec.Meta(min_length=GROUP_ID_LEN, max_length=GROUP_ID_LEN)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=MAX_ITERATION)]


class GroupMessageHeader(NamedTuple):
    """The clear fields of a group message: enough to find the state that opens it."""

    group_id: bytes
    key_id: int
    iteration: int


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """A sender-key distribution message (decoded). Carries a chain key: send it only inside
    the pairwise encrypted channel."""

    group_id: GroupId
    key_id: U32
    iteration: U32
    chain_key: Key32
    signing_public: Key32

    def __repr__(self) -> str:
        return (
            f"Distribution(group_id={self.group_id.hex()}, key_id={self.key_id}, "
            f"iteration={self.iteration})"
        )


class SendingSenderKey(msgspec.Struct, frozen=True, kw_only=True):
    """Our own sender key in one group. ``signing_secret`` is libsodium's 64-byte form."""

    group_id: GroupId
    key_id: U32
    iteration: U32
    chain_key: Key32
    signing_secret: Key64
    signing_public: Key32

    def __repr__(self) -> str:
        return (
            f"SendingSenderKey(group_id={self.group_id.hex()}, key_id={self.key_id}, "
            f"iteration={self.iteration})"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("key_id", self.key_id), ("iteration", self.iteration)]


class ReceivingSenderKey(msgspec.Struct, frozen=True, kw_only=True):
    """One sender-key state of another member: the next ``iteration`` and its ``chain_key``.

    ``skipped_iterations[i]`` is the iteration whose message key is ``skipped_keys[i]``, in
    insertion (eviction) order; two tuples so a lookup is one ``tuple.index``.
    """

    key_id: U32
    iteration: U32
    chain_key: Key32
    signing_public: Key32
    first_iteration: U32 = 0
    skipped_iterations: tuple[U32, ...] = ()
    skipped_keys: tuple[Key32, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ReceivingSenderKey(key_id={self.key_id}, iteration={self.iteration}, "
            f"skipped={len(self.skipped_keys)})"
        )


class SenderKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Every state we hold of one sender in one group, newest first."""

    group_id: GroupId
    states: tuple[ReceivingSenderKey, ...] = ()

    def key_ids(self) -> tuple[int, ...]:
        """The key ids held, newest first."""
        return tuple(state.key_id for state in self.states)


# ---------------------------------------------------------------- keys


def sender_message_key_material(mk: bytes) -> tuple[bytes, bytes]:
    """The XChaCha20-Poly1305 ``(key, nonce)`` of sender message key ``mk`` (used once)."""
    out = hkdf_sha256(
        mk, salt=_ZERO_SALT, info=SENDER_MESSAGE_KEY_INFO, length=AEAD_KEY_LEN + AEAD_NONCE_LEN
    )
    return out[:AEAD_KEY_LEN], out[AEAD_KEY_LEN:]


def new_sender_key(group_id: bytes, rng: Rng = default_rng) -> SendingSenderKey:
    """A fresh sender key for ``group_id``: random key id, chain key and signing key.

    Draws, in this order: 4 bytes of key id, 32 of chain key, 32 of signing seed.
    """
    _check_group_id(group_id)
    key_id = int.from_bytes(rng(4), "big")
    chain_key = rng(32)
    signing_public, signing_secret = nacl.bindings.crypto_sign_seed_keypair(rng(32))
    if len(chain_key) != 32:
        raise ValueError("the rng returned the wrong number of bytes")
    return SendingSenderKey(
        group_id=group_id,
        key_id=key_id,
        iteration=0,
        chain_key=chain_key,
        signing_secret=signing_secret,
        signing_public=signing_public,
    )


def rotate_sender_key(previous: SendingSenderKey, rng: Rng = default_rng) -> SendingSenderKey:
    """A new sender key for ``previous``'s group, with a key id different from its own.

    Call it when a member is removed or leaves, before sending again, and distribute the
    result to the remaining members only.
    """
    while True:
        fresh = new_sender_key(previous.group_id, rng)
        if fresh.key_id != previous.key_id:
            return fresh


def distribution_of(sending: SendingSenderKey) -> Distribution:
    """The distribution message that lets a member read our messages from now on."""
    return Distribution(
        group_id=sending.group_id,
        key_id=sending.key_id,
        iteration=sending.iteration,
        chain_key=sending.chain_key,
        signing_public=sending.signing_public,
    )


def encode_distribution(distribution: Distribution) -> bytes:
    """The fixed 89-byte encoding (see the module docstring)."""
    return _DISTRIBUTION.pack(
        DISTRIBUTION_VERSION,
        distribution.group_id,
        distribution.key_id,
        distribution.iteration,
        distribution.chain_key,
        distribution.signing_public,
    )


def decode_distribution(data: bytes) -> Distribution:
    """Parse a distribution message; :class:`MalformedEnvelope` if it is not one."""
    if len(data) != DISTRIBUTION_LEN:
        raise MalformedEnvelope(f"a distribution message is {DISTRIBUTION_LEN} bytes")
    version, group_id, key_id, iteration, chain_key, signing_public = _DISTRIBUTION.unpack(data)
    if version != DISTRIBUTION_VERSION:
        raise MalformedEnvelope(f"unknown distribution message version {version}")
    try:
        x25519_from_identity(signing_public)  # refuses what is not an Ed25519 point
    except CryptoError:
        raise MalformedEnvelope("the signing key is not an Ed25519 point") from None
    return Distribution(
        group_id=group_id,
        key_id=key_id,
        iteration=iteration,
        chain_key=chain_key,
        signing_public=signing_public,
    )


def process_distribution(
    record: SenderKeyRecord | None, distribution: Distribution
) -> SenderKeyRecord:
    """``record`` (``None``: the sender's first key in this group) with ``distribution`` added
    as the newest state, by rule 5 of the module docstring; the oldest beyond
    :data:`MAX_SENDER_KEY_STATES` is evicted."""
    if record is None:
        record = SenderKeyRecord(group_id=distribution.group_id)
    elif record.group_id != distribution.group_id:
        raise MalformedEnvelope("a distribution message for another group")
    state: ReceivingSenderKey | None = None
    others: list[ReceivingSenderKey] = []
    for existing in record.states:
        if existing.key_id != distribution.key_id:
            others.append(existing)
        elif existing.signing_public == distribution.signing_public:
            state = existing
    if state is None:
        state = ReceivingSenderKey(
            key_id=distribution.key_id,
            iteration=distribution.iteration,
            chain_key=distribution.chain_key,
            signing_public=distribution.signing_public,
            first_iteration=distribution.iteration,
        )
    elif distribution.iteration - state.iteration > MAX_FORWARD_JUMP:
        state = msgspec.structs.replace(
            state, iteration=distribution.iteration, chain_key=distribution.chain_key
        )
    elif 0 < state.first_iteration - distribution.iteration <= MAX_FORWARD_JUMP:
        state = _backfill(state, distribution)
    states = (state, *others)[:MAX_SENDER_KEY_STATES]
    return SenderKeyRecord(group_id=record.group_id, states=states)


# ---------------------------------------------------------------- encrypt / decrypt


def group_encrypt(sending: SendingSenderKey, plaintext: bytes) -> tuple[SendingSenderKey, bytes]:
    """Encrypt and sign one group message; returns ``(new_sending_key, message)``.

    Store the new key before sending (a message key is never used twice). Raises
    :class:`CryptoError` when the chain is exhausted (rotate).
    """
    if sending.iteration >= MAX_ITERATION:
        raise CryptoError("sender key chain exhausted: rotate it")
    mk, next_chain_key = kdf_ck(sending.chain_key)
    header = _HEADER.pack(
        GROUP_MESSAGE_VERSION, sending.group_id, sending.key_id, sending.iteration
    )
    key, nonce = sender_message_key_material(mk)
    body = header + aead_encrypt(key, nonce, plaintext, header)
    signature = nacl.bindings.crypto_sign(body, sending.signing_secret)[:SIGNATURE_LEN]
    new_sending = msgspec.structs.replace(
        sending, iteration=sending.iteration + 1, chain_key=next_chain_key
    )
    return new_sending, body + signature


def parse_group_header(data: bytes) -> GroupMessageHeader:
    """The clear header of a group message (to find its group and sender key);
    :class:`MalformedEnvelope` if the bytes cannot be a group message."""
    if len(data) < GROUP_MESSAGE_OVERHEAD:
        raise MalformedEnvelope("a group message is shorter than its fixed fields")
    version, group_id, key_id, iteration = _HEADER.unpack_from(data)
    if version != GROUP_MESSAGE_VERSION:
        raise MalformedEnvelope(f"unknown group message version {version}")
    if iteration == MAX_ITERATION:
        raise MalformedEnvelope("a group message iteration past the end of a chain")
    return GroupMessageHeader(group_id, key_id, iteration)


def group_decrypt(record: SenderKeyRecord, data: bytes) -> tuple[SenderKeyRecord, bytes]:
    """Verify and decrypt one group message of the sender ``record`` belongs to; returns
    ``(new_record, plaintext)``. Store the new record only after the plaintext is stored.

    Raises :class:`MalformedEnvelope` (not a group message, or another group's),
    :class:`NoSenderKey` (key id not held: hold the message, request the key),
    :class:`InvalidSignature` (forged or not this sender's), :class:`DuplicateMessage`
    (key used or evicted: drop quietly), :class:`TooManySkipped` (beyond the forward jump),
    :class:`DecryptionFailed` (signed by the sender but not decryptable).
    """
    header = parse_group_header(data)
    if header.group_id != record.group_id:
        raise MalformedEnvelope("a group message for another group")
    position = -1
    for index, candidate in enumerate(record.states):
        if candidate.key_id == header.key_id:
            position = index
            break
    if position < 0:
        raise NoSenderKey(
            f"no sender key {header.key_id} for this sender",
            group_id=header.group_id,
            key_id=header.key_id,
        )
    state = record.states[position]
    body, signature = data[:-SIGNATURE_LEN], data[-SIGNATURE_LEN:]
    verify_signature(state.signing_public, body, signature)

    state, mk = _message_key(state, header.iteration)
    key, nonce = sender_message_key_material(mk)
    plaintext = aead_decrypt(key, nonce, body[GROUP_HEADER_LEN:], body[:GROUP_HEADER_LEN])
    states = (*record.states[:position], state, *record.states[position + 1 :])
    return SenderKeyRecord(group_id=record.group_id, states=states), plaintext


def _message_key(state: ReceivingSenderKey, iteration: int) -> tuple[ReceivingSenderKey, bytes]:
    """The message key of ``iteration`` and the state after using it (not yet stored)."""
    if iteration < state.iteration:
        try:
            index = state.skipped_iterations.index(iteration)
        except ValueError:
            raise DuplicateMessage("sender message key already used or evicted") from None
        mk = state.skipped_keys[index]
        state = msgspec.structs.replace(
            state,
            skipped_iterations=state.skipped_iterations[:index]
            + state.skipped_iterations[index + 1 :],
            skipped_keys=state.skipped_keys[:index] + state.skipped_keys[index + 1 :],
        )
        return state, mk
    jump = iteration - state.iteration
    if jump > MAX_FORWARD_JUMP:
        raise TooManySkipped(f"message jumps {jump} iterations (at most {MAX_FORWARD_JUMP})")
    chain_key = state.chain_key
    new_iterations: list[int] = []
    new_keys: list[bytes] = []
    for skipped in range(state.iteration, iteration):
        skipped_mk, chain_key = kdf_ck(chain_key)
        new_iterations.append(skipped)
        new_keys.append(skipped_mk)
    mk, chain_key = kdf_ck(chain_key)
    skipped_iterations = state.skipped_iterations
    skipped_keys = state.skipped_keys
    if new_keys:
        skipped_iterations = (*skipped_iterations, *new_iterations)[-MAX_SKIPPED_SENDER_KEYS:]
        skipped_keys = (*skipped_keys, *new_keys)[-MAX_SKIPPED_SENDER_KEYS:]
    state = ReceivingSenderKey(
        key_id=state.key_id,
        iteration=iteration + 1,
        chain_key=chain_key,
        signing_public=state.signing_public,
        first_iteration=state.first_iteration,
        skipped_iterations=skipped_iterations,
        skipped_keys=skipped_keys,
    )
    return state, mk


def _backfill(state: ReceivingSenderKey, distribution: Distribution) -> ReceivingSenderKey:
    """``state`` with the keys of iterations ``distribution.iteration .. first_iteration-1``
    added as skipped keys (rule 5: keys we never had, so never used)."""
    chain_key = distribution.chain_key
    new_iterations: list[int] = []
    new_keys: list[bytes] = []
    for iteration in range(distribution.iteration, state.first_iteration):
        mk, chain_key = kdf_ck(chain_key)
        new_iterations.append(iteration)
        new_keys.append(mk)
    return msgspec.structs.replace(
        state,
        first_iteration=distribution.iteration,
        skipped_iterations=(*state.skipped_iterations, *new_iterations)[-MAX_SKIPPED_SENDER_KEYS:],
        skipped_keys=(*state.skipped_keys, *new_keys)[-MAX_SKIPPED_SENDER_KEYS:],
    )


def _check_group_id(group_id: bytes) -> None:
    if len(group_id) != GROUP_ID_LEN:
        raise CryptoError(f"a group id is {GROUP_ID_LEN} bytes")

"""End-to-end sessions: X3DH + Double Ratchet + the envelope on the wire. What the app uses.

Sending to a new contact::

    session = initiate_session(my_identity, bundle)        # bundle fetched from the relay
    session, envelope = encrypt(session, plaintext)        # store session, then send envelope

Receiving::

    env = parse_envelope(data)
    key = envelope_session_key(env)      # base key if the envelope starts/names a session
    if key is a session we hold:    session, plaintext = decrypt(that_session, env)
    elif key is not None:           session, plaintext = accept_session(me, env, sender, spk, opk)
                                    # then delete the one-time prekey ``env.prekey.opk_id``
    else:                           try decrypt() with the peer's sessions, newest first;
                                    DecryptionFailed means "not this one"

Store the returned session only after the plaintext is stored; on any exception keep the old
one (it is unchanged). :class:`DuplicateMessage` means the message was already decrypted:
acknowledge it to the relay and drop it.

Until the first message from the peer decrypts in a session we initiated, every envelope we
send repeats the handshake (:class:`PreKeyInfo`), so whichever arrives first can start the
session on the other side (Signal does the same).

Envelope encoding (msgpack array): ``[version, prekey | nil, header (40 B), ciphertext]`` with
``prekey = [identity (32 B), ephemeral (32 B), spk_id, opk_id | nil]``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Final

import msgspec

from messenger_tui.core.crypto import ratchet, x3dh
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import (
    OneTimePrekey,
    PrekeyBundle,
    PrekeyId,
    SignedPrekey,
)
from messenger_tui.core.crypto.primitives import AEAD_TAG_LEN, Key32, Rng, default_rng
from messenger_tui.core.crypto.ratchet import HEADER_LEN, RatchetState
from messenger_tui.core.errors import (
    CorruptSession,
    CryptoError,
    DecryptionFailed,
    IdentityMismatch,
    MalformedEnvelope,
    SessionMismatch,
    UnknownPrekey,
)

#: The only envelope version this code reads and writes.
ENVELOPE_VERSION: Final = 1
#: Version of the :func:`serialize_session` format.
SESSION_FORMAT_VERSION: Final = 1

HeaderBytes = Annotated[bytes, msgspec.Meta(min_length=HEADER_LEN, max_length=HEADER_LEN)]
CiphertextBytes = Annotated[bytes, msgspec.Meta(min_length=AEAD_TAG_LEN)]
AssociatedData = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class PreKeyInfo(msgspec.Struct, frozen=True, array_like=True):
    """The X3DH handshake data the initiator attaches to its first envelopes."""

    identity: Key32  # the sender's Ed25519 identity key
    ephemeral: Key32  # X3DH ephemeral public key; names the session (its base key)
    spk_id: PrekeyId
    opk_id: PrekeyId | None


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """One end-to-end encrypted message as it travels through the relay."""

    version: int
    prekey: PreKeyInfo | None
    header: HeaderBytes
    ciphertext: CiphertextBytes


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One end-to-end session with ``peer``. Immutable; store it with :func:`serialize_session`.

    ``base_key`` (the X3DH ephemeral public key) names the session; ``initiated`` tells who
    started it; ``pending_prekey`` rides along on our envelopes until ``confirmed`` (a message
    from the peer decrypted in this session).
    """

    peer: Key32
    ratchet: RatchetState
    associated_data: AssociatedData
    base_key: Key32
    initiated: bool
    pending_prekey: PreKeyInfo | None
    confirmed: bool


class _VersionProbe(msgspec.Struct, array_like=True, forbid_unknown_fields=False):
    version: int


class _SessionRecord(msgspec.Struct, frozen=True, array_like=True):
    format: int
    session: Session


class _SessionProbe(msgspec.Struct, array_like=True, forbid_unknown_fields=False):
    format: int


_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)
_version_decoder = msgspec.msgpack.Decoder(_VersionProbe)
_session_decoder = msgspec.msgpack.Decoder(_SessionRecord)
_session_probe_decoder = msgspec.msgpack.Decoder(_SessionProbe)


def initiate_session(
    identity: IdentityKeyPair, bundle: PrekeyBundle, rng: Rng = default_rng
) -> Session:
    """Start a session with the owner of ``bundle`` (verified here); ready to :func:`encrypt`.

    Raises :class:`InvalidSignature` or :class:`MalformedEnvelope` for a bad bundle, which
    means the relay (or someone on the way) served keys the contact did not sign: do not send.
    """
    init = x3dh.initiate(identity, bundle, rng)
    state = ratchet.init_initiator(init.shared_secret, bundle.spk, rng)
    return Session(
        peer=bundle.identity,
        ratchet=state,
        associated_data=init.associated_data,
        base_key=init.ephemeral_public,
        initiated=True,
        pending_prekey=PreKeyInfo(
            identity=identity.public,
            ephemeral=init.ephemeral_public,
            spk_id=init.spk_id,
            opk_id=init.opk_id,
        ),
        confirmed=False,
    )


def encrypt(session: Session, plaintext: bytes) -> tuple[Session, bytes]:
    """Encrypt ``plaintext``; returns ``(new_session, envelope_bytes)``.

    Store ``new_session`` before handing the envelope to the outbox, so a crash can never
    make us reuse a message key.
    """
    state, header, ciphertext = ratchet.encrypt(session.ratchet, plaintext, session.associated_data)
    envelope = Envelope(
        version=ENVELOPE_VERSION,
        prekey=session.pending_prekey,
        header=header,
        ciphertext=ciphertext,
    )
    return msgspec.structs.replace(session, ratchet=state), _encoder.encode(envelope)


def parse_envelope(data: bytes) -> Envelope:
    """Decode envelope bytes; raises :class:`MalformedEnvelope` on garbage, an unknown version
    or a field of the wrong size."""
    try:
        version = _version_decoder.decode(data).version
    except msgspec.DecodeError as exc:
        raise MalformedEnvelope(f"not an envelope: {exc}") from None
    except RecursionError:  # msgspec's bound on nesting (an unknown field skipped)
        raise MalformedEnvelope("not an envelope: nested too deeply") from None
    if version != ENVELOPE_VERSION:
        raise MalformedEnvelope(f"unknown envelope version {version}")
    try:
        return _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedEnvelope(f"malformed envelope: {exc}") from None
    except RecursionError:
        raise MalformedEnvelope("malformed envelope: nested too deeply") from None


def envelope_session_key(envelope: Envelope) -> bytes | None:
    """The base key of the session an envelope belongs to, when it carries a handshake.

    None for ordinary envelopes: try the peer's sessions, newest first.
    """
    return envelope.prekey.ephemeral if envelope.prekey is not None else None


def accept_session(
    identity: IdentityKeyPair,
    envelope: Envelope,
    sender_identity: bytes,
    spk: SignedPrekey,
    opk: OneTimePrekey | None,
    rng: Rng = default_rng,
) -> tuple[Session, bytes]:
    """Start the responder side from an envelope carrying a handshake; returns
    ``(session, first_plaintext)``.

    ``sender_identity`` is who the relay says sent it; ``spk``/``opk`` are our private prekeys
    with the ids the envelope names (``opk`` None when ``envelope.prekey.opk_id`` is None).
    After storing the session and plaintext, delete ``opk``: a replayed handshake must then
    fail with :class:`UnknownPrekey`.

    Raises :class:`IdentityMismatch` (handshake identity differs from ``sender_identity``:
    someone is impersonating the sender), :class:`UnknownPrekey` (prekeys given do not match
    the ids named), :class:`MalformedEnvelope` (no handshake in the envelope),
    :class:`DecryptionFailed` and the other ratchet errors.
    """
    prekey = envelope.prekey
    if prekey is None:
        raise MalformedEnvelope("the envelope carries no handshake; decrypt it with a session")
    if len(sender_identity) != 32 or not hmac.compare_digest(prekey.identity, sender_identity):
        raise IdentityMismatch("the handshake names a different identity than the sender")
    if spk.id != prekey.spk_id:
        raise UnknownPrekey(f"the envelope names signed prekey {prekey.spk_id}, not {spk.id}")
    if prekey.opk_id is None:
        if opk is not None:
            raise ValueError("the envelope names no one-time prekey; pass opk=None")
    elif opk is None or opk.id != prekey.opk_id:
        raise UnknownPrekey(f"the envelope names one-time prekey {prekey.opk_id}")
    try:
        shared_secret, associated_data = x3dh.respond(
            identity, spk, opk, prekey.identity, prekey.ephemeral
        )
        state = ratchet.init_responder(shared_secret, spk.private, spk.public)
    except CryptoError:
        # an identity or ephemeral key that is not a usable curve point: a forged handshake
        raise DecryptionFailed("the handshake carries an unusable key") from None
    state, plaintext = ratchet.decrypt(
        state, envelope.header, envelope.ciphertext, associated_data, rng
    )
    session = Session(
        peer=prekey.identity,
        ratchet=state,
        associated_data=associated_data,
        base_key=prekey.ephemeral,
        initiated=False,
        pending_prekey=None,
        confirmed=True,
    )
    return session, plaintext


def decrypt(session: Session, envelope: Envelope, rng: Rng = default_rng) -> tuple[Session, bytes]:
    """Decrypt an envelope in an existing session; returns ``(new_session, plaintext)``.

    Raises :class:`SessionMismatch` if the envelope's handshake names another session (look
    it up with :func:`envelope_session_key` or :func:`accept_session` it),
    :class:`IdentityMismatch`, and the ratchet errors (:class:`DecryptionFailed`,
    :class:`DuplicateMessage`, :class:`TooManySkipped`, :class:`MalformedEnvelope`).
    """
    if envelope.version != ENVELOPE_VERSION:
        raise MalformedEnvelope(f"unknown envelope version {envelope.version}")
    if envelope.prekey is not None:
        if envelope.prekey.ephemeral != session.base_key:
            raise SessionMismatch("the envelope starts a different session")
        if envelope.prekey.identity != session.peer:
            raise IdentityMismatch("the handshake names a different identity than the session")
    state, plaintext = ratchet.decrypt(
        session.ratchet, envelope.header, envelope.ciphertext, session.associated_data, rng
    )
    new_session = msgspec.structs.replace(
        session, ratchet=state, confirmed=True, pending_prekey=None
    )
    return new_session, plaintext


def serialize_session(session: Session) -> bytes:
    """The session as bytes for storage (msgpack, versioned). Contains secrets: store it only
    where the identity key is kept, never log it."""
    return _encoder.encode(_SessionRecord(format=SESSION_FORMAT_VERSION, session=session))


def deserialize_session(data: bytes) -> Session:
    """Rebuild a stored session; raises :class:`CorruptSession` on damaged or foreign data."""
    try:
        version = _session_probe_decoder.decode(data).format
    except msgspec.DecodeError:
        raise CorruptSession("stored session is not readable") from None
    if version != SESSION_FORMAT_VERSION:
        raise CorruptSession(f"unknown stored session format {version}")
    try:
        return _session_decoder.decode(data).session
    except msgspec.DecodeError as exc:
        raise CorruptSession(f"stored session is damaged: {exc}") from None

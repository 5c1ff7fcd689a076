"""Relay wire protocol: the frames exchanged between a client and the relay.

Every frame is one binary websocket message holding one msgpack-encoded struct, told apart by
its tag field ``t``. The relay sees only what is here: routing metadata (identity keys, message
ids, sizes, times) and opaque end-to-end encrypted bodies.

Callers encode with :func:`encode` and decode with :func:`decode_client_frame` (on the relay)
or :func:`decode_relay_frame` (on the client); both raise :class:`MalformedFrame` on anything
that is not a well-formed frame of the expected direction, so the caller can answer with an
``Error(code="malformed")`` frame instead of crashing. See docs/protocol.md.
"""

from __future__ import annotations

from typing import Final, TypeVar

import msgspec

from messenger_tui.core.errors import MalformedFrame

PROTOCOL_VERSION: Final = 1
#: Largest end-to-end envelope the relay stores (Signal caps envelopes at 96 KiB too).
MAX_ENVELOPE: Final = 96 * 1024
#: Largest websocket message either side accepts; leaves room for framing around an envelope.
MAX_FRAME: Final = 128 * 1024
#: Length of a client-chosen message id.
MESSAGE_ID_LEN: Final = 16
#: Ed25519 public key length: identities on the wire.
KEY_LEN: Final = 32
#: Most recipients one :class:`SendMulti` may name (a group's member bound).
MAX_MULTI_RECIPIENTS: Final = 256
#: Largest per-recipient header of a :class:`SendMulti` (room for a pairwise-sealed key).
MAX_MULTI_HEADER: Final = 128
#: Domain separation for the authentication signature.
AUTH_CONTEXT: Final = b"messenger-tui/auth/v1\x00"
#: Largest clock difference the relay tolerates in an authentication timestamp.
AUTH_MAX_SKEW_MS: Final = 120_000


class ErrorCode:
    """Machine-readable ``Error.code`` values; ``Error.message`` carries the human text."""

    MALFORMED: Final = "malformed"  # not a decodable frame of the expected direction
    UNAUTHENTICATED: Final = "unauthenticated"  # a request other than auth before auth
    AUTH_FAILED: Final = "auth_failed"  # bad signature, wrong nonce, stale timestamp
    TOO_LARGE: Final = "too_large"  # envelope over MAX_ENVELOPE
    RATE_LIMITED: Final = "rate_limited"  # per-identity budget exhausted; retry later
    NOT_FOUND: Final = "not_found"  # e.g. no prekey bundle published for that identity
    FORBIDDEN: Final = "forbidden"  # acting on something that is not the caller's
    BAD_REQUEST: Final = "bad_request"  # well-formed frame with invalid field values
    MAILBOX_FULL: Final = "mailbox_full"  # recipient's queue at its bound
    #: a short send's reference that no grant resolves: name that recipient in the long form
    NOT_GRANTED: Final = "not_granted"
    INTERNAL: Final = "internal"  # relay fault; the request may be retried


class _Frame(msgspec.Struct, tag_field="t", frozen=True, forbid_unknown_fields=False):
    """Base of every frame."""


# ---------------------------------------------------------------- relay -> client


class Challenge(_Frame, tag="challenge", frozen=True):
    """First frame on every connection. The client answers with :class:`Auth`."""

    version: int
    relay_key: bytes  # the relay's Ed25519 public key; bound into the auth signature
    nonce: bytes  # 32 fresh random bytes, valid for this connection only
    time_ms: int  # relay clock, lets a client report skew
    max_envelope: int = MAX_ENVELOPE
    echo: bytes | None = None  # identity key of the Echo contact when the relay runs one


class AuthOk(_Frame, tag="auth_ok", frozen=True):
    """Authentication succeeded; the connection is bound to ``identity``.

    The relay starts pushing :class:`Deliver` frames for the queued mailbox right after.
    """

    identity: bytes
    queued: int  # envelopes waiting in the mailbox at this moment
    prekeys_remaining: int  # one-time prekeys left; replenish when low
    signed_prekey_id: int | None = None  # id of the signed prekey the relay holds, if any


class Stored(_Frame, tag="stored", frozen=True):
    """The envelope ``id`` sent to ``to`` is durably stored (or was already: idempotent).
    ``request``: it went to the recipient's message-request quota (the delivery secret was
    missing or wrong), not to its contact quota."""

    id: bytes
    to: bytes
    request: bool = False


class StoredMulti(_Frame, tag="stored_multi", frozen=True):
    """Answer to :class:`SendMulti` ``id``: one :class:`MultiOutcome` per recipient, in the
    order of the request's ``to``. A refused recipient does not block the others."""

    id: bytes
    results: list[MultiOutcome]


class MultiOutcome(msgspec.Struct, frozen=True, array_like=True):
    """One recipient's outcome of a :class:`SendMulti`. ``code`` None: stored (or already
    stored: idempotent per recipient); else the :class:`ErrorCode` it was refused with
    (``mailbox_full``: retry that recipient later). ``request`` as in :class:`Stored`."""

    to: bytes
    code: str | None = None
    request: bool = False


class Deliver(_Frame, tag="deliver", frozen=True):
    """A stored envelope for the authenticated identity. Acknowledge with :class:`Ack`
    only after the plaintext and ratchet state are durably stored; until then the relay
    redelivers it on every new connection.

    ``header`` is None for a 1:1 envelope (:class:`Send`). For a multi-recipient one
    (:class:`SendMulti`) it is this recipient's own header (possibly empty) and ``body`` the
    shared body: the two fields are exactly what the sender put in the request."""

    id: bytes
    sender: bytes
    body: bytes
    stored_at_ms: int
    header: bytes | None = None


class Drained(_Frame, tag="drained", frozen=True):
    """Everything that was queued has been pushed (sent after the initial backlog and
    each later time the relay catches up). Unacked deliveries may still be in flight."""

    pushed: int  # deliveries pushed on this connection so far


class Bundle(_Frame, tag="bundle", frozen=True):
    """Answer to :class:`FetchBundle`. The one-time prekey is never handed out twice."""

    ref: int
    identity: bytes
    spk_id: int
    spk: bytes  # X25519 public signed prekey
    spk_sig: (
        bytes  # Ed25519 signature by identity over SPK_SIGNATURE_CONTEXT || spk (crypto/prekeys.py)
    )
    opk_id: int | None = None
    opk: bytes | None = None


class Ok(_Frame, tag="ok", frozen=True):
    """Generic success answer to a request carrying ``ref``."""

    ref: int
    prekeys_remaining: int | None = None


class Presence(_Frame, tag="presence", frozen=True):
    """Ephemeral presence change of a subscribed identity (never stored)."""

    identity: bytes
    online: bool


class SignalDeliver(_Frame, tag="signal_deliver", frozen=True):
    """An ephemeral end-to-end body (typing, call ringing) from ``sender``; never stored,
    never acknowledged, dropped by the relay if the recipient is offline or slow."""

    sender: bytes
    body: bytes


class Error(_Frame, tag="error", frozen=True):
    """A refused request. ``ref`` echoes the request's ``ref`` or message id when known."""

    code: str
    message: str
    ref: int | bytes | None = None


# ---------------------------------------------------------------- client -> relay


class Auth(_Frame, tag="auth", frozen=True):
    """Answer to :class:`Challenge`: a signature over :func:`auth_message`."""

    identity: bytes
    time_ms: int
    signature: bytes


class Send(_Frame, tag="send", frozen=True):
    """Store ``body`` in ``to``'s mailbox under the client-chosen ``id`` (idempotent).
    ``access`` is ``to``'s delivery secret when the sender learned it (a contact); without
    it, or with a wrong one, the envelope is a message request (a small separate quota)."""

    id: bytes
    to: bytes
    body: bytes
    access: bytes | None = None


class MultiRecipient(msgspec.Struct, frozen=True, array_like=True):
    """One recipient of a :class:`SendMulti`: its identity, its own header (at most
    :data:`MAX_MULTI_HEADER` bytes; empty for a group message, whose sender-key ciphertext
    is the shared body) and its delivery secret as in :class:`Send`."""

    to: bytes
    header: bytes = b""
    access: bytes | None = None


class SendMulti(_Frame, tag="send_multi", frozen=True):
    """Store ``body`` once for every recipient in ``to`` (1 to :data:`MAX_MULTI_RECIPIENTS`,
    each named once) under the client-chosen ``id``, idempotent per recipient as
    :class:`Send`. Answered by one :class:`StoredMulti`, or one :class:`Error` (ref ``id``)
    when the whole frame is refused (bad fields, too large, rate limited)."""

    id: bytes
    body: bytes
    to: list[MultiRecipient]
    #: The short fan-out form (core/groups/send_credential.py): ``to`` is empty, ``cred`` is
    #: the sender key's send credential and ``refs`` the recipients' 8-byte references,
    #: concatenated; the answer's ``MultiOutcome.to`` is then each reference.
    cred: bytes | None = None
    refs: bytes = b""


class Ack(_Frame, tag="ack", frozen=True):
    """Delete these envelopes from the caller's own mailbox."""

    ids: list[bytes]


class OneTimePrekeyWire(msgspec.Struct, frozen=True, array_like=True):
    """One X25519 one-time prekey as published."""

    id: int
    key: bytes


class PublishPrekeys(_Frame, tag="publish_prekeys", frozen=True):
    """Publish (or replace) the signed prekey and add one-time prekeys."""

    ref: int
    spk_id: int
    spk: bytes
    spk_sig: bytes
    opks: list[OneTimePrekeyWire] = []


class FetchBundle(_Frame, tag="fetch_bundle", frozen=True):
    """Ask for ``identity``'s prekey bundle; answered by :class:`Bundle` or ``not_found``."""

    ref: int
    identity: bytes


class SetDeliveryVerifier(_Frame, tag="set_delivery_verifier", frozen=True):
    """Register (or rotate to) the caller's delivery verifier, the SHA-256 of its delivery
    secret (:func:`messenger_tui.core.delivery_access.delivery_verifier`); answered by
    :class:`Ok`. Sends presenting the matching secret count as a contact's."""

    ref: int
    verifier: bytes


class SetGroupGrants(_Frame, tag="set_group_grants", frozen=True):
    """Replace the caller's group send grants: ``grants`` is up to
    :data:`~messenger_tui.core.groups.send_credential.MAX_GRANTS` entries of 64 bytes, a
    sender's identity then the verifier of that sender's current send credential
    (core/groups/send_credential.py), concatenated. Short sends from a sender presenting a
    granted credential reach the caller (as a contact's); answered by :class:`Ok`."""

    ref: int
    grants: bytes


class Subscribe(_Frame, tag="subscribe", frozen=True):
    """Receive :class:`Presence` for these identities (replaces earlier subscriptions)."""

    identities: list[bytes]


class Signal(_Frame, tag="signal", frozen=True):
    """Forward an ephemeral end-to-end body to ``to`` if online; never stored."""

    to: bytes
    body: bytes


RelayFrame = (
    Challenge
    | AuthOk
    | Stored
    | StoredMulti
    | Deliver
    | Drained
    | Bundle
    | Ok
    | Presence
    | (SignalDeliver | Error)
)
ClientFrame = (
    Auth
    | Send
    | SendMulti
    | Ack
    | PublishPrekeys
    | FetchBundle
    | Subscribe
    | Signal
    | SetDeliveryVerifier
    | SetGroupGrants
)

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_relay_decoder: msgspec.msgpack.Decoder[RelayFrame] = msgspec.msgpack.Decoder(RelayFrame)
_client_decoder: msgspec.msgpack.Decoder[ClientFrame] = msgspec.msgpack.Decoder(ClientFrame)


def encode(frame: RelayFrame | ClientFrame) -> bytes:
    """Serialize a frame for a binary websocket message."""
    return _encoder.encode(frame)


def decode_relay_frame(data: bytes | str) -> RelayFrame:
    """Decode a frame the relay sent. Raises :class:`MalformedFrame`."""
    return _decode(_relay_decoder, data)


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode a frame a client sent. Raises :class:`MalformedFrame`."""
    return _decode(_client_decoder, data)


def _decode(decoder: msgspec.msgpack.Decoder[T], data: bytes | str) -> T:
    if isinstance(data, str):
        raise MalformedFrame("text frames are not part of the protocol; send binary frames")
    return decode_bounded(decoder, data, "frame")


def decode_bounded(decoder: msgspec.msgpack.Decoder[T], data: bytes, what: str) -> T:
    """Decode untrusted bytes with a typed decoder; every failure is :class:`MalformedFrame`.

    No frame nests deeper than 3 levels, but msgspec skips the value of an unknown field
    (kept for forward compatibility) by recursing into it, and a 128 KiB message can nest
    130,000 levels. msgspec checks the interpreter's recursion limit at every level and
    raises RecursionError (the C stack stays safe); that is turned into ``malformed`` here,
    so the depth an attacker reaches is bounded by the recursion limit (1,000) and costs one
    linear pass over the message (docs/threat-model.md, "Deeply nested frames").
    """
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise MalformedFrame(f"undecodable {what}: {exc}") from None
    except RecursionError:
        raise MalformedFrame(f"undecodable {what}: nested too deeply") from None


def auth_message(relay_key: bytes, nonce: bytes, identity: bytes, time_ms: int) -> bytes:
    """The exact bytes a client signs to authenticate (and the relay verifies)."""
    return AUTH_CONTEXT + relay_key + nonce + identity + time_ms.to_bytes(8, "big", signed=False)

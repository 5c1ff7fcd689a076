"""Call signalling messages: the plaintexts that travel inside the end-to-end ratchet.

The relay never sees these; it sees an ephemeral ``signal`` frame of some size. They are
msgpack maps tagged by ``t`` like :mod:`messenger_tui.core.payload` (the tags start with
``call_`` so they can join that union without clashing). Encode with
:func:`encode_call_message`; :func:`decode_call_message` raises :class:`MalformedCallMessage`
for anything else, including wrong key or id lengths, so the signalling machine only ever sees
well-formed messages.

The offer and the accept each carry a fresh X25519 public key made for this call only; see
:mod:`messenger_tui.core.calls.media_keys` for how both sides turn them into media keys.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from messenger_tui.core.errors import CoreError

#: Length of a call id (random, chosen by the caller).
CALL_ID_LEN: Final = 16
#: Length of the per-call X25519 public keys in the offer and accept.
CALL_KEY_LEN: Final = 32

CallId = Annotated[bytes, msgspec.Meta(min_length=CALL_ID_LEN, max_length=CALL_ID_LEN)]
CallPublicKey = Annotated[bytes, msgspec.Meta(min_length=CALL_KEY_LEN, max_length=CALL_KEY_LEN)]
#: Why the sender hung up; the receiver ends the call with the same reason.
HangupReason = Literal["hung_up", "no_answer", "failed", "connection_lost"]


class MalformedCallMessage(CoreError):
    """A decrypted plaintext that is not a call message this version understands."""


class _CallMessage(msgspec.Struct, tag_field="t", frozen=True):
    call_id: CallId


class CallOffer(_CallMessage, tag="call_offer", frozen=True):
    """Caller → callee: "ring". ``created_ms`` is the caller's clock when it placed the call;
    the callee never rings for an offer older than ``MAX_OFFER_AGE_MS``."""

    created_ms: Annotated[int, msgspec.Meta(ge=0)]
    #: The caller's fresh X25519 public key for this call.
    key: CallPublicKey


class CallRinging(_CallMessage, tag="call_ringing", frozen=True):
    """Callee → caller: the offer arrived and the callee's client is ringing."""


class CallAccept(_CallMessage, tag="call_accept", frozen=True):
    """Callee → caller: the user answered. Carries the callee's fresh X25519 public key."""

    key: CallPublicKey


class CallDecline(_CallMessage, tag="call_decline", frozen=True):
    """Callee → caller: the user declined."""


class CallBusy(_CallMessage, tag="call_busy", frozen=True):
    """Callee → caller: already in another call; the offer was not shown as ringing."""


class CallHangup(_CallMessage, tag="call_hangup", frozen=True):
    """Either side: the call is over (or cancelled before it was answered)."""

    reason: HangupReason = "hung_up"


CallMessage = CallOffer | CallRinging | CallAccept | CallDecline | CallBusy | CallHangup

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[CallMessage] = msgspec.msgpack.Decoder(CallMessage)


def encode_call_message(message: CallMessage) -> bytes:
    """Serialize a call message; the result is what the ratchet encrypts."""
    return _encoder.encode(message)


def decode_call_message(data: bytes) -> CallMessage:
    """Parse a decrypted plaintext. Raises :class:`MalformedCallMessage`."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedCallMessage(f"unreadable call message: {exc}") from None
    except RecursionError:  # msgspec's bound on nesting (an unknown field skipped)
        raise MalformedCallMessage("unreadable call message: nested too deeply") from None

"""Call messages (encoding, validation) and media key derivation (known answers, reference)."""

from __future__ import annotations

import msgspec
import pytest

from messenger_tui.core.calls.audio_payload import audio_payload_size, pack_audio, unpack_audio
from messenger_tui.core.calls.media_keys import (
    MEDIA_KEYS_INFO,
    CallKeyPair,
    CallRole,
    derive_media_keys,
)
from messenger_tui.core.calls.messages import (
    CallAccept,
    CallBusy,
    CallDecline,
    CallHangup,
    CallMessage,
    CallOffer,
    CallRinging,
    MalformedCallMessage,
    decode_call_message,
    encode_call_message,
)
from messenger_tui.core.crypto.media_frame import MalformedMediaFrame, MediaDirection, PayloadType
from messenger_tui.core.crypto.primitives import x25519_public
from messenger_tui.core.errors import CryptoError
from messenger_tui.core.payload import Payload

from ..crypto._util import ref_hkdf, ref_x25519

CALL_ID = bytes(range(16))
CALLER = CallKeyPair(bytes(range(32)), x25519_public(bytes(range(32))))
CALLEE = CallKeyPair(bytes(range(32, 64)), x25519_public(bytes(range(32, 64))))

MESSAGES: list[CallMessage] = [
    CallOffer(CALL_ID, created_ms=1_700_000_000_000, key=CALLER.public),
    CallRinging(CALL_ID),
    CallAccept(CALL_ID, key=CALLEE.public),
    CallDecline(CALL_ID),
    CallBusy(CALL_ID),
    CallHangup(CALL_ID),
    CallHangup(CALL_ID, reason="connection_lost"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_roundtrip(message: CallMessage) -> None:
    assert decode_call_message(encode_call_message(message)) == message


def test_offer_encoding_is_frozen() -> None:
    data = encode_call_message(MESSAGES[0])
    assert data.hex() == (
        "84a174aa63616c6c5f6f66666572a763616c6c5f6964c410000102030405060708090a0b0c0d0e0f"
        "aa637265617465645f6d73cf0000018bcfe56800a36b6579c420"
        "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"t": "call_offer", "call_id": bytes(15), "created_ms": 1, "key": bytes(32)},
        {"t": "call_offer", "call_id": bytes(16), "created_ms": -1, "key": bytes(32)},
        {"t": "call_offer", "call_id": bytes(16), "created_ms": 1, "key": bytes(31)},
        {"t": "call_accept", "call_id": bytes(16)},
        {"t": "call_hangup", "call_id": bytes(16), "reason": "declined"},
        {"t": "call_video", "call_id": bytes(16)},
        {"call_id": bytes(16)},
        "not a map",
    ],
)
def test_malformed_messages_are_typed_errors(raw: object) -> None:
    with pytest.raises(MalformedCallMessage):
        decode_call_message(msgspec.msgpack.encode(raw))
    with pytest.raises(MalformedCallMessage):
        decode_call_message(b"\xc1garbage")


def test_call_tags_do_not_clash_with_chat_payload_tags() -> None:
    """So the call messages can join core.payload's union later."""
    payload_tags = {t.__struct_config__.tag for t in Payload.__args__}
    call_tags = {t.__struct_config__.tag for t in CallMessage.__args__}
    assert not payload_tags & call_tags
    assert all(str(tag).startswith("call_") for tag in call_tags)


def test_both_sides_derive_complementary_keys() -> None:
    caller = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )
    callee = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLEE, own=CALLEE, peer_public=CALLER.public
    )
    assert caller.send_key == callee.receive_key and callee.send_key == caller.receive_key
    assert caller.join_token == callee.join_token
    assert len({caller.send_key, caller.receive_key, caller.join_token}) == 3
    assert caller.send_direction is MediaDirection.CALLER_TO_CALLEE
    assert callee.send_direction is MediaDirection.CALLEE_TO_CALLER
    # frozen known answer
    assert caller.send_key.hex() == (
        "960836c6d078bf9142e51f9e904c5b5aaf014ab6e99104d3847032c16d0e77a7"
    )
    assert caller.receive_key.hex() == (
        "fed0cf51c76f73413f5a7285d7948a971a5016707dbbdb55d9f40a390037e101"
    )
    assert caller.join_token.hex() == (
        "d87f954872c3d7215aebca1e005de8cfed029b79c528c4eee20d428048121c93"
    )


def test_derivation_matches_independent_reference() -> None:
    """HKDF(X25519(a, B), salt = call id, info = label || caller pub || callee pub), with the
    `cryptography` package instead of our primitives."""
    shared = ref_x25519(CALLER.private, CALLEE.public)
    okm = ref_hkdf(shared, CALL_ID, MEDIA_KEYS_INFO + CALLER.public + CALLEE.public, 96)
    keys = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )
    assert (keys.send_key, keys.receive_key, keys.join_token) == (okm[:32], okm[32:64], okm[64:])


def test_the_join_token_needs_the_keys_not_just_the_call_id() -> None:
    """A stranger who knows the call id (and even the public keys) but holds neither private
    key gets a different token."""
    real = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )
    stranger = CallKeyPair(bytes([7]) * 32, x25519_public(bytes([7]) * 32))
    for peer in (CALLER.public, CALLEE.public):
        forged = derive_media_keys(
            call_id=CALL_ID, role=CallRole.CALLER, own=stranger, peer_public=peer
        )
        assert forged.join_token != real.join_token
    other_call = derive_media_keys(
        call_id=bytes(16), role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )
    assert other_call.join_token != real.join_token and other_call.send_key != real.send_key


def test_bad_peer_keys_are_refused() -> None:
    for bad in (bytes(32), bytes(31)):
        with pytest.raises(CryptoError):
            derive_media_keys(call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=bad)
    with pytest.raises(CryptoError):
        derive_media_keys(
            call_id=bytes(8), role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
        )


def test_key_reprs_hide_secrets() -> None:
    keys = derive_media_keys(
        call_id=CALL_ID, role=CallRole.CALLER, own=CALLER, peer_public=CALLEE.public
    )
    text = repr(keys) + repr(CALLER)
    for secret in (keys.send_key, keys.receive_key, keys.join_token, CALLER.private):
        assert secret.hex() not in text and repr(secret) not in text


def test_audio_payload_layouts() -> None:
    """Byte-exact layouts (docs/protocol.md, "Audio payload")."""
    assert pack_audio(b"primary") == (PayloadType.OPUS, b"\x00\x07primary")
    assert unpack_audio(PayloadType.OPUS, b"\x00\x07primary") == (b"primary", None)
    ptype, payload = pack_audio(b"p" * 60, b"r" * 60)
    assert ptype is PayloadType.OPUS_RED and payload == b"\x00\x3c\x00\x3c" + b"p" * 60 + b"r" * 60
    assert unpack_audio(ptype, payload) == (b"p" * 60, b"r" * 60)
    ptype, payload = pack_audio(b"first", b"")  # the first frame has no previous one
    assert payload == b"\x00\x05\x00\x00first"
    assert unpack_audio(ptype, payload) == (b"first", None)


def test_audio_payloads_are_padded_to_one_size() -> None:
    """Whatever the packets' sizes, every payload of a call has the same length."""
    size = audio_payload_size(75, redundancy=True)
    assert size == 4 + 2 * 75
    for primary, redundant in ((b"a" * 75, b"b" * 75), (b"a" * 3, b""), (b"a" * 40, b"b" * 75)):
        ptype, payload = pack_audio(primary, redundant, size)
        assert len(payload) == size
        assert unpack_audio(ptype, payload) == (primary, redundant or None)
    ptype, payload = pack_audio(b"x" * 10, None, audio_payload_size(75, redundancy=False))
    assert (ptype, len(payload)) == (PayloadType.OPUS, 77)
    assert unpack_audio(ptype, payload) == (b"x" * 10, None)
    with pytest.raises(ValueError, match="do not fit"):
        pack_audio(b"a" * 76, b"b" * 75, size)


def test_malformed_audio_payloads_are_refused() -> None:
    for ptype, bad in (
        (PayloadType.OPUS_RED, b""),
        (PayloadType.OPUS_RED, b"\x00\x01\x00"),  # lengths cut short
        (PayloadType.OPUS_RED, b"\x00\x09\x00\x00short"),  # shorter than its length
        (PayloadType.OPUS_RED, b"\x00\x01\x00\x05abc"),  # redundant cut short
        (PayloadType.OPUS, b"\x00"),
        (PayloadType.OPUS, b"\x00\x00"),  # an empty packet
        (PayloadType.OPUS, b"\x00\x01a\x00\x01"),  # padding that is not zero
        (PayloadType.REPORT, b"\x00\x01a"),  # not audio
    ):
        with pytest.raises(MalformedMediaFrame):
            unpack_audio(ptype, bad)

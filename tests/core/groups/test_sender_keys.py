"""Sender keys: frozen known answers, an independent re-derivation, skipped and reordered
messages, the bounds, replays, forged signatures and the held-message buffer."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.errors import (
    DecryptionFailed,
    DuplicateMessage,
    InvalidSignature,
    MalformedEnvelope,
    NoSenderKey,
    TooManySkipped,
)
from messenger_tui.core.groups import pending as pend
from messenger_tui.core.groups import sender_keys as sk
from tests.core.crypto._util import DeterministicRng, flip_bit, ref_hkdf, ref_xchacha_decrypt

# Derived once from DeterministicRng(b"sender-keys-kat") and frozen: a change to any byte is
# a wire change and must come with a new version and a docs/protocol.md update.
KAT_GROUP_ID = bytes.fromhex("782d8646faedb6e17786601f5d0482a1")
KAT_DISTRIBUTION = bytes.fromhex(
    "01782d8646faedb6e17786601f5d0482a1135c0f6c0000000091a340d59d55f4978fbf9e503a1f4c592bec"
    "4060d3f7b1d15699743a22f940d9bd7aa6cc65273e54847df60721b7345dc7b2a2b296a33f6fb005c7ff4d"
    "bf8613"
)
KAT_MESSAGE_0 = bytes.fromhex(  # b"hello group" at iteration 0
    "01782d8646faedb6e17786601f5d0482a1135c0f6c000000001fe47b34c34b1ea9f423f183ab0944a7b159"
    "60a0e026d57a8f61077b83a5340ade03857717ab1e764a454756904413c2649a7476a49d2d2c49e6390cd5"
    "da76e72404b4697fa97d035f7e83bca349956c76dc93d7a30e7ed27b7b0e"
)
KAT_MESSAGE_1 = bytes.fromhex(  # b"" at iteration 1
    "01782d8646faedb6e17786601f5d0482a1135c0f6c00000001429a3a5b184abc289fbbd8f56f6731b1c8c0"
    "fcd1307c82abddb93f860e28904227d6a81ea3e36cf00f6972e04c7c381b97ad0c8fb6a0e6388198b6ff13"
    "bf7850c542ffe6b4b98ebab74982c09c432204"
)


def _sender(seed: bytes = b"sender") -> tuple[sk.SendingSenderKey, DeterministicRng]:
    rng = DeterministicRng(seed)
    return sk.new_sender_key(rng(16), rng), rng


def _receiver(sending: sk.SendingSenderKey) -> sk.SenderKeyRecord:
    return sk.process_distribution(None, sk.distribution_of(sending))


def _send(sending: sk.SendingSenderKey, count: int) -> tuple[sk.SendingSenderKey, list[bytes]]:
    out = []
    for i in range(count):
        sending, message = sk.group_encrypt(sending, b"m%d" % i)
        out.append(message)
    return sending, out


# ---------------------------------------------------------------- known answers


def test_known_answer_bytes() -> None:
    rng = DeterministicRng(b"sender-keys-kat")
    group_id = rng(16)
    assert group_id == KAT_GROUP_ID
    sending = sk.new_sender_key(group_id, rng)
    assert sk.encode_distribution(sk.distribution_of(sending)) == KAT_DISTRIBUTION
    sending, m0 = sk.group_encrypt(sending, b"hello group")
    sending, m1 = sk.group_encrypt(sending, b"")
    assert (m0, m1) == (KAT_MESSAGE_0, KAT_MESSAGE_1)
    assert len(KAT_DISTRIBUTION) == sk.DISTRIBUTION_LEN == 89
    assert len(m0) == len(b"hello group") + sk.GROUP_MESSAGE_OVERHEAD == 11 + 105


def test_known_answer_against_an_independent_computation() -> None:
    """hashlib/hmac and the cryptography package, none of our code, open the frozen bytes."""
    d = KAT_DISTRIBUTION
    assert d[0] == 1 and d[1:17] == KAT_GROUP_ID
    key_id, iteration = int.from_bytes(d[17:21], "big"), int.from_bytes(d[21:25], "big")
    chain_key, signing_public = d[25:57], d[57:89]
    assert iteration == 0
    for index, (message, plaintext) in enumerate(
        [(KAT_MESSAGE_0, b"hello group"), (KAT_MESSAGE_1, b"")]
    ):
        header, ciphertext, signature = message[:25], message[25:-64], message[-64:]
        assert header == bytes([1]) + KAT_GROUP_ID + key_id.to_bytes(4, "big") + bytes(
            [0, 0, 0, index]
        )
        Ed25519PublicKey.from_public_bytes(signing_public).verify(signature, message[:-64])
        mk = hmac.new(chain_key, b"\x01", hashlib.sha256).digest()
        material = ref_hkdf(mk, bytes(32), b"messenger-tui/sender-key-message/v1", 56)
        assert ref_xchacha_decrypt(material[:32], material[32:], ciphertext, header) == plaintext
        chain_key = hmac.new(chain_key, b"\x02", hashlib.sha256).digest()


def test_frozen_messages_decrypt_with_our_code() -> None:
    record = sk.process_distribution(None, sk.decode_distribution(KAT_DISTRIBUTION))
    record, p1 = sk.group_decrypt(record, KAT_MESSAGE_1)
    record, p0 = sk.group_decrypt(record, KAT_MESSAGE_0)
    assert (p0, p1) == (b"hello group", b"")


# ---------------------------------------------------------------- order, replays, forgeries


def test_out_of_order_and_replays() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    sending, messages = _send(sending, 10)
    for i in [3, 0, 9, 1, 2, 8, 4, 7, 6, 5]:
        record, plaintext = sk.group_decrypt(record, messages[i])
        assert plaintext == b"m%d" % i
    assert record.states[0].skipped_keys == ()
    for message in messages:
        before = msgspec.msgpack.encode(record)
        with pytest.raises(DuplicateMessage):
            sk.group_decrypt(record, message)
        assert msgspec.msgpack.encode(record) == before


def test_forged_signature_and_tampering_change_nothing() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    _, (message,) = _send(sending, 1)
    before = msgspec.msgpack.encode(record)
    for bit in [0, 8 * 20, 8 * 24, 8 * 30, 8 * (len(message) - 1)]:
        with pytest.raises((InvalidSignature, MalformedEnvelope, NoSenderKey)):
            sk.group_decrypt(record, flip_bit(message, bit))
    # another sender's signing key under the same key id: a forgery
    impostor, _ = _sender(b"impostor")
    impostor = msgspec.structs.replace(
        impostor, group_id=sending.group_id, key_id=sending.key_id, chain_key=sending.chain_key
    )
    _, forged = sk.group_encrypt(impostor, b"m0")
    with pytest.raises(InvalidSignature):
        sk.group_decrypt(record, forged)
    assert msgspec.msgpack.encode(record) == before
    assert sk.group_decrypt(record, message)[1] == b"m0"


def test_signed_but_undecryptable_is_decryption_failed() -> None:
    """A sender that signs garbage (wrong chain) is caught by the AEAD, state unchanged."""
    sending, _ = _sender()
    record = _receiver(sending)
    wrong = msgspec.structs.replace(sending, chain_key=bytes(32))
    _, message = sk.group_encrypt(wrong, b"x")
    with pytest.raises(DecryptionFailed):
        sk.group_decrypt(record, message)


def test_unknown_key_id_and_wrong_group() -> None:
    sending, rng = _sender()
    record = _receiver(sending)
    rotated = sk.rotate_sender_key(sending, rng)
    assert rotated.key_id != sending.key_id and rotated.chain_key != sending.chain_key
    _, message = sk.group_encrypt(rotated, b"new")
    with pytest.raises(NoSenderKey) as info:
        sk.group_decrypt(record, message)
    assert info.value.key_id == rotated.key_id and info.value.group_id == sending.group_id
    other = sk.SenderKeyRecord(group_id=bytes(16), states=record.states)
    with pytest.raises(MalformedEnvelope):
        sk.group_decrypt(other, message)
    record = sk.process_distribution(record, sk.distribution_of(rotated))
    assert sk.group_decrypt(record, message)[1] == b"new"


@pytest.mark.parametrize("data", [b"", bytes(104), b"\x02" + bytes(120)])
def test_malformed_messages(data: bytes) -> None:
    sending, _ = _sender()
    with pytest.raises(MalformedEnvelope):
        sk.group_decrypt(_receiver(sending), data)


def test_malformed_distributions() -> None:
    with pytest.raises(MalformedEnvelope):
        sk.decode_distribution(KAT_DISTRIBUTION[:-1])
    with pytest.raises(MalformedEnvelope):
        sk.decode_distribution(b"\x02" + KAT_DISTRIBUTION[1:])
    # a signing key that is not a curve point (y = 2 is not on Ed25519)
    with pytest.raises(MalformedEnvelope):
        sk.decode_distribution(KAT_DISTRIBUTION[:57] + (2).to_bytes(32, "little"))


# ---------------------------------------------------------------- bounds


def test_forward_jump_bound() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    far = msgspec.structs.replace(sending, iteration=sk.MAX_FORWARD_JUMP + 1)
    _, message = sk.group_encrypt(far, b"x")
    with pytest.raises(TooManySkipped):
        sk.group_decrypt(record, message)
    sending, messages = _send(sending, sk.MAX_FORWARD_JUMP + 1)
    record, _ = sk.group_decrypt(record, messages[-1])  # exactly the bound: accepted
    assert len(record.states[0].skipped_keys) == sk.MAX_FORWARD_JUMP == 2000
    assert sk.group_decrypt(record, messages[0])[1] == b"m0"


def test_skipped_keys_bound_evicts_the_oldest() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    sending, messages = _send(sending, 2 * sk.MAX_FORWARD_JUMP + 2)
    record, _ = sk.group_decrypt(record, messages[sk.MAX_FORWARD_JUMP])
    record, _ = sk.group_decrypt(record, messages[-1])
    state = record.states[0]
    assert len(state.skipped_keys) == sk.MAX_SKIPPED_SENDER_KEYS == 2000
    assert len(state.skipped_iterations) == len(state.skipped_keys)
    with pytest.raises(DuplicateMessage):  # evicted: the oldest skipped key
        sk.group_decrypt(record, messages[0])
    assert sk.group_decrypt(record, messages[-2])[1] == b"m%d" % (len(messages) - 2)


def test_at_most_five_states_per_sender() -> None:
    sending, rng = _sender()
    record = _receiver(sending)
    keys = [sending]
    for _ in range(6):
        keys.append(sk.rotate_sender_key(keys[-1], rng))
        record = sk.process_distribution(record, sk.distribution_of(keys[-1]))
    assert sk.MAX_SENDER_KEY_STATES == 5
    assert record.key_ids() == tuple(k.key_id for k in reversed(keys[-5:]))
    _, oldest = sk.group_encrypt(keys[1], b"x")
    with pytest.raises(NoSenderKey):
        sk.group_decrypt(record, oldest)


def test_resent_distribution_never_rewinds_and_backfills_keys_never_held() -> None:
    sending, _ = _sender()
    original = sk.distribution_of(sending)
    sending, messages = _send(sending, 6)
    # the resend (at iteration 6) arrives first, the original (iteration 0) later
    record = sk.process_distribution(None, sk.distribution_of(sending))
    record, _ = sk.group_decrypt(record, _send(sending, 1)[1][0])
    record = sk.process_distribution(record, original)
    for i in [5, 0, 3]:
        record, plaintext = sk.group_decrypt(record, messages[i])
        assert plaintext == b"m%d" % i
    # the same distributions again change nothing: no replay comes back
    for distribution in (original, sk.distribution_of(sending)):
        again = sk.process_distribution(record, distribution)
        assert again == record
        with pytest.raises(DuplicateMessage):
            sk.group_decrypt(again, messages[5])


def test_resend_far_ahead_moves_the_chain() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    sending, messages = _send(sending, sk.MAX_FORWARD_JUMP + 5)
    with pytest.raises(TooManySkipped):
        sk.group_decrypt(record, messages[-1])
    record = sk.process_distribution(record, sk.distribution_of(sending))
    _, (latest,) = _send(sending, 1)
    assert sk.group_decrypt(record, latest)[1] == b"m0"


def test_same_key_id_other_signing_key_replaces() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    other, _ = _sender(b"other")
    other = msgspec.structs.replace(other, group_id=sending.group_id, key_id=sending.key_id)
    record = sk.process_distribution(record, sk.distribution_of(other))
    assert len(record.states) == 1
    assert record.states[0].signing_public == other.signing_public


def test_repr_shows_no_secret() -> None:
    sending, _ = _sender()
    record = _receiver(sending)
    for text in (repr(sending), repr(record), repr(sk.distribution_of(sending))):
        assert sending.chain_key.hex() not in text
        assert sending.signing_secret[:32].hex() not in text


# ---------------------------------------------------------------- property: a bad network

step = st.tuples(st.sampled_from(["send", "send", "deliver", "deliver", "dup"]), st.integers(0, 99))


@settings(max_examples=60, deadline=None)
@given(st.lists(step, max_size=120))
def test_drop_reorder_duplicate(steps: list[tuple[str, int]]) -> None:
    """First deliveries decrypt to what was sent; repeats raise DuplicateMessage and change
    nothing; what is never delivered (dropped) costs nothing."""
    sending, _ = _sender(b"prop")
    record = _receiver(sending)
    in_flight: list[tuple[int, bytes]] = []
    delivered: set[int] = set()
    sent = 0
    for kind, index in steps:
        if kind == "send":
            sending, message = sk.group_encrypt(sending, b"m%d" % sent)
            in_flight.append((sent, message))
            sent += 1
        elif in_flight:
            number, message = in_flight[index % len(in_flight)]
            if kind == "deliver":
                in_flight.remove((number, message))
            if number in delivered:
                with pytest.raises(DuplicateMessage):
                    sk.group_decrypt(record, message)
            else:
                record, plaintext = sk.group_decrypt(record, message)
                assert plaintext == b"m%d" % number
                delivered.add(number)
    state = record.states[0]
    undelivered = {n for n in range(state.first_iteration, state.iteration)} - delivered
    assert set(state.skipped_iterations) == undelivered


# ---------------------------------------------------------------- held messages


def test_pending_holds_requests_once_and_releases() -> None:
    sending, rng = _sender()
    rotated = sk.rotate_sender_key(sending, rng)
    alice = b"A" * 32
    buffer = pend.PendingGroupMessages(group_id=sending.group_id)
    rotated, messages = _send(rotated, 3)
    requests = []
    for t, message in enumerate(messages):
        result = pend.hold_message(buffer, alice, rotated.key_id, message, now_ms=t * 1000)
        buffer = result.pending
        requests.append(result.request)
        assert result.evicted == ()
    assert requests[0] == pend.ResendRequest(sending.group_id, alice, rotated.key_id)
    assert requests[1:] == [None, None]
    later = pend.hold_message(buffer, alice, rotated.key_id, b"x", now_ms=pend.RESEND_INTERVAL_MS)
    assert later.request is not None
    buffer, released = pend.release_messages(buffer, alice, rotated.key_id)
    assert released == tuple(messages)
    assert buffer.held == () and buffer.requested == ()


def test_pending_bounds_evict_and_report() -> None:
    buffer = pend.PendingGroupMessages(group_id=bytes(16))
    evicted: list[pend.HeldMessage] = []
    for i in range(pend.MAX_HELD_PER_SENDER + 10):
        result = pend.hold_message(buffer, b"A" * 32, 1, b"%d" % i, now_ms=i)
        buffer, evicted = result.pending, evicted + list(result.evicted)
    assert len(buffer.held) == pend.MAX_HELD_PER_SENDER == 256
    assert [m.data for m in evicted] == [b"%d" % i for i in range(10)]
    # many senders: the group bound holds too
    for sender in range(20):
        for i in range(pend.MAX_HELD_PER_SENDER):
            buffer = pend.hold_message(buffer, bytes([sender]) * 32, 2, b"y", now_ms=i).pending
    assert len(buffer.held) == pend.MAX_HELD_PER_GROUP == 2048
    assert len(buffer.requested) <= 21
    buffer, expired = pend.expire_messages(buffer, now_ms=pend.MAX_HOLD_MS + 10_000)
    assert len(expired) == 2048 and buffer.held == () and buffer.requested == ()
    buffer, dropped = pend.drop_sender(buffer, b"A" * 32)
    assert dropped == ()

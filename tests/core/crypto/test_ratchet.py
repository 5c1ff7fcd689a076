"""Double Ratchet: round trips, out-of-order delivery, tampering, replays and the bounds."""

from __future__ import annotations

import msgspec
import pytest

from messenger_tui.core.crypto import ratchet
from messenger_tui.core.crypto.primitives import x25519_keypair
from messenger_tui.core.crypto.ratchet import (
    HEADER_LEN,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    Header,
    RatchetState,
    decode_header,
    encode_header,
)
from messenger_tui.core.errors import (
    CryptoError,
    DecryptionFailed,
    DuplicateMessage,
    MalformedEnvelope,
    TooManySkipped,
)

from ._util import DeterministicRng, flip_bit

AD = bytes(range(64))


def _pair(seed: bytes = b"pair") -> tuple[RatchetState, RatchetState, DeterministicRng]:
    rng = DeterministicRng(seed)
    sk = rng(32)
    spk_private, spk_public = x25519_keypair(rng)
    alice = ratchet.init_initiator(sk, spk_public, rng)
    bob = ratchet.init_responder(sk, spk_private, spk_public)
    return alice, bob, rng


def _snapshot(state: RatchetState) -> bytes:
    return msgspec.msgpack.encode(state)


def test_header_round_trip_and_layout() -> None:
    header = Header(dh=bytes(range(32)), pn=7, n=0x01020304)
    data = encode_header(header)
    assert len(data) == HEADER_LEN
    assert data == bytes(range(32)) + b"\x00\x00\x00\x07" + b"\x01\x02\x03\x04"
    assert decode_header(data) == header


@pytest.mark.parametrize("size", [0, 39, 41, 80])
def test_decode_header_rejects_wrong_sizes(size: int) -> None:
    with pytest.raises(MalformedEnvelope):
        decode_header(bytes(size))


def test_encode_header_rejects_out_of_range() -> None:
    with pytest.raises(CryptoError):
        encode_header(Header(bytes(32), 2**32, 0))
    with pytest.raises(CryptoError):
        encode_header(Header(bytes(31), 0, 0))


def test_ping_pong_with_several_messages_per_chain() -> None:
    alice, bob, rng = _pair()
    for round_ in range(4):
        for i in range(3):
            alice, h, c = ratchet.encrypt(alice, f"a{round_}.{i}".encode(), AD)
            bob, pt = ratchet.decrypt(bob, h, c, AD, rng)
            assert pt == f"a{round_}.{i}".encode()
        for i in range(2):
            bob, h, c = ratchet.encrypt(bob, f"b{round_}.{i}".encode(), AD)
            alice, pt = ratchet.decrypt(alice, h, c, AD, rng)
            assert pt == f"b{round_}.{i}".encode()
    assert alice.skipped == () and bob.skipped == ()


def test_responder_cannot_send_first() -> None:
    _, bob, _ = _pair()
    with pytest.raises(CryptoError):
        ratchet.encrypt(bob, b"too early", AD)


def test_encrypt_does_not_mutate_input() -> None:
    alice, _, _ = _pair()
    before = _snapshot(alice)
    new, _, _ = ratchet.encrypt(alice, b"x", AD)
    assert _snapshot(alice) == before
    assert new.ns == alice.ns + 1


def test_out_of_order_across_chains() -> None:
    alice, bob, rng = _pair()
    sent = []
    for i in range(3):
        alice, h, c = ratchet.encrypt(alice, b"first-%d" % i, AD)
        sent.append((h, c, b"first-%d" % i))
    bob, pt = ratchet.decrypt(bob, *sent[2][:2], AD, rng)  # skips 0 and 1
    assert pt == b"first-2" and len(bob.skipped) == 2
    bob, h, c = ratchet.encrypt(bob, b"reply", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h, c = ratchet.encrypt(alice, b"second-0", AD)
    bob, pt = ratchet.decrypt(bob, h, c, AD, rng)
    assert pt == b"second-0"
    # messages of the earlier chain still open from the skipped store, in any order
    for h, c, expected in (sent[1], sent[0]):
        bob, pt = ratchet.decrypt(bob, h, c, AD, rng)
        assert pt == expected
    assert bob.skipped == ()


def test_skipped_previous_chain_via_pn() -> None:
    alice, bob, rng = _pair()
    alice, h0, c0 = ratchet.encrypt(alice, b"0", AD)
    alice, h1, c1 = ratchet.encrypt(alice, b"1", AD)  # lost for now
    bob, _ = ratchet.decrypt(bob, h0, c0, AD, rng)
    bob, h, c = ratchet.encrypt(bob, b"r", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h2, c2 = ratchet.encrypt(alice, b"2", AD)
    assert decode_header(h2).pn == 2
    bob, _ = ratchet.decrypt(bob, h2, c2, AD, rng)  # new chain: pn tells bob to keep key 1
    assert [(e.dh, e.n) for e in bob.skipped] == [(decode_header(h1).dh, 1)]
    bob, pt = ratchet.decrypt(bob, h1, c1, AD, rng)
    assert pt == b"1"


# ---------------------------------------------------------------- tampering and replays


def test_tampered_messages_fail_without_touching_state() -> None:
    alice, bob, rng = _pair()
    alice, h0, c0 = ratchet.encrypt(alice, b"hello", AD)
    bob, _ = ratchet.decrypt(bob, h0, c0, AD, rng)
    bob, h, c = ratchet.encrypt(bob, b"reply", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h, c = ratchet.encrypt(alice, b"next", AD)
    before = _snapshot(bob)

    # ciphertext and AD: every bit
    for bit in range(len(c) * 8):
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(bob, h, flip_bit(c, bit), AD, rng)
    for bit in range(0, len(AD) * 8, 7):
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(bob, h, c, flip_bit(AD, bit), rng)
    # header ratchet key: a different key is a different chain, which cannot authenticate
    for bit in range(32 * 8):
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(bob, flip_bit(h, bit), c, AD, rng)
    # the counters are read before authentication (to derive keys): each flip fails one way
    # or another, never silently
    for bit in range(32 * 8, HEADER_LEN * 8):
        with pytest.raises((DecryptionFailed, DuplicateMessage, TooManySkipped)):
            ratchet.decrypt(bob, flip_bit(h, bit), c, AD, rng)
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(bob, h, c[:-1], AD, rng)

    assert _snapshot(bob) == before
    bob, pt = ratchet.decrypt(bob, h, c, AD, rng)  # the genuine message still works
    assert pt == b"next"


def test_pn_is_authenticated_within_a_chain() -> None:
    alice, bob, rng = _pair()
    alice, h0, c0 = ratchet.encrypt(alice, b"0", AD)
    alice, h1, c1 = ratchet.encrypt(alice, b"1", AD)
    bob, _ = ratchet.decrypt(bob, h0, c0, AD, rng)
    # same chain: pn is not used to derive keys, but it is bound by the AEAD
    for bit in range(32 * 8, 36 * 8):
        with pytest.raises(DecryptionFailed):
            ratchet.decrypt(bob, flip_bit(h1, bit), c1, AD, rng)
    bob, pt = ratchet.decrypt(bob, h1, c1, AD, rng)
    assert pt == b"1"


def test_replay_is_duplicate_in_current_skipped_and_earlier_chains() -> None:
    alice, bob, rng = _pair()
    alice, h0, c0 = ratchet.encrypt(alice, b"0", AD)
    alice, h1, c1 = ratchet.encrypt(alice, b"1", AD)
    alice, h2, c2 = ratchet.encrypt(alice, b"2", AD)
    bob, _ = ratchet.decrypt(bob, h0, c0, AD, rng)
    with pytest.raises(DuplicateMessage):  # current chain, already used
        ratchet.decrypt(bob, h0, c0, AD, rng)
    bob, _ = ratchet.decrypt(bob, h2, c2, AD, rng)
    bob, _ = ratchet.decrypt(bob, h1, c1, AD, rng)  # from the skipped store
    with pytest.raises(DuplicateMessage):  # skipped key used once only
        ratchet.decrypt(bob, h1, c1, AD, rng)
    bob, h, c = ratchet.encrypt(bob, b"r", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h3, c3 = ratchet.encrypt(alice, b"3", AD)
    bob, _ = ratchet.decrypt(bob, h3, c3, AD, rng)
    before = _snapshot(bob)
    for h_old, c_old in ((h0, c0), (h1, c1), (h2, c2)):  # an earlier chain
        with pytest.raises(DuplicateMessage):
            ratchet.decrypt(bob, h_old, c_old, AD, rng)
    with pytest.raises(DuplicateMessage):
        ratchet.decrypt(alice, h, c, AD, rng)
    assert _snapshot(bob) == before


def test_forged_counter_beyond_an_earlier_chain_is_not_a_duplicate() -> None:
    alice, bob, rng = _pair()
    alice, h0, c0 = ratchet.encrypt(alice, b"0", AD)
    bob, _ = ratchet.decrypt(bob, h0, c0, AD, rng)
    bob, h, c = ratchet.encrypt(bob, b"r", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h1, c1 = ratchet.encrypt(alice, b"1", AD)
    bob, _ = ratchet.decrypt(bob, h1, c1, AD, rng)
    old = decode_header(h0)
    forged = encode_header(Header(old.dh, old.pn, 5))
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(bob, forged, c0, AD, rng)


def test_header_naming_the_signed_prekey_is_rejected() -> None:
    alice, _, rng = _pair()
    assert alice.dhr is not None
    forged = encode_header(Header(alice.dhr, 0, 0))
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(alice, forged, bytes(32), AD, rng)


def test_low_order_ratchet_key_in_header_is_rejected() -> None:
    _, bob, rng = _pair()
    forged = encode_header(Header(bytes(32), 0, 0))
    with pytest.raises(DecryptionFailed):
        ratchet.decrypt(bob, forged, bytes(32), AD, rng)


# ---------------------------------------------------------------- bounds


def _send_many(state: RatchetState, count: int) -> tuple[RatchetState, list[tuple[bytes, bytes]]]:
    out = []
    for i in range(count):
        state, h, c = ratchet.encrypt(state, i.to_bytes(4, "big"), AD)
        out.append((h, c))
    return state, out


def test_max_skip_boundary() -> None:
    alice, bob, rng = _pair()
    alice, sent = _send_many(alice, MAX_SKIP + 2)
    before = _snapshot(bob)
    with pytest.raises(TooManySkipped):  # would skip 2001 keys
        ratchet.decrypt(bob, *sent[MAX_SKIP + 1], AD, rng)
    assert _snapshot(bob) == before
    bob, pt = ratchet.decrypt(bob, *sent[MAX_SKIP], AD, rng)  # skips exactly 2000: allowed
    assert pt == MAX_SKIP.to_bytes(4, "big")
    assert len(bob.skipped) == MAX_SKIP


def test_max_skip_applies_to_the_previous_chain_length_too() -> None:
    alice, bob, rng = _pair()
    alice, sent = _send_many(alice, MAX_SKIP + 2)
    bob, _ = ratchet.decrypt(bob, *sent[0], AD, rng)
    bob, h, c = ratchet.encrypt(bob, b"r", AD)
    alice, _ = ratchet.decrypt(alice, h, c, AD, rng)
    alice, h, c = ratchet.encrypt(alice, b"new chain", AD)
    assert decode_header(h).pn == MAX_SKIP + 2
    with pytest.raises(TooManySkipped):  # 2001 keys of the old chain would be derived
        ratchet.decrypt(bob, h, c, AD, rng)


def test_skipped_key_store_is_bounded_and_evicts_oldest() -> None:
    alice, bob, rng = _pair()
    alice, sent = _send_many(alice, 2100)
    bob, _ = ratchet.decrypt(bob, *sent[1999], AD, rng)  # keeps keys 0..1998
    assert len(bob.skipped) == 1999
    bob, _ = ratchet.decrypt(bob, *sent[2099], AD, rng)  # adds 2000..2098: 99 more
    assert len(bob.skipped) == MAX_SKIPPED_KEYS
    assert [e.n for e in bob.skipped[:2]] == [98, 99]  # 0..97 evicted, oldest first
    assert bob.skipped[-1].n == 2098
    with pytest.raises(DuplicateMessage):  # evicted: cannot be decrypted any more
        ratchet.decrypt(bob, *sent[97], AD, rng)
    bob, pt = ratchet.decrypt(bob, *sent[98], AD, rng)
    assert pt == (98).to_bytes(4, "big")
    assert len(bob.skipped) == MAX_SKIPPED_KEYS - 1


def test_state_never_shows_secrets() -> None:
    alice, _, _ = _pair()
    text = repr(alice) + repr(alice.__rich_repr__())
    assert alice.cks is not None
    for secret in (alice.rk, alice.cks, alice.dhs_private):
        assert secret.hex() not in text
        assert repr(secret) not in text

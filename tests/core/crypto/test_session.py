"""Sessions: X3DH handshake, envelopes, impersonation, serialization, prekey checks."""

from __future__ import annotations

import msgspec
import pytest

from messenger_tui.core.crypto import session as sess
from messenger_tui.core.crypto import x3dh
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import (
    OneTimePrekey,
    PrekeyBundle,
    SignedPrekey,
    generate_one_time_prekeys,
    generate_signed_prekey,
    verify_bundle,
)
from messenger_tui.core.crypto.ratchet import HEADER_LEN
from messenger_tui.core.errors import (
    CorruptSession,
    CryptoError,
    DecryptionFailed,
    DuplicateMessage,
    IdentityMismatch,
    InvalidSignature,
    MalformedEnvelope,
    SessionMismatch,
    UnknownPrekey,
)

from ._util import DeterministicRng, flip_bit

NOW_MS = 1_700_000_000_000


class Party:
    def __init__(self, rng: DeterministicRng) -> None:
        self.identity = IdentityKeyPair.generate(rng)
        self.spk = generate_signed_prekey(self.identity, 7, NOW_MS, rng)
        self.opks = {k.id: k for k in generate_one_time_prekeys(100, 3, rng)}

    def bundle(self, with_opk: bool = True) -> PrekeyBundle:
        opk = self.opks[min(self.opks)] if with_opk else None
        return PrekeyBundle(
            identity=self.identity.public,
            spk_id=self.spk.id,
            spk=self.spk.public,
            spk_sig=self.spk.signature,
            opk_id=opk.id if opk else None,
            opk=opk.public if opk else None,
        )

    def prekeys_for(self, env: sess.Envelope) -> tuple[SignedPrekey, OneTimePrekey | None]:
        assert env.prekey is not None
        opk_id = env.prekey.opk_id
        return self.spk, (self.opks[opk_id] if opk_id is not None else None)


@pytest.fixture
def rng() -> DeterministicRng:
    return DeterministicRng(b"session tests")


@pytest.fixture
def alice(rng: DeterministicRng) -> Party:
    return Party(rng)


@pytest.fixture
def bob(rng: DeterministicRng) -> Party:
    return Party(rng)


def _accept(
    bob: Party, data: bytes, sender: bytes, rng: DeterministicRng
) -> tuple[sess.Session, bytes]:
    env = sess.parse_envelope(data)
    spk, opk = bob.prekeys_for(env)
    return sess.accept_session(bob.identity, env, sender, spk, opk, rng)


@pytest.mark.parametrize("with_opk", [True, False])
def test_full_conversation(alice: Party, bob: Party, rng: DeterministicRng, with_opk: bool) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(with_opk), rng)
    assert a.initiated and not a.confirmed and a.pending_prekey is not None
    a, e1 = sess.encrypt(a, b"hi bob")
    a, e2 = sess.encrypt(a, b"are you there?")
    # every envelope repeats the handshake until alice hears back
    p1, p2 = sess.parse_envelope(e1), sess.parse_envelope(e2)
    assert p1.prekey == p2.prekey == a.pending_prekey
    assert sess.envelope_session_key(p1) == a.base_key

    b, pt = _accept(bob, e1, alice.identity.public, rng)
    assert pt == b"hi bob"
    assert not b.initiated and b.confirmed and b.pending_prekey is None
    assert b.base_key == a.base_key and b.associated_data == a.associated_data
    assert b.peer == alice.identity.public and a.peer == bob.identity.public
    b, pt = sess.decrypt(b, p2, rng)  # still carries the handshake, same session
    assert pt == b"are you there?"

    b, r1 = sess.encrypt(b, b"yes")
    assert sess.parse_envelope(r1).prekey is None
    assert sess.envelope_session_key(sess.parse_envelope(r1)) is None
    a, pt = sess.decrypt(a, sess.parse_envelope(r1), rng)
    assert pt == b"yes" and a.confirmed and a.pending_prekey is None
    a, e3 = sess.encrypt(a, b"good")
    assert sess.parse_envelope(e3).prekey is None
    b, pt = sess.decrypt(b, sess.parse_envelope(e3), rng)
    assert pt == b"good"


def test_accept_session_rejects_impersonation(
    alice: Party, bob: Party, rng: DeterministicRng
) -> None:
    mallory = IdentityKeyPair.generate(rng)
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    _, e1 = sess.encrypt(a, b"hi")
    # the relay claims mallory sent it, the handshake says alice: refuse
    with pytest.raises(IdentityMismatch):
        _accept(bob, e1, mallory.public, rng)
    # mallory rewrites the handshake to name herself: the X3DH secret no longer matches
    env = sess.parse_envelope(e1)
    assert env.prekey is not None
    forged = msgspec.structs.replace(
        env, prekey=msgspec.structs.replace(env.prekey, identity=mallory.public)
    )
    spk, opk = bob.prekeys_for(env)
    with pytest.raises(DecryptionFailed):
        sess.accept_session(bob.identity, forged, mallory.public, spk, opk, rng)


def test_x3dh_both_sides_agree_and_bind_identities(alice: Party, bob: Party) -> None:
    bundle = bob.bundle()
    init = x3dh.initiate(alice.identity, bundle, DeterministicRng(b"eph"))
    spk, opk = bob.spk, bob.opks[100]
    sk, ad = x3dh.respond(bob.identity, spk, opk, alice.identity.public, init.ephemeral_public)
    assert sk == init.shared_secret and len(sk) == 32
    assert ad == init.associated_data == alice.identity.public + bob.identity.public
    # a wrong one-time prekey, or none, gives a different secret
    sk2, _ = x3dh.respond(bob.identity, spk, None, alice.identity.public, init.ephemeral_public)
    assert sk2 != sk
    assert init.shared_secret.hex() not in repr(init)


def test_bad_bundle_signature_is_refused(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    good = bob.bundle()
    verify_bundle(good)
    mallory = IdentityKeyPair.generate(rng)
    bad_bundles = [
        msgspec.structs.replace(good, spk_sig=flip_bit(good.spk_sig, 9)),
        msgspec.structs.replace(good, spk=flip_bit(good.spk, 0)),
        msgspec.structs.replace(good, identity=mallory.public),  # relay swaps the identity
    ]
    for bundle in bad_bundles:
        with pytest.raises(InvalidSignature):
            verify_bundle(bundle)
        with pytest.raises(InvalidSignature):
            sess.initiate_session(alice.identity, bundle, rng)
    with pytest.raises(MalformedEnvelope):
        sess.initiate_session(alice.identity, msgspec.structs.replace(good, opk=None), rng)
    with pytest.raises(MalformedEnvelope):
        verify_bundle(msgspec.structs.replace(good, spk=good.spk[:31]))


def test_spk_signature_is_domain_separated(bob: Party) -> None:
    # a signature over the bare key (what another protocol might sign) is not accepted
    bare = bob.identity.sign(bob.spk.public)
    with pytest.raises(InvalidSignature):
        verify_bundle(msgspec.structs.replace(bob.bundle(), spk_sig=bare))


def test_unknown_prekeys(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    _, e1 = sess.encrypt(a, b"hi")
    env = sess.parse_envelope(e1)
    other_spk = generate_signed_prekey(bob.identity, 8, NOW_MS, rng)
    with pytest.raises(UnknownPrekey):
        sess.accept_session(bob.identity, env, alice.identity.public, other_spk, bob.opks[100], rng)
    with pytest.raises(UnknownPrekey):  # the named one-time prekey was already used
        sess.accept_session(bob.identity, env, alice.identity.public, bob.spk, None, rng)
    with pytest.raises(UnknownPrekey):
        sess.accept_session(bob.identity, env, alice.identity.public, bob.spk, bob.opks[101], rng)


def test_accept_requires_a_handshake(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    a, e1 = sess.encrypt(a, b"hi")
    b, _ = _accept(bob, e1, alice.identity.public, rng)
    b, r1 = sess.encrypt(b, b"yo")
    with pytest.raises(MalformedEnvelope):
        sess.accept_session(
            alice.identity, sess.parse_envelope(r1), bob.identity.public, alice.spk, None, rng
        )


def test_envelope_of_another_session(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a1 = sess.initiate_session(alice.identity, bob.bundle(), rng)
    a2 = sess.initiate_session(alice.identity, bob.bundle(with_opk=False), rng)
    a1, e1 = sess.encrypt(a1, b"one")
    _, e2 = sess.encrypt(a2, b"two")
    b1, _ = _accept(bob, e1, alice.identity.public, rng)
    with pytest.raises(SessionMismatch):
        sess.decrypt(b1, sess.parse_envelope(e2), rng)
    b2, pt = _accept(bob, e2, alice.identity.public, rng)
    assert pt == b"two" and b2.base_key != b1.base_key


def test_redelivered_handshake_is_a_duplicate(
    alice: Party, bob: Party, rng: DeterministicRng
) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    a, e1 = sess.encrypt(a, b"hi")
    b, _ = _accept(bob, e1, alice.identity.public, rng)
    env = sess.parse_envelope(e1)
    assert sess.envelope_session_key(env) == b.base_key  # so the app finds the session ...
    with pytest.raises(DuplicateMessage):  # ... which says it saw this one
        sess.decrypt(b, env, rng)


def test_tampered_envelope_keeps_session(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    a, e1 = sess.encrypt(a, b"hi")
    b, _ = _accept(bob, e1, alice.identity.public, rng)
    b, r1 = sess.encrypt(b, b"reply")
    env = sess.parse_envelope(r1)
    before = sess.serialize_session(a)
    for bit in range(0, len(env.ciphertext) * 8, 5):
        with pytest.raises(DecryptionFailed):
            sess.decrypt(a, msgspec.structs.replace(env, ciphertext=flip_bit(env.ciphertext, bit)))
    for bit in range(32 * 8):
        with pytest.raises(DecryptionFailed):
            sess.decrypt(a, msgspec.structs.replace(env, header=flip_bit(env.header, bit)))
    assert sess.serialize_session(a) == before
    a, pt = sess.decrypt(a, env, rng)
    assert pt == b"reply"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe",
        msgspec.msgpack.encode([2, None, bytes(HEADER_LEN), bytes(16)]),  # unknown version
        msgspec.msgpack.encode([1, None, bytes(HEADER_LEN - 1), bytes(16)]),  # short header
        msgspec.msgpack.encode([1, None, bytes(HEADER_LEN), bytes(15)]),  # shorter than a tag
        msgspec.msgpack.encode([1, [bytes(31), bytes(32), 1, None], bytes(HEADER_LEN), bytes(16)]),
        msgspec.msgpack.encode([1, [bytes(32), bytes(32), -1, None], bytes(HEADER_LEN), bytes(16)]),
        msgspec.msgpack.encode([1, [bytes(32), bytes(32), 2**32, None], bytes(40), bytes(16)]),
        msgspec.msgpack.encode([1, None, bytes(HEADER_LEN)]),  # missing ciphertext
        msgspec.msgpack.encode({"version": 1}),
        msgspec.msgpack.encode(["1", None, bytes(HEADER_LEN), bytes(16)]),
    ],
)
def test_parse_envelope_rejects_garbage(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        sess.parse_envelope(data)


def test_envelope_wire_layout(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    _, e1 = sess.encrypt(a, b"hi")
    raw = msgspec.msgpack.decode(e1)
    assert raw[0] == 1
    assert raw[1] == [alice.identity.public, a.base_key, 7, 100]
    assert len(raw[2]) == HEADER_LEN and len(raw[3]) == len(b"hi") + 16


def test_session_serialization_round_trip(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    a, e1 = sess.encrypt(a, b"one")
    a, e2 = sess.encrypt(a, b"two")
    b, _ = _accept(bob, e2, alice.identity.public, rng)  # leaves a skipped key
    for s in (a, b):
        data = sess.serialize_session(s)
        restored = sess.deserialize_session(data)
        assert restored == s
        assert sess.serialize_session(restored) == data
    b = sess.deserialize_session(sess.serialize_session(b))
    b, pt = sess.decrypt(b, sess.parse_envelope(e1), rng)
    assert pt == b"one"


def test_deserialize_corrupt_session(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    data = sess.serialize_session(a)
    short_peer = msgspec.msgpack.decode(data)
    short_peer[1]["peer"] = b"x" * 31
    negative_counter = msgspec.msgpack.decode(data)
    negative_counter[1]["ratchet"]["ns"] = -1
    bad = [
        b"",
        b"\x00",
        data[:-5],
        data[:20],
        msgspec.msgpack.encode([99, None]),
        msgspec.msgpack.encode([1, {"peer": b"x"}]),
        msgspec.msgpack.encode(short_peer),
        msgspec.msgpack.encode(negative_counter),
    ]
    for blob in bad:
        with pytest.raises(CorruptSession):
            sess.deserialize_session(blob)


def test_session_repr_has_no_secrets(alice: Party, bob: Party, rng: DeterministicRng) -> None:
    a = sess.initiate_session(alice.identity, bob.bundle(), rng)
    text = repr(a)
    assert a.ratchet.cks is not None
    for secret in (a.ratchet.rk, a.ratchet.cks, a.ratchet.dhs_private):
        assert secret.hex() not in text and repr(secret) not in text
    spk_text = repr(bob.spk) + repr(bob.opks[100])
    assert bob.spk.private.hex() not in spk_text and repr(bob.spk.private) not in spk_text
    assert repr(bob.opks[100].private) not in spk_text


def test_prekey_generation(bob: Party, rng: DeterministicRng) -> None:
    keys = generate_one_time_prekeys(5, 4, rng)
    assert [k.id for k in keys] == [5, 6, 7, 8]
    assert len({k.public for k in keys}) == 4
    assert generate_one_time_prekeys(1, 0, rng) == []
    with pytest.raises(ValueError):
        generate_one_time_prekeys(2**32 - 2, 3, rng)
    with pytest.raises(ValueError):
        generate_signed_prekey(bob.identity, -1, NOW_MS, rng)
    assert bob.spk.created_ms == NOW_MS


def test_errors_are_crypto_errors() -> None:
    for cls in (IdentityMismatch, UnknownPrekey, SessionMismatch, CorruptSession):
        assert issubclass(cls, CryptoError)

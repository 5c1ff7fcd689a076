"""Cross-check of our Double Ratchet against an independent implementation.

The ``doubleratchet`` package (python-doubleratchet, Syndace) is configured with our protocol
choices, built from independent primitives (``cryptography`` + the plain-Python HChaCha20 of
``_util``):

* DH ratchet: X25519 (its recommended Curve25519 class; only key generation is replaced by a
  deterministic stream so both implementations can be fed the same keys);
* root chain: its recommended HKDF KDF (salt = root key, ikm = DH output) with SHA-256 and
  our ``ROOT_INFO``; new root key first, chain key second, as in our ``kdf_rk``;
* message chains: its recommended separate-HMACs KDF with SHA-256 and the constant
  ``b"\\x02\\x01"``: it computes HMAC(ck, 0x02) || HMAC(ck, 0x01) and keeps the first half as
  the next chain key and the second half as the message key, which is exactly our
  ``ck' = HMAC(ck, 0x02)``, ``mk = HMAC(ck, 0x01)``;
* AEAD: HKDF(mk, 32 zero bytes salt, ``MESSAGE_KEY_INFO``) -> key || nonce, XChaCha20-Poly1305;
* associated data: ``AD || dh_pub (32) || pn (uint32 BE) || n (uint32 BE)``, our header
  encoding (the package leaves ``_build_associated_data`` to the application).

Nothing of its API prevents exact interoperation, so the tests demand byte-identical
headers and ciphertexts and decryption across implementations in both directions.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable
from typing import TypeVar

# A dev dependency: if it is missing this module fails to import (it never skips).
import doubleratchet
import pytest
from doubleratchet.recommended import (
    HashFunction,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from messenger_tui.core.crypto import ratchet
from messenger_tui.core.crypto.primitives import Rng, x25519_keypair
from messenger_tui.core.crypto.ratchet import (
    CHAIN_KEY_CONSTANT,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    MESSAGE_KEY_CONSTANT,
    MESSAGE_KEY_INFO,
    ROOT_INFO,
    RatchetState,
)
from messenger_tui.core.errors import DuplicateMessage

from ._util import (
    DeterministicRng,
    InvalidTag,
    ref_message_key_material,
    ref_xchacha_decrypt,
    ref_xchacha_encrypt,
)

T = TypeVar("T")
AD = bytes(range(100, 164))


def run(coro: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await coro

    return asyncio.run(wrap())


# ---------------------------------------------------------------- their configuration


class RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return ROOT_INFO


class ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


# next chain key first, message key second (see the module docstring)
CHAIN_CONSTANT = CHAIN_KEY_CONSTANT + MESSAGE_KEY_CONSTANT


class XChaChaAEAD(doubleratchet.AEAD):
    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aead_key, nonce = ref_message_key_material(key, MESSAGE_KEY_INFO)
        return ref_xchacha_encrypt(aead_key, nonce, plaintext, associated_data)

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aead_key, nonce = ref_message_key_material(key, MESSAGE_KEY_INFO)
        try:
            return ref_xchacha_decrypt(aead_key, nonce, ciphertext, associated_data)
        except InvalidTag as exc:
            raise doubleratchet.AuthenticationFailedException("tag mismatch") from exc


def encode_their_header(header: doubleratchet.Header) -> bytes:
    return struct.pack(
        ">32sII",
        header.ratchet_pub,
        header.previous_sending_chain_length,
        header.sending_chain_length,
    )


class TheirDoubleRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return associated_data + encode_their_header(header)


def dh_class(rng: Rng) -> type[doubleratchet.DiffieHellmanRatchet]:
    """Their X25519 ratchet, drawing new private keys from ``rng`` like ours does."""

    class SeededCurve25519(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
        @staticmethod
        def _generate_priv() -> bytes:
            return rng(32)

    return SeededCurve25519


def config(rng: Rng) -> dict[str, object]:
    return {
        "diffie_hellman_ratchet_class": dh_class(rng),
        "root_chain_kdf": RootKDF,
        "message_chain_kdf": ChainKDF,
        "message_chain_constant": CHAIN_CONSTANT,
        "dos_protection_threshold": MAX_SKIP,
        "max_num_skipped_message_keys": MAX_SKIPPED_KEYS,
        "aead": XChaChaAEAD,
    }


def to_their_message(header: bytes, ciphertext: bytes) -> doubleratchet.EncryptedMessage:
    h = ratchet.decode_header(header)
    return doubleratchet.EncryptedMessage(
        header=doubleratchet.Header(
            ratchet_pub=h.dh, previous_sending_chain_length=h.pn, sending_chain_length=h.n
        ),
        ciphertext=ciphertext,
    )


# ---------------------------------------------------------------- wrappers


class Ours:
    def __init__(self, state: RatchetState, rng: Rng) -> None:
        self.state, self.rng = state, rng

    def send(self, plaintext: bytes) -> tuple[bytes, bytes]:
        self.state, header, ciphertext = ratchet.encrypt(self.state, plaintext, AD)
        return header, ciphertext

    def receive(self, header: bytes, ciphertext: bytes) -> bytes:
        self.state, plaintext = ratchet.decrypt(self.state, header, ciphertext, AD, self.rng)
        return plaintext


class Theirs:
    def __init__(self, dr: doubleratchet.DoubleRatchet) -> None:
        self.dr = dr

    def send(self, plaintext: bytes) -> tuple[bytes, bytes]:
        msg = run(self.dr.encrypt_message(plaintext, AD))
        return encode_their_header(msg.header), msg.ciphertext

    def receive(self, header: bytes, ciphertext: bytes) -> bytes:
        return run(self.dr.decrypt_message(to_their_message(header, ciphertext), AD))


def setup(seed: bytes) -> tuple[bytes, bytes, bytes]:
    rng = DeterministicRng(seed)
    shared_secret = rng(32)
    spk_private, spk_public = x25519_keypair(rng)
    return shared_secret, spk_private, spk_public


def our_alice(seed: bytes) -> Ours:
    sk, _, spk_public = setup(seed)
    rng = DeterministicRng(seed + b"/alice")
    return Ours(ratchet.init_initiator(sk, spk_public, rng), rng)


def our_bob(seed: bytes) -> Ours:
    sk, spk_private, spk_public = setup(seed)
    return Ours(
        ratchet.init_responder(sk, spk_private, spk_public), DeterministicRng(seed + b"/bob")
    )


def their_alice_first(seed: bytes, plaintext: bytes) -> tuple[Theirs, bytes, bytes]:
    sk, _, spk_public = setup(seed)
    dr, msg = run(
        TheirDoubleRatchet.encrypt_initial_message(
            **config(DeterministicRng(seed + b"/alice")),  # type: ignore[arg-type]
            shared_secret=sk,
            recipient_ratchet_pub=spk_public,
            message=plaintext,
            associated_data=AD,
        )
    )
    return Theirs(dr), encode_their_header(msg.header), msg.ciphertext


def their_bob_first(seed: bytes, header: bytes, ciphertext: bytes) -> tuple[Theirs, bytes]:
    sk, spk_private, _ = setup(seed)
    dr, plaintext = run(
        TheirDoubleRatchet.decrypt_initial_message(
            **config(DeterministicRng(seed + b"/bob")),  # type: ignore[arg-type]
            shared_secret=sk,
            own_ratchet_priv=spk_private,
            message=to_their_message(header, ciphertext),
            associated_data=AD,
        )
    )
    return Theirs(dr), plaintext


# A conversation: (sender, plaintexts sent in a burst, delivery order of that burst)
SCRIPT: list[tuple[str, list[bytes], list[int]]] = [
    ("alice", [b"a0", b"a1", b"a2"], [0, 2, 1]),
    ("bob", [b"b0", b"b1"], [1, 0]),
    ("alice", [b"a3"], [0]),
    ("bob", [b"b2", b"b3", b"b4", b"b5"], [3, 0, 1, 2]),
    ("alice", [b"a4", b"a5"], [0, 1]),
    ("bob", [b"b6"], [0]),
]


def converse(
    alice: Ours | Theirs, bob: Ours | Theirs | None, seed: bytes
) -> list[tuple[bytes, bytes]]:
    """Run SCRIPT; returns every (header, ciphertext) in sending order."""
    wire: list[tuple[bytes, bytes]] = []
    for sender, plaintexts, order in SCRIPT:
        src = alice if sender == "alice" else bob
        assert src is not None
        burst = [src.send(p) for p in plaintexts]
        wire.extend(burst)
        for i in order:
            if sender == "alice" and bob is None:
                bob, got = their_bob_first(seed, *burst[i])
            else:
                dst = bob if sender == "alice" else alice
                assert dst is not None
                got = dst.receive(*burst[i])
            assert got == plaintexts[i]
    return wire


def test_ours_and_theirs_produce_identical_bytes() -> None:
    seed = b"interop identical"
    ours = converse(our_alice(seed), our_bob(seed), seed)

    # theirs on both sides, fed the same secrets and the same private-key stream
    first_plain = SCRIPT[0][1][0]
    alice, h0, c0 = their_alice_first(seed, first_plain)
    bob, got = their_bob_first(seed, h0, c0)
    assert got == first_plain
    theirs = [(h0, c0)]

    class Replay(Theirs):
        """Their alice whose first message was already sent by encrypt_initial_message."""

        sent_first = False

        def send(self, plaintext: bytes) -> tuple[bytes, bytes]:
            if not self.sent_first:
                self.sent_first = True
                return h0, c0
            return super().send(plaintext)

    class AlreadyReceived(Theirs):
        received_first = False

        def receive(self, header: bytes, ciphertext: bytes) -> bytes:
            if not self.received_first and (header, ciphertext) == (h0, c0):
                self.received_first = True
                return first_plain
            return super().receive(header, ciphertext)

    theirs = converse(Replay(alice.dr), AlreadyReceived(bob.dr), seed)
    assert [(h.hex(), c.hex()) for h, c in theirs] == [(h.hex(), c.hex()) for h, c in ours]


def test_ours_alice_with_their_bob() -> None:
    seed = b"interop ours-theirs"
    wire = converse(our_alice(seed), None, seed)
    assert len(wire) == sum(len(p) for _, p, _ in SCRIPT)


def test_their_alice_with_our_bob() -> None:
    seed = b"interop theirs-ours"
    first = SCRIPT[0][1][0]
    alice, h0, c0 = their_alice_first(seed, first)
    bob = our_bob(seed)
    assert bob.receive(h0, c0) == first
    # continue with more messages, out of order, in both directions
    sent = [alice.send(b"x%d" % i) for i in range(3)]
    for i in (2, 0, 1):
        assert bob.receive(*sent[i]) == b"x%d" % i
    for round_ in range(3):
        replies = [bob.send(b"r%d.%d" % (round_, i)) for i in range(2)]
        for i in (1, 0):
            assert alice.receive(*replies[i]) == b"r%d.%d" % (round_, i)
        more = [alice.send(b"m%d.%d" % (round_, i)) for i in range(2)]
        for i in (0, 1):
            assert bob.receive(*more[i]) == b"m%d.%d" % (round_, i)


def test_both_treat_replays_as_duplicates() -> None:
    seed = b"interop replay"
    alice = our_alice(seed)
    h0, c0 = alice.send(b"once")
    bob, _ = their_bob_first(seed, h0, c0)
    h1, c1 = alice.send(b"twice")
    assert bob.receive(h1, c1) == b"twice"
    with pytest.raises(doubleratchet.DuplicateMessageException):
        bob.receive(h1, c1)
    ours_bob = our_bob(seed)
    ours_bob.receive(h0, c0)
    ours_bob.receive(h1, c1)
    with pytest.raises(DuplicateMessage):
        ours_bob.receive(h1, c1)

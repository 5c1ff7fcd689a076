"""Known-answer transcript: identity, prekeys, X3DH and the first ratchet steps, byte for byte.

A deterministic Rng drives everything; the resulting hex is frozen in
``vectors/transcript_v1.json``. Any change of a label, an encoding, a KDF or the order of random
draws changes these bytes and fails here: a protocol change must bump a version and add a new
vector file, never silently rewrite this one.

The frozen values are also checked against an independent computation (the ``cryptography``
package and plain Python, see ``_util``), so the file is not just our code agreeing with itself.

Regenerate (only for a deliberate protocol change): ``MTUI_REGENERATE_VECTORS=1 pytest <this>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messenger_tui.core.crypto import ratchet, x3dh
from messenger_tui.core.crypto import session as sess
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.keystore import open_identity, seal_identity
from messenger_tui.core.crypto.prekeys import (
    SPK_SIGNATURE_CONTEXT,
    PrekeyBundle,
    generate_one_time_prekeys,
    generate_signed_prekey,
)
from messenger_tui.core.crypto.safety import (
    address_stable_id,
    format_safety_number,
    safety_number,
    safety_qr_payload,
)

from ._util import (
    DeterministicRng,
    ref_ed25519_pk_to_x25519,
    ref_ed25519_seed_to_x25519,
    ref_hkdf,
    ref_hmac,
    ref_message_key_material,
    ref_x25519,
    ref_x25519_public,
    ref_xchacha_decrypt,
)

VECTOR_FILE = Path(__file__).parent / "vectors" / "transcript_v1.json"
SEED = b"messenger-tui crypto transcript v1"
NOW_MS = 1_700_000_000_000
SCRIPT = [
    ("alice", b"Hello Bob, this is Alice."),
    ("alice", b"Second message in Alice's first chain."),
    ("bob", b"Hi Alice!"),
    ("bob", b"Bob's second message."),
    ("alice", b"Third chain, first message."),
    ("alice", b""),
]


def build_transcript() -> dict[str, Any]:
    rng = DeterministicRng(SEED)
    alice = IdentityKeyPair.generate(rng)
    bob = IdentityKeyPair.generate(rng)
    spk = generate_signed_prekey(bob, 1, NOW_MS, rng)
    (opk,) = generate_one_time_prekeys(100, 1, rng)
    bundle = PrekeyBundle(
        identity=bob.public,
        spk_id=spk.id,
        spk=spk.public,
        spk_sig=spk.signature,
        opk_id=opk.id,
        opk=opk.public,
    )

    # X3DH and ratchet, step by step
    a_rng, b_rng = DeterministicRng(SEED + b"/alice"), DeterministicRng(SEED + b"/bob")
    init = x3dh.initiate(alice, bundle, a_rng)
    sk_b, ad_b = x3dh.respond(bob, spk, opk, alice.public, init.ephemeral_public)
    assert (sk_b, ad_b) == (init.shared_secret, init.associated_data)
    states = {
        "alice": ratchet.init_initiator(init.shared_secret, spk.public, a_rng),
        "bob": ratchet.init_responder(sk_b, spk.private, spk.public),
    }
    rngs = {"alice": a_rng, "bob": b_rng}
    messages = []
    for sender, plaintext in SCRIPT:
        receiver = "bob" if sender == "alice" else "alice"
        states[sender], header, ciphertext = ratchet.encrypt(
            states[sender], plaintext, init.associated_data
        )
        states[receiver], got = ratchet.decrypt(
            states[receiver], header, ciphertext, init.associated_data, rngs[receiver]
        )
        assert got == plaintext
        messages.append(
            {
                "from": sender,
                "plaintext": plaintext.hex(),
                "header": header.hex(),
                "ciphertext": ciphertext.hex(),
            }
        )

    # the same conversation through the session API (same random streams)
    a_rng, b_rng = DeterministicRng(SEED + b"/alice"), DeterministicRng(SEED + b"/bob")
    a = sess.initiate_session(alice, bundle, a_rng)
    b: sess.Session | None = None
    envelopes = []
    for sender, plaintext in SCRIPT:
        if sender == "alice":
            a, data = sess.encrypt(a, plaintext)
            env = sess.parse_envelope(data)
            if b is None:
                b, got = sess.accept_session(bob, env, alice.public, spk, opk, b_rng)
            else:
                b, got = sess.decrypt(b, env, b_rng)
        else:
            assert b is not None
            b, data = sess.encrypt(b, plaintext)
            a, got = sess.decrypt(a, sess.parse_envelope(data), a_rng)
        assert got == plaintext
        envelopes.append(data.hex())

    number = safety_number(
        alice.public, address_stable_id(alice.public), bob.public, address_stable_id(bob.public)
    )
    keyfile = seal_identity(alice.seed, "transcript passphrase", rng=rng, opslimit=1, memlimit=8192)
    return {
        "description": (
            "messenger-tui crypto transcript v1: deterministic rng = SHA-256(seed || uint64 "
            "BE counter) blocks; see tests/core/crypto/test_vectors.py"
        ),
        "rng_seed": SEED.hex(),
        "alice": {"seed": alice.seed.hex(), "public": alice.public.hex()},
        "bob": {"seed": bob.seed.hex(), "public": bob.public.hex()},
        "signed_prekey": {
            "id": spk.id,
            "private": spk.private.hex(),
            "public": spk.public.hex(),
            "signature": spk.signature.hex(),
        },
        "one_time_prekey": {"id": opk.id, "private": opk.private.hex(), "public": opk.public.hex()},
        "x3dh": {
            "ephemeral_public": init.ephemeral_public.hex(),
            "shared_secret": init.shared_secret.hex(),
            "associated_data": init.associated_data.hex(),
        },
        "messages": messages,
        "envelopes": envelopes,
        "safety_number": number,
        "safety_number_display": format_safety_number(number),
        "safety_qr_alice": safety_qr_payload(
            alice.public,
            address_stable_id(alice.public),
            bob.public,
            address_stable_id(bob.public),
        ).hex(),
        "keyfile_alice": keyfile.decode(),
    }


@pytest.fixture(scope="module")
def frozen() -> dict[str, Any]:
    if os.environ.get("MTUI_REGENERATE_VECTORS") == "1":
        VECTOR_FILE.parent.mkdir(exist_ok=True)
        VECTOR_FILE.write_text(json.dumps(build_transcript(), indent=2) + "\n")
    data: dict[str, Any] = json.loads(VECTOR_FILE.read_text())
    return data


def test_transcript_is_byte_exact(frozen: dict[str, Any]) -> None:
    built = build_transcript()
    for key in frozen:  # field by field, for a readable failure
        assert built[key] == frozen[key], key
    assert built.keys() == frozen.keys()


def test_session_envelopes_wrap_the_ratchet_messages(frozen: dict[str, Any]) -> None:
    for message, envelope in zip(frozen["messages"], frozen["envelopes"], strict=True):
        raw = msgspec.msgpack.decode(bytes.fromhex(envelope))
        assert raw[0] == 1
        assert raw[2].hex() == message["header"] and raw[3].hex() == message["ciphertext"]
    # alice's envelopes carry the handshake until bob's first message reaches her
    with_prekey = [
        msgspec.msgpack.decode(bytes.fromhex(e))[1] is not None for e in frozen["envelopes"]
    ]
    assert with_prekey == [True, True, False, False, False, False]


def test_frozen_x3dh_against_independent_computation(frozen: dict[str, Any]) -> None:
    h = bytes.fromhex
    alice_pub, bob_seed = h(frozen["alice"]["public"]), h(frozen["bob"]["seed"])
    spk_priv, spk_pub = h(frozen["signed_prekey"]["private"]), h(frozen["signed_prekey"]["public"])
    opk_priv = h(frozen["one_time_prekey"]["private"])
    eph = h(frozen["x3dh"]["ephemeral_public"])

    # the prekey signature, checked with another Ed25519 implementation
    Ed25519PublicKey.from_public_bytes(h(frozen["bob"]["public"])).verify(
        h(frozen["signed_prekey"]["signature"]), SPK_SIGNATURE_CONTEXT + spk_pub
    )
    assert ref_x25519_public(spk_priv) == spk_pub

    # Bob's side of X3DH from the spec's formulas
    dh1 = ref_x25519(spk_priv, ref_ed25519_pk_to_x25519(alice_pub))
    dh2 = ref_x25519(ref_ed25519_seed_to_x25519(bob_seed), eph)
    dh3 = ref_x25519(spk_priv, eph)
    dh4 = ref_x25519(opk_priv, eph)
    sk = ref_hkdf(b"\xff" * 32 + dh1 + dh2 + dh3 + dh4, bytes(32), b"messenger-tui/x3dh/v1", 32)
    assert sk.hex() == frozen["x3dh"]["shared_secret"]
    assert frozen["x3dh"]["associated_data"] == frozen["alice"]["public"] + frozen["bob"]["public"]


def test_frozen_first_chain_against_independent_computation(frozen: dict[str, Any]) -> None:
    h = bytes.fromhex
    sk, ad = h(frozen["x3dh"]["shared_secret"]), h(frozen["x3dh"]["associated_data"])
    spk_priv = h(frozen["signed_prekey"]["private"])
    m0, m1 = frozen["messages"][0], frozen["messages"][1]
    header0 = h(m0["header"])
    alice_ratchet_pub = header0[:32]
    assert header0[32:] == bytes(8)  # pn = 0, n = 0
    # Bob: RK, CKr = KDF_RK(SK, DH(SPK, alice's ratchet key))
    out = ref_hkdf(
        ref_x25519(spk_priv, alice_ratchet_pub), sk, b"messenger-tui/ratchet-root/v1", 64
    )
    ck = out[32:]
    for message in (m0, m1):
        mk = ref_hmac(ck, b"\x01")
        ck = ref_hmac(ck, b"\x02")
        key, nonce = ref_message_key_material(mk, b"messenger-tui/message-key/v1")
        header = h(message["header"])
        pt = ref_xchacha_decrypt(key, nonce, h(message["ciphertext"]), ad + header)
        assert pt.hex() == message["plaintext"]


def test_frozen_keyfile_opens(frozen: dict[str, Any]) -> None:
    identity = open_identity(frozen["keyfile_alice"].encode(), "transcript passphrase")
    assert identity.seed.hex() == frozen["alice"]["seed"]

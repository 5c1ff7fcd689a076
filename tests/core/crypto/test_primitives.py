"""Primitives and identity keys checked against RFC vectors and independent implementations."""

from __future__ import annotations

import copy
import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.crypto.identity import (
    IdentityKeyPair,
    verify_signature,
    x25519_from_identity,
)
from messenger_tui.core.crypto.primitives import (
    KeyedAead,
    aead_decrypt,
    aead_encrypt,
    hkdf_sha256,
    hmac_sha256,
    x25519,
    x25519_keypair,
)
from messenger_tui.core.errors import CryptoError, DecryptionFailed, InvalidSignature

from ._util import (
    DeterministicRng,
    flip_bit,
    hchacha20,
    ref_ed25519_pk_to_x25519,
    ref_ed25519_seed_to_x25519,
    ref_hkdf,
    ref_hmac,
    ref_x25519,
    ref_x25519_public,
    ref_xchacha_decrypt,
    ref_xchacha_encrypt,
)

FAST = settings(max_examples=25, deadline=None)


def test_hkdf_rfc5869_test_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, salt=salt, info=info, length=42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_test_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), salt=b"", info=b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@FAST
@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(min_size=1, max_size=80),
    info=st.binary(max_size=40),
    length=st.integers(1, 200),
)
def test_hkdf_matches_cryptography(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    assert hkdf_sha256(ikm, salt=salt, info=info, length=length) == ref_hkdf(
        ikm, salt, info, length
    )


def test_hkdf_rejects_impossible_lengths() -> None:
    with pytest.raises(ValueError):
        hkdf_sha256(b"x", salt=b"", info=b"", length=0)
    with pytest.raises(ValueError):
        hkdf_sha256(b"x", salt=b"", info=b"", length=255 * 32 + 1)


@FAST
@given(key=st.binary(max_size=100), data=st.binary(max_size=100))
def test_hmac_matches_cryptography(key: bytes, data: bytes) -> None:
    assert hmac_sha256(key, data) == ref_hmac(key, data)


@FAST
@given(seed=st.binary(min_size=1, max_size=16))
def test_x25519_matches_cryptography(seed: bytes) -> None:
    rng = DeterministicRng(seed)
    a_priv, a_pub = x25519_keypair(rng)
    b_priv, b_pub = x25519_keypair(rng)
    assert a_pub == ref_x25519_public(a_priv)
    shared = x25519(a_priv, b_pub)
    assert shared == x25519(b_priv, a_pub) == ref_x25519(a_priv, b_pub)


@pytest.mark.parametrize(
    "low_order",
    [
        bytes(32),
        (1).to_bytes(32, "little"),
        # order-8 point from the libsodium blocklist
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
)
def test_x25519_rejects_low_order_points(low_order: bytes) -> None:
    private, _ = x25519_keypair(DeterministicRng(b"low"))
    with pytest.raises(CryptoError):
        x25519(private, low_order)


def test_xchacha20poly1305_draft_vector() -> None:
    # draft-irtf-cfrg-xchacha-03, appendix A.3.1
    pt = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        b"the future, sunscreen would be it."
    )
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    key = bytes(range(0x80, 0xA0))
    nonce = bytes(range(0x40, 0x58))
    expected = (
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a8"
        "2f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc3"
        "69488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49"
    )
    assert aead_encrypt(key, nonce, pt, ad).hex() == expected
    assert aead_decrypt(key, nonce, bytes.fromhex(expected), ad) == pt


def test_hchacha20_reference_vector() -> None:
    # draft-irtf-cfrg-xchacha-03, section 2.2.1: validates the plain-Python reference
    out = hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927"))
    assert out.hex() == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"


@FAST
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=24, max_size=24),
    pt=st.binary(max_size=300),
    ad=st.binary(max_size=80),
)
def test_aead_matches_independent_xchacha(key: bytes, nonce: bytes, pt: bytes, ad: bytes) -> None:
    ours = aead_encrypt(key, nonce, pt, ad)
    assert ours == ref_xchacha_encrypt(key, nonce, pt, ad)
    assert ref_xchacha_decrypt(key, nonce, ours, ad) == pt


@FAST
@given(
    key=st.binary(min_size=32, max_size=32),
    messages=st.lists(
        st.tuples(
            st.binary(min_size=24, max_size=24), st.binary(max_size=300), st.binary(max_size=20)
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_keyed_aead_is_byte_identical_to_the_bindings(
    key: bytes, messages: list[tuple[bytes, bytes, bytes]]
) -> None:
    """The media path's KeyedAead (one reused buffer) against PyNaCl's bindings, message after
    message: a longer earlier message must not leak into a shorter later one."""
    keyed = KeyedAead(key, max_plaintext=300)
    for nonce, pt, ad in messages:
        sealed = keyed.encrypt(nonce, pt, ad)
        assert sealed == aead_encrypt(key, nonce, pt, ad)
        assert keyed.decrypt(nonce, sealed, ad) == pt == aead_decrypt(key, nonce, sealed, ad)


def test_keyed_aead_refuses_tampering_wrong_keys_and_sizes() -> None:
    key, nonce = bytes(range(32)), bytes(24)
    keyed = KeyedAead(key, max_plaintext=64)
    ct = keyed.encrypt(nonce, b"secret", b"ad")
    for bit in range(len(ct) * 8):
        with pytest.raises(DecryptionFailed):
            keyed.decrypt(nonce, flip_bit(ct, bit), b"ad")
    with pytest.raises(DecryptionFailed):
        KeyedAead(bytes(32), max_plaintext=64).decrypt(nonce, ct, b"ad")
    with pytest.raises(DecryptionFailed):
        keyed.decrypt(nonce, ct[:15], b"ad")
    with pytest.raises(DecryptionFailed):
        keyed.decrypt(nonce, bytes(64 + 17), b"ad")  # longer than any message it seals
    with pytest.raises(ValueError):
        keyed.encrypt(nonce, bytes(65), b"ad")
    with pytest.raises(CryptoError):
        keyed.encrypt(bytes(23), b"x", b"ad")
    with pytest.raises(CryptoError):
        KeyedAead(bytes(31), max_plaintext=64)
    assert key.hex() not in repr(keyed)


def test_aead_rejects_tampering() -> None:
    key, nonce = bytes(range(32)), bytes(24)
    ct = aead_encrypt(key, nonce, b"secret", b"ad")
    for bit in range(len(ct) * 8):
        with pytest.raises(DecryptionFailed):
            aead_decrypt(key, nonce, flip_bit(ct, bit), b"ad")
    with pytest.raises(DecryptionFailed):
        aead_decrypt(key, nonce, ct, b"ae")
    with pytest.raises(DecryptionFailed):
        aead_decrypt(key, nonce, ct[:10], b"ad")


# ---------------------------------------------------------------- identity


@FAST
@given(seed=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=64))
def test_identity_matches_cryptography_ed25519(seed: bytes, msg: bytes) -> None:
    ident = IdentityKeyPair.from_seed(seed)
    ref = Ed25519PrivateKey.from_private_bytes(seed)
    assert ident.public == ref.public_key().public_bytes_raw()
    # Ed25519 is deterministic: the signatures must be identical
    assert ident.sign(msg) == ref.sign(msg)
    verify_signature(ident.public, msg, ident.sign(msg))


@FAST
@given(seed=st.binary(min_size=32, max_size=32))
def test_ed25519_to_x25519_conversion_is_consistent(seed: bytes) -> None:
    ident = IdentityKeyPair.from_seed(seed)
    # the independent formulas agree with libsodium's conversion ...
    assert ident.dh_private == ref_ed25519_seed_to_x25519(seed)
    assert ident.dh_public == ref_ed25519_pk_to_x25519(ident.public)
    # ... the two halves belong together ...
    assert ref_x25519_public(ident.dh_private) == ident.dh_public
    # ... and a peer that only knows the Ed25519 key derives the same X25519 key
    assert x25519_from_identity(ident.public) == ident.dh_public


def test_converted_keys_agree_in_dh() -> None:
    rng = DeterministicRng(b"conv")
    a, b = IdentityKeyPair.generate(rng), IdentityKeyPair.generate(rng)
    assert x25519(a.dh_private, x25519_from_identity(b.public)) == x25519(
        b.dh_private, x25519_from_identity(a.public)
    )


def test_verify_signature_rejects() -> None:
    ident = IdentityKeyPair.generate(DeterministicRng(b"sig"))
    sig = ident.sign(b"message")
    other = IdentityKeyPair.generate(DeterministicRng(b"other"))
    with pytest.raises(InvalidSignature):
        verify_signature(ident.public, b"messagf", sig)
    with pytest.raises(InvalidSignature):
        verify_signature(other.public, b"message", sig)
    with pytest.raises(InvalidSignature):
        verify_signature(ident.public, b"message", flip_bit(sig, 3))
    with pytest.raises(InvalidSignature):
        verify_signature(ident.public, b"message", sig[:63])


def test_x25519_from_identity_rejects_non_points() -> None:
    # y = 2 is not the y-coordinate of a point on edwards25519
    with pytest.raises(CryptoError):
        x25519_from_identity((2).to_bytes(32, "little"))
    with pytest.raises(CryptoError):
        x25519_from_identity(b"short")


def test_identity_never_shows_secrets() -> None:
    ident = IdentityKeyPair.generate(DeterministicRng(b"repr"))
    for text in (repr(ident), str(ident)):
        assert ident.seed.hex() not in text
        assert ident.dh_private.hex() not in text
        assert ident.public.hex() in text
    with pytest.raises(TypeError):
        pickle.dumps(ident)
    assert copy.deepcopy(ident) is ident


def test_identity_rejects_bad_seed() -> None:
    with pytest.raises(CryptoError):
        IdentityKeyPair.from_seed(b"\x00" * 31)

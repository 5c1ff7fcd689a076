"""Safety numbers and their QR payload."""

from __future__ import annotations

import hashlib

import pytest

from messenger_tui.core.address import encode_address
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.safety import (
    QR_PAYLOAD_LEN,
    address_stable_id,
    fingerprint,
    format_safety_number,
    safety_number,
    safety_qr_payload,
    verify_safety_qr,
)

from ._util import DeterministicRng, flip_bit

_rng = DeterministicRng(b"safety numbers")
A = IdentityKeyPair.generate(_rng).public
B = IdentityKeyPair.generate(_rng).public
C = IdentityKeyPair.generate(_rng).public


def _number(local: bytes, remote: bytes) -> str:
    return safety_number(local, address_stable_id(local), remote, address_stable_id(remote))


def test_stable_id_is_the_address_text() -> None:
    assert address_stable_id(A) == encode_address(A).encode("utf-8")


def test_both_sides_compute_the_same_60_digits() -> None:
    ab, ba = _number(A, B), _number(B, A)
    assert ab == ba
    assert len(ab) == 60 and ab.isdigit()


def test_number_changes_with_either_key() -> None:
    ab = _number(A, B)
    assert _number(A, C) != ab
    assert _number(C, B) != ab
    # the half of the unchanged side stays, the other half changes
    ac = _number(A, C)
    a_half = {ab[:30], ab[30:]} & {ac[:30], ac[30:]}
    assert len(a_half) == 1


def test_number_depends_on_the_stable_id() -> None:
    assert safety_number(A, b"x", B, b"y") != safety_number(A, b"x", B, b"z")


def test_fingerprint_follows_signals_iteration() -> None:
    # the construction written out independently: h = v || key || id, then
    # 5200 x h = SHA-512(h || key), keep 30 bytes
    stable_id = address_stable_id(A)
    h = b"\x00\x00" + A + stable_id
    for _ in range(5200):
        h = hashlib.sha512(h + A).digest()
    fp = fingerprint(A, stable_id)
    assert fp == h[:30]
    digits = "".join(
        f"{int.from_bytes(fp[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )
    assert digits in (_number(A, B)[:30], _number(A, B)[30:])


def test_known_answer() -> None:
    # frozen: an accidental change of the construction changes every user's numbers
    a = IdentityKeyPair.from_seed(bytes(32)).public
    b = IdentityKeyPair.from_seed(bytes([1] * 32)).public
    assert _number(a, b) == "680694722920598261526382525242833250927156024802904159967659"


def test_format() -> None:
    number = "".join(str(i % 10) for i in range(60))
    text = format_safety_number(number)
    lines = text.split("\n")
    assert len(lines) == 3
    assert all(len(line.split(" ")) == 4 for line in lines)
    assert text.replace("\n", "").replace(" ", "") == number
    assert lines[0] == "01234 56789 01234 56789"
    with pytest.raises(ValueError):
        format_safety_number("123")
    with pytest.raises(ValueError):
        format_safety_number("x" * 60)


def test_qr_payload_verifies_only_the_matching_view() -> None:
    a_id, b_id = address_stable_id(A), address_stable_id(B)
    shown_by_b = safety_qr_payload(B, b_id, A, a_id)
    assert len(shown_by_b) == QR_PAYLOAD_LEN == 61
    assert verify_safety_qr(shown_by_b, A, a_id, B, b_id)
    # alice has a different key for bob than bob has (a relay swapped it): no match
    c_id = address_stable_id(C)
    assert not verify_safety_qr(shown_by_b, A, a_id, C, c_id)
    # scanning your own code is not a verification
    assert not verify_safety_qr(safety_qr_payload(A, a_id, B, b_id), A, a_id, B, b_id)
    assert not verify_safety_qr(flip_bit(shown_by_b, 100), A, a_id, B, b_id)
    assert not verify_safety_qr(b"\x02" + shown_by_b[1:], A, a_id, B, b_id)
    assert not verify_safety_qr(shown_by_b[:-1], A, a_id, B, b_id)

"""Size padding: exact buckets, Signal's formula at every bucket edge, at most 5 % overhead."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger_tui.core.attachments.padding import (
    MAX_ATTACHMENT_SIZE,
    MIN_PADDED_SIZE,
    bucket,
    padded_size,
)


def signal_padded_size(size: int) -> int:
    """libsignal-service's PaddingInputStream.getPaddedSize, in doubles as Signal has it."""
    return max(541, math.floor(math.pow(1.05, math.ceil(math.log(size) / math.log(1.05)))))


def all_buckets(limit: int) -> list[int]:
    """Every bucket from 541 up to ``limit``, by exact rational powers of 21/20."""
    out: list[int] = []
    k = 0
    while True:
        value = math.floor(Fraction(21, 20) ** k)
        if value > limit:
            return out
        if value >= MIN_PADDED_SIZE:
            out.append(value)
        k += 1


def test_small_sizes_share_the_smallest_bucket() -> None:
    for size in (0, 1, 2, 100, 540, 541):
        assert padded_size(size) == 541
    assert padded_size(542) == 568


def test_known_values() -> None:
    assert padded_size(1000) == 1020
    assert padded_size(65_536) == 67_789
    assert padded_size(100 * 1024 * 1024) == 107_335_738


def test_every_bucket_edge_up_to_256_gib() -> None:
    """At each bucket b: b pads to itself, b + 1 to the next bucket, b - 1 to b (when above
    the previous one); the same as Signal's floating-point formula, and as the exact
    rational computation."""
    buckets = all_buckets(256 * 1024**3)
    assert len(buckets) > 400
    for previous, b, following in zip(buckets, buckets[1:], buckets[2:]):
        assert padded_size(b) == b == signal_padded_size(b)
        assert padded_size(b + 1) == following == signal_padded_size(b + 1)
        expected = b if b - 1 > previous else previous
        assert padded_size(b - 1) == expected == signal_padded_size(b - 1)


def test_where_doubles_and_exact_buckets_part() -> None:
    """The documented limit: from 305,210,939,625 bytes Signal's doubles give another
    bucket (one byte higher) than the exact definition."""
    size = 305_210_939_625
    assert padded_size(size - 1) == signal_padded_size(size - 1)
    assert padded_size(size) == bucket(543) == signal_padded_size(size) - 1


@given(st.integers(0, MAX_ATTACHMENT_SIZE))
def test_padding_is_a_bucket_at_least_the_size_and_at_most_5_percent(size: int) -> None:
    padded = padded_size(size)
    assert padded >= size and padded >= MIN_PADDED_SIZE
    if size > MIN_PADDED_SIZE:
        near = round(math.log(padded) / math.log(1.05))
        (k,) = [j for j in (near - 1, near, near + 1) if bucket(j) == padded]  # a bucket
        assert bucket(k - 1) < size  # and the smallest one that fits
        assert padded <= size * 1.05 + 1
        if padded <= MAX_ATTACHMENT_SIZE:
            assert padded_size(padded) == padded


def test_bounds() -> None:
    with pytest.raises(ValueError):
        padded_size(-1)
    with pytest.raises(ValueError):
        padded_size(MAX_ATTACHMENT_SIZE + 1)
    with pytest.raises(ValueError):
        bucket(-1)

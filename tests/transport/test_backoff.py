"""Backoff: exponential ceiling, full jitter, cap, reset, determinism."""

from __future__ import annotations

import random

import pytest

from messenger_tui.transport import Backoff


def test_delays_stay_within_the_exponential_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(1))
    for attempt in range(12):
        delay = backoff.next_delay()
        assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)


def test_cap_holds_after_very_many_attempts() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(2))
    delays = [backoff.next_delay() for _ in range(5000)]
    assert max(delays) <= 30.0
    assert backoff.attempt == 5000
    assert backoff.ceiling() == 30.0


def test_same_seed_same_delays() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.next_delay() for _ in range(20)] == [b.next_delay() for _ in range(20)]


def test_full_jitter_is_uniform_over_zero_to_ceiling() -> None:
    rng = random.Random(7)
    samples = []
    for _ in range(20_000):
        backoff = Backoff(base=1.0, cap=8.0, rng=rng)
        for _ in range(3):
            backoff.next_delay()
        samples.append(backoff.next_delay())  # 4th attempt: ceiling min(8, 1 * 2**3) = 8
    assert min(samples) >= 0.0 and max(samples) <= 8.0
    mean = sum(samples) / len(samples)
    assert 3.8 < mean < 4.2  # uniform on [0, 8] has mean 4
    deciles = [0] * 10
    for value in samples:
        deciles[min(int(value / 0.8), 9)] += 1
    for count in deciles:  # each tenth of the range gets about 10 %
        assert 0.08 * len(samples) < count < 0.12 * len(samples)
    assert min(samples) < 0.1  # full jitter reaches down to zero, not just "ceiling/2 + jitter"


def test_reset_starts_over_from_base() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(3))
    for _ in range(10):
        backoff.next_delay()
    assert backoff.ceiling() == 30.0
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling() == 0.5
    assert 0.0 <= backoff.next_delay() <= 0.5


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_invalid_parameters_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)

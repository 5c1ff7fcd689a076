"""Time source of the relay: wall-clock milliseconds, injectable for tests.

Domain objects take a :data:`Clock` argument; production code passes :func:`wall_clock_ms`,
tests pass a settable fake so TTL and rate-limit behaviour is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A function returning the current time in milliseconds since the Unix epoch.
Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """The system wall clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests, simulations)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms`` milliseconds."""
        self.now_ms += ms

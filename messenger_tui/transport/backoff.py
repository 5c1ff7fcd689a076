"""Exponential backoff with full jitter for reconnecting to the relay.

The delay before attempt ``n`` (counting from 0) is drawn uniformly from
``[0, min(cap, base * 2**n)]`` ("full jitter", as in the AWS architecture blog post
*Exponential Backoff And Jitter*). Full jitter spreads the reconnects of many clients after a
relay restart instead of having them all arrive at the same instants.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]

# 2**_MAX_EXPONENT * base is far above any sane cap; stops the exponent from growing forever.
_MAX_EXPONENT = 62


class Backoff:
    """Delays for successive reconnect attempts.

    Call :meth:`next_delay` before each retry and sleep that long; call :meth:`reset` once a
    connection has proved stable so the next failure retries quickly again. Pass a seeded
    :class:`random.Random` as ``rng`` for deterministic delays (tests).
    """

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if not base > 0:
            raise ValueError(f"backoff base must be positive, got {base!r}")
        if not cap >= base:
            raise ValueError(f"backoff cap ({cap!r}) must be at least the base ({base!r})")
        self.base = float(base)
        self.cap = float(cap)
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since construction or the last :meth:`reset`."""
        return self._attempt

    def ceiling(self) -> float:
        """Upper bound of the delay the next :meth:`next_delay` call can return."""
        return min(self.cap, self.base * float(2 ** min(self._attempt, _MAX_EXPONENT)))

    def next_delay(self) -> float:
        """Return the seconds to wait before the next attempt and advance the attempt count."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start over from the smallest delays (call after a stable connection)."""
        self._attempt = 0

    def __repr__(self) -> str:
        return f"Backoff(base={self.base}, cap={self.cap}, attempt={self._attempt})"

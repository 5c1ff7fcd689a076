"""Per-identity token buckets (sans-I/O).

A :class:`RateLimiter` holds one bucket per identity for one kind of request (Send, Signal,
FetchBundle). The caller asks :meth:`RateLimiter.allow` before doing the work and answers
``Error(rate_limited)`` when it returns False. Buckets are keyed by identity, not connection,
so reconnecting does not refill them; call :meth:`RateLimiter.prune` now and then to drop
buckets that have refilled completely (they hold no information).
"""

from __future__ import annotations

from messenger_tui.relay.clock import Clock
from messenger_tui.relay.config import RateLimit


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full.

    Once it refuses, it keeps refusing until it has refilled to a tenth of its burst. Without
    that hysteresis a pipelined burst would see accepts and refusals interleave (the bucket
    refills between frames), and the client's retries would land after later messages: the
    conversation would arrive out of order. With it, everything sent behind a refused envelope
    is refused too, and the client resends in order.
    """

    __slots__ = ("_burst", "_closed", "_rate_per_ms", "_reopen_at", "_tokens", "_updated_ms")

    def __init__(self, limit: RateLimit, now_ms: int) -> None:
        self._rate_per_ms = limit.rate_per_s / 1000.0
        self._burst = float(limit.burst)
        self._reopen_at = max(1.0, self._burst / 10)
        self._tokens = self._burst
        self._updated_ms = now_ms
        self._closed = False

    def _refill(self, now_ms: int) -> None:
        elapsed = now_ms - self._updated_ms
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate_per_ms)
            self._updated_ms = now_ms

    def take(self, now_ms: int, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if available and return True; otherwise spend nothing."""
        self._refill(now_ms)
        if self._closed and self._tokens >= max(tokens, self._reopen_at):
            self._closed = False
        if not self._closed and self._tokens >= tokens:
            self._tokens -= tokens
            return True
        self._closed = True
        return False

    def is_full(self, now_ms: int) -> bool:
        """Whether the bucket has refilled to its burst (then it can be forgotten)."""
        self._refill(now_ms)
        return self._tokens >= self._burst


class RateLimiter:
    """Token buckets per identity for one request kind."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[bytes, TokenBucket] = {}

    def allow(self, identity: bytes, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` (default one) of ``identity``'s bucket; False means refuse the
        request. Ask at most the burst: a larger cost is never allowed."""
        now = self._clock()
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._buckets[identity] = TokenBucket(self.limit, now)
        return bucket.take(now, tokens)

    def prune(self) -> int:
        """Forget buckets that are full again; return how many were dropped."""
        now = self._clock()
        full = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in full:
            del self._buckets[key]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)

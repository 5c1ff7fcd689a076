"""Redis plumbing of the node bus (relay/node_bus.py): store URLs, key and channel names, and
the shared token bucket (node bus rule 5).

A store URL is ``redis://[user:pass@]host:port[/db]``, ``rediss://…`` (TLS), or a Redis
Cluster seed node's URL marked ``redis+cluster://…`` / ``rediss+cluster://…``
(relay/store_url.py parses them). Every key and channel of one identity carries the identity as a
hash tag, ``{<hex>}``, so they share a cluster slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from messenger_tui.relay.config import RateLimit
from messenger_tui.relay.errors import RelayStartError
from messenger_tui.relay.store_url import parse_store_url

#: Seconds to connect to Redis before a bus operation counts as failed.
REDIS_CONNECT_TIMEOUT_S: Final = 2.0

# KEYS[1] bucket; ARGV rate per ms, burst, least, want, reopen level. A token bucket that
# refills at ``rate`` up to ``burst``, closes when it runs dry and reopens at ``reopen``
# tokens; takes up to ``want`` tokens at once (at least ``least``): returns the tokens taken
# ("0": refused), which the caller spends locally (a connection's lease, LeasedBucket), or
# ``least == want == cost`` for one step of the bucket (NodeBus.bucket).
LEASE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local least = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local reopen = tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[1], 't', 'u', 'c')
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
local closed = b[3] == '1'
if now > updated then
  tokens = math.min(burst, tokens + (now - updated) * rate)
  updated = now
end
if closed and tokens >= math.max(least, reopen) then closed = false end
local taken = 0
if (not closed) and tokens >= least then
  taken = math.min(want, tokens)
  tokens = tokens - taken
else
  closed = true
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(updated), 'c',
  closed and '1' or '0')
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return tostring(taken)
"""

# KEYS[1] bucket; ARGV burst, tokens. Give back tokens a lease took and did not spend.
REFUND_LUA: Final = """
local t = tonumber(redis.call('HGET', KEYS[1], 't'))
if t == nil then return 0 end
redis.call('HSET', KEYS[1], 't', tostring(math.min(tonumber(ARGV[1]), t + tonumber(ARGV[2]))))
return 1
"""

#: Most tokens a connection's lease takes from its shared bucket at once (and the most
#: a node holds unspent per connection: what hopping between nodes could gain, and what a
#: connection closed without refunding loses).
LEASE_MAX: Final = 64


class RedisUnavailable(RelayStartError):
    """The node bus cannot reach Redis at start."""


def is_redis_url(url: str) -> bool:
    """Whether a ``--store`` URL names Redis (several nodes) rather than SQLite."""
    return url.split(":", 1)[0].lower() in ("redis", "rediss", "redis+cluster", "rediss+cluster")


def open_redis(url: str) -> tuple[Any, bool]:
    """A redis-py asyncio client for a ``--store`` Redis URL (relay/store_url.py)."""
    spec = parse_store_url(url)
    plain, cluster = spec.redis_url or "", spec.cluster
    # An unreachable Redis must not hold a send for minutes (the OS's TCP timeout): the
    # callers fall back (rate limits) or retry (wake-ups) after these.
    timeouts = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S, "socket_timeout": 5.0}
    if cluster:
        return RedisCluster.from_url(plain, **timeouts), True
    return aioredis.from_url(plain, **timeouts), False


def redacted(url: str) -> str:
    """``url`` without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def hash_tag(identity: bytes) -> str:
    return "{" + identity.hex() + "}"


def bus_channel(identity: bytes) -> str:
    """The channel of rule 1."""
    return f"mt:{hash_tag(identity)}:bus"


def seen_channel(identity: bytes) -> str:
    """The presence channel of rule 4."""
    return f"mt:{hash_tag(identity)}:seen"


def owner_key(identity: bytes) -> str:
    """The owner key of rule 2."""
    return f"mt:{hash_tag(identity)}:owner"


class BucketHost(Protocol):
    """Where a :class:`SharedLimiter` runs its script (the node bus)."""

    async def bucket(
        self, key: str, rate_per_ms: float, burst: int, cost: float, reopen: float
    ) -> bool: ...

    async def lease(
        self, key: str, rate_per_ms: float, burst: int, least: float, want: float, reopen: float
    ) -> float: ...

    async def refund(self, key: str, burst: int, tokens: float) -> None: ...

    def redis_failed(self, what: str, exc: BaseException) -> None: ...


class SharedLimiter:
    """A token bucket per key kept in Redis (rule 5); ``fallback`` decides when Redis fails."""

    def __init__(
        self, bus: BucketHost, name: str, limit: RateLimit, fallback: Callable[[bytes, float], bool]
    ) -> None:
        self._bus = bus
        self._name = name
        self.limit = limit
        self._fallback = fallback

    async def allow(self, key: bytes, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` of ``key``'s shared bucket; False means refuse."""
        limit = self.limit
        try:
            allowed = await self._bus.bucket(
                self._key(key),
                limit.rate_per_s / 1000.0,
                limit.burst,
                tokens,
                max(1.0, limit.burst / 10),
            )
        except RedisError as exc:
            self._bus.redis_failed("a shared rate limit", exc)
            return self._fallback(key, tokens)
        return allowed

    def _key(self, key: bytes) -> str:
        return f"mt:rl:{self._name}:{hash_tag(key)}"

    @property
    def lease_size(self) -> int:
        """Tokens a :class:`LeasedBucket` takes at once: a small share of the burst."""
        return max(1, min(LEASE_MAX, self.limit.burst // 32))

    async def lease(self, key: bytes, least: float, want: float) -> float | None:
        """Take between ``least`` and ``want`` tokens of ``key``'s bucket: the tokens taken
        (0: refused), or None when Redis failed (the caller falls back)."""
        limit = self.limit
        try:
            return await self._bus.lease(
                self._key(key),
                limit.rate_per_s / 1000.0,
                limit.burst,
                least,
                want,
                max(1.0, limit.burst / 10),
            )
        except RedisError as exc:
            self._bus.redis_failed("a shared rate limit", exc)
            return None

    async def refund(self, key: bytes, tokens: float) -> None:
        """Give back ``tokens`` taken by :meth:`lease` and not spent."""
        try:
            await self._bus.refund(self._key(key), self.limit.burst, tokens)
        except RedisError as exc:
            self._bus.redis_failed("a shared rate limit", exc)

    def fallback(self, key: bytes, tokens: float) -> bool:
        """The node's own bucket (Redis failed)."""
        return self._fallback(key, tokens)


class LeasedBucket:
    """One connection's advance on its identity's shared bucket (node bus rule 5): the send
    limit, the bundle-fetch limit.

    Tokens are taken from Redis :attr:`SharedLimiter.lease_size` at a time and spent here,
    so a send costs a Redis round trip once per lease instead of once per send (the round
    trip, a script that writes under ``appendfsync always``, dominated a node's CPU and
    latency per message). The identity has one connection in the deployment, so the credit
    is not multiplied by nodes; a connection moving to another node can hold at most one
    lease on each, and :meth:`close` gives back what was not spent.
    """

    __slots__ = ("_credit", "_key", "_limiter")

    def __init__(self, limiter: SharedLimiter, key: bytes) -> None:
        self._limiter = limiter
        self._key = key
        self._credit = 0.0

    @property
    def credit(self) -> float:
        return self._credit

    async def allow(self, tokens: float = 1.0) -> bool:
        """Spend ``tokens``; False means refuse (the shared bucket is empty)."""
        if self._credit >= tokens:
            self._credit -= tokens
            return True
        limiter = self._limiter
        need = tokens - self._credit
        want = max(tokens, limiter.lease_size) - self._credit
        taken = await limiter.lease(self._key, need, want)
        if taken is None:
            return limiter.fallback(self._key, tokens)
        if taken < need:
            return False
        self._credit += taken - tokens
        return True

    async def close(self) -> None:
        """Give back the unspent credit (the connection is closing)."""
        credit, self._credit = self._credit, 0.0
        if credit > 0:
            await self._limiter.refund(self._key, credit)

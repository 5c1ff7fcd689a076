"""What several relay nodes on one Redis tell each other (the node bus): docs/operations.md.

The store (mailboxes, prekeys) is shared through Redis by the store backend; this module
carries the rest, only when ``RelayConfig.store_url`` is a Redis URL (SQLite mode never
builds one). Rules:

1. **One channel per identity**, ``mt:{<identity hex>}:bus`` (the hash tag keeps it in the
   slot of the identity's other keys). A node subscribes to it while the identity is connected
   to the node, and unsubscribes when it leaves. Redis Cluster: sharded pub/sub
   (SSUBSCRIBE/SPUBLISH, the channel lives on the shard of its slot); standalone: plain
   pub/sub. Messages are one tag byte and a payload: ``W`` (wake up: new envelopes were
   committed), ``E`` + records (a wake-up carrying the envelopes committed, when they fit:
   relay/node_wake.py), ``R`` + owner token (a newer connection of the identity), ``S`` + sender +
   body (an ephemeral frame: typing, call signalling; never stored), ``K`` + 4 bytes (the
   identity's one-time prekeys ran low after a fetch on another node: the unsolicited
   ``Ok(ref=0, prekeys_remaining)`` its own node would have sent).
2. **One connection per identity across nodes.** The owner key ``mt:{hex}:owner`` names the
   connection that holds the identity (``<node id>:<connection number>``, expiring after
   :data:`OWNER_TTL_MS` unless its node refreshes it). A connection that authenticates first
   subscribes (and waits for the subscription to be confirmed), then sets the owner key (SET
   with GET), then publishes ``R`` + its token + the token the SET returned (the connection
   it replaced), and ``P`` online if the key was unset. A node closes its connection of that
   identity (4000) when ``R`` names it as the replaced one: of two racing connections exactly
   the one whose SET came last survives, and a late ``R`` never closes a newer connection.
   When the key was unset (the identity was offline, or Redis lost the key with its data),
   ``R`` names no one and a node with a connection of that identity reads the owner key and
   closes its connection unless the key names it.
3. **Wake-ups are at-most-once.** A commit for a recipient that is not connected to this node
   publishes ``E`` with the envelopes (up to a bound) or ``W`` on the recipient's channel
   (after the commit). The receiving node offers the carried envelopes to that connection's
   pusher, which delivers them from memory if they directly follow what it has seen and
   re-reads the mailbox otherwise; ``W`` makes it re-read the mailbox. Pub/sub loses
   messages while a node is disconnected from Redis, so whenever the node (re)subscribes it
   re-reads the mailbox of every local connection: nothing committed is ever left unread.
4. **Presence** of identities watched by local connections: a node subscribes to
   ``mt:{hex}:seen`` of each identity its connections watch (counted; unsubscribed when the
   last watcher leaves) and hears ``P`` + online byte there, published when the owner key is
   created (online) or deleted by its owner (offline); a replacement changes nothing. The
   owner key answers "is it online now" for a new watch list. In this mode every watcher,
   local or not, hears presence through Redis (one order for all).
5. **Shared rate limits**: a token bucket per key in Redis (one Lua script, the server's
   clock), with the hysteresis of :class:`~messenger_tui.relay.rate_limit.TokenBucket`, so a
   client spreading its connections over nodes gets one budget, not one per node. The
   per-identity send and bundle-fetch limits are taken in leases (:class:`~messenger_tui.
   relay.node_redis.LeasedBucket`: up to 64 tokens per script call, spent by the connection,
   the rest given back when it closes), so a send costs no Redis round trip of its own.
6. **Redis down**: publishes and limit checks that fail are logged (one line per minute) and
   the node falls back to its own in-memory limiters; the reader reconnects with a backoff
   and re-reads every local mailbox (rule 3).

The subscribing connection and its reader are relay/node_subscriptions.py; the wake-up
messages and their batching, relay/node_wake.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Iterable
from typing import Any, Final, Protocol

from redis.exceptions import RedisError

from messenger_tui.core import wire
from messenger_tui.relay.node_redis import (
    LEASE_LUA,
    REFUND_LUA,
    RedisUnavailable,
    bus_channel,
    open_redis,
    owner_key,
    redacted,
    seen_channel,
)
from messenger_tui.relay.node_subscriptions import RECONNECT_BASE_S, BusSubscriptions
from messenger_tui.relay.node_wake import ENVELOPES, WAKE, PendingWakes, decode_envelopes
from messenger_tui.relay.store import StoredEnvelope

#: Lifetime of an owner key its node stops refreshing (a killed node): presence of its
#: identities goes stale for at most this long; the node refreshes every third of it.
OWNER_TTL_MS: Final = 90_000
#: Retries of a wake-up publish that failed (with a doubling delay from RECONNECT_BASE_S).
WAKE_RETRIES: Final = 6

REPLACED: Final = b"R"
SIGNAL: Final = b"S"
PRESENCE: Final = b"P"
PREKEYS_LOW: Final = b"K"

# KEYS[1] owner key; ARGV[1] token. Delete it only if it still names this connection.
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] owner key; ARGV[1] token, ARGV[2] ttl ms. Refresh it only if it names us.
_REFRESH_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class BusPeer(Protocol):
    """A local authenticated connection as the bus sees it."""

    @property
    def identity(self) -> bytes: ...

    def try_send_frame(self, frame: wire.RelayFrame) -> bool: ...

    def replace(self) -> None: ...

    def offer(self, envelope: StoredEnvelope) -> None:
        """An envelope committed on another node, carried by its wake-up."""
        ...

    def offers_done(self) -> None: ...

    def reread(self) -> None:
        """New envelopes may be in the store: read the mailbox again."""
        ...


class LocalPeers(Protocol):
    """Where the bus finds local connections (the presence registry)."""

    def peer_for(self, identity: bytes) -> Any: ...

    def all_peers(self) -> Iterable[Any]: ...

    def notify_presence(self, identity: bytes, *, online: bool) -> None: ...


class NodeBus:
    """This node's end of the node bus (rules in the module docstring)."""

    def __init__(
        self, url: str, peers: LocalPeers, log: logging.Logger, *, node_id: str | None = None
    ) -> None:
        self.url = url
        self.node_id = node_id or os.urandom(6).hex()
        self._peers = peers
        self._log = log
        self._redis, self.cluster = open_redis(url)
        self._lease = self._redis.register_script(LEASE_LUA)
        self._refund = self._redis.register_script(REFUND_LUA)
        self._release = self._redis.register_script(_RELEASE_LUA)
        self._refresh = self._redis.register_script(_REFRESH_LUA)
        self._seq = itertools.count(1)
        self._tokens: dict[bytes, str] = {}  # identity -> owner token of the local connection
        self._local: dict[bytes, BusPeer] = {}  # identity -> its connection here (from claim)
        self._claiming: set[str] = set()  # tokens whose owner-key SET has not completed
        self.subscriptions = BusSubscriptions(
            self._redis,
            cluster=self.cluster,
            on_message=self._handle,
            on_resubscribed=self._reread_all,
            failed=self.redis_failed,
        )
        self._reader: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._wakes = PendingWakes()
        self._waking: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failure_logged_at = -60.0
        #: Counters (tests, benchmarks, stats line).
        self.published = 0
        self.received = 0

    @property
    def resubscribes(self) -> int:
        """Times the subscriptions were made again after Redis went away."""
        return self.subscriptions.resubscribes

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check Redis answers, then start the reader; :class:`RedisUnavailable` otherwise."""
        try:
            await self._redis.ping()
            await self.subscriptions.open()
        except (RedisError, OSError) as exc:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            raise RedisUnavailable(
                f"cannot reach Redis for the node bus at {redacted(self.url)}: {exc}"
            ) from None
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self.subscriptions.read(), name="node-bus-reader")
        self._keeper = loop.create_task(self._keep_owners(), name="node-bus-owners")

    async def stop(self) -> None:
        """Stop reading and close the Redis connections."""
        for task in (self._reader, self._keeper, self._waking, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._reader, self._keeper, self._waking, *self._tasks) if t),
            return_exceptions=True,
        )
        await self.subscriptions.close()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _publish(self, channel: str, message: bytes) -> None:
        if self.cluster:
            await self._redis.spublish(channel, message)
        else:
            await self._redis.publish(channel, message)
        self.published += 1

    def redis_failed(self, what: str, exc: BaseException) -> None:
        """Log a Redis failure, at most one line a minute (no traceback)."""
        now = time.monotonic()
        if now - self._failure_logged_at >= 60.0:
            self._failure_logged_at = now
            self._log.warning("node bus: %s failed: %s", what, str(exc)[:200] or type(exc))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ connections (rule 2)

    async def claim(self, peer: BusPeer) -> None:
        """``peer`` authenticated on this node: subscribe to its channel, own the identity
        and tell the node holding its older connection (if any)."""
        identity = peer.identity
        token = f"{self.node_id}:{next(self._seq)}"
        self._tokens[identity] = token
        self._local[identity] = peer
        channel = bus_channel(identity)
        self._claiming.add(token)
        try:
            await self.subscriptions.join(channel, confirm=True)
            older = await self._redis.set(owner_key(identity), token, px=OWNER_TTL_MS, get=True)
            self._claiming.discard(token)
            # Always: an owner key lost with Redis's data must not leave two connections.
            replaced = b"" if older is None else bytes(older)
            await self._publish(channel, REPLACED + token.encode() + b"|" + replaced)
            if older is None:  # online on no node before: tell the watchers (a replacement
                # is no presence change)
                await self._publish(seen_channel(identity), PRESENCE + b"\x01")
        except RedisError as exc:
            self.redis_failed("claiming an identity", exc)
        finally:
            self._claiming.discard(token)

    async def release(self, peer: BusPeer) -> None:
        """``peer`` disconnected: drop its ownership (if it still has it) and subscription."""
        identity = peer.identity
        await self.subscriptions.leave(bus_channel(identity))  # one leave for the join of its claim
        if self._local.get(identity) is not peer:
            return  # a newer local connection of this identity took over: it owns the rest
        del self._local[identity]
        token = self._tokens.pop(identity, None)
        if token is None:
            return
        try:
            if await self._release(keys=[owner_key(identity)], args=[token]):
                await self._publish(seen_channel(identity), PRESENCE + b"\x00")
        except RedisError as exc:
            self.redis_failed("releasing an identity", exc)

    async def _keep_owners(self) -> None:
        while True:
            await asyncio.sleep(OWNER_TTL_MS / 3000)
            for identity, token in list(self._tokens.items()):
                if self._tokens.get(identity) != token:
                    continue  # it left meanwhile
                try:
                    await self._refresh(keys=[owner_key(identity)], args=[token, OWNER_TTL_MS])
                except RedisError as exc:
                    self.redis_failed("refreshing owner keys", exc)
                    break

    async def _replaced(self, identity: bytes, payload: bytes) -> None:
        newer, _, replaced = payload.partition(b"|")
        mine = self._tokens.get(identity)
        peer = self._local.get(identity)  # maybe still claiming: not in the registry yet
        if mine is None or peer is None or newer.decode(errors="replace") == mine:
            return
        if replaced:  # the newer connection's SET named the connection it replaced
            if replaced.decode(errors="replace") == mine:
                self._tokens.pop(identity, None)
                peer.replace()
            return  # not ours: a stale or racing message must not close a newer connection
        if mine in self._claiming:
            return  # our SET comes later and names the other connection as the replaced one
        try:
            owner = await self._redis.get(owner_key(identity))
        except RedisError as exc:
            self.redis_failed("reading an owner key", exc)
            return
        if owner is not None and owner.decode(errors="replace") == mine:
            return  # our SET came last: the other connection closes instead
        if self._local.get(identity) is peer and self._tokens.get(identity) == mine:
            self._tokens.pop(identity, None)
            peer.replace()

    # ------------------------------------------------------------------ wake-ups (rule 3)

    def wake(self, recipient: bytes, envelope: StoredEnvelope | None = None) -> None:
        """``envelope`` (None: something) was committed for ``recipient``, not connected
        here: wake the node that holds it, carrying the envelope when it fits
        (relay/node_wake.py). Batched: one publish per recipient per round."""
        self._wakes.add(recipient, envelope)
        if self._waking is None:
            self._waking = asyncio.get_running_loop().create_task(self._send_wakes())

    async def _send_wakes(self) -> None:
        failures = 0
        try:
            while self._wakes:
                batch = self._wakes.take()
                try:
                    if self.cluster:  # one shard per channel: publish to all at once
                        await asyncio.gather(
                            *(self._publish(bus_channel(r), message) for r, message in batch)
                        )
                    else:
                        async with self._redis.pipeline(transaction=False) as pipe:
                            for recipient, message in batch:
                                pipe.publish(bus_channel(recipient), message)
                            await pipe.execute()
                        self.published += len(batch)
                    failures = 0
                except RedisError as exc:
                    # A stale connection after a Redis restart fails once; a wake-up lost
                    # here would leave a committed envelope unread: retry a few times.
                    self.redis_failed("publishing wake-ups", exc)
                    failures += 1
                    if failures <= WAKE_RETRIES:
                        self._wakes.restore(batch)
                        await asyncio.sleep(RECONNECT_BASE_S * 2**failures)
        finally:
            self._waking = None

    # ------------------------------------------------------------------ ephemeral (rule 1)

    def signal(self, recipient: bytes, sender: bytes, body: bytes) -> None:
        """Forward a Signal to ``recipient`` on whatever node holds it (dropped if none)."""
        self._spawn(self._signal(recipient, SIGNAL + sender + body))

    async def _signal(self, recipient: bytes, message: bytes) -> None:
        try:
            await self._publish(bus_channel(recipient), message)
        except RedisError as exc:
            self.redis_failed("forwarding a signal", exc)

    def prekeys_low(self, owner: bytes, remaining: int) -> None:
        """Tell ``owner``, on whatever node holds it, that its one-time prekeys run low."""
        self._spawn(self._signal(owner, PREKEYS_LOW + max(0, remaining).to_bytes(4, "big")))

    # ------------------------------------------------------------------ presence (rule 4)

    async def watch(self, identities: Iterable[bytes]) -> set[bytes]:
        """Start hearing presence of ``identities``; return those online on any node."""
        wanted = list(identities)
        await self.subscriptions.join_many([seen_channel(identity) for identity in wanted])
        if not wanted:
            return set()
        try:
            keys = [owner_key(i) for i in wanted]
            if self.cluster:  # the keys live in many slots
                owners = await self._redis.mget_nonatomic(keys)
            else:
                owners = await self._redis.mget(keys)
        except RedisError as exc:
            self.redis_failed("reading presence", exc)
            return set()
        return {i for i, owner in zip(wanted, owners, strict=True) if owner is not None}

    async def unwatch(self, identities: Iterable[bytes]) -> None:
        """Stop hearing presence of ``identities`` (one watcher fewer each)."""
        await self.subscriptions.leave_many([seen_channel(identity) for identity in identities])

    # ------------------------------------------------------------------ rate limits (rule 5)

    async def bucket(
        self, key: str, rate_per_ms: float, burst: int, cost: float, reopen: float
    ) -> bool:
        """One step of the shared token bucket ``key``: spend ``cost`` (> 0) tokens, or False
        (a lease of exactly ``cost``)."""
        return await self.lease(key, rate_per_ms, burst, cost, cost, reopen) > 0

    async def lease(
        self, key: str, rate_per_ms: float, burst: int, least: float, want: float, reopen: float
    ) -> float:
        """Take between ``least`` and ``want`` tokens of the shared bucket ``key`` at once."""
        result = await self._lease(keys=[key], args=[rate_per_ms, burst, least, want, reopen])
        return float(result)

    async def refund(self, key: str, burst: int, tokens: float) -> None:
        """Give ``tokens`` back to the shared bucket ``key`` (capped at ``burst``)."""
        await self._refund(keys=[key], args=[burst, tokens])

    def _reread_all(self) -> None:
        """Rule 3: after a resubscription nothing published meanwhile is known: re-read.
        Redis may have lost data too (a restart without persistence): own again the
        identities connected here whose owner keys are gone."""
        for peer in list(self._peers.all_peers()):
            peer.reread()
        if self._tokens:
            self._spawn(self._reclaim_all())

    async def _reclaim_all(self) -> None:
        for identity, token in list(self._tokens.items()):
            try:
                await self._redis.set(owner_key(identity), token, px=OWNER_TTL_MS, nx=True)
            except RedisError as exc:
                self.redis_failed("re-owning identities", exc)
                return

    def _handle(self, message: dict[str, Any]) -> None:
        """A message on one of the subscribed channels (rules 1 to 4)."""
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        data = message.get("data")
        if not isinstance(data, bytes) or not data:
            return
        self.received += 1
        try:
            identity = bytes.fromhex(name[name.index("{") + 1 : name.index("}")])
        except ValueError:
            return
        tag, payload = data[:1], data[1:]
        if name.endswith(":seen"):
            if tag == PRESENCE and len(payload) == 1:
                self._peers.notify_presence(identity, online=payload[-1] == 1)
            return
        if tag == ENVELOPES:
            peer = self._peers.peer_for(identity)
            if peer is not None:
                envelopes = decode_envelopes(identity, payload)
                if envelopes is None:
                    peer.reread()
                    return
                for envelope in envelopes:
                    peer.offer(envelope)
                peer.offers_done()
        elif tag == WAKE:
            peer = self._peers.peer_for(identity)
            if peer is not None:
                peer.reread()
        elif tag == REPLACED:
            self._spawn(self._replaced(identity, payload))
        elif tag == PREKEYS_LOW and len(payload) == 4:
            peer = self._peers.peer_for(identity)
            if peer is not None:
                remaining = int.from_bytes(payload, "big")
                peer.try_send_frame(wire.Ok(ref=0, prekeys_remaining=remaining))
        elif tag == SIGNAL and len(payload) >= wire.KEY_LEN:
            peer = self._peers.peer_for(identity)
            if peer is not None:
                peer.try_send_frame(
                    wire.SignalDeliver(sender=payload[: wire.KEY_LEN], body=payload[wire.KEY_LEN :])
                )

"""The node bus's subscribing connection (relay/node_bus.py): channels counted by their local
users, subscribed on one pub/sub connection (standalone: SUBSCRIBE; Redis Cluster: sharded
SSUBSCRIBE on the shard of each channel's slot), read by one task, rebuilt after Redis went
away.

Every time the subscriptions are (re)made, and every time redis-py reconnects its pub/sub
connection by itself, ``on_resubscribed`` runs: messages published meanwhile are lost
(pub/sub is at-most-once), and the bus re-reads what they would have announced. Messages are
handed to ``on_message``; subscription confirmations complete the waiters of :meth:`join`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

#: Seconds a new connection waits for its channel subscription to be confirmed.
SUBSCRIBE_CONFIRM_S: Final = 2.0
#: Reader reconnect delays after Redis went away (seconds, first and ceiling).
RECONNECT_BASE_S: Final = 0.1
RECONNECT_MAX_S: Final = 5.0
#: Channels per SUBSCRIBE / UNSUBSCRIBE command (a watch list is up to 1,000 identities).
SUBSCRIBE_BATCH: Final = 100
#: Cluster mode: how long the reader waits on one shard's subscription connection per poll.
CLUSTER_POLL_S: Final = 0.002


class _BusPubSub(PubSub):
    """A PubSub that reports every connection it makes: redis-py reconnects and resubscribes
    by itself after a short outage, and the bus must then re-read (rule 3)."""

    def __init__(self, *args: Any, on_connected: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connected = on_connected

    async def on_connect(self, connection: Any) -> None:
        await super().on_connect(connection)
        self._on_connected()


class BusSubscriptions:
    """The channels this node listens to and the task reading them (module docstring)."""

    def __init__(
        self,
        redis: Any,
        *,
        cluster: bool,
        on_message: Callable[[dict[str, Any]], None],
        on_resubscribed: Callable[[], None],
        failed: Callable[[str, BaseException], None],
    ) -> None:
        self._redis = redis
        self.cluster = cluster
        self.on_message = on_message
        self._resubscribed_callback = on_resubscribed
        self._failed = failed
        self.channels: dict[str, int] = {}  # subscribed channel -> local users of it
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self.pubsub: Any = None
        #: The subscriptions must be rebuilt (the reader does it, with a backoff).
        self.broken = False
        #: Times the subscriptions were made again after Redis went away.
        self.resubscribes = 0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                await self.pubsub.aclose()

    def _resubscribed(self) -> None:
        self._resubscribed_callback()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("subscribe", "ssubscribe"):
            channel = message.get("channel")
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            waiter = self._confirm.get(name)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind in ("message", "smessage"):
            self.on_message(message)

    async def leave_many(self, channels: list[str]) -> None:
        """One local user fewer of each of ``channels``; unsubscribe those left unused."""
        gone = []
        for channel in channels:
            count = self.channels.get(channel, 0)
            if count > 1:
                self.channels[channel] = count - 1
            elif count:
                del self.channels[channel]
                gone.append(channel)
        for start in range(0, len(gone), SUBSCRIBE_BATCH):
            try:
                await self._unsub(*gone[start : start + SUBSCRIBE_BATCH])
            except (RedisError, OSError) as exc:
                self._failed("unsubscribing", exc)
                return

    async def open(self) -> None:
        """(Re)make the pub/sub connection and subscribe to every channel in use."""
        old, self.pubsub = self.pubsub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        if self.cluster:
            pubsub = self._redis.pubsub()
        else:
            pubsub = _BusPubSub(self._redis.connection_pool, on_connected=self._connected)
            # Connected before anyone subscribes: redis-py's PubSub takes its connection on
            # first use, and concurrent first uses (many clients authenticating at once) each
            # took one, subscribed on a connection the reader never read (no confirmation:
            # a rebuild that closed the connection under the other subscribers).
            await pubsub.connect()  # type: ignore[no-untyped-call]
        self.pubsub = pubsub
        channels = list(self.channels)
        if channels:
            await self._sub(*channels)

    def _connected(self) -> None:
        # redis-py reconnected the pubsub by itself (its first connection is made before
        # this callback is registered): publishes may have been missed meanwhile.
        self.resubscribes += 1
        asyncio.get_running_loop().call_soon(self._resubscribed)

    async def _sub(self, *channels: str) -> None:
        if self.pubsub is None:
            return  # being rebuilt: the rebuild subscribes to every channel in `channels`
        if self.cluster:
            await self.pubsub.ssubscribe(*channels)
        else:
            await self.pubsub.subscribe(*channels)

    async def _unsub(self, *channels: str) -> None:
        if self.pubsub is None:
            return  # being rebuilt without them (a stale one is harmless: nobody local)
        if self.cluster:
            await self.pubsub.sunsubscribe(*channels)
        else:
            await self.pubsub.unsubscribe(*channels)

    async def join_many(self, channels: list[str]) -> None:
        """Subscribe to ``channels`` (counted), in batches, without waiting for confirmations
        (presence: a late subscription only misses a change the MGET after it reads)."""
        new = []
        for channel in channels:
            count = self.channels.get(channel, 0)
            self.channels[channel] = count + 1
            if not count:
                new.append(channel)
        for start in range(0, len(new), SUBSCRIBE_BATCH):
            try:
                await self._sub(*new[start : start + SUBSCRIBE_BATCH])
            except (RedisError, OSError) as exc:
                self._failed("subscribing", exc)
                self.broken = True  # the reader rebuilds every subscription
                return

    async def join(self, channel: str, *, confirm: bool) -> None:
        """One local user more of ``channel``; subscribe if it is the first (``confirm``:
        and wait until Redis confirms, or mark the subscriptions for a rebuild)."""
        count = self.channels.get(channel, 0)
        self.channels[channel] = count + 1
        if count:
            return
        waiter: asyncio.Future[None] | None = None
        if confirm:
            waiter = asyncio.get_running_loop().create_future()
            self._confirm[channel] = waiter
        try:
            await self._sub(channel)
            if waiter is not None:
                await asyncio.wait_for(waiter, SUBSCRIBE_CONFIRM_S)
        except (RedisError, TimeoutError, OSError) as exc:
            # Not subscribed for sure: rebuild the subscriptions and re-read every local
            # mailbox (rule 3) rather than leave this connection without wake-ups.
            self._failed("subscribing", exc)
            self.broken = True
        finally:
            self._confirm.pop(channel, None)

    async def leave(self, channel: str) -> None:
        """One local user fewer of ``channel``; unsubscribe if it was the last."""
        count = self.channels.get(channel, 0)
        if count > 1:
            self.channels[channel] = count - 1
            return
        self.channels.pop(channel, None)
        if count:
            try:
                await self._unsub(channel)
            except (RedisError, OSError) as exc:
                self._failed("unsubscribing", exc)

    async def read(self) -> None:
        """Read and dispatch messages until cancelled, rebuilding after failures."""
        delay = RECONNECT_BASE_S
        while True:
            if self.broken:
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)
                try:
                    await self.open()
                except (RedisError, OSError) as exc:
                    self._failed("resubscribing", exc)
                    continue
                self.broken = False
                self.resubscribes += 1
                self._resubscribed()
                continue
            try:
                if self.cluster:
                    # redis-py polls the shards' connections one after the other, each for
                    # the timeout: keep it short (a message waits at most shards x this).
                    if not self.pubsub.node_pubsub_mapping:
                        await asyncio.sleep(CLUSTER_POLL_S)
                        continue
                    message = await self.pubsub.get_sharded_message(timeout=CLUSTER_POLL_S)
                    if message is not None:
                        self._dispatch(message)
                    delay = RECONNECT_BASE_S
                elif self.pubsub.subscribed:
                    message = await self.pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
                    delay = RECONNECT_BASE_S
                else:
                    await asyncio.sleep(0.01)
            except (RedisError, OSError) as exc:
                self._failed("reading the bus", exc)
                self.broken = True
            except RuntimeError as exc:
                if self.cluster and "connection not set" in str(exc):
                    # redis-py lists a shard's PubSub before its SSUBSCRIBE has connected
                    # it: poll again in a moment.
                    await asyncio.sleep(CLUSTER_POLL_S)
                    continue
                self._failed("reading the bus (unexpected)", exc)
                self.broken = True
            except Exception as exc:  # redis-py's own state went wrong: start over
                self._failed("reading the bus (unexpected)", exc)
                self.broken = True

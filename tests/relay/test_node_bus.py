"""The node bus (relay/node_bus.py) on a real redis-server: two buses stand in for two relay
nodes in one process, each with its own presence registry of local connections."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from messenger_tui.core import wire
from messenger_tui.relay.config import RateLimit
from messenger_tui.relay.node_bus import NodeBus
from messenger_tui.relay.node_redis import (
    LeasedBucket,
    RedisUnavailable,
    SharedLimiter,
    bus_channel,
    is_redis_url,
    redacted,
)
from messenger_tui.relay.presence import PresenceRegistry
from messenger_tui.relay.store import StoredEnvelope
from tests.helpers.ports import free_port
from tests.helpers.redis_process import RedisProcess

ALICE = b"a" * 32
BOB = b"b" * 32
log = logging.getLogger("test-node-bus")


class Conn:
    """A local authenticated connection as the registry and the bus see it."""

    def __init__(self, identity: bytes) -> None:
        self._identity = identity
        self.frames: list[wire.RelayFrame] = []
        self.replaced = asyncio.Event()
        self.rereads = 0
        self.reread_event = asyncio.Event()

    @property
    def identity(self) -> bytes:
        return self._identity

    def send_frame(self, frame: wire.RelayFrame) -> None:
        self.frames.append(frame)

    def try_send_frame(self, frame: wire.RelayFrame) -> bool:
        self.frames.append(frame)
        return True

    def congested(self) -> bool:
        return False

    def offer(self, envelope: StoredEnvelope) -> None:
        pass

    def offers_done(self) -> None:
        pass

    def replace(self) -> None:
        self.replaced.set()

    def reread(self) -> None:
        self.rereads += 1
        self.reread_event.set()


class Node:
    def __init__(self, url: str) -> None:
        self.presence = PresenceRegistry(notify_locally=False)
        self.bus = NodeBus(url, self.presence, log)

    async def connect(self, identity: bytes) -> Conn:
        conn = Conn(identity)
        await self.bus.claim(conn)
        older = self.presence.connect(conn)
        if older is not None:
            older.replace()
        return conn

    async def disconnect(self, conn: Conn) -> None:
        self.presence.disconnect(conn)
        await self.bus.release(conn)


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture
async def nodes(redis_server: RedisProcess) -> AsyncIterator[tuple[Node, Node]]:
    one, two = Node(redis_server.url), Node(redis_server.url)
    await one.bus.start()
    await two.bus.start()
    try:
        yield one, two
    finally:
        await one.bus.stop()
        await two.bus.stop()


async def wait_for(condition: object, timeout: float = 2.0) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


def test_store_urls() -> None:
    assert is_redis_url("redis://h:1/0") and is_redis_url("rediss+cluster://h:1")
    assert not is_redis_url("sqlite")
    assert redacted("redis://u:secret@h:6379/0") == "redis://u:***@h:6379/0"
    assert "secret" not in redacted("redis://:secret@h:6379")


async def test_a_node_without_redis_refuses_to_start_with_one_line() -> None:
    bus = NodeBus(f"redis://127.0.0.1:{free_port()}/0", PresenceRegistry(), log)
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        await bus.start()


async def test_a_newer_connection_on_another_node_replaces_the_older_within_a_second(
    nodes: tuple[Node, Node],
) -> None:
    one, two = nodes
    first = await one.connect(BOB)
    second = await two.connect(BOB)
    elapsed = await wait_for(first.replaced.is_set, timeout=1.0)
    assert elapsed < 1.0
    await asyncio.sleep(0.2)
    assert not second.replaced.is_set()
    # the replaced connection leaving does not take the identity's ownership with it
    await one.disconnect(first)
    watcher = await one.connect(ALICE)
    online = await one.bus.watch([BOB])
    assert online == {BOB}
    assert watcher.frames == []


async def test_two_connections_racing_on_two_nodes_end_with_exactly_one(
    nodes: tuple[Node, Node],
) -> None:
    one, two = nodes
    for _ in range(20):
        first, second = await asyncio.gather(one.connect(BOB), two.connect(BOB))
        await asyncio.sleep(0.3)
        survivors = [c for c in (first, second) if not c.replaced.is_set()]
        assert len(survivors) == 1, "exactly one of two racing connections survives"
        for node, conn in ((one, first), (two, second)):
            await node.disconnect(conn)


async def test_a_commit_on_one_node_wakes_the_recipient_on_the_other(
    nodes: tuple[Node, Node],
) -> None:
    one, two = nodes
    bob = await two.connect(BOB)
    await asyncio.sleep(0.05)
    bob.rereads = 0
    latencies = []
    for _ in range(200):
        bob.reread_event.clear()
        start = time.perf_counter()
        one.bus.wake(BOB)
        await asyncio.wait_for(bob.reread_event.wait(), 1.0)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"cross-node wake-up: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    assert bob.rereads == 200
    assert p99 < 0.1  # loopback; the benchmark reports the figure, this catches a stall


async def test_signals_cross_nodes_and_are_never_stored(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, two = nodes
    bob = await two.connect(BOB)
    one.bus.signal(BOB, ALICE, b"typing")
    await wait_for(lambda: bob.frames)
    assert bob.frames == [wire.SignalDeliver(sender=ALICE, body=b"typing")]
    # only owner keys and no copy of the signal live in Redis
    keys = redis_server.cli("--scan").split()
    assert all(key.endswith(":owner") for key in keys), keys


async def test_presence_crosses_nodes_and_a_replacement_is_no_change(
    nodes: tuple[Node, Node],
) -> None:
    one, two = nodes
    alice = await one.connect(ALICE)
    one.presence.subscribe(alice, [BOB])
    assert await one.bus.watch([BOB]) == set()
    bob = await two.connect(BOB)
    await wait_for(lambda: alice.frames)
    assert alice.frames == [wire.Presence(identity=BOB, online=True)]
    bob_again = await one.connect(BOB)  # a replacement: no presence change
    await wait_for(bob.replaced.is_set)
    await two.disconnect(bob)
    await asyncio.sleep(0.2)
    assert alice.frames == [wire.Presence(identity=BOB, online=True)]
    await one.disconnect(bob_again)
    await wait_for(lambda: len(alice.frames) == 2)
    assert alice.frames[1] == wire.Presence(identity=BOB, online=False)


async def test_a_shared_rate_limit_does_not_multiply_across_nodes(
    nodes: tuple[Node, Node],
) -> None:
    one, two = nodes
    limit = RateLimit(0.001, 50)  # 50 now, then practically nothing
    fallback_used: list[bytes] = []

    def fallback(key: bytes, tokens: float) -> bool:
        fallback_used.append(key)
        return True

    shared = [SharedLimiter(node.bus, "send", limit, fallback) for node in (one, two)]
    results = [await shared[i % 2].allow(ALICE) for i in range(200)]
    assert sum(results) == 50  # one budget for both nodes, not 50 each
    assert results[:50] == [True] * 50
    assert fallback_used == []
    assert await shared[0].allow(BOB)  # another key has its own bucket


async def test_a_leased_bucket_takes_leases_and_gives_back_what_it_did_not_spend(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, two = nodes
    limit = RateLimit(0.001, 640)  # lease size 640 // 32 = 20
    never: list[bytes] = []

    def fallback(key: bytes, tokens: float) -> bool:
        never.append(key)
        return True

    shared = [SharedLimiter(n.bus, "send", limit, fallback) for n in (one, two)]
    assert shared[0].lease_size == 20

    def scripts() -> int:
        stats = redis_server.cli("info", "commandstats")
        line = next((x for x in stats.splitlines() if x.startswith("cmdstat_evalsha:")), "")
        return int(line.split("calls=")[1].split(",")[0]) if line else 0

    assert await LeasedBucket(shared[0], b"w" * 32).allow()  # loads the script (one NOSCRIPT)
    first = LeasedBucket(shared[0], ALICE)
    before = scripts()
    assert all([await first.allow() for _ in range(205)])
    assert scripts() - before == 11  # one script call per 20 sends, not one per send
    assert first.credit == 15  # 11 leases of 20, 205 spent
    # The identity moves to node 2 while node 1 still holds credit: one budget all the same.
    second = LeasedBucket(shared[1], ALICE)
    assert all([await second.allow() for _ in range(300)])
    await first.close()  # node 1's connection closes: its 15 unspent tokens go back
    assert first.credit == 0
    # The burst once: 205 spent on node 1, the rest on node 2 (node 1's lease included).
    assert sum([await second.allow() for _ in range(300)]) == 640 - 205 - 300
    assert never == []  # Redis answered every time: no fallback to a node's own bucket
    # A send costing more than a lease (SendMulti to many) takes it in one call.
    third = LeasedBucket(shared[0], BOB)
    assert await third.allow(50) and third.credit == 0


async def test_a_redis_restart_resubscribes_and_rereads_every_local_mailbox(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, two = nodes
    bob = await two.connect(BOB)
    carol = await two.connect(b"c" * 32)
    bob.rereads = carol.rereads = 0
    redis_server.kill()
    await asyncio.sleep(0.3)
    redis_server.restart()
    await wait_for(lambda: two.bus.resubscribes >= 1, timeout=10.0)
    assert bob.rereads >= 1 and carol.rereads >= 1  # nothing published meanwhile is lost
    # the other node (no local connection, so nothing to resubscribe) publishes again
    bob.rereads = 0
    one.bus.wake(BOB)
    await wait_for(lambda: bob.rereads >= 1)


async def test_on_a_three_master_cluster_the_bus_uses_sharded_channels() -> None:
    from tests.helpers.redis_process import RedisClusterProcess

    with RedisClusterProcess(masters=3) as cluster:
        url = cluster.url.replace("redis://", "redis+cluster://", 1)
        one, two = Node(url), Node(url)
        await one.bus.start()
        await two.bus.start()
        try:
            assert one.bus.cluster and two.bus.cluster
            identities = [bytes([i]) * 32 for i in range(1, 13)]  # spread over the shards
            conns = [await two.connect(identity) for identity in identities]
            for conn in conns:
                conn.rereads = 0
            started = time.perf_counter()
            for identity in identities:
                one.bus.wake(identity)
            await wait_for(lambda: all(c.rereads for c in conns))
            elapsed_ms = (time.perf_counter() - started) * 1e3
            print(f"cluster: 12 wake-ups over 3 shards in {elapsed_ms:.1f} ms")
            one.bus.signal(identities[0], ALICE, b"typing")
            await wait_for(lambda: conns[0].frames)
            assert conns[0].frames == [wire.SignalDeliver(sender=ALICE, body=b"typing")]
            newer = await one.connect(identities[5])
            await wait_for(conns[5].replaced.is_set, timeout=1.0)
            assert not newer.replaced.is_set()
            assert await one.bus.watch(identities[:3]) == set(identities[:3])
            # sharded: the channel's subscription lives on exactly one shard, its slot's
            channel = bus_channel(identities[1])
            counts = [
                int(node.cli("pubsub", "shardnumsub", channel).split()[-1])
                for node in cluster.nodes
            ]
            assert sorted(counts) == [0, 0, 1], counts
            limiter = SharedLimiter(one.bus, "send", RateLimit(0.001, 5), lambda k, t: True)
            assert [await limiter.allow(ALICE) for _ in range(7)] == [True] * 5 + [False] * 2
        finally:
            await one.bus.stop()
            await two.bus.stop()


async def test_a_local_replacement_leaves_no_subscription_behind(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, _ = nodes
    first = await one.connect(BOB)
    second = await one.connect(BOB)  # same node: the registry replaces the first
    assert first.replaced.is_set() and not second.replaced.is_set()
    channel = bus_channel(BOB)
    assert redis_server.cli("pubsub", "numsub", channel).split()[-1] == "1"
    await one.disconnect(first)
    await asyncio.sleep(0.1)
    assert redis_server.cli("pubsub", "numsub", channel).split()[-1] == "1"  # still second's
    await one.disconnect(second)
    await wait_for(lambda: redis_server.cli("pubsub", "numsub", channel).split()[-1] == "0")
    assert redis_server.cli("exists", f"mt:{{{BOB.hex()}}}:owner").strip() == "0"


async def test_an_owner_key_lost_with_redis_data_still_leaves_one_connection(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, two = nodes
    first = await one.connect(BOB)
    redis_server.cli("flushall")  # Redis lost its data (no persistence)
    await two.connect(BOB)
    await wait_for(first.replaced.is_set, timeout=1.0)


async def test_connections_come_and_go_while_redis_is_down(
    nodes: tuple[Node, Node], redis_server: RedisProcess
) -> None:
    one, two = nodes
    bob = await two.connect(BOB)
    redis_server.kill()
    # The reader notices and rebuilds its subscription connection, failing while Redis is
    # down: leaving and joining meanwhile must neither raise nor be forgotten.
    await wait_for(lambda: two.bus.subscriptions.pubsub is None, timeout=10.0)
    await two.disconnect(bob)
    carol = await two.connect(b"c" * 32)
    redis_server.restart()
    await wait_for(
        lambda: two.bus.resubscribes >= 1 and two.bus.subscriptions.pubsub is not None, 10.0
    )
    carol.rereads = 0
    await wait_for(lambda: bool(two.bus.subscriptions.pubsub.subscribed))
    one.bus.wake(carol.identity)
    await wait_for(lambda: carol.rereads >= 1, timeout=5.0)

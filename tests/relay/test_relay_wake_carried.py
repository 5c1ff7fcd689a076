"""Wake-ups that carry their envelopes (relay/node_wake.py), on the wire: two relay nodes in
one process on a real redis-server (the Redis store and the node bus). Node 2 delivers what
node 1 committed from the wake-up itself, without reading the mailbox; wake-ups dropped on
node 2 (pub/sub is at-most-once) are made good by the next wake-up's re-read or by the re-read
on resubscription, so the recipient still gets every envelope exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from messenger_tui.core import wire
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.node_bus import NodeBus
from messenger_tui.relay.node_wake import ENVELOPES, WAKE, WAKE_PAYLOAD_MAX
from messenger_tui.relay.server import RelayServer
from messenger_tui.relay.store import RelayStore
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_wire_client import WireClient, new_id


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_server: RedisProcess
) -> AsyncIterator[tuple[RelayServer, RelayServer]]:
    servers = []
    for name in ("n1", "n2"):
        (tmp_path / name).mkdir(mode=0o700)
        config = RelayConfig(
            data_dir=tmp_path / name,
            store_url=redis_server.url,
            send_limit=RateLimit(1e6, 1_000_000),
            address_send_limit=None,
            address_auth_limit=None,
            max_connections_per_address=0,
        )
        servers.append(RelayServer(config))
    started: list[RelayServer] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
        yield servers[0], servers[1]
    finally:
        for server in started:
            await server.stop()


class CountedReads:
    """Counts the mailbox reads of one node's store."""

    def __init__(self, store: RelayStore) -> None:
        self.reads = 0
        fetch_after = store.fetch_after

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return await fetch_after(*args, **kwargs)

        store.fetch_after = counted  # type: ignore[method-assign]


class DroppingBus:
    """Drops wake-ups (``E`` and ``W``) that node 2's bus receives, as pub/sub may."""

    def __init__(self, bus: NodeBus) -> None:
        self.seen = 0
        self.dropped = 0
        self.drop_every = 0  # drop every n-th wake-up (0: none)
        self.drop_all = False
        handle = bus.subscriptions.on_message

        def dropping(message: dict[str, Any]) -> None:
            data = message.get("data")
            is_wakeup = isinstance(data, bytes) and data[:1] in (ENVELOPES, WAKE)
            if message.get("type") == "message" and is_wakeup:
                self.seen += 1
                if self.drop_all or (self.drop_every and self.seen % self.drop_every == 0):
                    self.dropped += 1
                    return
            handle(message)

        bus.subscriptions.on_message = dropping


async def deliveries(client: WireClient, count: int, timeout: float = 10.0) -> list[wire.Deliver]:
    """The next ``count`` deliveries (acked as they come; Drained frames skipped)."""
    out: list[wire.Deliver] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            frame = await client.recv()
            if isinstance(frame, wire.Deliver):
                out.append(frame)
                await client.send(wire.Ack(ids=[frame.id]))
    return out


async def connected(one: RelayServer, two: RelayServer) -> tuple[WireClient, WireClient]:
    alice = await WireClient.connect(one.url)
    bob = await WireClient.connect(two.url)
    await alice.expect(wire.Drained)
    await bob.expect(wire.Drained)
    return alice, bob


async def test_a_carried_wakeup_is_delivered_without_reading_the_mailbox(
    two_nodes: tuple[RelayServer, RelayServer],
) -> None:
    one, two = two_nodes
    alice, bob = await connected(one, two)
    reads = CountedReads(two.services.store)
    for _ in range(20):
        msg_id = new_id()
        await alice.send(wire.Send(id=msg_id, to=bob.identity, body=b"hello"))
        [delivered] = await deliveries(bob, 1)
        assert delivered.id == msg_id and delivered.sender == alice.identity
        assert delivered.body == b"hello"
    assert reads.reads == 0
    # Above the bound the wake-up is a plain one: node 2 reads the mailbox.
    big = b"x" * (WAKE_PAYLOAD_MAX + 1)
    msg_id = new_id()
    await alice.send(wire.Send(id=msg_id, to=bob.identity, body=big))
    [delivered] = await deliveries(bob, 1)
    assert (delivered.id, delivered.body) == (msg_id, big)
    assert reads.reads >= 1
    await alice.close()
    await bob.close()


async def test_lost_wakeups_still_deliver_everything_once_in_order(
    two_nodes: tuple[RelayServer, RelayServer], redis_server: RedisProcess
) -> None:
    one, two = two_nodes
    alice, bob = await connected(one, two)
    assert two.services.nodes is not None
    drops = DroppingBus(two.services.nodes)
    drops.drop_every = 3
    sent = []
    for _ in range(60):  # one at a time: (mostly) one wake-up per commit
        sent.append(new_id())
        await alice.send(wire.Send(id=sent[-1], to=bob.identity, body=b"m"))
        await alice.expect(wire.Stored)
    drops.drop_every = 0  # the next wake-up arrives: its re-read finds any dropped before
    sent.append(new_id())
    await alice.send(wire.Send(id=sent[-1], to=bob.identity, body=b"m"))
    await alice.expect(wire.Stored)
    got = await deliveries(bob, 61)
    assert drops.dropped >= 10
    assert [d.id for d in got] == sent  # each once, in order
    # The last one's wake-up is lost too: only the re-read on resubscription finds it.
    drops.drop_all = True
    sent.append(new_id())
    await alice.send(wire.Send(id=sent[-1], to=bob.identity, body=b"last"))
    await alice.expect(wire.Stored)
    assert not [f for f in await bob.nothing_for(0.3) if isinstance(f, wire.Deliver)]
    drops.drop_all = False
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.client_kill_filter(_type="pubsub")  # node 2's subscriptions drop
    finally:
        await client.aclose()
    [last] = await deliveries(bob, 1)
    assert last.id == sent[-1]
    assert not [f for f in await bob.nothing_for(0.3) if isinstance(f, wire.Deliver)]
    await alice.close()
    await bob.close()

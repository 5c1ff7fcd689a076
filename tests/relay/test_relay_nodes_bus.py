"""Two relay nodes in one process, wired through the node bus on a real redis-server.

The nodes share one store object (SQLite here, standing in for the shared Redis store, which
tests/integration/test_relay_nodes.py uses with relay processes once it exists): what is
shown is the wiring of relay/node_bus.py into the server and session, frame by frame on the
wire: one connection per identity across nodes (4000 within a second), a send on node 1 wakes
the recipient on node 2, typing and presence cross nodes, and the per-identity send limit is
one budget across nodes.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from messenger_tui.core import wire
from messenger_tui.core.close_codes import CLOSE_REPLACED
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.relay_key import SEED_FILE, load_or_create_relay_key
from messenger_tui.relay.server import RelayServer
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import RelayStore
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key


class SharedStore:
    """One store used by both nodes; only the test closes it."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def close(self) -> None:
        pass


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_server: RedisProcess
) -> AsyncIterator[tuple[RelayServer, RelayServer]]:
    store = await SqliteStore.open(tmp_path / "shared.db")
    for name in ("n1", "n2"):
        (tmp_path / name).mkdir(mode=0o700)
    load_or_create_relay_key(tmp_path / "n1")
    shutil.copy(tmp_path / "n1" / SEED_FILE, tmp_path / "n2" / SEED_FILE)
    servers = [
        RelayServer(
            RelayConfig(
                data_dir=tmp_path / name,
                store_url=redis_server.url,
                send_limit=RateLimit(0.01, 300),
                address_send_limit=None,
                address_auth_limit=None,
                max_connections_per_address=0,
            ),
            store=cast(RelayStore, SharedStore(store)),
        )
        for name in ("n1", "n2")
    ]
    for server in servers:
        await server.start()
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.stop()
        await store.close()


async def test_one_identity_on_two_nodes_ends_with_one_connection_within_a_second(
    two_nodes: tuple[RelayServer, RelayServer],
) -> None:
    one, two = two_nodes
    key = new_key()
    first = await WireClient.connect(one.url, key)
    await first.expect(wire.Drained)
    started = time.monotonic()
    second = await WireClient.connect(two.url, key)
    assert await first.wait_closed(timeout=1.0) == CLOSE_REPLACED
    assert time.monotonic() - started < 1.0
    await second.expect(wire.Drained)
    assert await second.nothing_for(0.3) == []  # the survivor stays
    await second.close()


async def test_a_send_on_one_node_is_delivered_at_once_on_the_other(
    two_nodes: tuple[RelayServer, RelayServer],
) -> None:
    one, two = two_nodes
    alice = await WireClient.connect(one.url)
    bob = await WireClient.connect(two.url)
    await alice.expect(wire.Drained)
    await bob.expect(wire.Drained)
    latencies = []
    for index in range(100):
        msg_id = new_id()
        start = time.perf_counter()
        await alice.send(wire.Send(id=msg_id, to=bob.identity, body=b"%d" % index))
        delivered, before = await bob.recv_until(wire.Deliver, timeout=2.0)
        latencies.append(time.perf_counter() - start)
        assert all(isinstance(f, wire.Drained) for f in before), before
        assert delivered.id == msg_id and delivered.body == b"%d" % index
        await bob.send(wire.Ack(ids=[msg_id]))
        await alice.expect(wire.Stored)
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[98]
    print(f"send on node 1 -> Deliver on node 2: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    assert p99 < 0.5  # a missed wake-up would wait for a reconnect: seconds
    await alice.close()
    await bob.close()


async def test_typing_and_presence_cross_nodes_and_nothing_is_stored(
    two_nodes: tuple[RelayServer, RelayServer],
) -> None:
    one, two = two_nodes
    alice = await WireClient.connect(one.url)
    await alice.expect(wire.Drained)
    bob_key = new_key()
    await alice.send(wire.Subscribe(identities=[bytes(bob_key.verify_key)]))
    assert await alice.expect(wire.Presence) == wire.Presence(
        identity=bytes(bob_key.verify_key), online=False
    )
    bob = await WireClient.connect(two.url, bob_key)
    await bob.expect(wire.Drained)
    assert await alice.expect(wire.Presence, timeout=2.0) == wire.Presence(
        identity=bob.identity, online=True
    )
    await alice.send(wire.Signal(to=bob.identity, body=b"typing"))
    assert await bob.expect(wire.SignalDeliver, timeout=2.0) == wire.SignalDeliver(
        sender=alice.identity, body=b"typing"
    )
    assert await one.services.store.count(bob.identity, now_ms=0) == 0  # never stored
    await bob.close()
    assert await alice.expect(wire.Presence, timeout=2.0) == wire.Presence(
        identity=bob.identity, online=False
    )
    await alice.close()


async def test_the_send_limit_is_one_budget_across_nodes(
    two_nodes: tuple[RelayServer, RelayServer],
) -> None:
    one, two = two_nodes
    key = new_key()
    bob = new_key()
    stored = 0
    for node in (one, two, one):  # hop between nodes: each hop would refill a local bucket
        alice = await WireClient.connect(node.url, key)
        await alice.expect(wire.Drained)
        for _ in range(200):
            await alice.send(wire.Send(id=new_id(), to=bytes(bob.verify_key), body=b"x"))
        for _ in range(200):
            frame = await alice.recv(timeout=5.0)
            stored += isinstance(frame, wire.Stored)
        await alice.close()
        await asyncio.sleep(0.1)
    assert stored == 300  # the burst, once: not 300 per node


async def test_redis_operations_per_cross_node_message_are_bounded(
    two_nodes: tuple[RelayServer, RelayServer], redis_server: RedisProcess
) -> None:
    one, two = two_nodes
    alice = await WireClient.connect(one.url)
    bob = await WireClient.connect(two.url)
    await alice.expect(wire.Drained)
    await bob.expect(wire.Drained)

    def calls() -> dict[str, int]:
        out = {}
        for line in redis_server.cli("info", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line[len("cmdstat_") :].partition(":")
                out[name] = int(rest.split(",")[0].split("=")[1])
        return out

    count = 300
    before = calls()
    for index in range(count):
        await alice.send(wire.Send(id=new_id(), to=bob.identity, body=b"%d" % index))
    got = 0
    while got < count:
        frame = await bob.recv(timeout=5.0)
        if isinstance(frame, wire.Deliver):
            got += 1
            await bob.send(wire.Ack(ids=[frame.id]))
    after = calls()
    delta = {name: n - before.get(name, 0) for name, n in after.items()}
    delta = {name: n for name, n in delta.items() if n and name != "info"}
    inside = {"time", "hmget", "hset", "pexpire"}  # run by the token-bucket script
    trips = sum(n for name, n in delta.items() if name not in inside)
    executed = sum(delta.values())
    print(
        f"node bus per cross-node message: {trips / count:.2f} round trips, "
        f"{executed / count:.2f} commands executed ({delta})"
    )
    # At most one wake-up per message, and the shared send limit's script once per lease
    # (300 // 32 = 9 tokens here), not once per send.
    assert trips <= count + count // 8
    assert executed <= 2 * count
    await alice.close()
    await bob.close()


async def test_a_node_without_redis_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    from messenger_tui.relay.errors import RelayStartError
    from tests.helpers.ports import free_port

    config = RelayConfig(data_dir=tmp_path / "n", store_url=f"redis://127.0.0.1:{free_port()}/0")
    server = RelayServer(config)
    with pytest.raises(RelayStartError, match="cannot reach Redis") as raised:
        await server.start()
    assert "\n" not in str(raised.value)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_a_redis_restart_loses_no_wake_up(
    two_nodes: tuple[RelayServer, RelayServer], redis_server: RedisProcess
) -> None:
    one, two = two_nodes
    alice = await WireClient.connect(one.url)
    bob = await WireClient.connect(two.url)
    await alice.expect(wire.Drained)
    await bob.expect(wire.Drained)
    redis_server.kill()
    sent = [new_id() for _ in range(20)]
    for msg_id in sent:  # committed while the bus is down: their wake-ups fail
        await alice.send(wire.Send(id=msg_id, to=bob.identity, body=b"during"))
    for _ in sent:
        await alice.expect(wire.Stored, timeout=5.0)  # the limit falls back to the node's
    await asyncio.sleep(0.5)
    redis_server.restart()
    delivered: list[bytes] = []
    deadline = time.monotonic() + 15
    while len(delivered) < len(sent):
        assert time.monotonic() < deadline, f"{len(delivered)} of {len(sent)} delivered"
        frame = await bob.recv(timeout=15)
        if isinstance(frame, wire.Deliver):
            delivered.append(frame.id)
            await bob.send(wire.Ack(ids=[frame.id]))
    assert delivered == sent
    await alice.close()
    await bob.close()

"""A Redis Cluster slot migration under the relay (a real three-master cluster).

While a slot moves (``CLUSTER SETSLOT ... MIGRATING / IMPORTING`` and ``MIGRATE`` key by
key), Redis answers a command on a key already moved with ``ASK`` (the client library asks the
target) and a multi-key command (the relay's Lua scripts) whose keys are split between the two
nodes with ``TRYAGAIN``. The relay follows ``ASK``; a ``TRYAGAIN`` that outlasts the client
library's retries closes the session with 1013 (try again later), one warning line and no
traceback, and once the slot has moved (``MOVED``) the client reconnects and gets everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from messenger_tui.core import wire
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.redis_keys import seen_key, verifier_key
from messenger_tui.relay.redis_store import RedisStore
from messenger_tui.relay.server import RelayServer
from tests.helpers.redis_process import RedisClusterProcess, RedisProcess
from tests.helpers.relay_wire_client import WireClient, make_auth, new_id, new_key

pytestmark = pytest.mark.slow

CLOSE_TRY_AGAIN = 1013


@dataclass
class Master:
    process: RedisProcess
    node_id: str
    client: redis.Redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProcess]:
    with RedisClusterProcess(masters=3) as running:
        yield running


def command(client: redis.Redis, *args: object) -> Any:
    """One Redis command, its reply as redis-py parses it."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def masters(cluster: RedisClusterProcess) -> list[Master]:
    out = []
    for process in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=process.port)
        node_id = command(client, "CLUSTER", "MYID")
        out.append(Master(process, node_id.decode(), client))
    return out


def slot_of(cluster: RedisClusterProcess, identity: bytes) -> int:
    return int(cluster.nodes[0].cli("cluster", "keyslot", "{" + identity.hex() + "}"))


def owner_of(cluster: RedisClusterProcess, all_masters: list[Master], slot: int) -> Master:
    for line in cluster.nodes[0].cli("cluster", "nodes").splitlines():
        node_id, *fields = line.split()
        for part in fields[7:]:
            first, _, last = part.partition("-")
            if first.isdigit() and int(first) <= slot <= int(last or first):
                return next(m for m in all_masters if m.node_id == node_id)
    raise AssertionError(f"no master owns slot {slot}")


class Migration:
    """Moving one slot from its owner to another master, step by step."""

    def __init__(self, cluster: RedisClusterProcess, slot: int) -> None:
        self.masters = all_masters = masters(cluster)
        self.slot = slot
        self.source = owner_of(cluster, all_masters, slot)
        self.target = next(m for m in all_masters if m is not self.source)

    def begin(self) -> None:
        command(
            self.target.client, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id
        )
        command(
            self.source.client, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id
        )

    def move(self, *keys: str) -> None:
        port = self.target.process.port
        command(self.source.client, "MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)

    def keys_left(self) -> list[str]:
        names = command(self.source.client, "CLUSTER", "GETKEYSINSLOT", self.slot, 1000)
        return [n.decode() for n in names]

    def finish(self) -> None:
        left = self.keys_left()
        if left:
            self.move(*left)
        for master in (self.target, self.source, *self.masters):
            command(master.client, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)


@pytest.fixture
async def relay(cluster: RedisClusterProcess, tmp_path: Path) -> AsyncIterator[RelayServer]:
    config = RelayConfig(
        data_dir=tmp_path / "node",
        store_url=cluster.url.replace("redis://", "redis+cluster://", 1),
        send_limit=RateLimit(1e6, 1_000_000),
        address_send_limit=None,
        address_auth_limit=None,
        max_connections_per_address=0,
    )
    config.data_dir.mkdir(mode=0o700)
    server = RelayServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_ask_during_a_slot_migration_is_followed(cluster: RedisClusterProcess) -> None:
    carol = new_key()
    identity = bytes(carol.verify_key)
    migration = Migration(cluster, slot_of(cluster, identity))
    store = await RedisStore.open(cluster.url, cluster=True)
    try:
        await store.record_identity(identity, now_ms=1)
        await store.set_delivery_verifier(identity, b"v" * 32, now_ms=1)
        migration.begin()
        migration.move(seen_key(identity))  # moved: the source answers ASK
        assert migration.keys_left() == [verifier_key(identity)]
        assert await store.identity_known(identity)  # followed to the target
        await store.set_delivery_verifier(identity, b"w" * 32, now_ms=2)  # still the source
        await store.record_identity(identity, now_ms=3)  # NX on the moved key, via ASK
        migration.finish()
        assert await store.identity_known(identity)  # MOVED now, followed too
        target = migration.target.client
        assert command(target, "CLUSTER", "COUNTKEYSINSLOT", migration.slot) == 2
    finally:
        await store.close()


async def test_tryagain_closes_the_session_with_a_retry_code_and_nothing_is_lost(
    cluster: RedisClusterProcess, relay: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    bob_key = new_key()
    bob_identity = bytes(bob_key.verify_key)
    alice = await WireClient.connect(relay.url)
    await alice.expect(wire.Drained)
    ids = [new_id() for _ in range(5)]
    for msg_id in ids:
        await alice.send(wire.Send(id=msg_id, to=bob_identity, body=b"queued"))
        await alice.expect(wire.Stored)
    migration = Migration(cluster, slot_of(cluster, bob_identity))
    migration.begin()
    queue = "mt:{" + bob_identity.hex() + "}:q"
    assert queue in migration.keys_left()
    migration.move(queue)  # bob's mailbox is split between two nodes: scripts get TRYAGAIN
    bob = await WireClient.connect(relay.url, bob_key, auth=False)
    await bob.send(make_auth(bob_key, bob.challenge))
    assert await bob.wait_closed(timeout=20.0) == CLOSE_TRY_AGAIN
    assert "storage unavailable" in caplog.text
    assert "Traceback" not in caplog.text and "Error in" not in caplog.text
    migration.finish()
    bob = await WireClient.connect(relay.url, bob_key)  # the client's reconnect
    delivered = await bob.drain_deliveries()
    assert [d.id for d in delivered] == ids
    await bob.send(wire.Ack(ids=ids))
    await alice.close()
    await bob.close()

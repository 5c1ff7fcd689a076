"""What is the Redis backend's own: the store tests again over a three-master Redis Cluster,
one-slot keys per recipient, one-time prekeys handed out once under concurrency, the relay
key shared by the nodes, the ``--store`` start-up checks, and a Redis SIGKILLed mid-burst
(AOF appendfsync always) losing nothing the relay acknowledged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nacl.signing
import pytest
from redis.crc import key_slot
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from messenger_tui.relay import redis_keys
from messenger_tui.relay.store import RelayStore, StoredOneTimePrekey, StoredSignedPrekey
from messenger_tui.relay.store_url import parse_store_url
from tests.helpers.redis_process import RedisClusterProcess, RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key
from tests.relay.conftest import open_redis_store

# The store tests, run again below over the cluster (the module's own `store` fixture).
from tests.relay.test_group_grants import (  # noqa: F401
    test_granted_envelope_counts_as_a_contacts,
    test_grants_replace_and_look_up,
)
from tests.relay.test_relay_fanout_store import (  # noqa: F401
    test_ack_deletes_reference_then_body_with_the_last,
    test_one_body_row_for_100_recipients,
    test_quotas_apply_per_recipient,
)
from tests.relay.test_relay_sqlite_store import (  # noqa: F401
    test_ack_deletes_only_from_own_mailbox,
    test_duplicate_keeps_original_position_body_and_time,
    test_each_one_time_prekey_is_taken_once,
    test_expired_envelopes_are_never_fetched_and_get_purged,
    test_fetch_after_cursor_and_limit,
    test_insert_then_fetch_in_order,
    test_mailbox_bound,
    test_one_time_prekey_bound_and_duplicate_ids,
    test_signed_prekey_replaced,
)

pytestmark = pytest.mark.slow

ALICE, BOB = (bytes([n]) * 32 for n in (1, 2))


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterProcess]:
    with RedisClusterProcess(masters=3) as cluster:
        yield cluster


@pytest.fixture
async def store(redis_cluster: RedisClusterProcess) -> AsyncIterator[RelayStore]:
    """The imported store tests run over the cluster here."""
    url = redis_cluster.url.replace("redis://", "redis+cluster://", 1)
    s = await open_redis_store(parse_store_url(url).redis_url or "", cluster=True)
    try:
        yield s
    finally:
        await s.close()


def test_every_key_of_a_recipient_is_in_one_slot() -> None:
    for identity in (ALICE, BOB, os.urandom(32)):
        names = [
            *redis_keys.mailbox_keys(identity).all(),
            redis_keys.verifier_key(identity),
            redis_keys.seen_key(identity),
            *redis_keys.prekey_keys(identity),
        ]
        assert len({key_slot(n.encode()) for n in names}) == 1, names


async def test_concurrent_fetches_hand_each_one_time_prekey_out_once(
    redis_server: RedisProcess,
) -> None:
    nodes = [await open_redis_store(redis_server.url) for _ in range(2)]  # two relay nodes
    try:
        published = [StoredOneTimePrekey(i, os.urandom(32)) for i in range(40)]
        spk = StoredSignedPrekey(1, b"\x05" * 32, b"\x06" * 64)
        await nodes[0].put_prekeys(ALICE, spk, published, max_one_time=200, now_ms=1)
        bundles = await asyncio.gather(*(nodes[i % 2].take_bundle(ALICE) for i in range(100)))
        handed = [b.one_time for b in bundles if b is not None and b.one_time is not None]
        assert len(handed) == 40 and {o.opk_id for o in handed} == set(range(40))
        assert (await nodes[1].prekey_status(ALICE)).one_time_remaining == 0
    finally:
        for node in nodes:
            await node.close()


def _relay_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "messenger_tui.relay", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_store_url_and_unreachable_or_volatile_redis_are_refused(tmp_path: Path) -> None:
    bad = _relay_cmd("--data", str(tmp_path / "a"), "--store", "mysql://x")
    assert bad.returncode == 2 and "--store mysql://...: expected sqlite" in bad.stderr
    down = _relay_cmd("--data", str(tmp_path / "b"), "--store", "redis://127.0.0.1:1/0")
    assert down.returncode == 1
    assert down.stderr.splitlines()[-1].startswith(
        "error: cannot reach Redis at 127.0.0.1:1: ConnectionError"
    ), down.stderr
    assert "Traceback" not in down.stderr
    with RedisProcess(appendfsync="everysec") as volatile:
        refused = _relay_cmd("--data", str(tmp_path / "c"), "--store", volatile.url)
        assert refused.returncode == 1
        assert "appendfsync everysec" in refused.stderr and "Traceback" not in refused.stderr
        assert "--accept-volatile-store" in refused.stderr
        with RelayProcess(
            tmp_path / "d", store=volatile.url, extra_args=["--accept-volatile-store"]
        ) as relay:
            assert relay.running


def test_nodes_on_one_redis_share_the_relay_key(redis_server: RedisProcess, tmp_path: Path) -> None:
    with (
        RelayProcess(tmp_path / "n1", store=redis_server.url) as one,
        RelayProcess(tmp_path / "n2", store=redis_server.url) as two,
    ):
        assert one.relay_key == two.relay_key


async def _send_round(
    url: str,
    key: nacl.signing.SigningKey,
    to: bytes,
    pending: dict[bytes, bytes],
    stored: set[bytes],
) -> None:
    """Send every pending envelope on a new connection; move the Stored ones to ``stored``.
    Errors (the store is down) and a closed connection leave them pending for the next
    round, as a client resends what was not acknowledged."""
    try:
        client = await WireClient.connect(url, key, timeout=5)
    except (OSError, ConnectionClosed, AssertionError, TimeoutError):
        await asyncio.sleep(0.2)
        return
    try:
        await client.recv_until(wire.Drained, timeout=10)
        batch = list(pending.items())
        for msg_id, body in batch:
            await client.send(wire.Send(id=msg_id, to=to, body=body))
        answered = 0
        while answered < len(batch):
            frame = await client.recv(timeout=10)
            if isinstance(frame, wire.Stored):
                stored.add(frame.id)
                pending.pop(frame.id, None)
                answered += 1
            elif isinstance(frame, wire.Error) and isinstance(frame.ref, bytes):
                answered += 1  # stays pending: resent next round
    except (ConnectionClosed, TimeoutError):
        pass
    finally:
        await client.close()


async def test_redis_sigkilled_mid_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with (
        RedisProcess(tmp_path / "redis") as redis,
        RelayProcess(tmp_path / "relay", store=redis.url) as relay,
    ):
        alice, bob = new_key(), new_key()
        total = 2000
        order = [new_id() for _ in range(total)]
        pending = {msg_id: b"envelope %d" % i for i, msg_id in enumerate(order)}
        stored: set[bytes] = set()
        killed = threading.Event()

        def crash_when_half_stored() -> None:
            while len(stored) < total // 2:
                if not pending:
                    return
                threading.Event().wait(0.005)
            redis.kill()
            killed.set()
            threading.Event().wait(0.5)
            redis.start()

        crasher = threading.Thread(target=crash_when_half_stored)
        crasher.start()
        try:
            for _ in range(20):
                if not pending:
                    break
                await _send_round(relay.url, alice, bytes(bob.verify_key), pending, stored)
        finally:
            crasher.join(timeout=30)
        assert killed.is_set(), "Redis was not killed mid-burst"
        assert not pending and len(stored) == total
        assert relay.running, relay.stderr_text()

        client = await WireClient.connect(relay.url, bob)
        delivered: list[bytes] = []
        try:
            while True:
                frame = await client.recv(timeout=20)
                if isinstance(frame, wire.Drained):
                    break
                assert isinstance(frame, wire.Deliver), frame
                delivered.append(frame.id)
                await client.send(wire.Ack(ids=[frame.id]))
        finally:
            await client.close()
        assert len(delivered) == len(set(delivered)) == total
        assert set(delivered) == set(order)
        relay.stop()
        assert "Traceback" not in relay.log_text() + relay.stderr_text()

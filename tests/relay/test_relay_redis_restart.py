"""Redis SIGKILLed and restarted in the middle of a burst (issue 16's test 5).

Two relay processes on one real redis-server with AOF ``appendfsync always``: alice on node 1
sends 1,000 messages to bob on node 2 (a window of 50 in flight); when half of them are
acknowledged (``Stored``), Redis is SIGKILLed and restarted on its directory. Clients behave
as the real one does: a request answered with a retryable ``Error`` is sent again (sends are
idempotent by id), a connection the relay closes is opened again, and bob acks every
delivery (again, when it is delivered again: an ack lost with Redis is retried that way).
Shown: every acknowledged message reaches bob (nothing acknowledged is lost), every message
does in the end, each ack takes effect (bob's mailbox ends empty), the relays never close a
connection with anything but 1013 (try again later: the client shows "reconnecting"), never
answer with an error the client cannot retry, and log no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey
from websockets.exceptions import ConnectionClosed, InvalidStatus

from messenger_tui.core import wire
from tests.helpers.redis_process import RedisProcess
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key

pytestmark = pytest.mark.slow

MESSAGES = 1_000
KILL_AT = 500
WINDOW = 50
CLOSE_TRY_AGAIN = 1013
RETRYABLE = {wire.ErrorCode.INTERNAL}


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess(appendfsync="always") as server:
        yield server


class Outcome:
    def __init__(self) -> None:
        self.stored: set[bytes] = set()
        self.delivered: list[bytes] = []
        self.errors: list[wire.Error] = []
        self.closes: list[int | None] = []
        self.killed = asyncio.Event()
        self.restarted = asyncio.Event()


async def connect(url: str, key: SigningKey, outcome: Outcome) -> WireClient:
    """Connect and authenticate, again and again until it works (the client's backoff)."""
    while True:
        try:
            client = await WireClient.connect(url, key, auth=False)
            try:
                await client.authenticate()
            except (AssertionError, ConnectionClosed):
                outcome.closes.append(await client.wait_closed(timeout=5.0))
                raise OSError("not authenticated") from None
            return client
        except (OSError, TimeoutError, InvalidStatus):
            await asyncio.sleep(0.1)


async def alice_sends(url: str, bob: bytes, ids: list[bytes], outcome: Outcome) -> None:
    key = new_key()
    unstored = list(ids)
    while unstored:
        client = await connect(url, key, outcome)
        try:
            while unstored:
                batch = unstored[:WINDOW]
                for msg_id in batch:
                    await client.send(wire.Send(id=msg_id, to=bob, body=b"burst"))
                answered: set[bytes] = set()
                while len(answered) < len(batch):
                    frame = await client.recv(timeout=30.0)
                    if isinstance(frame, wire.Stored):
                        answered.add(frame.id)
                        outcome.stored.add(frame.id)
                    elif isinstance(frame, wire.Error):
                        outcome.errors.append(frame)
                        assert isinstance(frame.ref, bytes) and frame.code in RETRYABLE, frame
                        answered.add(frame.ref)
                unstored = [i for i in unstored if i not in outcome.stored]
                if len(outcome.stored) >= KILL_AT and not outcome.killed.is_set():
                    outcome.killed.set()  # the test kills Redis now, in the middle
        except ConnectionClosed:
            outcome.closes.append(client.ws.close_code)
        with contextlib.suppress(Exception):
            await client.close()


async def bob_receives(url: str, key: SigningKey, ids: list[bytes], outcome: Outcome) -> None:
    wanted = set(ids)
    while not wanted <= set(outcome.delivered):
        client = await connect(url, key, outcome)
        try:
            while not wanted <= set(outcome.delivered):
                frame = await client.recv(timeout=30.0)
                if isinstance(frame, wire.Deliver):
                    outcome.delivered.append(frame.id)
                    await client.send(wire.Ack(ids=[frame.id]))
                elif isinstance(frame, wire.Error):
                    outcome.errors.append(frame)
                    raise AssertionError(f"bob got an error: {frame}")
        except ConnectionClosed:
            outcome.closes.append(client.ws.close_code)
        with contextlib.suppress(Exception):
            await client.close()


async def test_redis_killed_and_restarted_mid_burst_loses_nothing_acknowledged(
    redis_server: RedisProcess,
) -> None:
    with (
        RelayProcess(store=redis_server.url) as node1,
        RelayProcess(store=redis_server.url) as node2,
    ):
        outcome = Outcome()
        bob_key = new_key()
        bob = bytes(bob_key.verify_key)
        ids = [new_id() for _ in range(MESSAGES)]

        async def crash() -> None:
            await outcome.killed.wait()
            redis_server.kill()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redis_server.restart)
            outcome.restarted.set()

        async with asyncio.timeout(120):
            await asyncio.gather(
                alice_sends(node1.url, bob, ids, outcome),
                bob_receives(node2.url, bob_key, ids, outcome),
                crash(),
            )
        assert outcome.restarted.is_set()
        assert outcome.stored == set(ids)
        assert set(outcome.delivered) == set(ids)  # nothing acknowledged lost, all arrive
        # Each ack takes effect in the end (those lost with Redis: the redelivery is acked).
        async with asyncio.timeout(30):
            while True:
                client = await connect(node2.url, bob_key, outcome)
                assert client.auth_ok is not None
                queued = client.auth_ok.queued
                async with asyncio.timeout(10):
                    for frame in await client.drain_deliveries():
                        await client.send(wire.Ack(ids=[frame.id]))
                await client.close()
                if queued == 0:
                    break
                await asyncio.sleep(0.3)
        logs = node1.stderr_text()[-3000:] + node2.stderr_text()[-3000:]
        assert set(outcome.closes) <= {CLOSE_TRY_AGAIN}, (outcome.closes, logs)
        print(
            f"errors retried {len(outcome.errors)}, closes {len(outcome.closes)}, "
            f"deliveries {len(outcome.delivered)} for {MESSAGES}"
        )
        for node in (node1, node2):
            assert "Traceback" not in node.stderr_text()

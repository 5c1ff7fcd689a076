"""RelayClient against the real relay process (``python -m messenger_tui.relay``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from messenger_tui.core import wire
from messenger_tui.core.crypto.prekeys import signed_prekey_message
from messenger_tui.transport import (
    ConnectionState,
    NotConnected,
    PinMismatch,
    RelayRequestError,
    TlsError,
)
from tests.helpers.certs import make_self_signed
from tests.helpers.relay_process import RelayProcess

from .conftest import Identity, MakeClient

pytestmark = pytest.mark.slow

# one client pipelines thousands of sends here; the default per-identity budget is lower
FAST = ["--send-rate", "100000", "--send-burst", "100000"]


def new_id() -> bytes:
    return os.urandom(wire.MESSAGE_ID_LEN)


@pytest.fixture
async def real_relay(tmp_path: Path) -> AsyncIterator[RelayProcess]:
    proc = RelayProcess(tmp_path / "relay-data", extra_args=FAST)
    await asyncio.to_thread(proc.start)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.close)


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    yield make_self_signed(tmp_path_factory.mktemp("relay-tls"))


async def test_auth_against_the_real_relay(
    real_relay: RelayProcess, make_client: MakeClient, identity: Identity
) -> None:
    client, rec = make_client(real_relay.url)
    auth = await client.connect_once()
    assert auth.identity == identity.public
    assert client.challenge is not None
    assert client.challenge.relay_key == real_relay.relay_key
    assert client.challenge.version == wire.PROTOCOL_VERSION
    await rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames))
    assert rec.state_names() == ["CONNECTING", "CONNECTED"]


async def test_submit_deliver_ack(
    real_relay: RelayProcess, make_client: MakeClient, identity: Identity
) -> None:
    bob = Identity.generate()
    alice_client, _ = make_client(real_relay.url)
    await alice_client.connect_once()
    ids = [new_id() for _ in range(50)]
    bodies = [os.urandom(100) for _ in ids]
    stored = await asyncio.wait_for(
        asyncio.gather(
            *(alice_client.submit_envelope(i, bob.public, b) for i, b in zip(ids, bodies))
        ),
        10,
    )
    assert [s.id for s in stored] == ids and all(s.to == bob.public for s in stored)
    # resending an id is idempotent: Stored again, no duplicate delivery
    await asyncio.wait_for(alice_client.submit_envelope(ids[0], bob.public, bodies[0]), 5)

    bob_client, bob_rec = make_client(real_relay.url, who=bob)
    auth = await bob_client.connect_once()
    assert auth.queued == 50
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames), 10)
    delivered = [f for f in bob_rec.frames if isinstance(f, wire.Deliver)]
    assert [d.id for d in delivered] == ids
    assert [d.body for d in delivered] == bodies
    assert all(d.sender == identity.public for d in delivered)

    await bob_client.ack(ids[:30])
    await bob_client.close()
    bob_rec.frames.clear()
    auth = await bob_client.connect_once()
    assert auth.queued == 20
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames), 10)
    assert [f.id for f in bob_rec.frames if isinstance(f, wire.Deliver)] == ids[30:]


async def test_live_delivery_and_signal(
    real_relay: RelayProcess, make_client: MakeClient, identity: Identity
) -> None:
    bob = Identity.generate()
    alice_client, _ = make_client(real_relay.url)
    bob_client, bob_rec = make_client(real_relay.url, who=bob)
    await alice_client.connect_once()
    await bob_client.connect_once()
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames))
    mid = new_id()
    await asyncio.wait_for(alice_client.submit_envelope(mid, bob.public, b"live"), 5)
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.Deliver) for f in frames), 5)
    await alice_client.signal(bob.public, b"typing")
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.SignalDeliver) for f in frames), 5)
    [sig] = [f for f in bob_rec.frames if isinstance(f, wire.SignalDeliver)]
    assert sig.sender == identity.public and sig.body == b"typing"


async def test_prekeys_publish_fetch_and_not_found(
    real_relay: RelayProcess, make_client: MakeClient, identity: Identity
) -> None:
    client, _ = make_client(real_relay.url)
    await client.connect_once()
    with pytest.raises(RelayRequestError) as info:
        await client.fetch_bundle(os.urandom(32), timeout=5)
    assert info.value.code == wire.ErrorCode.NOT_FOUND

    spk = os.urandom(32)
    ok = await client.publish_prekeys(
        wire.PublishPrekeys(
            ref=0,
            spk_id=1,
            spk=spk,
            spk_sig=identity.sign(signed_prekey_message(spk)),
            opks=[wire.OneTimePrekeyWire(id=i, key=os.urandom(32)) for i in range(1, 4)],
        )
    )
    assert ok.prekeys_remaining == 3

    # One fetcher per fetch: the relay hands one requester at most 2 one-time prekeys of a
    # target in a burst (docs/protocol.md, "Delivery access and mailbox quotas").
    fetchers = [make_client(real_relay.url, who=Identity.generate())[0] for _ in range(4)]
    for fetcher in fetchers:
        await fetcher.connect_once()
    bundles = await asyncio.gather(
        *(fetcher.fetch_bundle(identity.public, timeout=5) for fetcher in fetchers)
    )
    assert all(b.spk == spk and b.spk_id == 1 for b in bundles)
    opk_ids = [b.opk_id for b in bundles]
    assert sorted(i for i in opk_ids if i is not None) == [1, 2, 3]  # each handed out once
    assert opk_ids.count(None) == 1


async def test_pipelined_throughput(real_relay: RelayProcess, make_client: MakeClient) -> None:
    client, _ = make_client(real_relay.url)
    await client.connect_once()
    to = os.urandom(32)
    count = 3000
    started = time.perf_counter()
    futures = [client.submit_envelope(new_id(), to, os.urandom(300)) for _ in range(count)]
    await asyncio.wait_for(asyncio.gather(*futures), 25)
    rate = count / (time.perf_counter() - started)
    print(f"real relay: {count} envelopes stored at {rate:,.0f} msgs/s")
    assert rate > 300  # behaviour check only; benchmarks/ measures the real figure


async def test_reconnect_after_relay_killed_and_restarted(
    real_relay: RelayProcess, make_client: MakeClient
) -> None:
    client, rec = make_client(real_relay.url)
    await client.start()
    assert await client.wait_connected(5)
    to = os.urandom(32)
    await asyncio.wait_for(client.submit_envelope(new_id(), to, b"before"), 5)

    await asyncio.to_thread(real_relay.kill)
    async with asyncio.timeout(5):
        while client.connected:
            await asyncio.sleep(0.01)
    with pytest.raises(NotConnected):
        client.submit_envelope(new_id(), to, b"while down")
    async with asyncio.timeout(5):
        while sum(s.state is ConnectionState.RECONNECTING for s in rec.states) < 2:
            await asyncio.sleep(0.01)  # at least one failed attempt while the relay is down

    await asyncio.to_thread(real_relay.start, real_relay.port)  # same port, same data
    assert await client.wait_connected(10), rec.states[-3:]
    assert rec.states[-1].state is ConnectionState.CONNECTED
    waits = [s for s in rec.states if s.state is ConnectionState.RECONNECTING]
    assert all(s.retry_in is not None and s.error for s in waits)
    await asyncio.wait_for(client.submit_envelope(new_id(), to, b"after"), 5)
    assert len(rec.connected) == 2


async def test_tls_pin_against_the_real_relay(
    tmp_path: Path, tls_material: tuple[Path, Path, str], make_client: MakeClient
) -> None:
    cert, key, pin = tls_material
    proc = RelayProcess(
        tmp_path / "tls-relay", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]
    )
    await asyncio.to_thread(proc.start)
    try:
        assert proc.url.startswith("wss://")
        client, _ = make_client(f"{proc.url}/#sha256={pin}")
        await client.connect_once()
        assert client.connected
        wrong, _ = make_client(f"{proc.url}/#sha256={'ab' * 32}")
        with pytest.raises(PinMismatch):
            await wrong.connect_once()
        unpinned, _ = make_client(proc.url)
        with pytest.raises(TlsError):
            await unpinned.connect_once()
    finally:
        await asyncio.to_thread(proc.close)


async def test_replaced_connection_waits_instead_of_evicting_back(
    real_relay: RelayProcess, make_client: MakeClient, identity: Identity
) -> None:
    """Two instances of one identity: the evicted one must not reconnect at once (that would
    evict the other, and so on); it waits long and says why."""
    from messenger_tui.transport.client import REPLACED_RETRY_S, ConnectionState

    first, first_rec = make_client(real_relay.url)
    await first.start()
    assert await first.wait_connected(5)
    second, _ = make_client(real_relay.url)
    await second.connect_once()
    deadline = time.monotonic() + 5
    while not any(c.state is ConnectionState.RECONNECTING for c in first_rec.states):
        assert time.monotonic() < deadline, first_rec.state_names()
        await asyncio.sleep(0.02)
    change = next(c for c in first_rec.states if c.state is ConnectionState.RECONNECTING)
    assert change.retry_in == REPLACED_RETRY_S
    assert "another instance" in (change.error or "")
    # the next attempt is 60 s away (the small test backoff would have made it already)
    retry_at = first.lifecycle.next_deadline
    assert retry_at is not None
    assert retry_at - asyncio.get_running_loop().time() > REPLACED_RETRY_S - 5
    assert second.connected and not first.connected

"""Relay processes with their own settings: tight limits, TLS (wss://), and a SIGKILL in the
middle of a burst followed by a restart on the same data directory."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from tests.helpers.certs import make_certificate
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id, new_key

pytestmark = pytest.mark.slow

Code = wire.ErrorCode


@pytest.fixture(scope="module")
def limited_relay() -> Iterator[RelayProcess]:
    args = ["--send-rate", "0.5", "--send-burst", "5", "--mailbox-limit", "3"]
    args += ["--signal-rate", "0.5", "--signal-burst", "2"]
    with RelayProcess(extra_args=args) as process:
        yield process


async def test_send_rate_limit(limited_relay: RelayProcess) -> None:
    alice = await WireClient.connect(limited_relay.url)
    await alice.recv_until(wire.Drained)
    ids = [new_id() for _ in range(7)]
    for i, msg_id in enumerate(ids):
        # A different recipient each time, so the mailbox bound is not what refuses.
        await alice.send(wire.Send(id=msg_id, to=bytes([i]) * 32, body=b"x"))
    replies = [await alice.recv() for _ in ids]
    stored = [r for r in replies if isinstance(r, wire.Stored)]
    limited = [r for r in replies if isinstance(r, wire.Error)]
    assert len(stored) == 5
    assert {e.code for e in limited} == {Code.RATE_LIMITED}
    assert {e.ref for e in limited} == set(ids[5:])
    # Signals have their own budget.
    bob = await WireClient.connect(limited_relay.url)
    for _ in range(3):
        await alice.send(wire.Signal(to=bob.identity, body=b"typing"))
    assert (await alice.expect(wire.Error)).code == Code.RATE_LIMITED
    # Reconnecting does not refill the budget.
    await alice.close()
    alice = await WireClient.connect(limited_relay.url, alice.key)
    await alice.recv_until(wire.Drained)
    await alice.send(wire.Send(id=new_id(), to=b"z" * 32, body=b"x"))
    assert (await alice.expect(wire.Error)).code == Code.RATE_LIMITED
    await alice.close()
    await bob.close()


async def test_mailbox_full(limited_relay: RelayProcess) -> None:
    recipient = new_key()
    to = bytes(recipient.verify_key)
    senders = [await WireClient.connect(limited_relay.url) for _ in range(4)]
    ids = [new_id() for _ in senders]
    for sender, msg_id in zip(senders, ids):
        await sender.recv_until(wire.Drained)
        await sender.send(wire.Send(id=msg_id, to=to, body=b"x"))
        await sender.recv()
    # The first three were stored; a duplicate of one of them is still Stored.
    await senders[0].send(wire.Send(id=ids[0], to=to, body=b"x"))
    assert await senders[0].expect(wire.Stored) == wire.Stored(id=ids[0], to=to)
    await senders[3].send(wire.Send(id=new_id(), to=to, body=b"x"))
    error = await senders[3].expect(wire.Error)
    assert error.code == Code.MAILBOX_FULL
    owner = await WireClient.connect(limited_relay.url, recipient)
    assert [d.id for d in await owner.drain_deliveries()] == ids[:3]
    for client in (owner, *senders):
        await client.close()


# --------------------------------------------------------------------------------- TLS


def self_signed(directory: Path) -> tuple[Path, Path]:
    files = make_certificate(directory, ["localhost", "127.0.0.1"])
    return files.cert, files.key


async def test_tls_relay_serves_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    with RelayProcess(tmp_path / "data", extra_args=args) as relay:
        assert relay.url.startswith("wss://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        alice = await WireClient.connect(relay.url, ssl_context=trusting)
        bob = await WireClient.connect(relay.url, ssl_context=trusting)
        await alice.recv_until(wire.Drained)
        await bob.recv_until(wire.Drained)
        msg_id = new_id()
        await alice.send(wire.Send(id=msg_id, to=bob.identity, body=b"over tls"))
        await alice.expect(wire.Stored)
        assert (await bob.expect(wire.Deliver)).body == b"over tls"
        await alice.close()
        await bob.close()
        # A client that does not trust the certificate cannot connect.
        with pytest.raises(ssl.SSLError):
            await WireClient.connect(relay.url, ssl_context=ssl.create_default_context())


# ---------------------------------------------------------------------------- crashes


async def test_sigkilled_relay_keeps_every_envelope_it_answered_stored(tmp_path: Path) -> None:
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    with RelayProcess(tmp_path / "data") as relay:
        alice = await WireClient.connect(relay.url)
        await alice.recv_until(wire.Drained)
        # Below the default send burst (5,000) so no rate limit interferes. The sender kills
        # the relay itself halfway, once the first Stored is back: half the Sends never go
        # out and some of those sent are still committing, however fast the relay is.
        sent = [new_id() for _ in range(4500)]
        stored: list[bytes] = []

        async def blast() -> None:
            try:
                for i, msg_id in enumerate(sent):
                    if i == len(sent) // 2:
                        while not stored:
                            await asyncio.sleep(0.001)
                        relay.kill()
                    await alice.send(wire.Send(id=msg_id, to=bob_id, body=msg_id * 8))
            except ConnectionClosed:
                pass

        sender = asyncio.get_running_loop().create_task(blast())
        try:
            while True:
                frame = await alice.recv(timeout=10)
                assert isinstance(frame, wire.Stored), frame
                stored.append(frame.id)
        except ConnectionClosed:
            pass
        await sender
        assert 1 <= len(stored) <= len(sent) // 2, "the kill must land mid-burst"
        relay.restart()
        bob = await WireClient.connect(relay.url, bob_key)
        delivered = []
        while True:
            frame = await bob.recv(timeout=10)
            if isinstance(frame, wire.Drained):
                break
            assert isinstance(frame, wire.Deliver)
            delivered.append(frame.id)
            if len(delivered) % 256 == 0:
                await bob.send(wire.Ack(ids=delivered[-256:]))
        assert set(stored) <= set(delivered)
        assert len(delivered) == len(set(delivered))
        order = {msg_id: i for i, msg_id in enumerate(sent)}
        assert [order[d] for d in delivered] == sorted(order[d] for d in delivered)
        assert all(d in order for d in delivered)
        await bob.close()

"""The embedding API: RelayServer in-process, run_relay, the CLI's ready line and exit codes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from messenger_tui.core import wire
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.data_dir_lock import DataDirLocked
from messenger_tui.relay.server import RelayServer, run_relay
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, new_id


async def test_in_process_server_round_trip(tmp_path: Path) -> None:
    echo = b"e" * 32
    async with RelayServer(RelayConfig(data_dir=tmp_path / "d", echo_identity=echo)) as relay:
        assert relay.port > 0 and relay.url == f"ws://127.0.0.1:{relay.port}"
        assert len(relay.relay_key) == 32
        alice = await WireClient.connect(relay.url)
        assert alice.challenge.echo == echo and alice.challenge.relay_key == relay.relay_key
        bob = await WireClient.connect(relay.url)
        await alice.recv_until(wire.Drained)
        await bob.recv_until(wire.Drained)
        await alice.send(wire.Send(id=new_id(), to=bob.identity, body=b"hi"))
        await alice.expect(wire.Stored)
        assert (await bob.expect(wire.Deliver)).body == b"hi"
        assert relay.services.presence.online_count == 2
        # A second relay on the same data directory is refused.
        with pytest.raises(DataDirLocked):
            await RelayServer(RelayConfig(data_dir=tmp_path / "d")).start()
    assert await alice.wait_closed() == 1001  # going away
    await bob.wait_closed()
    assert (tmp_path / "d" / "relay.log").stat().st_size > 0
    # Restarting keeps the relay key.
    async with RelayServer(RelayConfig(data_dir=tmp_path / "d")) as again:
        assert again.relay_key == relay.relay_key


async def test_run_relay_until_cancelled(tmp_path: Path) -> None:
    ready: asyncio.Queue[RelayServer] = asyncio.Queue()
    task = asyncio.get_running_loop().create_task(
        run_relay(RelayConfig(data_dir=tmp_path), on_ready=ready.put_nowait)
    )
    server = await asyncio.wait_for(ready.get(), 10)
    client = await WireClient.connect(server.url)
    await client.recv_until(wire.Drained)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.wait_closed()


async def test_serve_forever_stops_on_cancel(tmp_path: Path) -> None:
    server = RelayServer(RelayConfig(data_dir=tmp_path))
    task = asyncio.get_running_loop().create_task(server.serve_forever())
    for _ in range(200):
        await asyncio.sleep(0.01)
        try:
            url = server.url
            break
        except RuntimeError:
            continue
    client = await WireClient.connect(url)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.wait_closed()
    await server.stop()  # idempotent


def test_process_prints_ready_line_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "data").start()
    try:
        assert relay.url.startswith("ws://127.0.0.1:") and len(relay.relay_key) == 32
        second = RelayProcess(tmp_path / "data")
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
        assert "another relay" in second.stderr_text()
    finally:
        assert relay.stop() == 0


def test_process_refuses_bad_arguments(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "messenger_tui.relay", "--data", str(tmp_path), "--tls-cert", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "tls" in result.stderr.lower()


def test_sigint_also_stops(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "data").start()
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGINT)
    assert relay.proc.wait(timeout=10) == 0
    relay.close()


async def test_connection_without_auth_is_closed_after_the_timeout(tmp_path: Path) -> None:
    async with RelayServer(RelayConfig(data_dir=tmp_path, auth_timeout_s=0.3)) as relay:
        idle = await WireClient.connect(relay.url, auth=False)
        error = await idle.expect(wire.Error, timeout=5)
        assert error.code == wire.ErrorCode.UNAUTHENTICATED
        assert await idle.wait_closed() == 1008
        # Too many requests before authenticating also closes the connection.
        chatty = await WireClient.connect(relay.url, auth=False)
        for _ in range(20):
            await chatty.send(wire.Ack(ids=[]))
        assert await chatty.wait_closed() == 1008


async def test_expired_envelopes_are_never_delivered_injected_clock(tmp_path: Path) -> None:
    from messenger_tui.relay.clock import ManualClock

    clock = ManualClock()
    config = RelayConfig(data_dir=tmp_path, ttl_seconds=60)
    async with RelayServer(config, clock=clock) as relay:
        alice = await WireClient.connect(relay.url, auth=False)
        await alice.authenticate(time_ms=clock())
        await alice.recv_until(wire.Drained)
        bob = await WireClient.connect(relay.url, auth=False)
        await alice.send(wire.Send(id=new_id(), to=bob.identity, body=b"stale soon"))
        await alice.expect(wire.Stored)
        clock.advance(60_000)
        ok = await bob.authenticate(time_ms=clock())
        assert ok.queued == 0
        assert await bob.drain_deliveries() == []
        assert await relay.services.store.purge_expired(now_ms=clock()) == 1
        await alice.close()
        await bob.close()

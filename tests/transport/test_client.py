"""RelayClient against the in-test stub relay (conftest.StubRelay): auth, correlation,
errors, drops and reconnects."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import msgspec
import pytest

from messenger_tui.core import wire
from messenger_tui.core.links.relay_link import LinkPhase
from messenger_tui.transport import (
    ConnectionState,
    NotConnected,
    RelayAuthFailed,
    RelayClient,
    RelayProtocolError,
    RelayRequestError,
    RelayUnreachable,
    RequestTimeout,
)
from tests.helpers.ports import free_port

from .conftest import Identity, MakeClient, StubRelay, raw_server


def new_id() -> bytes:
    return os.urandom(wire.MESSAGE_ID_LEN)


def state_of(client: RelayClient) -> ConnectionState:
    """The state read afresh (mypy keeps an earlier ``is`` check's narrowing)."""
    return client.state


def connected(client: RelayClient) -> bool:
    return client.connected


# ------------------------------------------------------------------ authentication


async def test_auth_flow(relay: StubRelay, make_client: MakeClient, identity: Identity) -> None:
    client, rec = make_client(relay.url, clock=lambda: 1_700_000_000.123)
    relay.clock_ms = lambda: 1_700_000_000_000
    assert client.state is ConnectionState.OFFLINE and not client.connected

    auth = await client.connect_once()

    assert auth.identity == identity.public
    assert connected(client) and state_of(client) is ConnectionState.CONNECTED
    assert client.auth == auth
    assert client.challenge is not None and client.challenge.relay_key == relay.relay_key
    [sent] = relay.auths
    assert sent.identity == identity.public
    assert sent.time_ms == 1_700_000_000_123  # the injected clock, in milliseconds
    assert rec.state_names() == ["CONNECTING", "CONNECTED"]
    await rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames))
    await asyncio.sleep(0)
    assert len(rec.connected) == 1 and rec.connected[0][0] == auth


async def test_rejected_auth_raises_relay_auth_failed(
    relay: StubRelay, make_client: MakeClient
) -> None:
    relay.auth_mode = "reject"
    client, rec = make_client(relay.url)
    with pytest.raises(RelayAuthFailed) as info:
        await client.connect_once()
    assert info.value.code == "auth_failed"
    assert "refused authentication" in str(info.value)
    assert not client.connected
    assert rec.states[-1].state is ConnectionState.OFFLINE
    assert rec.states[-1].error is not None and "auth_failed" in rec.states[-1].error


async def test_bad_signature_is_refused_by_the_relay(
    relay: StubRelay, make_client: MakeClient
) -> None:
    other = Identity.generate()
    client, _ = make_client(relay.url, who=other)
    client._sign = lambda message: Identity.generate().sign(message)  # signs with a wrong key
    with pytest.raises(RelayAuthFailed):
        await client.connect_once()


async def test_relay_confirming_another_identity_is_refused(
    relay: StubRelay, make_client: MakeClient
) -> None:
    relay.auth_mode = "wrong_identity"
    client, _ = make_client(relay.url)
    with pytest.raises(RelayAuthFailed, match="different identity"):
        await client.connect_once()


async def test_silent_relay_times_out(relay: StubRelay, make_client: MakeClient) -> None:
    relay.auth_mode = "silent"
    client, _ = make_client(relay.url, connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(RelayUnreachable, match=r"no answer to authentication within 0.3 s"):
        await client.connect_once()
    assert time.monotonic() - started < 2.0


async def test_protocol_version_mismatch(relay: StubRelay, make_client: MakeClient) -> None:
    relay.version = 99
    client, _ = make_client(relay.url)
    with pytest.raises(RelayProtocolError, match="version 99"):
        await client.connect_once()


async def test_closed_port_is_unreachable_with_a_readable_message(make_client: MakeClient) -> None:
    port = free_port()
    client, rec = make_client(f"ws://127.0.0.1:{port}")
    with pytest.raises(RelayUnreachable) as info:
        await client.connect_once()
    text = str(info.value)
    assert f"ws://127.0.0.1:{port}" in text
    assert "refused" in text
    assert rec.states[-1].state is ConnectionState.OFFLINE


async def test_unresolvable_host_is_unreachable(make_client: MakeClient) -> None:
    client, _ = make_client("ws://no-such-host.invalid:8765")
    with pytest.raises(RelayUnreachable, match=r"no-such-host\.invalid"):
        await client.connect_once()


async def test_tcp_server_that_never_answers_times_out(make_client: MakeClient) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    async with raw_server(mute) as port:
        client, _ = make_client(f"ws://127.0.0.1:{port}", connect_timeout=0.3)
        with pytest.raises(RelayUnreachable, match="timed out"):
            await client.connect_once()


async def test_http_server_is_not_a_relay(make_client: MakeClient) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(http) as port:
        client, _ = make_client(f"ws://127.0.0.1:{port}")
        with pytest.raises(RelayProtocolError, match="HTTP 404"):
            await client.connect_once()


# ------------------------------------------------------------------ sending


async def test_send_requires_a_connection(relay: StubRelay, make_client: MakeClient) -> None:
    client, _ = make_client(relay.url)
    with pytest.raises(NotConnected):
        await client.send(wire.Ack(ids=[]))
    with pytest.raises(NotConnected):
        client.submit_envelope(new_id(), os.urandom(32), b"x")
    with pytest.raises(NotConnected):
        await client.fetch_bundle(os.urandom(32))


async def test_submit_envelope_resolves_with_stored(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, _ = make_client(relay.url)
    await client.connect_once()
    mid, to = new_id(), os.urandom(32)
    stored = await asyncio.wait_for(client.submit_envelope(mid, to, b"ciphertext"), 2)
    assert stored == wire.Stored(id=mid, to=to)
    assert relay.stored[mid].body == b"ciphertext"
    assert client.pending_envelopes == 0


async def test_submit_envelope_validates_arguments(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, _ = make_client(relay.url)
    await client.connect_once()
    with pytest.raises(ValueError, match="message id"):
        client.submit_envelope(b"short", os.urandom(32), b"x")
    with pytest.raises(ValueError, match="recipient"):
        client.submit_envelope(new_id(), b"short", b"x")
    with pytest.raises(ValueError, match="exceeds"):
        client.submit_envelope(new_id(), os.urandom(32), bytes(wire.MAX_ENVELOPE + 1))


async def test_same_id_in_flight_shares_one_future(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, _ = make_client(relay.url)
    await client.connect_once()
    mid, to = new_id(), os.urandom(32)
    first = client.submit_envelope(mid, to, b"a")
    assert client.submit_envelope(mid, to, b"a") is first
    await asyncio.wait_for(first, 2)
    assert sum(isinstance(f, wire.Send) and f.id == mid for f in relay.received) == 1


async def test_pipelining_thousands_of_envelopes(relay: StubRelay, make_client: MakeClient) -> None:
    client, _ = make_client(relay.url)
    await client.connect_once()
    to = os.urandom(32)
    count = 5000
    ids = [new_id() for _ in range(count)]
    started = time.perf_counter()
    futures = [client.submit_envelope(i, to, b"\x00" * 200) for i in ids]
    assert client.pending_envelopes == count
    results = await asyncio.wait_for(asyncio.gather(*futures), 20)
    elapsed = time.perf_counter() - started
    assert [r.id for r in results] == ids
    assert len(relay.stored) == count
    rate = count / elapsed
    print(f"pipelined {count} envelopes in {elapsed:.3f} s: {rate:,.0f} msgs/s")
    # The goal is >= 2,000 msgs/s end to end; the stub relay shares this process, so only
    # a loose floor is asserted here (benchmarks/ reports the real number).
    assert rate > 500


async def test_error_frame_for_an_envelope_fails_its_future(
    relay: StubRelay, make_client: MakeClient
) -> None:
    relay.send_error = "mailbox_full"
    client, rec = make_client(relay.url)
    await client.connect_once()
    future = client.submit_envelope(new_id(), os.urandom(32), b"x")
    with pytest.raises(RelayRequestError) as info:
        await asyncio.wait_for(future, 2)
    assert info.value.code == "mailbox_full" and info.value.retryable
    assert not any(isinstance(f, wire.Error) for f in rec.frames)  # consumed, not forwarded
    assert client.connected


async def test_unsolicited_error_goes_to_on_frame(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    client, rec = make_client(relay.url)
    await client.connect_once()
    await relay.push(identity.public, wire.Error(code="rate_limited", message="slow down"))
    await relay.push(identity.public, wire.Error(code="internal", message="x", ref=12345))
    await rec.wait_for(lambda frames: sum(isinstance(f, wire.Error) for f in frames) == 2)


# ------------------------------------------------------------------ requests


async def test_fetch_bundle_and_not_found(relay: StubRelay, make_client: MakeClient) -> None:
    peer = os.urandom(32)
    relay.bundles[peer] = wire.Bundle(
        ref=0, identity=peer, spk_id=7, spk=os.urandom(32), spk_sig=os.urandom(64)
    )
    client, _ = make_client(relay.url)
    await client.connect_once()
    bundle = await client.fetch_bundle(peer, timeout=2)
    assert bundle.identity == peer and bundle.spk_id == 7 and bundle.ref != 0
    with pytest.raises(RelayRequestError) as info:
        await client.fetch_bundle(os.urandom(32), timeout=2)
    assert info.value.code == "not_found" and not info.value.retryable


async def test_answers_out_of_order_reach_the_right_request(
    relay: StubRelay, make_client: MakeClient
) -> None:
    peers = [os.urandom(32) for _ in range(5)]
    for n, peer in enumerate(peers):
        relay.bundles[peer] = wire.Bundle(
            ref=0, identity=peer, spk_id=n, spk=os.urandom(32), spk_sig=os.urandom(64)
        )
    relay.reverse_requests = len(peers)
    client, _ = make_client(relay.url)
    await client.connect_once()
    bundles = await asyncio.gather(*(client.fetch_bundle(p, timeout=3) for p in peers))
    assert [b.identity for b in bundles] == peers
    assert [b.spk_id for b in bundles] == list(range(5))
    assert len({b.ref for b in bundles}) == 5


async def test_publish_prekeys_and_explicit_ref(relay: StubRelay, make_client: MakeClient) -> None:
    client, _ = make_client(relay.url)
    await client.connect_once()
    frame = wire.PublishPrekeys(
        ref=0,
        spk_id=1,
        spk=os.urandom(32),
        spk_sig=os.urandom(64),
        opks=[wire.OneTimePrekeyWire(id=i, key=os.urandom(32)) for i in range(3)],
    )
    ok = await client.publish_prekeys(frame)
    assert ok.prekeys_remaining == 3 and ok.ref != 0
    sent = [f for f in relay.received if isinstance(f, wire.PublishPrekeys)]
    assert sent[0].ref == ok.ref
    with pytest.raises(RelayRequestError, match="not_found"):
        await client.request(wire.FetchBundle(ref=777, identity=os.urandom(32)), 2)
    last = relay.received[-1]
    assert isinstance(last, wire.FetchBundle) and last.ref == 777  # an explicit ref is kept


async def test_request_timeout(relay: StubRelay, make_client: MakeClient) -> None:
    relay.answer_requests = False
    client, _ = make_client(relay.url)
    await client.connect_once()
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="FetchBundle"):
        await client.fetch_bundle(os.urandom(32), timeout=0.2)
    assert 0.15 < time.monotonic() - started < 1.5
    assert client.connected  # a timeout does not drop the connection
    # a late answer for the abandoned ref is ignored without harm
    assert client.auth is not None
    await relay.push(client.auth.identity, wire.Ok(ref=1))
    await asyncio.sleep(0.05)
    assert client.connected


# ------------------------------------------------------------------ incoming frames


async def test_backlog_delivered_in_order_then_ack(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    sender = os.urandom(32)
    backlog = [
        wire.Deliver(id=new_id(), sender=sender, body=bytes([n]), stored_at_ms=n) for n in range(20)
    ]
    relay.mailboxes[identity.public] = list(backlog)
    client, rec = make_client(relay.url)
    auth = await client.connect_once()
    assert auth.queued == 20
    await rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames))
    delivered = [f for f in rec.frames if isinstance(f, wire.Deliver)]
    assert delivered == backlog
    assert isinstance(rec.frames[-1], wire.Drained)

    await client.ack([d.id for d in backlog[:15]])
    await client.close()
    assert client.state is ConnectionState.OFFLINE
    rec.frames.clear()
    await client.connect_once()
    await rec.wait_for(lambda frames: any(isinstance(f, wire.Drained) for f in frames))
    assert [f for f in rec.frames if isinstance(f, wire.Deliver)] == backlog[15:]


async def test_presence_and_signal_delivery(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    bob = Identity.generate()
    alice_client, alice = make_client(relay.url)
    bob_client, bob_rec = make_client(relay.url, who=bob)
    await alice_client.connect_once()
    await bob_client.connect_once()
    await alice_client.signal(bob.public, b"typing")
    await bob_rec.wait_for(lambda frames: any(isinstance(f, wire.SignalDeliver) for f in frames))
    [signal] = [f for f in bob_rec.frames if isinstance(f, wire.SignalDeliver)]
    assert signal.sender == identity.public and signal.body == b"typing"
    await relay.push(identity.public, wire.Presence(identity=bob.public, online=True))
    await alice.wait_for(lambda frames: any(isinstance(f, wire.Presence) for f in frames))


async def test_undecodable_frames_are_skipped(
    relay: StubRelay, make_client: MakeClient, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    client, rec = make_client(relay.url)
    await client.connect_once()
    with caplog.at_level(logging.WARNING, logger="messenger_tui.transport"):
        await relay.push_raw(identity.public, b"\xc1garbage")
        await relay.push_raw(identity.public, "a text frame")
        await relay.push_raw(identity.public, msgspec.msgpack.encode({"t": "newer_frame"}))
        await relay.push(identity.public, wire.Presence(identity=os.urandom(32), online=False))
        await rec.wait_for(lambda frames: any(isinstance(f, wire.Presence) for f in frames))
    assert client.connected
    skipped = [r for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert len(skipped) == 3


async def test_failing_on_frame_handler_does_not_kill_the_connection(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    client, _ = make_client(relay.url)
    seen: list[wire.RelayFrame] = []

    async def explode(frame: wire.RelayFrame) -> None:
        seen.append(frame)
        if isinstance(frame, wire.Presence) and frame.online:
            raise RuntimeError("app bug")

    client._on_frame = explode
    await client.connect_once()
    await relay.push(identity.public, wire.Presence(identity=os.urandom(32), online=True))
    await relay.push(identity.public, wire.Presence(identity=os.urandom(32), online=False))
    async with asyncio.timeout(2):
        while len([f for f in seen if isinstance(f, wire.Presence)]) < 2:
            await asyncio.sleep(0.01)
    assert client.connected


# ------------------------------------------------------------------ drops and reconnects


async def test_drop_fails_pending_futures_and_run_reconnects(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    relay.answer_sends = False
    relay.answer_requests = False
    client, rec = make_client(relay.url)
    await client.start()
    assert await client.wait_connected(2)
    to = os.urandom(32)
    futures = [client.submit_envelope(new_id(), to, b"x") for _ in range(200)]
    request = asyncio.create_task(client.fetch_bundle(os.urandom(32), timeout=5))
    async with asyncio.timeout(2):
        while len(relay.received) < 201:
            await asyncio.sleep(0.01)

    relay.drop_all()

    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 2)
    assert all(isinstance(r, NotConnected) for r in results)
    assert "lost before the answer arrived" in str(results[0])
    with pytest.raises(NotConnected):
        await request
    async with asyncio.timeout(3):
        while len(rec.connected) < 2:
            await asyncio.sleep(0.01)
    assert client.connected
    names = rec.state_names()
    assert names[:2] == ["CONNECTING", "CONNECTED"]
    reconnecting = [s for s in rec.states if s.state is ConnectionState.RECONNECTING]
    assert reconnecting and reconnecting[0].retry_in is not None
    assert 0 <= reconnecting[0].retry_in <= 0.05
    assert reconnecting[0].error and "connection closed" in reconnecting[0].error
    after = names[names.index("RECONNECTING") :]
    assert after[-2:] == ["CONNECTING", "CONNECTED"]
    # the new connection works
    relay.answer_sends = True
    await asyncio.wait_for(client.submit_envelope(new_id(), to, b"y"), 2)


async def test_run_retries_with_backoff_until_the_relay_appears(make_client: MakeClient) -> None:
    port = free_port()
    client, rec = make_client(f"ws://127.0.0.1:{port}")
    await client.start()
    async with asyncio.timeout(3):
        while len([s for s in rec.states if s.state is ConnectionState.RECONNECTING]) < 3:
            await asyncio.sleep(0.01)
    assert not client.connected
    waits = [s for s in rec.states if s.state is ConnectionState.RECONNECTING]
    assert all(s.retry_in is not None and 0 <= s.retry_in <= 0.05 for s in waits)
    assert all(s.error and "refused" in s.error for s in waits)

    relay = StubRelay()
    await relay.start(port=port)
    try:
        assert await client.wait_connected(3)
        assert rec.states[-1].state is ConnectionState.CONNECTED
    finally:
        await client.close()
        await relay.stop()
    last_change = rec.states[-1]
    assert last_change.state is ConnectionState.OFFLINE


async def test_backoff_resets_when_a_healthy_connection_drops(
    relay: StubRelay, make_client: MakeClient
) -> None:
    """The relay's Drained (a round trip) proves the connection healthy at once; every row of
    the lifecycle, with the stable timer, is in tests/core/links/test_relay_link.py."""
    from messenger_tui.transport import Backoff

    backoff = Backoff(base=0.01, cap=0.04)
    client, rec = make_client(relay.url, backoff=backoff, stable_after=3600)
    await client.start()
    assert await client.wait_connected(2)
    async with asyncio.timeout(2):
        while client.lifecycle.phase is not LinkPhase.HEALTHY:
            await asyncio.sleep(0.005)
    backoff._attempt = 5  # as if earlier attempts had failed
    relay.drop_all()
    async with asyncio.timeout(3):
        while len(rec.connected) < 2:
            await asyncio.sleep(0.01)
    assert backoff.attempt == 1  # reset on the stable drop, then one delay handed out


async def test_subscription_is_resent_after_reconnect(
    relay: StubRelay, make_client: MakeClient, identity: Identity
) -> None:
    client, _ = make_client(relay.url)
    watched = [os.urandom(32), os.urandom(32)]
    await client.subscribe(watched)  # offline: remembered
    await client.start()
    assert await client.wait_connected(2)
    async with asyncio.timeout(2):
        while relay.subscriptions.get(identity.public) != watched:
            await asyncio.sleep(0.01)
    relay.subscriptions.clear()
    relay.drop_all()
    async with asyncio.timeout(3):
        while relay.subscriptions.get(identity.public) != watched:
            await asyncio.sleep(0.01)


async def test_close_fails_pending_and_stops_run(relay: StubRelay, make_client: MakeClient) -> None:
    relay.answer_sends = False
    client, rec = make_client(relay.url)
    await client.start()
    assert await client.wait_connected(2)
    future = client.submit_envelope(new_id(), os.urandom(32), b"x")
    await client.close()
    with pytest.raises(NotConnected):
        await future
    assert client.state is ConnectionState.OFFLINE and not client.connected
    assert rec.states[-1].state is ConnectionState.OFFLINE
    # no reconnect attempt after close: no attempt in flight, no timer armed
    assert client.lifecycle.phase is LinkPhase.OFFLINE
    assert client.lifecycle.next_deadline is None and client._timer is None
    assert client._attempt is None
    await client.close()  # idempotent


async def test_close_interrupts_a_pending_connect(make_client: MakeClient) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async with raw_server(mute) as port:
        client, _ = make_client(f"ws://127.0.0.1:{port}", connect_timeout=5)
        await client.start()
        await asyncio.sleep(0)  # run() starts the attempt
        assert client.state is ConnectionState.CONNECTING
        started = time.monotonic()
        await client.close()
        assert time.monotonic() - started < 1
        assert state_of(client) is ConnectionState.OFFLINE


async def test_cancelling_run_closes_the_connection(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, rec = make_client(relay.url)
    task = asyncio.create_task(client.run())
    assert await client.wait_connected(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client.connected
    assert rec.states[-1].state is ConnectionState.OFFLINE
    async with asyncio.timeout(2):
        while relay.connections:
            await asyncio.sleep(0.01)


async def test_connect_once_drop_reports_offline(relay: StubRelay, make_client: MakeClient) -> None:
    client, rec = make_client(relay.url)
    await client.connect_once()
    relay.drop_all()
    async with asyncio.timeout(2):
        while client.connected:
            await asyncio.sleep(0.01)
    assert rec.states[-1].state is ConnectionState.OFFLINE
    assert rec.states[-1].error


async def test_run_adopts_the_connection_of_connect_once(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, rec = make_client(relay.url)
    await client.connect_once()
    await client.start()
    await asyncio.sleep(0)  # run() adopts the link
    assert client.lifecycle.phase is LinkPhase.CONNECTED
    assert client.connected
    assert relay.handshakes == 1  # no second connection replacing the first
    assert len(rec.connected) == 1
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(client.run(), 1)  # already running


async def test_dead_relay_is_detected_by_keepalive(
    relay: StubRelay, make_client: MakeClient, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from messenger_tui.transport import client as client_module

    monkeypatch.setattr(client_module, "CLOSE_TIMEOUT", 0.1)
    client, rec = make_client(relay.url, ping_interval=0.1, ping_timeout=0.2)
    await client.start()
    assert await client.wait_connected(2)
    silent = relay.connections[identity.public]
    silent.transport.pause_reading()  # the relay looks alive to TCP but never answers
    started = time.monotonic()
    try:
        async with asyncio.timeout(3):
            while len(rec.connected) < 2:
                await asyncio.sleep(0.02)
        assert time.monotonic() - started < 1.5  # ping_interval + ping_timeout + close
        reconnecting = [s for s in rec.states if s.state is ConnectionState.RECONNECTING]
        assert reconnecting and "ping timeout" in (reconnecting[0].error or "")
    finally:
        silent.transport.abort()


async def test_flush_waits_until_queued_frames_are_written(
    relay: StubRelay, make_client: MakeClient
) -> None:
    client, _ = make_client(relay.url)
    assert await client.flush(0.1) is False  # offline
    await client.connect_once()
    await client.ack([new_id() for _ in range(10_000)])  # three Ack frames
    assert client.outbound_queued > 0
    assert await client.flush(2)
    assert client.outbound_queued == 0
    async with asyncio.timeout(2):
        while sum(isinstance(f, wire.Ack) for f in relay.received) < 3:
            await asyncio.sleep(0.01)

"""The relay as a real process (``python -m messenger_tui.relay``) on loopback, driven with
raw websockets, core.wire frames and nacl signatures: authentication, mailboxes, limits,
prekeys, presence and signals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from messenger_tui.core import wire
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.crypto.prekeys import generate_one_time_prekeys, generate_signed_prekey
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import WireClient, make_auth, new_id, new_key, now_ms

pytestmark = pytest.mark.slow

Code = wire.ErrorCode


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def relay(request: pytest.FixtureRequest) -> Iterator[RelayProcess]:
    """One relay process per backend (SQLite data directory; the session's Redis)."""
    store = "sqlite" if request.param == "sqlite" else request.getfixturevalue("redis_server").url
    with RelayProcess(store=store) as process:
        yield process


async def online(relay: RelayProcess, key=None) -> WireClient:  # type: ignore[no-untyped-def]
    """An authenticated client whose initial backlog push is done."""
    client = await WireClient.connect(relay.url, key)
    await client.recv_until(wire.Drained)
    return client


async def send_all(sender: WireClient, to: bytes, bodies: list[bytes]) -> list[bytes]:
    """Send and wait for every Stored; return the ids in order."""
    ids = [new_id() for _ in bodies]
    for msg_id, body in zip(ids, bodies):
        await sender.send(wire.Send(id=msg_id, to=to, body=body))
    stored = [await sender.expect(wire.Stored) for _ in ids]
    assert sorted(s.id for s in stored) == sorted(ids)
    assert {s.to for s in stored} == {to}
    return ids


# --------------------------------------------------------------------- authentication


async def test_auth_ok_then_drained(relay: RelayProcess) -> None:
    client = await WireClient.connect(relay.url, auth=False)
    challenge = client.challenge
    assert challenge.relay_key == relay.relay_key
    assert challenge.version == wire.PROTOCOL_VERSION and len(challenge.nonce) == 32
    assert challenge.max_envelope == wire.MAX_ENVELOPE and challenge.echo is None
    assert abs(challenge.time_ms - now_ms()) < 60_000
    ok = await client.authenticate()
    assert ok == wire.AuthOk(
        identity=client.identity, queued=0, prekeys_remaining=0, signed_prekey_id=None
    )
    assert await client.expect(wire.Drained) == wire.Drained(pushed=0)
    await client.close()


async def test_unauthenticated_connection_can_neither_send_nor_receive(
    relay: RelayProcess,
) -> None:
    bob = await online(relay)
    stranger = await WireClient.connect(relay.url, auth=False)
    requests: list[wire.ClientFrame] = [
        wire.Send(id=new_id(), to=bob.identity, body=b"hello"),
        wire.Ack(ids=[new_id()]),
        wire.Subscribe(identities=[bob.identity]),
        wire.FetchBundle(ref=1, identity=bob.identity),
        wire.Signal(to=bob.identity, body=b"ring"),
        wire.PublishPrekeys(ref=2, spk_id=1, spk=b"k" * 32, spk_sig=b"s" * 64),
    ]
    for request in requests:
        await stranger.send(request)
        error = await stranger.expect(wire.Error)
        assert error.code == Code.UNAUTHENTICATED, error
    assert await stranger.nothing_for(0.3) == []
    assert await bob.nothing_for(0.1) == []
    await bob.close()
    again = await WireClient.connect(relay.url, bob.key)
    assert again.auth_ok is not None and again.auth_ok.queued == 0
    # Envelopes queued for an identity never reach a connection that did not prove it.
    alice = await online(relay)
    await send_all(alice, again.identity, [b"secret"])
    watcher = await WireClient.connect(relay.url, auth=False)
    assert await watcher.nothing_for(0.3) == []
    for client in (again, alice, stranger, watcher):
        await client.close()


async def test_replayed_auth_is_refused(relay: RelayProcess) -> None:
    key = new_key()
    first = await WireClient.connect(relay.url, key, auth=False)
    captured = make_auth(key, first.challenge)
    await first.send(captured)
    await first.expect(wire.AuthOk)
    second = await WireClient.connect(relay.url, key, auth=False)
    await second.send(captured)  # signed over the first connection's nonce
    error = await second.expect(wire.Error)
    assert error.code == Code.AUTH_FAILED
    assert await second.wait_closed() == 1008
    await first.close()


@pytest.mark.parametrize("offset_ms", [-(wire.AUTH_MAX_SKEW_MS + 5_000), 10 * 60_000])
async def test_stale_or_future_timestamp_refused(relay: RelayProcess, offset_ms: int) -> None:
    client = await WireClient.connect(relay.url, auth=False)
    await client.send(make_auth(client.key, client.challenge, now_ms() + offset_ms))
    error = await client.expect(wire.Error)
    assert error.code == Code.AUTH_FAILED and "clock" in error.message
    assert await client.wait_closed() == 1008


async def test_second_auth_on_an_authenticated_connection(relay: RelayProcess) -> None:
    client = await online(relay)
    await client.send(make_auth(client.key, client.challenge))
    assert (await client.expect(wire.Error)).code == Code.BAD_REQUEST
    await client.close()


# -------------------------------------------------------------------------- mailboxes


async def test_offline_recipient_gets_queue_in_order_exactly_once(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    bodies = [f"message {i}".encode() for i in range(50)]
    ids = await send_all(alice, bob_id, bodies)
    bob = await WireClient.connect(relay.url, bob_key)
    assert bob.auth_ok is not None and bob.auth_ok.queued == 50
    delivered = await bob.drain_deliveries()
    assert [d.id for d in delivered] == ids
    assert [d.body for d in delivered] == bodies
    assert {d.sender for d in delivered} == {alice.identity}
    assert all(abs(d.stored_at_ms - now_ms()) < 60_000 for d in delivered)
    await bob.send(wire.Ack(ids=ids))
    await asyncio.sleep(0.2)
    await bob.close()
    bob = await WireClient.connect(relay.url, bob_key)
    assert bob.auth_ok is not None and bob.auth_ok.queued == 0
    assert await bob.drain_deliveries() == []
    assert await bob.nothing_for(0.2) == []
    await bob.close()
    await alice.close()


async def test_live_delivery_to_an_online_recipient(relay: RelayProcess) -> None:
    alice, bob = await online(relay), await online(relay)
    ids = await send_all(alice, bob.identity, [b"one", b"two"])
    got: list[bytes] = []
    while len(got) < 2:
        frame = await bob.recv()
        if isinstance(frame, wire.Deliver):
            got.append(frame.id)
        else:
            assert isinstance(frame, wire.Drained), frame
    assert got == ids
    await bob.send(wire.Ack(ids=got))
    await alice.close()
    await bob.close()


async def test_duplicate_sends_are_stored_once(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    msg_id = new_id()
    for _ in range(3):
        await alice.send(wire.Send(id=msg_id, to=bob_id, body=b"same"))
    for _ in range(3):
        assert await alice.expect(wire.Stored) == wire.Stored(id=msg_id, to=bob_id)
    bob = await WireClient.connect(relay.url, bob_key)
    delivered = await bob.drain_deliveries()
    assert [d.id for d in delivered] == [msg_id]
    # Re-sent while delivered but unacked: still one envelope.
    await alice.send(wire.Send(id=msg_id, to=bob_id, body=b"same"))
    await alice.expect(wire.Stored)
    assert await bob.nothing_for(0.2) == []
    await bob.close()
    await alice.close()


async def test_unacked_envelopes_are_redelivered_after_reconnect(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    ids = await send_all(alice, bob_id, [b"a", b"b", b"c"])
    bob = await WireClient.connect(relay.url, bob_key)
    assert [d.id for d in await bob.drain_deliveries()] == ids
    await bob.send(wire.Ack(ids=[ids[1]]))
    await asyncio.sleep(0.2)
    await bob.close()
    bob = await WireClient.connect(relay.url, bob_key)
    assert [d.id for d in await bob.drain_deliveries()] == [ids[0], ids[2]]
    await bob.close()
    await alice.close()


async def test_identity_cannot_ack_anothers_envelopes(relay: RelayProcess) -> None:
    alice, mallory = await online(relay), await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    ids = await send_all(alice, bob_id, [b"for bob"])
    await mallory.send(wire.Ack(ids=ids))  # not in Mallory's mailbox: deletes nothing
    await alice.send(wire.Ack(ids=ids))  # the sender cannot either
    await asyncio.sleep(0.2)
    bob = await WireClient.connect(relay.url, bob_key)
    assert bob.auth_ok is not None and bob.auth_ok.queued == 1
    assert [d.id for d in await bob.drain_deliveries()] == ids
    for client in (alice, mallory, bob):
        await client.close()


async def test_window_bounds_unacked_deliveries(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    ids = await send_all(alice, bob_id, [b"x"] * 600)
    bob = await WireClient.connect(relay.url, bob_key)
    first = [await bob.expect(wire.Deliver) for _ in range(512)]
    assert await bob.nothing_for(0.3) == []  # window full, no Drained either
    await bob.send(wire.Ack(ids=[d.id for d in first[:100]]))
    rest = await bob.drain_deliveries()
    assert [d.id for d in first + rest] == ids
    await bob.close()
    await alice.close()


async def test_newer_connection_replaces_the_older(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    old = await online(relay, bob_key)
    ids = await send_all(alice, bob_id, [b"m1"])
    assert (await old.expect(wire.Deliver)).id == ids[0]
    new = await WireClient.connect(relay.url, bob_key)
    assert await old.wait_closed() == 4000
    assert [d.id for d in await new.drain_deliveries()] == ids  # unacked: redelivered
    ids2 = await send_all(alice, bob_id, [b"m2"])
    assert (await new.expect(wire.Deliver)).id == ids2[0]
    await new.close()
    await alice.close()


# ----------------------------------------------------------------- limits and errors


async def test_oversized_envelope_refused_and_connection_stays_up(relay: RelayProcess) -> None:
    alice, bob = await online(relay), await online(relay)
    big_id = new_id()
    await alice.send(wire.Send(id=big_id, to=bob.identity, body=b"x" * (wire.MAX_ENVELOPE + 1)))
    error = await alice.expect(wire.Error)
    assert (error.code, error.ref) == (Code.TOO_LARGE, big_id)
    await alice.send(wire.Signal(to=bob.identity, body=b"x" * (wire.MAX_ENVELOPE + 1)))
    assert (await alice.expect(wire.Error)).code == Code.TOO_LARGE
    # Exactly MAX_ENVELOPE is fine, and the connection keeps working.
    ids = await send_all(alice, bob.identity, [b"y" * wire.MAX_ENVELOPE])
    delivered = await bob.expect(wire.Deliver)
    assert delivered.id == ids[0] and len(delivered.body) == wire.MAX_ENVELOPE
    await alice.close()
    await bob.close()


async def test_oversized_websocket_message_closes_only_that_connection(
    relay: RelayProcess,
) -> None:
    alice, bob = await online(relay), await online(relay)
    brute = await online(relay)
    await brute.send_raw(b"\x00" * (wire.MAX_FRAME + 1))
    assert await brute.wait_closed() == 1009
    ids = await send_all(alice, bob.identity, [b"still served"])
    assert (await bob.expect(wire.Deliver)).id == ids[0]
    await alice.close()
    await bob.close()


async def test_malformed_frames_get_errors_then_disconnect(relay: RelayProcess) -> None:
    client = await online(relay)
    peer = await online(relay)
    garbage: list[bytes | str] = [
        b"\xff\x00garbage",
        "text frames are not the protocol",
        wire.encode(wire.Stored(id=new_id(), to=peer.identity)),  # relay->client direction
        b"",
    ]
    for data in garbage:
        await client.send_raw(data)
        error = await client.expect(wire.Error)
        assert error.code == Code.MALFORMED and error.message
    # Well-formed frames with invalid values are bad requests, not malformed.
    await client.send(wire.Send(id=b"short", to=peer.identity, body=b""))
    assert (await client.expect(wire.Error)).code == Code.BAD_REQUEST
    await client.send(wire.Send(id=new_id(), to=b"short", body=b""))
    assert (await client.expect(wire.Error)).code == Code.BAD_REQUEST
    await client.send(wire.Ack(ids=[b"short"]))
    assert (await client.expect(wire.Error)).code == Code.BAD_REQUEST
    await client.send(wire.Ack(ids=[new_id() for _ in range(4097)]))
    assert (await client.expect(wire.Error)).code == Code.BAD_REQUEST
    # Still usable; then 20 malformed frames in total close it.
    await send_all(client, peer.identity, [b"ok"])
    for _ in range(20 - len(garbage) - 1):
        await client.send_raw(b"\xc1")
        assert (await client.expect(wire.Error)).code == Code.MALFORMED
    await client.send_raw(b"\xc1")
    assert (await client.expect(wire.Error)).code == Code.MALFORMED
    assert await client.wait_closed() == 1008
    await peer.close()


@pytest.mark.xdist_group("realtime")  # timed: 1,000 replies within the client's wait
async def test_default_limits_take_a_1000_message_burst(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    ids = [new_id() for _ in range(1000)]
    for msg_id in ids:
        await alice.send(wire.Send(id=msg_id, to=bytes(bob_key.verify_key), body=b"burst"))
    replies = [await alice.recv() for _ in ids]
    assert all(isinstance(r, wire.Stored) for r in replies), [
        r for r in replies if not isinstance(r, wire.Stored)
    ][:3]
    await alice.close()


@pytest.mark.xdist_group("realtime")  # timed: 230 requests faster than the bucket refills
async def test_fetch_bundle_is_rate_limited(relay: RelayProcess) -> None:
    client = await online(relay)
    someone = new_key()
    codes = []
    for ref in range(230):
        await client.send(wire.FetchBundle(ref=ref, identity=bytes(someone.verify_key)))
    for _ in range(230):
        error = await client.expect(wire.Error)
        codes.append(error.code)
    assert codes[:200] == [Code.NOT_FOUND] * 200
    assert Code.RATE_LIMITED in codes[200:]
    await client.close()


# ---------------------------------------------------------------------------- prekeys


def publish_frame(identity: IdentityKeyPair, ref: int, opk_count: int) -> wire.PublishPrekeys:
    spk = generate_signed_prekey(identity, 7, now_ms=0)
    return wire.PublishPrekeys(
        ref=ref,
        spk_id=spk.id,
        spk=spk.public,
        spk_sig=spk.signature,
        opks=[
            wire.OneTimePrekeyWire(id=k.id, key=k.public)
            for k in generate_one_time_prekeys(1, opk_count)
        ],
    )


async def test_prekeys_published_and_each_one_time_key_handed_out_once(
    relay: RelayProcess,
) -> None:
    import nacl.signing

    identity = IdentityKeyPair.generate()
    key = nacl.signing.SigningKey(identity.seed)
    owner = await online(relay, key)
    await owner.send(wire.PublishPrekeys(ref=1, spk_id=1, spk=b"k" * 32, spk_sig=b"s" * 64))
    refused = await owner.expect(wire.Error)
    assert (refused.code, refused.ref) == (Code.BAD_REQUEST, 1)
    frame = publish_frame(identity, ref=2, opk_count=5)
    await owner.send(frame)
    assert await owner.expect(wire.Ok) == wire.Ok(ref=2, prekeys_remaining=5)
    # One fetch per requester: each pair's one-time-prekey budget is 2 (see test_prekey_budget).
    fetchers = [await online(relay) for _ in range(7)]
    for ref in range(7):
        await fetchers[ref].send(wire.FetchBundle(ref=ref, identity=identity.public))
    bundles = [await fetchers[ref].expect(wire.Bundle) for ref in range(7)]
    assert sorted(b.ref for b in bundles) == list(range(7))
    handed = [b.opk_id for b in bundles if b.opk_id is not None]
    assert sorted(handed) == [1, 2, 3, 4, 5]  # each exactly once
    assert sum(b.opk is None for b in bundles) == 2
    assert all(b.spk == frame.spk and b.spk_sig == frame.spk_sig for b in bundles)
    await owner.close()
    again = await WireClient.connect(relay.url, key)
    assert again.auth_ok is not None
    assert (again.auth_ok.prekeys_remaining, again.auth_ok.signed_prekey_id) == (0, 7)
    for client in (again, *fetchers):
        await client.close()


# ---------------------------------------------------------------- presence and signals


async def test_presence_and_signals_are_live_and_never_stored(relay: RelayProcess) -> None:
    alice = await online(relay)
    bob_key = new_key()
    bob_id = bytes(bob_key.verify_key)
    await alice.send(wire.Subscribe(identities=[bob_id]))
    assert await alice.expect(wire.Presence) == wire.Presence(identity=bob_id, online=False)
    await alice.send(wire.Signal(to=bob_id, body=b"ring while offline"))
    bob = await online(relay, bob_key)
    assert await alice.expect(wire.Presence) == wire.Presence(identity=bob_id, online=True)
    assert await bob.nothing_for(0.3) == []  # the earlier signal was not kept
    await alice.send(wire.Signal(to=bob_id, body=b"ring"))
    assert await bob.expect(wire.SignalDeliver) == wire.SignalDeliver(
        sender=alice.identity, body=b"ring"
    )
    await bob.close()
    assert await alice.expect(wire.Presence) == wire.Presence(identity=bob_id, online=False)
    bob = await WireClient.connect(relay.url, bob_key)
    assert bob.auth_ok is not None and bob.auth_ok.queued == 0
    assert await bob.drain_deliveries() == []
    await alice.expect(wire.Presence)  # online again
    await bob.close()
    await alice.close()


async def test_relay_log_holds_metadata_only(relay: RelayProcess) -> None:
    alice, bob = await online(relay), await online(relay)
    marker = b"PLAINTEXT-MARKER-" + new_id().hex().encode()
    await send_all(alice, bob.identity, [marker])
    await bob.expect(wire.Deliver)
    await alice.close()
    await bob.close()
    await asyncio.sleep(0.2)
    log = relay.log_text() + relay.stderr_text()
    assert "authenticated" in log
    assert marker.decode() not in log
    for secret in (alice.identity.hex(), bob.identity.hex(), relay.relay_key.hex()):
        assert secret not in log
    seed = (relay.data_dir / "relay_key.seed").read_bytes()
    assert seed.hex() not in log


async def test_plain_websocket_client_is_harmless(relay: RelayProcess) -> None:
    async with connect(relay.url, compression=None) as ws:
        first = wire.decode_relay_frame(await ws.recv())
        assert isinstance(first, wire.Challenge)
    # The relay keeps serving after a client that left without a word.
    client = await online(relay)
    await client.close()

"""The relay's media route in process: pairing by join token, refusal, replacement, drop
policy (absent peer, slow reader, oversized, rate limit), auth, malformed control, alone
timeout, metadata-only logs."""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.core import media_wire, wire
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.media_route import is_media_path, token_label
from messenger_tui.relay.server import RelayServer
from tests.helpers.relay_wire_client import WireClient, new_key
from tests.relay.media_legs import (
    RawLeg,
    control_errors,
    media_frame,
    stamp_age_ms,
    stamped_frame,
)

RelayFactory = Callable[..., Any]


@pytest.fixture
async def make_relay(tmp_path: Path) -> AsyncIterator[RelayFactory]:
    started: list[RelayServer] = []

    async def factory(**overrides: Any) -> RelayServer:
        config = RelayConfig(data_dir=tmp_path / f"relay{len(started)}", **overrides)
        relay = RelayServer(config)
        await relay.start()
        started.append(relay)
        return relay

    yield factory
    for relay in started:
        await relay.stop()


@pytest.fixture
async def relay(make_relay: RelayFactory) -> RelayServer:
    server: RelayServer = await make_relay()
    return server


async def pair(relay: RelayServer, token: bytes | None = None) -> tuple[RawLeg, RawLeg]:
    token = token or os.urandom(32)
    caller = await RawLeg.connect(relay.url, token=token, leg=0)
    callee = await RawLeg.connect(relay.url, token=token, leg=1)
    assert caller.joined is not None and caller.joined.peer is False
    assert callee.joined is not None and callee.joined.peer is True
    assert await caller.recv() == media_wire.MediaPeer(present=True)
    return caller, callee


def test_media_path_dispatch() -> None:
    assert is_media_path("/media") and is_media_path("/media/") and is_media_path("/x/media?a=1")
    assert not is_media_path("/") and not is_media_path("") and not is_media_path("/mediax")


async def test_two_legs_pair_and_exchange_frames_both_ways(relay: RelayServer) -> None:
    caller, callee = await pair(relay)
    assert caller.joined is not None
    assert caller.joined.alone_timeout_ms == 60_000 and caller.joined.max_frame == 1500
    up = [media_frame(b"up%d" % i) for i in range(20)]
    down = [media_frame(b"down%d" % i, size=87) for i in range(20)]
    for a, b in zip(up, down, strict=True):
        await caller.send_media(a)
        await callee.send_media(b)
    assert [await callee.recv() for _ in up] == up  # verbatim, in order
    assert [await caller.recv() for _ in down] == down
    stats = relay.media.stats
    assert stats.forwarded == 40 and stats.dropped == 0 and len(relay.media) == 1
    # The message link still works beside it on "/".
    client = await WireClient.connect(relay.url)
    await client.recv_until(wire.Drained)
    await callee.close()
    assert await caller.recv() == media_wire.MediaPeer(present=False)
    await caller.close()
    await asyncio.sleep(0.05)
    assert len(relay.media) == 0  # the route is forgotten once both legs are gone


async def test_stranger_cannot_listen_or_inject(relay: RelayServer) -> None:
    token = os.urandom(32)
    caller, callee = await pair(relay, token)
    # A stranger who knows nothing: authenticated but never joined; and one with a wrong token.
    lurker = await RawLeg.connect(relay.url)
    wrong = await RawLeg.connect(relay.url, token=bytes(b ^ 1 for b in token[:1]) + token[1:])
    assert wrong.joined is not None and wrong.joined.peer is False
    for _ in range(5):
        await lurker.send_media(media_frame(b"inject"))
        await wrong.send_media(media_frame(b"inject"))
        await caller.send_media(media_frame(b"secret"))
    received = [await callee.recv() for _ in range(5)]
    assert all(frame[1:7] == b"secret" for frame in received)
    assert await callee.nothing_for(0.2) == []
    assert await caller.nothing_for(0.05) == []
    assert await wrong.nothing_for(0.05) == []
    assert await lurker.nothing_for(0.05) == []
    stats = relay.media.stats
    assert stats.forwarded == 5
    assert stats.dropped_not_joined == 5 and stats.dropped_no_peer == 5


async def test_occupied_leg_refused_for_another_identity(relay: RelayServer) -> None:
    token = os.urandom(32)
    caller, callee = await pair(relay, token)
    intruder = await RawLeg.connect(relay.url)
    answer = await intruder.join(token, 0)
    assert isinstance(answer, wire.Error) and answer.code == media_wire.MediaErrorCode.LEG_TAKEN
    assert await intruder.wait_closed() == 1008
    # The owner keeps the leg while the route lives, even while disconnected.
    await caller.close()
    assert await callee.recv() == media_wire.MediaPeer(present=False)
    intruder2 = await RawLeg.connect(relay.url)
    answer = await intruder2.join(token, 0)
    assert isinstance(answer, wire.Error) and answer.code == "leg_taken"
    assert relay.media.stats.refused == 2
    # Its frames never reached the callee.
    assert await callee.nothing_for(0.1) == []


async def test_same_identity_rejoin_replaces_the_old_connection(relay: RelayServer) -> None:
    token = os.urandom(32)
    caller, callee = await pair(relay, token)
    resumed = await RawLeg.connect(relay.url, caller.key, token=token, leg=0)
    assert resumed.joined is not None and resumed.joined.peer is True
    frames = await caller.nothing_for(0.2)
    assert control_errors(frames) == ["replaced"]
    assert caller.ws.close_code == 4000
    assert await callee.nothing_for(0.1) == []  # no absent/present flap for the peer
    await callee.send_media(media_frame(b"to-new"))
    assert (await resumed.recv())[1:7] == b"to-new"
    await resumed.send_media(media_frame(b"from-new"))
    assert (await callee.recv())[1:9] == b"from-new"
    assert relay.media.stats.replaced == 1


async def test_frames_to_an_absent_peer_are_dropped_not_stored(relay: RelayServer) -> None:
    token = os.urandom(32)
    caller = await RawLeg.connect(relay.url, token=token, leg=0)
    marker = os.urandom(24)
    for _ in range(30):
        await caller.send_media(b"\x01" + marker + bytes(100))
    await asyncio.sleep(0.1)
    assert relay.media.stats.dropped_no_peer == 30
    callee = await RawLeg.connect(relay.url, token=token, leg=1)
    assert await callee.nothing_for(0.2) == []  # nothing was kept for later
    await caller.close()
    await callee.close()
    data_dir = relay.config.data_dir
    await relay.stop()
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path
            assert token not in path.read_bytes(), path
            assert token.hex().encode() not in path.read_bytes(), path
    log = (data_dir / "relay.log").read_text()
    assert token_label(token) in log  # what logs may show: a short hash prefix


async def test_slow_reader_gets_drops_and_the_other_direction_stays_fast(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(media_rate_limit=RateLimit(1e6, 1_000_000))
    caller, callee = await pair(relay)
    callee.ws.transport.pause_reading()  # callee stops reading: its relay socket backs up
    big = media_frame(b"flood", size=1400)
    ages: list[float] = []

    async def fast_direction() -> None:
        for _ in range(100):
            await callee.send_media(stamped_frame())
            await asyncio.sleep(0.005)

    async def read_caller() -> None:
        while len(ages) < 100:
            frame = await caller.recv()
            if isinstance(frame, bytes):
                ages.append(stamp_age_ms(frame))

    reader = asyncio.ensure_future(read_caller())
    sender = asyncio.ensure_future(fast_direction())
    stats = relay.media.stats
    sent = 0
    async with asyncio.timeout(10):
        while stats.dropped_congested < 200:
            for _ in range(50):
                caller.ws.protocol.send_binary(big)
                caller.ws.transport.write(b"".join(caller.ws.protocol.data_to_send()))
                sent += 1
            await asyncio.sleep(0.001)
    async with asyncio.timeout(5):
        await asyncio.gather(sender, reader)
    assert stats.dropped_congested >= 200
    assert stats.forwarded - 100 < sent  # some of the flood was dropped, never queued
    # The fast direction (callee -> caller) is not held up by the stalled one.
    assert statistics.median(ages) < 20, ages
    assert max(ages) < 250, ages
    callee.ws.transport.abort()  # a stalled reader would hold the relay's close for 5 s


async def test_a_backed_up_leg_never_holds_more_than_the_write_limit() -> None:
    """What waits for a leg (the transport's buffer plus the frames framed this loop turn)
    stays within ``media_write_limit`` plus one frame: a stalled reader cannot build up
    seconds of voice at the relay."""
    from types import SimpleNamespace

    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from messenger_tui.relay.media_route import MediaRouteConnection

    class StalledTransport:
        """The kernel takes nothing: every write stays in the buffer."""

        def __init__(self) -> None:
            self.buffered = 0

        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return self.buffered

        def write(self, data: bytes) -> None:
            self.buffered += len(data)

    config = RelayConfig(data_dir=Path("unused"))
    protocol = ServerProtocol()
    protocol.state = State.OPEN
    transport = StalledTransport()
    connection = SimpleNamespace(protocol=protocol, transport=transport)
    router = SimpleNamespace(stats=None)
    leg = MediaRouteConnection(connection, SimpleNamespace(config=config), router)  # type: ignore[arg-type]
    frame = media_frame(b"x", size=1000)
    limit = config.media_write_limit
    transport.buffered = limit - 100  # the kernel stopped taking just below the limit
    accepted = 0
    for _ in range(3):  # three loop turns of a flood
        accepted += sum(leg.deliver(frame) for _ in range(20))
        await asyncio.sleep(0)  # the turn ends: what was framed is written
    assert transport.buffered <= limit + len(frame) + 16  # + one frame and its framing
    assert accepted == 1


async def test_oversized_frames_are_dropped_then_the_connection_closed(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(max_malformed=3)
    caller, callee = await pair(relay)
    await caller.send_media(media_frame(size=1501))
    answer = await caller.recv()
    assert isinstance(answer, wire.Error) and answer.code == "too_large"
    assert "1501" in answer.message and "1500" in answer.message
    await caller.send_media(media_frame(b"ok", size=1500))  # at the limit: forwarded
    assert len(await callee.recv()) == 1500
    assert relay.media.stats.dropped_oversized == 1
    await caller.send_media(media_frame(size=1501))
    await caller.send_media(media_frame(size=4000))
    assert await caller.wait_closed() == 1008  # repeated abuse
    assert all(len(f) == 1500 for f in await callee.nothing_for(0.1) if isinstance(f, bytes))
    # A message over the media route's websocket limit closes that connection (1009).
    big = await RawLeg.connect(relay.url, token=os.urandom(32), leg=0)
    await big.send_media(media_frame(size=9000))
    assert await big.wait_closed() == 1009


async def test_unauthenticated_join_and_frames_are_refused(relay: RelayServer) -> None:
    token = os.urandom(32)
    caller = await RawLeg.connect(relay.url, token=token, leg=0)
    anonymous = await RawLeg.connect(relay.url, auth=False)
    await anonymous.send_control(media_wire.MediaJoin(token=token, leg=1))
    await anonymous.send_media(media_frame(b"anon"))
    frames = await anonymous.nothing_for(0.2)
    assert control_errors(frames) == ["unauthenticated", "unauthenticated"]
    assert await caller.nothing_for(0.1) == []  # no peer appeared, nothing forwarded
    assert relay.media.stats.joins == 1 and relay.media.stats.forwarded == 0
    # A bad signature is refused like on the message link.
    forged = await RawLeg.connect(relay.url, auth=False)
    auth = wire.Auth(identity=forged.identity, time_ms=0, signature=bytes(64))
    await forged.ws.send(wire.encode(auth))
    assert control_errors(await forged.nothing_for(0.2)) == ["auth_failed"]
    assert forged.ws.close_code == 1008


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\x80", "undecodable"),
        (b"\xc1", "undecodable"),
        (b"", "undecodable"),
        ("hello", "text frames"),
        (media_wire.encode_media_control(media_wire.MediaJoin(token=bytes(31), leg=0)), "32"),
        (media_wire.encode_media_control(media_wire.MediaJoin(token=bytes(32), leg=2)), "leg"),
        (wire.encode(wire.Signal(to=bytes(32), body=b"x")), "undecodable"),
    ],
)
async def test_malformed_control_frames_get_a_clear_error(
    relay: RelayServer, payload: bytes | str, needle: str
) -> None:
    leg = await RawLeg.connect(relay.url)
    await leg.ws.send(payload)  # before the join
    answer = await leg.recv()
    assert isinstance(answer, wire.Error) and answer.code == "malformed", answer
    assert needle in answer.message
    assert isinstance(await leg.join(os.urandom(32), 0), media_wire.MediaJoined)
    await leg.ws.send(payload)  # after it
    answer = await leg.recv()
    if isinstance(payload, bytes) and payload.startswith(b"\x82"):  # a well-formed join
        assert isinstance(answer, wire.Error) and answer.code in ("malformed", "bad_request")
    else:
        assert isinstance(answer, wire.Error) and answer.code == "malformed", answer
    assert relay.media.stats.malformed >= 1


async def test_second_join_on_a_joined_connection_is_a_bad_request(relay: RelayServer) -> None:
    leg = await RawLeg.connect(relay.url, token=os.urandom(32), leg=0)
    answer = await leg.join(os.urandom(32), 1)
    assert isinstance(answer, wire.Error) and answer.code == "bad_request"


async def test_a_leg_alone_too_long_is_closed(make_relay: RelayFactory) -> None:
    relay = await make_relay(media_alone_timeout_s=0.3)
    lonely = await RawLeg.connect(relay.url, token=os.urandom(32), leg=1)
    assert lonely.joined is not None and lonely.joined.alone_timeout_ms == 300
    frames = await lonely.nothing_for(1.0)
    assert control_errors(frames) == ["alone_timeout"]
    assert lonely.ws.close_code == 4001
    # A paired leg whose peer left is alone again: the timer restarts.
    caller, callee = await pair(relay)
    await asyncio.sleep(0.4)  # paired: no timeout
    await callee.close()
    frames = await caller.nothing_for(1.0)
    assert frames[0] == media_wire.MediaPeer(present=False)
    assert control_errors(frames) == ["alone_timeout"]
    assert relay.media.stats.alone_timeouts == 2


async def test_rate_limit_drops_excess_frames(make_relay: RelayFactory) -> None:
    relay = await make_relay(media_rate_limit=RateLimit(1.0, 10))
    caller, callee = await pair(relay)
    for i in range(30):
        await caller.send_media(media_frame(bytes([i])))
    got = [f for f in await callee.nothing_for(0.3) if isinstance(f, bytes)]
    assert [f[1] for f in got] == list(range(10))
    assert relay.media.stats.dropped_rate_limited == 20


async def test_join_timeout_and_logs_hold_no_secrets(make_relay: RelayFactory) -> None:
    relay = await make_relay(auth_timeout_s=0.3)
    idle = await RawLeg.connect(relay.url)
    frames = await idle.nothing_for(1.0)
    assert control_errors(frames) == ["bad_request"]
    assert idle.ws.close_code == 1008
    key = new_key()
    token = os.urandom(32)
    leg = await RawLeg.connect(relay.url, key, token=token, leg=0)
    await leg.send_media(b"\x01" + b"SECRETFRAME" * 5)
    await leg.close()
    await asyncio.sleep(0.05)
    log = (relay.config.data_dir / "relay.log").read_text()
    assert token_label(token) in log
    assert token.hex() not in log and "SECRETFRAME" not in log

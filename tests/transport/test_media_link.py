"""MediaLink against an in-process relay: pairing, sending without blocking, peer and state
callbacks, refusal, replacement, reconnecting after a relay restart, LOST past the window."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.core.links.media_rejoin import MediaPhase
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.server import RelayServer
from messenger_tui.transport import Backoff, BadRelayUrl
from messenger_tui.transport.media_link import (
    MediaConnection,
    MediaLink,
    MediaLinkState,
    media_endpoint,
)
from messenger_tui.transport.urls import parse_relay_url
from tests.relay.media_legs import RawLeg, media_frame
from tests.transport.conftest import Identity


@dataclass
class Leg:
    link: MediaLink
    frames: list[bytes] = field(default_factory=list)
    peers: list[bool] = field(default_factory=list)
    states: list[MediaLinkState] = field(default_factory=list)


@pytest.fixture
async def make_leg() -> AsyncIterator[Callable[..., Leg]]:
    made: list[MediaLink] = []

    def factory(url: str, token: bytes, leg: int, who: Identity | None = None, **kw: Any) -> Leg:
        who = who or Identity.generate()
        kw.setdefault("backoff", Backoff(base=0.02, cap=0.1))
        kw.setdefault("connect_timeout", 2.0)
        frames: list[bytes] = []
        peers: list[bool] = []
        states: list[MediaLinkState] = []
        link = MediaLink(
            url,
            who.public,
            who.sign,
            join_token=token,
            leg=leg,
            on_frame=frames.append,
            on_peer=peers.append,
            on_state=states.append,
            **kw,
        )
        made.append(link)
        return Leg(link, frames, peers, states)

    yield factory
    for link in made:
        await link.close()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    async with RelayServer(RelayConfig(data_dir=tmp_path / "relay")) as server:
        yield server


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def test_media_endpoint_keeps_host_tls_and_pin() -> None:
    pin = "ab" * 32
    ep = media_endpoint(parse_relay_url(f"wss://relay.example:8443/chat/#sha256={pin}"))
    assert ep.connect_url == "wss://relay.example:8443/chat/media"
    assert ep.tls and ep.pin_sha256 == bytes.fromhex(pin)
    assert media_endpoint(parse_relay_url("ws://127.0.0.1:9")).connect_url == (
        "ws://127.0.0.1:9/media"
    )
    with pytest.raises(BadRelayUrl):
        MediaLink("http://x", bytes(32), bytes, join_token=bytes(32), leg=0, on_frame=print)
    with pytest.raises(ValueError, match="join_token"):
        MediaLink("ws://x:1", bytes(32), bytes, join_token=bytes(31), leg=0, on_frame=print)


async def test_two_links_pair_and_exchange_frames(
    relay: RelayServer, make_leg: Callable[..., Leg]
) -> None:
    token = os.urandom(32)
    caller = make_leg(relay.url, token, 0)
    assert caller.link.send(media_frame()) is False  # not joined yet: dropped, counted
    assert caller.link.dropped == 1
    caller.link.start()
    assert caller.link.state is MediaLinkState.CONNECTING
    assert await caller.link.wait_joined(3)
    assert caller.link.peer_present is False
    callee = make_leg(relay.url, token, 1)
    callee.link.start()
    assert await callee.link.wait_joined(3)
    await wait_for(lambda: caller.link.peer_present)
    assert callee.peers == [True] and caller.peers == [True]
    up = [media_frame(b"u%d" % i) for i in range(50)]
    down = [media_frame(b"d%d" % i, size=87) for i in range(50)]
    for a, b in zip(up, down, strict=True):
        assert caller.link.send(a) and callee.link.send(b)
    await wait_for(lambda: len(callee.frames) == 50 and len(caller.frames) == 50)
    assert callee.frames == up and caller.frames == down
    assert caller.link.sent == 50 and caller.link.received == 50 and caller.link.dropped == 1
    for leg in (caller, callee):  # all of them taken out of the byte stream by hand
        assert isinstance(leg.link._ws, MediaConnection) and leg.link._ws.split_frames == 50
    assert caller.states == [MediaLinkState.JOINED]
    with pytest.raises(ValueError):
        caller.link.send(b"\x82not media")
    assert caller.link.send(media_frame(size=1501)) is False  # the relay would drop it
    await callee.link.close()
    assert callee.link.state is MediaLinkState.CLOSED
    await wait_for(lambda: caller.peers == [True, False])
    assert relay.media.stats.forwarded == 100


async def test_send_drops_when_the_socket_buffer_is_full(
    relay: RelayServer, make_leg: Callable[..., Leg]
) -> None:
    leg = make_leg(relay.url, os.urandom(32), 0, send_buffer_limit=1000)
    leg.link.start()
    assert await leg.link.wait_joined(3)
    ws = leg.link._ws
    assert ws is not None
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ws.transport.pause_reading()
    # One synchronous burst: once the kernel buffers are full the bytes stay in the
    # transport's buffer, and send() refuses (at once, counted) until it drains.
    results = [leg.link.send(media_frame(size=1400)) for _ in range(2000)]
    assert results.count(False) > 0 and results.count(True) > 0
    assert leg.link.dropped == results.count(False)
    assert leg.link.sent == results.count(True)
    ws.transport.resume_reading()


async def test_leg_held_by_another_identity_is_lost(
    relay: RelayServer, make_leg: Callable[..., Leg]
) -> None:
    token = os.urandom(32)
    owner = make_leg(relay.url, token, 0)
    owner.link.start()
    assert await owner.link.wait_joined(3)
    intruder = make_leg(relay.url, token, 0)
    intruder.link.start()
    assert await intruder.link.wait_ended(3)
    assert intruder.link.state is MediaLinkState.LOST
    assert "leg_taken" in (intruder.link.error or "")
    assert owner.link.state is MediaLinkState.JOINED


async def test_same_identity_takes_over_and_the_old_link_is_lost(
    relay: RelayServer, make_leg: Callable[..., Leg]
) -> None:
    token = os.urandom(32)
    me = Identity.generate()
    old = make_leg(relay.url, token, 1, who=me)
    old.link.start()
    assert await old.link.wait_joined(3)
    new = make_leg(relay.url, token, 1, who=me)
    new.link.start()
    assert await new.link.wait_joined(3)
    assert await old.link.wait_ended(3)
    assert old.link.state is MediaLinkState.LOST
    assert "took over" in (old.link.error or "")


async def test_reconnects_after_a_relay_restart_within_the_window(
    tmp_path: Path, make_leg: Callable[..., Leg]
) -> None:
    config = RelayConfig(data_dir=tmp_path / "relay")
    relay = RelayServer(config)
    await relay.start()
    port = relay.port
    token = os.urandom(32)
    caller = make_leg(relay.url, token, 0, reconnect_window_s=5.0)
    callee = make_leg(relay.url, token, 1, reconnect_window_s=5.0)
    caller.link.start()
    callee.link.start()
    assert await caller.link.wait_joined(3) and await callee.link.wait_joined(3)
    await relay.stop()
    await wait_for(lambda: caller.link.state is MediaLinkState.RECONNECTING)
    assert caller.link.send(media_frame()) is False
    # at least one attempt failed while the relay is down (then it waits its backoff)
    await wait_for(lambda: caller.link.lifecycle.phase is MediaPhase.BACKING_OFF)
    again = RelayServer(RelayConfig(data_dir=tmp_path / "relay", port=port))
    await again.start()
    try:
        assert await caller.link.wait_joined(3) and await callee.link.wait_joined(3)
        await wait_for(lambda: caller.link.peer_present and callee.link.peer_present)
        assert caller.link.send(media_frame(b"after"))
        await wait_for(lambda: any(f[1:6] == b"after" for f in callee.frames))
        assert caller.states == [
            MediaLinkState.JOINED,
            MediaLinkState.RECONNECTING,
            MediaLinkState.JOINED,
        ]
        assert caller.link.counters.joins == 2
        assert caller.peers == [True, False, True]
    finally:
        await again.stop()


async def test_lost_when_the_relay_stays_down(tmp_path: Path, make_leg: Callable[..., Leg]) -> None:
    relay = RelayServer(RelayConfig(data_dir=tmp_path / "relay"))
    await relay.start()
    leg = make_leg(relay.url, os.urandom(32), 0, reconnect_window_s=0.5)
    leg.link.start()
    assert await leg.link.wait_joined(3)
    await relay.stop()
    started = asyncio.get_running_loop().time()
    assert await leg.link.wait_ended(3)
    elapsed = asyncio.get_running_loop().time() - started
    assert leg.link.state is MediaLinkState.LOST
    assert 0.4 < elapsed < 1.5
    assert "within 0.5 s" in (leg.link.error or "")
    assert leg.states == [MediaLinkState.JOINED, MediaLinkState.RECONNECTING, MediaLinkState.LOST]


async def test_never_reachable_is_lost_after_the_window(make_leg: Callable[..., Leg]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    leg = make_leg(f"ws://127.0.0.1:{port}", os.urandom(32), 0, reconnect_window_s=0.3)
    leg.link.start()
    assert await leg.link.wait_ended(2)
    assert leg.link.state is MediaLinkState.LOST
    assert "connection refused" in (leg.link.error or "")
    assert leg.states == [MediaLinkState.LOST]


async def test_peer_frames_reach_a_link_from_a_raw_leg(
    relay: RelayServer, make_leg: Callable[..., Leg]
) -> None:
    token = os.urandom(32)
    raw = await RawLeg.connect(relay.url, token=token, leg=0)
    leg = make_leg(relay.url, token, 1)
    leg.link.start()
    assert await leg.link.wait_joined(3)
    assert leg.link.peer_present and leg.peers == [True]
    await raw.send_media(media_frame(b"raw"))
    await wait_for(lambda: len(leg.frames) == 1)
    assert leg.frames[0][1:4] == b"raw"
    await raw.close()
    await wait_for(lambda: leg.peers == [True, False])


def test_both_legs_of_a_call_pick_one_node_and_show_only_a_route_key() -> None:
    from messenger_tui.transport.media_join import media_relay_url, media_route_key

    token = bytes(range(32))
    key = media_route_key(token)
    assert len(key) == 16 and token.hex()[:16] != key
    ep = media_endpoint(parse_relay_url("ws://lb.example:80/relay/"), key)
    assert ep.connect_url == f"ws://lb.example:80/relay/media?route={key}"
    nodes = ["ws://n1:1", "ws://n2:1", "ws://n3:1"]
    # the same node for both parties whatever the order of their lists
    assert media_relay_url(",".join(nodes), token) == media_relay_url(
        ",".join(reversed(nodes)), token
    )
    picked = {media_relay_url(",".join(nodes), bytes([i]) * 32) for i in range(64)}
    assert picked == set(nodes)  # calls spread over the nodes
    assert media_relay_url("ws://lb:1", token) == "ws://lb:1"

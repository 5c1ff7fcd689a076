"""Group legs on an in-process relay: the alone timeout, abuse strikes after the join, an
oversized frame, the stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.core import group_media_wire as gw
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.server import RelayServer
from tests.relay.group_legs import GroupRawLeg, group_test_frame


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    server = RelayServer(RelayConfig(data_dir=tmp_path / "relay", media_alone_timeout_s=0.5))
    await server.start()
    yield server
    await server.stop()


def closed(leg: GroupRawLeg) -> int | None:
    return leg.closed_code


async def test_a_leg_alone_is_closed_after_the_timeout(relay: RelayServer) -> None:
    leg = await GroupRawLeg.connect(relay.url, b"t" * 32)
    assert leg.joined is not None and leg.joined.alone_timeout_ms == 500
    leg.start_reading()
    await asyncio.sleep(1.0)
    assert leg.closed_code == 4001
    assert len(relay.media.groups) == 0


async def test_the_timer_stops_when_someone_joins(relay: RelayServer) -> None:
    a = await GroupRawLeg.connect(relay.url, b"t" * 32)
    a.start_reading()
    await asyncio.sleep(0.2)
    b = await GroupRawLeg.connect(relay.url, b"t" * 32)
    b.start_reading()
    await asyncio.sleep(0.6)
    assert closed(a) is None and closed(b) is None
    await b.leave()
    await asyncio.sleep(0.8)  # a is alone again
    assert closed(a) == 4001
    await a.close()
    await b.close()


async def test_requests_after_the_join_and_oversized_frames_are_strikes(
    relay: RelayServer,
) -> None:
    a = await GroupRawLeg.connect(relay.url, b"u" * 32)
    b = await GroupRawLeg.connect(relay.url, b"u" * 32)
    a.start_reading()
    b.start_reading()
    await a.send(group_test_frame(0, 0, 10, size=2000))  # over media_max_frame (1500)
    await a.raw.ws.send(gw.encode_group_control(gw.GroupJoin(token=b"u" * 32)))
    await asyncio.sleep(0.3)
    codes = [c.code for c in a.control if not isinstance(c, gw.ParticipantChange)]
    assert codes == ["too_large", "bad_request"]
    assert b.frames == []
    stats = relay.media.groups.stats
    assert stats.dropped_oversized == 1 and stats.joins == 2
    await a.close()
    await b.close()

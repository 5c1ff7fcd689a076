"""Shared fixtures of the relay tests: the relay store over each backend (SQLite on a temp dir,
Redis on a real redis-server started once per session and flushed between tests), and a
manual clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from messenger_tui.core import wire
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.redis_store import RedisStore
from messenger_tui.relay.sqlite_store import SqliteStore
from messenger_tui.relay.store import RelayStore
from tests.helpers.redis_process import RedisProcess

STORE_BACKENDS = ["sqlite", "redis"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One real redis-server (AOF, appendfsync always) for the whole session."""
    with RedisProcess() as server:
        yield server


async def open_redis_store(url: str, *, cluster: bool = False) -> RedisStore:
    """A Redis store on an emptied server (FLUSHALL on every master)."""
    s = await RedisStore.open(url, cluster=cluster)
    if cluster:
        await s.client.flushall(target_nodes="primaries")
    else:
        await s.client.flushall()
    return s


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RelayStore]:
    """The relay store, once per backend."""
    s: RelayStore
    if request.param == "sqlite":
        s = await SqliteStore.open(tmp_path / "relay.db")
    else:
        s = await open_redis_store(request.getfixturevalue("redis_server").url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """The SQLite store, for the tests that look at its file."""
    s = await SqliteStore.open(tmp_path / "relay.db")
    try:
        yield s
    finally:
        await s.close()


async def shared_body_rows(store: RelayStore) -> tuple[int, int, int]:
    """(shared bodies, their total bytes, references to them) as the backend holds them:
    read from the SQLite file itself, or from the Redis keys themselves."""
    if isinstance(store, SqliteStore):
        db = sqlite3.connect(store.path)
        try:
            bodies, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM shared_bodies"
            ).fetchone()
            (refs,) = db.execute(
                "SELECT COUNT(*) FROM envelopes WHERE body_id IS NOT NULL"
            ).fetchone()
            return int(bodies), int(size), int(refs)
        finally:
            db.close()
    assert isinstance(store, RedisStore)
    client = store.client
    names = [name async for name in client.scan_iter(match="mt:b:*")]
    bodies = size = refs = 0
    for name in names:
        body = await client.hget(name, "body")
        assert body is not None, "a shared body hash without its body"
        bodies += 1
        size += len(body)
        refs += int(await client.hlen(name)) - 1
    return bodies, size, refs


class ListSink:
    """A FrameSink that records frames (for pusher / presence unit tests)."""

    def __init__(self) -> None:
        self.frames: list[wire.RelayFrame] = []
        self.is_congested = False

    def send_frame(self, frame: wire.RelayFrame) -> None:
        self.frames.append(frame)

    def try_send_frame(self, frame: wire.RelayFrame) -> bool:
        if self.is_congested:
            return False
        self.frames.append(frame)
        return True

    def congested(self) -> bool:
        return self.is_congested

    def take(self) -> list[wire.RelayFrame]:
        frames, self.frames = self.frames, []
        return frames

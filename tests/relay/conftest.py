"""Shared fixtures of the relay tests: a SQLite store on a temp dir and a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.core import wire
from messenger_tui.relay.clock import ManualClock
from messenger_tui.relay.sqlite_store import SqliteStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "relay.db")
    try:
        yield s
    finally:
        await s.close()


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

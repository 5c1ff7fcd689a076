"""Wakeup behaves like asyncio.Event for the relay's uses, without a per-object deque."""

from __future__ import annotations

import asyncio
import sys

import pytest

from messenger_tui.relay.wakeup import Wakeup


async def test_set_wakes_all_waiters_and_clear_rearms() -> None:
    w = Wakeup()
    tasks = [asyncio.create_task(w.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)
    w.set()
    await asyncio.gather(*tasks)
    await w.wait()  # set: returns at once
    w.clear()
    waiter = asyncio.create_task(w.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    w.set()
    await waiter


async def test_cancelled_waiter_leaves_nothing_behind() -> None:
    w = Wakeup()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(w.wait(), 0.01)
    assert w._waiters is None
    w.set()  # no stale future to resolve


def test_smaller_than_asyncio_event() -> None:
    event = asyncio.Event()
    assert sys.getsizeof(Wakeup()) < sys.getsizeof(event) + sys.getsizeof(event._waiters)

"""A lighter ``asyncio.Event`` for per-connection signalling.

``asyncio.Event`` carries a deque of waiters (~0.8 KiB) from birth; a relay holding thousands
of idle connections with several events each pays for that in memory. :class:`Wakeup` has the
same set/clear/wait semantics and allocates a waiter list only while someone waits.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._flag = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Return at once if set, else when :meth:`set` is called (cancellation-safe)."""
        if self._flag:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)
                if not self._waiters:
                    self._waiters = None

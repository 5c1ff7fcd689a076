"""One helper for "once per event-loop turn": many requests in one turn, one call after it.

The app batches work that arrives in bursts this way (the deliveries of one read, the Stored
answers of one write, one OutboxChanged event for a burst of sends); the relay has the same
pattern in its outboxes. Core does not import asyncio: the loop is passed in as a getter
(``asyncio.get_running_loop``), read at each request, so the helper can be made before a
loop runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class _Loop(Protocol):
    def call_soon(self, callback: Callable[[], object], /) -> object: ...


class OncePerTurn:
    """``request()`` schedules ``fn`` with ``call_soon`` unless a call is already pending;
    ``fn`` runs once for every burst of requests made before it runs."""

    __slots__ = ("_fn", "_loop", "pending")

    def __init__(self, fn: Callable[[], None], loop: Callable[[], _Loop]) -> None:
        self._fn = fn
        self._loop = loop
        #: A call is scheduled and has not run yet.
        self.pending = False

    def request(self) -> None:
        if not self.pending:
            self.pending = True
            self._loop().call_soon(self._run)

    def _run(self) -> None:
        self.pending = False
        self._fn()

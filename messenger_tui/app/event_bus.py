"""The service's events to its subscribers (the UI, the CLI's ``receive``).

Every subscriber has its own unbounded queue and must read it promptly. Typing notices are
dropped while the ``typing`` setting is off (neither sent nor shown), and a burst of outbox
changes is published as one :class:`~messenger_tui.app.events.OutboxChanged` per event-loop
turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.core.turns import OncePerTurn


class EventBus:
    """``typing_shown()``: the typing setting now; ``outbox_count()``: rows waiting."""

    def __init__(self, typing_shown: Callable[[], bool], outbox_count: Callable[[], int]) -> None:
        self._typing_shown = typing_shown
        self._outbox_count = outbox_count
        self._subscribers: list[asyncio.Queue[ev.Event]] = []
        self._outbox_soon = OncePerTurn(self._emit_outbox_changed, asyncio.get_running_loop)

    def subscribe(self) -> asyncio.Queue[ev.Event]:
        """A queue receiving every event from now on. Read it promptly (it is unbounded)."""
        queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.TypingChanged | ev.GroupTypingChanged) and not self._typing_shown():
            return  # typing notices turned off: neither sent nor shown
        for queue in self._subscribers:
            queue.put_nowait(event)

    def outbox_changed_soon(self) -> None:
        """One OutboxChanged per event-loop turn, however many rows a burst stored."""
        if self._subscribers:
            self._outbox_soon.request()

    def _emit_outbox_changed(self) -> None:
        self.emit(ev.OutboxChanged(self._outbox_count()))

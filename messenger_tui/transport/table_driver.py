"""Driving a lifecycle table (:mod:`messenger_tui.core.links`) on the event loop.

A table is sans-I/O: it takes what happened with the time (loop time) and returns effects,
and names its next deadline. A driver carries out the effects and keeps exactly one timer
armed at that deadline: re-armed when it moves, cancelled when it goes; when it fires, the
table is polled with the deadline's time (never earlier than it asked).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar


class Table(Protocol):
    """What a driver needs of a lifecycle table."""

    @property
    def next_deadline(self) -> float | None: ...

    def poll(self, now: float) -> list[Any]: ...


T = TypeVar("T", bound=Table)


class TableDriver(ABC, Generic[T]):
    """The timer side of a table's driver; the subclass sets ``_machine`` and carries out the
    effects in :meth:`_feed`, ending with :meth:`_follow_deadline`."""

    _machine: T
    _timer: asyncio.TimerHandle | None = None

    @abstractmethod
    def _feed(self, effects: list[Any]) -> None:
        """Carry out ``effects`` (the subclass's own action types)."""

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _follow_deadline(self) -> None:
        deadline = self._machine.next_deadline
        timer = self._timer
        if timer is not None and (deadline is None or timer.when() != deadline):
            timer.cancel()
            self._timer = timer = None
        if deadline is not None and timer is None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer, deadline)

    def _on_timer(self, deadline: float) -> None:
        self._timer = None
        self._feed(self._machine.poll(max(self._now(), deadline)))

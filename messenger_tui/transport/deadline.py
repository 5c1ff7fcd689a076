"""The one timer a lifecycle table asks for (:mod:`messenger_tui.core.links`), on the event loop.

A table names its next deadline (``next_deadline``, loop time) after every input; its driver
keeps exactly one timer armed at it: re-armed when the deadline moves, cancelled when it goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def follow_deadline(
    timer: asyncio.TimerHandle | None,
    deadline: float | None,
    on_due: Callable[[float], None],
) -> asyncio.TimerHandle | None:
    """The timer for ``deadline``: ``timer`` when it is already armed there, else a new one
    calling ``on_due(deadline)`` at it (``timer`` cancelled), or None when there is none. The
    driver keeps the result and forgets it in ``on_due``."""
    if timer is not None and (deadline is None or timer.when() != deadline):
        timer.cancel()
        timer = None
    if deadline is not None and timer is None:
        timer = asyncio.get_running_loop().call_at(deadline, on_due, deadline)
    return timer

"""Which contacts are typing now, as the main screen shows it: a notice lasts
:data:`TYPING_SHOW_S` unless the contact refreshes it (they re-announce every few seconds
while typing) or says they stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from textual.timer import Timer
from textual.widget import Widget

#: A "typing" notice disappears after this long without a refresh.
TYPING_SHOW_S = 8.0


class TypingNotices:
    """Typing notices with their expiry timers (run on ``owner``); ``on_expired`` is called
    when a notice ran out without a word from the contact."""

    def __init__(self, owner: Widget, on_expired: Callable[[], None]) -> None:
        self._owner = owner
        self._on_expired = on_expired
        self._timers: dict[int, Timer] = {}

    def __contains__(self, contact_id: object) -> bool:
        return contact_id in self._timers

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._timers))

    def set(self, contact_id: int, active: bool) -> None:
        timer = self._timers.pop(contact_id, None)
        if timer is not None:
            timer.stop()
        if active:
            self._timers[contact_id] = self._owner.set_timer(
                TYPING_SHOW_S, lambda: self._expired(contact_id)
            )

    def _expired(self, contact_id: int) -> None:
        self._timers.pop(contact_id, None)
        self._on_expired()

"""Typing in a group conversation (:mod:`.group_chat`): who is typing there ("alice is
typing…" above the composer), and our own notices to the members (ephemeral): "typing" when
the composer changes, again at most every :data:`TYPING_RESEND_S`, "stopped" when it empties,
after :data:`TYPING_IDLE_S` without a key, or when the text is sent."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError

if TYPE_CHECKING:
    from messenger_tui.ui.screens.group_chat import GroupChatScreen

#: A typing notice not renewed within this many seconds is dropped (a lost "stopped").
TYPING_SHOWN_S = 6.0
#: While we type, "typing" is sent again at most this often; idle this long sends "stopped".
TYPING_RESEND_S = 3.0
TYPING_IDLE_S = 5.0


class GroupTypingTracker:
    """Who is typing in the open group (shown under the view) and our own typing notices."""

    def __init__(self, screen: GroupChatScreen) -> None:
        self.screen = screen
        #: Members typing now: identity -> (name, monotonic time the notice lapses).
        self.members: dict[bytes, tuple[str, float]] = {}
        self._sent = 0.0  # when we last sent "typing" (0: not typing)
        self._last_key = 0.0

    def changed(self, event: ev.GroupTypingChanged) -> None:
        if event.active:
            self.members[event.member] = (event.name, time.monotonic() + TYPING_SHOWN_S)
        else:
            self.members.pop(event.member, None)
        self._show()

    def sent(self, member: bytes) -> None:
        """A message of ``member`` arrived: they are no longer typing."""
        if self.members.pop(member, None) is not None:
            self._show()

    def tick(self) -> None:
        now = time.monotonic()
        lapsed = [k for k, (_, until) in self.members.items() if until <= now]
        for k in lapsed:
            del self.members[k]
        if lapsed:
            self._show()
        if self._sent and now - self._last_key >= TYPING_IDLE_S:
            self._send(False)

    def text(self) -> str:
        names = sorted(name for name, _ in self.members.values())
        if not names:
            return ""
        if len(names) == 1:
            return f"{names[0]} is typing…"
        if len(names) <= 3:
            return f"{', '.join(names[:-1])} and {names[-1]} are typing…"
        return f"{len(names)} people are typing…"

    def _show(self) -> None:
        self.screen.query_one("#group-typing", Static).update(Text(self.text()))

    def composer_changed(self, value: str) -> None:
        now = time.monotonic()
        self._last_key = now
        if not value.strip():
            self.stop()
        elif now - self._sent >= TYPING_RESEND_S:
            self._send(True)

    def stop(self) -> None:
        """Our text was sent or cleared: "stopped" if "typing" went."""
        if self._sent:
            self._send(False)

    def _send(self, active: bool) -> None:
        group = self.screen.group
        self._sent = time.monotonic() if active else 0.0
        if group is not None and group.is_member:
            self.screen.run_worker(self._worker(group.name, active), group="group-typing")

    async def _worker(self, name: str, active: bool) -> None:
        try:
            await self.screen.service.groups.send_typing(name, active)
        except AppError:
            pass  # typing is best effort: the group went away meanwhile

"""A group conversation: its messages with each sender's name (coloured per member), the
delivery state of our own ("delivered to 2 of 3, read by 1"), and a line to write in.

Opened from the conversation list (a "# name" row); Escape goes back. Driven by the
service's events: a group message, state change or membership change of this group reloads
the view, and what is shown is marked read (read receipts go to each author).
"""

from __future__ import annotations

import asyncio
import hashlib

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.group_models import Group, GroupMessage
from messenger_tui.app.models import Settings
from messenger_tui.ui.formatting import clean_text, list_time, preview

#: Messages shown (the newest).
GROUP_PAGE = 200
#: Colours of member names, picked by a hash of the member's identity key.
MEMBER_COLOURS = ("cyan", "magenta", "green", "yellow", "bright_blue", "bright_red", "orange3")


def member_colour(identity: bytes) -> str:
    return MEMBER_COLOURS[hashlib.sha256(identity).digest()[0] % len(MEMBER_COLOURS)]


def message_line(m: GroupMessage) -> Text:
    """One message as the view shows it."""
    when = Text(f"{list_time(m.sent_at_ms)} ", style="dim")
    if m.kind == "notice":
        return when + Text(f"! {m.text}", style="italic dim")
    name = "you" if m.outgoing else m.sender_name
    line = when + Text(name, style=f"bold {member_colour(m.sender)}") + Text(f": {m.text}")
    if m.outgoing:
        if m.state == "queued":
            state = "queued"
        else:
            state = f"delivered to {m.delivered} of {m.recipients}"
            if m.read:
                state += f", read by {m.read}"
        line.append(f"  ({state})", style="dim")
    return line


def announce_group(app: App[object], settings: Settings, batch: list[ev.Event]) -> None:
    """A toast per new group message (at most three), unless toasts are off or that group is
    on screen. Title: "#group · sender"."""
    if not settings.toasts:
        return
    showing = app.screen.group_row if isinstance(app.screen, GroupChatScreen) else None
    new = [
        e
        for e in batch
        if isinstance(e, ev.GroupMessageReceived)
        and e.message.kind == "text"
        and e.group.id != showing
    ]
    for e in new[-3:]:
        text = preview(clean_text(e.message.text), 200)
        title = f"#{e.group.name} · {e.message.sender_name}"
        app.notify(text, title=title, timeout=4, markup=False)
    if len(new) > 3:
        app.notify(f"and {len(new) - 3} more group messages", timeout=4)


class GroupChatScreen(Screen[None], inherit_bindings=False):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="group.back",
                tooltip="Back to the conversation list"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    GroupChatScreen { layout: vertical; }
    GroupChatScreen #group-header { height: 1; background: $panel; padding: 0 1; }
    GroupChatScreen #group-messages { height: 1fr; padding: 0 1; }
    GroupChatScreen #group-composer { dock: bottom; }
    """

    def __init__(self, service: MessengerFacade, group_row: int) -> None:
        super().__init__()
        self.service = service
        self.group_row = group_row
        self.messages: list[GroupMessage] = []
        self._queue: asyncio.Queue[ev.Event] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="group-header")
        with VerticalScroll(id="group-messages"):
            yield Static(id="group-lines")
        yield Input(placeholder="Write to the group…", id="group-composer")

    @property
    def group(self) -> Group | None:
        return self.service.groups.by_id(self.group_row)

    def on_mount(self) -> None:
        self._queue = self.service.subscribe()
        self._consume(self._queue)
        self.reload()
        self.query_one(Input).focus()

    def on_unmount(self) -> None:
        if self._queue is not None:
            self.service.unsubscribe(self._queue)

    @work(exclusive=True, group="group-events")
    async def _consume(self, queue: asyncio.Queue[ev.Event]) -> None:
        while True:
            event = await queue.get()
            ours = (
                isinstance(
                    event, ev.GroupMessageReceived | ev.GroupMessageStateChanged | ev.GroupChanged
                )
                and event.group.id == self.group_row
            )
            if ours and queue.empty():
                self.reload()

    def reload(self) -> None:
        group = self.group
        if group is None:
            return
        if group.unread:
            self.service.groups.mark_read(group.name)
        self.messages = self.service.groups.history(group.name, limit=GROUP_PAGE)
        members = ", ".join(m.name for m in group.members)
        about = f"{len(group.members)} members: {members}" if group.is_member else "you left"
        self.query_one("#group-header", Static).update(Text(f"# {group.name} — {about}"))
        lines = Text("\n").join(message_line(m) for m in self.messages)
        self.query_one("#group-lines", Static).update(lines)
        self.query_one("#group-messages", VerticalScroll).scroll_end(animate=False)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        group = self.group
        if not text.strip() or group is None:
            return
        try:
            self.service.groups.send_text(group.name, text)
        except AppError as exc:
            self.notify(str(exc), severity="error")
            return
        event.input.value = ""
        self.reload()

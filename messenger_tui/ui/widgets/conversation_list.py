"""The conversation list: one option per contact, most recent activity first.

Each option shows a presence dot, the name (⚠ when the key changed, ⊘ when blocked), the time of
the last message, a one-line preview (or "typing…") and the unread count.
"""

from __future__ import annotations

import contextlib

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from messenger_tui.app.facade import ConversationSummary
from messenger_tui.app.group_models import Group
from messenger_tui.ui.formatting import list_time, preview


def option_id(contact_id: int) -> str:
    return f"contact-{contact_id}"


def contact_id_of(option_id_: str | None) -> int | None:
    if option_id_ and option_id_.startswith("contact-"):
        return int(option_id_.removeprefix("contact-"))
    return None


def group_option_id(group_row: int) -> str:
    return f"group-{group_row}"


def group_id_of(option_id_: str | None) -> int | None:
    if option_id_ and option_id_.startswith("group-"):
        return int(option_id_.removeprefix("group-"))
    return None


class ConversationList(OptionList, inherit_bindings=False):
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False, id="conversations.up",
                tooltip="Highlight the previous conversation"),
        Binding("down", "cursor_down", "Down", show=False, id="conversations.down",
                tooltip="Highlight the next conversation"),
        Binding("home", "first", "First", show=False, id="conversations.first",
                tooltip="Highlight the most recent conversation"),
        Binding("end", "last", "Last", show=False, id="conversations.last",
                tooltip="Highlight the oldest conversation"),
        Binding("pageup", "page_up", "Page up", show=False, id="conversations.page_up",
                tooltip="Move the highlight one page up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="conversations.page_down",
                tooltip="Move the highlight one page down"),
        Binding("enter", "select", "Open", show=False, id="conversations.open",
                tooltip="Open the highlighted conversation and focus the composer"),
    ]  # fmt: skip

    COMPONENT_CLASSES = {
        "conversations--online",
        "conversations--offline",
        "conversations--name",
        "conversations--time",
        "conversations--preview",
        "conversations--typing",
        "conversations--unread",
        "conversations--warning",
    }

    DEFAULT_CSS = """
    ConversationList {
        border: none;
        padding: 0;
        height: 1fr;
        max-height: 100%;
        scrollbar-size-vertical: 1;
        &:focus { border: none; }
        & > .option-list--option { padding: 0; }
    }
    ConversationList > .conversations--online { color: $success; }
    ConversationList > .conversations--offline { color: $text-muted; }
    ConversationList > .conversations--name { text-style: bold; }
    ConversationList > .conversations--time { color: $text-muted; }
    ConversationList > .conversations--preview { color: $text-muted; }
    ConversationList > .conversations--typing { color: $accent; text-style: italic; }
    ConversationList > .conversations--unread {
        color: $text; background: $accent; text-style: bold;
    }
    ConversationList > .conversations--warning { color: $warning; text-style: bold; }
    """

    class TypeToFilter(Message):
        """A printable key on the list: the screen moves it to the filter field."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    def on_key(self, event: events.Key) -> None:
        # "?" is left to the help key binding.
        char = event.character
        if event.is_printable and char and not char.isspace() and char != "?":
            event.stop()
            event.prevent_default()
            self.post_message(self.TypeToFilter(char))

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._summaries: list[ConversationSummary] = []
        self._presence: dict[int, bool] = {}
        self._typing: set[int] = set()
        self._groups: list[Group] = []
        self._width = 0

    @property
    def summaries(self) -> list[ConversationSummary]:
        return list(self._summaries)

    @property
    def highlighted_contact(self) -> int | None:
        if self.highlighted is None:
            return None
        return contact_id_of(self.get_option_at_index(self.highlighted).id)

    def set_data(
        self,
        summaries: list[ConversationSummary],
        presence: dict[int, bool],
        typing: set[int],
        groups: list[Group] | None = None,
    ) -> None:
        """Show these conversations (already sorted), then ``groups`` (marked #); keeps the
        highlighted contact."""
        self._groups = list(groups or [])
        self._summaries = list(summaries)
        self._presence = dict(presence)
        self._typing = set(typing)
        self._rebuild()

    def highlight_contact(self, contact_id: int) -> None:
        with contextlib.suppress(OptionDoesNotExist):
            self.highlighted = self.get_option_index(option_id(contact_id))

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._rebuild()

    def _rebuild(self) -> None:
        # the highlighted row by its option id: a contact's or a group's (a rebuild while a
        # group is highlighted must not move the highlight to the first contact)
        keep = None if self.highlighted is None else self.get_option_at_index(self.highlighted).id
        self._width = self.scrollable_content_region.width
        self.clear_options()
        self.add_options(
            Option(self._prompt(s), id=option_id(s.contact.id)) for s in self._summaries
        )
        self.add_options(
            Option(self._group_prompt(g), id=group_option_id(g.id)) for g in self._groups
        )
        if keep is not None:
            with contextlib.suppress(OptionDoesNotExist):
                self.highlighted = self.get_option_index(keep)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _prompt(self, s: ConversationSummary) -> Text:
        width = max(10, self._width or 24)
        c = s.contact
        online = self._presence.get(c.id, False)
        dot_style = "conversations--online" if online else "conversations--offline"
        dot = Text("● " if online else "○ ", self._style(dot_style))
        when = ""
        if s.last_activity_ms is not None:
            when = list_time(s.last_activity_ms)
        flag = ("⚠ " if c.key_changed else "") + ("⊘ " if c.blocked else "")
        name_room = width - 2 - cell_len(flag) - (cell_len(when) + 1 if when else 0)
        name = c.name if cell_len(c.name) <= name_room else c.name[: max(1, name_room - 1)] + "…"
        line1 = (
            dot
            + Text(flag, self._style("conversations--warning"))
            + Text(name, self._style("conversations--name"))
        )
        if when:
            line1.append(" " * max(1, width - line1.cell_len - cell_len(when)))
            line1.append(when, self._style("conversations--time"))
        badge = f" {s.unread if s.unread < 1000 else '999+'} " if s.unread else ""
        room = width - 2 - (cell_len(badge) + 1 if badge else 0)
        if c.blocked:
            body = Text(preview("blocked", room), self._style("conversations--warning"))
        elif c.id in self._typing:
            body = Text(preview("typing…", room), self._style("conversations--typing"))
        elif c.auto_added:  # a stranger wrote: marked until accepted (Alt+A) or blocked
            last = s.last_message.text if s.last_message is not None else ""
            text = f"request: {last}" if last else "message request"
            body = Text(preview(text, room), self._style("conversations--warning"))
        elif s.last_message is not None:
            m = s.last_message
            prefix = "you: " if m.outgoing else ""
            body = Text(preview(prefix + m.text, room), self._style("conversations--preview"))
        else:
            body = Text(preview("no messages yet", room), self._style("conversations--preview"))
        line2 = Text("  ") + body
        if badge:
            line2.append(" " * max(1, width - line2.cell_len - cell_len(badge)))
            line2.append(badge, self._style("conversations--unread"))
        return Text("\n").join([line1, line2])

    def _group_prompt(self, g: Group) -> Text:
        """A group: "# name", its member count (or "left"), and the unread badge."""
        width = max(10, self._width or 24)
        line1 = Text("# ", self._style("conversations--offline")) + Text(
            preview(g.name, width - 2), self._style("conversations--name")
        )
        about = f"{len(g.members)} members" if g.is_member else "you left this group"
        badge = f" {g.unread if g.unread < 1000 else '999+'} " if g.unread else ""
        room = width - 2 - (cell_len(badge) + 1 if badge else 0)
        line2 = Text("  ") + Text(preview(about, room), self._style("conversations--preview"))
        if badge:
            line2.append(" " * max(1, width - line2.cell_len - cell_len(badge)))
            line2.append(badge, self._style("conversations--unread"))
        return Text("\n").join([line1, line2])

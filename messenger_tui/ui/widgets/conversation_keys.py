"""The conversation view's scrolling keys (:mod:`.conversation_view`): line, page, oldest,
newest, without animation (a conversation jumps; it does not glide). End goes to the newest
message, loading the newest page first when the view shows an older window (a search result):
the view's :meth:`jump_to_newest`."""

from __future__ import annotations

from textual.binding import Binding
from textual.scroll_view import ScrollView


class ScrollKeys(ScrollView, inherit_bindings=False):
    """Bindings and actions the conversation view scrolls with."""

    BINDINGS = [
        Binding("up", "scroll_up", "Up", show=False, id="messages.line_up",
                tooltip="Scroll the conversation one line up"),
        Binding("down", "scroll_down", "Down", show=False, id="messages.line_down",
                tooltip="Scroll the conversation one line down"),
        Binding("pageup", "page_up", "Page up", show=False, id="messages.page_up_view",
                tooltip="Scroll the conversation one page up (older)"),
        Binding("pagedown", "page_down", "Page down", show=False, id="messages.page_down_view",
                tooltip="Scroll the conversation one page down (newer)"),
        Binding("home", "scroll_home", "Oldest", show=False, id="messages.oldest",
                tooltip="Scroll to the oldest loaded message (older pages load on the way)"),
        Binding("end", "scroll_end", "Newest", show=False, id="messages.newest",
                tooltip="Jump to the newest message"),
    ]  # fmt: skip

    def action_scroll_up(self) -> None:
        self.scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self.scroll_down(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def action_scroll_home(self) -> None:
        self.scroll_home(animate=False, x_axis=False)

    def action_scroll_end(self) -> None:
        self.jump_to_newest()

    def jump_to_newest(self) -> None:
        """Scroll to the newest message (the view loads the newest page first if needed)."""
        self.scroll_end(animate=False, x_axis=False, immediate=True, force=True)

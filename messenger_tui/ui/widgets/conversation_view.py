"""The conversation view: a line-API widget that renders messages from the store, paged.

Never one widget per message: the view keeps the loaded messages (a window of the
conversation, newest pages first: :class:`~.history_window.HistoryWindow`) and a flat list of
rendered lines (one :class:`Strip` each, drawn by :mod:`.message_lines`), and ``render_line``
only picks lines out of it. Each message's lines are rendered once per width and cached; a
state change re-renders one message. Scrolling near the top loads the page before the oldest
loaded message through the ``load_older`` callback (the facade's ``history(before_id=...)``)
and keeps what is on screen in place.

A search result opens the conversation *around* a message (:meth:`ConversationView.show_at`):
the window then does not reach the newest message, scrolling near the bottom loads the next
page through the ``load_newer`` callback (``history_after``), and End jumps to the newest page.
At most :data:`MAX_LOADED` messages stay loaded; the far end is dropped and loads again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from messenger_tui.app.images import PREVIEW_COLS, PREVIEW_ROWS, CellRow
from messenger_tui.app.models import UNREAD_KINDS, Message
from messenger_tui.core.message_states import MessageState
from messenger_tui.ui.image_display import HALF_BLOCKS, KITTY, OFF, kitty_lines, picture_pixels
from messenger_tui.ui.widgets.history_window import (
    MAX_LOADED,
    PAGE_SIZE,
    HistoryWindow,
    Loader,
    NewerLoader,
)
from messenger_tui.ui.widgets.message_lines import (
    LINE_STYLES,
    Pen,
    day_strip,
    highlighted,
    hint_strips,
    message_day,
    message_strips,
    unread_strip,
)

#: Re-exported: the screen and tests page with these.
__all__ = ["LOAD_MARGIN", "MAX_LOADED", "PAGE_SIZE", "ConversationView", "Loader", "NewerLoader"]

#: Load the previous page when the top of the view comes this close (in lines).
LOAD_MARGIN = 3


#: (message row, columns, lines) -> (cell rows, drawn from the full image) or None.
PreviewLoader = Callable[[int, int, int], Awaitable[tuple[list[CellRow], bool] | None]]
#: (message row, width px, height px) -> (PNG, from the full image) or None (kitty, sixel).
PictureLoader = Callable[[int, int, int], Awaitable[tuple[bytes, bool] | None]]


class ConversationView(ScrollView, can_focus=True, inherit_bindings=False):
    """Messages of one conversation. Feed it with :meth:`show`, :meth:`append`,
    :meth:`update_states`; it asks ``load_older`` for more as the user scrolls up."""

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

    COMPONENT_CLASSES: ClassVar[set[str]] = set(LINE_STYLES)

    DEFAULT_CSS = """
    ConversationView {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    ConversationView > .conversation--time { color: $text-muted; }
    ConversationView > .conversation--own-name { color: $accent; text-style: bold; }
    ConversationView > .conversation--their-name { color: $secondary; text-style: bold; }
    ConversationView > .conversation--own-text { color: $text; }
    ConversationView > .conversation--their-text { color: $text; }
    ConversationView > .conversation--notice { color: $warning; text-style: italic; }
    ConversationView > .conversation--day { color: $text-muted; }
    ConversationView > .conversation--mark { color: $text-muted; }
    ConversationView > .conversation--mark-read { color: $accent; text-style: bold; }
    ConversationView > .conversation--mark-error { color: $error; text-style: bold; }
    ConversationView > .conversation--hint { color: $text-muted; text-style: italic; }
    ConversationView > .conversation--unread { color: $accent; text-style: bold; }
    ConversationView > .conversation--link { color: $accent; text-style: underline; }
    ConversationView > .conversation--code { background: $panel; color: $text; }
    ConversationView > .conversation--highlight { background: $accent 35%; }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._window = HistoryWindow()
        self._their_name = ""
        self._highlight: int | None = None  # row shown highlighted (a search result)
        self._hint = ""
        self._width = 0
        self._cache: dict[int, list[Strip]] = {}
        self._lines: list[Strip] = []
        self._line_owner: list[int | None] = []  # message row id per line (None: separator)
        self._unread_from: int | None = None  # "new messages" line before this row
        #: The view shows the newest line and keeps doing so when its height changes (a call
        #: pane opens or closes, the terminal is resized): set by scrolling, read on resize.
        self._following = True
        #: The inline line of a voice message (the screen sets it: ui/screens/voice_actions).
        self.voice_label: Callable[[Message], str | None] = lambda _m: None
        #: Loads an image message's half-block preview (set by the screen; app/images.py).
        self.preview_loader: PreviewLoader | None = None
        #: Loads an image message's picture for the terminal's graphics protocol, and what
        #: images are drawn with now (ui/image_display.py; set by the screen).
        self.picture_loader: PictureLoader | None = None
        self.display_mode: Callable[[], str] = lambda: HALF_BLOCKS
        self._previews: dict[int, list[CellRow]] = {}
        self._pictures: dict[int, list[list[Segment]]] = {}
        self._preview_asked: set[int] = set()

    # ------------------------------------------------------------------ public API

    @property
    def messages(self) -> list[Message]:
        """The loaded messages, oldest first."""
        return list(self._window.messages)

    @property
    def has_more(self) -> bool:
        return self._window.has_more

    @property
    def has_newer(self) -> bool:
        """Whether newer messages exist than the loaded ones (after opening a search result)."""
        return self._window.has_newer

    @property
    def highlighted(self) -> int | None:
        """The row shown highlighted (the search result jumped to), if any."""
        return self._highlight

    def visible_rows(self) -> list[int]:
        """Row ids of the messages (partly) on screen, oldest first."""
        top = int(self.scroll_y)
        height = self.scrollable_content_region.height
        out: list[int] = []
        for owner in self._line_owner[top : top + height]:
            if owner is not None and (not out or out[-1] != owner):
                out.append(owner)
        return out

    def message(self, row_id: int) -> Message | None:
        return self._window.get(row_id)

    def text_lines(self) -> list[str]:
        """The rendered lines as plain text (tests, debugging)."""
        return [strip.text for strip in self._lines]

    def set_hint(self, hint: str) -> None:
        """Text shown when there are no messages (an empty state)."""
        self._hint = hint
        if not self._window.messages:
            self._relayout(keep="end")

    def show(
        self,
        their_name: str,
        page: list[Message],
        loader: Loader | None,
        *,
        page_size: int,
        newer_loader: NewerLoader | None = None,
    ) -> None:
        """Show a conversation: its newest page, scrolled to the end."""
        self._their_name = their_name
        self._window.open_newest(page, loader, newer_loader, page_size=page_size)
        self._highlight = None
        self._cache.clear()
        self._unread_from = next(
            (
                m.id
                for m in page
                if not m.outgoing and m.kind in UNREAD_KINDS and m.state == "received"
            ),
            None,
        )
        self._relayout(keep="end")
        if self._unread_from is not None:
            self._scroll_to_unread()

    def show_at(
        self,
        their_name: str,
        page: list[Message],
        target: int,
        loader: Loader | None,
        newer_loader: NewerLoader | None,
    ) -> None:
        """Show a conversation around the message ``target`` (a row id in ``page``, which
        holds the messages around it): scrolled to it and highlighted. Older and newer pages
        load as the user scrolls either way."""
        self._their_name = their_name
        self._window.open_around(page, loader, newer_loader)
        self._cache.clear()
        self._unread_from = None
        self._highlight = target if target in self._window else None
        self._relayout(keep="none")
        self.scroll_to_row(target)
        self._fill_if_short()

    def scroll_to_row(self, row_id: int) -> bool:
        """Scroll so that the message ``row_id`` is a third down the view."""
        try:
            line = self._line_owner.index(row_id)
        except ValueError:
            return False
        height = self.scrollable_content_region.height
        self.scroll_to(y=max(0, line - height // 3), animate=False, immediate=True, force=True)
        return True

    def set_their_name(self, their_name: str) -> None:
        """The contact was renamed: show the new name on their messages."""
        if their_name != self._their_name:
            self._their_name = their_name
            self._cache.clear()
            self._relayout(keep="same")

    def jump_to_newest(self) -> None:
        """Scroll to the newest message, loading the newest page first when the window does
        not reach it (after a search result)."""
        if self._window.back_to_newest():
            self._cache.clear()
            self._relayout(keep="end")
            return
        self.scroll_end(animate=False, x_axis=False, immediate=True, force=True)

    @property
    def unread_marker(self) -> int | None:
        """The row the "new messages" line stands before, if any."""
        return self._unread_from

    def set_unread_marker(self, row_id: int | None) -> None:
        if row_id != self._unread_from:
            self._unread_from = row_id
            self._relayout(keep="same")

    def _scroll_to_unread(self) -> None:
        """Open at the first unread message when they do not all fit on screen."""
        try:
            marker = self._line_owner.index(self._unread_from)
        except ValueError:
            return
        height = self.scrollable_content_region.height
        if height and len(self._lines) - (marker - 1) > height:
            self.scroll_to(y=max(0, marker - 2), animate=False, immediate=True, force=True)

    def clear(self, hint: str = "") -> None:
        self._hint = hint
        self._their_name = ""
        self._window.clear()
        self._highlight = None
        self._unread_from = None
        self._cache.clear()
        self._relayout(keep="end")

    def append(self, messages: Iterable[Message]) -> None:
        """Add new messages at the end (ignores ones already shown); follows the end if the
        view was at the end."""
        window = self._window
        fresh = window.fresh(list(messages))
        if not fresh or window.has_newer:
            return  # a window before the newest: they load when the user scrolls down
        follow = self.following
        was_empty = not window.messages
        if window.messages and fresh[0].id < window.messages[-1].id:
            # Out of order (rare): merge and rebuild.
            window.merge(fresh)
            self._relayout(keep="end" if follow else "top")
            return
        prev_day = message_day(window.messages[-1]) if window.messages else None
        window.extend(fresh)
        if follow:
            dropped = window.trim_followed()
            if dropped is not None:
                self._forget(dropped)
                self._relayout(keep="end")
                return
        if was_empty or not self._width:
            self._relayout(keep="end")
            return
        start = len(self._lines)
        lines, owners = self._draw(fresh, prev_day)
        self._lines.extend(lines)
        self._line_owner.extend(owners)
        self.virtual_size = Size(self._width, len(self._lines))
        self.refresh_lines(start, len(self._lines) - start)
        if follow and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.refresh()

    def update_states(self, states: dict[int, MessageState]) -> None:
        """Own messages moved to a new delivery state (row id -> state)."""
        changed = [row for row, state in states.items() if self._window.set_state(row, state)]
        for row_id in changed:
            self._cache.pop(row_id, None)
        if changed:
            self._relayout(keep="same")

    def redraw_message(self, row_id: int) -> None:
        """Draw one message again (a voice message's play position moved)."""
        if self._cache.pop(row_id, None) is not None:
            self._relayout(keep="same")

    def reload(self, page: list[Message], *, page_size: int) -> None:
        """Replace the content with a fresh newest page (e.g. after a notice was inserted).
        A window before the newest (a search result) stays: it is only drawn again."""
        if self._window.has_newer:
            self._cache.clear()
            self._relayout(keep="same")
            return
        follow = self.following
        self._window.reload(page, page_size=page_size)
        self._cache.clear()
        self._relayout(keep="end" if follow else "same")

    def load_older(self) -> bool:
        """Load the page before the oldest loaded message; keep the view where it was.
        Returns whether anything was loaded."""
        return self._paged(self._window.older())

    def load_newer(self) -> bool:
        """Load the page after the newest loaded message (when the window does not reach the
        newest, after a search result); keep the view where it was."""
        return self._paged(self._window.newer())

    def _paged(self, loaded: tuple[list[Message], list[int]] | None) -> bool:
        if loaded is None:
            return False
        self._forget(loaded[1])
        self._relayout_anchored()
        return True

    def _forget(self, row_ids: list[int]) -> None:
        """Messages left the window: drop their drawn lines (they load again as pages)."""
        for row_id in row_ids:
            self._cache.pop(row_id, None)

    def _relayout_anchored(self) -> None:
        """Rebuild the lines keeping the first visible message at the same place on screen."""
        self._relayout(keep="none", anchor=self._anchor(reach=50))

    def _anchor(self, reach: int) -> tuple[int, int] | None:
        """The first loaded message drawn within ``reach`` lines from the top of the view, and
        how far the top stands below its first line."""
        top = int(self.scroll_y)
        for y in range(top, min(len(self._line_owner), top + reach)):
            owner = self._line_owner[y]
            if owner is not None and owner in self._window:
                return owner, top - self._line_owner.index(owner)
        return None

    def _fill_if_short(self) -> None:
        """Load newer pages while the window does not fill the view (nothing to scroll)."""
        height = self.scrollable_content_region.height
        for _ in range(5):
            if not self._window.has_newer or len(self._lines) > height + LOAD_MARGIN:
                return
            if not self.load_newer():
                return

    # ------------------------------------------------------------------ actions (no animation)

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

    # ------------------------------------------------------------------ Textual hooks

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if 0 <= index < len(self._lines):
            strip = self._lines[index]
        else:
            strip = Strip.blank(width, self.rich_style)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    @property
    def following(self) -> bool:
        """Whether the view sticks to the newest message (it was at the end before any
        change of its size)."""
        return self._following or self.is_vertical_scroll_end

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        follow = self._following and not self._window.has_newer
        if width != self._width:
            self._cache.clear()
            self._relayout(keep="end" if follow else "same")
        elif follow and not self.is_vertical_scroll_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        if self._width:
            self._relayout(keep="same")

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._following = new_value >= self.max_scroll_y
        window = self._window
        if new_value < LOAD_MARGIN and window.has_more and not window.loading:
            self.call_later(self._load_older_if_near_top)
        if window.has_newer and not window.loading and new_value > self.max_scroll_y - LOAD_MARGIN:
            self.call_later(self._load_newer_if_near_bottom)

    def _load_older_if_near_top(self) -> None:
        if self.scroll_y < LOAD_MARGIN:
            self.load_older()

    def _load_newer_if_near_bottom(self) -> None:
        if self.scroll_y > self.max_scroll_y - LOAD_MARGIN:
            self.load_newer()

    # ------------------------------------------------------------------ image previews

    def preview_size(self) -> tuple[int, int]:
        """Columns and lines of an inline image preview at this view's size."""
        cols = max(8, min(PREVIEW_COLS, self.scrollable_content_region.width - 24))
        return cols, max(3, min(PREVIEW_ROWS, self.size.height // 4))

    def reload_preview(self, row_id: int) -> None:
        """Draw the preview of this message again (its full image was downloaded)."""
        self._preview_asked.discard(row_id)
        if self.message(row_id) is not None:
            self._cache.pop(row_id, None)
            self._relayout(keep="same")

    async def _load_preview(self, row_id: int) -> None:
        cols, rows = self.preview_size()
        if self.display_mode() == KITTY and self.picture_loader is not None:
            picture = await self.picture_loader(row_id, *picture_pixels(cols, rows))
            if picture is not None:
                self._pictures[row_id] = kitty_lines(picture[0], cols, rows)
                self._cache.pop(row_id, None)
                self._relayout(keep="same")
                return
        loader = self.preview_loader
        if loader is None:
            return
        found = await loader(row_id, cols, rows)
        if found is None:
            return
        self._previews[row_id] = found[0]
        self._cache.pop(row_id, None)
        self._relayout(keep="same")

    # ------------------------------------------------------------------ layout

    def _relayout(self, keep: str, anchor: tuple[int, int] | None = None) -> None:
        """Rebuild the flat line list. ``keep``: "end" (scroll to the end), "same" (keep the
        first visible message in place), "top", or "none" (scroll to ``anchor`` if given,
        else the caller scrolls)."""
        width = self.scrollable_content_region.width
        if keep == "same" and self._lines and not self.is_vertical_scroll_end:
            anchor = self._anchor(reach=1)
        at_end = self.is_vertical_scroll_end
        self._width = width
        lines, owners = self._draw(self._window.messages if width > 0 else [], prev_day=None)
        if width > 0 and not self._window.messages and self._hint:
            lines.extend(hint_strips(self._pen(), self._hint))
            owners.extend([None] * (len(lines) - len(owners)))
        self._lines = lines
        self._line_owner = owners
        self.virtual_size = Size(width, len(lines))
        self.refresh()
        if keep == "end" or (keep == "same" and at_end):
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif anchor is not None:  # ("top" has none: it stays where it is)
            owner, offset = anchor
            try:
                y = owners.index(owner) + offset
            except ValueError:
                return
            self.scroll_to(y=max(0, y), animate=False, immediate=True, force=True)

    def _draw(
        self, messages: list[Message], prev_day: date | None
    ) -> tuple[list[Strip], list[int | None]]:
        """The lines of ``messages`` following a message of ``prev_day``: a day separator
        before each new day, the "new messages" line, each message's (cached) lines; with the
        owner of each line (a row id, None for separators)."""
        if not messages:
            return [], []
        pen = self._pen()
        lines: list[Strip] = []
        owners: list[int | None] = []
        for m in messages:
            day = message_day(m)
            if day != prev_day:
                lines.append(day_strip(pen, day))
                owners.append(None)
                prev_day = day
            if m.id == self._unread_from:
                lines.append(unread_strip(pen))
                owners.append(None)
            block = self._block(pen, m)
            lines.extend(block)
            owners.extend([m.id] * len(block))
        return lines, owners

    def _pen(self) -> Pen:
        return Pen(self._width, self.rich_style, self.app.console, self._style)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _block(self, pen: Pen, m: Message) -> list[Strip]:
        cached = self._cache.get(m.id)
        if cached is not None:
            return cached
        voice = self.voice_label(m) if m.kind == "voice" else None
        if (
            m.kind == "attachment"
            and m.id not in self._preview_asked
            and self.preview_loader
            and self.display_mode() != OFF
        ):
            self._preview_asked.add(m.id)
            self.run_worker(self._load_preview(m.id), group="previews")
        block = message_strips(
            pen,
            m,
            self._their_name,
            self._previews.get(m.id),
            voice=voice,
            picture=self._pictures.get(m.id),
        )
        if m.id == self._highlight:
            block = highlighted(pen, block)
        self._cache[m.id] = block
        return block

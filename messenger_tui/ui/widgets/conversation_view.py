"""The conversation view: a line-API widget that renders messages from the store, paged.

Never one widget per message: the view keeps the loaded messages (a window of the
conversation, newest pages first) and a flat list of rendered lines (one :class:`Strip` each),
and ``render_line`` only picks lines out of it. Each message's lines are rendered once per
width and cached; a state change re-renders one message. Scrolling near the top loads the
page before the oldest loaded message through the ``load_older`` callback (the facade's
``history(before_id=...)``) and keeps what is on screen in place.

A search result opens the conversation *around* a message (:meth:`ConversationView.show_at`):
the window then does not reach the newest message, scrolling near the bottom loads the next
page through the ``load_newer`` callback (``history_after``), and End jumps to the newest page.
At most :data:`MAX_LOADED` messages stay loaded; the far end is dropped and loads again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import date

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from messenger_tui.app.models import Message
from messenger_tui.core.message_states import MessageState
from messenger_tui.ui.formatting import STATE_MARKS, clean_text, clock, day_label, local_dt

#: Messages per page loaded from the store.
PAGE_SIZE = 100
#: While following the newest messages, keep at most this many loaded (older ones are
#: dropped and load again as pages when the user scrolls up): memory stays bounded.
MAX_LOADED = 2000
#: Load the previous page when the top of the view comes this close (in lines).
LOAD_MARGIN = 3
#: Width of the name column (longer names are cut).
NAME_WIDTH = 10
OWN_NAME = "you"

Loader = Callable[[int, int], list[Message]]  # (before_id, limit) -> page, oldest first
NewerLoader = Callable[[int, int], list[Message]]  # (after_id, limit) -> page, oldest first
#: ``before_id`` that loads the newest page.
NEWEST = 2**62

_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")
_CODE = re.compile(r"`([^`\n]+)`")


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

    COMPONENT_CLASSES = {
        "conversation--time",
        "conversation--own-name",
        "conversation--their-name",
        "conversation--own-text",
        "conversation--their-text",
        "conversation--notice",
        "conversation--day",
        "conversation--mark",
        "conversation--mark-read",
        "conversation--mark-error",
        "conversation--hint",
        "conversation--unread",
        "conversation--link",
        "conversation--code",
        "conversation--highlight",
    }

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
        self._messages: list[Message] = []
        self._pos: dict[int, int] = {}
        self._their_name = ""
        self._loader: Loader | None = None
        self._newer_loader: NewerLoader | None = None
        self._has_more = False
        self._has_newer = False  # the window ends before the newest message (search result)
        self._highlight: int | None = None  # row shown highlighted (a search result)
        self._loading = False
        self._hint = ""
        self._width = 0
        self._cache: dict[int, list[Strip]] = {}
        self._lines: list[Strip] = []
        self._line_owner: list[int | None] = []  # message row id per line (None: separator)
        self._unread_from: int | None = None  # "new messages" line before this row
        #: The view shows the newest line and keeps doing so when its height changes (a call
        #: pane opens or closes, the terminal is resized): set by scrolling, read on resize.
        self._following = True

    # ------------------------------------------------------------------ public API

    @property
    def messages(self) -> list[Message]:
        """The loaded messages, oldest first."""
        return list(self._messages)

    @property
    def has_more(self) -> bool:
        return self._has_more

    @property
    def has_newer(self) -> bool:
        """Whether newer messages exist than the loaded ones (after opening a search result)."""
        return self._has_newer

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
        pos = self._pos.get(row_id)
        return self._messages[pos] if pos is not None else None

    def text_lines(self) -> list[str]:
        """The rendered lines as plain text (tests, debugging)."""
        return [strip.text for strip in self._lines]

    def set_hint(self, hint: str) -> None:
        """Text shown when there are no messages (an empty state)."""
        self._hint = hint
        if not self._messages:
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
        self._loader = loader
        self._newer_loader = newer_loader
        self._messages = list(page)
        self._reindex()
        self._has_more = loader is not None and len(page) >= page_size
        self._has_newer = False
        self._highlight = None
        self._cache.clear()
        self._unread_from = next(
            (m.id for m in page if not m.outgoing and m.kind == "text" and m.state == "received"),
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
        self._loader = loader
        self._newer_loader = newer_loader
        self._messages = list(page)
        self._reindex()
        self._cache.clear()
        self._unread_from = None
        self._highlight = target if target in self._pos else None
        first, last = (page[0].id, page[-1].id) if page else (NEWEST, 0)
        self._has_more = bool(page) and loader is not None and bool(loader(first, 1))
        self._has_newer = bool(page) and newer_loader is not None and bool(newer_loader(last, 1))
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
        if self._has_newer and self._loader is not None:
            page = self._loader(NEWEST, PAGE_SIZE)
            self._messages = list(page)
            self._reindex()
            self._cache.clear()
            self._has_newer = False
            self._has_more = len(page) >= PAGE_SIZE
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
        self._loader = None
        self._newer_loader = None
        self._messages = []
        self._pos = {}
        self._has_more = False
        self._has_newer = False
        self._highlight = None
        self._unread_from = None
        self._cache.clear()
        self._relayout(keep="end")

    def append(self, messages: Iterable[Message]) -> None:
        """Add new messages at the end (ignores ones already shown); follows the end if the
        view was at the end."""
        fresh = [m for m in messages if m.id not in self._pos]
        if not fresh or self._has_newer:
            return  # a window before the newest: they load when the user scrolls down
        follow = self.following
        was_empty = not self._messages
        fresh.sort(key=lambda m: m.id)
        if self._messages and fresh[0].id < self._messages[-1].id:
            # Out of order (rare): merge and rebuild.
            self._messages = sorted([*self._messages, *fresh], key=lambda m: m.id)
            self._reindex()
            self._relayout(keep="end" if follow else "top")
            return
        prev_day = self._day(self._messages[-1]) if self._messages else None
        for m in fresh:
            self._pos[m.id] = len(self._messages)
            self._messages.append(m)
        if follow and len(self._messages) > MAX_LOADED:
            dropped = self._messages[: len(self._messages) - MAX_LOADED // 2]
            self._messages = self._messages[len(dropped) :]
            for m in dropped:
                self._cache.pop(m.id, None)
            self._reindex()
            self._has_more = self._loader is not None
            self._relayout(keep="end")
            return
        if was_empty or not self._width:
            self._relayout(keep="end")
            return
        start = len(self._lines)
        for m in fresh:
            day = self._day(m)
            if day != prev_day:
                self._lines.append(self._day_strip(day))
                self._line_owner.append(None)
                prev_day = day
            if m.id == self._unread_from:
                self._lines.append(self._unread_strip())
                self._line_owner.append(None)
            block = self._block(m)
            self._lines.extend(block)
            self._line_owner.extend([m.id] * len(block))
        self.virtual_size = Size(self._width, len(self._lines))
        self.refresh_lines(start, len(self._lines) - start)
        if follow and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.refresh()

    def update_states(self, states: dict[int, MessageState]) -> None:
        """Own messages moved to a new delivery state (row id -> state)."""
        changed = False
        for row_id, state in states.items():
            pos = self._pos.get(row_id)
            if pos is None or self._messages[pos].state == state:
                continue
            self._messages[pos] = dataclasses.replace(self._messages[pos], state=state)
            self._cache.pop(row_id, None)
            changed = True
        if changed:
            self._relayout(keep="same")

    def reload(self, page: list[Message], *, page_size: int) -> None:
        """Replace the content with a fresh newest page (e.g. after a notice was inserted).
        A window before the newest (a search result) stays: it is only drawn again."""
        if self._has_newer:
            self._cache.clear()
            self._relayout(keep="same")
            return
        follow = self.following
        self._messages = list(page)
        self._reindex()
        self._has_more = self._loader is not None and len(page) >= page_size
        self._cache.clear()
        self._relayout(keep="end" if follow else "same")

    def load_older(self) -> bool:
        """Load the page before the oldest loaded message; keep the view where it was.
        Returns whether anything was loaded."""
        if not self._has_more or self._loader is None or self._loading or not self._messages:
            return False
        self._loading = True
        try:
            page = [
                m for m in self._loader(self._messages[0].id, PAGE_SIZE) if m.id not in self._pos
            ]
        finally:
            self._loading = False
        self._has_more = len(page) >= PAGE_SIZE
        if not page:
            return False
        self._messages = page + self._messages
        if len(self._messages) > MAX_LOADED and self._newer_loader is not None:
            self._drop(newest=len(self._messages) - MAX_LOADED)
        self._reindex()
        self._relayout_anchored()
        return True

    def load_newer(self) -> bool:
        """Load the page after the newest loaded message (when the window does not reach the
        newest, after a search result); keep the view where it was."""
        if not self._has_newer or self._newer_loader is None or self._loading or not self._messages:
            return False
        self._loading = True
        try:
            page = [
                m
                for m in self._newer_loader(self._messages[-1].id, PAGE_SIZE)
                if m.id not in self._pos
            ]
        finally:
            self._loading = False
        self._has_newer = len(page) >= PAGE_SIZE
        if not page:
            return False
        self._messages = self._messages + page
        if len(self._messages) > MAX_LOADED and self._loader is not None:
            self._drop(oldest=len(self._messages) - MAX_LOADED)
        self._reindex()
        self._relayout_anchored()
        return True

    def _drop(self, *, oldest: int = 0, newest: int = 0) -> None:
        """Forget loaded messages at either end (they load again as pages)."""
        if oldest:
            for m in self._messages[:oldest]:
                self._cache.pop(m.id, None)
            self._messages = self._messages[oldest:]
            self._has_more = True
        if newest:
            for m in self._messages[len(self._messages) - newest :]:
                self._cache.pop(m.id, None)
            self._messages = self._messages[: len(self._messages) - newest]
            self._has_newer = True

    def _relayout_anchored(self) -> None:
        """Rebuild the lines keeping the first visible message at the same place on screen."""
        top = int(self.scroll_y)
        anchor: tuple[int, int] | None = None
        for y in range(top, min(len(self._line_owner), top + 50)):
            owner = self._line_owner[y]
            if owner is not None and owner in self._pos:
                anchor = (owner, top - self._line_owner.index(owner))
                break
        self._relayout(keep="none")
        if anchor is not None:
            owner, offset = anchor
            y = self._line_owner.index(owner) + offset
            self.scroll_to(y=max(0, y), animate=False, immediate=True, force=True)

    def _fill_if_short(self) -> None:
        """Load newer pages while the window does not fill the view (nothing to scroll)."""
        height = self.scrollable_content_region.height
        for _ in range(5):
            if not self._has_newer or len(self._lines) > height + LOAD_MARGIN:
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
        follow = self._following and not self._has_newer
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
        if new_value < LOAD_MARGIN and self._has_more and not self._loading:
            self.call_later(self._load_older_if_near_top)
        if self._has_newer and not self._loading and new_value > self.max_scroll_y - LOAD_MARGIN:
            self.call_later(self._load_newer_if_near_bottom)

    def _load_older_if_near_top(self) -> None:
        if self.scroll_y < LOAD_MARGIN:
            self.load_older()

    def _load_newer_if_near_bottom(self) -> None:
        if self.scroll_y > self.max_scroll_y - LOAD_MARGIN:
            self.load_newer()

    # ------------------------------------------------------------------ layout

    def _reindex(self) -> None:
        self._pos = {m.id: i for i, m in enumerate(self._messages)}

    @staticmethod
    def _day(m: Message) -> date:
        return local_dt(m.sent_at_ms).date()

    def _relayout(self, keep: str) -> None:
        """Rebuild the flat line list. ``keep``: "end" (scroll to the end), "same" (keep the
        first visible message in place), "top", or "none" (caller scrolls)."""
        width = self.scrollable_content_region.width
        anchor: tuple[int, int] | None = None
        if keep == "same" and self._lines and not self.is_vertical_scroll_end:
            top = int(self.scroll_y)
            if 0 <= top < len(self._line_owner):
                owner = self._line_owner[top]
                if owner is not None:
                    anchor = (owner, top - self._line_owner.index(owner))
        at_end = self.is_vertical_scroll_end
        self._width = width
        lines: list[Strip] = []
        owners: list[int | None] = []
        if width > 0:
            prev_day: date | None = None
            for m in self._messages:
                day = self._day(m)
                if day != prev_day:
                    lines.append(self._day_strip(day))
                    owners.append(None)
                    prev_day = day
                if m.id == self._unread_from:
                    lines.append(self._unread_strip())
                    owners.append(None)
                block = self._block(m)
                lines.extend(block)
                owners.extend([m.id] * len(block))
            if not self._messages and self._hint:
                lines.extend(self._hint_strips())
                owners.extend([None] * (len(lines) - len(owners)))
        self._lines = lines
        self._line_owner = owners
        self.virtual_size = Size(width, len(lines))
        self.refresh()
        if keep == "end" or (keep == "same" and at_end):
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif keep == "top":
            pass
        elif anchor is not None:
            owner, offset = anchor
            try:
                y = owners.index(owner) + offset
            except ValueError:
                return
            self.scroll_to(y=y, animate=False, immediate=True, force=True)

    # ------------------------------------------------------------------ rendering

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _to_strip(self, text: Text) -> Strip:
        base = self.rich_style
        segments = [
            Segment(seg.text, base + seg.style if seg.style else base, seg.control)
            for seg in text.render(self.app.console)
        ]
        return Strip(segments, text.cell_len).extend_cell_length(self._width, base)

    def _day_strip(self, day: date) -> Strip:
        label = f" {day_label(day)} "
        width = self._width
        side = max(0, (width - cell_len(label)) // 2)
        line = "─" * side + label + "─" * max(0, width - side - cell_len(label))
        return self._to_strip(Text(line[:width] if cell_len(line) > width else line,
                                   style=self._style("conversation--day")))  # fmt: skip

    def _unread_strip(self) -> Strip:
        label = " new messages "
        width = self._width
        line = (label + "─" * max(0, width - cell_len(label) - 2)).rjust(width, "─")[:width]
        return self._to_strip(Text(line, style=self._style("conversation--unread")))

    def _decorate(self, body: Text) -> Text:
        """Links (clickable where the terminal supports OSC 8), *bold*, _italic_, `code`."""
        plain = body.plain
        if "://" in plain:
            link_style = self._style("conversation--link")
            for match in _URL.finditer(plain):
                body.stylize(link_style + Style(link=match.group(0)), match.start(), match.end())
        if "*" in plain:
            for match in _BOLD.finditer(plain):
                body.stylize("bold", match.start(1), match.end(1))
        if "_" in plain:
            for match in _ITALIC.finditer(plain):
                body.stylize("italic", match.start(1), match.end(1))
        if "`" in plain:
            code_style = self._style("conversation--code")
            for match in _CODE.finditer(plain):
                body.stylize(code_style, match.start(1), match.end(1))
        return body

    def _hint_strips(self) -> list[Strip]:
        out = [Strip.blank(self._width, self.rich_style)]
        text = Text(self._hint, style=self._style("conversation--hint"))
        for line in text.wrap(self.app.console, max(1, self._width - 2)):
            line.pad_left(1)
            out.append(self._to_strip(line))
        return out

    def _block(self, m: Message) -> list[Strip]:
        cached = self._cache.get(m.id)
        if cached is not None:
            return cached
        block = self._render_message(m)
        if m.id == self._highlight:
            style = self._style("conversation--highlight")
            block = [
                Strip([Segment(t, (st or Style()) + style, c) for t, st, c in strip],
                      strip.cell_length)
                for strip in block
            ]  # fmt: skip
        self._cache[m.id] = block
        return block

    def _render_message(self, m: Message) -> list[Strip]:
        width = self._width
        time_text = clock(m.sent_at_ms)
        console = self.app.console
        if m.kind in ("notice", "call"):
            icon = "☏" if m.kind == "call" else "⚠"
            indent = len(time_text) + 3
            body = Text(clean_text(m.text), style=self._style("conversation--notice"))
            wrapped = body.wrap(console, max(1, width - indent), overflow="fold")
            out = []
            for i, line in enumerate(wrapped):
                head = (
                    Text.assemble((time_text, self._style("conversation--time")), " ",
                                  (icon, self._style("conversation--notice")), " ")
                    if i == 0
                    else Text(" " * indent)
                )  # fmt: skip
                out.append(self._to_strip(head + line))
            return out
        name = OWN_NAME if m.outgoing else (self._their_name or "them")
        if cell_len(name) > NAME_WIDTH:
            name = name[: NAME_WIDTH - 1] + "…"
        name_style = self._style(
            "conversation--own-name" if m.outgoing else "conversation--their-name"
        )
        text_style = self._style(
            "conversation--own-text" if m.outgoing else "conversation--their-text"
        )
        indent = len(time_text) + 1 + NAME_WIDTH + 1
        mark_width = 3 if m.outgoing else 0
        text_width = max(1, width - indent - mark_width)
        body = self._decorate(Text(clean_text(m.text) or " ", style=text_style))
        wrapped = body.wrap(console, text_width, overflow="fold")
        out = []
        last = len(wrapped) - 1
        for i, line in enumerate(wrapped):
            if i == 0:
                head = Text.assemble(
                    (time_text, self._style("conversation--time")),
                    " ",
                    (name.ljust(NAME_WIDTH), name_style),
                    " ",
                )
            else:
                head = Text(" " * indent)
            row = head + line
            if m.outgoing and i == last:
                mark = STATE_MARKS.get(m.state, "")
                mark_style = self._style(
                    "conversation--mark-read"
                    if m.state == "read"
                    else "conversation--mark-error"
                    if m.state == "error"
                    else "conversation--mark"
                )
                pad = max(1, width - row.cell_len - cell_len(mark))
                row.append(" " * pad)
                row.append(mark, mark_style)
            out.append(self._to_strip(row))
        return out

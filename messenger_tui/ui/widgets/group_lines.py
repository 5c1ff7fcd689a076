"""The group conversation's lines: a line-API log (Textual's ``RichLog``) of one rendered
:class:`~rich.text.Text` per message.

Each message is wrapped once, when it is written; only the lines on screen are drawn. New
messages are appended (:meth:`GroupLines.append`: the cost of the new ones only), so a backlog
arriving while the group is open costs a few lines per message, not a re-render of every
message shown (benchmarks/ui_group_backlog_stall.py). :meth:`GroupLines.show` replaces them all
(a state or membership change); a change of width re-wraps what is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual import events
from textual.strip import Strip
from textual.widgets import RichLog

from messenger_tui.ui.image_display import sixel_overlay

#: Messages kept (and re-wrapped on a resize): the group screen shows the newest 200.
MAX_KEPT = 400
#: Lines the log keeps (Textual's ``RichLog.max_lines``; unbounded by default): four per
#: message kept, hundreds of messages of scrollback. Without a bound a 5,000-message backlog
#: left ~280,000 objects behind the open group (each line a Strip with its own caches), and
#: the garbage collector's full passes over them stalled the event loop up to 78 ms each
#: (benchmarks/ui_group_backlog_stall.py; 8 per message still left 115 ms stalls).
MAX_LINES = 4 * MAX_KEPT
#: Style meta key on the last line of a preview with a sixel picture: the message's row.
SIXEL_META = "sixel_row"
#: (message row) -> (sixel data, preview lines, indent) or None.
SixelSource = Callable[[int], tuple[str, int, int] | None]


class GroupLines(RichLog):
    DEFAULT_CSS = """
    GroupLines {
        height: 1fr;
        width: 1fr;
        padding: 0 1;
        background: transparent;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
    }
    GroupLines:focus { background-tint: transparent; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            wrap=True, markup=False, highlight=False, min_width=1, max_lines=MAX_LINES, id=id
        )
        #: The rendered messages, oldest first (what a resize writes again).
        self.texts: list[Text] = []
        self._width = 0  # the widget's width the lines are wrapped for (0: not known yet)
        #: Sixel pictures over previews (the group screen's media sets it).
        self.sixel_source: SixelSource = lambda _row: None

    def show(self, texts: Iterable[Text]) -> None:
        """Replace every line with these messages."""
        self.texts = list(texts)[-MAX_KEPT:]
        if self._width:
            self._write_all()

    def append(self, texts: Iterable[Text]) -> None:
        """Add messages after the last one."""
        new = list(texts)
        self.texts.extend(new)
        if len(self.texts) > MAX_KEPT:
            del self.texts[: len(self.texts) - MAX_KEPT]
        if self._width and new:
            # one write for the lot: the log's size and scroll position change once
            self.write(Text("\n").join(new), width=self._wrap_width(), scroll_end=True)

    def _wrap_width(self) -> int:
        # the gutter of the scrollbar is kept (scrollbar-gutter: stable), so the width to wrap
        # at does not change when the scrollbar appears
        return max(1, self.scrollable_content_region.width)

    def _write_all(self) -> None:
        self.clear()
        if self.texts:
            self.write(Text("\n").join(self.texts), width=self._wrap_width(), scroll_end=True)

    def render_line(self, y: int) -> Strip:
        """The line; on the last line of a preview with a sixel picture that is wholly on
        screen (and the screen active), the picture drawn over its half-blocks."""
        strip = super().render_line(y)
        row = next(
            (seg.style.meta[SIXEL_META] for seg in strip
             if seg.style is not None and seg.style.meta.get(SIXEL_META) is not None),
            None,
        )  # fmt: skip
        found = self.sixel_source(row) if isinstance(row, int) else None
        if found is None or not self.screen.is_active:
            return strip
        data, lines, indent = found
        if y - lines + 1 < 0:
            return strip  # cut by the top edge: the half-blocks stand in
        region = self.scrollable_content_region
        overlay = sixel_overlay(data, region.x + indent, region.y + y - lines + 1)
        return Strip([*strip, overlay], strip.cell_length)

    def on_resize(self, event: events.Resize) -> None:
        # (RichLog's own handler runs after this one and writes what was deferred until the
        # size was known, at the width given here)
        if event.size.width and event.size.width != self._width:
            self._width = event.size.width
            self._write_all()

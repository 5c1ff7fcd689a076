"""How the conversation view draws: one message, a day separator, the "new messages" line and
the empty-state hint, each as :class:`Strip` lines of one width.

Pure drawing: no scrolling, no paging, no cache (the view caches a message's lines per
width). The widget hands in a :class:`Pen`: the width, its base style, the console and the
lookup of its component styles (``conversation--*``), so the theme stays in the widget's CSS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from rich.cells import cell_len
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from messenger_tui.app.images import CellRow
from messenger_tui.app.models import Message
from messenger_tui.ui.formatting import STATE_MARKS, clean_text, clock, day_label, local_dt

#: Width of the name column (longer names are cut).
NAME_WIDTH = 10
OWN_NAME = "you"
#: The widget's component classes these lines are drawn with (its CSS gives their colours).
LINE_STYLES = frozenset({
    "conversation--time", "conversation--own-name", "conversation--their-name",
    "conversation--own-text", "conversation--their-text", "conversation--notice",
    "conversation--day", "conversation--mark", "conversation--mark-read",
    "conversation--mark-error", "conversation--hint", "conversation--unread",
    "conversation--link", "conversation--code", "conversation--highlight",
})  # fmt: skip

_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")
_CODE = re.compile(r"`([^`\n]+)`")


def message_day(m: Message) -> date:
    """The local day a message was sent on (a separator stands before each new day)."""
    return local_dt(m.sent_at_ms).date()


@dataclass(frozen=True, slots=True)
class Pen:
    """What drawing needs from the widget: the line width, the base style, the console that
    renders and wraps, and the widget's component style by name."""

    width: int
    base: Style
    console: Console
    style: Callable[[str], Style]

    def strip(self, text: Text) -> Strip:
        """One line of text on the base style, padded to the width."""
        base = self.base
        segments = [
            Segment(seg.text, base + seg.style if seg.style else base, seg.control)
            for seg in text.render(self.console)
        ]
        return Strip(segments, text.cell_len).extend_cell_length(self.width, base)


def day_strip(pen: Pen, day: date) -> Strip:
    """``──── Today ────``"""
    label = f" {day_label(day)} "
    width = pen.width
    side = max(0, (width - cell_len(label)) // 2)
    line = "─" * side + label + "─" * max(0, width - side - cell_len(label))
    return pen.strip(Text(line[:width] if cell_len(line) > width else line,
                          style=pen.style("conversation--day")))  # fmt: skip


def unread_strip(pen: Pen) -> Strip:
    """`` new messages ─────`` before the first unread message."""
    label = " new messages "
    width = pen.width
    line = (label + "─" * max(0, width - cell_len(label) - 2)).rjust(width, "─")[:width]
    return pen.strip(Text(line, style=pen.style("conversation--unread")))


def hint_strips(pen: Pen, hint: str) -> list[Strip]:
    """The empty-state hint: a blank line, then the hint wrapped and indented by one."""
    out = [Strip.blank(pen.width, pen.base)]
    text = Text(hint, style=pen.style("conversation--hint"))
    for line in text.wrap(pen.console, max(1, pen.width - 2)):
        line.pad_left(1)
        out.append(pen.strip(line))
    return out


def highlighted(pen: Pen, block: list[Strip]) -> list[Strip]:
    """A message's lines drawn highlighted (the search result jumped to)."""
    style = pen.style("conversation--highlight")
    return [
        Strip([Segment(t, (st or Style()) + style, c) for t, st, c in strip], strip.cell_length)
        for strip in block
    ]


def decorate(pen: Pen, body: Text) -> Text:
    """Links (clickable where the terminal supports OSC 8), *bold*, _italic_, `code`."""
    plain = body.plain
    if "://" in plain:
        link_style = pen.style("conversation--link")
        for match in _URL.finditer(plain):
            body.stylize(link_style + Style(link=match.group(0)), match.start(), match.end())
    if "*" in plain:
        for match in _BOLD.finditer(plain):
            body.stylize("bold", match.start(1), match.end(1))
    if "_" in plain:
        for match in _ITALIC.finditer(plain):
            body.stylize("italic", match.start(1), match.end(1))
    if "`" in plain:
        code_style = pen.style("conversation--code")
        for match in _CODE.finditer(plain):
            body.stylize(code_style, match.start(1), match.end(1))
    return body


def preview_strips(pen: Pen, cells: list[CellRow], indent: int) -> list[Strip]:
    """An image preview under a message: ``▀`` per cell, the upper pixel as its colour and
    the lower one as its background (two pixels per cell), cut to the width."""
    out = []
    room = max(0, pen.width - indent)
    for row in cells:
        segments = [Segment(" " * indent, pen.base)]
        for top, bottom in row[:room]:
            segments.append(
                Segment("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
            )
        out.append(Strip(segments).extend_cell_length(pen.width, pen.base))
    return out


def picture_strips(pen: Pen, lines: list[list[Segment]], indent: int) -> list[Strip]:
    """A picture in the terminal's graphics protocol under a message (kitty's placeholder
    cells: ui/image_display.py), cut to the width."""
    out = []
    for line in lines:
        strip = Strip([Segment(" " * indent, pen.base), *line])
        out.append(strip.crop(0, pen.width).extend_cell_length(pen.width, pen.base))
    return out


def message_strips(
    pen: Pen,
    m: Message,
    their_name: str,
    preview: list[CellRow] | None = None,
    *,
    voice: str | None = None,
    picture: list[list[Segment]] | None = None,
) -> list[Strip]:
    """One message: time, name column, wrapped text, and for own messages the delivery mark
    at the right of the last line; an image's ``preview`` (half-blocks) under it. Notices
    and call records: time, icon, italic text. A voice message shows ``voice`` (its player
    line) instead of its text."""
    width = pen.width
    time_text = clock(m.sent_at_ms)
    style = pen.style
    if m.kind in ("notice", "call"):
        icon = "☏" if m.kind == "call" else "⚠"
        indent = len(time_text) + 3
        body = Text(clean_text(m.text), style=style("conversation--notice"))
        wrapped = body.wrap(pen.console, max(1, width - indent), overflow="fold")
        out = []
        for i, line in enumerate(wrapped):
            head = (
                Text.assemble((time_text, style("conversation--time")), " ",
                              (icon, style("conversation--notice")), " ")
                if i == 0
                else Text(" " * indent)
            )  # fmt: skip
            out.append(pen.strip(head + line))
        return out
    name = OWN_NAME if m.outgoing else (their_name or "them")
    if cell_len(name) > NAME_WIDTH:
        name = name[: NAME_WIDTH - 1] + "…"
    name_style = style("conversation--own-name" if m.outgoing else "conversation--their-name")
    text_style = style("conversation--own-text" if m.outgoing else "conversation--their-text")
    indent = len(time_text) + 1 + NAME_WIDTH + 1
    mark_width = 3 if m.outgoing else 0
    text_width = max(1, width - indent - mark_width)
    if voice is not None:
        body = Text(voice, style=text_style)
    else:
        body = decorate(pen, Text(clean_text(m.text) or " ", style=text_style))
    wrapped = body.wrap(pen.console, text_width, overflow="fold")
    out = []
    last = len(wrapped) - 1
    for i, line in enumerate(wrapped):
        if i == 0:
            head = Text.assemble(
                (time_text, style("conversation--time")),
                " ",
                (name.ljust(NAME_WIDTH), name_style),
                " ",
            )
        else:
            head = Text(" " * indent)
        row = head + line
        if m.outgoing and i == last:
            mark = STATE_MARKS.get(m.state, "")
            mark_style = style(
                "conversation--mark-read"
                if m.state == "read"
                else "conversation--mark-error"
                if m.state == "error"
                else "conversation--mark"
            )
            pad = max(1, width - row.cell_len - cell_len(mark))
            row.append(" " * pad)
            row.append(mark, mark_style)
        out.append(pen.strip(row))
    if picture:
        out.extend(picture_strips(pen, picture, indent))
    elif preview:
        out.extend(preview_strips(pen, preview, indent))
    return out

"""Images and voice messages in place in a group conversation (:mod:`.group_chat`), as the
1:1 conversation view has them.

* An image's preview under its line: kitty's placeholder cells where the terminal and the
  ``image_preview`` setting allow (ui/image_display.py), else half-blocks (``▀`` per cell,
  the upper pixel as its colour and the lower one as its background), drawn from the
  thumbnail the pointer carries and drawn again from the full image once it is downloaded
  (the facade's ``image_preview`` / ``image_picture``, decoded off the event loop).
  Loaded once per message; the view is rebuilt when it arrives.
* Alt+O opens the newest file received in this group with the desktop's program (on request
  only: received files never open by themselves).
* Alt+← / Alt+→ move the voice message playing 5 s back or ahead; Alt+S steps its speed
  (1x, 1.5x, 2x). Play/pause (Alt+P) is :mod:`.group_file_actions`'.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from messenger_tui.app.errors import AppError
from messenger_tui.app.group_models import GroupMessage
from messenger_tui.app.images import PREVIEW_COLS, PREVIEW_ROWS, CellRow
from messenger_tui.app.models import TransferView
from messenger_tui.ui.image_display import KITTY, OFF, kitty_lines, picture_pixels
from messenger_tui.ui.screens.transfer_actions import display_mode
from messenger_tui.ui.widgets.group_lines import GroupLines

if TYPE_CHECKING:
    from messenger_tui.ui.screens.group_chat import GroupChatScreen

#: Columns the preview stands in from the left (under the time).
PREVIEW_INDENT = 2


def preview_text(cells: list[CellRow], indent: int = PREVIEW_INDENT) -> Text:
    """An image preview as lines of ``▀`` cells (two pixels per cell)."""
    out = Text()
    for i, row in enumerate(cells):
        if i:
            out.append("\n")
        out.append(" " * indent)
        for top, bottom in row:
            out.append("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
    return out


def picture_text(lines: list[list[Segment]], indent: int = PREVIEW_INDENT) -> Text:
    """A picture in kitty's placeholder cells (ui/image_display.py) as lines of text."""
    out = Text()
    for i, line in enumerate(lines):
        if i:
            out.append("\n")
        out.append(" " * indent)
        for segment in line:
            out.append(segment.text, segment.style)
    return out


class GroupMedia:
    """The group screen's image previews and its open / seek / speed keys."""

    def __init__(self, screen: GroupChatScreen) -> None:
        self.screen = screen
        #: Loaded previews by message row (half-blocks), and pictures (kitty placeholders).
        self.previews: dict[int, list[CellRow]] = {}
        self.pictures: dict[int, list[list[Segment]]] = {}
        self._asked: set[int] = set()

    # ------------------------------------------------------------------ previews

    def preview_size(self) -> tuple[int, int]:
        """Columns and lines of a preview at the view's size (as the 1:1 view's)."""
        lines = self.screen.query_one(GroupLines)
        cols = max(8, min(PREVIEW_COLS, lines.scrollable_content_region.width - 24))
        return cols, max(3, min(PREVIEW_ROWS, lines.size.height // 4))

    def preview(self, m: GroupMessage) -> Text | None:
        """The preview to draw under ``m`` (None: not an image, or not loaded yet; asking
        for it loads it in a worker the first time)."""
        if m.kind != "attachment" or display_mode(self.screen) == OFF:
            return None
        if m.id not in self._asked:
            self._asked.add(m.id)
            self.screen.run_worker(self._load(m.id), group="group-previews")
        picture = self.pictures.get(m.id)
        if picture:
            return picture_text(picture)
        cells = self.previews.get(m.id)
        return None if not cells else preview_text(cells)

    def transfer_changed(self, view: TransferView) -> None:
        """A download of this group finished: its preview is drawn again from the full
        image (on the reload the event brings)."""
        if view.direction == "down" and view.status == "done" and view.message_row is not None:
            self._asked.discard(view.message_row)

    async def _load(self, row: int) -> None:
        lines = self.screen.query_one(GroupLines)
        for _ in range(40):  # the screen was just mounted: its size comes with the layout
            if lines.scrollable_content_region.width > 0:
                break
            await asyncio.sleep(0.05)
        cols, rows = self.preview_size()
        service = self.screen.service
        if display_mode(self.screen) == KITTY:
            picture = await service.image_picture(row, *picture_pixels(cols, rows))
            if picture is not None:
                self.pictures[row] = kitty_lines(picture[0], cols, rows)
                self.screen.reload()
                return
        found = await service.image_preview(row, cols, rows)
        if found is None:
            return
        self.previews[row] = found[0]
        self.screen.reload()

    # ------------------------------------------------------------------ keys

    def open_newest(self) -> None:
        """Open the newest file received in this group (Alt+O)."""
        saved = [
            v
            for v in self.screen.service.transfers()
            if v.group_row == self.screen.group_row and v.direction == "down" and v.status == "done"
        ]
        if not saved:
            self.screen.notify("No received file to open here.", severity="warning")
            return
        newest = max(saved, key=lambda v: v.id)
        try:
            self.screen.service.open_file(newest.id)
        except AppError as exc:
            self.screen.notify(str(exc), severity="error", markup=False)
            return
        self.screen.notify(f"Opening {newest.name}", markup=False)

    def seek(self, forward: bool) -> None:
        """Alt+← / Alt+→: 5 s back or ahead in the voice message playing."""
        if self.screen.service.voice.player is None:
            return
        self.screen.service.voice.seek(forward)
        self.screen.reload()

    def next_speed(self) -> None:
        """Alt+S: the next speed of voice messages."""
        speed = self.screen.service.voice.next_speed()
        self.screen.notify(f"Voice messages play at {speed:g}x")
        self.screen.reload()

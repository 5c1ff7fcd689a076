"""The inline images of the conversation view (:mod:`.conversation_view`): each image
message's preview, loaded once in a worker and drawn under its line.

What draws it follows ``display_mode`` (ui/image_display.py: the ``image_preview`` setting
within what the terminal allows): kitty's placeholder cells from a PNG the app downscaled
(``picture_loader``), else half-blocks (``preview_loader``), in sixel mode with sixel data
drawn over them by the view, or nothing (``off``). A finished
download draws its preview again from the full image (:meth:`InlineImages.forget`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.segment import Segment
from textual.strip import Strip

from messenger_tui.app.images import PREVIEW_COLS, PREVIEW_ROWS, CellRow
from messenger_tui.app.models import Message
from messenger_tui.ui.formatting import clock
from messenger_tui.ui.image_display import (
    HALF_BLOCKS,
    KITTY,
    OFF,
    SIXEL,
    kitty_lines,
    picture_pixels,
    sixel_data,
    sixel_overlay,
)
from messenger_tui.ui.widgets.message_lines import NAME_WIDTH

if TYPE_CHECKING:
    from messenger_tui.ui.widgets.conversation_view import ConversationView

#: (message row, columns, lines) -> (cell rows, drawn from the full image) or None.
PreviewLoader = Callable[[int, int, int], Awaitable[tuple[list[CellRow], bool] | None]]
#: (message row, width px, height px) -> (PNG, from the full image) or None (kitty, sixel).
PictureLoader = Callable[[int, int, int], Awaitable[tuple[bytes, bool] | None]]


class InlineImages:
    """The previews of one conversation view (set the loaders and the mode: the screen)."""

    def __init__(self, view: ConversationView) -> None:
        self._view = view
        #: Loads an image message's half-block preview (app/images.py).
        self.preview_loader: PreviewLoader | None = None
        #: Loads an image message's picture for the terminal's graphics protocol, and what
        #: images are drawn with now (ui/image_display.py).
        self.picture_loader: PictureLoader | None = None
        self.display_mode: Callable[[], str] = lambda: HALF_BLOCKS
        self._cells: dict[int, list[CellRow]] = {}
        self._pictures: dict[int, list[list[Segment]]] = {}
        self._sixels: dict[int, str] = {}
        self._asked: set[int] = set()

    def size(self) -> tuple[int, int]:
        """Columns and lines of a preview at the view's size."""
        view = self._view
        cols = max(8, min(PREVIEW_COLS, view.scrollable_content_region.width - 24))
        return cols, max(3, min(PREVIEW_ROWS, view.size.height // 4))

    def ask(self, m: Message) -> None:
        """Start loading ``m``'s preview the first time an image message is drawn."""
        if (
            m.kind == "attachment"
            and m.id not in self._asked
            and self.preview_loader is not None
            and self.display_mode() != OFF
        ):
            self._asked.add(m.id)
            self._view.run_worker(self._load(m.id), group="previews")

    def cells(self, row_id: int) -> list[CellRow] | None:
        return self._cells.get(row_id)

    def picture(self, row_id: int) -> list[list[Segment]] | None:
        return self._pictures.get(row_id)

    def sixel(self, row_id: int) -> str | None:
        """Sixel data covering this message's half-block preview (sixel mode), if loaded."""
        return self._sixels.get(row_id)

    def over(self, strip: Strip, owners: list[int | None], index: int, scroll_y: int) -> Strip:
        """Line ``index`` of the view with a sixel picture drawn over it when it is the
        last line of a picture's preview that is wholly on screen (:meth:`overlay`)."""
        overlay = self.overlay(owners, index, scroll_y)
        return strip if overlay is None else Strip([*strip, overlay], strip.cell_length)

    def overlay(self, owners: list[int | None], index: int, scroll_y: int) -> Segment | None:
        """On line ``index`` of the view (``owners``: the message row of each line), the
        last line of a sixel picture's preview that is wholly on screen (and the screen
        active): the segment drawing the picture over its half-blocks. None elsewhere (a
        preview cut by the top edge keeps its half-blocks)."""
        if not self._sixels or not 0 <= index < len(owners):
            return None
        row = owners[index]
        if row is None or (index + 1 < len(owners) and owners[index + 1] == row):
            return None  # not the last line of a message's block
        view = self._view
        data, cells, m = self._sixels.get(row), self._cells.get(row), view.message(row)
        if data is None or not cells or m is None or not view.screen.is_active:
            return None
        top = index - len(cells) + 1
        if top < scroll_y:
            return None
        region = view.scrollable_content_region
        indent = len(clock(m.sent_at_ms)) + 1 + NAME_WIDTH + 1  # as message_lines draws it
        return sixel_overlay(data, region.x + indent, region.y + top - scroll_y)

    def forget(self, row_id: int) -> None:
        """Load this message's preview again when it is next drawn."""
        self._asked.discard(row_id)

    async def _load(self, row_id: int) -> None:
        cols, rows = self.size()
        if self.display_mode() == KITTY and self.picture_loader is not None:
            picture = await self.picture_loader(row_id, *picture_pixels(cols, rows))
            if picture is not None:
                self._pictures[row_id] = kitty_lines(picture[0], cols, rows)
                self._view.redraw_message(row_id)
                return
        loader = self.preview_loader
        if loader is None:
            return
        found = await loader(row_id, cols, rows)
        if found is None:
            return
        cells = self._cells[row_id] = found[0]
        if self.display_mode() == SIXEL and self.picture_loader is not None and cells:
            box = (len(cells[0]), len(cells))  # the sixel covers the half-blocks exactly
            picture = await self.picture_loader(row_id, *picture_pixels(*box))
            if picture is not None:
                self._sixels[row_id] = await asyncio.to_thread(sixel_data, picture[0], *box)
        self._view.redraw_message(row_id)

"""The inline images of the conversation view (:mod:`.conversation_view`): each image
message's preview, loaded once in a worker and drawn under its line.

What draws it follows ``display_mode`` (ui/image_display.py: the ``image_preview`` setting
within what the terminal allows): kitty's placeholder cells from a PNG the app downscaled
(``picture_loader``), else half-blocks (``preview_loader``), or nothing (``off``). A finished
download draws its preview again from the full image (:meth:`InlineImages.forget`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.segment import Segment

from messenger_tui.app.images import PREVIEW_COLS, PREVIEW_ROWS, CellRow
from messenger_tui.app.models import Message
from messenger_tui.ui.image_display import HALF_BLOCKS, KITTY, OFF, kitty_lines, picture_pixels

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
        self._cells[row_id] = found[0]
        self._view.redraw_message(row_id)

"""A footer that fits: in a narrow terminal it leaves out its least important keys instead of
letting the last ones (Commands, Keys, Quit) fall off the edge.

The keys left out still work, and the help screen (F1) and the command palette (Ctrl+P) list
them. Which go first is the screen's choice (``drop_order``: action names, least important
first); the footer re-fits when the terminal is resized or the bindings change.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer


def _action(widget: Widget) -> str | None:
    """The action of a footer key (Textual's FooterKey), None for anything else."""
    action = getattr(widget, "action", None)
    return action if isinstance(action, str) else None


def key_cells(widget: Widget) -> int:
    """Cells a compact footer key takes: the key, a space, the description, a margin."""
    key = getattr(widget, "key_display", None)
    if _action(widget) is None or not isinstance(key, str):
        return 0
    description = getattr(widget, "description", "")
    text = key + (f" {description}" if description else "")
    return cell_len(text) + 1


class FittingFooter(Footer):
    """A compact :class:`~textual.widgets.Footer` that drops the keys whose actions are in
    ``drop_order`` (first the first) until the rest fit the screen's width."""

    def __init__(self, *, drop_order: tuple[str, ...] = (), id: str | None = None) -> None:
        super().__init__(compact=True, show_command_palette=False, id=id)
        self.drop_order = drop_order
        self._fitted_width = 0
        #: The actions left out at the last fit (for tests).
        self.dropped: list[str] = []

    def _available_width(self) -> int:
        return self.screen.size.width or self.app.size.width

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        width = self._available_width()
        self._fitted_width = width
        dropped: list[str] = []
        for action in self.drop_order:
            if sum(key_cells(w) for w in widgets) <= width:
                break
            kept = [w for w in widgets if _action(w) != action]
            if len(kept) != len(widgets):
                dropped.append(action)
                widgets = kept
        self.dropped = dropped
        yield from widgets

    def on_resize(self, event: events.Resize) -> None:
        if self._bindings_ready and self._available_width() != self._fitted_width:
            self.call_after_refresh(self.recompose)

"""Bindings shared by several screens. Every binding has an ``id`` (for keymap overrides)
and a ``tooltip``."""

from __future__ import annotations

from textual.binding import Binding


def focus_bindings() -> list[Binding]:
    """Tab / Shift+Tab move the focus (a screen's default bindings, with ids)."""
    return [
        Binding("tab", "app.focus_next", "Next", show=False, id="focus.next",
                tooltip="Move the focus to the next field or pane"),
        Binding("shift+tab", "app.focus_previous", "Previous", show=False, id="focus.previous",
                tooltip="Move the focus to the previous field or pane"),
    ]  # fmt: skip

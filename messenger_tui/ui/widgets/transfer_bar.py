"""The transfer bar: one line per file on its way, in either direction, under the
conversation: direction, name, a progress bar, MiB done, rate and time left, or the reason it
failed. Hidden while nothing moves."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from messenger_tui.app.models import TransferView
from messenger_tui.ui.formatting import clean_text

#: Cells of the progress bar.
BAR_CELLS = 16
MIB = 1024 * 1024
#: Statuses shown; a finished or cancelled transfer leaves the bar.
SHOWN = frozenset({"encrypting", "uploading", "sending", "downloading", "offered", "failed"})
_LABELS = {
    "encrypting": "encrypting",
    "uploading": "",
    "sending": "sending",
    "downloading": "",
    "offered": "download on request",
    "failed": "failed",
}


def _one_line(text: str) -> str:
    return clean_text(text).replace("\n", " ")


def bar(done: int, total: int, cells: int = BAR_CELLS) -> str:
    """``▕████▌   ▏``: eighths of a cell."""
    share = 0.0 if total <= 0 else min(1.0, done / total)
    eighths = round(share * cells * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if full < cells else ""
    return "▕" + "█" * full + partial + " " * (cells - full - len(partial)) + "▏"


def transfer_line(view: TransferView) -> str:
    arrow = "⇧" if view.direction == "up" else "⇩"
    name = _one_line(view.name)
    if len(name) > 28:
        name = name[:27] + "…"
    if view.status == "failed":
        return f"{arrow} {name}  failed: {_one_line(view.error or 'unknown')}  (Alt+C cancels)"
    if view.status == "offered":
        return f"{arrow} {name}  {view.size / MIB:.1f} MiB, over the auto-download limit"
    share = 100 * view.done / view.total if view.total else 0
    parts = [f"{arrow} {name}", bar(view.done, view.total), f"{share:3.0f} %"]
    label = _LABELS.get(view.status, view.status)
    if label:
        parts.append(label)
    parts.append(f"{view.done / MIB:.1f} of {view.total / MIB:.1f} MiB")
    if view.rate_bps > 0:
        parts.append(f"{view.rate_bps / MIB:.1f} MiB/s")
    if view.eta_s is not None:
        parts.append(f"{view.eta_s:.0f} s left")
    return "  ".join(parts)


class TransferBar(Static):
    """Call :meth:`update_transfer` with every TransferChanged; shows the open
    conversation's transfers (``contact_id``)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", markup=False, **kwargs)  # type: ignore[arg-type]
        self._views: dict[int, TransferView] = {}
        self.contact_id: int | None = None
        self.display = False

    def load(self, views: list[TransferView]) -> None:
        self._views = {v.id: v for v in views}
        self._render_lines()

    def update_transfer(self, view: TransferView) -> None:
        self._views[view.id] = view
        self._render_lines()

    def show_contact(self, contact_id: int | None) -> None:
        self.contact_id = contact_id
        self._render_lines()

    def shown_transfers(self) -> list[TransferView]:
        if self.contact_id is None:  # no conversation open (a group's files show in its view)
            return []
        return [
            v for v in self._views.values() if v.status in SHOWN and v.contact_id == self.contact_id
        ]

    def _render_lines(self) -> None:
        lines = [transfer_line(v) for v in self.shown_transfers()]
        self.display = bool(lines)
        self.update(Text("\n".join(lines), no_wrap=True, overflow="ellipsis"))

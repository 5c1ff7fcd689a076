"""Your own address: the text to share, a QR code drawn with half blocks, and a copy action
(OSC 52: the terminal puts it on the clipboard, also through tmux and ssh when allowed)."""

from __future__ import annotations

import segno
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from messenger_tui.app.facade import MessengerFacade
from messenger_tui.ui.bindings import focus_bindings

_HALF = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_lines(data: str | bytes, border: int = 1) -> list[str]:
    """A QR code of ``data`` as lines of half-block characters (two modules per line). Text
    (an address) is encoded upper case (QR alphanumeric mode: a smaller code); addresses are
    read without regard to case. Bytes (the safety-number payload) are encoded as they are."""
    qr = segno.make(data.upper() if isinstance(data, str) else data, error="m")
    rows = [[bool(m) for m in row] for row in qr.matrix]
    size = len(rows)
    blank = [False] * (size + 2 * border)
    padded = [blank] * border + [[False] * border + r + [False] * border for r in rows]
    padded += [blank] * border
    if len(padded) % 2:
        padded.append(blank)
    return [
        "".join(_HALF[(a, b)] for a, b in zip(padded[i], padded[i + 1]))
        for i in range(0, len(padded), 2)
    ]


class OwnAddressScreen(ModalScreen[None], inherit_bindings=False):
    BINDINGS = [
        *focus_bindings(),
        Binding("c", "copy", "Copy", id="address.copy",
                tooltip="Copy your address to the clipboard (through the terminal)"),
        Binding("escape", "close", "Close", id="address.close", tooltip="Close"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service

    def compose(self) -> ComposeResult:
        address = self.service.address
        with Vertical(id="own-address", classes="dialog compact-dialog"):
            yield Static(f"Your address, {self.service.name}", classes="dialog-title")
            yield Static(address, id="address-text")
            yield Static("\n".join(qr_lines(address)), id="address-qr")
            with Horizontal(classes="buttons"):
                yield Button("Copy (c)", id="copy", variant="primary", compact=True)
                yield Button("Close (Esc)", id="close", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.service.address)
        self.app.notify("Address copied (if your terminal allows clipboard access).")

    def action_close(self) -> None:
        self.dismiss(None)

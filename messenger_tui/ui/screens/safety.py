"""The safety-number screen: 60 digits in twelve groups of five, the safety QR code beside
them, and "mark as verified" (which also accepts a changed key and unblocks sending).

The QR code (drawn with the own-address screen's half-block renderer) is 35 columns by 18
lines: it fits beside the digits from 74x22 up. In a smaller terminal it is hidden (the
digits and the buttons are what matters), and ``q`` shows or hides it at any size.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.models import Contact
from messenger_tui.ui.bindings import focus_bindings
from messenger_tui.ui.formatting import group_digits
from messenger_tui.ui.screens.own_address import qr_lines

#: The smallest terminal the QR code is shown in by default (it sits beside the digits).
QR_MIN_SIZE = (74, 22)


def safety_rows(digits: str, per_row: int = 4) -> list[str]:
    groups = group_digits(digits)
    return [" ".join(groups[i : i + per_row]) for i in range(0, len(groups), per_row)]


class SafetyNumberScreen(ModalScreen[bool], inherit_bindings=False):
    """Dismisses with True when the user marked the contact verified."""

    BINDINGS = [
        *focus_bindings(),
        Binding("v", "verify", "Mark verified", id="safety.verify",
                tooltip="The digits match theirs: mark verified (accepts a changed key)"),
        Binding("q", "toggle_qr", "QR code", id="safety.qr",
                tooltip="Show or hide the safety QR code"),
        Binding("escape", "close", "Close", id="safety.close",
                tooltip="Close without changing anything"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade, contact: Contact) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service
        self.contact = contact
        self.number = service.safety_number(contact.id)
        self._qr_choice: bool | None = None  # the user's q, overriding the size rule

    def compose(self) -> ComposeResult:
        c = self.number.contact
        with Vertical(id="safety", classes="dialog compact-dialog"):
            yield Static(f"Safety number with {c.name}", classes="dialog-title", markup=False)
            with Horizontal(id="safety-body"):
                with Vertical(id="safety-text"):
                    if c.key_changed:
                        yield Static(
                            f"⚠ {c.name}'s identity key changed. Sending stays blocked until "
                            "you accept the new key.",
                            classes="warning",
                            markup=False,
                        )
                    elif c.verified:
                        yield Static(f"✔ You verified {c.name}.", classes="ok", markup=False)
                    yield Static("\n".join(safety_rows(self.number.digits)), id="safety-digits")
                    yield Static(
                        f"Compare these digits (or the QR code) with the ones on {c.name}'s "
                        "screen, in person or on a call you trust. If they are the same, "
                        "nobody is in between.",
                        classes="explain",
                    )
                    with Horizontal(classes="buttons"):
                        label = "Accept new key (v)" if c.key_changed else "Mark verified (v)"
                        yield Button(label, id="verify", variant="primary", compact=True)
                        yield Button("Close (Esc)", id="close", compact=True)
                yield Static("\n".join(qr_lines(self.number.qr_payload)), id="safety-qr")

    def on_mount(self) -> None:
        self.query_one("#verify", Button).focus()
        self._apply_qr_rule()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_qr_rule()

    def _apply_qr_rule(self) -> None:
        width, height = self.app.size
        fits = width >= QR_MIN_SIZE[0] and height >= QR_MIN_SIZE[1]
        self.qr.display = fits if self._qr_choice is None else self._qr_choice

    @property
    def qr(self) -> Static:
        return self.query_one("#safety-qr", Static)

    @property
    def qr_shown(self) -> bool:
        return bool(self.qr.display)

    @property
    def digits_text(self) -> str:
        return str(self.query_one("#safety-digits", Static).render())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "verify":
            self.action_verify()
        else:
            self.dismiss(False)

    def action_toggle_qr(self) -> None:
        self._qr_choice = not self.qr_shown
        self._apply_qr_rule()

    def action_verify(self) -> None:
        try:
            contact = self.service.accept_key(self.contact.id)
        except AppError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.notify(f"{contact.name} is verified." + (
            " The new key is accepted; you can send again." if self.contact.key_changed else ""
        ))  # fmt: skip
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(False)

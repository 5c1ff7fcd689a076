"""The safety-number screen: 60 digits in twelve groups of five, and "mark as verified" (which
also accepts a changed key and unblocks sending)."""

from __future__ import annotations

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


def safety_rows(digits: str, per_row: int = 4) -> list[str]:
    groups = group_digits(digits)
    return [" ".join(groups[i : i + per_row]) for i in range(0, len(groups), per_row)]


class SafetyNumberScreen(ModalScreen[bool], inherit_bindings=False):
    """Dismisses with True when the user marked the contact verified."""

    BINDINGS = [
        *focus_bindings(),
        Binding("v", "verify", "Mark verified", id="safety.verify",
                tooltip="The digits match theirs: mark verified (accepts a changed key)"),
        Binding("escape", "close", "Close", id="safety.close",
                tooltip="Close without changing anything"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade, contact: Contact) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service
        self.contact = contact
        self.number = service.safety_number(contact.name)

    def compose(self) -> ComposeResult:
        c = self.number.contact
        with Vertical(id="safety", classes="dialog"):
            yield Static(f"Safety number with {c.name}", classes="dialog-title")
            if c.key_changed:
                yield Static(
                    f"⚠ {c.name}'s identity key changed. Sending stays blocked until you "
                    "accept the new key.",
                    classes="warning",
                )
            elif c.verified:
                yield Static(f"✔ You verified {c.name}.", classes="ok")
            yield Static("\n".join(safety_rows(self.number.digits)), id="safety-digits")
            yield Static(
                f"Compare these digits with the ones on {c.name}'s screen, in person or on a "
                "call you trust. If they are the same, nobody is in between.",
                classes="explain",
            )
            with Horizontal(classes="buttons"):
                label = "Accept new key (v)" if c.key_changed else "Mark as verified (v)"
                yield Button(label, id="verify", variant="primary", compact=True)
                yield Button("Close (Esc)", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#verify", Button).focus()

    @property
    def digits_text(self) -> str:
        return str(self.query_one("#safety-digits", Static).render())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "verify":
            self.action_verify()
        else:
            self.dismiss(False)

    def action_verify(self) -> None:
        try:
            contact = self.service.accept_key(self.contact.name)
        except AppError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.notify(f"{contact.name} is verified." + (
            " The new key is accepted; you can send again." if self.contact.key_changed else ""
        ))  # fmt: skip
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(False)

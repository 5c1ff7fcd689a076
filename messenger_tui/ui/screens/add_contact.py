"""The add-contact dialog: paste an address, give a name. A bad address (wrong checksum, cut
short) is an inline error under the fields; the dialog stays open to fix it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.models import Contact
from messenger_tui.ui.bindings import focus_bindings

#: Where the other person finds their address (F3 shows it in full, with a QR code).
ADDRESS_HINT = "Their address: they press F3 to show it (and a QR code)"


class AddContactScreen(ModalScreen[Contact | None], inherit_bindings=False):
    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "cancel", "Cancel", id="dialog.cancel",
                tooltip="Close the dialog without adding anyone"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="add-contact", classes="dialog"):
            yield Static("Add a contact", classes="dialog-title")
            yield Label(ADDRESS_HINT, id="address-hint")
            yield Input(placeholder="mt1…", id="address", compact=True)
            yield Label("Name")
            yield Input(placeholder="what to call them", id="name", compact=True)
            yield Static("", id="add-contact-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Add", id="add", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#address", Input).focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one("#add-contact-error", Static).render())

    def _show_error(self, text: str) -> None:
        self.query_one("#add-contact-error", Static).update(text)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "address" and not self.query_one("#name", Input).value.strip():
            self.query_one("#name", Input).focus()
            return
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "add":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        address = self.query_one("#address", Input).value
        name = self.query_one("#name", Input).value
        if not address.strip():
            self._show_error("Paste their address first.")
            self.query_one("#address", Input).focus()
            return
        try:
            contact = self.service.add_contact(address, name)
        except AppError as exc:
            self._show_error(str(exc))
            field = "#name" if "name" in str(exc) and "address" not in str(exc) else "#address"
            self.query_one(field, Input).focus()
            return
        if contact.key_changed:
            self.app.notify(
                f"{contact.name}'s identity key CHANGED. Sending is blocked until you review "
                "the new safety number (F2).",
                severity="error",
                timeout=8,
            )
        self.dismiss(contact)

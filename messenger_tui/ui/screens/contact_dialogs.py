"""Dialogs for managing a contact: rename (an inline error for a taken or empty name) and a
yes/no confirmation (deleting a contact and their conversation)."""

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


class RenameContactScreen(ModalScreen[Contact | None], inherit_bindings=False):
    """Dismisses with the renamed contact, or None when cancelled."""

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "cancel", "Cancel", id="rename.cancel",
                tooltip="Close without renaming"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade, contact: Contact) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service
        self.contact = contact

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-contact", classes="dialog"):
            yield Static(f"Rename {self.contact.name}", classes="dialog-title", markup=False)
            yield Label("New name (only you see it)")
            yield Input(value=self.contact.name, id="new-name", compact=True)
            yield Static("", id="rename-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Rename", id="rename", variant="primary", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#new-name", Input).focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one("#rename-error", Static).render())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "rename":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        new_name = self.query_one("#new-name", Input).value.strip()
        if new_name == self.contact.name:
            self.dismiss(None)
            return
        try:
            contact = self.service.rename_contact(self.contact.id, new_name)
        except AppError as exc:
            self.query_one("#rename-error", Static).update(str(exc))
            self.query_one("#new-name", Input).focus()
            return
        self.dismiss(contact)


class ConfirmScreen(ModalScreen[bool], inherit_bindings=False):
    """A question with a confirm and a cancel button; dismisses with True when confirmed.
    The cancel button has the focus first, so Enter alone never confirms."""

    BINDINGS = [
        *focus_bindings(),
        Binding("y", "confirm", "Yes", id="confirm.yes", tooltip="Confirm"),
        Binding("n,escape", "cancel", "No", id="confirm.no", tooltip="Cancel"),
    ]  # fmt: skip

    def __init__(self, title: str, question: str, confirm_label: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.confirm_label} (y)", id="yes", variant="error", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

"""Dialogs for groups: create a group (a name and a contact picker), add members (the picker
again, members left out), rename a group, and who got and read a message.

Errors of the app (an empty name, a blocked contact) show inline in the dialog and keep it
open, so nothing typed is lost."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.group_models import Group, GroupMessage
from messenger_tui.ui.bindings import focus_bindings


class _GroupDialog(ModalScreen[Group | None], inherit_bindings=False):
    """The common frame: a title, the dialog's fields, an inline error and two buttons."""

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "cancel", "Cancel", id="group_dialog.cancel",
                tooltip="Close without changing anything"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service

    @property
    def error_text(self) -> str:
        return str(self.query_one("#group-error", Static).render())

    def show_error(self, text: str) -> None:
        self.query_one("#group-error", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def submit(self) -> None:
        raise NotImplementedError


def _buttons(label: str) -> Horizontal:
    return Horizontal(
        Button(label, id="ok", variant="primary", compact=True),
        Button("Cancel (Esc)", id="cancel", compact=True),
        classes="buttons",
    )


class CreateGroupScreen(_GroupDialog):
    """A group name and the contacts to add (Space ticks one); dismisses with the group."""

    def compose(self) -> ComposeResult:
        contacts = [c for c in self.service.contacts() if not c.blocked and not c.key_changed]
        with Vertical(id="create-group", classes="dialog"):
            yield Static("New group", classes="dialog-title")
            yield Label("Name (every member sees it)")
            yield Input(placeholder="e.g. Book club", id="group-name", compact=True)
            yield Label("Members (Space to pick)")
            yield SelectionList[str](*[(c.name, c.name) for c in contacts], id="group-picker")
            yield Static("", id="group-error", classes="error")
            yield _buttons("Create")

    def on_mount(self) -> None:
        self.query_one("#group-name", Input).focus()

    def submit(self) -> None:
        name = self.query_one("#group-name", Input).value.strip()
        picked = list(self.query_one("#group-picker", SelectionList).selected)
        if not name:
            self.show_error("Give the group a name.")
            return
        if not picked:
            self.show_error("Pick at least one contact (Space).")
            return
        try:
            group = self.service.groups.create(name, [str(p) for p in picked])
        except AppError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(group)


class AddMembersScreen(_GroupDialog):
    """Contacts that are not members yet; dismisses with the group after adding them."""

    def __init__(self, service: MessengerFacade, group: Group) -> None:
        super().__init__(service)
        self.group = group

    def compose(self) -> ComposeResult:
        present = {m.contact_id for m in self.group.members}
        contacts = [
            c
            for c in self.service.contacts()
            if c.id not in present and not c.blocked and not c.key_changed
        ]
        with Vertical(id="add-members", classes="dialog"):
            yield Static(f"Add to {self.group.name}", classes="dialog-title", markup=False)
            yield SelectionList[str](*[(c.name, c.name) for c in contacts], id="group-picker")
            yield Static("" if contacts else "Every contact is a member already.", id="group-error")
            yield _buttons("Add")

    def on_mount(self) -> None:
        self.query_one("#group-picker", SelectionList).focus()

    def submit(self) -> None:
        picked = [str(p) for p in self.query_one("#group-picker", SelectionList).selected]
        if not picked:
            self.show_error("Pick at least one contact (Space).")
            return
        try:
            group = self.service.groups.add(self.group.name, picked)
        except AppError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(group)


class RenameGroupScreen(_GroupDialog):
    """A new name for the group (every member sees it); dismisses with the group."""

    def __init__(self, service: MessengerFacade, group: Group) -> None:
        super().__init__(service)
        self.group = group

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-group", classes="dialog"):
            yield Static(f"Rename {self.group.name}", classes="dialog-title", markup=False)
            yield Label("New name (every member sees it)")
            yield Input(value=self.group.name, id="group-name", compact=True)
            yield Static("", id="group-error", classes="error")
            yield _buttons("Rename")

    def on_mount(self) -> None:
        self.query_one("#group-name", Input).focus()

    def submit(self) -> None:
        new_name = self.query_one("#group-name", Input).value.strip()
        if new_name == self.group.name:
            self.dismiss(None)
            return
        if not new_name:
            self.show_error("Give the group a name.")
            return
        try:
            group = self.service.groups.rename(self.group.name, new_name)
        except AppError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(group)


class ReceiptsScreen(ModalScreen[None], inherit_bindings=False):
    """Who read, who got and who has not got yet one of our group messages."""

    BINDINGS = [
        Binding("escape,enter", "close", "Close", id="receipts.close", tooltip="Close"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade, message: GroupMessage) -> None:
        super().__init__(classes="dialog-screen")
        self.service = service
        self.message = message

    def compose(self) -> ComposeResult:
        rows = self.service.groups.receipts(self.message)
        words = {"read": "read", "delivered": "delivered", "waiting": "not delivered yet"}
        lines = "\n".join(f"{name}: {words.get(state, state)}" for name, state in rows)
        with Vertical(id="group-receipts", classes="dialog"):
            yield Static("Who got it", classes="dialog-title")
            yield Static(self.message.text[:60], markup=False, classes="dim")
            yield Static(lines or "No other member.", id="receipt-lines", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close (Esc)", id="close", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

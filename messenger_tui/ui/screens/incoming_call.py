"""The incoming-call modal: who is calling, accept or decline. It rings the terminal bell
every two seconds (tmux marks the window) and closes itself when the call stops ringing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Static

from messenger_tui.app.models import CallView
from messenger_tui.ui.bindings import focus_bindings

RING_EVERY_S = 2.0


class IncomingCallScreen(ModalScreen[str | None], inherit_bindings=False):
    """Dismisses with "accept", "decline", or None when the caller gave up first."""

    BINDINGS = [
        *focus_bindings(),
        Binding("a", "answer('accept')", "Accept", id="call.accept",
                tooltip="Answer the call"),
        Binding("d", "answer('decline')", "Decline", id="call.decline",
                tooltip="Decline the call (the caller sees it declined)"),
        Binding("escape", "answer('decline')", "Decline", show=False,
                id="call.decline_escape", tooltip="Decline the call"),
    ]  # fmt: skip

    def __init__(self, call: CallView) -> None:
        super().__init__(classes="dialog-screen")
        self.call = call
        self._ring: Timer | None = None

    def compose(self) -> ComposeResult:
        name = self.call.contact.name if self.call.contact else "Someone"
        with Vertical(id="incoming-call", classes="dialog compact-dialog"):
            yield Static(f"{name} is calling", classes="dialog-title")
            yield Static("a: accept    d: decline", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept (a)", id="accept", variant="success")
                yield Button("Decline (d)", id="decline", variant="error")

    def on_mount(self) -> None:
        self.app.bell()
        self._ring = self.set_interval(RING_EVERY_S, self.app.bell)
        self.query_one("#accept", Button).focus()

    def on_unmount(self) -> None:
        if self._ring is not None:
            self._ring.stop()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)

    def call_changed(self, call: CallView) -> None:
        """The main screen forwards call updates; leave when this call no longer rings."""
        if call.call_id == self.call.call_id and call.state != "incoming_ringing":
            self.dismiss(None)

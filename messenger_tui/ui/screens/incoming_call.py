"""The incoming-call modal: who is calling, accept or decline. It rings the terminal bell
every two seconds (tmux marks the window) and closes itself when the call stops ringing.
It opens over whatever is on screen (another conversation, a dialog) and fits 80x24."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalGroup, VerticalGroup
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Static

from messenger_tui.app.models import CallView
from messenger_tui.ui.bindings import focus_bindings

RING_EVERY_S = 2.0


class IncomingCallScreen(ModalScreen[str | None], inherit_bindings=False):
    """Dismisses with "accept", "decline", or None when the caller gave up first."""

    AUTO_FOCUS = "#accept"

    DEFAULT_CSS = """
    IncomingCallScreen #incoming-call {
        height: auto;
        border-title-align: center;
    }
    IncomingCallScreen .dialog-hint {
        color: $text-muted;
    }
    IncomingCallScreen .dialog-buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: center;
    }
    IncomingCallScreen .dialog-buttons Button {
        margin: 0 1;
    }
    """

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
        self._over = False

    def compose(self) -> ComposeResult:
        contact = self.call.contact
        name = contact.name if contact else "Someone"
        with VerticalGroup(id="incoming-call", classes="dialog compact-dialog") as box:
            box.border_title = "Incoming call"
            yield Static(f"☎ {name} is calling…", classes="dialog-title", markup=False)
            if contact is not None and contact.key_changed:
                yield Static("⚠ their safety number changed", classes="warning")
            elif contact is not None and not contact.verified:
                yield Static("not verified (F2 in their conversation)", classes="dialog-hint")
            yield Static("a accept · d or Esc decline", classes="dialog-hint")
            with HorizontalGroup(classes="dialog-buttons"):
                yield Button("Accept (a)", id="accept", variant="success", compact=True)
                yield Button("Decline (d)", id="decline", variant="error", compact=True)

    def on_mount(self) -> None:
        if self._over:  # the caller gave up before this dialog was even shown
            self.call_after_refresh(self.dismiss, None)
            return
        self.app.bell()
        self._ring = self.set_interval(RING_EVERY_S, self.app.bell)

    def on_screen_resume(self) -> None:
        if self._over:  # it ended while help or the palette covered this dialog
            self.dismiss(None)

    def on_unmount(self) -> None:
        if self._ring is not None:
            self._ring.stop()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)

    def call_changed(self, call: CallView) -> None:
        """The main screen forwards call updates; leave when this call no longer rings (at
        once if this dialog is on top, else as soon as it is)."""
        if call.call_id != self.call.call_id or call.state == "incoming_ringing":
            return
        self._over = True
        if self._ring is not None:
            self._ring.stop()
            self._ring = None
        if self.is_current:
            self.dismiss(None)

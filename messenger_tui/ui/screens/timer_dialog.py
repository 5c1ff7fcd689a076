"""The disappearing-messages dialog: pick the open conversation's timer (off, 30 s, 5 min,
1 h, 1 day, 1 week). The choice applies to both sides; the header shows it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from messenger_tui.app.models import Contact
from messenger_tui.core.disappearing import PRESETS, describe
from messenger_tui.ui.bindings import focus_bindings


class DisappearingTimerScreen(ModalScreen[int | None], inherit_bindings=False):
    """Dismisses with the chosen timer in seconds (0: off), or None when cancelled."""

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "cancel", "Cancel", id="timer.cancel",
                tooltip="Close without changing the timer"),
    ]  # fmt: skip

    def __init__(self, contact: Contact | str, current: int) -> None:
        """``contact``: the open conversation's contact, or a group's name."""
        super().__init__(classes="dialog-screen")
        self.contact = contact
        self.current = current

    def compose(self) -> ComposeResult:
        choices = list(PRESETS)
        if self.current not in choices:
            choices.append(self.current)  # a timer set from the CLI (any number of seconds)
        options = [
            Option(describe(s) + ("  (now)" if s == self.current else ""), id=str(s))
            for s in choices
        ]
        with Vertical(id="timer-dialog", classes="dialog"):
            yield Static("Disappearing messages", classes="dialog-title", markup=False)
            if isinstance(self.contact, str):
                about = (
                    f"Messages in {self.contact} sent or read from now on disappear this long "
                    "after, for every member. Esc: cancel."
                )
            else:
                about = (
                    f"Messages with {self.contact.name} sent or read from now on disappear this "
                    "long after, on both sides. Esc: cancel."
                )
            yield Static(about, markup=False)
            yield OptionList(*options, id="timer-choices")

    def on_mount(self) -> None:
        choices = self.query_one("#timer-choices", OptionList)
        choices.highlighted = choices.get_option_index(str(self.current))
        choices.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.dismiss(None)

"""First run (create the profile) and unlock (open a passphrase-protected key) screens.

Both dismiss with a ready :class:`MessengerFacade`; the app then starts it and shows the
main screen.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, Static

from messenger_tui.app.errors import AppError, PassphraseProblem
from messenger_tui.app.facade import MessengerFacade, ProfileGate
from messenger_tui.ui.bindings import focus_bindings


class OnboardingScreen(Screen[MessengerFacade], inherit_bindings=False):
    BINDINGS = [
        *focus_bindings(),
        Binding("ctrl+s", "create", "Create profile", id="onboarding.create",
                tooltip="Create the profile with these settings"),
    ]  # fmt: skip

    def __init__(self, launcher: ProfileGate) -> None:
        super().__init__(classes="form-screen")
        self.launcher = launcher
        self._busy = False

    def compose(self) -> ComposeResult:
        embedded = self.launcher.has_embedded_relay
        local = (
            "Embedded local relay (runs inside messenger-tui, with the Echo contact)"
            if embedded
            else f"Local relay on this machine ({self.launcher.default_relay_url})"
        )
        with VerticalScroll(id="onboarding", classes="form"):
            yield Static("Welcome to messenger-tui", classes="dialog-title")
            yield Static(
                "Create your profile. Your identity key is made on this machine and never "
                "leaves it; messages are end-to-end encrypted.",
                classes="explain",
            )
            yield Label("Display name (shown to people you write to)")
            yield Input(placeholder="your name", id="name", compact=True)
            yield Label("Passphrase (optional; asked at every start)")
            yield Static(
                "It encrypts your whole profile on disk: messages, search index, contacts, "
                "call log and keys. Without one, only your files' permissions protect them.",
                classes="explain",
            )
            yield Input(placeholder="leave empty for none", id="passphrase", password=True,
                        compact=True)  # fmt: skip
            yield Input(placeholder="repeat the passphrase", id="passphrase2", password=True,
                        compact=True)  # fmt: skip
            yield Label("Relay")
            with RadioSet(id="relay-choice", compact=True):
                yield RadioButton(local, value=True, id="relay-local")
                yield RadioButton("A relay URL:", id="relay-remote")
            yield Input(placeholder="wss://relay.example:8443", id="relay-url", compact=True,
                        disabled=True)  # fmt: skip
            yield Static("", id="onboarding-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Create profile", id="create", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one("#onboarding-error", Static).render())

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        remote = event.pressed.id == "relay-remote"
        url = self.query_one("#relay-url", Input)
        url.disabled = not remote
        if remote:
            url.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["name", "passphrase", "passphrase2"]
        if event.input.id == "name" and not event.value.strip():
            self.action_create()  # says what is missing
            return
        if event.input.id in order[:-1]:
            self.query_one(f"#{order[order.index(event.input.id) + 1]}", Input).focus()
            return
        self.action_create()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_create()

    def action_create(self) -> None:
        if self._busy:
            return
        name = self.query_one("#name", Input).value
        passphrase = self.query_one("#passphrase", Input).value
        repeat = self.query_one("#passphrase2", Input).value
        remote = self.query_one("#relay-remote", RadioButton).value
        url = self.query_one("#relay-url", Input).value if remote else None
        error = self.query_one("#onboarding-error", Static)
        if not name.strip():
            error.update("Choose a display name.")
            self.query_one("#name", Input).focus()
            return
        if passphrase != repeat:
            error.update("The two passphrases differ; type them again.")
            self.query_one("#passphrase2", Input).focus()
            return
        if remote and not (url or "").strip():
            error.update("Enter the relay URL, or choose the local relay.")
            self.query_one("#relay-url", Input).focus()
            return
        error.update(
            "Creating your key…" if not passphrase else "Creating and encrypting your key…"
        )
        self._busy = True
        self._create(name, passphrase or None, url)

    @work(exclusive=True, group="onboarding")
    async def _create(self, name: str, passphrase: str | None, url: str | None) -> None:
        try:
            service = await self.launcher.create(name, passphrase, url)
        except AppError as exc:
            self.query_one("#onboarding-error", Static).update(str(exc))
            self._busy = False
            return
        self.dismiss(service)


class UnlockScreen(Screen[MessengerFacade], inherit_bindings=False):
    BINDINGS = [
        *focus_bindings(),
        Binding("ctrl+q", "app.quit", "Quit", id="unlock.quit", tooltip="Quit without unlocking"),
    ]  # fmt: skip

    def __init__(self, launcher: ProfileGate) -> None:
        super().__init__(classes="form-screen")
        self.launcher = launcher
        self.attempts = 0

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="unlock", classes="form"):
            yield Static("Unlock messenger-tui", classes="dialog-title")
            yield Static(
                f"The profile in {self.launcher.home} (messages, contacts, keys) is encrypted "
                "with a passphrase.",
                classes="explain",
            )
            yield Label("Passphrase")
            yield Input(id="passphrase", password=True, compact=True)
            yield Static("", id="unlock-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Unlock", id="unlock-button", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one("#unlock-error", Static).render())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._try(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._try(self.query_one("#passphrase", Input).value)

    @work(exclusive=True, group="unlock")
    async def _try(self, passphrase: str) -> None:
        error = self.query_one("#unlock-error", Static)
        if not passphrase:
            error.update("Type the passphrase.")
            return
        error.update("Checking…")
        try:
            service = await self.launcher.open(passphrase)
        except PassphraseProblem:
            self.attempts += 1
            error.update("Wrong passphrase. Try again.")
            field = self.query_one("#passphrase", Input)
            field.value = ""
            field.focus()
            return
        except AppError as exc:
            error.update(str(exc))
            return
        self.dismiss(service)

"""The settings screen: notifications, receipts, typing, theme, relay URL, passphrase.

Every change applies at once and is stored in the profile by the service (the checkboxes and
the theme as they change; the relay URL and the passphrase with their buttons). Usable at
80x24: one scrolling column, one line per checkbox.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade, ProfileGate
from messenger_tui.app.models import Settings
from messenger_tui.ui.bindings import focus_bindings

#: Checkbox id -> (setting name, label). In the order shown.
CHECKBOXES: dict[str, tuple[str, str]] = {
    "set-toasts": ("toasts", "Show a notice in the app for new messages"),
    "set-bell": ("bell", "Ring the terminal bell when the terminal is not focused"),
    "set-desktop": ("desktop", "Desktop notifications when the terminal is not focused"),
    "set-private": ("private", 'Private notifications: just "New message", no name or text'),
    "set-read-receipts": ("read_receipts", "Send read receipts (off: they never learn when)"),
    "set-typing": ("typing", 'Send and show "typing…"'),
}
SECTIONS_BEFORE = {
    "set-toasts": "Notifications",
    "set-read-receipts": "Privacy",
}


class SettingsScreen(Screen[None], inherit_bindings=False):
    """Pushed by the main screen (F9, or "Settings" in the command palette)."""

    DEFAULT_CSS = """
    SettingsScreen {
        layout: vertical;
    }
    SettingsScreen #settings-title {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
        color: $accent;
    }
    SettingsScreen #settings-body {
        height: 1fr;
        padding: 0 2;
    }
    SettingsScreen .settings-section {
        margin-top: 1;
        text-style: bold;
        color: $accent;
    }
    SettingsScreen Checkbox {
        margin: 0;
        width: 100%;
    }
    SettingsScreen .settings-hint {
        color: $text-muted;
        height: auto;
    }
    SettingsScreen Label {
        margin-top: 1;
        color: $text-muted;
    }
    SettingsScreen Input {
        background: $boost;
        width: 1fr;
    }
    SettingsScreen Select {
        width: 40;
        max-width: 100%;
    }
    SettingsScreen .settings-row {
        height: 1;
        width: 100%;
    }
    SettingsScreen .settings-row Button {
        margin-left: 1;
    }
    SettingsScreen .settings-buttons {
        height: 1;
        margin-top: 1;
    }
    SettingsScreen .error {
        color: $error;
        height: auto;
    }
    SettingsScreen .ok {
        color: $success;
        height: auto;
    }
    """

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "close", "Close", id="settings.close",
                tooltip="Close the settings (every change is saved already)"),
    ]  # fmt: skip

    def __init__(self, service: MessengerFacade, launcher: ProfileGate | None = None) -> None:
        super().__init__()
        self.service = service
        self.launcher = launcher

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        settings = self.service.settings()
        yield Static("Settings · every change applies at once · Esc closes", id="settings-title")
        with VerticalScroll(id="settings-body"):
            for box_id, (name, label) in CHECKBOXES.items():
                section = SECTIONS_BEFORE.get(box_id)
                if section:
                    yield Static(section, classes="settings-section")
                yield Checkbox(label, bool(getattr(settings, name)), id=box_id, compact=True)
            yield Static("Theme", classes="settings-section")
            yield Select(
                self._theme_options(),
                prompt="Theme",
                allow_blank=False,
                value=self.app.theme,
                id="set-theme",
                compact=True,
            )
            yield Static("Relay", classes="settings-section")
            with Horizontal(classes="settings-row"):
                yield Input(settings.relay_url, id="set-relay-url", compact=True,
                            placeholder="ws://host:port or wss://host:port")  # fmt: skip
                yield Button("Apply", id="apply-relay", compact=True)
            yield Static("", id="relay-result", classes="settings-hint")
            yield Static("Passphrase", classes="settings-section")
            yield Static(self._passphrase_hint(settings), id="passphrase-state",
                         classes="settings-hint")  # fmt: skip
            yield Label("Current passphrase", id="current-passphrase-label")
            yield Input(password=True, id="current-passphrase", compact=True)
            yield Label("New passphrase (leave both empty to remove it)", id="new-label")
            yield Input(password=True, id="new-passphrase", compact=True)
            yield Label("New passphrase again")
            yield Input(password=True, id="repeat-passphrase", compact=True)
            with Horizontal(classes="settings-buttons"):
                yield Button(
                    "Change passphrase", id="change-passphrase", variant="primary", compact=True
                )
            yield Static("", id="passphrase-result", classes="error")
        yield Footer(compact=True, show_command_palette=False)

    def _theme_options(self) -> list[tuple[str, str]]:
        names = sorted(n for n in self.app.available_themes if n != "textual-ansi")
        if self.app.theme not in names:
            names.insert(0, self.app.theme)
        return [(name, name) for name in names]

    @staticmethod
    def _passphrase_hint(settings: Settings) -> str:
        if settings.passphrase_set:
            return "Your identity key is protected by a passphrase (asked at every start)."
        return "Your identity key has no passphrase: anyone who can read your files can use it."

    def on_mount(self) -> None:
        self._show_passphrase_fields(self.service.settings())
        self.query_one("#set-toasts", Checkbox).focus()

    def _show_passphrase_fields(self, settings: Settings) -> None:
        current = settings.passphrase_set
        self.query_one("#current-passphrase-label").display = current
        self.query_one("#current-passphrase").display = current
        self.query_one("#new-label", Label).update(
            "New passphrase (leave both empty to remove it)" if current else "New passphrase"
        )
        self.query_one("#change-passphrase", Button).label = (
            "Change passphrase" if current else "Set passphrase"
        )
        self.query_one("#passphrase-state", Static).update(self._passphrase_hint(settings))

    # ------------------------------------------------------------------ changes

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        entry = CHECKBOXES.get(event.checkbox.id or "")
        if entry is None:
            return
        try:
            self.service.update_settings(**{entry[0]: event.value})
        except AppError as exc:
            self.app.notify(str(exc), severity="error")

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value
        if event.select.id == "set-theme" and isinstance(value, str) and value != self.app.theme:
            self.app.theme = value  # the app stores it (MessengerApp follows theme changes)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply-relay":
            await self.apply_relay_url()
        elif event.button.id == "change-passphrase":
            await self.change_passphrase()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = event.input.id
        if field == "set-relay-url":
            await self.apply_relay_url()
        elif field == "current-passphrase":
            self.query_one("#new-passphrase", Input).focus()
        elif field == "new-passphrase":
            self.query_one("#repeat-passphrase", Input).focus()
        elif field == "repeat-passphrase":
            await self.change_passphrase()

    async def apply_relay_url(self) -> None:
        result = self.query_one("#relay-result", Static)
        url = self.query_one("#set-relay-url", Input).value.strip()
        if url == self.service.settings().relay_url:
            result.update("That is the relay in use.")
            return
        try:
            settings = await self.service.set_relay_url(url)
        except AppError as exc:
            result.update(str(exc))
            result.set_classes("error")
            return
        problem = None
        if self.launcher is not None:
            problem = await self.launcher.prepare(self.service)  # the embedded relay's URL?
        result.set_classes("ok")
        note = f" ({problem})" if problem else ""
        result.update(f"Saved. Connecting to {settings.relay_url}{note}")

    async def change_passphrase(self) -> None:
        result = self.query_one("#passphrase-result", Static)
        current_field = self.query_one("#current-passphrase", Input)
        new_field = self.query_one("#new-passphrase", Input)
        repeat_field = self.query_one("#repeat-passphrase", Input)
        settings = self.service.settings()
        new, repeat = new_field.value, repeat_field.value
        result.set_classes("error")
        if new != repeat:
            result.update("The new passphrases differ; type them again.")
            repeat_field.value = ""
            new_field.focus()
            return
        if not new and not settings.passphrase_set:
            result.update("Type a new passphrase (twice).")
            new_field.focus()
            return
        if settings.passphrase_set and not current_field.value:
            result.update("Type your current passphrase first.")
            current_field.focus()
            return
        button = self.query_one("#change-passphrase", Button)
        button.disabled = True
        result.set_classes("settings-hint")
        result.update("Sealing your key…")
        try:
            updated = await self.service.change_passphrase(
                current_field.value if settings.passphrase_set else None, new or None
            )
        except AppError as exc:
            result.set_classes("error")
            result.update(str(exc))
            current_field.value = ""
            current_field.focus()
            return
        finally:
            button.disabled = False
        for field in (current_field, new_field, repeat_field):
            field.value = ""
        result.set_classes("ok")
        result.update(
            "Passphrase changed: use the new one from the next start."
            if updated.passphrase_set
            else "Passphrase removed: the key is stored unencrypted."
        )
        self._show_passphrase_fields(updated)

    def action_close(self) -> None:
        self.dismiss(None)

    # ------------------------------------------------------------------ for tests

    def result_text(self, which: str) -> str:
        """The text under the relay URL ("relay") or the passphrase fields ("passphrase")."""
        return str(self.query_one(f"#{which}-result", Static).render())

"""The settings screen: notifications, receipts, typing, theme, call devices, echo
cancellation and noise suppression, relay URL, passphrase.

Every change applies at once and is stored in the profile by the service (the checkboxes, the
theme and the call devices as they change; the relay URL and the passphrase with their
buttons). Usable at 80x24: one scrolling column, one line per checkbox.

Calls: the microphone and speaker are chosen by name from what PortAudio reports ("System
default" first; a remembered device that is not there now stays listed as "not found"), and
"Test microphone" shows the chosen microphone's live level. The level arrives on the device's
thread and is posted to the screen as a message; the test stops when the screen closes. With
no device, or PortAudio missing, the section says why and how to fix it; nothing else depends
on it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade, MicTest, ProfileGate
from messenger_tui.app.models import AudioDevices, Settings
from messenger_tui.ui.bindings import focus_bindings
from messenger_tui.ui.screens.settings_options import (
    CALL_CHECKBOXES,
    CHECKBOXES,
    DEVICE_SELECTS,
    IMAGE_PREVIEW_OPTIONS,
    METER_WIDTH,
    SECTIONS_BEFORE,
    TALK_MODE_OPTIONS,
    device_options,
)
from messenger_tui.ui.talk_keys import talk_keys_of
from messenger_tui.ui.widgets.call_pane import meter


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
    /* wide enough for both labels: the meter beside it does not jump when the test starts */
    SettingsScreen #mic-test {
        width: 17;
    }
    SettingsScreen .error {
        color: $error;
        height: auto;
    }
    SettingsScreen .ok {
        color: $success;
        height: auto;
    }
    SettingsScreen .device-row {
        height: 1;
        width: 100%;
        margin-top: 1;
    }
    SettingsScreen .device-row Static {
        width: 12;
        color: $text-muted;
    }
    SettingsScreen .device-row Select {
        width: 1fr;
        max-width: 60;
    }
    SettingsScreen #mic-meter {
        width: auto;
        margin-left: 1;
    }
    """

    BINDINGS = [
        *focus_bindings(),
        Binding("escape", "close", "Close", id="settings.close",
                tooltip="Close the settings (every change is saved already)"),
    ]  # fmt: skip

    class MicLevel(Message):
        """The mic test's latest level (posted from the device's thread)."""

        def __init__(self, level: float) -> None:
            super().__init__()
            self.level = level

    def __init__(self, service: MessengerFacade, launcher: ProfileGate | None = None) -> None:
        super().__init__()
        self.service = service
        self.launcher = launcher
        #: What the service reported (None until the first scan finished).
        self.devices: AudioDevices | None = None
        self.mic_test: MicTest | None = None
        #: The mic test's latest level (0..1).
        self.mic_level = 0.0

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
            yield Static("Images", classes="settings-section")
            yield Select(IMAGE_PREVIEW_OPTIONS, allow_blank=False, value=settings.image_preview,
                         id="set-image-preview", compact=True)  # fmt: skip
            yield from self._compose_calls(settings)
            yield Static("Relay", classes="settings-section")
            with Horizontal(classes="settings-row"):
                yield Input(settings.relay_url, id="set-relay-url", compact=True,
                            placeholder="wss://host:port (several nodes: url1,url2)")  # fmt: skip
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

    def _compose_calls(self, settings: Settings) -> ComposeResult:
        yield Static("Calls", classes="settings-section")
        yield Static("Looking for audio devices…", id="audio-state", classes="settings-hint")
        for select_id, name in DEVICE_SELECTS.items():
            chosen = str(getattr(settings, name))
            with Horizontal(classes="device-row"):
                yield Static(name.capitalize())
                yield Select(device_options((), chosen), allow_blank=False, value=chosen,
                             id=select_id, compact=True)  # fmt: skip
        with Horizontal(classes="settings-buttons"):
            yield Button("Test microphone", id="mic-test", compact=True)
            yield Static(self._meter_text(), id="mic-meter")
        with Horizontal(classes="device-row"):
            yield Static("Talk")
            yield Select(TALK_MODE_OPTIONS, allow_blank=False, value=settings.talk_mode,
                         id="set-talk-mode", compact=True)  # fmt: skip
        yield Static(self._talk_hint(), id="talk-hint", classes="settings-hint")
        for box_id, (name, label) in CALL_CHECKBOXES.items():
            yield Checkbox(label, bool(getattr(settings, name)), id=box_id, compact=True)

    def _talk_hint(self) -> str:
        """Whether this terminal can hold-to-talk (it must report key releases)."""
        talk = talk_keys_of(self.app)
        if talk is None or talk.releases is None:
            return "Hold to talk needs a terminal that reports key releases (kitty protocol)."
        if talk.releases:
            return "This terminal reports key releases: hold to talk works here."
        return f"Hold to talk falls back to toggle here: {talk.no_releases_why}."

    def _meter_text(self) -> str:
        if self.mic_test is None:
            return "(off)"
        return f"{meter(self.mic_level, METER_WIDTH)} {round(self.mic_level * 100):3d}%"

    def _theme_options(self) -> list[tuple[str, str]]:
        names = sorted(n for n in self.app.available_themes if n != "textual-ansi")
        if self.app.theme not in names:
            names.insert(0, self.app.theme)
        return [(name, name) for name in names]

    @staticmethod
    def _passphrase_hint(settings: Settings) -> str:
        if settings.passphrase_set:
            return (
                "A passphrase encrypts your profile on disk (messages, contacts, keys); it is "
                "asked at every start."
            )
        return (
            "No passphrase: only your files' permissions protect your messages and keys; "
            "anyone who can read your files can read them."
        )

    def on_mount(self) -> None:
        self._show_passphrase_fields(self.service.settings())
        self.query_one("#set-toasts", Checkbox).focus()
        # Re-scanned: a sound server or headset may have appeared since the app started.
        self.run_worker(self.load_devices(rescan=True), group="audio-devices", exclusive=True)

    def on_unmount(self) -> None:
        self.stop_mic_test(show=False)

    # ------------------------------------------------------------------ call devices

    async def load_devices(self, *, rescan: bool = False) -> None:
        """List the devices (off the event loop, in the service) and fill the selects."""
        devices = await self.service.audio_devices(rescan=rescan)
        settings = self.service.settings()
        for select_id, name in DEVICE_SELECTS.items():
            names = devices.inputs if name == "microphone" else devices.outputs
            chosen = str(getattr(settings, name))
            select: Select[str] = self.query_one(f"#{select_id}", Select)
            with select.prevent(Select.Changed):
                select.set_options(device_options(names, chosen))
                select.value = chosen
        state = self.query_one("#audio-state", Static)
        if devices.problem:
            fix = f" Fix: {devices.fix}." if devices.fix else ""
            state.update(f"{devices.problem}.{fix} Chat works without it.")
            state.set_classes("error")
        else:
            state.update(
                f"{len(devices.inputs)} microphone(s), {len(devices.outputs)} speaker(s) "
                "found. Calls use the ones chosen here."
            )
            state.set_classes("settings-hint")
        self.query_one("#mic-test", Button).disabled = not devices.inputs
        self.devices = devices

    async def toggle_mic_test(self) -> None:
        if self.mic_test is not None:
            self.stop_mic_test()
            return
        device = self.service.settings().microphone or None
        await self.start_mic_test(device)

    async def start_mic_test(self, device: str | None) -> None:
        self.stop_mic_test()
        state = self.query_one("#audio-state", Static)
        try:
            self.mic_test = await self.service.start_mic_test(device, self._level_from_device)
        except AppError as exc:
            state.update(f"The microphone test could not start: {exc}")
            state.set_classes("error")
            return
        if not self.is_attached:  # closed while the device opened
            self.stop_mic_test(show=False)
            return
        self.query_one("#mic-test", Button).label = "Stop test"
        self._show_meter()

    def stop_mic_test(self, *, show: bool = True) -> None:
        """Close the microphone (idempotent); ``show``: say so on the screen."""
        test, self.mic_test = self.mic_test, None
        if test is not None:
            test.stop()
        self.mic_level = 0.0
        if show:
            self.query_one("#mic-test", Button).label = "Test microphone"
            self._show_meter()

    def _level_from_device(self, level: float) -> None:
        """On the device's thread: hand the level to the screen without blocking."""
        self.post_message(self.MicLevel(level))

    def on_settings_screen_mic_level(self, message: SettingsScreen.MicLevel) -> None:
        if self.mic_test is not None:
            self.mic_level = message.level
            self._show_meter()

    def _show_meter(self) -> None:
        self.query_one("#mic-meter", Static).update(self._meter_text())

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
        box_id = event.checkbox.id or ""
        entry = CHECKBOXES.get(box_id) or CALL_CHECKBOXES.get(box_id)
        if entry is None:
            return
        try:
            self.service.update_settings(**{entry[0]: event.value})
        except AppError as exc:
            self.app.notify(str(exc), severity="error")

    async def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value
        if event.select.id == "set-theme" and isinstance(value, str) and value != self.app.theme:
            self.app.theme = value  # the app stores it (MessengerApp follows theme changes)
        if event.select.id == "set-talk-mode" and isinstance(value, str):
            self.set_talk_mode(value)
            return
        if event.select.id == "set-image-preview" and isinstance(value, str):
            if self.service.settings().image_preview != value:
                try:  # the views read it at each draw (ui/screens/transfer_actions.py)
                    self.service.update_settings(image_preview=value)
                except AppError as exc:
                    self.app.notify(str(exc), severity="error", markup=False)
            return
        name = DEVICE_SELECTS.get(event.select.id or "")
        if name is None or not isinstance(value, str):
            return
        if getattr(self.service.settings(), name) != value:
            try:
                self.service.update_settings(**{name: value})
            except AppError as exc:
                self.app.notify(str(exc), severity="error", markup=False)
                return
        if name == "microphone" and self.mic_test is not None:
            await self.start_mic_test(value or None)  # the test follows the choice

    def set_talk_mode(self, mode: str) -> None:
        if self.service.settings().talk_mode != mode:
            try:
                self.service.update_settings(talk_mode=mode)
            except AppError as exc:
                self.app.notify(str(exc), severity="error", markup=False)
                return
        talk = talk_keys_of(self.app)
        if talk is not None:
            talk.set_mode(mode)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "mic-test":
            await self.toggle_mic_test()
        elif event.button.id == "apply-relay":
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
            else "Passphrase removed: only your files' permissions protect your profile now."
        )
        self._show_passphrase_fields(updated)

    def action_close(self) -> None:
        self.stop_mic_test()
        self.dismiss(None)

    # ------------------------------------------------------------------ for tests

    def result_text(self, which: str) -> str:
        """The text under the relay URL ("relay") or the passphrase fields ("passphrase")."""
        return str(self.query_one(f"#{which}-result", Static).render())

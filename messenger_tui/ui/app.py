"""The Textual application and :func:`make_app`, the one factory the CLI and the tests use."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade, ProfileGate
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.onboarding import OnboardingScreen, UnlockScreen


class MessengerApp(App[None], inherit_bindings=False):
    """Shows the onboarding or unlock screen when needed, then the main screen on a started
    service. Build it with :func:`make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "messenger-tui"
    BINDINGS = [
        Binding("ctrl+p", "command_palette", "Commands", priority=True,
                id="app.command_palette", tooltip="Search every command and action"),
        Binding("f1", "toggle_keys", "Keys", id="app.keys",
                tooltip="Show or hide the panel listing every key of the focused pane"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit",
                tooltip="Quit messenger-tui (queued messages are kept and sent next time)"),
        Binding("ctrl+c", "help_quit", show=False, system=True, id="app.ctrl_c",
                tooltip="Tells how to quit (Ctrl+Q)"),
    ]  # fmt: skip

    def __init__(
        self,
        service: MessengerFacade | None = None,
        *,
        launcher: ProfileGate | None = None,
        start_service: bool = True,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if keymap:
            self.set_keymap(keymap)
        if service is None and launcher is None:
            raise ValueError("make_app needs a service or a launcher")
        self.service = service
        self.launcher = launcher
        self._start_service = start_service
        self._owns_service = launcher is not None
        #: Why the app could not open the profile (the CLI reports it after the app exits).
        self.startup_error: AppError | None = None

    async def on_mount(self) -> None:
        if self.service is not None:
            await self.enter(self.service)
            return
        assert self.launcher is not None
        if self.launcher.needs_onboarding:
            await self.push_screen(OnboardingScreen(self.launcher), self._entered)
        elif self.launcher.needs_passphrase:
            await self.push_screen(UnlockScreen(self.launcher), self._entered)
        else:
            try:
                service = await self.launcher.open(None)
            except AppError as exc:  # e.g. the profile is in use by another process
                self.startup_error = exc
                self.exit(return_code=exc.exit_code)
                return
            await self.enter(service)

    def action_toggle_keys(self) -> None:
        from textual.widgets import HelpPanel

        if self.screen.query(HelpPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def _entered(self, service: MessengerFacade | None) -> None:
        if service is not None:
            await self.enter(service)

    async def enter(self, service: MessengerFacade) -> None:
        """Start the service (and the embedded relay if the profile uses it) and show the
        main screen."""
        self.service = service
        problem = await self.launcher.prepare(service) if self.launcher is not None else None
        events = service.subscribe()  # before starting: no early event is missed
        if self._start_service:
            await service.start()
        await self.push_screen(MainScreen(service, events))
        if problem:
            self.notify(problem, severity="warning", timeout=10)

    async def close_service(self) -> None:
        """Close the service and its profile if they came from the launcher (opened by the
        app, or by the CLI through the same launcher)."""
        service, self.service = self.service, None
        if service is None or not self._owns_service or self.launcher is None:
            return
        await self.launcher.release(service)

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        if main is not None:
            yield SystemCommand(
                "Add contact", "Add a contact by their address (Ctrl+N)", main.action_add_contact
            )
            yield SystemCommand(
                "Safety number",
                "Verify the open conversation's contact, or accept a changed key (F2)",
                main.action_safety_number,
            )
            yield SystemCommand(
                "My address", "Show your address and its QR code (F3)", main.action_own_address
            )
            yield SystemCommand(
                "Conversations",
                "Focus the conversation list (Esc)",
                main.action_focus_conversations,
            )


def make_app(
    service: MessengerFacade | None = None,
    *,
    launcher: ProfileGate | None = None,
    start_service: bool = True,
    keymap: dict[str, str] | None = None,
) -> MessengerApp:
    """The app on a ready ``service`` (tests; the caller closes it), or on a ``launcher`` that
    creates or unlocks the profile first (the CLI; then ``await app.close_service()`` after
    the app exits). ``start_service=False`` leaves connecting to the caller. ``keymap`` maps
    binding ids to keys (``{"composer.send": "ctrl+s"}``), overriding the defaults."""
    return MessengerApp(service, launcher=launcher, start_service=start_service, keymap=keymap)

"""The Textual application and :func:`make_app`, the one factory the CLI and the tests use."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from typing import Any

from textual import constants
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.driver import Driver
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade, ProfileGate
from messenger_tui.ui.image_display import NO_TERMINAL, TerminalGraphics, probe_terminal
from messenger_tui.ui.kitty_keys import KittyLinuxDriver
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.onboarding import OnboardingScreen, UnlockScreen
from messenger_tui.ui.talk_keys import TalkKeyHandlers, TalkKeys
from messenger_tui.ui.widgets.call_pane import CallPane


class MessengerApp(TalkKeyHandlers, App[None], inherit_bindings=False):
    """Shows the onboarding or unlock screen when needed, then the main screen on a started
    service. Build it with :func:`make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "messenger-tui"
    BINDINGS = [
        Binding("ctrl+p", "command_palette", "Commands", priority=True,
                id="app.command_palette", tooltip="Search every command and action"),
        Binding("f1", "help", "Keys", priority=True, id="app.keys",
                tooltip="Show or hide the help: every key, with the keymap in effect"),
        Binding("question_mark", "help", "Keys", show=False, id="app.help",
                tooltip="Show the help (where ? is not typed as text)"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit",
                tooltip="Quit messenger-tui (queued messages are kept and sent next time)"),
        Binding("ctrl+c", "help_quit", show=False, system=True, id="app.ctrl_c",
                tooltip="Tells how to quit (Ctrl+Q)"),
        Binding("f8", "reconnect", "Reconnect", show=False, priority=True, id="app.reconnect",
                tooltip="Reconnect to the relay now instead of waiting for the next retry"),
    ]  # fmt: skip

    def __init__(
        self,
        service: MessengerFacade | None = None,
        *,
        launcher: ProfileGate | None = None,
        start_service: bool = True,
        keymap: dict[str, str] | None = None,
        notices: list[str] | None = None,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__()
        self._freeze_gc = freeze_gc
        if keymap:
            self.set_keymap(keymap)
        #: Problems to show once the app runs (e.g. from the config file).
        self.notices = list(notices or [])
        if service is None and launcher is None:
            raise ValueError("make_app needs a service or a launcher")
        self.service = service
        self.launcher = launcher
        self._start_service = start_service
        self._owns_service = launcher is not None
        #: Why the app could not open the profile (the CLI reports it after the app exits).
        self.startup_error: AppError | None = None
        #: The talk key and the call's mic gate (hold-to-talk, toggle; ui/talk_keys.py).
        self.talk = TalkKeys(self, self._set_talking, changed=self._talk_changed)
        #: What inline images can use here (found when the app runs in a terminal).
        self.terminal_graphics: TerminalGraphics = NO_TERMINAL

    async def run_async(self, *args: Any, **kwargs: Any) -> None:
        """Ask the terminal what images it can show before Textual owns stdin (not for a
        headless run; Pilot never comes here): ui/image_display.py."""
        if not kwargs.get("headless", False):
            self.terminal_graphics = probe_terminal()
        return await super().run_async(*args, **kwargs)

    def get_driver_class(self) -> type[Driver]:
        """Textual's Linux driver with key releases (ui/kitty_keys.py) on Linux and macOS;
        Textual's choice elsewhere, or when ``TEXTUAL_DRIVER`` names one."""
        if constants.DRIVER is not None or sys.platform == "win32":
            return super().get_driver_class()
        return KittyLinuxDriver

    def _set_talking(self, talking: bool) -> None:
        if self.service is not None:
            self.service.set_call_talking(talking)

    def _talk_changed(self) -> None:
        main = self.main_screen
        if main is not None and main.is_mounted:
            main.query_one(CallPane).refresh_call()

    async def on_mount(self) -> None:
        self.talk.start()
        for notice in self.notices:
            self.notify(notice, title="config.toml", severity="warning", timeout=20, markup=False)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.service is not None:
            await self.enter(self.service)
            return
        assert self.launcher is not None
        if self.launcher.needs_onboarding:
            await self.push_screen(OnboardingScreen(self.launcher), self._entered)
        elif self.launcher.needs_passphrase:
            try:
                self.launcher.claim()  # "in use" comes before the passphrase prompt
            except AppError as exc:
                self.startup_error = exc
                self.exit(return_code=exc.exit_code)
                return
            await self.push_screen(UnlockScreen(self.launcher), self._entered)
        else:
            try:
                service = await self.launcher.open(None)
            except AppError as exc:  # e.g. the profile is in use by another process
                self.startup_error = exc
                self.exit(return_code=exc.exit_code)
                return
            await self.enter(service)

    def action_help(self) -> None:
        """Open the help screen (every key), or close it when it is open."""
        from messenger_tui.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen())

    def action_help_quit(self) -> None:
        """Ctrl+C does not quit (in a text field it copies): say which key does, as plain text
        (Textual's own notice carries markup, which this app's toasts show as typed)."""
        from messenger_tui.ui.screens.help import key_label

        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                self.notify(
                    f"Press {key_label(key)} to quit the app.", title="Do you want to quit?"
                )
                return

    async def _entered(self, service: MessengerFacade | None) -> None:
        if service is not None:
            await self.enter(service)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Toasts are plain text unless a caller asks for markup: they often carry names and
        message text that peers choose (``[/x]`` would crash Textual's markup parser, and
        ``[@click=...]`` would become a live action link)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    async def enter(self, service: MessengerFacade) -> None:
        """Start the service (and the embedded relay if the profile uses it) and show the
        main screen."""
        self.service = service
        problem = await self.launcher.prepare(service) if self.launcher is not None else None
        events = service.subscribe()  # before starting: no early event is missed
        if self._start_service:
            await service.start()
        self._apply_stored_theme(service)
        self.talk.set_mode(service.settings().talk_mode)
        await self.push_screen(MainScreen(service, events))
        if self._freeze_gc:
            # Everything built so far (Textual, styles, the screens) lives as long as the
            # app. Frozen out of the cyclic collector, it is no longer traversed by every
            # full collection: those pauses halved (mean 50 -> 25 ms) during a 5,000-message
            # backlog (benchmarks/ui_backlog_stall.py). Only for the process that runs just
            # this app (the CLI): in a test process it would pin every earlier test's heap.
            gc.collect()
            gc.freeze()
        if problem:
            self.notify(problem, severity="warning", timeout=10)

    async def close_service(self) -> None:
        """Close the service and its profile if they came from the launcher (opened by the
        app, or by the CLI through the same launcher)."""
        service, self.service = self.service, None
        if service is None and self.launcher is not None:
            self.launcher.unclaim()  # quit at the unlock screen
        if service is None or not self._owns_service or self.launcher is None:
            return
        await self.launcher.release(service)

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _apply_stored_theme(self, service: MessengerFacade) -> None:
        """The theme the profile remembers (the settings screen, or the config file)."""
        theme = service.settings().theme
        if not theme or theme == self.theme:
            return
        if theme in self.available_themes:
            self.theme = theme
        else:
            self.notify(f"Unknown theme {theme!r}; using {self.theme}. Pick one in the "
                        "settings (F9).", severity="warning", markup=False)  # fmt: skip

    def _theme_changed(self, theme: Theme) -> None:
        """Remember a theme picked in the settings or the command palette."""
        service = self.service
        if service is None or self.main_screen is None:
            return
        if service.settings().theme != theme.name:
            try:
                service.update_settings(theme=theme.name)
            except AppError as exc:
                self.notify(str(exc), severity="error", markup=False)

    def action_reconnect(self) -> None:
        """Connect to the relay now (the retry delay after a relay restart can reach 30 s)."""
        service = self.service
        if service is None or self.main_screen is None:
            return
        if service.reconnect_now():
            self.notify("Reconnecting to the relay now", markup=False)
        elif service.connected:
            self.notify("Already connected to the relay", markup=False)
        else:
            self.notify("Already connecting to the relay", markup=False)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        if main is not None:
            yield SystemCommand(
                "Reconnect now",
                "Connect to the relay at once instead of waiting for the next retry (F8)",
                self.action_reconnect,
            )
            yield SystemCommand(
                "Add contact", "Add a contact by their address (Ctrl+N)", main.action_add_contact
            )
            yield SystemCommand(
                "New group", "Create a group: a name and contacts (Ctrl+G)", main.action_new_group
            )
            if isinstance(screen, GroupChatScreen):
                yield from _group_commands(screen)
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
            yield SystemCommand(
                "Settings",
                "Notifications, receipts, typing, theme, call devices, relay, passphrase (F9)",
                main.action_settings,
            )
            if main.current is not None:
                muted = main.current.muted
                yield SystemCommand(
                    "Unmute conversation" if muted else "Mute conversation",
                    f"{'Notify again about' if muted else 'No notifications for'} "
                    f"{main.current.name}'s messages (Alt+M)",
                    main.action_toggle_mute,
                )
            yield from _contact_commands(main)
            yield from _call_commands(main)
            if main.current is not None:
                yield SystemCommand("Attach file", "Send a file to the open conversation (Ctrl+O)",
                                    main.action_attach_file)  # fmt: skip
                yield SystemCommand("Cancel file transfer",
                                    "Cancel the newest file transfer here (Alt+C)",
                                    main.action_cancel_transfer)  # fmt: skip
        yield SystemCommand("Help: every key", "List every key and its binding id (F1, ?)",
                            self.action_help)  # fmt: skip


def _group_commands(screen: GroupChatScreen) -> Iterable[SystemCommand]:
    """The open group's commands (the members panel's keys, F2, F3 and Alt+M)."""
    group = screen.group
    if group is None:
        return
    yield SystemCommand("Group members", "Show or hide the members panel (F2)",
                        screen.action_toggle_members)  # fmt: skip
    yield SystemCommand("Who got my last message",
                        "Which members got and read your newest message here (F3)",
                        screen.action_receipts)  # fmt: skip
    yield SystemCommand(
        "Unmute group" if group.muted else "Mute group",
        "Notify again about this group" if group.muted
        else "No notifications for this group, except mentions of you (Alt+M)",
        screen.action_toggle_mute,
    )  # fmt: skip
    if group.is_member:
        yield SystemCommand("Add members", "Add contacts to this group (admins; a in the panel)",
                            screen.action_add_members)  # fmt: skip
        yield SystemCommand("Rename group", "A new name every member sees (n in the panel)",
                            screen.action_rename_group)  # fmt: skip
        yield SystemCommand("Leave group", "Leave this group; its history stays (l in the panel)",
                            screen.action_leave_group)  # fmt: skip
        yield SystemCommand("Attach file", "Send a file to every member of this group (Ctrl+O)",
                            screen.action_attach_file)  # fmt: skip
        yield SystemCommand("Disappearing messages",
                            "Set the timer after which messages here disappear, for every member",
                            screen.action_disappearing_timer)  # fmt: skip


def _contact_commands(main: MainScreen) -> Iterable[SystemCommand]:
    """Search and contact management in the command palette."""
    yield SystemCommand(
        "Search this conversation",
        "Find messages in the open conversation (Ctrl+F)",
        main.action_search,
    )
    yield SystemCommand(
        "Search all conversations",
        "Find messages in every conversation (Ctrl+F, then Ctrl+T)",
        lambda: main.action_search(everywhere=True),
    )
    contact = main.current
    if contact is not None:
        yield SystemCommand(
            "Rename contact", f"Give {contact.name} another name (Alt+R)",
            main.action_rename_contact,
        )  # fmt: skip
        yield SystemCommand(
            "Unblock contact" if contact.blocked else "Block contact",
            (f"Receive messages from {contact.name} again (Alt+X)" if contact.blocked
             else f"Drop {contact.name}'s messages unseen; no writing to them (Alt+X)"),
            main.action_toggle_block,
        )  # fmt: skip
        if contact.auto_added and not contact.blocked:
            yield SystemCommand(
                "Accept message request",
                f"Make {contact.name} a contact (they get read receipts) (Alt+A)",
                main.action_accept_request,
            )
        yield SystemCommand(
            "Disappearing messages",
            f"Set the timer after which messages with {contact.name} disappear, on both sides",
            main.action_disappearing_timer,
        )
        yield SystemCommand(
            "Delete contact",
            f"Delete {contact.name} and the conversation, after asking (Alt+D)",
            main.action_delete_contact,
        )


def _call_commands(main: MainScreen) -> Iterable[SystemCommand]:
    """The call keys in the command palette, when they apply (as in the footer)."""
    service = main.service
    call = service.current_call()
    if call is not None and call.live:
        yield SystemCommand(
            "Unmute microphone" if call.muted else "Mute microphone",
            "Let the other side hear you again (F6)" if call.muted
            else "The other side hears silence until you unmute (F6)",
            main.action_mute,
        )  # fmt: skip
        yield SystemCommand("Hang up", "End the call, or cancel it while it rings (F7)",
                            main.action_hang_up)  # fmt: skip
    elif main.current is not None:
        yield SystemCommand(
            f"Call {main.current.name}",
            "A voice call, end-to-end encrypted; calling Echo is a sound test (F5)",
            main.action_call,
        )


def make_app(
    service: MessengerFacade | None = None,
    *,
    launcher: ProfileGate | None = None,
    start_service: bool = True,
    keymap: dict[str, str] | None = None,
    notices: list[str] | None = None,
    freeze_gc: bool = False,
) -> MessengerApp:
    """The app on a ready ``service`` (tests; the caller closes it), or on a ``launcher`` that
    creates or unlocks the profile first (the CLI; then ``await app.close_service()`` after
    the app exits). ``start_service=False`` leaves connecting to the caller. ``keymap`` maps
    binding ids to keys (``{"composer.send": "ctrl+s"}``), overriding the defaults;
    ``notices``: problems to show as warnings when the app starts (the CLI's config file);
    ``freeze_gc``: the process runs only this app (the CLI), see :meth:`MessengerApp.enter`."""
    return MessengerApp(
        service,
        launcher=launcher,
        start_service=start_service,
        keymap=keymap,
        notices=notices,
        freeze_gc=freeze_gc,
    )

"""Snapshot tests (pytest-textual-snapshot): what the screens look like, at 80x24 and 160x50.

The app runs on :class:`~tests.ui.snapshot_facade.SnapshotFacade` (fixed names, addresses,
timestamps and states), with the UI's wall clock frozen at ``FROZEN_NOW`` and the time zone set
to UTC, so every run draws the same screen. Each test waits for the screen to settle (the
service's start-up events applied, the conversation opened, the dialog shown) before the
screenshot, and stops the cursors blinking.

Regenerate the baselines (tests/ui/__snapshots__/test_snapshots/) after an intended UI change,
then look at them (open the SVGs in a browser, or the HTML report of a failing run):

    .venv/bin/pytest tests/ui/test_snapshots.py --snapshot-update

A failing run writes a side-by-side report to ``snapshot_report.html``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, TextArea

from messenger_tui.app.models import CallStats, CallView
from messenger_tui.ui import formatting, make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.incoming_call import IncomingCallScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.safety import SafetyNumberScreen
from messenger_tui.ui.widgets.call_pane import CallPane

from .conftest import LARGE, SMALL, screen_text, wait_until
from .snapshot_facade import (
    FROZEN_NOW,
    SnapshotFacade,
    call_scene,
    incoming_call,
    key_changed_scene,
    main_scene,
    no_contacts_scene,
    no_messages_scene,
)

SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])

SnapCompare = Callable[..., bool]
Step = Callable[[Pilot[object], MainScreen], Awaitable[None]]


@pytest.fixture(autouse=True)
def no_blinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cursors never blink, from construction on. Turned off only before the screenshot, a
    TextArea could keep a line it rendered in a hidden blink phase (its line cache does not
    key on focus with blinking off), and on a loaded machine the composer's cursor cell was
    then missing from the screenshot."""
    for cls in (TextArea, Input):
        original = cls.__init__

        def init(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            self.cursor_blink = False

        monkeypatch.setattr(cls, "__init__", init)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The UI's "now" is FROZEN_NOW and local time is UTC (day separators, list times)."""
    monkeypatch.setattr(formatting, "wall_clock", lambda: FROZEN_NOW)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()  # the previous TZ back before tzset
    time.tzset()


def _settle(facade: SnapshotFacade, *steps: Step) -> Callable[[Pilot[object]], Awaitable[None]]:
    """run_before for snap_compare: wait until the main screen shows the facade's start-up
    state (connection, presence), run ``steps``, then stop every cursor blinking."""

    async def run_before(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, MessengerApp)
        await wait_until(pilot, lambda: app.main_screen is not None, what="the main screen")
        screen = app.main_screen
        assert screen is not None
        online = {cid: True for cid in facade.online}
        await wait_until(
            pilot,
            lambda: screen.conn_state == facade.connection and screen.presence == online,
            what="the start-up events applied",
        )
        for step in steps:
            await step(pilot, screen)
        # app.focused changes at once, the widget's has_focus (which draws the composer's
        # cursor) one message later: on a loaded machine the screenshot could come between
        await wait_until(
            pilot,
            lambda: app.focused is None or app.focused.has_focus,
            what="the focused widget to know it",
        )
        for stacked in app.screen_stack:
            for widget in stacked.query("TextArea, Input"):
                assert isinstance(widget, TextArea | Input)
                widget.cursor_blink = False
                # The blink phase when blinking stops depends on timing: fix it (hidden, as
                # in the baselines) so a loaded machine cannot flip one cell.
                widget._cursor_visible = False
        await _layout_settled(pilot)

    return run_before


async def _layout_settled(pilot: Pilot[object]) -> None:
    """Pause until no widget moved or resized between two pauses: a label change (a button
    that now says "Stop test") relayouts a moment later, and on a loaded machine the
    screenshot could come in between."""
    previous: object = None
    for _ in range(100):
        await pilot.pause()
        layout = [
            (id(widget), widget.region, widget.size)
            for screen in pilot.app.screen_stack
            for widget in screen.walk_children(Widget)
        ]
        if layout == previous:
            return
        previous = layout
    raise AssertionError("the layout never settled")


async def open_first(pilot: Pilot[object], screen: MainScreen) -> None:
    """Enter on the list: opens the most recent conversation and focuses the composer."""
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: screen.current is not None and pilot.app.focused is screen.composer,
        what="the conversation to open",
    )


async def open_safety(pilot: Pilot[object], screen: MainScreen) -> None:
    await pilot.press("f2")
    await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, SafetyNumberScreen) and pilot.app.screen.is_mounted,
        what="the safety-number screen",
    )


def _snap(
    snap_compare: SnapCompare, facade: SnapshotFacade, size: tuple[int, int], *steps: Step
) -> bool:
    app = make_app(facade)
    return snap_compare(app, terminal_size=size, run_before=_settle(facade, *steps))


class TestMainScreen:
    @SIZES
    def test_open_conversation(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """Contacts with presence, unread counts, previews and times (one with a changed key,
        one without messages); Bob's conversation over three days with day separators, own
        messages in every delivery state (read ✔✔, delivered ✓✓, failed ✗, sent ✓, queued ◷),
        a long wrapped line, a link, emphasis, and the "new messages" line before the two
        unread ones. At 80x24 only the newest part of the conversation fits (scrolled to the
        end); 160x50 shows all of it."""
        assert _snap(snap_compare, main_scene(), size, open_first)

    @SIZES
    def test_nothing_open(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """The main screen as it opens: the list focused, the view asking to pick one."""
        assert _snap(snap_compare, main_scene(), size)


class TestEmptyStates:
    @SIZES
    def test_no_contacts(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """A fresh profile: how to add a contact (Ctrl+N)."""
        assert _snap(snap_compare, no_contacts_scene(), size)

    @SIZES
    def test_contact_without_messages(
        self, snap_compare: SnapCompare, size: tuple[int, int]
    ) -> None:
        """An open conversation with no message yet: "Say hello!"."""
        assert _snap(snap_compare, no_messages_scene(), size, open_first)


class TestSafetyNumber:
    @SIZES
    def test_safety_number(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """Bob's safety number (60 digits in twelve groups of five) over his conversation."""
        assert _snap(snap_compare, no_messages_scene(), size, open_first, open_safety)

    @SIZES
    def test_key_changed(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """A changed key: the warning and "Accept new key"."""
        assert _snap(snap_compare, key_changed_scene(), size, open_first, open_safety)


def announce_call(facade: SnapshotFacade, call: CallView, stats: CallStats | None) -> Step:
    """A step: the facade announces the call (and its statistics) as the service would, and
    the pane shows them."""

    async def step(pilot: Pilot[object], screen: MainScreen) -> None:
        facade.show_call(call)
        if stats is not None:
            facade.show_stats(stats)
        pane = screen.query_one(CallPane)
        await wait_until(
            pilot,
            lambda: pane.call == call and pane.stats == stats and pane.display,
            what="the call pane",
        )
        if call.live:  # the footer swaps Call for Mute / Hang up on its next refresh
            await wait_until(
                pilot, lambda: "Hang up" in screen_text(pilot.app), what="the call keys"
            )
        await pilot.pause()

    return step


def ring(facade: SnapshotFacade, call: CallView) -> Step:
    """A step: a call rings; the incoming-call modal opens."""

    async def step(pilot: Pilot[object], screen: MainScreen) -> None:
        facade.show_call(call)
        await wait_until(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, IncomingCallScreen) and pilot.app.screen.is_mounted
            ),
            what="the incoming-call modal",
        )
        await pilot.pause()

    return step


class TestCalls:
    @SIZES
    def test_active_call(self, snap_compare: SnapCompare, size: tuple[int, int]) -> None:
        """An active call with Bob over his conversation: "in call" and the timer (2:05 at the
        frozen time), the mic and remote level meters, round-trip time, jitter, loss, buffer
        delay and bitrate with sparklines, late and concealed frames, their loss, and the
        health line all ✓. The footer shows Mute and Hang up instead of Call."""
        facade, call, stats = call_scene()
        assert _snap(snap_compare, facade, size, open_first, announce_call(facade, call, stats))

    def test_muted_call(self, snap_compare: SnapCompare) -> None:
        """Muted: "muted" in the summary, the mic meter empty, and the health line says they
        hear silence (80x24)."""
        facade, call, stats = call_scene(muted=True)
        assert _snap(snap_compare, facade, SMALL, open_first, announce_call(facade, call, stats))

    def test_incoming_call(self, snap_compare: SnapCompare) -> None:
        """Carol calls while Bob's conversation is open: the modal with accept (a) and
        decline (d), at 80x24."""
        facade, _, _ = call_scene()
        assert _snap(snap_compare, facade, SMALL, open_first, ring(facade, incoming_call(facade)))

    def test_settings_devices_and_mic_test(self, snap_compare: SnapCompare) -> None:
        """The settings' Calls section at 80x24: the USB headset chosen as microphone, the
        speaker on the system default, and the microphone test running (its meter at the
        facade's last level, 30 %)."""
        from messenger_tui.ui.screens.settings import SettingsScreen

        facade, _, _ = call_scene()
        facade.current_settings = dataclasses.replace(
            facade.current_settings, microphone="USB Headset: Audio (hw:1,0)"
        )

        async def mic_test(pilot: Pilot[object], screen: MainScreen) -> None:
            await pilot.press("f9")
            app = pilot.app
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, SettingsScreen) and app.screen.devices is not None,
                what="the settings with the devices",
            )
            settings = app.screen
            assert isinstance(settings, SettingsScreen)
            await settings.toggle_mic_test()
            await wait_until(pilot, lambda: settings.mic_level == 0.3, what="the meter")
            settings.query_one("#mic-test").focus()
            await pilot.pause()

        assert _snap(snap_compare, facade, SMALL, mic_test)

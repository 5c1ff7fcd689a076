"""Hold-to-talk in the app (pilot, headless): the talk mode setting on the settings screen,
the toggle fallback where no key releases come (the headless driver is such a terminal), and
hold-to-talk once the terminal says it reports releases (the driver's messages posted as it
would post them). The gate itself is pure: its table is checked here too; the pty test in
test_kitty_keys.py shows it through a real terminal."""

from __future__ import annotations

import dataclasses

import pytest
from textual.events import AppBlur
from textual.widgets import Select

from messenger_tui.app.errors import BadInput
from messenger_tui.app.settings import check_setting
from messenger_tui.ui import make_app
from messenger_tui.ui.kitty_keys import (
    HOLD_TO_TALK_FLAGS,
    TEXTUAL_FLAGS,
    KeyboardFlags,
    KeyPress,
    KeyRelease,
)
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.settings import SettingsScreen
from messenger_tui.ui.talk_gate import GateEvent, GateState, Style, TalkGate, style_for
from messenger_tui.ui.widgets.call_pane import CallPane
from tests.ui.snapshot_facade import SnapshotFacade, call_scene

from .conftest import SMALL, wait_until


def gated_call(mode: str) -> SnapshotFacade:
    facade, call, stats = call_scene()
    facade.current_settings = dataclasses.replace(facade.current_settings, talk_mode=mode)
    facade.call = call
    facade.stats = stats
    return facade


async def main_with_call(pilot: object, facade: SnapshotFacade) -> CallPane:
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen), what="main")
    assert facade.call is not None
    facade.show_call(facade.call)
    pane = pilot.app.screen.query_one(CallPane)
    await wait_until(pilot, lambda: pane.call is not None and pane.display, what="the pane")
    return pane


async def test_hold_falls_back_to_toggle_without_releases() -> None:
    facade = gated_call("hold")
    app = make_app(facade, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        pane = await main_with_call(pilot, facade)
        # the call started with the gate closed (the service does it; the UI agrees)
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)
        assert "mic closed: F4 to talk" in pane.text
        assert "hold-to-talk unavailable: this terminal reports no key releases; F4 toggles" in (
            pane.text.replace("\n", " ")
        )
        await pilot.press("f4")
        await wait_until(pilot, lambda: facade.call is not None and facade.call.talking)
        assert "talking (F4 to stop)" in pane.text
        await pilot.press("f4")
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)
        # open again, then the terminal loses the focus: closed
        await pilot.press("f4")
        await wait_until(pilot, lambda: facade.call is not None and facade.call.talking)
        app.post_message(AppBlur())
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)


async def test_hold_to_talk_once_the_terminal_reports_releases() -> None:
    facade = gated_call("hold")
    app = make_app(facade, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        pane = await main_with_call(pilot, facade)
        app.talk.releases = None  # as on our driver, before the answer
        app.post_message(KeyboardFlags(HOLD_TO_TALK_FLAGS))
        await wait_until(pilot, lambda: app.talk.style is Style.HOLD, what="hold style")
        assert "hold F4 to talk" in pane.text and "toggles" not in pane.text
        app.post_message(KeyPress("f4", 1, repeat=False))
        await wait_until(pilot, lambda: facade.call is not None and facade.call.talking)
        app.post_message(KeyPress("f4", 1, repeat=True))
        app.post_message(KeyRelease("f4", 1))
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)
        # the F4 key event itself does not toggle in hold style
        await pilot.press("f4")
        await pilot.pause()
        assert facade.call is not None and not facade.call.talking
        # another key's release does nothing; a release of F4 with nothing held neither
        app.post_message(KeyPress("f4", 1, repeat=False))
        app.post_message(KeyRelease("a", 97))
        await wait_until(pilot, lambda: facade.call is not None and facade.call.talking)
        app.post_message(AppBlur())
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)


async def test_flags_without_event_types_mean_toggle() -> None:
    facade = gated_call("hold")
    app = make_app(facade, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        pane = await main_with_call(pilot, facade)
        app.talk.releases = None
        app.post_message(KeyboardFlags(TEXTUAL_FLAGS))
        await wait_until(pilot, lambda: app.talk.releases is False, what="no releases")
        assert app.talk.fallback
        assert "does not report key releases" in pane.text.replace("\n", " ")


async def test_settings_choose_the_talk_mode() -> None:
    facade = gated_call("open")
    app = make_app(facade, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        pane = await main_with_call(pilot, facade)
        assert facade.call is not None and facade.call.talking
        assert "talk" not in pane.text.lower()  # open mic: nothing about a gate
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        assert "falls back to toggle here" in str(app.screen.query_one("#talk-hint").render())
        app.screen.query_one("#set-talk-mode", Select).value = "toggle"
        await wait_until(pilot, lambda: facade.current_settings.talk_mode == "toggle")
        assert app.talk.mode == "toggle" and app.talk.style is Style.TOGGLE
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="main again")
        # the toggle style's rest is closed: the call's gate followed
        await wait_until(pilot, lambda: facade.call is not None and not facade.call.talking)
        await pilot.press("f4")
        await wait_until(pilot, lambda: facade.call is not None and facade.call.talking)
        assert "talking (F4 to stop)" in pane.text


def test_the_setting_takes_only_the_three_modes() -> None:
    assert check_setting("talk_mode", "hold") == "hold"
    with pytest.raises(BadInput, match="one of open, hold, toggle"):
        check_setting("talk_mode", "push")


def test_gate_table() -> None:
    assert style_for("hold", True) is Style.HOLD
    assert style_for("hold", None) is Style.TOGGLE and style_for("hold", False) is Style.TOGGLE
    assert style_for("toggle", True) is Style.TOGGLE and style_for("open", True) is Style.OPEN
    gate = TalkGate(Style.HOLD, max_hold_s=60)
    assert gate.handle(GateEvent.TALK_DOWN, 10.0) is GateState.HELD and gate.talking
    assert (gate.deadline or 0.0) == 70.0
    assert gate.handle(GateEvent.TALK_DOWN, 11.0) is GateState.HELD  # no new deadline
    assert gate.poll(69.9) is GateState.HELD and gate.poll(70.0) is GateState.CLOSED
    assert gate.deadline is None and gate.handle(GateEvent.TALK_UP, 71.0) is GateState.CLOSED
    gate.set_style(Style.TOGGLE)
    assert gate.handle(GateEvent.TALK_DOWN, 0) is GateState.LATCHED
    assert gate.poll(1e9) is GateState.LATCHED  # no maximum hold in toggle
    assert gate.handle(GateEvent.TALK_UP, 0) is GateState.LATCHED
    assert gate.handle(GateEvent.BLUR, 0) is GateState.CLOSED
    gate.set_style(Style.OPEN)
    for event in GateEvent:
        assert gate.handle(event, 0) is GateState.OPEN_MIC

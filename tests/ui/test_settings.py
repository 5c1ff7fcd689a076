"""The settings screen: each setting changes what it says, through the real service (two
clients on a real relay where it takes a peer to tell)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select

from messenger_tui.app import events as ev
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.launcher import Launcher
from messenger_tui.app.profile import create_profile
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.onboarding import UnlockScreen
from messenger_tui.ui.screens.settings import SettingsScreen
from tests.helpers.clients import introduce, make_service, next_event
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, OFFLINE_URL, SMALL, screen_text, wait_shown, wait_until


@pytest.fixture
async def pair(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    await introduce(alice, bob)
    await alice.close()  # the app starts Alice again
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


def state_of(service: MessengerService, message_id: int) -> str | None:
    row = service.store.messages.by_id(message_id)
    return None if row is None else row.state


def unread(service: MessengerService, contact_id: int) -> int | None:
    summary = service.conversation(contact_id)
    return None if summary is None else summary.unread


def service_of(app: MessengerApp) -> MessengerFacade:
    assert app.service is not None
    return app.service


async def open_settings(pilot: Pilot[None], app: MessengerApp) -> SettingsScreen:
    await wait_until(pilot, lambda: app.main_screen is not None, what="main screen")
    await pilot.press("f9")
    await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    return screen


async def toggle(pilot: Pilot[None], screen: SettingsScreen, box_id: str) -> None:
    box = screen.query_one(f"#{box_id}", Checkbox)
    box.focus()
    await pilot.press("space")
    await pilot.pause()


async def test_every_checkbox_changes_its_setting_and_the_palette_opens_it(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_settings(pilot, app)
        text = screen_text(app)
        assert "Notifications" in text and "Show a notice in the app" in text
        expected = {"toasts": False, "bell": False, "desktop": True, "private": True,
                    "read_receipts": False, "typing": False}  # fmt: skip
        for box_id in ("set-toasts", "set-bell", "set-desktop", "set-private",
                       "set-read-receipts", "set-typing"):  # fmt: skip
            await toggle(pilot, screen, box_id)
        s = alice.settings()
        assert {k: getattr(s, k) for k in expected} == expected
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))

        await pilot.press("ctrl+p")
        await pilot.press(*"Settings")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="palette")
        # Shown as stored.
        assert app.screen.query_one("#set-typing", Checkbox).value is False


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_everything_is_reachable_at_the_small_size(
    offline_pair: tuple[MessengerService, MessengerService], size: tuple[int, int]
) -> None:
    """Each control scrolls fully into view when focused (Tab order), nothing clipped."""
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=size) as pilot:
        screen = await open_settings(pilot, app)
        body = screen.query_one("#settings-body")
        for widget_id in ("set-toasts", "set-typing", "set-theme", "set-relay-url",
                          "apply-relay", "new-passphrase", "repeat-passphrase",
                          "change-passphrase"):  # fmt: skip
            widget = screen.query_one(f"#{widget_id}")
            widget.focus()
            await pilot.pause()
            assert widget.region.width > 0 and body.region.contains_region(widget.region), (
                widget_id, widget.region, body.region,
            )  # fmt: skip


@pytest.mark.slow
async def test_read_receipts_off_the_peer_never_learns(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    await bob.start()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_settings(pilot, app)
        await toggle(pilot, screen, "set-read-receipts")
        assert alice.settings().read_receipts is False
        await pilot.press("escape")
        main = app.main_screen
        assert main is not None
        await wait_until(pilot, lambda: alice.connected, what="connected")
        await pilot.press("enter")  # open Bob: Alice looks at the conversation
        await wait_until(pilot, lambda: main.current is not None)

        first = await bob.send_text(bob.contact("Alice").id, "did you read this?")
        await wait_shown(pilot, "did you read this?")
        await wait_until(pilot, lambda: state_of(bob, first.id) == "delivered")
        bob_id = alice.contact("Bob").id
        await wait_until(pilot, lambda: unread(alice, bob_id) == 0, what="seen")
        await asyncio.sleep(1.5)  # time enough for a receipt to travel
        assert state_of(bob, first.id) == "delivered"

        # Control: with receipts on again, the next message is reported read.
        alice.update_settings(read_receipts=True)
        second = await bob.send_text(bob.contact("Alice").id, "and this one?")
        await wait_until(pilot, lambda: state_of(bob, second.id) == "read", what="read")
        assert state_of(bob, first.id) == "delivered"


@pytest.mark.slow
async def test_typing_off_neither_sent_nor_shown(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    bob_events = bob.subscribe()
    await bob.start()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None and alice.connected)
        main = app.main_screen
        assert main is not None
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is main.composer)
        await pilot.press(*"hi", "enter")  # a session for the typing notices
        await next_event(bob_events, ev.MessageReceived)
        await bob.send_text(bob.contact("Alice").id, "hello")
        await wait_until(pilot, lambda: len(main.view.messages) == 2)

        screen = await open_settings(pilot, app)
        await toggle(pilot, screen, "set-typing")
        assert alice.settings().typing is False
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        main.composer.focus()
        while not bob_events.empty():
            bob_events.get_nowait()
        await pilot.press(*"thinking hard")
        await bob.send_typing(bob.contact("Alice").id, True)
        await asyncio.sleep(1.0)
        await pilot.pause()
        assert "typing…" not in main.header_text and "typing…" not in screen_text(app)
        pending = []
        while not bob_events.empty():
            pending.append(bob_events.get_nowait())
        assert not any(isinstance(e, ev.TypingChanged) for e in pending), pending

        # Control: typing on again, Bob's notice shows.
        alice.update_settings(typing=True)
        await bob.send_typing(bob.contact("Alice").id, True)
        await wait_until(pilot, lambda: "typing…" in main.header_text, what="typing shown")


@pytest.mark.slow
async def test_relay_url_change_reconnects(tmp_path: Path, relay: RelayProcess) -> None:
    alice = make_service(tmp_path, "alice", OFFLINE_URL)
    try:
        app = make_app(alice)
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: app.main_screen is not None)
            await wait_until(pilot, lambda: "reconnecting" in screen_text(app), what="offline")
            screen = await open_settings(pilot, app)
            field = screen.query_one("#set-relay-url", Input)
            field.value = "https://not-a-relay"
            field.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: "ws://" in screen.result_text("relay"), what="error")
            assert alice.settings().relay_url == OFFLINE_URL
            field.value = relay.url
            await pilot.click("#apply-relay")
            await wait_until(pilot, lambda: "Saved" in screen.result_text("relay"))
            await wait_until(pilot, lambda: alice.connected, what="connected to the new relay")
            await pilot.press("escape")
            await wait_shown(pilot, "● connected")
        assert alice.profile.relay_url == relay.url
    finally:
        await alice.close()
        alice.profile.close()


async def test_theme_is_applied_live_and_remembered(tmp_path: Path) -> None:
    home = tmp_path / "themed"
    create_profile(home, "Tess", OFFLINE_URL, None).close()
    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            screen = await open_settings(pilot, app)
            assert app.theme == "textual-dark"
            screen.query_one("#set-theme", Select).value = "nord"
            await wait_until(pilot, lambda: app.theme == "nord", what="applied live")
            await wait_until(pilot, lambda: service_of(app).settings().theme == "nord")
    finally:
        await app.close_service()

    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: app.main_screen is not None)
            assert app.theme == "nord"
            # The palette's own "Change theme" is remembered too.
            app.theme = "gruvbox"
            await wait_until(pilot, lambda: service_of(app).settings().theme == "gruvbox")
    finally:
        await app.close_service()


async def test_image_preview_is_chosen_in_settings_and_remembered(tmp_path: Path) -> None:
    home = tmp_path / "pictures"
    create_profile(home, "Ivy", OFFLINE_URL, None).close()
    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            screen = await open_settings(pilot, app)
            select = screen.query_one("#set-image-preview", Select)
            assert select.value == "auto"
            select.value = "half-blocks"
            await wait_until(
                pilot, lambda: service_of(app).settings().image_preview == "half-blocks"
            )
    finally:
        await app.close_service()

    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            screen = await open_settings(pilot, app)
            assert screen.query_one("#set-image-preview", Select).value == "half-blocks"
    finally:
        await app.close_service()


async def test_passphrase_set_change_wrong_and_restart(tmp_path: Path) -> None:
    home = tmp_path / "careful"
    create_profile(home, "Cara", OFFLINE_URL, None).close()
    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            screen = await open_settings(pilot, app)
            assert not screen.query_one("#current-passphrase").display  # none set yet

            async def submit(current: str | None, new: str, repeat: str) -> None:
                if current is not None:
                    screen.query_one("#current-passphrase", Input).value = current
                screen.query_one("#new-passphrase", Input).value = new
                screen.query_one("#repeat-passphrase", Input).value = repeat
                await screen.change_passphrase()
                await pilot.pause()

            await submit(None, "first secret", "first secrte")
            assert "differ" in screen.result_text("passphrase")
            await submit(None, "first secret", "first secret")
            assert "Passphrase changed" in screen.result_text("passphrase")
            assert screen.query_one("#current-passphrase").display
            await submit("wrong guess", "second secret", "second secret")
            assert "current passphrase is wrong" in screen.result_text("passphrase")
            assert service_of(app).settings().passphrase_set
            await submit("first secret", "second secret", "second secret")
            assert "Passphrase changed" in screen.result_text("passphrase")
    finally:
        await app.close_service()

    # Restart: the old passphrase fails, the new one unlocks.
    app = make_app(launcher=Launcher(home), start_service=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, UnlockScreen))
            unlock = app.screen
            assert isinstance(unlock, UnlockScreen)
            await pilot.press(*"first secret", "enter")
            await wait_until(pilot, lambda: "Wrong passphrase" in unlock.error_text)
            await pilot.press(*"second secret", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="main")

            # Remove it: current passphrase, both new fields empty.
            screen = await open_settings(pilot, app)
            screen.query_one("#current-passphrase", Input).value = "second secret"
            await screen.change_passphrase()
            await pilot.pause()
            assert "Passphrase removed" in screen.result_text("passphrase")
    finally:
        await app.close_service()
    assert not Launcher(home).needs_passphrase

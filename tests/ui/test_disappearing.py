"""Disappearing messages in the UI, against a real relay process: the timer set from the
command palette shows in the header and reaches the contact; expired lines vanish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.timer_dialog import DisappearingTimerScreen
from tests.helpers.clients import introduce, make_service, next_event
from tests.helpers.relay_process import RelayProcess

from .conftest import SMALL, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def pair(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    await introduce(alice, bob)
    await alice.close()  # the app connects Alice again
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


async def test_timer_from_the_palette_shows_in_the_header_and_lines_vanish(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    await bob.start()
    bob_events = bob.subscribe()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
        await pilot.press("enter")  # open Bob
        await wait_until(pilot, lambda: screen.current is not None)
        assert "⏱" not in screen.header_text
        await pilot.press("ctrl+p", *"disappearing")
        await wait_shown(pilot, "Disappearing messages")
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: isinstance(app.screen, DisappearingTimerScreen), what="dialog"
        )
        assert "off  (now)" in screen_text(app)
        await pilot.press("down", "enter")  # 30 s
        await wait_until(pilot, lambda: "⏱ 30 s" in screen.header_text, what="header")
        assert alice.disappearing_timer(alice.contact("bob").id) == 30
        changed = await next_event(bob_events, ev.TimerChanged)
        assert (changed.seconds, changed.by_me) == (30, False)
        assert bob.disappearing_timer(bob.contact("alice").id) == 30
        await wait_until(
            pilot,
            lambda: any("set disappearing messages to 30 s" in t for t in screen.view.text_lines()),
            what="notice",
        )

        # A short timer (any number of seconds, as from the CLI): the line goes when it runs out.
        alice.set_disappearing_timer(alice.contact("bob").id, 2)
        await wait_until(pilot, lambda: "⏱ 2 s" in screen.header_text, what="header 2 s")
        await pilot.press(*"vanishing line", "enter")
        await wait_until(
            pilot, lambda: any("vanishing line" in t for t in screen.view.text_lines())
        )
        await wait_until(
            pilot,
            lambda: not any("vanishing line" in t for t in screen.view.text_lines()),
            timeout=10,
            what="the expired line to vanish",
        )
        assert alice.search("vanishing") == []
        # Bob's copy counts from his read: he reads it now, it goes 2 s later.
        await next_event(bob_events, ev.MessageReceived)
        expired = next_event(bob_events, ev.MessagesExpired, timeout=10)
        await bob.mark_read(bob.contact("alice").id)
        assert (await expired).message_rows
        assert bob.search("vanishing") == []

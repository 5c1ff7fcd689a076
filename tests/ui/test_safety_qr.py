"""The safety-number screen's QR code: the right payload, drawn beside the digits at 80x24
and 160x50 with nothing essential clipped, hidden in smaller terminals, toggled with q."""

from __future__ import annotations

import pytest

from messenger_tui.app.service import MessengerService
from messenger_tui.core.crypto.safety import address_stable_id, verify_safety_qr
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.own_address import qr_lines
from messenger_tui.ui.screens.safety import SafetyNumberScreen, safety_rows

from .conftest import LARGE, SMALL, screen_text, wait_until


def test_the_qr_payloads_verify_each_other(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = offline_pair
    a = alice.safety_number(alice.contact("Bob").id)
    b = bob.safety_number(bob.contact("Alice").id)
    assert a.digits == b.digits
    assert len(a.qr_payload) == 61 and a.qr_payload != b.qr_payload
    # Bob scans Alice's code: it shows exactly his view of both keys.
    assert verify_safety_qr(
        a.qr_payload,
        bob.identity.public,
        address_stable_id(bob.identity.public),
        alice.identity.public,
        address_stable_id(alice.identity.public),
    )


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_safety_screen_shows_the_qr_and_everything_else(
    offline_pair: tuple[MessengerService, MessengerService], size: tuple[int, int]
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("enter")  # open Bob
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SafetyNumberScreen))
        screen = app.screen
        assert isinstance(screen, SafetyNumberScreen)
        await pilot.pause()
        assert screen.qr_shown
        text = screen_text(app)
        expected = qr_lines(screen.number.qr_payload)
        assert len(expected) == 18
        for line in expected:  # every QR line is on screen, uncut
            assert line in text
        for row in safety_rows(screen.number.digits):  # all 60 digits
            assert row in text
        assert "Mark verified (v)" in text and "Close (Esc)" in text
        assert "Safety number with Bob" in text
        # Nothing sticks out of the terminal: the dialog is inside the screen.
        region = screen.query_one("#safety").region
        assert region.bottom <= size[1] and region.right <= size[0]
        await pilot.press("q")
        await wait_until(pilot, lambda: not screen.qr_shown)
        assert expected[5] not in screen_text(app)
        await pilot.press("q")
        await wait_until(pilot, lambda: screen.qr_shown)
        await pilot.press("v")
        await wait_until(pilot, lambda: alice.contact("Bob").verified, what="verified")


async def test_small_terminal_hides_the_qr_until_asked(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.press("enter", "f2")
        await wait_until(pilot, lambda: isinstance(app.screen, SafetyNumberScreen))
        screen = app.screen
        assert isinstance(screen, SafetyNumberScreen)
        await pilot.pause()
        assert not screen.qr_shown
        text = screen_text(app)
        for row in safety_rows(screen.number.digits):
            assert row in text
        assert "Mark verified (v)" in text
        await pilot.press("q")
        await wait_until(pilot, lambda: screen.qr_shown)

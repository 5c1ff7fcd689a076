"""The "reconnect now" key (F8) and palette command, on the real service."""

from __future__ import annotations

from messenger_tui.app.service import MessengerService
from messenger_tui.core.links.relay_link import LinkPhase
from messenger_tui.ui import make_app

from .conftest import SMALL, wait_until


class LongDelays:
    def next_delay(self) -> float:
        return 30.0

    def reset(self) -> None:
        pass


async def test_f8_reconnects_at_once_and_the_palette_offers_it(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _ = offline_pair
    lifecycle = alice._client.lifecycle
    lifecycle.backoff = LongDelays()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        # nothing listens at the relay address: the client waits 30 s between attempts
        await wait_until(pilot, lambda: lifecycle.phase is LinkPhase.WAITING, what="a wait")
        first = lifecycle.next_deadline
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: lifecycle.phase is LinkPhase.WAITING and lifecycle.next_deadline != first,
            what="a new attempt, failed again",
        )
        assert any("Reconnecting to the relay now" in str(n.message) for n in app._notifications)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Reconnect now" in titles

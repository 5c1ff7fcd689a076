"""The UI names contacts by id (app/facade.py): a rename while a conversation is open, or a
contact whose name looks like another's, never sends a message to the wrong person.

Alice uses the app against a real relay; Bob and a look-alike ("bob" with a Cyrillic o,
another address) are in-process services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.models import ContactId
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.main import MainScreen
from tests.helpers.clients import introduce, make_service, next_event
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, screen_text, wait_until

pytestmark = pytest.mark.slow

#: "bob" with a Cyrillic small o: another contact whose name reads the same.
LOOK_ALIKE = "b\u043eb"


@pytest.fixture
async def trio(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    other = make_service(tmp_path, LOOK_ALIKE, relay.url)
    await introduce(alice, bob)
    await introduce(alice, other)
    await alice.close()  # the app connects Alice again
    try:
        yield alice, bob, other
    finally:
        for s in (alice, bob, other):
            await s.close()
            s.profile.close()


def _main(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def _texts(service: MessengerService, contact_id: ContactId) -> list[str]:
    return [m.text for m in service.history(contact_id) if m.kind == "text"]


async def _received_texts(queue: asyncio.Queue[ev.Event], count: int) -> list[str]:
    return [(await next_event(queue, ev.MessageReceived)).message.text for _ in range(count)]


async def test_a_rename_while_the_conversation_is_open_keeps_sending_to_the_same_contact(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    alice, bob, other = trio
    bob_events, other_events = bob.subscribe(), other.subscribe()
    await bob.start()
    await other.start()
    bob_id, other_id = alice.contact("bob").id, alice.contact(LOOK_ALIKE).id
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        screen = _main(app)
        await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
        await screen.open_conversation(bob_id)
        await wait_until(pilot, lambda: app.focused is screen.composer, what="composer")
        await pilot.press(*"before", "enter")

        # Renamed while open: Bob becomes "Robert", and the look-alike takes the name "bob".
        alice.rename_contact(bob_id, "Robert")
        alice.rename_contact(other_id, "bob")
        await wait_until(
            pilot,
            lambda: screen.current is not None and screen.current.name == "Robert",
            what="the open conversation renamed",
        )
        assert screen.current is not None and screen.current.id == bob_id
        await pilot.press(*"after", "enter")
        assert await _received_texts(bob_events, 2) == ["before", "after"]
        assert _texts(alice, bob_id) == ["before", "after"]
        assert _texts(alice, other_id) == []

        # The look-alike's own conversation (now called "bob") reaches the look-alike only:
        # its first message from Alice is this one.
        await screen.open_conversation(other_id)
        await wait_until(pilot, lambda: app.focused is screen.composer, what="composer")
        await pilot.press(*"to the other", "enter")
        assert await _received_texts(other_events, 1) == ["to the other"]
        assert _texts(alice, other_id) == ["to the other"]
        assert _texts(alice, bob_id) == ["before", "after"]
        assert not any(isinstance(e, ev.MessageReceived) for e in _drain(bob_events)), (
            "Bob got the look-alike's message"
        )


async def test_look_alike_names_never_get_each_others_messages(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    alice, bob, other = trio
    bob_events, other_events = bob.subscribe(), other.subscribe()
    await bob.start()
    await other.start()
    bob_id, other_id = alice.contact("bob").id, alice.contact(LOOK_ALIKE).id
    assert bob_id != other_id
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        screen = _main(app)
        await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
        for round_no in range(2):  # alternate: each send goes to the open conversation's id
            for contact_id, text in ((bob_id, "for bob"), (other_id, "for the other")):
                await screen.open_conversation(contact_id)
                await wait_until(pilot, lambda: app.focused is screen.composer, what="composer")
                await pilot.press(*f"{text} {round_no}", "enter")
        assert await _received_texts(bob_events, 2) == ["for bob 0", "for bob 1"]
        assert await _received_texts(other_events, 2) == ["for the other 0", "for the other 1"]
        assert _texts(alice, bob_id) == ["for bob 0", "for bob 1"]
        assert _texts(alice, other_id) == ["for the other 0", "for the other 1"]
        # Their replies land in their own conversations too.
        await bob.send_text(bob.contact("alice").id, "bob here")
        await other.send_text(other.contact("alice").id, "other here")
        await wait_until(
            pilot,
            lambda: (
                "bob here" in _all_texts(alice, bob_id)
                and "other here" in _all_texts(alice, other_id)
            ),
            what="both replies stored",
        )
        assert "other here" not in _all_texts(alice, bob_id)
        assert "bob here" not in _all_texts(alice, other_id)


def _all_texts(service: MessengerService, contact_id: ContactId) -> list[str]:
    return [m.text for m in service.history(contact_id)]


def _drain(queue: asyncio.Queue[ev.Event]) -> list[ev.Event]:
    out: list[ev.Event] = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out

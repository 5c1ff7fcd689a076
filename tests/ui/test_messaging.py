"""The UI against a real relay process: Alice uses the app, Bob is an in-process service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.formatting import STATE_MARKS
from messenger_tui.ui.screens.main import MainScreen
from tests.helpers.clients import introduce, make_service, next_event
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, SMALL, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def pair(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    await introduce(alice, bob)  # both published their prekeys
    await alice.close()  # the app connects Alice again (start)
    await bob.close()  # Bob stays offline until a test starts him
    try:
        yield alice, bob
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()


def _state_mark(screen: MainScreen, row: int) -> str:
    """The delivery mark at the end of the own message's last line."""
    owners = screen.view._line_owner
    last = max(i for i, owner in enumerate(owners) if owner == row)
    return screen.view.text_lines()[last].rstrip().rsplit(" ", 1)[-1]


def _main(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def _shown_state(screen: MainScreen, row: int) -> str:
    """The state of message ``row`` as the open conversation shows it (it must be loaded)."""
    message = screen.view.message(row)
    assert message is not None, row
    return message.state


def _stored_state(service: MessengerService, row: int) -> str:
    """The state of message ``row`` in ``service``'s store (it must exist)."""
    message = service.store.messages.by_id(row)
    assert message is not None, row
    return message.state


def _unread(service: MessengerService, contact_id: int) -> int:
    summary = service.conversation(contact_id)
    assert summary is not None, contact_id
    return summary.unread


def _open_id(screen: MainScreen) -> int:
    """The id of the contact whose conversation is open (one must be)."""
    assert screen.current is not None
    return screen.current.id


async def test_message_goes_sent_delivered_read_and_replies_appear(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    bob_events = bob.subscribe()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        screen = _main(app)
        await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
        await pilot.press("enter")  # open Bob
        await wait_until(pilot, lambda: app.focused is screen.composer)
        await pilot.press(*"hello bob", "enter")
        await wait_until(pilot, lambda: len(screen.view.messages) == 1)
        row = screen.view.messages[0].id

        # Bob is offline: the relay stores it, the state is "sent".
        await wait_until(pilot, lambda: _shown_state(screen, row) == "sent", what="sent")
        assert _state_mark(screen, row) == STATE_MARKS["sent"]
        await wait_shown(pilot, "outbox empty")

        # Bob comes online: his client stores it and sends a delivery receipt.
        await bob.start()
        got = await next_event(bob_events, ev.MessageReceived)
        assert got.message.text == "hello bob"
        await wait_until(pilot, lambda: _shown_state(screen, row) == "delivered", what="delivered")
        assert _state_mark(screen, row) == STATE_MARKS["delivered"]

        # Bob reads it: a read receipt.
        await bob.mark_read(bob.contact("Alice").id)
        await wait_until(pilot, lambda: _shown_state(screen, row) == "read", what="read")
        assert _state_mark(screen, row) == STATE_MARKS["read"]

        # Bob answers: it appears in Alice's open conversation, which she is looking at, so
        # it is marked read at once and Bob learns it.
        reply = await bob.send_text(bob.contact("Alice").id, "hi alice, got it")
        await wait_until(pilot, lambda: len(screen.view.messages) == 2, what="reply shown")
        assert any("hi alice, got it" in line for line in screen.view.text_lines())
        await wait_shown(pilot, "hi alice, got it")
        await wait_until(
            pilot,
            lambda: _stored_state(bob, reply.id) == "read",
            what="read receipt at Bob",
        )
        assert _unread(alice, alice.contact("Bob").id) == 0


async def test_read_receipts_wait_for_terminal_focus(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    await bob.start()
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        screen = _main(app)
        await wait_until(pilot, lambda: alice.connected, what="connected")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current is not None)
        app.post_message(events.AppBlur())  # the user switched to another terminal window
        await wait_until(pilot, lambda: not app.app_focus)

        first = await bob.send_text(bob.contact("Alice").id, "are you there?")
        await wait_until(pilot, lambda: len(screen.view.messages) == 1, what="shown")
        await wait_until(pilot, lambda: _stored_state(bob, first.id) == "delivered")
        # Shown, but not seen: no read receipt, it counts as unread, and a "new messages"
        # line marks where the unseen messages start.
        assert _unread(alice, _open_id(screen)) == 1
        assert screen.view.unread_marker == screen.view.messages[0].id
        assert any("new messages" in line for line in screen.view.text_lines())
        assert _stored_state(bob, first.id) == "delivered"

        app.post_message(events.AppFocus())  # back to the messenger
        await wait_until(pilot, lambda: _stored_state(bob, first.id) == "read", what="read")
        assert _unread(alice, _open_id(screen)) == 0


async def test_typing_indicator_appears_and_clears_both_ways(
    pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = pair
    bob_events = bob.subscribe()
    await bob.start()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        screen = _main(app)
        await wait_until(pilot, lambda: alice.connected, what="connected")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is screen.composer)
        # Typing notices ride on an established session: exchange a message first.
        await pilot.press(*"hi", "enter")
        await next_event(bob_events, ev.MessageReceived)
        await bob.send_text(bob.contact("Alice").id, "hello")
        await wait_until(pilot, lambda: len(screen.view.messages) == 2)

        # Bob types: Alice's header and list say so; he stops: it clears.
        await bob.send_typing(bob.contact("Alice").id, True)
        await wait_until(pilot, lambda: "typing…" in screen.header_text, what="typing shown")
        await wait_shown(pilot, "typing…")
        await bob.send_typing(bob.contact("Alice").id, False)
        await wait_until(pilot, lambda: "typing…" not in screen_text(app), what="typing cleared")

        # Alice types: Bob is told (throttled), and told again when she sends.
        while not bob_events.empty():
            bob_events.get_nowait()
        await pilot.press(*"let me think")
        started = await next_event(bob_events, ev.TypingChanged)
        assert started.active and started.contact.name == "alice"
        await pilot.press("enter")
        # Both arrive (the message through the outbox, the stop notice as an ephemeral
        # signal; their order is not fixed).
        stopped: ev.TypingChanged | None = None
        sent: ev.MessageReceived | None = None
        deadline = asyncio.get_running_loop().time() + 20
        while stopped is None or sent is None:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await asyncio.wait_for(bob_events.get(), max(0.01, remaining))
            if isinstance(event, ev.TypingChanged):
                stopped = event
            elif isinstance(event, ev.MessageReceived):
                sent = event
        assert not stopped.active
        assert sent.message.text == "let me think"


async def test_lost_relay_shows_reconnecting_and_sends_what_was_typed_meanwhile(
    tmp_path: Path,
) -> None:
    with RelayProcess(tmp_path / "own-relay") as own_relay:
        alice = make_service(tmp_path, "alice2", own_relay.url)
        bob = make_service(tmp_path, "bob2", own_relay.url)
        try:
            await introduce(alice, bob)
            await alice.close()
            bob_events = bob.subscribe()
            app = make_app(alice)
            async with app.run_test(size=SMALL) as pilot:
                screen = _main(app)
                await wait_until(pilot, lambda: alice.connected, what="connected")
                await pilot.press("enter")
                await wait_until(pilot, lambda: app.focused is screen.composer)

                own_relay.kill()  # the relay crashes
                await wait_until(
                    pilot, lambda: "reconnecting" in screen_text(app), what="reconnecting"
                )
                await pilot.press(*"typed while offline", "enter")
                await wait_until(pilot, lambda: len(screen.view.messages) == 1)
                row = screen.view.messages[0].id
                assert _shown_state(screen, row) == "queued"
                await wait_shown(pilot, "1 waiting to send")

                own_relay.restart()  # same port and data
                await wait_until(
                    pilot, lambda: _shown_state(screen, row) == "sent", timeout=30,
                    what="sent after the relay came back",
                )  # fmt: skip
                await wait_shown(pilot, "● connected")
                await wait_shown(pilot, "outbox empty")
                await bob.connect(timeout=10)
                got = await next_event(bob_events, ev.MessageReceived)
                assert got.message.text == "typed while offline"
        finally:
            for s in (alice, bob):
                await s.close()
                s.profile.close()

"""Rename, block/unblock and delete a contact from the app: keys, dialogs and palette entries,
with the store checked afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.widgets import Input

from messenger_tui.app.models import Contact
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.contact_dialogs import ConfirmScreen, RenameContactScreen
from messenger_tui.ui.screens.main import MainScreen
from tests.helpers.clients import introduce, make_service
from tests.helpers.relay_process import RelayProcess

from .conftest import OFFLINE_URL, SMALL, screen_text, seed_messages, wait_shown, wait_until


def main_screen(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def stored(service: MessengerService, contact_id: int) -> Contact:
    """The contact as the store has it now (it must exist)."""
    contact = service.contact_by_id(contact_id)
    assert contact is not None, contact_id
    return contact


def opened(screen: MainScreen) -> Contact:
    """The contact whose conversation is open (one must be)."""
    assert screen.current is not None
    return screen.current


async def test_rename_through_the_dialog(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService]
) -> None:
    alice, _bob = offline_pair
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        alice.add_contact(carol.address, "Carol")
        seed_messages(alice, "Bob", ["hi from bob"], outgoing=False)
        bob_id = alice.contact("Bob").id
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            screen = main_screen(app)
            await pilot.press("enter")  # Bob: the most recent conversation
            await wait_until(pilot, lambda: screen.current is not None)
            assert opened(screen).name == "Bob"
            await pilot.press("alt+r")
            await wait_until(pilot, lambda: isinstance(app.screen, RenameContactScreen))
            dialog = app.screen
            assert isinstance(dialog, RenameContactScreen)
            # A taken name is an inline error; the dialog stays.
            dialog.query_one("#new-name", Input).value = "carol"
            await pilot.press("enter")
            await wait_until(pilot, lambda: "taken" in dialog.error_text, what="inline error")
            assert app.screen is dialog
            assert stored(alice, bob_id).name == "Bob"
            dialog.query_one("#new-name", Input).value = ""
            await pilot.press(*"Robert", "enter")
            await wait_until(pilot, lambda: app.screen is screen, what="dialog closed")
            assert stored(alice, bob_id).name == "Robert"  # the store
            await wait_until(pilot, lambda: opened(screen).name == "Robert")
            assert screen.header_text.startswith("Robert")
            await wait_shown(pilot, "Robert")
            # Their messages carry the new name in the view.
            assert any("Robert" in line and "hi from bob" in line
                       for line in screen.view.text_lines())  # fmt: skip
            # Esc cancels without renaming.
            await pilot.press("alt+r")
            await wait_until(pilot, lambda: isinstance(app.screen, RenameContactScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)
            assert stored(alice, bob_id).name == "Robert"
    finally:
        await carol.close()
        carol.profile.close()


async def test_block_and_unblock_with_the_key(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    bob_id = alice.contact("Bob").id
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is screen.composer)
        await pilot.press("alt+x")  # works from the composer (priority binding)
        await wait_until(pilot, lambda: stored(alice, bob_id).blocked, what="blocked")
        await wait_shown(pilot, "⊘ Bob")  # the list
        assert "blocked" in screen.header_text
        assert screen.composer.text == ""  # the key typed nothing
        # Sending to a blocked contact is refused; the text stays in the composer.
        await pilot.press(*"hello?", "enter")
        await wait_until(pilot, lambda: screen.composer.text == "hello?", what="text kept")
        assert alice.history(alice.contact("Bob").id) == []
        await pilot.press("alt+x")
        await wait_until(pilot, lambda: not stored(alice, bob_id).blocked, what="unblocked")
        await wait_until(pilot, lambda: "blocked" not in screen.header_text)
        assert "⊘" not in screen_text(app)


async def test_delete_asks_first(offline_pair: tuple[MessengerService, MessengerService]) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", ["one", "two"])
    bob_id = alice.contact("Bob").id
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current is not None)
        await pilot.press("alt+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "cannot be undone" in screen_text(app)
        await pilot.press("enter")  # the focus starts on Cancel: Enter alone never deletes
        await wait_until(pilot, lambda: app.screen is screen)
        assert alice.contact_by_id(bob_id) is not None
        await pilot.press("alt+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: alice.contact_by_id(bob_id) is None, what="deleted")
        await wait_until(pilot, lambda: screen.current is None)
        assert alice.contacts() == []
        assert alice.conversation(bob_id) is None
        assert alice.store.messages.count(bob_id) == 0  # the conversation went with them
        await wait_shown(pilot, "No contacts yet")


@pytest.mark.parametrize(
    ("command", "check"),
    [
        ("block contact", lambda alice: alice.contact("Bob").blocked),
        ("delete contact", lambda alice: True),  # opens the confirm dialog
        ("rename contact", lambda alice: True),  # opens the rename dialog
    ],
)
async def test_contact_commands_in_the_palette(
    offline_pair: tuple[MessengerService, MessengerService],
    command: str,
    check: Callable[[MessengerService], bool],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current is not None)
        await pilot.press("ctrl+p", *command)
        await wait_shown(pilot, command.split()[0].capitalize())
        await pilot.press("enter")
        if command == "delete contact":
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        elif command == "rename contact":
            await wait_until(pilot, lambda: isinstance(app.screen, RenameContactScreen))
        else:
            await wait_until(pilot, lambda: check(alice), what=command)


@pytest.fixture
async def online_pair(
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


@pytest.mark.slow
async def test_a_blocked_contacts_messages_are_not_shown_or_announced(
    online_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, bob = online_pair
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        assert main_screen(app) is app.screen
        await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
        await pilot.press("alt+x")  # nothing open: the highlighted contact (Bob)
        await wait_until(pilot, lambda: alice.contact("Bob").blocked, what="blocked")
        message = await bob.send_text(bob.contact("Alice").id, "can you read this?")
        assert await bob.wait_outbox_empty(10, message_row=message.id)
        # Alice unblocks and Bob writes again: only the second message arrives, so the first
        # was dropped (not just late).
        await pilot.press("alt+x")
        await wait_until(pilot, lambda: not alice.contact("Bob").blocked, what="unblocked")
        second = await bob.send_text(bob.contact("Alice").id, "and this?")
        assert await bob.wait_outbox_empty(10, message_row=second.id)
        await wait_until(
            pilot, lambda: bool(alice.search("and this")), what="second message stored"
        )
        assert alice.search("can you read") == []
        summary = alice.conversation(alice.contact("Bob").id)
        assert summary is not None and summary.unread == 1
        assert not any("can you read" in n.message for n in app._notifications)

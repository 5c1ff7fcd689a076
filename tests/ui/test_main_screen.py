"""The main screen without a relay: list, view, composer, paging, key change, add contact."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.widget import Widget
from textual.widgets import Input

from messenger_tui.app.models import Contact, Message
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.add_contact import AddContactScreen
from messenger_tui.ui.screens.help import HelpScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.own_address import OwnAddressScreen, qr_lines
from messenger_tui.ui.screens.safety import SafetyNumberScreen
from messenger_tui.ui.widgets.conversation_view import MAX_LOADED, PAGE_SIZE
from tests.helpers.clients import make_service

from .conftest import LARGE, OFFLINE_URL, SMALL, screen_text, seed_messages, wait_shown, wait_until


def main_screen(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def opened(screen: MainScreen) -> Contact:
    """The contact whose conversation is open (one must be)."""
    assert screen.current is not None
    return screen.current


def shown(widget: Widget) -> bool:
    """Whether ``widget`` is displayed, read afresh (a plain read would stay narrowed)."""
    return widget.display


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_main_screen_renders_contacts_by_latest_activity(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService], size: tuple[int, int]
) -> None:
    alice, _bob = offline_pair
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        alice.add_contact(carol.address, "Carol")
        await alice.send_text(alice.contact("Bob").id, "an older message to Bob")
        await alice.send_text(alice.contact("Carol").id, "the latest message, to Carol")
        app = make_app(alice, start_service=False)
        async with app.run_test(size=size) as pilot:
            screen = main_screen(app)
            await wait_until(pilot, lambda: len(screen.conversation_list.summaries) == 2)
            names = [s.contact.name for s in screen.conversation_list.summaries]
            assert names == ["Carol", "Bob"]  # most recent activity first
            text = screen_text(app)
            assert "Carol" in text and "Bob" in text
            assert "you: the latest" in text
            assert "offline" in text  # status line
            assert "2 waiting to send" in text
            assert alice.name in text  # own name and address in the status line
            # Open Bob's conversation: the own message is shown with its queued mark.
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: screen.current is not None)
            assert opened(screen).name == "Bob"
            assert any("an older message to Bob" in line for line in screen.view.text_lines())
            await wait_shown(pilot, "◷")
            assert app.focused is screen.composer
    finally:
        await carol.close()
        carol.profile.close()


async def test_empty_profile_shows_how_to_add_a_contact(tmp_path: Path) -> None:
    alice = make_service(tmp_path, "alice", OFFLINE_URL)
    try:
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            text = screen_text(app)
            assert "No contacts yet" in text
            assert "Ctrl+N" in text
    finally:
        await alice.close()
        alice.profile.close()


async def test_enter_sends_and_ctrl_j_inserts_a_newline(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")  # open Bob (the only conversation)
        await wait_until(pilot, lambda: app.focused is screen.composer)
        await pilot.press(*"first line", "ctrl+j", *"second line")
        assert screen.composer.text == "first line\nsecond line"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.view.messages) == 1, what="message in view")
        sent = screen.view.messages[0]
        assert sent.text == "first line\nsecond line" and sent.outgoing and sent.state == "queued"
        assert screen.composer.text == ""
        lines = screen.view.text_lines()
        assert any("first line" in line for line in lines)
        assert any("second line" in line for line in lines)
        assert [m.text for m in alice.history(alice.contact("Bob").id)] == [
            "first line\nsecond line"
        ]
        await wait_shown(pilot, "1 waiting to send")


async def test_long_lines_wrap_and_day_separators(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    long_text = "word " * 60
    await alice.send_text(alice.contact("Bob").id, long_text)
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.view.messages) == 1)
        lines = screen.view.text_lines()
        width = screen.view.scrollable_content_region.width
        assert lines[0].strip().strip("─").strip() == "Today"
        body = [line for line in lines[1:] if "word" in line]
        assert len(body) >= 4  # 300 characters wrapped in a ~35-column text column
        assert all(len(line) <= width for line in lines)


async def test_scrolling_up_loads_older_pages(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    total = PAGE_SIZE * 2 + 30
    seed_messages(alice, "Bob", [f"message number {i:03d}" for i in range(total)])
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        view = screen.view
        await wait_until(pilot, lambda: len(view.messages) == PAGE_SIZE)
        assert view.messages[-1].text == f"message number {total - 1:03d}"
        assert view.is_vertical_scroll_end
        view.focus()
        for _ in range(3):
            await pilot.press("home")  # to the top: the previous page loads above
            await pilot.pause()
        await wait_until(pilot, lambda: len(view.messages) == total, what="all pages loaded")
        assert [m.text for m in view.messages] == [f"message number {i:03d}" for i in range(total)]
        assert not view.has_more
        # The view did not jump: loading a page keeps what was on screen in place.
        await pilot.press("end")
        await pilot.pause()
        assert view.is_vertical_scroll_end


async def test_key_change_blocks_sending_until_accepted(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService]
) -> None:
    alice, _bob = offline_pair
    bob2 = make_service(tmp_path, "bob-new-device", OFFLINE_URL)
    try:
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            screen = main_screen(app)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.current is not None)
            # Bob's address changes (re-added under the same name: a new identity key).
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen))
            app.screen.query_one("#address", Input).value = bob2.address
            app.screen.query_one("#name", Input).value = "Bob"
            await pilot.click("#add")
            await wait_until(pilot, lambda: app.screen is screen)
            await wait_until(pilot, lambda: opened(screen).key_changed, what="key change")
            banner = screen.query_one("#key-banner")
            assert shown(banner)
            await wait_shown(pilot, "key changed")
            assert any("identity key changed" in line for line in screen.view.text_lines())

            screen.composer.focus()
            await pilot.press(*"still there?", "enter")
            await pilot.pause()
            assert [m for m in alice.history(alice.contact("Bob").id) if m.kind == "text"] == []
            assert screen.composer.text == "still there?"  # kept for after the review

            await pilot.press("f2")
            await wait_until(pilot, lambda: isinstance(app.screen, SafetyNumberScreen))
            safety = app.screen
            assert isinstance(safety, SafetyNumberScreen)
            digits = safety.digits_text.split()
            assert len(digits) == 12 and all(len(g) == 5 and g.isdigit() for g in digits)
            await wait_shown(pilot, "Accept new key")
            await pilot.press("v")
            await wait_until(pilot, lambda: app.screen is screen)
            await wait_until(pilot, lambda: not opened(screen).key_changed)
            assert not shown(banner)
            assert "verified" in screen.header_text

            screen.composer.focus()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: any(m.kind == "text" for m in alice.history(alice.contact("Bob").id))
            )
            assert alice.history(alice.contact("Bob").id)[-1].text == "still there?"
    finally:
        await bob2.close()
        bob2.profile.close()


async def test_add_contact_bad_checksum_is_an_inline_error(tmp_path: Path) -> None:
    alice = make_service(tmp_path, "alice", OFFLINE_URL)
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen))
            dialog = app.screen
            assert isinstance(dialog, AddContactScreen)
            good = carol.address
            # One mistyped character inside the key part (the last character also carries
            # padding bits, so a typo there may not change the key at all).
            typo = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
            dialog.query_one("#address").post_message(events.Paste(typo))  # as a terminal pastes
            await pilot.pause()
            await pilot.press("tab", *"Carol", "enter")
            await pilot.pause()
            assert "checksum" in dialog.error_text
            assert app.screen is dialog  # still open
            await wait_shown(pilot, "checksum")
            assert alice.contacts() == []
            # Fix the address: the contact is added and its conversation opens.
            dialog.query_one("#address", Input).value = good
            await pilot.click("#add")
            screen = main_screen(app)
            await wait_until(pilot, lambda: app.screen is screen)
            await wait_until(pilot, lambda: screen.current is not None)
            assert opened(screen).name == "Carol"
            assert [c.name for c in alice.contacts()] == ["Carol"]
            await wait_shown(pilot, "Say hello")
    finally:
        for s in (alice, carol):
            await s.close()
            s.profile.close()


async def test_keymap_override_and_keys_panel(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    keymap = {"composer.send": "ctrl+s", "composer.newline": "enter"}
    app = make_app(alice, start_service=False, keymap=keymap)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")  # the list's Enter still opens the conversation
        await wait_until(pilot, lambda: app.focused is screen.composer)
        await pilot.press("a", "enter", "b")
        assert screen.composer.text == "a\nb"  # Enter now inserts a newline
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: len(screen.view.messages) == 1)
        assert screen.view.messages[0].text == "a\nb"
        await wait_shown(pilot, "^s Send")  # the footer shows the remapped key

        await pilot.press("f1")  # the help screen (tests/ui/test_help.py)
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("f1")
        await wait_until(pilot, lambda: app.screen is screen, what="help closed")


async def test_typing_on_the_list_filters_conversations(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService]
) -> None:
    alice, _bob = offline_pair
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        alice.add_contact(carol.address, "Carol")
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            screen = main_screen(app)
            await wait_until(pilot, lambda: len(screen.conversation_list.summaries) == 2)
            await pilot.press("c", "a")  # typed on the focused list: goes to the filter
            await wait_until(pilot, lambda: len(screen.conversation_list.summaries) == 1)
            assert screen.conversation_list.summaries[0].contact.name == "Carol"
            await pilot.press("x")
            hint = screen.query_one("#no-contacts")
            await wait_until(pilot, lambda: "No conversation matches" in str(hint.render()))
            await pilot.press("backspace", "enter")  # Enter opens the first match
            await wait_until(pilot, lambda: screen.current is not None)
            assert opened(screen).name == "Carol"
            await pilot.press("escape")  # from the composer: back to the list
            assert app.focused is screen.conversation_list
            await pilot.press("escape")
            screen.query_one("#filter").focus()
            await pilot.press("escape")  # in the filter: clears it
            await wait_until(pilot, lambda: len(screen.conversation_list.summaries) == 2)
    finally:
        await carol.close()
        carol.profile.close()


async def test_own_address_screen_shows_the_address_and_a_qr_code(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, OwnAddressScreen))
        text = screen_text(app)
        assert alice.address in text  # the whole address fits at 80 columns
        assert "█" in text and "▀" in text  # the QR code
        await pilot.press("c")
        await wait_until(pilot, lambda: "copied" in " ".join(
            str(n.message) for n in app._notifications
        ))  # fmt: skip
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is main_screen(app))


def test_qr_code_encodes_the_address() -> None:
    lines = qr_lines("mt1" + "a" * 58)
    assert len({len(line) for line in lines}) == 1  # a square block of text
    assert len(lines) <= 17  # fits an 80x24 terminal with room for the address and buttons


async def test_drafts_stay_with_their_conversation(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService]
) -> None:
    alice, _bob = offline_pair
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        alice.add_contact(carol.address, "Carol")
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            screen = main_screen(app)
            await wait_until(pilot, lambda: len(screen.conversation_list.summaries) == 2)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.current is not None)
            first = opened(screen).name
            await pilot.press(*"draft one")
            await pilot.press("alt+down")
            await wait_until(pilot, lambda: opened(screen).name != first)
            assert screen.composer.text == ""
            await pilot.press(*"draft two")
            await pilot.press("alt+up")
            await wait_until(pilot, lambda: opened(screen).name == first)
            assert screen.composer.text == "draft one"
            await pilot.press("alt+down")
            await wait_until(pilot, lambda: opened(screen).name != first)
            assert screen.composer.text == "draft two"
    finally:
        await carol.close()
        carol.profile.close()


async def test_a_long_live_stream_keeps_the_view_bounded(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", [f"old {i}" for i in range(10)])
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        view = screen.view
        await wait_until(pilot, lambda: len(view.messages) == 10)
        contact = alice.contact("Bob")
        for start in range(0, MAX_LOADED + 500, 500):
            messages = [
                Message(
                    id=1_000_000 + i, message_id=i.to_bytes(16, "big"), contact_id=contact.id,
                    outgoing=False, kind="text", text=f"live {i}", sent_at_ms=1_700_000_000_000,
                    received_at_ms=None, state="seen",
                )
                for i in range(start, start + 500)
            ]  # fmt: skip
            view.append(messages)
            await pilot.pause()
        assert len(view.messages) <= MAX_LOADED
        assert view.messages[-1].text == f"live {MAX_LOADED + 499}"
        assert view.is_vertical_scroll_end and view.has_more


async def test_links_emphasis_and_the_new_messages_line(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", ["read long ago"], outgoing=False)
    contact = alice.contact("Bob")
    with alice.store.db.transaction():
        for i, text in enumerate(["see https://example.org/x, it is *great*", "and `code`"]):
            alice.store.messages.insert(
                contact.id, bytes([i + 1]) * 16, outgoing=False, body=text,
                sent_at_ms=1_700_000_000_000 + i, received_at_ms=1, state="received",
            )  # fmt: skip
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")
        view = screen.view
        await wait_until(pilot, lambda: len(view.messages) == 3)
        lines = view.text_lines()
        marker = next(i for i, line in enumerate(lines) if "new messages" in line)
        assert "read long ago" in "".join(lines[:marker])
        assert "https://example.org/x" in "".join(lines[marker:])
        segments = [seg for strip in view._lines for seg in strip]
        links = {seg.style.link for seg in segments if seg.style and seg.style.link}
        assert links == {"https://example.org/x"}
        assert any(seg.text == "great" and seg.style is not None and seg.style.bold
                   for seg in segments)  # fmt: skip
        summary = alice.conversation(contact.id)
        assert summary is not None and summary.unread == 0  # opened and seen

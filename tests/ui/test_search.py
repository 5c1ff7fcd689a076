"""Search: the store's safe FTS5 queries, the search screen, and jumping to a match in a long
conversation (the line-API view loads the page around it, highlights it, and still pages both
ways and back to the newest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from messenger_tui.app.facade import SearchHit
from messenger_tui.app.group_models import GroupSearchHit
from messenger_tui.app.service import MessengerService
from messenger_tui.storage.messages import fts_query
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.search import SearchScreen
from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE
from tests.helpers.clients import make_service

from .conftest import OFFLINE_URL, SMALL, screen_text, seed_messages, wait_shown, wait_until

SPECIAL = ['"', '""', "*", "C++", "a AND", "NEAR(", "(", ")", "^x", "-", ":", "'", "x OR y", "\\"]


def name_of(hit: SearchHit | GroupSearchHit) -> str:
    return hit.contact.name if isinstance(hit, SearchHit) else f"# {hit.group.name}"


def main_screen(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def test_fts_query_quotes_every_word() -> None:
    assert fts_query("") is None and fts_query("   ") is None
    assert fts_query("hello wor") == '"hello" "wor"*'
    assert fts_query("hello ") == '"hello"'  # a finished word is not a prefix
    assert fts_query('say "hi"') == '"say" """hi"""*'


def test_search_text_is_safe_and_highlights(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", ['say "hi" now', "C++ AND rust", "naïve café", "hello world"])
    for text in SPECIAL:
        alice.search(text)  # never an FTS5 syntax error
    hits = alice.search("hel")
    assert [h.message.text for h in hits] == ["hello world"]
    (start, end), *_ = hits[0].highlights
    assert hits[0].snippet[start:end] == "hello"
    assert [h.message.text for h in alice.search('"hi"')] == ['say "hi" now']
    assert [h.message.text for h in alice.search("AND")] == ["C++ AND rust"]
    assert [h.message.text for h in alice.search("cafe")] == ["naïve café"]
    assert alice.search("nothing-like-this") == []
    scoped = alice.search("hello", contact_id=alice.contact("Bob").id)
    assert scoped and all(h.contact.name == "Bob" for h in scoped)


def test_history_around_and_after(offline_pair: tuple[MessengerService, MessengerService]) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", [f"m{i}" for i in range(300)])
    rows = alice.history(alice.contact("Bob").id, limit=300)
    target = rows[10].id
    around = alice.history_around(alice.contact("Bob").id, target, limit=100)
    assert target in [m.id for m in around]
    assert [m.text for m in around][:11] == [f"m{i}" for i in range(11)]  # 10 before it exist
    assert len(around) == 100
    middle = rows[150].id
    around_ids = [m.id for m in alice.history_around(alice.contact("Bob").id, middle, limit=100)]
    assert around_ids.index(middle) == 50 and len(around_ids) == 100
    after = alice.history_after(alice.contact("Bob").id, rows[-3].id, limit=10)
    assert [m.text for m in after] == ["m298", "m299"]
    assert alice.history_around(alice.contact("Bob").id, 10**9, limit=100) == []


async def test_search_jumps_to_a_match_far_back_in_a_long_conversation(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    texts = [f"filler message number {i}" for i in range(2000)]
    texts[300] = "the needle: meet at the old lighthouse"
    seed_messages(alice, "Bob", texts)
    target = next(h for h in alice.search("lighthouse")).message
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("enter")  # open Bob: the newest page
        await wait_until(pilot, lambda: screen.current is not None)
        view = screen.view
        assert target.id not in [m.id for m in view.messages]
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen), what="search")
        search = app.screen
        assert isinstance(search, SearchScreen)
        assert "In Bob" in screen_text(app)
        await pilot.press(*"lighth")
        await wait_until(pilot, lambda: len(search.hits) == 1, what="one hit")
        assert "lighthouse" in screen_text(app)
        assert "1 message" in search.status_text
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen, what="back on the main screen")
        await wait_until(pilot, lambda: view.highlighted == target.id, what="highlighted")
        assert target.id in view.visible_rows()
        await wait_shown(pilot, "the needle: meet at the old")
        assert (view.has_newer, view.has_more) == (True, True)  # a tuple: no narrowing
        assert len(view.messages) <= 2 * PAGE_SIZE
        # The highlight is drawn: the target's lines have another background than the rest.
        line = view._line_owner.index(target.id)
        other = view._line_owner.index(view.messages[-1].id)
        assert view._lines[line] != view._lines[other]
        bg = {seg.style.bgcolor for seg in view._lines[line] if seg.style}
        assert bg != {seg.style.bgcolor for seg in view._lines[other] if seg.style}

        # Older pages load upwards...
        view.focus()
        oldest = view.messages[0].id
        await scroll_until(pilot, "pageup", lambda: view.messages[0].id < oldest)
        # ... and newer ones downwards.
        newest = view.messages[-1].id
        await scroll_until(pilot, "pagedown", lambda: view.messages[-1].id > newest)
        # End jumps to the newest message of the conversation.
        await pilot.press("end")
        await wait_shown(pilot, "filler message number 1999")
        assert not view.has_newer
        assert view.is_vertical_scroll_end
        # A message sent now shows at the end.
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"lighthouse", "enter")
        await wait_until(pilot, lambda: view.highlighted == target.id and view.has_newer)
        screen.composer.focus()
        await pilot.press(*"fresh one", "enter")
        await wait_until(pilot, lambda: not view.has_newer, what="jumped to the newest")
        assert view.messages[-1].text == "fresh one"
        await wait_shown(pilot, "fresh one")


async def test_search_across_conversations_and_empty_results(
    tmp_path: Path, offline_pair: tuple[MessengerService, MessengerService]
) -> None:
    alice, _bob = offline_pair
    carol = make_service(tmp_path, "carol", OFFLINE_URL)
    try:
        alice.add_contact(carol.address, "Carol")
        seed_messages(alice, "Bob", ["pizza on friday?", "unrelated"], outgoing=False)
        seed_messages(alice, "Carol", ["I love pizza", "more words"])
        app = make_app(alice, start_service=False)
        async with app.run_test(size=SMALL) as pilot:
            screen = main_screen(app)
            await pilot.press("ctrl+f")  # no conversation open: all of them
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            search = app.screen
            assert isinstance(search, SearchScreen)
            assert "Type words to find" in search.status_text
            await pilot.press(*"pizza")
            await wait_until(pilot, lambda: len(search.hits) == 2, what="two hits")
            assert {name_of(h) for h in search.hits} == {"Bob", "Carol"}
            text = screen_text(app)
            assert "Bob" in text and "Carol" in text and "In all conversations" in text
            # Special characters never crash; no match says so.
            for special in SPECIAL:
                search.query_one("#search-input", Input).value = special
                await pilot.pause()
                assert search.hits == [] or special == "*"
            search.query_one("#search-input", Input).value = "zebra"
            await wait_until(pilot, lambda: "No messages match “zebra”" in search.status_text)
            assert "No messages match" in screen_text(app)
            # Choose Bob's hit with the arrows: his conversation opens at it.
            search.query_one("#search-input", Input).value = "pizza"
            await wait_until(pilot, lambda: len(search.hits) == 2)
            bob_index = next(i for i, h in enumerate(search.hits) if name_of(h) == "Bob")
            await pilot.press("down")  # into the results
            for _ in range(bob_index):
                await pilot.press("down")
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.current is not None and app.screen is screen)
            assert screen.current is not None and screen.current.name == "Bob"
            assert screen.view.highlighted == search.hits[bob_index].message.id

            # In Bob's conversation Ctrl+F searches only his; Ctrl+T widens it.
            await pilot.press("ctrl+f")
            await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
            in_bob = app.screen
            assert isinstance(in_bob, SearchScreen)
            await pilot.press(*"pizza")
            await wait_until(pilot, lambda: len(in_bob.hits) == 1)
            assert name_of(in_bob.hits[0]) == "Bob"
            await pilot.press("ctrl+t")
            await wait_until(pilot, lambda: len(in_bob.hits) == 2, what="all conversations")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)
    finally:
        await carol.close()
        carol.profile.close()


async def scroll_until(
    pilot: Pilot[None], key: str, predicate: Callable[[], bool], *, presses: int = 30
) -> None:
    for _ in range(presses):
        if predicate():
            return
        await pilot.press(key)
        await pilot.pause()
    assert predicate(), f"nothing loaded after {presses} presses of {key}"


@pytest.mark.parametrize("everywhere", [False, True])
async def test_search_from_the_command_palette(
    offline_pair: tuple[MessengerService, MessengerService], everywhere: bool
) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", ["findable"])
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("enter")
        await pilot.press("ctrl+p")
        await pilot.press(*("search all" if everywhere else "search this"))
        await wait_shown(pilot, "Search all" if everywhere else "Search this")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen), what="search")
        search = app.screen
        assert isinstance(search, SearchScreen)
        assert search.everywhere is everywhere


async def test_all_conversation_search_finds_group_messages_with_the_group_name(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", ["pizza with bob"], outgoing=False)
    alice.groups.create("team", ["Bob"])
    alice.groups.send_text("team", "pizza for the whole team")
    alice.groups.send_text("team", "no match here")
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = main_screen(app)
        await pilot.press("ctrl+f")  # no conversation open: all of them
        await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"pizza")
        await wait_until(pilot, lambda: len(search.hits) == 2, what="two hits")
        # newest first, across contacts and groups
        assert [name_of(h) for h in search.hits] == ["# team", "Bob"]
        group_hit = search.hits[0]
        assert isinstance(group_hit, GroupSearchHit)
        assert group_hit.snippet == "pizza for the whole team"
        assert group_hit.highlights == ((0, 5),)
        text = screen_text(app)
        assert "# team" in text and "you: pizza for the whole team" in text
        await pilot.press("enter")  # the newest: the group opens
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        assert isinstance(app.screen, GroupChatScreen)
        assert app.screen.group_row == group_hit.group.id
        del screen

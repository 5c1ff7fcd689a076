"""What a new user hit in the first hour (issue 12, part 2), one test per defect: keys that
work from every focus, the view that keeps following the newest message, presence while our
own link is down, the muted mic meter, a big paste, the add-contact hint, Ctrl+C's notice,
and message requests (through a real relay)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from messenger_tui.app import events as ev
from messenger_tui.app.models import CallStats, CallView, Contact
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.add_contact import ADDRESS_HINT, AddContactScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.widgets.call_pane import CallPane, stats_lines
from messenger_tui.ui.widgets.chat_header import BLOCK_KEY
from tests.helpers.clients import make_service, next_event
from tests.helpers.relay_process import RelayProcess

from .conftest import SMALL, screen_text, seed_messages, wait_shown, wait_until


def main_screen(app: MessengerApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def notices(app: MessengerApp) -> list[str]:
    return [n.message for n in app._notifications]


async def open_bob(pilot: Pilot[None], app: MessengerApp) -> MainScreen:
    screen = main_screen(app)
    await pilot.press("enter")  # Bob: the only conversation
    await wait_until(pilot, lambda: app.focused is screen.composer, what="composer focused")
    return screen


async def test_mute_key_works_from_the_composer_and_the_list(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    """Alt+M is a priority key: the composer does not type "m", the list does not filter."""
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_bob(pilot, app)
        await pilot.press("alt+m")
        await wait_until(pilot, lambda: alice.contact("Bob").muted, what="muted")
        assert screen.composer.text == ""
        assert "muted" in screen.header_text
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.focused is screen.conversation_list)
        await pilot.press("alt+m")
        await wait_until(pilot, lambda: not alice.contact("Bob").muted, what="unmuted")
        assert screen.query_one("#filter", Input).value == ""
        assert app.focused is screen.conversation_list


async def test_ctrl_c_says_how_to_quit_in_plain_text(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: bool(notices(app)), what="a notice")
        assert notices(app) == ["Press Ctrl+Q to quit the app."]
        # Toasts are plain text in this app (peers' names): a markup tag would show as typed.
        assert not any("[" in n for n in notices(app))


async def test_the_view_keeps_following_when_its_height_changes(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    """A call pane opening (or the terminal shrinking) must not leave new replies below the
    fold; a view the user scrolled up stays where it is."""
    alice, _bob = offline_pair
    seed_messages(alice, "Bob", [f"old message {i}" for i in range(60)], outgoing=False)
    app = make_app(alice, start_service=False)
    async with app.run_test(size=(80, 30)) as pilot:
        screen = await open_bob(pilot, app)
        view = screen.view
        await wait_until(pilot, lambda: view.is_vertical_scroll_end, what="at the end")
        height = view.size.height
        bob = alice.contact("Bob")
        call = CallView(b"c1", bob.identity, bob, "active", True, 0, 1, None, None, False,
                        False, "joined")  # fmt: skip
        screen.query_one(CallPane).show_call(call)
        await wait_until(pilot, lambda: view.size.height < height, what="the pane open")
        await pilot.pause()
        assert view.is_vertical_scroll_end
        await pilot.resize_terminal(80, 20)
        await wait_until(pilot, lambda: view.size.height < height - 10, what="resized")
        await pilot.pause()
        assert view.is_vertical_scroll_end
        # A reply during the call is on screen.
        alice.store.messages.insert(
            bob.id, b"r" * 16, outgoing=False, body="reply during the call",
            sent_at_ms=2_000_000_000_000, received_at_ms=None, state="seen",
        )  # fmt: skip
        message = alice.history(alice.contact("Bob").id, limit=1)[0]
        await screen.apply_events([ev.MessageReceived(bob, message)])
        await wait_shown(pilot, "reply during the call")
        # Scrolled up by the user: a height change leaves the view there.
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        await pilot.resize_terminal(80, 26)
        await pilot.pause()
        assert not view.is_vertical_scroll_end


async def test_presence_is_unknown_while_our_link_is_down(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_bob(pilot, app)
        bob = alice.contact("Bob")
        await screen.apply_events(
            [ev.ConnectionChanged("connected"), ev.PresenceChanged(bob, True)]
        )
        await wait_until(pilot, lambda: "● online" in screen.header_text, what="online")
        assert "● Bob" in screen_text(app)  # the list's dot
        await screen.apply_events([ev.ConnectionChanged("reconnecting", retry_in=5.0)])
        await wait_until(pilot, lambda: "online" not in screen.header_text, what="not online")
        assert "unknown (you are offline)" in screen.header_text
        assert "○ Bob" in screen_text(app)
        await screen.apply_events([ev.ConnectionChanged("connected")])
        await wait_until(pilot, lambda: "● online" in screen.header_text, what="online again")


def test_the_mic_meter_is_empty_while_muted() -> None:
    stats = CallStats(
        rtt_ms=40.0, jitter_ms=5.0, loss_percent=0.0, peer_loss_percent=None, late_frames=0,
        buffer_delay_ms=60.0, buffer_target_ms=60.0, send_kbps=27.0, receive_kbps=26.0,
        mic_level=0.5, remote_level=0.5, frames_sent=1, frames_received=1, dropped_frames=0,
        concealed_frames=0, capturing=True, sending=True, peer_receiving=True,
        peer_playing=True,
    )  # fmt: skip
    live = stats_lines(stats, 80).plain.splitlines()[0]
    muted = stats_lines(stats, 80, muted=True).plain.splitlines()[0]
    assert live.startswith("mic ███")
    mic_part = muted.split("them")[0]
    assert "█" not in mic_part and "muted" in mic_part
    assert "them ███" in muted  # the other side's level still shows


async def test_a_big_paste_is_undone_and_the_composer_cleared(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_bob(pilot, app)
        composer = screen.composer
        await pilot.press(*"keep this")
        big = "x" * 199_999 + "\n"  # a 200 KB paste
        app.post_message(events.Paste(big))  # as the terminal driver delivers it
        await wait_until(pilot, lambda: len(composer.text) > 200_000, what="pasted")
        # The whole paste at once, not what came before (and no crash: Textual's own undo
        # fails after a multi-line paste that showed the scrollbar).
        await pilot.press("ctrl+z")
        await wait_until(pilot, lambda: composer.text == "keep this", what="paste undone")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: composer.text == "", what="cleared")
        await pilot.press("ctrl+z")  # a clear is undone too
        await wait_until(pilot, lambda: composer.text == "keep this", what="clear undone")


@pytest.mark.parametrize("width", [50, 80, 160])
async def test_the_add_contact_hint_names_f3_and_is_not_cut(
    offline_pair: tuple[MessengerService, MessengerService], width: int
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=(width, 24)) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen))
        await pilot.pause()
        shown = screen_text(app)
        assert "F3" in ADDRESS_HINT
        missing = [word for word in ADDRESS_HINT.split() if word not in shown]
        assert missing == []


# ---------------------------------------------------------------- message requests (relay)


@pytest.fixture
async def stranger_writes(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService]]:
    """Carol writes to Alice, who does not know her: Alice has a message request."""
    alice = make_service(tmp_path, "alice", relay.url)
    carol = make_service(tmp_path, "carol", relay.url)
    events_ = alice.subscribe()
    await alice.connect(timeout=10)  # her prekeys are on the relay
    carol.add_contact(alice.address, "Alice")
    await carol.connect(timeout=10)
    await carol.send_text(carol.contact("Alice").id, "hi, we met at the conference")
    await next_event(events_, ev.MessageReceived)
    alice.unsubscribe(events_)
    await alice.close()
    yield alice, carol
    for s in (alice, carol):
        await s.close()
        s.profile.close()


@pytest.mark.slow
async def test_a_message_request_is_marked_with_the_address_and_choices(
    stranger_writes: tuple[MessengerService, MessengerService],
) -> None:
    alice, carol = stranger_writes
    [request] = [s.contact for s in alice.conversations()]
    assert request.auto_added

    def requester() -> Contact:
        """The request's contact as stored now."""
        contact = alice.contact_by_id(request.id)
        assert contact is not None
        return contact

    app = make_app(alice, start_service=False)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = main_screen(app)
        # In the list, with a message: marked as a request, not shown like a contact's.
        await wait_shown(pilot, "request: hi, we met")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current is not None)
        assert "message request" in screen.header_text
        banner = screen.query_one("#request-banner")
        assert banner.has_class("-shown")
        shown = str(banner.render())
        assert carol.address[:24] in shown  # who wrote: their address, not just a name
        assert "Alt+A: accept" in shown and f"{BLOCK_KEY}: block" in shown
        assert carol.address[:16] in screen_text(app)
        # Block (the key the banner names), then unblock: the request is back.
        await pilot.press("alt+x")
        await wait_until(pilot, lambda: requester().blocked, what="blocked")
        await wait_until(pilot, lambda: not banner.has_class("-shown"))
        assert f"blocked ({BLOCK_KEY})" in screen.header_text
        await pilot.press("alt+x")
        await wait_until(pilot, lambda: not requester().blocked)
        await wait_until(pilot, lambda: banner.has_class("-shown"))
        # Accept: a contact now; the marks go.
        await pilot.press("alt+a")
        await wait_until(pilot, lambda: not requester().auto_added, what="accepted")
        await wait_until(pilot, lambda: not banner.has_class("-shown"))
        assert "message request" not in screen.header_text
        assert "request:" not in screen_text(app)
        assert dataclasses.replace(request, auto_added=False) == alice.contact_by_id(request.id)

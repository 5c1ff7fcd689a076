"""Group calls in the app (issue 15, "what must be shown" 4): from a group conversation F5
starts the group's call or joins it, the call pane lists the participants with a speaking
marker and their health, F7 leaves (the call stays joinable while others are in it). Alice
uses the app; Bob and Carol are in-process services; all through a real relay, audio from
silent loops (and a tone for Bob, so he speaks)."""

from __future__ import annotations

import math
from array import array
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from messenger_tui.app.service import MessengerService
from messenger_tui.media.pacing import LoopPacer
from messenger_tui.media.ports import FRAME_SAMPLES, SAMPLE_RATE, SILENCE, AudioSink, AudioSource
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen
from tests.helpers.clients import introduce, make_service, wait_for
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow

TONE = [
    array(
        "h",
        (
            int(8000 * math.sin(2 * math.pi * 440 * (i + n * FRAME_SAMPLES) / SAMPLE_RATE))
            for i in range(FRAME_SAMPLES)
        ),
    ).tobytes()
    for n in range(50)
]


class _Loop:
    def __init__(self, step: Callable[[Callable[..., object]], object]) -> None:
        self._step = step
        self._pacer: LoopPacer | None = None

    def start(self, callback: Callable[..., object]) -> None:
        self._pacer = LoopPacer(lambda: self._step(callback))
        self._pacer.start()

    def stop(self) -> None:
        if self._pacer is not None:
            self._pacer.stop()


def silent() -> tuple[AudioSource, AudioSink]:
    return _Loop(lambda on_frame: on_frame(SILENCE)), _Loop(lambda pull: pull())


def tone() -> tuple[AudioSource, AudioSink]:
    frames = iter(TONE * 1000)
    return _Loop(lambda on_frame: on_frame(next(frames))), _Loop(lambda pull: pull())


@pytest.fixture
async def trio(
    tmp_path: Path, relay: RelayProcess
) -> AsyncIterator[tuple[MessengerService, MessengerService, MessengerService]]:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    carol = make_service(tmp_path, "carol", relay.url)
    await introduce(alice, bob)
    await introduce(alice, carol)
    await introduce(bob, carol)
    alice.set_audio(silent)
    bob.set_audio(tone)
    carol.set_audio(silent)
    await bob.start()
    await carol.start()
    bob.groups.create("team", ["alice", "carol"])
    await wait_for(lambda: all(len(s.groups.all()) == 1 for s in (alice, bob, carol)), 30)
    await alice.close()  # the app connects Alice again
    try:
        yield alice, bob, carol
    finally:
        for s in (alice, bob, carol):
            await s.close()
            s.profile.close()


async def open_group(pilot: Pilot[None], app: MessengerApp) -> None:
    screen = app.main_screen
    assert isinstance(screen, MainScreen)
    await wait_shown(pilot, "# team")
    clist = screen.conversation_list
    clist.focus()
    clist.highlighted = clist.get_option_index("group-1")
    await pilot.press("enter")  # a rebuild in between keeps the group highlighted
    await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen), what="the group")


def state(service: MessengerService) -> str | None:
    view = service.group_calls.view("team")
    return view.state if view else None


def names_in_call(service: MessengerService) -> list[str]:
    view = service.group_calls.view("team")
    return [p.name for p in view.participants] if view else []


async def test_start_then_members_join_listed_with_speaking_marker_then_leave(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    alice, bob, carol = trio
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        await open_group(pilot, app)
        assert "f5 Call" in screen_text(app)
        await pilot.press("f5")
        await wait_shown(pilot, "In the call · nobody else yet")
        assert "F7 leave" in screen_text(app) and "f7 Leave call" in screen_text(app)
        await wait_for(lambda: state(bob) == "ringing" and state(carol) == "ringing")
        bob.group_calls.start_or_join("team")
        carol.group_calls.start_or_join("team")
        await wait_shown(pilot, "In the call · 2 others", timeout=20)
        # Bob plays a tone: once his key and frames arrive he is heard and marked speaking
        await wait_shown(pilot, "● bob  loss 0.0 %", timeout=20)
        text = screen_text(app)
        assert "○ carol" in text  # silent: no speaking marker
        await pilot.press("f7")
        # Bob and Carol are still in it: the call stays joinable
        await wait_shown(pilot, "Call in progress  F5 join")
        assert "In the call" not in screen_text(app) and "f5 Call" in screen_text(app)
        assert alice.group_calls.active() is None
        await wait_for(lambda: names_in_call(bob) == ["carol"])
        await pilot.press("f5")  # join the same call again
        await wait_shown(pilot, "In the call · 2 others", timeout=20)
        await wait_for(lambda: sorted(names_in_call(bob)) == ["alice", "carol"])
        await pilot.press("f7")
        await wait_shown(pilot, "Call in progress  F5 join")


async def test_a_ringing_call_shows_and_f5_joins(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    alice, bob, _carol = trio
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        await open_group(pilot, app)
        bob.group_calls.start_or_join("team")
        await wait_shown(pilot, "A call rings in this group  F5 join")
        await pilot.press("f5")
        await wait_shown(pilot, "In the call · 1 other", timeout=20)
        await wait_shown(pilot, "● bob", timeout=20)
        await wait_for(lambda: names_in_call(bob) == ["alice"])
        await pilot.press("f7")
        await wait_until(pilot, lambda: "In the call" not in screen_text(app), what="leave")


async def test_a_call_ringing_in_a_group_not_on_screen_shows_a_toast(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    _alice, bob, _carol = trio
    app = make_app(_alice)
    async with app.run_test(size=LARGE) as pilot:
        await wait_shown(pilot, "# team")
        bob.group_calls.start_or_join("team")
        await wait_until(
            pilot,
            lambda: any("A call rings in #team" in str(n.message) for n in app._notifications),
            what="the toast",
        )
        await open_group(pilot, app)
        await wait_shown(pilot, "A call rings in this group  F5 join")


async def test_call_over_stops_offering_to_join(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    """Rule 10: Bob starts, Carol joins, Alice never does (she declined: "call in progress,
    join"). Bob leaves: Carol is still in it, nothing changes for Alice. Carol leaves, the last
    one out: her "call over" reaches Alice, whose pane stops offering to join."""
    alice, bob, carol = trio
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        await open_group(pilot, app)
        bob.group_calls.start_or_join("team")
        await wait_shown(pilot, "A call rings in this group  F5 join")
        await wait_for(lambda: state(carol) == "ringing")
        carol.group_calls.start_or_join("team")
        await wait_for(lambda: names_in_call(bob) == ["carol"], 20)
        alice.group_calls.decline("team")
        await wait_shown(pilot, "Call in progress  F5 join")
        bob.group_calls.leave()
        await wait_for(lambda: names_in_call(carol) == [], 20)
        await pilot.pause(0.5)  # Bob was not the last one: no "call over"
        assert "Call in progress  F5 join" in screen_text(app)
        assert state(alice) == "in_progress"
        carol.group_calls.leave()
        await wait_until(
            pilot, lambda: "Call in progress" not in screen_text(app), what="the pane hidden"
        )
        assert state(alice) == "ended"
        assert "F5 join" not in screen_text(app)
        await wait_shown(pilot, "f5 Call")  # a new call can be started

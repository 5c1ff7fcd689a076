"""Groups in the app: a group shows in the conversation list with its marker and unread
count; opening it shows each sender's name; what Alice writes there reaches the members.
Alice uses the app; Bob and Carol are in-process services, all through a real relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from tests.helpers.clients import introduce, make_service, wait_for
from tests.helpers.relay_process import RelayProcess

from .conftest import LARGE, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow


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
    await alice.close()  # the app connects Alice again
    try:
        yield alice, bob, carol
    finally:
        for s in (alice, bob, carol):
            await s.close()
            s.profile.close()


async def test_group_in_list_opens_with_sender_names_and_sends(
    trio: tuple[MessengerService, MessengerService, MessengerService],
) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    bob.groups.create("team", ["alice", "carol"])
    bob.groups.send_text("team", "hello from bob")
    await wait_for(lambda: bool(carol.groups.all()) and bool(carol.groups.history("team")))
    carol.groups.send_text("team", "carol says hi")
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_shown(pilot, "# team")
        await wait_until(  # a toast for each group message
            pilot,
            lambda: {n.title for n in app._notifications} >= {"#team · bob", "#team · carol"},
            what="the toasts",
        )
        clist = screen.conversation_list
        await wait_until(
            pilot, lambda: "2 " in screen_text(app).split("# team", 1)[1][:200], what="unread"
        )
        clist.focus()
        clist.highlighted = clist.get_option_index("group-1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        await wait_shown(pilot, "bob: hello from bob")
        await wait_shown(pilot, "carol: carol says hi")
        assert "3 members" in screen_text(app)
        await pilot.press(*"hi all", "enter")
        await wait_shown(pilot, "you: hi all")
        await wait_for(lambda: "hi all" in [m.text for m in bob.groups.history("team")])
        await wait_for(lambda: "hi all" in [m.text for m in carol.groups.history("team")])
        # bob learns that alice read his message (she opened the group)
        await wait_for(lambda: [m.read for m in bob.groups.history("team") if m.outgoing] == [1])
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)

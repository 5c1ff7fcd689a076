"""The conversation list keeps the highlighted row, a contact's or a group's, when it is
rebuilt (an event, a resize): Enter then opens what the user highlighted, never the first
contact the rebuild fell back to."""

from __future__ import annotations

from messenger_tui.ui import make_app
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen

from .conftest import LARGE, wait_until
from .snapshot_facade import group_scene


async def test_a_highlighted_group_stays_highlighted_through_a_rebuild() -> None:
    facade = group_scene()
    app = make_app(facade)
    async with app.run_test(size=LARGE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen))
        screen = app.main_screen
        assert screen is not None
        clist = screen.conversation_list
        clist.focus()
        for option in ("group-1", f"contact-{facade.contacts()[1].id}"):
            clist.highlighted = clist.get_option_index(option)
            clist.set_data(clist.summaries, {}, set(), facade.groups.all())  # a late event
            await pilot.pause()
            assert clist.highlighted is not None
            assert clist.get_option_at_index(clist.highlighted).id == option
        clist.highlighted = clist.get_option_index("group-1")
        clist.set_data(clist.summaries, {}, set(), facade.groups.all())
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen), what="group")

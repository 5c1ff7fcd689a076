"""Snapshots of groups: the conversation list with a group row, a group conversation
(sender names coloured per member, delivery/read counts, mentions) and it with its members
panel, at 80x24 and 160x50. Same conventions as test_snapshots.py (regenerate with
``--snapshot-update``)."""

from __future__ import annotations

from textual.pilot import Pilot

from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen

from .conftest import wait_until
from .snapshot_facade import group_scene
from .test_snapshots import SIZES, SnapCompare, _snap, frozen_clock, no_blinking

__all__ = ["frozen_clock", "no_blinking"]  # the autouse fixtures, applied here too


async def open_group(pilot: Pilot[object], screen: MainScreen) -> None:
    clist = screen.conversation_list
    clist.focus()
    clist.highlighted = clist.get_option_index("group-1")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, GroupChatScreen))


@SIZES
def test_group_conversation(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert _snap(snap_compare, group_scene(), size, open_group)


async def open_members(pilot: Pilot[object], screen: MainScreen) -> None:
    await open_group(pilot, screen)
    await pilot.press("f2")
    await wait_until(pilot, lambda: pilot.app.screen.focused is not None
                     and pilot.app.screen.focused.id == "group-members")  # fmt: skip


@SIZES
def test_group_members_panel(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """The members panel beside the conversation: roles, "you", the panel's keys in the
    footer, and a mention highlighted in the view."""
    assert _snap(snap_compare, group_scene(), size, open_members)

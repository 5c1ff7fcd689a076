"""Snapshots of groups: the conversation list with a group row, and a group conversation
(sender names coloured per member, delivery/read counts), at 80x24 and 160x50. Same
conventions as test_snapshots.py (regenerate with ``--snapshot-update``)."""

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

"""The group screen follows the service's events (the fixed facade, no relay): a burst whose
last event is not the group's still shows the group's new message (the ui_group_backlog_stall
benchmark found the view stuck before this), and a member's typing notice shows and lapses."""

from __future__ import annotations

import dataclasses

import pytest

from messenger_tui.app import events as ev
from messenger_tui.ui import make_app
from messenger_tui.ui.screens import group_typing
from messenger_tui.ui.screens.group_chat import GroupChatScreen

from .conftest import SMALL, screen_text, wait_shown, wait_until
from .snapshot_facade import group_scene


async def test_burst_ending_with_another_event_still_reloads() -> None:
    facade = group_scene()
    app = make_app(facade)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        screen = GroupChatScreen(facade, 1)
        await app.push_screen(screen)
        await wait_shown(pilot, "Yes!")
        group = facade.fixed_groups.groups[0]
        last = facade.fixed_groups.messages[1][-1]
        new = dataclasses.replace(last, id=last.id + 1, text="one more, late in a burst")
        facade.fixed_groups.messages[1].append(new)
        facade._emit(ev.GroupMessageReceived(group, new))
        facade._emit(ev.OutboxChanged(0))  # the burst ends with an event of no group
        await wait_shown(pilot, "one more, late in a burst")


async def test_typing_notice_shows_and_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    facade = group_scene()
    app = make_app(facade)
    monkeypatch.setattr(group_typing, "TYPING_SHOWN_S", 1.0)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        await app.push_screen(GroupChatScreen(facade, 1))
        group = facade.fixed_groups.groups[0]
        bob, carol = group.members[1], group.members[2]
        facade._emit(ev.GroupTypingChanged(group, bob.identity, bob.name, True))
        await wait_shown(pilot, "Bob is typing…")
        facade._emit(ev.GroupTypingChanged(group, carol.identity, carol.name, True))
        await wait_shown(pilot, "Bob and Carol are typing…")
        facade._emit(ev.GroupTypingChanged(group, bob.identity, bob.name, False))
        await wait_shown(pilot, "Carol is typing…")
        # no renewal: it lapses by itself (a lost "stopped" does not stick)
        await wait_until(pilot, lambda: "typing" not in screen_text(app), timeout=5)

"""Managing groups in the app: create one (Ctrl+G, a name and a contact picker), the members
panel (F2: make admin, remove, rename, leave), who got a message (F3), mentions (Tab completes
``@name``; a mention of us notifies while the group is muted, nothing else does) and typing
("bob is typing…", both ways). Alice uses the app; Bob and Carol are in-process services,
all through a real relay."""

from __future__ import annotations

import asyncio

import pytest
from rich.text import Text
from textual.widgets import Input, SelectionList

from messenger_tui.app import events as ev
from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.contact_dialogs import ConfirmScreen
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.group_dialogs import (
    CreateGroupScreen,
    ReceiptsScreen,
    RenameGroupScreen,
)
from messenger_tui.ui.screens.group_members import MemberList
from messenger_tui.ui.widgets.group_lines import GroupLines
from tests.helpers.clients import next_event, wait_for

from .conftest import LARGE, SMALL, screen_text, wait_shown, wait_until
from .test_groups_ui import trio

__all__ = ["trio"]  # the fixture, shared with test_groups_ui

pytestmark = pytest.mark.slow

Trio = tuple[MessengerService, MessengerService, MessengerService]


def group_screen(app: object) -> GroupChatScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, GroupChatScreen)
    return screen


async def test_create_group_from_the_app(trio: Trio) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        await wait_shown(pilot, "bob")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, CreateGroupScreen))
        dialog = app.screen
        assert isinstance(dialog, CreateGroupScreen)
        await pilot.press("enter")  # nothing picked, no name: said, the dialog stays
        await wait_until(pilot, lambda: "name" in dialog.error_text)
        await pilot.press(*"Weekend", "tab")
        picker = dialog.query_one(SelectionList)
        assert picker.has_focus
        picker.highlighted = [str(o.prompt) for o in picker.options].index("bob")
        await pilot.press("space")
        picker.highlighted = [str(o.prompt) for o in picker.options].index("carol")
        await pilot.press("space")
        dialog.submit()
        # the new group opens, and both members have it
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen), what="group")
        await wait_shown(pilot, "# Weekend — 3 members")
        await wait_for(lambda: [g.name for g in bob.groups.all()] == ["Weekend"])
        await wait_for(lambda: [g.name for g in carol.groups.all()] == ["Weekend"])
        admins = [m.name for m in bob.groups.group("Weekend").members if m.admin]
        assert admins == ["alice"]
        await pilot.press(*"hello both", "enter")
        await wait_for(lambda: "hello both" in [m.text for m in carol.groups.history("Weekend")])
        # F3: who got it (both, once delivered)
        await wait_for(lambda: [m.delivered for m in alice.groups.history("Weekend") if m.outgoing]
                       == [2])  # fmt: skip
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(app.screen, ReceiptsScreen))
        await wait_shown(pilot, "bob: ")
        text = screen_text(app)
        assert "carol: " in text and ("delivered" in text or "read" in text)
        assert "not delivered yet" not in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))


async def test_members_panel_admin_remove_rename_leave(trio: Trio) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    alice.groups.create("crew", ["bob", "carol"])
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        await wait_shown(pilot, "# crew")
        await app.push_screen(GroupChatScreen(alice, alice.groups.group("crew").id))
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        await pilot.press("f2")
        screen = group_screen(app)
        panel = screen.query_one(MemberList)
        await wait_until(pilot, lambda: panel.has_focus, what="the panel")
        text = screen_text(app)
        assert "★ you admin" in text and "carol" in text and "bob" in text

        def highlight(name: str) -> None:
            member = next(m for m in alice.groups.group("crew").members if m.name == name)
            panel.highlighted = panel.get_option_index(member.identity.hex())

        highlight("carol")
        await pilot.press("p")  # make carol an admin: everyone learns it
        await wait_shown(pilot, "carol admin")
        await wait_for(lambda: any(m.admin for m in bob.groups.group("crew").members
                                   if m.name == "carol"))  # fmt: skip
        highlight("bob")
        await pilot.press("r")  # remove bob
        await wait_until(pilot, lambda: "3 members" not in screen_text(app), what="removal")
        await wait_for(lambda: not bob.groups.group("crew").is_member)
        assert [m.name for m in carol.groups.group("crew").members if m.name == "bob"] == []
        # rename (n) through its dialog
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, RenameGroupScreen))
        name = app.screen.query_one(Input)
        name.value = "crew two"
        await pilot.press("enter")
        await wait_shown(pilot, "# crew two")
        await wait_for(lambda: carol.groups.all()[0].name == "crew two")
        # leave (l), asked first: "n" keeps us in, "y" leaves
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        assert alice.groups.group("crew two").is_member
        panel.focus()
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_shown(pilot, "you left")
        await wait_for(lambda: [m.name for m in carol.groups.group("crew two").members]
                       == ["me"])  # fmt: skip


async def test_mentions_complete_highlight_and_notify_when_muted(trio: Trio) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    alice.groups.create("club", ["bob", "carol"])  # sent once the app connects
    bob_events = bob.subscribe()
    app = make_app(alice)
    async with app.run_test(size=LARGE) as pilot:
        await wait_shown(pilot, "# club")
        await wait_for(lambda: bool(bob.groups.all()) and bool(carol.groups.all()))
        main = app.screen
        await app.push_screen(GroupChatScreen(alice, alice.groups.group("club").id))
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        composer = group_screen(app).query_one("#group-composer", Input)
        await pilot.press(*"hi @b", "tab")  # one member starts with b: completed
        assert composer.value == "hi @bob "
        await pilot.press(*"and @", "tab")  # two candidates: listed, nothing guessed
        assert composer.value == "hi @bob and @"
        await pilot.press(*"ca", "tab", *"!")
        assert composer.value == "hi @bob and @carol !"
        await pilot.press("enter")
        got = await next_event(bob_events, ev.GroupMessageReceived)
        assert got.mentioned and got.message.text == "hi @bob and @carol !"
        # mute the group, back to the list; a plain message is silent, a mention is not
        await pilot.press("alt+m")
        await wait_shown(pilot, "(muted)")
        assert alice.groups.group("club").muted
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is main)
        bob.groups.send_text("club", "nothing for alice")
        await wait_for(
            lambda: "nothing for alice" in [m.text for m in alice.groups.history("club")]
        )
        await asyncio.sleep(0.3)
        await pilot.pause()
        assert not [n for n in app._notifications if "club" in (n.title or "")]
        bob.groups.send_text("club", "@alice look", [alice.identity.public])
        await wait_until(
            pilot,
            lambda: "#club · bob mentioned you" in {n.title for n in app._notifications},
            what="the mention's toast",
        )
        # opened: the mention stands out (reverse) in the view
        await app.push_screen(GroupChatScreen(alice, alice.groups.group("club").id))
        await wait_shown(pilot, "bob: @alice look")
        lines = group_screen(app).query_one(GroupLines).texts[-1]
        assert isinstance(lines, Text)
        marked = [lines.plain[s.start : s.end] for s in lines.spans if "reverse" in str(s.style)]
        assert marked == ["@alice"]


async def test_typing_in_a_group_both_ways(trio: Trio) -> None:
    alice, bob, carol = trio
    await bob.start()
    await carol.start()
    bob.groups.create("typers", ["alice", "carol"])
    carol_events = carol.subscribe()
    app = make_app(alice)
    async with app.run_test(size=SMALL) as pilot:
        await wait_shown(pilot, "# typers")
        await wait_until(pilot, lambda: alice.connected, what="connected")
        await app.push_screen(GroupChatScreen(alice, alice.groups.group("typers").id))
        await wait_until(pilot, lambda: isinstance(app.screen, GroupChatScreen))
        await bob.groups.send_typing("typers", True)
        await wait_shown(pilot, "bob is typing…")
        await bob.groups.send_typing("typers", False)
        await wait_until(pilot, lambda: "is typing" not in screen_text(app), what="stopped")

        # alice types: carol (a contact and member) is told, with alice's name
        async def from_alice() -> ev.GroupTypingChanged:
            while True:  # carol saw bob's notices too
                got: ev.GroupTypingChanged = await next_event(carol_events, ev.GroupTypingChanged)
                if got.member == alice.identity.public:
                    return got

        await pilot.press(*"wri")
        got = await from_alice()
        assert got.active and got.name == "alice" and got.group.name == "typers"
        await pilot.press("ctrl+u")  # the composer emptied: "stopped" follows
        got = await from_alice()
        assert not got.active

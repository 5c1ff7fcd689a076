"""The group's disappearing-message timer in the UI (the fixed facade, no relay): set from the
command palette on the group screen, shown in the group header; a purge event naming the group
reloads the open group (its expired lines go)."""

from __future__ import annotations

from messenger_tui.app import events as ev
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.timer_dialog import DisappearingTimerScreen

from .conftest import SMALL, screen_text, wait_shown, wait_until
from .snapshot_facade import group_scene


async def test_group_timer_from_the_palette_and_expired_lines_go() -> None:
    facade = group_scene()
    app = make_app(facade)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        screen = GroupChatScreen(facade, 1)
        await app.push_screen(screen)
        await wait_shown(pilot, "Yes!")
        assert "⏱" not in screen_text(app)
        await pilot.press("ctrl+p", *"disappearing")
        await wait_shown(pilot, "Disappearing messages")
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: isinstance(app.screen, DisappearingTimerScreen), what="dialog"
        )
        text = screen_text(app)
        assert "off  (now)" in text and "for every member" in text
        await pilot.press("down", "down", "enter")  # 5 min
        await wait_until(pilot, lambda: app.screen is screen, what="back on the group")
        assert facade.fixed_groups.timers == {"Book club": 300}
        await wait_shown(pilot, "⏱ 5 min")

        # The purge names the group: the open group reloads without the expired line.
        messages = facade.fixed_groups.messages[1]
        gone = next(m for m in messages if m.text == "Yes!")
        messages.remove(gone)
        facade._emit(ev.GroupMessagesExpired(1, (gone.id,)))
        await wait_until(pilot, lambda: "Yes!" not in screen_text(app), what="line gone")
        assert all(m.id != gone.id for m in screen.messages)

"""The help screen (F1, ?): generated from the bindings, with keymap overrides applied."""

from __future__ import annotations

import pytest

from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.help import HelpScreen, help_sections, key_label, ui_classes
from messenger_tui.ui.screens.main import MainScreen

from .conftest import LARGE, SMALL, screen_text, wait_shown, wait_until


def test_key_labels() -> None:
    assert key_label("ctrl+f") == "Ctrl+F"
    assert key_label("f1") == "F1"
    assert key_label("question_mark") == "?"
    assert key_label("alt+shift+enter") == "Alt+Shift+Enter"
    assert key_label("pageup") == "PageUp"
    assert key_label("v") == "v"


def test_every_binding_id_is_listed() -> None:
    listed = {ident for _, rows in help_sections({}) for _, _, ident in rows}
    declared = {b.id for cls in ui_classes() for b in cls.__dict__.get("BINDINGS", []) if b.id}
    assert declared and declared <= listed
    assert {"search.open", "contact.rename", "contact.block", "contact.delete"} <= listed


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_help_lists_the_overridden_key(
    offline_pair: tuple[MessengerService, MessengerService], size: tuple[int, int]
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False,
                   keymap={"contacts.add": "ctrl+o", "contact.rename": "alt+n"})  # fmt: skip
    async with app.run_test(size=size) as pilot:
        main = app.main_screen
        assert isinstance(main, MainScreen)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.text
        add_line = next(line for line in text.splitlines() if "contacts.add" in line)
        assert "Ctrl+O" in add_line and "Ctrl+N" not in add_line
        rename_line = next(line for line in text.splitlines() if "contact.rename" in line)
        assert "Alt+N" in rename_line and "Alt+R" not in rename_line
        # On screen too (the main screen's keys come early in the list).
        await wait_shown(pilot, "contacts.add")
        shown = screen_text(app)
        assert "Ctrl+O" in shown and "Ctrl+N" not in shown
        # The override works: Ctrl+O adds a contact.
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is main)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AddContactScreen")


async def test_question_mark_opens_the_help(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    app = make_app(alice, start_service=False)
    async with app.run_test(size=SMALL) as pilot:
        main = app.main_screen
        assert main is not None
        await pilot.press("question_mark")  # the conversation list has the focus
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: app.screen is main, what="closed")
        # In the composer "?" is text; F1 still opens the help.
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.focused is main.composer)
        await pilot.press("question_mark")
        assert main.composer.text == "?"
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        # The help scrolls: the last section comes into view.
        assert "help.close" not in screen_text(app)
        await pilot.press("end")
        await wait_shown(pilot, "help.close")

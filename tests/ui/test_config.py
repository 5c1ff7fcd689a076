"""The config file (config.toml in the profile directory): keymap overrides take effect, and
a malformed file or an unknown entry gives a readable notice while the app starts with the
defaults."""

from __future__ import annotations

from pathlib import Path

from messenger_tui.app.config import Config, parse_config
from messenger_tui.app.service import MessengerService
from messenger_tui.cli.ui_cmd import load_ui_config
from messenger_tui.ui import make_app
from messenger_tui.ui.keymap import binding_ids, key_problem
from messenger_tui.ui.screens.add_contact import AddContactScreen
from messenger_tui.ui.screens.settings import SettingsScreen

from .conftest import SMALL, wait_until


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def _parse(text: str) -> Config:
    return parse_config(
        text.encode(), Path("config.toml"), binding_ids=binding_ids(), key_problem=key_problem
    )


def test_a_full_config_file() -> None:
    config = _parse(
        '[keymap]\n"contacts.add" = "f6"\n"composer.send" = "ctrl+s, f5"\n\n'
        '[ui]\ntheme = "nord"\n\n[notifications]\ntoasts = false\nbell = true\n'
        "desktop = true\nprivate = true\n\n[messaging]\nread_receipts = false\ntyping = false\n"
        "\n[calls]\nbitrate_kbps = 32\n"
    )
    assert config.problems == []
    assert config.keymap == {"contacts.add": "f6", "composer.send": "ctrl+s,f5"}
    assert config.defaults == {
        "theme": "nord", "toasts": False, "bell": True, "desktop": True, "private": True,
        "read_receipts": False, "typing": False, "call_bitrate_kbps": 32,
    }  # fmt: skip


def test_call_bitrate_must_be_a_whole_number_in_range() -> None:
    for value, expected in (
        ("8", "bitrate_kbps must be 12-64"),
        ("65", "bitrate_kbps must be 12-64"),
        ('"24"', "bitrate_kbps must be a whole number"),
        ("true", "bitrate_kbps must be a whole number"),
        ("24.5", "bitrate_kbps must be a whole number"),
    ):
        config = _parse(f"[calls]\nbitrate_kbps = {value}\n")
        assert config.defaults == {}
        assert len(config.problems) == 1 and "line 2:" in config.problems[0]
        assert expected in config.problems[0], config.problems


def test_talk_mode_is_one_of_three() -> None:
    assert _parse('[calls]\ntalk_mode = "hold"\n').defaults == {"talk_mode": "hold"}
    for value, expected in (
        ('"push"', "talk_mode must be one of open, hold, toggle"),
        ("true", "talk_mode must be a quoted name"),
    ):
        config = _parse(f"[calls]\ntalk_mode = {value}\n")
        assert config.defaults == {}
        assert len(config.problems) == 1 and "line 2:" in config.problems[0]
        assert expected in config.problems[0], config.problems


def test_problems_name_the_line_and_the_entry() -> None:
    config = _parse(
        "[keymap]\n"
        '"contacts.add" = "f6"\n'  # fine
        '"contacts.ad" = "f7"\n'  # line 3: unknown id (a typo)
        '"composer.send" = "ctlr+s"\n'  # line 4: unknown modifier
        '"app.quit" = 5\n'  # line 5: not a string
        "[notifications]\n"
        'bell = "yes"\n'  # line 7: not a boolean
        "colour = true\n"  # line 8: unknown option
        "[extras]\n"  # line 9: unknown section
        "x = 1\n"
    )
    assert config.keymap == {"contacts.add": "f6"}
    assert config.defaults == {}
    text = "\n".join(config.problems)
    assert "line 3: unknown binding id 'contacts.ad' (did you mean 'contacts.add'?)" in text
    assert "line 4:" in text and "unknown modifier 'ctlr'" in text
    assert "line 5:" in text and "'app.quit' must be a key" in text
    assert "line 7:" in text and "bell must be true or false" in text
    assert "line 8:" in text and "unknown option 'colour'" in text
    assert "line 9:" in text and "unknown section [extras]" in text
    assert len(config.problems) == 6


def test_malformed_toml_and_other_bytes() -> None:
    config = _parse('[keymap]\n"contacts.add" = "f6"\nthis is not toml\n')
    assert config.keymap == {} and config.defaults == {}
    assert len(config.problems) == 1
    assert "not valid TOML" in config.problems[0] and "line 3" in config.problems[0]
    bad = parse_config(b"[ui]\ntheme = '\xff'\n", Path("c.toml"))
    assert "line 2: not UTF-8" in bad.problems[0]


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_ui_config(tmp_path)
    assert config.keymap == {} and config.problems == [] and config.defaults == {}


def test_key_names() -> None:
    for good in ("ctrl+s", "f5", "alt+enter", "a", "shift+tab", "pageup", "ctrl+comma"):
        assert key_problem(good) is None, good
    for bad in ("ctlr+s", "f99x", "", "control+a", "ctrl+"):
        assert key_problem(bad) is not None, bad


async def test_keymap_override_from_the_config_file(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    home = alice.profile.paths.home
    _write(home, '[keymap]\n"contacts.add" = "f12"\n"app.settings" = "ctrl+o"\n')
    config = load_ui_config(home)
    assert config.problems == []
    app = make_app(alice, start_service=False, keymap=config.keymap, notices=config.problems)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        await pilot.press("ctrl+n")  # the old default key no longer adds a contact
        await pilot.pause(0.1)
        assert not isinstance(app.screen, AddContactScreen)
        await pilot.press("f12")
        await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen), what="dialog")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen)
        await pilot.press("f9")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, SettingsScreen)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")


async def test_a_malformed_config_file_gives_a_notice_and_the_defaults(
    offline_pair: tuple[MessengerService, MessengerService],
) -> None:
    alice, _bob = offline_pair
    home = alice.profile.paths.home
    _write(home, '[keymap]\n"contacts.add" = "f6"\n"contacts.bogus" = "f7"\n[ui\n')
    config = load_ui_config(home)
    assert config.keymap == {}
    app = make_app(alice, start_service=False, keymap=config.keymap, notices=config.problems)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        notices = [n.message for n in app._notifications]
        assert any("not valid TOML" in n and "line 4" in n for n in notices), notices
        await pilot.press("ctrl+n")  # the default keys work
        await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen), what="dialog")

    _write(home, '[keymap]\n"contacts.add" = "f12"\n"contacts.bogus" = "f11"\n')
    config = load_ui_config(home)
    assert config.keymap == {"contacts.add": "f12"}  # the good entry still applies
    app = make_app(alice, start_service=False, keymap=config.keymap, notices=config.problems)
    async with app.run_test(size=SMALL) as pilot:
        await wait_until(pilot, lambda: app.main_screen is not None)
        notices = [n.message for n in app._notifications]
        assert any("line 3: unknown binding id 'contacts.bogus'" in n for n in notices), notices
        await pilot.press("f12")
        await wait_until(pilot, lambda: isinstance(app.screen, AddContactScreen), what="dialog")

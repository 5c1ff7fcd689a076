"""Inline images through the terminal's graphics protocol (ui/image_display.py): what the
probe asks and finds (no terminal, a multiplexer, a kitty or sixel terminal), what the
``image_preview`` setting chooses, kitty's placeholder lines, and the conversation view
drawing them instead of half-blocks when the terminal and the setting allow (Pilot keeps
half-blocks otherwise: the snapshots)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from textual.pilot import Pilot

from messenger_tui.app.config import load_config
from messenger_tui.app.errors import BadInput
from messenger_tui.app.images import preview_png
from messenger_tui.ui import make_app
from messenger_tui.ui.image_display import (
    HALF_BLOCKS,
    KITTY,
    NO_TERMINAL,
    OFF,
    SIXEL,
    TerminalGraphics,
    choose_display,
    kitty_lines,
    multiplexer_of,
    probe_terminal,
    protocol_from_env,
)

from .conftest import screen_text, wait_until
from .snapshot_facade import image_scene, sample_image
from .test_snapshots import open_first

PLACEHOLDER = chr(0x10EEEE)


class FakeTty(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class Queries:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.asked = 0

    def __call__(self) -> str | None:
        self.asked += 1
        return self.answer


def test_multiplexers_and_terminals_known_by_their_environment() -> None:
    assert multiplexer_of({"TMUX": "/tmp/tmux-1/default,1,0", "TERM": "xterm"}) == "tmux"
    assert multiplexer_of({"TERM": "tmux-256color"}) == "tmux"
    assert multiplexer_of({"TERM": "screen-256color"}) == "screen"
    assert multiplexer_of({"STY": "1.pts-0", "TERM": "xterm"}) == "screen"
    assert multiplexer_of({"ZELLIJ": "0"}) == "zellij"
    assert multiplexer_of({"TERM": "xterm-256color"}) is None
    assert protocol_from_env({"TERM": "xterm-kitty"}) == KITTY
    assert protocol_from_env({"KITTY_WINDOW_ID": "1", "TERM": "xterm-256color"}) == KITTY
    assert protocol_from_env({"TERM_PROGRAM": "ghostty"}) == KITTY
    assert protocol_from_env({"TERM": "foot"}) == SIXEL
    assert protocol_from_env({"TERM_PROGRAM": "WezTerm"}) == SIXEL
    assert protocol_from_env({"TERM": "xterm-256color"}) is None


def test_the_probe_asks_only_a_terminal_outside_a_multiplexer() -> None:
    queries = Queries(SIXEL)
    # not a terminal (Pilot, a pipe): nothing asked
    found = probe_terminal({"TERM": "xterm-kitty"}, FakeTty(False), queries)
    assert found == TerminalGraphics(False, None, None) and queries.asked == 0
    # tmux: nothing asked (it does not pass images through reliably)
    found = probe_terminal({"TMUX": "x", "TERM": "xterm-kitty"}, FakeTty(True), queries)
    assert found == TerminalGraphics(True, "tmux", None) and queries.asked == 0
    # a terminal: its answer wins, the environment stands in when it gives none
    assert probe_terminal({"TERM": "xterm"}, FakeTty(True), queries).protocol == SIXEL
    assert probe_terminal({"TERM": "xterm-kitty"}, FakeTty(True), Queries(None)).protocol == KITTY
    assert probe_terminal({"TERM": "xterm"}, FakeTty(True), Queries(None)).protocol is None
    assert queries.asked == 1


def test_the_setting_chooses_within_what_the_terminal_allows() -> None:
    kitty = TerminalGraphics(True, None, KITTY)
    plain = TerminalGraphics(True, None, None)
    tmux = TerminalGraphics(True, "tmux", None)
    table = {
        ("auto", kitty): KITTY,
        ("auto", plain): HALF_BLOCKS,
        ("auto", tmux): HALF_BLOCKS,
        ("auto", NO_TERMINAL): HALF_BLOCKS,
        ("sixel", plain): SIXEL,  # the user knows the terminal has it
        ("kitty", tmux): HALF_BLOCKS,  # but not through a multiplexer
        ("kitty", NO_TERMINAL): HALF_BLOCKS,  # nor without a terminal (Pilot)
        ("half-blocks", kitty): HALF_BLOCKS,
        ("off", kitty): OFF,
        ("off", NO_TERMINAL): OFF,
    }
    for (setting, graphics), expected in table.items():
        assert choose_display(setting, graphics) == expected, (setting, graphics)


def test_the_setting_is_checked_stored_and_read_from_the_config_file(tmp_path: Path) -> None:
    from messenger_tui.app.settings import check_setting

    assert check_setting("image_preview", "kitty") == "kitty"
    with pytest.raises(BadInput, match="one of auto, kitty, sixel, half-blocks, off"):
        check_setting("image_preview", "iterm")
    (tmp_path / "config.toml").write_text('[ui]\nimage_preview = "off"\n')
    assert load_config(tmp_path).defaults == {"image_preview": "off"}
    (tmp_path / "config.toml").write_text('[ui]\nimage_preview = "ascii"\n')
    config = load_config(tmp_path)
    assert config.defaults == {} and "image_preview must be one of" in config.problems[0]


@pytest.fixture
def terminal_out(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTty]:
    """What textual-image writes to the terminal (sys.__stdout__), captured."""
    out = FakeTty(False)
    monkeypatch.setattr(sys, "__stdout__", out)
    yield out


def test_kitty_lines_are_placeholder_cells_and_the_picture_goes_to_the_terminal(
    terminal_out: FakeTty,
) -> None:
    png = preview_png(sample_image(), 320, 160)
    lines = kitty_lines(png, 16, 8)
    assert 1 <= len(lines) <= 8
    texts = ["".join(seg.text for seg in line) for line in lines]
    assert all(text.count(PLACEHOLDER) == texts[0].count(PLACEHOLDER) <= 16 for text in texts)
    # the image id travels in the foreground colour of every cell
    colours = {seg.style.color for line in lines for seg in line if seg.style and seg.text}
    assert len(colours) == 1
    sent = terminal_out.getvalue()
    assert sent.startswith("\x1b_G") and "a=p" in sent  # transmitted, then placed virtually


async def test_the_view_draws_kitty_cells_when_the_terminal_has_it(terminal_out: FakeTty) -> None:
    app = make_app(image_scene())
    app.terminal_graphics = TerminalGraphics(True, None, KITTY)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_until(pilot, lambda: bool(screen.conversation_list.option_count))
        await open_first(cast(Pilot[object], pilot), screen)
        await wait_until(pilot, lambda: PLACEHOLDER in screen_text(app), what="kitty cells")
        assert "▀" not in screen_text(app)
        assert "\x1b_G" in terminal_out.getvalue()


async def open_image_scene(setting: str) -> str:
    """Open the photo's conversation with ``image_preview`` = ``setting`` under Pilot: the
    screen once the photo's line shows (and a moment for a preview)."""
    facade = image_scene()
    facade.update_settings(image_preview=setting)
    app = make_app(facade)
    async with app.run_test(size=(100, 30)) as pilot:
        main = app.main_screen
        assert main is not None
        await wait_until(pilot, lambda: bool(main.conversation_list.option_count))
        await open_first(cast(Pilot[object], pilot), main)
        await wait_until(pilot, lambda: "sunset.png" in screen_text(app), what="the photo")
        await pilot.pause(0.3)
        if setting != OFF:
            await wait_until(pilot, lambda: "▀" in screen_text(app), what="half-blocks")
        return screen_text(app)


async def test_off_shows_no_preview_and_pilot_keeps_half_blocks() -> None:
    shown = await open_image_scene("kitty")  # no terminal under Pilot: half-blocks
    assert "▀" in shown and PLACEHOLDER not in shown
    shown = await open_image_scene(OFF)
    assert "▀" not in shown and PLACEHOLDER not in shown

"""Images and voice messages in place in a group conversation, as in 1:1: a photo's
half-block preview under its sender's line (the image's colours, the size of the 1:1
preview), the voice line with play/pause, seek ±5 s and speed, Alt+O opening the newest
received file; snapshots at 80x24 and 160x50 (regenerate with ``--snapshot-update``)."""

from __future__ import annotations

from typing import Any, cast

from textual.pilot import Pilot

from messenger_tui.app.images import halfblock_cells
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.group_chat import GroupChatScreen
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.widgets.group_lines import GroupLines

from .conftest import screen_text, wait_until
from .snapshot_facade import group_media_scene, sample_image
from .test_snapshots import SIZES, SnapCompare, _snap, frozen_clock, no_blinking
from .test_snapshots_groups import open_group

__all__ = ["frozen_clock", "no_blinking"]  # the autouse fixtures, applied here too


async def preview_drawn(pilot: Pilot[Any], screen: MainScreen) -> None:
    await open_group(pilot, screen)
    await wait_until(pilot, lambda: "▀" in screen_text(pilot.app), what="preview")


def group_screen(pilot: Pilot[Any]) -> GroupChatScreen:
    screen = pilot.app.screen
    assert isinstance(screen, GroupChatScreen)
    return screen


def voice_line(pilot: Pilot[Any]) -> str:
    return next(line for line in screen_text(pilot.app).splitlines() if "[voice 0:12]" in line)


@SIZES
async def test_group_photo_preview_and_voice_line(size: tuple[int, int]) -> None:
    facade = group_media_scene()
    app = make_app(facade)
    async with app.run_test(size=size) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_until(pilot, lambda: bool(screen.conversation_list.option_count))
        await preview_drawn(cast(Pilot[object], pilot), screen)
        group = group_screen(pilot)
        # the preview: under Carol's line, the 1:1 preview's size at this view's size
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if "Carol: [file] sunset.png" in line)
        block = [line for line in lines[at + 1 :] if "▀" in line]
        cols, rows = group.media.preview_size()
        expected = halfblock_cells(sample_image(), cols, rows)
        assert len(block) == len(expected) == rows
        assert all(line.count("▀") == len(expected[0]) for line in block)
        # the image's colours (the sun's yellow) are in the written lines
        view = group.query_one(GroupLines)
        colours = {
            seg.style.color.triplet
            for strip in view.lines
            for seg in strip
            if seg.text.strip("▀") == "" and "▀" in seg.text
            and seg.style and seg.style.color and seg.style.color.triplet
        }  # fmt: skip
        assert any(r > 200 and g > 150 and b < 120 for r, g, b in colours), colours

        # the voice line: ▶ 0:00/0:12 and the waveform; Alt+P plays it in place
        assert "▶" in voice_line(pilot) and "0:12" in voice_line(pilot)
        await pilot.press("alt+p")
        await wait_until(pilot, lambda: "⏸" in voice_line(pilot), what="playing")
        assert "0:03" in voice_line(pilot)  # the fixed player stands at 0:03
        await pilot.press("alt+right")
        await wait_until(pilot, lambda: "0:08" in voice_line(pilot), what="seek ahead")
        await pilot.press("alt+left", "alt+left")
        await wait_until(pilot, lambda: "0:00/" in voice_line(pilot), what="seek back")
        await pilot.press("alt+s")
        await wait_until(pilot, lambda: "1.5" in voice_line(pilot), what="speed")
        await pilot.press("alt+p")
        await wait_until(pilot, lambda: "⏸" not in voice_line(pilot), what="paused")

        # Alt+O opens the newest received file (the voice message's, id 12), on request only
        assert facade.opened == []
        await pilot.press("alt+o")
        await wait_until(pilot, lambda: facade.opened == [12], what="open")
        assert any(n.message == "Opening voice.ogg" for n in app._notifications)


@SIZES
def test_group_media(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """A group conversation with a photo (its half-block preview) and a voice line."""
    assert _snap(snap_compare, group_media_scene(), size, preview_drawn)

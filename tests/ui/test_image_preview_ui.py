"""The inline image preview (half-blocks) in the conversation view: a Pilot run that finds
the ▀ cells under the photo's line with the image's colours, and snapshots at 80x24 and
160x50 (regenerate with ``--snapshot-update``)."""

from __future__ import annotations

from typing import Any, cast

from textual.pilot import Pilot

from messenger_tui.app.images import halfblock_cells
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.main import MainScreen

from .conftest import screen_text, wait_until
from .snapshot_facade import image_scene, sample_image
from .test_snapshots import SIZES, SnapCompare, _snap, frozen_clock, no_blinking, open_first

__all__ = ["frozen_clock", "no_blinking"]  # the autouse fixtures, applied here too


async def preview_drawn(pilot: Pilot[Any], screen: MainScreen) -> None:
    await wait_until(pilot, lambda: "▀" in screen_text(pilot.app), what="preview")


@SIZES
async def test_the_photo_shows_as_half_blocks_under_its_line(size: tuple[int, int]) -> None:
    facade = image_scene()
    app = make_app(facade)
    async with app.run_test(size=size) as pilot:
        screen = app.main_screen
        assert screen is not None
        await wait_until(pilot, lambda: bool(screen.conversation_list.option_count))
        await open_first(cast(Pilot[object], pilot), screen)
        await preview_drawn(pilot, screen)
        lines = screen_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if "[file] sunset.png" in line)
        block = [line for line in lines[at + 1 :] if "▀" in line]
        cols, rows = screen.view.preview_size()
        expected = halfblock_cells(sample_image(), cols, rows)  # fits the box, keeps 4:3
        assert len(block) == len(expected) == rows
        assert all(line.count("▀") == len(expected[0]) for line in block)
        # the colours are the image's: the sun's yellow is in the preview's strips
        photo = next(m for m in screen.view.messages if m.kind == "attachment")
        strips = screen.view._block(screen.view._pen(), photo)
        colours = {
            seg.style.color.triplet
            for strip in strips
            for seg in strip
            if seg.text == "▀" and seg.style and seg.style.color and seg.style.color.triplet
        }
        assert any(r > 200 and g > 150 and b < 120 for r, g, b in colours), colours


@SIZES
def test_image_preview(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert _snap(snap_compare, image_scene(), size, open_first, preview_drawn)

"""Voice messages in the app (Pilot, on the snapshot facade): the inline voice line with
play/pause, seek and speed, the recording line (Ctrl+R, Esc), and snapshots of both at 80x24
and 160x50. Recording and playing through real devices and a relay process are
tests/integration/test_voice_notes.py's."""

from __future__ import annotations

from textual.pilot import Pilot

from messenger_tui.ui import make_app
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.widgets.voice_line import (
    RecordingLine,
    meter,
    recording_text,
    voice_label,
    wave_text,
)

from .conftest import SMALL, screen_text, wait_shown, wait_until
from .snapshot_facade import voice_scene
from .test_snapshots import SIZES, SnapCompare, _snap, frozen_clock, no_blinking, open_first

__all__ = ["frozen_clock", "no_blinking"]  # the autouse fixtures, applied here too


def test_the_voice_line_and_the_recording_line() -> None:
    assert voice_label(12_000, (0, 2, 4, 7)) == "[▶ 0:00/0:12 ▁▃▅█]"
    playing = voice_label(75_000, (1,), position_ms=63_500, playing=True, speed=1.5)
    assert playing == "[⏸ 1:03/1:15 ▂ 1.5x]"
    assert voice_label(None, None) == "[▶ 0:00/0:00]"
    assert len(wave_text(tuple(range(8)) * 8)) == 24
    assert meter(0.0) == "░" * 12 and meter(1.0) == "█" * 12
    assert "maximum length reached" in recording_text(0.1, 300_000, True)
    assert recording_text(0.1, 4_000, False).startswith("● REC 0:04/5:00")


async def test_play_pause_seek_speed_and_record_cancel() -> None:
    facade = voice_scene()
    app = make_app(facade)
    async with app.run_test(size=SMALL) as pilot:
        screen = app.main_screen
        assert screen is not None
        await pilot.press("enter")  # open Bob
        await wait_until(pilot, lambda: app.focused is screen.composer)
        await wait_shown(pilot, "[▶ 0:00/0:12 ▂▄▆█▇▅▃▂▁▃▆██▆▄▂▁▂▅▇▆▄▃▂]")

        await pilot.press("alt+p")
        await wait_shown(pilot, "[⏸ 0:03/0:12")
        await pilot.press("alt+right")
        await wait_shown(pilot, "[⏸ 0:08/0:12")
        await pilot.press("alt+left", "alt+left")
        await wait_shown(pilot, "[⏸ 0:00/0:12")
        await pilot.press("alt+s")
        await wait_shown(pilot, "1.5x]")
        await pilot.press("alt+p")
        await wait_shown(pilot, "[▶ 0:00/0:12")

        line = screen.query_one(RecordingLine)
        assert not line.display
        await pilot.press("ctrl+r")
        await wait_shown(pilot, "● REC 0:04/5:00")
        assert facade.voice.recorded_for == [facade.named("Bob").id]
        await wait_until(pilot, lambda: app.focused is line, what="the recording line focused")
        await pilot.press("escape")  # cancels the recording, not the conversation
        await wait_until(pilot, lambda: not line.display, what="the recording line hidden")
        assert facade.voice.recording is None
        assert any(n.message == "Voice message discarded" for n in app._notifications)
        await wait_until(pilot, lambda: app.focused is screen.composer, what="the composer")
        assert "● REC" not in screen_text(app)
        assert screen.current is not None and screen.current.name == "Bob"

        # Enter sends (the fixed facade refuses, and says why)
        await pilot.press("ctrl+r")
        await wait_shown(pilot, "● REC")
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: any("sends no voice" in n.message for n in app._notifications),
            what="the reason it was not sent",
        )
        assert not line.display


async def play(pilot: Pilot[object], screen: MainScreen) -> None:
    await pilot.press("alt+p")
    await wait_shown(pilot, "[⏸ 0:03/0:12")


async def record(pilot: Pilot[object], screen: MainScreen) -> None:
    await pilot.press("ctrl+r")
    await wait_shown(pilot, "● REC 0:04/5:00")


@SIZES
def test_voice_message_playing(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert _snap(snap_compare, voice_scene(), size, open_first, play)


@SIZES
def test_voice_recording_line(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert _snap(snap_compare, voice_scene(), size, open_first, record)

"""Files in the app against a real relay process: attach with the path prompt (completion
included), the transfer bar's progress line, and cancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from messenger_tui.app.service import MessengerService
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.attach_prompt import AttachPrompt
from messenger_tui.ui.widgets.transfer_bar import TransferBar, bar, transfer_line

from .conftest import LARGE, SMALL, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


def test_the_bar_draws_eighths_and_the_line_names_everything() -> None:
    assert bar(0, 100, 4) == "▕    ▏"
    assert bar(50, 100, 4) == "▕██  ▏"
    assert bar(100, 100, 4) == "▕████▏"
    assert bar(1, 32, 4) == "▕▏   ▏"
    from messenger_tui.app.models import TransferView

    line = transfer_line(
        TransferView(
            id=1, contact_id=1, direction="up", status="uploading", name="a\x1b[31m.bin",
            mime_type="x/y", size=10 * MIB, done=5 * MIB, total=10 * MIB,
            rate_bps=2.5 * MIB, eta_s=2.0,
        )
    )  # fmt: skip
    assert "\x1b" not in line
    assert line.startswith("⇧ a") and "50 %" in line and "5.0 of 10.0 MiB" in line
    assert "2.5 MiB/s" in line and "2 s left" in line


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_attach_with_completion_shows_the_transfer_line_and_cancel_removes_it(
    offline_pair: tuple[MessengerService, MessengerService], tmp_path: Path, size: tuple[int, int]
) -> None:
    """Alice is offline (no relay: the upload waits at 0 %, deterministic on any machine);
    the bytes moving through a real relay are tests/integration/test_file_transfers.py's."""
    alice, _bob = offline_pair
    folder = tmp_path / "outgoing"
    folder.mkdir()
    notes = folder / "notes.txt"
    notes.write_bytes(b"hello " * 1000)
    (folder / "other.bin").write_bytes(b"x")
    app = make_app(alice)
    async with app.run_test(size=size) as pilot:
        screen = app.main_screen
        assert screen is not None
        await pilot.press("enter")  # open Bob
        await wait_until(pilot, lambda: app.focused is screen.composer)

        # a missing path is refused in the prompt itself
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, AttachPrompt), what="prompt")
        await pilot.press(*"/no/such/file", "enter")
        await wait_shown(pilot, "Not a file: /no/such/file")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, AttachPrompt))

        # the prompt completes "no" to "notes.txt" (→ takes it); Enter sends
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, AttachPrompt))
        await pilot.press(*f"{folder}/no")
        prompt_input = app.screen.query_one("#attach-path", Input)
        await wait_until(pilot, lambda: prompt_input._suggestion == str(notes), what="suggestion")
        await pilot.press("right")
        assert prompt_input.value == str(notes)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, AttachPrompt))
        transfer_bar = screen.query_one(TransferBar)
        await wait_shown(pilot, "⇧ notes.txt")
        assert transfer_bar.display
        line = next(x for x in screen_text(app).splitlines() if "⇧ notes.txt" in x)
        assert "0 %" in line and "▕" in line
        assert "[file] notes.txt" in screen_text(app)  # the message, in the conversation

        # Alt+C cancels it: the line goes, the spool file too
        await pilot.press("alt+c")
        await wait_until(pilot, lambda: not transfer_bar.display, what="bar hidden")
        assert [t.status for t in alice.transfers()] == ["cancelled"]
        await wait_until(pilot, lambda: screen.view.messages[-1].state == "error", what="error")
        assert not list((tmp_path / "alice" / "transfers").glob("*"))

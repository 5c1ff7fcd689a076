"""The group conversation's line log keeps a bounded number of lines however long a backlog
runs: each line is a Strip with its own caches, and an unbounded log left ~280,000 objects
behind a 5,000-message backlog for the garbage collector to walk (benchmarks/
ui_group_backlog_stall.py)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from messenger_tui.ui.widgets.group_lines import MAX_KEPT, MAX_LINES, GroupLines


class _LinesApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GroupLines(id="lines")


async def test_a_long_backlog_keeps_the_newest_lines_only() -> None:
    app = _LinesApp()
    async with app.run_test(size=(60, 20)) as pilot:
        log = app.query_one(GroupLines)
        await pilot.pause()
        for batch in range(60):  # 6,000 messages of two lines each, in bursts of 100
            log.append(Text(f"message {batch * 100 + i}\nsecond line") for i in range(100))
            await pilot.pause()
        assert len(log.texts) == MAX_KEPT
        assert len(log.lines) <= MAX_LINES
        assert log.lines[-2].text.rstrip() == "message 5999"
        assert log.texts[0].plain.startswith(f"message {6000 - MAX_KEPT}\n")

"""Opening a 100,000-message conversation in the Textual UI: time to first paint, and memory.

A real profile (``create_profile``) whose store holds one conversation of N messages (written
through the storage layer in one transaction) and one empty conversation. A fresh child
process opens it with the real ``MessengerService`` (offline: no relay is needed to read the
store) and ``make_app``, headless (``App.run_test``, 120x40), and:

1. waits for the main screen to be mounted and idle; reads VmRSS ("idle");
2. opens the conversation: calls ``MainScreen.open_conversation`` (what Enter on the list
   runs: loads the newest page from SQLite, lays it out, focuses the composer) and, as soon
   as it returns, registers ``screen.call_after_refresh``. **Time to first paint** = from the
   call to that callback, which Textual runs once the screen has processed its messages and
   the compositor has rendered the update (the view's lines included; headless, the frame is
   rendered but not written to a terminal). Also recorded: when the view's ``render_line``
   first ran. First open in the process, then the median of 5 re-opens (switching to the empty
   conversation and back). VmRSS after opening;
3. pages back: scrolls to the top again and again, each time letting the view load the page
   before (``load_older``, 100 messages, through ``history(before_id=...)``) and repaint,
   until the oldest loaded message is ``page_back`` messages older than after opening (the
   view keeps a bounded window and drops the newest end as it goes); VmRSS after that,
   VmHWM (peak) at the end, and the average time per page (load, lay out, repaint).

Baselines, same run: the same child on a 100-message conversation, and a bare Textual app
(a Static and a Footer, headless, mounted and idle) for the RSS floor of Textual itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.ui_common import (
    EMPTY_NAME,
    PEER_NAME,
    TERMINAL,
    build_conversation,
    emit,
    median,
    proc_memory_kib,
    run_child,
)

NAME = "ui_open_conversation"
TITLE = "UI: opening a 100,000-message conversation"
AIM_PAINT_MS = 200.0
AIM_RSS_MIB = 150.0
REOPENS = 5


# ---------------------------------------------------------------------- child process


async def _timed_open(screen: Any, contact_id: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    painted: asyncio.Future[float] = loop.create_future()
    view = screen.view
    first_line: list[float] = []
    original = view.render_line

    def hooked(y: int) -> Any:
        if not first_line:
            first_line.append(time.perf_counter())
        return original(y)

    view.render_line = hooked
    try:
        t0 = time.perf_counter()
        await screen.open_conversation(contact_id)
        t_action = time.perf_counter()

        def on_painted() -> None:
            if not painted.done():
                painted.set_result(time.perf_counter())

        screen.call_after_refresh(on_painted)
        t_paint = await asyncio.wait_for(painted, 30)
    finally:
        del view.render_line
    return {
        "action_ms": round(1000 * (t_action - t0), 2),
        "first_line_ms": round(1000 * (first_line[0] - t0), 2) if first_line else -1.0,
        "paint_ms": round(1000 * (t_paint - t0), 2),
    }


async def _child_conversation(home: Path, page_back: int) -> dict[str, Any]:
    from messenger_tui.app.profile import open_profile
    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui import make_app
    from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE

    out: dict[str, Any] = {"rss_imported_kib": proc_memory_kib()["VmRSS"]}
    profile = open_profile(home, None)
    service = MessengerService(profile)
    try:
        app = make_app(service, start_service=False, freeze_gc=True)
        async with app.run_test(size=TERMINAL) as pilot:
            while app.main_screen is None:
                await pilot.pause(0.01)
            screen = app.main_screen
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            out["rss_idle_kib"] = proc_memory_kib()["VmRSS"]
            bob = service.contact(PEER_NAME).id
            carol = service.contact(EMPTY_NAME).id
            out["first_open"] = await _timed_open(screen, bob)
            await pilot.pause()
            out["rss_open_kib"] = proc_memory_kib()["VmRSS"]
            out["loaded_after_open"] = len(screen.view.messages)
            reopens = []
            for _ in range(REOPENS):
                await screen.open_conversation(carol)
                await pilot.pause()
                reopens.append(await _timed_open(screen, bob))
                await pilot.pause()
            out["reopen_paint_ms"] = median([r["paint_ms"] for r in reopens])
            out["reopen_first_line_ms"] = median([r["first_line_ms"] for r in reopens])
            out["reopen_action_ms"] = median([r["action_ms"] for r in reopens])
            # Page back: scroll to the top; the view loads the page before and keeps the
            # screen in place; repeat until page_back older messages are loaded.
            view = screen.view
            start_oldest = view.messages[0].id  # row ids of one conversation: contiguous
            pages = 0
            t0 = time.perf_counter()
            while view.has_more and start_oldest - view.messages[0].id < page_back:
                before = view.messages[0].id
                view.scroll_to(y=0, animate=False, immediate=True, force=True)
                await pilot.pause()
                if view.messages[0].id == before:  # already at y=0: no scroll event
                    view.load_older()
                    await pilot.pause()
                pages += 1
            elapsed = time.perf_counter() - t0
            out["paged_back_messages"] = start_oldest - view.messages[0].id
            out["loaded_after_paging"] = len(view.messages)
            out["pages"] = pages
            out["page_ms"] = round(1000 * elapsed / max(1, pages), 2)
            out["page_size"] = PAGE_SIZE
            out["view_lines"] = len(view.text_lines())
            mem = proc_memory_kib()
            out["rss_paged_kib"] = mem["VmRSS"]
            out["hwm_kib"] = mem["VmHWM"]
    finally:
        await service.close()
        profile.close()
    return out


async def _child_bare() -> dict[str, Any]:
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")
            yield Footer()

    out: dict[str, Any] = {"rss_imported_kib": proc_memory_kib()["VmRSS"]}
    app = Bare()
    async with app.run_test(size=TERMINAL) as pilot:
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        mem = proc_memory_kib()
        out["rss_idle_kib"] = mem["VmRSS"]
        out["hwm_kib"] = mem["VmHWM"]
    return out


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME} child")
    parser.add_argument("kind", choices=["conversation", "bare"])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--page-back", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "bare":
        emit(asyncio.run(_child_bare()))
    else:
        emit(asyncio.run(_child_conversation(args.home, args.page_back)))
    return 0


# ---------------------------------------------------------------------- parent


def run(settings: Settings) -> dict[str, Any]:
    big = 20_000 if settings.quick else 100_000
    page_back = 2_000 if settings.quick else 20_000
    small = 100
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {
        "aim_paint_ms": AIM_PAINT_MS,
        "aim_rss_mib": AIM_RSS_MIB,
        "terminal": list(TERMINAL),
        "page_back": page_back,
    }
    homes = {big: workdir / f"conv-{big}", small: workdir / f"conv-{small}"}
    out["build"] = {str(n): build_conversation(home, n) for n, home in homes.items()}
    out["bare"] = run_child(NAME, ["bare"], 120, workdir)
    out["small"] = run_child(
        NAME, ["conversation", "--home", str(homes[small]), "--page-back", "0"], 300, workdir
    ) | {"messages": small}
    out["big"] = run_child(
        NAME,
        ["conversation", "--home", str(homes[big]), "--page-back", str(page_back)],
        900,
        workdir,
    ) | {"messages": big}
    return out


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def render(result: dict[str, Any]) -> str:
    big, small, bare = result["big"], result["small"], result["bare"]
    aim_ms, aim_mib = result["aim_paint_ms"], result["aim_rss_mib"]

    def ok(value: float, aim: float) -> str:
        return " ✓" if value <= aim else " ✗"

    rows = []
    for label, r in ((f"{big['messages']:,} messages", big), ("baseline: 100 messages", small)):
        first = r["first_open"]
        rows.append(
            [
                label,
                fmt(first["paint_ms"], 1) + (ok(first["paint_ms"], aim_ms) if r is big else ""),
                fmt(first["first_line_ms"], 1),
                fmt(first["action_ms"], 1),
                fmt(r["reopen_paint_ms"], 1),
                fmt(r["loaded_after_open"]),
            ]
        )
    paint = md_table(
        [
            "conversation",
            "first paint ms (first open)",
            "view's first render_line ms",
            "open_conversation returned ms",
            f"first paint ms (median of {REOPENS} re-opens)",
            "messages loaded",
        ],
        rows,
    )
    rss_open = _mib(big["rss_open_kib"]) or 0.0
    rss_paged = _mib(big["rss_paged_kib"]) or 0.0
    mem_rows = [
        ["bare Textual app (Static + Footer)", fmt(_mib(bare["rss_idle_kib"]), 1), "-", "-",
         fmt(_mib(bare["hwm_kib"]), 1)],
        ["messenger-tui, 100 messages", fmt(_mib(small["rss_idle_kib"]), 1),
         fmt(_mib(small["rss_open_kib"]), 1), "-", fmt(_mib(small["hwm_kib"]), 1)],
        [f"messenger-tui, {big['messages']:,} messages", fmt(_mib(big["rss_idle_kib"]), 1),
         fmt(rss_open, 1) + ok(rss_open, aim_mib),
         fmt(rss_paged, 1) + ok(rss_paged, aim_mib), fmt(_mib(big["hwm_kib"]), 1)],
    ]  # fmt: skip
    memory = md_table(
        [
            "process",
            "VmRSS idle MiB (main screen)",
            "after opening MiB",
            f"after paging back {big['paged_back_messages']:,} messages MiB",
            "VmHWM (peak) MiB",
        ],
        mem_rows,
    )
    build = result["build"][str(big["messages"])]
    return "\n".join(
        [
            paint,
            "",
            memory,
            "",
            f"Headless app ({result['terminal'][0]}x{result['terminal'][1]}), real profile and "
            f"MessengerService (offline), store of {big['messages']:,} messages built in "
            f"{fmt(build['build_s'], 1)} s. First paint = from calling "
            "`MainScreen.open_conversation` to the `call_after_refresh` callback that runs "
            "after the compositor rendered the update. Paging back: "
            f"{fmt(big['pages'])} pages of {big['page_size']} (scroll to top, load, repaint), "
            f"{fmt(big['page_ms'], 1)} ms per page on average; the view then held "
            f"{fmt(big['view_lines'])} rendered lines of {fmt(big['loaded_after_paging'])} loaded "
            f"messages. Aims: first paint <= {aim_ms:.0f} ms, "
            f"RSS <= {aim_mib:.0f} MiB.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)

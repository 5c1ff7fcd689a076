"""Cold start to an interactive main screen.

Each run is a fresh ``python -m benchmarks.ui_cold_start child app HOME`` process. It does
what ``messenger-tui`` does: imports the UI, builds a ``Launcher`` on an existing profile
(a few contacts, 1,000 messages; its relay URL points where nothing listens, so the service
starts "connecting" in the background), ``make_app(launcher=...)`` and runs it headless
(``App.run(headless=True)``, 80x24); the app opens the profile, starts the service and
pushes the main screen. When the main screen is mounted and the app idle (``pilot.pause()``,
no pending animations), the child prints a line. Cold start = from the parent's spawn of the
process to that line (interpreter start-up, imports, profile open, first frames). Median of
several runs.

Baselines, same way: a bare Textual app (a Static and a Footer) run headless until mounted
and idle, and the bare interpreter (``python -c pass`` equivalent: the child exits at once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.ui_common import ROOT, build_conversation, median

NAME = "ui_cold_start"
TITLE = "UI: cold start to an interactive main screen"
AIM_S = 1.0
READY = "READY"


# ---------------------------------------------------------------------- child process


def _child_app(home: Path) -> None:
    from textual.pilot import Pilot

    from messenger_tui.app.launcher import Launcher
    from messenger_tui.ui import make_app

    app = make_app(launcher=Launcher(home), freeze_gc=True)

    async def auto_pilot(pilot: Pilot[object]) -> None:
        while app.main_screen is None or not app.main_screen.is_mounted:
            await pilot.pause(0.005)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        print(READY, flush=True)
        app.exit()

    try:
        app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)
    finally:
        import asyncio

        asyncio.run(app.close_service())


def _child_bare() -> None:
    from textual.app import App, ComposeResult
    from textual.pilot import Pilot
    from textual.widgets import Footer, Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")
            yield Footer()

    app = Bare()

    async def auto_pilot(pilot: Pilot[object]) -> None:
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        print(READY, flush=True)
        app.exit()

    app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME} child")
    parser.add_argument("kind", choices=["app", "bare", "python"])
    parser.add_argument("home", nargs="?", type=Path)
    args = parser.parse_args(argv)
    if args.kind == "app":
        _child_app(args.home)
    elif args.kind == "bare":
        _child_bare()
    else:
        print(READY, flush=True)
    return 0


# ---------------------------------------------------------------------- parent


def _one(kind: str, home: Path | None, timeout: float = 60.0) -> float:
    """Seconds from spawning the child to its READY line."""
    cmd = [sys.executable, "-m", f"benchmarks.{NAME}", "child", kind]
    if home is not None:
        cmd.append(str(home))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY:
                elapsed = time.perf_counter() - t0
                break
        else:
            _, err = proc.communicate(timeout=timeout)
            raise RuntimeError(f"{kind} child exited without {READY}:\n{err[-3000:]}")
        proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return elapsed


def run(settings: Settings) -> dict[str, Any]:
    runs = 3 if settings.quick else 9
    workdir = settings.workdir / NAME
    home = workdir / "profile"
    build_conversation(home, 1000)
    out: dict[str, Any] = {"aim_s": AIM_S, "runs": runs}
    # Warm the OS file cache (and .pyc files) once for each, then alternate the kinds.
    for kind, h in (("python", None), ("bare", None), ("app", home)):
        _one(kind, h)
    times: dict[str, list[float]] = {"python": [], "bare": [], "app": []}
    for _ in range(runs):
        for kind, h in (("python", None), ("bare", None), ("app", home)):
            times[kind].append(_one(kind, h))
    for kind, values in times.items():
        out[kind] = {
            "median_s": round(median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
        }
    return out


def render(result: dict[str, Any]) -> str:
    aim = result["aim_s"]
    app = result["app"]
    rows = [
        [
            "messenger-tui (Launcher + make_app, existing profile, main screen idle)",
            fmt(app["median_s"], 3) + (" ✓" if app["median_s"] <= aim else " ✗"),
            fmt(app["min_s"], 3),
            fmt(app["max_s"], 3),
        ],
        [
            "baseline: bare Textual app (Static + Footer, mounted and idle)",
            fmt(result["bare"]["median_s"], 3),
            fmt(result["bare"]["min_s"], 3),
            fmt(result["bare"]["max_s"], 3),
        ],
        [
            "baseline: the interpreter alone (python -m, no Textual)",
            fmt(result["python"]["median_s"], 3),
            fmt(result["python"]["min_s"], 3),
            fmt(result["python"]["max_s"], 3),
        ],
    ]
    return "\n".join(
        [
            md_table(["process", "median s", "min s", "max s"], rows),
            "",
            f"Fresh process each run ({result['runs']} runs each, alternating, after one "
            f"warm-up run), headless 80x24; time from spawn to the line printed once the main "
            f"screen is mounted and idle. Aim: <= {aim:.0f} s.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)

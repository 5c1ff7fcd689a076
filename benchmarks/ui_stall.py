"""What the two backlog-stall benchmarks share (``ui_backlog_stall`` for a 1:1 conversation,
``ui_group_backlog_stall`` for a group): the stall meter, the child process that ingests a
backlog with or without the UI open, and the results table.

Stall = how late a ticker task (``await asyncio.sleep(0.005)`` in a loop) wakes up: the
longest time the event loop was busy with something else, from ``service.start()`` until
every message is stored and (UI) shown, which is the ingest time. With
``MT_BENCH_SAMPLE_STACKS=1`` a watchdog thread also samples the loop thread's stack every 5 ms
while the ticker is more than 50 ms late, and the most frequent project/Textual frames say
where long stalls are spent. The loop thread's CPU time between two ticks is reported beside
the lateness (``max_stall_cpu_ms``): on a machine other processes load, a stall's wall time
includes waiting for a CPU, its CPU time does not. Stack sampling is off by default: taking
a stack holds the GIL and inflates the very stalls it samples (by a third or more).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import fmt, md_table
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess
from benchmarks.ui_common import TERMINAL, emit, run_child

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui.app import MessengerApp

#: The relay of both backlogs: the benchmark options, with the message-request quotas lifted.
#: A backlog's sender has not been granted the receiver's delivery secret when it writes (the
#: receiver is offline), so the relay would hold all but a request's few of its messages; in
#: a group most members are strangers to each other anyway.
RELAY_ARGS = (
    *RELAY_BENCH_ARGS,
    "--request-limit",
    "10000000",
    "--request-bytes",
    str(1 << 40),
    "--request-per-sender",
    "10000000",
    "--mailbox-bytes",
    str(1 << 40),
)
TICK_S = 0.005
SAMPLE_OVER_S = 0.05
AIM_STALL_MS = 100.0


def _where(filename: str) -> str:
    """A frame's file, from the package directory on (``messenger_tui/...``,
    ``textual/...``), whatever the checkout or virtualenv path."""
    for marker in ("messenger_tui/", "textual/", "rich/"):
        at = filename.rfind("/" + marker)
        if at >= 0:
            return filename[at + 1 :]
    return filename


class StallMeter:
    """A ticker task measuring its own lateness, and a watchdog thread sampling the loop
    thread's stack while the ticker is late."""

    def __init__(self) -> None:
        self.max_late = 0.0
        self.lates: list[float] = []
        #: The loop thread's CPU time between two ticks (time.thread_time): the stall without
        #: the waits for a CPU on a loaded machine (what other processes take).
        self.max_cpu = 0.0
        self.last_tick = time.perf_counter()
        self.samples: collections.Counter[str] = collections.Counter()
        self.innermost: collections.Counter[str] = collections.Counter()
        #: Stack samples per stall (keyed by the tick the stall followed), and the stalls.
        self._by_stall: dict[float, list[str]] = collections.defaultdict(list)
        self.stalls: list[tuple[float, float]] = []  # (lateness, key)
        self._stop = threading.Event()
        self._main = threading.get_ident()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.last_tick = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._tick())
        if os.environ.get("MT_BENCH_SAMPLE_STACKS") == "1":
            self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread.is_alive():
            self._thread.join(2)

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            cpu_before = time.thread_time()
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            self.max_cpu = max(self.max_cpu, time.thread_time() - cpu_before)
            late = now - before - TICK_S
            self.lates.append(late)
            if late > SAMPLE_OVER_S:
                self.stalls.append((late, self.last_tick))
            self.max_late = max(self.max_late, late)
            self.last_tick = now

    def _watch(self) -> None:
        while not self._stop.wait(TICK_S):
            if time.perf_counter() - self.last_tick < SAMPLE_OVER_S:
                continue
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            ours = [
                f"{_where(f.filename)}:{f.name}"
                for f in stack
                if any(m in f.filename for m in ("/messenger_tui/", "/textual/", "/rich/"))
            ]
            project = [s for s in ours if s.startswith("messenger_tui/")]
            where = " > ".join(project[-4:]) or "(outside the project)"
            self.samples[where] += 1
            self._by_stall[self.last_tick].append(where)
            self.innermost[ours[-1] if ours else stack[-1].name] += 1

    def summary(self) -> dict[str, Any]:
        lates = sorted(self.lates)
        n = len(lates)
        return {
            "max_stall_ms": round(1000 * self.max_late, 1),
            "max_stall_cpu_ms": round(1000 * self.max_cpu, 1),
            "p99_late_ms": round(1000 * lates[int(0.99 * (n - 1))], 1) if n else 0.0,
            "stalls_over_50ms": sum(1 for x in lates if x > 0.05),
            "stalls_over_100ms": sum(1 for x in lates if x > 0.1),
            "ticks": n,
            "busy_samples": sum(self.samples.values()),
            "where_project": self.samples.most_common(5),
            "where_innermost": self.innermost.most_common(5),
            "longest_stalls": [
                {
                    "ms": round(1000 * late, 1),
                    "where": collections.Counter(self._by_stall.get(key, [])).most_common(4),
                }
                for late, key in sorted(self.stalls, reverse=True)[:3]
            ],
        }


#: Opens the conversation on the UI (the app's main screen is up); returns the predicate
#: "every message of the backlog is shown" and what to report of the view afterwards.
OpenView = Callable[
    ["MessengerApp", "Pilot[Any]"],
    Awaitable[tuple[Callable[[], bool], Callable[[], dict[str, Any]]]],
]
#: For a service and the backlog's size: the predicate "every message of the backlog is
#: stored", and how to open its conversation on the UI.
Conversation = Callable[["MessengerService", int], tuple[Callable[[], bool], OpenView]]


async def ingest(
    kind: str, home: Path, expected: int, conversation: Conversation
) -> dict[str, Any]:
    """The child process: open the profile in ``home``, then ingest the backlog of
    ``expected`` messages waiting on the relay, with the service alone (``kind`` "service":
    until they are stored) or with the UI open on the conversation (``kind`` "ui": until the
    view shows them all), measuring the stalls from ``service.start()`` on."""
    from messenger_tui.app.profile import open_profile
    from messenger_tui.app.service import MessengerService

    profile = open_profile(home, None)
    service = MessengerService(profile)
    stored, open_view = conversation(service, expected)
    meter = StallMeter()
    out: dict[str, Any] = {"kind": kind, "messages": expected}
    try:
        if kind == "service":
            meter.start()
            t0 = time.perf_counter()
            await service.start()
            while not stored():
                await asyncio.sleep(0.02)
            out["ingest_s"] = round(time.perf_counter() - t0, 3)
            await meter.stop()
        else:
            from messenger_tui.ui import make_app

            app = make_app(service, start_service=False, freeze_gc=True)
            async with app.run_test(size=TERMINAL) as pilot:
                while app.main_screen is None:
                    await pilot.pause(0.01)
                shown, report = await open_view(app, pilot)
                meter.start()
                t0 = time.perf_counter()
                await service.start()
                while not (stored() and shown()):
                    await asyncio.sleep(0.02)
                at_stored = time.perf_counter()
                await pilot.pause()
                out["ingest_s"] = round(time.perf_counter() - t0, 3)
                out["stored_s"] = round(at_stored - t0, 3)
                await meter.stop()
                out |= report()
        out |= meter.summary()
        out["msgs_per_s"] = round(expected / out["ingest_s"], 1)
    finally:
        await service.close()
        profile.close()
    return out


def child_main(name: str, argv: list[str], conversation: Conversation) -> int:
    """``python -m benchmarks.<name> child ui|service --home DIR --expected N``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name} child")
    parser.add_argument("kind", choices=["ui", "service"])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--expected", type=int, required=True)
    args = parser.parse_args(argv)
    emit(asyncio.run(ingest(args.kind, args.home, args.expected, conversation)))
    return 0


def measure_backlog(
    name: str,
    workdir: Path,
    prepare: Callable[[str, Path, int], Coroutine[Any, Any, dict[str, Path]]],
    messages: int,
    timeout_s: float,
    out: dict[str, Any],
) -> dict[str, Any]:
    """One backlog run on a relay process: ``prepare`` writes the backlog and returns the
    receivers' homes ("service", "ui"); each receiver then runs in a child process
    (``child_main``), and its figures go into ``out`` under its name."""
    with ServerProcess.relay(workdir, RELAY_ARGS) as relay:
        t0 = time.perf_counter()
        homes = asyncio.run(prepare(relay.url, workdir, messages))
        out["prepare_s"] = round(time.perf_counter() - t0, 1)
        args = ["--expected", str(messages)]
        for part in ("service", "ui"):
            out[part] = run_child(
                name, [part, "--home", str(homes[part]), *args], timeout_s, workdir
            )
        relay.check_alive()
    return out


def render_stalls(result: dict[str, Any], ui_label: str, note: str) -> str:
    """The results table (the UI run, then the service alone), ``note`` under it, and where
    the UI run's long stalls were spent when stacks were sampled."""
    aim = result["aim_stall_ms"]
    rows = []
    baseline = "baseline: the service alone, no UI"
    for label, r in ((ui_label, result["ui"]), (baseline, result["service"])):
        mark = (" ✓" if r["max_stall_ms"] <= aim else " ✗") if r is result["ui"] else ""
        rows.append(
            [
                label,
                fmt(r["messages"]),
                fmt(r["max_stall_ms"], 1) + mark,
                fmt(r.get("max_stall_cpu_ms", float("nan")), 1),
                fmt(r["p99_late_ms"], 1),
                fmt(r["stalls_over_50ms"]),
                fmt(r["stalls_over_100ms"]),
                fmt(r["ingest_s"], 2),
                fmt(r["msgs_per_s"]),
            ]
        )
    header = [
        "receiver",
        "messages",
        "longest stall ms",
        "its loop-thread CPU ms",
        "p99 lateness ms",
        "stalls > 50 ms",
        "stalls > 100 ms",
        "ingest s",
        "msgs/s",
    ]
    text = [md_table(header, rows), "", note]
    ui = result["ui"]
    if ui.get("busy_samples"):
        text += [
            "",
            f"Where the UI run's loop was while more than {SAMPLE_OVER_S * 1000:.0f} ms late "
            f"({ui['busy_samples']} stack samples, one per {TICK_S * 1000:.0f} ms):",
            "",
            md_table(
                ["deepest project frames (outer > inner)", "samples"],
                [[f"`{where}`", fmt(n)] for where, n in ui["where_project"]],
            ),
            "",
            md_table(
                ["innermost project / Textual / Rich frame", "samples"],
                [[f"`{where}`", fmt(n)] for where, n in ui["where_innermost"]],
            ),
        ]
        longest = [
            [fmt(stall["ms"], 1), "<br>".join(f"`{w}` x{n}" for w, n in stall["where"]) or "-"]
            for stall in ui.get("longest_stalls", [])
        ]
        if longest:
            text += [
                "",
                "The UI run's longest stalls and the stack samples taken during each:",
                "",
                md_table(["stall ms", "samples (deepest project frames)"], longest),
            ]
    return "\n".join(text)

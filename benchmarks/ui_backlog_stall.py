"""Receiving a 5,000-message backlog while the UI is open: the longest event-loop stall.

A relay subprocess (the same options as the other benchmarks). In the parent process, the
receivers (``alice-ui``, ``alice-service``) connect once to publish their prekeys and go
offline; ``bob`` (a real ``MessengerService``) then sends N texts to each and waits until the
relay has stored them all. Each receiver then ingests its backlog in a fresh child process:

- **UI**: the real service and ``make_app``, headless (``App.run_test``, 120x40), bob's
  conversation open on the main screen; then ``service.start()`` connects, and the relay
  delivers the backlog, which the service decrypts and stores and the main screen shows
  (list, view, read receipts) while it arrives.
- **Baseline**: the same backlog ingested by the service alone (no UI) in the same way.

Stall = how late a ticker task (``await asyncio.sleep(0.005)`` in a loop) wakes up: the
longest time the event loop was busy with something else. Measured from ``start()`` until
every message is stored and (UI) shown by the view, which is the ingest time. With
``MT_BENCH_SAMPLE_STACKS=1`` a watchdog thread also samples the loop thread's stack every 5 ms
while the ticker is more than 50 ms late, and the most frequent project/Textual frames say
where long stalls are spent. It is off by default: taking a stack holds the GIL and inflates
the very stalls it samples (by a third or more here).
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
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import ServerProcess
from benchmarks.ui_common import TERMINAL, emit, run_child

NAME = "ui_backlog_stall"
TITLE = "UI: receiving a 5,000-message backlog"
AIM_STALL_MS = 100.0
TICK_S = 0.005
SAMPLE_OVER_S = 0.05
PEER = "bob"


# ---------------------------------------------------------------------- child process


class StallMeter:
    """A ticker task measuring its own lateness, and a watchdog thread sampling the loop
    thread's stack while the ticker is late."""

    def __init__(self) -> None:
        self.max_late = 0.0
        self.lates: list[float] = []
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
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
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
                f"{f.filename.split('site-packages/')[-1].split('/main/')[-1]}:{f.name}"
                for f in stack
                if "messenger_tui/" in f.filename
                or "/textual/" in f.filename
                or "/rich/" in f.filename
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


async def _child(kind: str, home: Path, expected: int) -> dict[str, Any]:
    from messenger_tui.app.profile import open_profile
    from messenger_tui.app.service import MessengerService

    profile = open_profile(home, None)
    service = MessengerService(profile)
    bob_id = service.contact(PEER).id
    have = service.store.messages.count(bob_id)
    target = have + expected
    meter = StallMeter()
    out: dict[str, Any] = {"kind": kind, "messages": expected}
    try:
        if kind == "service":
            meter.start()
            t0 = time.perf_counter()
            await service.start()
            while service.store.messages.count(bob_id) < target:
                await asyncio.sleep(0.02)
            out["ingest_s"] = round(time.perf_counter() - t0, 3)
            await meter.stop()
        else:
            from messenger_tui.ui import make_app

            app = make_app(service, start_service=False, freeze_gc=True)
            async with app.run_test(size=TERMINAL) as pilot:
                while app.main_screen is None:
                    await pilot.pause(0.01)
                screen = app.main_screen
                await screen.open_conversation(bob_id)
                await pilot.pause()
                view = screen.view

                def shown() -> bool:
                    msgs = view.messages
                    return (
                        bool(msgs)
                        and service.store.messages.count(bob_id) >= target
                        and (msgs[-1].id == service.history(PEER, limit=1)[-1].id)
                    )

                meter.start()
                t0 = time.perf_counter()
                await service.start()
                while not shown():
                    await asyncio.sleep(0.02)
                stored = time.perf_counter()
                await pilot.pause()
                out["ingest_s"] = round(time.perf_counter() - t0, 3)
                out["stored_s"] = round(stored - t0, 3)
                await meter.stop()
                out["view_loaded"] = len(view.messages)
                out["unread_marker"] = view.unread_marker is not None
        out |= meter.summary()
        out["msgs_per_s"] = round(expected / out["ingest_s"], 1)
    finally:
        await service.close()
        profile.close()
    return out


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME} child")
    parser.add_argument("kind", choices=["ui", "service"])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--expected", type=int, required=True)
    args = parser.parse_args(argv)
    emit(asyncio.run(_child(args.kind, args.home, args.expected)))
    return 0


# ---------------------------------------------------------------------- parent


async def _prepare(relay_url: str, workdir: Path, n: int) -> dict[str, Path]:
    """Receivers publish prekeys and go offline; bob sends each ``n`` texts, stored by the
    relay."""
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService

    homes = {kind: workdir / f"alice-{kind}" for kind in ("ui", "service")}
    receivers = {
        kind: MessengerService(create_profile(home, f"alice-{kind}", relay_url, None))
        for kind, home in homes.items()
    }
    bob = MessengerService(create_profile(workdir / "bob", PEER, relay_url, None))
    try:
        for kind, r in receivers.items():
            r.add_contact(bob.address, PEER)
            bob.add_contact(r.address, f"alice-{kind}")
            await r.connect(timeout=15)
            await r.close()
        await bob.connect(timeout=15)
        for kind in receivers:
            for i in range(n):
                text = f"backlog {i:05d}: " + "the quick brown fox jumps over the lazy dog " * (
                    1 + i % 3
                )
                await bob.send_text(f"alice-{kind}", text[: 40 + (i * 37) % 120])
        if not await bob.wait_outbox_empty(max(60.0, n / 50)):
            raise RuntimeError("bob's outbox did not drain")
    finally:
        await bob.close()
        bob.profile.close()
        for r in receivers.values():
            r.profile.close()
    return homes


def run(settings: Settings) -> dict[str, Any]:
    n = 1000 if settings.quick else 5000
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {"aim_stall_ms": AIM_STALL_MS, "messages": n}
    with ServerProcess.relay(workdir) as relay:
        t0 = time.perf_counter()
        homes = asyncio.run(_prepare(relay.url, workdir, n))
        out["prepare_s"] = round(time.perf_counter() - t0, 1)
        args = ["--expected", str(n)]
        out["service"] = run_child(
            NAME, ["service", "--home", str(homes["service"]), *args], 600, workdir
        )
        out["ui"] = run_child(NAME, ["ui", "--home", str(homes["ui"]), *args], 600, workdir)
        relay.check_alive()
    return out


def render(result: dict[str, Any]) -> str:
    aim = result["aim_stall_ms"]
    rows = []
    for label, r in (
        ("UI open on the conversation (make_app + service)", result["ui"]),
        ("baseline: the service alone, no UI", result["service"]),
    ):
        mark = (" ✓" if r["max_stall_ms"] <= aim else " ✗") if r is result["ui"] else ""
        rows.append(
            [
                label,
                fmt(r["messages"]),
                fmt(r["max_stall_ms"], 1) + mark,
                fmt(r["p99_late_ms"], 1),
                fmt(r["stalls_over_50ms"]),
                fmt(r["stalls_over_100ms"]),
                fmt(r["ingest_s"], 2),
                fmt(r["msgs_per_s"]),
            ]
        )
    table = md_table(
        [
            "receiver",
            "messages",
            "longest stall ms",
            "p99 lateness ms",
            "stalls > 50 ms",
            "stalls > 100 ms",
            "ingest s",
            "msgs/s",
        ],
        rows,
    )
    text = [
        table,
        "",
        f"Backlog sent by another client while the receiver was offline, delivered by the "
        f"relay when it connects; ingest = service.start() -> every message stored (and shown "
        f"by the open view). Stall = lateness of a {TICK_S * 1000:.0f} ms asyncio ticker. "
        f"Aim: no stall over {aim:.0f} ms.",
    ]
    ui = result["ui"]
    if ui.get("where_project"):
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


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)

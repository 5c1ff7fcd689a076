"""Relay throughput and delivery latency against a bare websockets forwarder.

For 10, 100 and 1,000 connected sender -> recipient pairs, the same load generator
(benchmarks/loadgen.py) drives the relay subprocess and the bare forwarder subprocess
(benchmarks/forwarder.py) with the same ~200-byte bodies:

* saturation: every sender sends flat out within its window (closed loop); delivered
  messages per second and p50/p99 latency (send -> Deliver received) of the deliveries
  received during the measurement window. Rounds alternate between the two servers so drift
  on a shared machine hits both alike; results of the rounds are pooled.
* light load: open loop at ``PACED_RATE`` messages/s in total, the latency of a relay that
  is not queueing.

Both load sets stay connected for the whole case (the idle one costs nothing measurable).
Server CPU per delivered message comes from /proc (it is less sensitive to other load on the
machine than msgs/s), and "other load" is what the rest of the machine used meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import pstats
import time
from typing import Any

from benchmarks.common import Settings, fmt, md_table, profile_summary, render_profile
from benchmarks.loadgen import BODY_SIZE, Load, PhaseResult, Target, merge
from benchmarks.procs import ServerProcess, raise_nofile

NAME = "relay_throughput"
TITLE = "Relay throughput and latency"
AIM_RATIO = 0.5
#: Messages in flight over all senders at most; the per-sender window is this divided by
#: the number of pairs, kept within WINDOW_BOUNDS.
TOTAL_IN_FLIGHT = 4096
WINDOW_BOUNDS = (4, 256)
PACED_RATE = 1000.0
PROFILE_TOP = 15


def window_for(pairs: int) -> int:
    low, high = WINDOW_BOUNDS
    return max(low, min(high, TOTAL_IN_FLIGHT // pairs))


def _plan(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {
            "cases": (10, 100),
            "rounds": 1,
            "warmup_s": 0.5,
            "measure_s": 1.5,
            "paced_warmup_s": 0.3,
            "paced_s": 1.0,
            "drain_s": 10.0,
        }
    return {
        "cases": (10, 100, 1000),
        "rounds": 3,
        "warmup_s": 1.0,
        "measure_s": 3.0,
        "paced_warmup_s": 0.5,
        "paced_s": 3.0,
        "drain_s": 20.0,
    }


async def _case(
    pairs: int, relay: ServerProcess, forwarder: ServerProcess, plan: dict[str, Any]
) -> dict[str, Any]:
    window = window_for(pairs)
    loads: dict[str, Load] = {}
    setup: dict[str, float] = {}
    try:
        for kind, server in (("bare", forwarder), ("relay", relay)):
            started = time.perf_counter()
            target = Target(kind, server.url, server.relay_key)
            loads[kind] = await Load.open(target, pairs, window, server)
            setup[kind] = time.perf_counter() - started
        rounds: dict[str, list[PhaseResult]] = {"bare": [], "relay": []}
        for index in range(plan["rounds"]):
            order = ("bare", "relay") if index % 2 == 0 else ("relay", "bare")
            for kind in order:
                result = await loads[kind].saturate(
                    plan["warmup_s"], plan["measure_s"], plan["drain_s"]
                )
                rounds[kind].append(result)
                relay.check_alive()
                forwarder.check_alive()
        paced: dict[str, PhaseResult] = {}
        for kind in ("bare", "relay"):
            paced[kind] = await loads[kind].paced(
                PACED_RATE, plan["paced_warmup_s"], plan["paced_s"], plan["drain_s"]
            )
        relay.check_alive()
    finally:
        for load in loads.values():
            await load.close()
    out: dict[str, Any] = {"pairs": pairs, "window": window, "connections": 2 * pairs}
    for kind in ("bare", "relay"):
        merged = merge(rounds[kind])
        out[kind] = {
            "connect_s": round(setup[kind], 2),
            "saturation": merged.summary(),
            "rounds_msgs_per_s": [round(r.rate, 1) for r in rounds[kind]],
            "light_load": paced[kind].summary(),
        }
    bare_rate = out["bare"]["saturation"]["msgs_per_s"]
    relay_rate = out["relay"]["saturation"]["msgs_per_s"]
    out["ratio"] = round(relay_rate / bare_rate, 3) if bare_rate else None
    return out


async def _profile_relay(settings: Settings, pairs: int, plan: dict[str, Any]) -> dict[str, Any]:
    """One more saturation round against a relay running under cProfile."""
    workdir = settings.workdir / NAME / "profiled"
    workdir.mkdir(parents=True, exist_ok=True)
    stats_file = workdir / "relay.prof"
    with ServerProcess.relay(workdir, profile_to=stats_file) as relay:
        target = Target("relay", relay.url, relay.relay_key)
        load = await Load.open(target, pairs, window_for(pairs), relay)
        try:
            result = await load.saturate(plan["warmup_s"], plan["measure_s"], plan["drain_s"])
        finally:
            await load.close()
    stats = pstats.Stats(str(stats_file))
    return {
        "pairs": pairs,
        "msgs_per_s_under_profiler": round(result.rate, 1),
        **profile_summary(stats, PROFILE_TOP),
    }


async def _run(settings: Settings) -> dict[str, Any]:
    plan = _plan(settings)
    raise_nofile(4 * max(plan["cases"]) + 256)
    workdir = settings.workdir / NAME
    cases = []
    with ServerProcess.relay(workdir) as relay, ServerProcess.forwarder(workdir) as forwarder:
        for pairs in plan["cases"]:
            cases.append(await _case(pairs, relay, forwarder, plan))
    out = {
        "body_bytes": BODY_SIZE,
        "paced_rate": PACED_RATE,
        "plan": {k: v for k, v in plan.items() if k != "cases"},
        "aim_ratio": AIM_RATIO,
        "cores": len(os.sched_getaffinity(0)),
        "cases": cases,
    }
    if settings.profile:
        out["profile"] = await _profile_relay(settings, max(plan["cases"]), plan)
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


BUSY_PCT = 90.0


def _limited_by(sat: dict[str, Any], cores: int) -> str:
    """Which process ran out of CPU (>= BUSY_PCT of one core), or whether the machine did."""
    busy = []
    if (sat.get("server_loop_cpu_pct") or 0) >= BUSY_PCT:
        busy.append("server loop")
    elif (sat.get("server_cpu_pct") or 0) >= BUSY_PCT:
        busy.append("server (all threads)")
    if (sat.get("loadgen_cpu_pct") or 0) >= BUSY_PCT:
        busy.append("load gen")
    if busy:
        return " + ".join(busy)
    used = (sat.get("server_cpu_pct") or 0) + (sat.get("loadgen_cpu_pct") or 0)
    used += 100 * (sat.get("other_load_cores") or 0)
    if cores and used >= BUSY_PCT * cores:
        return f"all {cores} cores busy"
    return "neither"


def _pair_rows(result: dict[str, Any], row: Any) -> list[list[str]]:
    return [
        row(case, kind, "relay" if kind == "relay" else "bare forwarder")
        for case in result["cases"]
        for kind in ("bare", "relay")
    ]


def render(result: dict[str, Any]) -> str:
    plan = result["plan"]

    def saturation_row(case: dict[str, Any], kind: str, label: str) -> list[str]:
        sat = case[kind]["saturation"]
        ratio = case["ratio"] if kind == "relay" else None
        ratio_cell = ""
        if ratio is not None:
            ratio_cell = fmt(ratio, 2) + (" ✓" if ratio >= result["aim_ratio"] else " ✗")
        return [
            fmt(case["pairs"]),
            str(case["window"]),
            label,
            fmt(sat["msgs_per_s"]),
            ratio_cell,
            fmt(sat["p50_ms"], 1),
            fmt(sat["p99_ms"], 1),
            fmt(sat["server_cpu_us_per_msg"]),
            f"{fmt(sat['server_cpu_pct'])} / {fmt(sat['server_loop_cpu_pct'])} %",
            fmt(sat["loadgen_cpu_pct"], suffix=" %"),
            fmt(sat["other_load_cores"], 2),
            _limited_by(sat, result.get("cores", 0)),
        ]

    def light_row(case: dict[str, Any], kind: str, label: str) -> list[str]:
        light = case[kind]["light_load"]
        return [
            fmt(case["pairs"]),
            label,
            fmt(light["msgs_per_s"]),
            fmt(light["p50_ms"], 1),
            fmt(light["p99_ms"], 1),
            fmt(light["server_cpu_pct"], suffix=" %"),
            fmt(light["server_cpu_us_per_msg"]),
            fmt(light["other_load_cores"], 2),
        ]

    saturation = md_table(
        [
            "pairs",
            "window",
            "server",
            "msgs/s",
            "relay/bare",
            "p50 ms",
            "p99 ms",
            "server CPU µs/msg",
            "server CPU (all / loop thread)",
            "load gen CPU",
            "other load (cores)",
            "limited by",
        ],
        _pair_rows(result, saturation_row),
        "rrl" + "r" * 8 + "l",
    )
    light = md_table(
        [
            "pairs",
            "server",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "server CPU",
            "server CPU µs/msg",
            "other load (cores)",
        ],
        _pair_rows(result, light_row),
        "rl" + "r" * 6,
    )
    notes = []
    for case in result["cases"]:
        for kind in ("bare", "relay"):
            for phase in ("saturation", "light_load"):
                data = case[kind][phase]
                if not data["drained"] or data["refused"] or data["errors"] or data["skipped"]:
                    notes.append(
                        f"- {case['pairs']} pairs, {kind}, {phase.replace('_', ' ')}: "
                        f"drained={data['drained']}, refused={data['refused']}, "
                        f"skipped={data['skipped']}, errors={data['errors'] or 'none'}"
                    )
    text = [
        f"Saturation (every sender flat out within its window; {plan['rounds']} alternating "
        f"round(s) per server of {plan['warmup_s']:g} s warm-up + {plan['measure_s']:g} s "
        f"measured, pooled). Aim: relay/bare >= {result['aim_ratio']}.",
        "",
        saturation,
        "",
        f"Light load (open loop, {fmt(result['paced_rate'])} msgs/s in total for "
        f"{plan['paced_s']:g} s): the latency of a server that is not queueing.",
        "",
        light,
        "",
        f"Bodies of {result['body_bytes']} bytes. Latency = the sender's send -> the Deliver "
        "received by the recipient. At saturation the loop is closed, so latency is mostly "
        "the windows queueing (pairs x window messages in flight). CPU columns are % of one "
        'core (the relay\'s SQLite work runs on a second thread, so "all" can exceed the '
        "loop thread); other load = CPU that other processes on the machine used meanwhile; "
        f'"limited by" names a process at >= {BUSY_PCT:g} % of a core.',
    ]
    bound = [
        fmt(case["pairs"])
        for case in result["cases"]
        if "load gen" in _limited_by(case["bare"]["saturation"], result.get("cores", 0))
    ]
    if bound:
        text += [
            "",
            f"With {', '.join(bound)} pairs the bare forwarder was limited by the load "
            "generator, not by itself: its msgs/s there is a lower bound of the forwarder's "
            "capacity, so the true relay/bare ratio is at most the one shown.",
        ]
    if notes:
        text += ["", "Anomalies:", "", *notes]
    prof = result.get("profile")
    if prof:
        title = (
            f"Where the relay's time goes (--profile): cProfile of the relay's event-loop "
            f"thread (the SQLite worker thread is not profiled) during one more saturation "
            f"round with {fmt(prof['pairs'])} pairs ({fmt(prof['msgs_per_s_under_profiler'])} "
            f"msgs/s under the profiler; {fmt(prof['busy_s'], 2)} s busy, "
            f"{fmt(prof['idle_s'], 2)} s idle in epoll):"
        )
        text += ["", *render_profile(prof, title)]
    return "\n".join(text)

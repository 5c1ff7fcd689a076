"""One relay node on SQLite against one relay node on Redis, in the same run.

The same load generator as relay_throughput (benchmarks/loadgen.py: sender -> recipient
pairs, ~200-byte bodies, every Deliver acked) drives a relay on its SQLite data directory and
a relay with ``--store redis://...`` on a real ``redis-server`` (AOF, ``appendfsync always``,
the setting the relay requires), alternating rounds. Reported per store: delivered msgs/s and
p50/p99 latency at saturation, the relay's CPU per message (the figure that scales when nodes
are added), and for Redis its own CPU per message and the Redis commands per message (``INFO
commandstats``: the script calls and the commands they run, over the saturation rounds).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis

from benchmarks.common import Settings, fmt, md_table
from benchmarks.loadgen import BODY_SIZE, Load, PhaseResult, Target, merge
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, raise_nofile
from tests.helpers.redis_process import RedisProcess

NAME = "relay_redis"
TITLE = "Relay on SQLite vs on Redis (one node)"
WINDOW = 32


def _plan(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {"pairs": 20, "rounds": 1, "warmup_s": 0.5, "measure_s": 1.5, "drain_s": 10.0}
    return {"pairs": 100, "rounds": 3, "warmup_s": 1.0, "measure_s": 4.0, "drain_s": 20.0}


def _redis_counters(client: redis.Redis) -> tuple[int, float]:
    """(commands executed, CPU seconds) of the server so far (INFO commandstats, cpu)."""
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    cpu = client.info("cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


async def _run(settings: Settings) -> dict[str, Any]:
    plan = _plan(settings)
    raise_nofile(4 * plan["pairs"] + 256)
    workdir = settings.workdir / NAME
    with RedisProcess(workdir / "redis") as server:
        client = redis.Redis.from_url(server.url)
        store_args = ["--store", server.url]
        with (
            ServerProcess.relay(workdir / "sqlite") as on_sqlite,
            ServerProcess.relay(
                workdir / "redis-node", [*RELAY_BENCH_ARGS, *store_args]
            ) as on_redis,
        ):
            servers = {"sqlite": on_sqlite, "redis": on_redis}
            loads = {
                kind: await Load.open(Target("relay", s.url, s.relay_key), plan["pairs"], WINDOW, s)
                for kind, s in servers.items()
            }
            rounds: dict[str, list[PhaseResult]] = {"sqlite": [], "redis": []}
            redis_calls = 0
            redis_cpu = 0.0
            try:
                for index in range(plan["rounds"]):
                    order = ("sqlite", "redis") if index % 2 == 0 else ("redis", "sqlite")
                    for kind in order:
                        before = _redis_counters(client) if kind == "redis" else (0, 0.0)
                        result = await loads[kind].saturate(
                            plan["warmup_s"], plan["measure_s"], plan["drain_s"]
                        )
                        if kind == "redis":
                            after = _redis_counters(client)
                            redis_calls += after[0] - before[0]
                            redis_cpu += after[1] - before[1]
                        rounds[kind].append(result)
                        servers[kind].check_alive()
            finally:
                for load in loads.values():
                    await load.close()
        client.close()
    out: dict[str, Any] = {
        "body_bytes": BODY_SIZE,
        "plan": plan,
        "window": WINDOW,
        "cores": len(os.sched_getaffinity(0)),
    }
    for kind in ("sqlite", "redis"):
        out[kind] = merge(rounds[kind]).summary()
    # Commands counted over warm-up + measurement + drain; messages over the measurement
    # only: divide by every message the Redis node stored in those rounds instead.
    stored = sum(r.messages for r in rounds["redis"])
    total_s = sum(r.seconds for r in rounds["redis"])
    out["redis_server"] = {
        "commands": redis_calls,
        "cpu_s": round(redis_cpu, 2),
        "measured_messages": stored,
        "measured_seconds": round(total_s, 2),
    }
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    rows = []
    for kind, label in (("sqlite", "SQLite"), ("redis", "Redis")):
        sat = result[kind]
        rows.append(
            [
                label,
                fmt(sat["msgs_per_s"]),
                fmt(sat["p50_ms"], 1),
                fmt(sat["p99_ms"], 1),
                fmt(sat["server_cpu_us_per_msg"]),
                fmt(sat["other_load_cores"], 2),
            ]
        )
    table = md_table(
        ["store", "msgs/s", "p50 ms", "p99 ms", "relay CPU µs/msg", "other load (cores)"], rows
    )
    r = result["redis_server"]
    plan = result["plan"]
    per_round_s = plan["warmup_s"] + plan["measure_s"]
    # Messages the Redis node handled in the counted span (warm-up included), estimated
    # from its measured rate.
    handled = result["redis"]["msgs_per_s"] * per_round_s * plan["rounds"]
    ops = r["commands"] / handled if handled else None
    cpu = 1e6 * r["cpu_s"] / handled if handled else None
    return (
        f"{plan['pairs']} sender → recipient pairs, window {result['window']}, "
        f"{result['body_bytes']}-byte bodies, {plan['rounds']} alternating rounds; Redis with AOF "
        f"appendfsync always on the same {result['cores']}-core machine.\n\n"
        + table
        + f"\n\nRedis: {fmt(ops, 1)} commands per message (INFO commandstats, script calls "
        f"and the commands they run) and {fmt(cpu)} µs of Redis CPU per message.\n"
    )

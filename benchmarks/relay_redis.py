"""Relay nodes on SQLite, on Redis, and two nodes on one Redis, beside the bare forwarder.

The same load generator as relay_throughput (benchmarks/loadgen.py: sender -> recipient
pairs, ~200-byte bodies, every Deliver acked) drives, in one run, alternating rounds:

* ``bare``: the bare websockets forwarder (benchmarks/forwarder.py), the baseline;
* ``sqlite``: one relay node on its SQLite data directory (the embedded default);
* ``redis``: one relay node with ``--store redis://...`` on a real ``redis-server`` (AOF,
  ``appendfsync always``, the setting the relay requires), sender and recipient on it;
* ``two_nodes``: two more relay nodes on the same Redis (one deployment: the relay key comes
  from the store), every sender connected to node A and every recipient to node B, so each
  message is stored by A, announced on the node bus and delivered by B.
* ``two_nodes_nofsync``: the same on a second Redis with ``appendfsync no`` (the nodes with
  ``--accept-volatile-store``): what the disk's fsync costs. With ``always``, Redis sends no
  reply of an event-loop turn, reads and pub/sub included, before that turn's writes are
  fsynced, so every Redis round trip on the cross-node path waits for the disk.

Reported per kind: delivered msgs/s and p50/p99 latency at saturation (closed loop, a window
per sender), the relays' CPU per message (both nodes summed for ``two_nodes``: the figure
that scales when nodes are added), and for the Redis kinds Redis's CPU and commands per
message (``INFO commandstats`` deltas: script calls, the commands they run, publishes; over
whole rounds, divided by every message delivered in them). Before those rounds, a light
open-loop load on each (``PACED_RATE`` messages/s in total): the latency of a relay that is
not queueing; for ``two_nodes`` that is the cross-node wake-up latency, send on node A ->
Deliver at node B.
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
TITLE = "Relay on SQLite, on Redis, and two nodes on one Redis"
WINDOW = 32
KINDS = ("bare", "sqlite", "redis", "two_nodes", "two_nodes_nofsync")
LABELS = {
    "bare": "bare forwarder",
    "sqlite": "one node, SQLite",
    "redis": "one node, Redis",
    "two_nodes": "two nodes, one Redis (A → B)",
    "two_nodes_nofsync": "two nodes, Redis without fsync (A → B)",
}
REDIS_KINDS = ("redis", "two_nodes", "two_nodes_nofsync")
#: Messages per second in total for the light-load (latency) phase.
PACED_RATE = 200.0
#: Aim for the cross-node wake-up latency on loopback (issue 16).
AIM_WAKEUP_P99_MS = 10.0


def _plan(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {
            "pairs": 20,
            "rounds": 1,
            "warmup_s": 0.5,
            "measure_s": 1.5,
            "drain_s": 10.0,
            "paced_warmup_s": 0.3,
            "paced_s": 1.5,
        }
    return {
        "pairs": 100,
        "rounds": 3,
        "warmup_s": 1.0,
        "measure_s": 4.0,
        "drain_s": 20.0,
        "paced_warmup_s": 0.5,
        "paced_s": 6.0,
    }


#: Commands a client sends itself (one round trip each, or one per pipeline); the others
#: counted by INFO commandstats run inside the relay's Lua scripts.
TOP_LEVEL = ("evalsha", "eval", "publish", "spublish", "get", "set", "mget", "del", "exists")


def _redis_counters(client: redis.Redis) -> tuple[dict[str, int], float]:
    """(calls per command, CPU seconds) of the server so far (INFO commandstats, cpu)."""
    stats = client.info("commandstats")
    calls = {
        k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"
    }
    cpu = client.info("cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


class _RedisTally:
    """Redis commands and CPU over whole rounds of one kind, and the messages they carried."""

    def __init__(self) -> None:
        self.by_command: dict[str, int] = {}
        self.cpu_s = 0.0
        self.messages = 0

    def add(self, before: dict[str, int], after: dict[str, int]) -> None:
        for name, calls in after.items():
            delta = calls - before.get(name, 0)
            if delta:
                self.by_command[name] = self.by_command.get(name, 0) + delta

    @property
    def commands(self) -> int:
        return sum(self.by_command.values())

    def as_dict(self) -> dict[str, Any]:
        per = 1 / self.messages if self.messages else None
        top = sum(n for name, n in self.by_command.items() if name in TOP_LEVEL)
        return {
            "by_command": dict(sorted(self.by_command.items(), key=lambda kv: -kv[1])),
            "calls_per_msg": round(top * per, 2) if per else None,
            "commands": self.commands,
            "cpu_s": round(self.cpu_s, 3),
            "messages": self.messages,
            "commands_per_msg": round(self.commands * per, 2) if per else None,
            "cpu_us_per_msg": round(1e6 * self.cpu_s * per, 1) if per else None,
        }


async def _measure(
    loads: dict[str, Load],
    servers: list[ServerProcess],
    clients: dict[str, redis.Redis],
    plan: dict[str, Any],
) -> tuple[dict[str, list[PhaseResult]], dict[str, PhaseResult], dict[str, _RedisTally]]:
    # Light load first, on a fresh Redis: after the saturation rounds its append-only file
    # is large and a rewrite (fork, a burst of disk writes) may be running, which would be
    # measured instead of the relay.
    paced: dict[str, PhaseResult] = {}
    for kind in KINDS:
        paced[kind] = await loads[kind].paced(
            PACED_RATE, plan["paced_warmup_s"], plan["paced_s"], plan["drain_s"]
        )
    rounds: dict[str, list[PhaseResult]] = {kind: [] for kind in KINDS}
    tallies = {kind: _RedisTally() for kind in REDIS_KINDS}
    for index in range(plan["rounds"]):
        order = KINDS if index % 2 == 0 else tuple(reversed(KINDS))
        for kind in order:
            load = loads[kind]
            client = clients["nofsync" if kind == "two_nodes_nofsync" else "always"]
            before = _redis_counters(client)
            delivered = load.delivered_total
            result = await load.saturate(plan["warmup_s"], plan["measure_s"], plan["drain_s"])
            if kind in tallies:
                after = _redis_counters(client)
                tally = tallies[kind]
                tally.add(before[0], after[0])
                tally.cpu_s += after[1] - before[1]
                tally.messages += load.delivered_total - delivered
            rounds[kind].append(result)
            for server in servers:
                server.check_alive()
    return rounds, paced, tallies


async def _settle(servers: list[ServerProcess], timeout: float = 60.0) -> float:
    """Wait until the servers are idle (start-up work done: a relay on Redis walks the purge
    index of every cluster slot once at start, ~1 s of CPU); returns the seconds waited."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < timeout:
        before = sum(s.cpu_seconds() for s in servers)
        await asyncio.sleep(0.5)
        if sum(s.cpu_seconds() for s in servers) - before < 0.05:  # < 10 % of a core
            break
    return loop.time() - started


async def _run(settings: Settings) -> dict[str, Any]:
    plan = _plan(settings)
    raise_nofile(12 * plan["pairs"] + 256)
    workdir = settings.workdir / NAME
    with (
        RedisProcess(workdir / "redis") as server,
        RedisProcess(workdir / "redis-nofsync", appendfsync="no") as nofsync,
    ):
        clients = {
            "always": redis.Redis.from_url(server.url),
            "nofsync": redis.Redis.from_url(nofsync.url),
        }
        on_redis = [*RELAY_BENCH_ARGS, "--store", server.url]
        volatile = [*RELAY_BENCH_ARGS, "--store", nofsync.url, "--accept-volatile-store"]
        with (
            ServerProcess.forwarder(workdir / "bare") as bare,
            ServerProcess.relay(workdir / "sqlite") as on_sqlite,
            ServerProcess.relay(workdir / "redis-node", on_redis) as one_node,
            ServerProcess.relay(workdir / "node-a", on_redis) as node_a,
            ServerProcess.relay(workdir / "node-b", on_redis) as node_b,
            ServerProcess.relay(workdir / "node-c", volatile) as node_c,
            ServerProcess.relay(workdir / "node-d", volatile) as node_d,
        ):
            if len({one_node.relay_key, node_a.relay_key, node_b.relay_key}) != 1:
                raise RuntimeError("the nodes on one Redis announced different relay keys")
            pairs, window = plan["pairs"], WINDOW
            loads: dict[str, Load] = {}
            try:
                loads["bare"] = await Load.open(Target("bare", bare.url), pairs, window, bare)
                for kind, node in (("sqlite", on_sqlite), ("redis", one_node)):
                    target = Target("relay", node.url, node.relay_key)
                    loads[kind] = await Load.open(target, pairs, window, node)
                loads["two_nodes"] = await Load.open(
                    Target("relay", node_a.url, node_a.relay_key),
                    pairs,
                    window,
                    node_a,
                    recipient_target=Target("relay", node_b.url, node_b.relay_key),
                    also=(node_b,),
                )
                loads["two_nodes_nofsync"] = await Load.open(
                    Target("relay", node_c.url, node_c.relay_key),
                    pairs,
                    window,
                    node_c,
                    recipient_target=Target("relay", node_d.url, node_d.relay_key),
                    also=(node_d,),
                )
                servers = [bare, on_sqlite, one_node, node_a, node_b, node_c, node_d]
                settled_s = await _settle(servers)
                rounds, paced, tallies = await _measure(loads, servers, clients, plan)
            finally:
                for load in loads.values():
                    await load.close()
        for client in clients.values():
            client.close()
    out: dict[str, Any] = {
        "body_bytes": BODY_SIZE,
        "plan": plan,
        "window": WINDOW,
        "paced_rate": PACED_RATE,
        "cores": len(os.sched_getaffinity(0)),
        "settled_s": round(settled_s, 1),
    }
    for kind in KINDS:
        out[kind] = {
            "saturation": merge(rounds[kind]).summary(),
            "rounds_msgs_per_s": [round(r.rate, 1) for r in rounds[kind]],
            "light_load": paced[kind].summary(),
        }
    out["redis_server"] = {kind: tally.as_dict() for kind, tally in tallies.items()}
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    if "two_nodes" not in result:  # a result of the one-node version of this benchmark
        return "_Measured by an older version of this benchmark; run it again._"
    plan = result["plan"]
    redis_stats = result["redis_server"]
    rows = []
    for kind in KINDS:
        sat = result[kind]["saturation"]
        light = result[kind]["light_load"]
        r = redis_stats.get(kind, {})
        rows.append(
            [
                LABELS[kind],
                fmt(sat["msgs_per_s"]),
                fmt(sat["p50_ms"], 1),
                fmt(sat["p99_ms"], 1),
                fmt(light["p50_ms"], 2),
                fmt(light["p99_ms"], 2),
                fmt(sat["server_cpu_us_per_msg"]),
                fmt(r.get("calls_per_msg"), 2) if r else "",
                fmt(r.get("commands_per_msg"), 1) if r else "",
                fmt(r.get("cpu_us_per_msg")) if r else "",
                fmt(sat["other_load_cores"], 2),
            ]
        )
    table = md_table(
        [
            "server",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "light p50 ms",
            "light p99 ms",
            "server CPU µs/msg",
            "Redis calls/msg",
            "Redis cmds/msg",
            "Redis CPU µs/msg",
            "other load (cores)",
        ],
        rows,
    )
    wake = result["two_nodes"]["light_load"]
    bare_wake = result.get("two_nodes_nofsync", {}).get("light_load", {})
    p99 = wake["p99_ms"]
    verdict = ""
    if p99 is not None:
        verdict = " ✓" if p99 <= AIM_WAKEUP_P99_MS else " ✗"
    return (
        f"{plan['pairs']} sender → recipient pairs per server, window {result['window']}, "
        f"{result['body_bytes']}-byte bodies, {plan['rounds']} alternating rounds of "
        f"{plan['warmup_s']:g} s warm-up + {plan['measure_s']:g} s measured (saturation), "
        f"after {fmt(result['paced_rate'])} msgs/s in total for {plan['paced_s']:g} s "
        f"(light load, first). Redis with AOF appendfsync always; every process on the same "
        f"{result['cores']}-core machine. Server CPU of two nodes is both nodes' sum; Redis "
        f"commands and CPU are INFO deltas over whole rounds divided by the messages "
        f"delivered in them (calls: the commands the relay sends, script calls and "
        f"publishes, pipelined or not; commands: those plus what the scripts run).\n\n"
        + table
        + f"\n\nCross-node wake-up (send on node A → Deliver at node B, light load, store "
        f"commit included): p50 {fmt(wake['p50_ms'], 2)} ms, p99 {fmt(p99, 2)} ms "
        f"(aim p99 ≤ {AIM_WAKEUP_P99_MS:g} ms{verdict}), {fmt(wake['messages'])} messages; "
        f"without fsync p50 {fmt(bare_wake.get('p50_ms'), 2)} ms, p99 "
        f"{fmt(bare_wake.get('p99_ms'), 2)} ms.\n"
    )

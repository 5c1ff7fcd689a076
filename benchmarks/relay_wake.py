"""Cross-node wake-up latency: send on node A -> Deliver at node B, beside the same node.

Two relay nodes on one real ``redis-server`` (AOF, ``appendfsync always``, the setting the
relay requires). The load generator (benchmarks/loadgen.py: ~200-byte bodies, every Deliver
acked) sends open loop (``RATES``: messages/s in total) with 1 and with 100 sender ->
recipient pairs and measures send -> Deliver received:

* ``cross``: every sender on node A, every recipient on node B (the envelope is stored by A,
  announced on the node bus, delivered by B);
* ``same``: sender and recipient both on node A (the baseline: the same commit, no bus).

Both are measured in one run twice: ``in_process`` (the two nodes are ``RelayServer``s in
this process's event loop, beside the load generator: no scheduling between processes) and
``processes`` (the nodes are relay subprocesses, ``python -m messenger_tui.relay --store``).
Rounds alternate ``cross`` and ``same``. Aim (issue 16): p99 <= 10 ms on loopback.

Beside the latencies, Redis calls per delivered message (``INFO commandstats`` deltas over
each phase, warm-up and drain included: the commands the relay sends itself, scripts counted
once, and of those the script calls): a figure that does not drift with the machine's load
and shows what the cross-node path costs beyond the same-node one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import redis

from benchmarks.common import Settings, fmt, md_table
from benchmarks.loadgen import BODY_SIZE, Load, PhaseResult, Target, merge
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, raise_nofile
from benchmarks.relay_redis import TOP_LEVEL, _redis_counters
from messenger_tui.relay.config import RateLimit, RelayConfig
from messenger_tui.relay.server import RelayServer
from tests.helpers.redis_process import RedisProcess

NAME = "relay_wake"
TITLE = "Cross-node wake-up latency (two relay nodes on one Redis)"
WINDOW = 32
PAIRS = (1, 100)
#: Messages per second in total, per number of pairs.
RATES = {1: 50.0, 100: 500.0}
KINDS = ("cross", "same")
MODES = ("in_process", "processes")
AIM_P99_MS = 10.0


def _plan(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {"rounds": 1, "warmup_s": 0.3, "measure_s": 1.5, "drain_s": 10.0}
    return {"rounds": 2, "warmup_s": 0.5, "measure_s": 4.0, "drain_s": 20.0}


class _ThisProcess:
    """What the load generator asks of a server, for nodes running in this process (their
    CPU is this process's, load generator included)."""

    def cpu_seconds(self) -> float:
        return time.process_time()

    def loop_cpu_seconds(self) -> float:
        return time.process_time()

    def check_alive(self) -> None:
        pass


@contextlib.asynccontextmanager
async def _in_process_nodes(url: str, workdir: Path) -> AsyncIterator[list[RelayServer]]:
    unlimited = RateLimit(1e6, 1_000_000)
    servers = []
    for name in ("node-a", "node-b"):
        data = workdir / name
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        servers.append(
            RelayServer(
                RelayConfig(
                    data_dir=data,
                    store_url=url,
                    send_limit=unlimited,
                    address_send_limit=None,
                    address_auth_limit=None,
                    max_connections_per_address=0,
                    new_identity_limit=unlimited,
                )
            )
        )
    started: list[RelayServer] = []
    try:
        for server in servers:
            await server.start()
            started.append(server)
        yield servers
    finally:
        for server in started:
            await server.stop()


@dataclasses.dataclass
class _Calls:
    """Redis commands over some phases and the messages delivered in them."""

    top_level: int = 0
    scripts: int = 0
    messages: int = 0

    def add(self, before: dict[str, int], after: dict[str, int], messages: int) -> None:
        def delta(name: str) -> int:
            return after.get(name, 0) - before.get(name, 0)

        self.top_level += sum(delta(name) for name in TOP_LEVEL)
        self.scripts += delta("evalsha") + delta("eval")
        self.messages += messages

    def per_message(self) -> dict[str, float | None]:
        per = 1 / self.messages if self.messages else None
        return {
            "calls_per_msg": round(self.top_level * per, 2) if per else None,
            "scripts_per_msg": round(self.scripts * per, 2) if per else None,
        }


async def _measure(
    targets: tuple[Target, Target],
    servers: list[Any],
    plan: dict[str, Any],
    client: redis.Redis,
    calls: dict[str, dict[str, _Calls]],
) -> dict[str, dict[str, PhaseResult]]:
    a, b = targets
    first, also = servers[0], tuple(servers[1:])
    out: dict[str, dict[str, PhaseResult]] = {}
    for pairs in PAIRS:
        loads = {
            "cross": await Load.open(a, pairs, WINDOW, first, recipient_target=b, also=also),
            "same": await Load.open(a, pairs, WINDOW, first, also=also),
        }
        rounds: dict[str, list[PhaseResult]] = {kind: [] for kind in KINDS}
        tally = calls.setdefault(str(pairs), {kind: _Calls() for kind in KINDS})
        try:
            for index in range(plan["rounds"]):
                for kind in KINDS if index % 2 == 0 else tuple(reversed(KINDS)):
                    load = loads[kind]
                    before, delivered = _redis_counters(client)[0], load.delivered_total
                    rounds[kind].append(
                        await load.paced(
                            RATES[pairs], plan["warmup_s"], plan["measure_s"], plan["drain_s"]
                        )
                    )
                    after = _redis_counters(client)[0]
                    tally[kind].add(before, after, load.delivered_total - delivered)
                    for server in servers:
                        server.check_alive()
        finally:
            for load in loads.values():
                await load.close()
        out[str(pairs)] = {kind: merge(rounds[kind]) for kind in KINDS}
    return out


async def _run(settings: Settings) -> dict[str, Any]:
    plan = _plan(settings)
    raise_nofile(12 * max(PAIRS) + 256)
    workdir = settings.workdir / NAME
    results: dict[str, dict[str, dict[str, PhaseResult]]] = {}
    calls: dict[str, dict[str, dict[str, _Calls]]] = {mode: {} for mode in MODES}
    with RedisProcess(workdir / "redis") as redis_server:
        client = redis.Redis.from_url(redis_server.url)
        async with _in_process_nodes(redis_server.url, workdir / "in-process") as nodes:
            targets = tuple(Target("relay", n.url, n.relay_key) for n in nodes)
            here = cast(ServerProcess, _ThisProcess())
            results["in_process"] = await _measure(
                cast(tuple[Target, Target], targets), [here], plan, client, calls["in_process"]
            )
        args = [*RELAY_BENCH_ARGS, "--store", redis_server.url]
        with (
            ServerProcess.relay(workdir / "node-a", args) as node_a,
            ServerProcess.relay(workdir / "node-b", args) as node_b,
        ):
            targets = (
                Target("relay", node_a.url, node_a.relay_key),
                Target("relay", node_b.url, node_b.relay_key),
            )
            results["processes"] = await _measure(
                targets, [node_a, node_b], plan, client, calls["processes"]
            )
        client.close()
    out: dict[str, Any] = {
        "plan": plan,
        "body_bytes": BODY_SIZE,
        "rates": {str(k): v for k, v in RATES.items()},
        "cores": len(os.sched_getaffinity(0)),
    }
    for mode, by_pairs in results.items():
        out[mode] = {
            pairs: {
                kind: result.summary() | calls[mode][pairs][kind].per_message()
                for kind, result in kinds.items()
            }
            for pairs, kinds in by_pairs.items()
        }
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    rows = []
    for mode in MODES:
        for pairs in PAIRS:
            figures = result.get(mode, {}).get(str(pairs))
            if figures is None:
                continue
            cross, same = figures["cross"], figures["same"]
            p99 = cross["p99_ms"]
            verdict = "" if p99 is None else (" ✓" if p99 <= AIM_P99_MS else " ✗")
            rows.append(
                [
                    mode.replace("_", " "),
                    fmt(pairs),
                    fmt(result["rates"][str(pairs)]),
                    fmt(cross["messages"]),
                    fmt(cross["p50_ms"], 2),
                    fmt(cross["p99_ms"], 2) + verdict,
                    fmt(same["p50_ms"], 2),
                    fmt(same["p99_ms"], 2),
                    f"{fmt(cross.get('calls_per_msg'), 2)} / {fmt(same.get('calls_per_msg'), 2)}",
                    f"{fmt(cross.get('scripts_per_msg'), 2)} / "
                    f"{fmt(same.get('scripts_per_msg'), 2)}",
                ]
            )
    table = md_table(
        [
            "nodes",
            "pairs",
            "msgs/s",
            "messages",
            "A → B p50 ms",
            "A → B p99 ms",
            "same node p50 ms",
            "same node p99 ms",
            "Redis calls/msg (A → B / same)",
            "of which scripts",
        ],
        rows,
    )
    return (
        table + f"\n\nSend on node A → Deliver at node B (store commit with `appendfsync always` "
        f"included), beside sender and recipient on the same node in the same run; "
        f"{result['body_bytes']}-byte bodies, open loop. Aim: p99 ≤ {AIM_P99_MS:g} ms. Redis "
        "calls per delivered message: what the relays send (a pipeline's commands each), "
        "scripts (insert, mailbox read, ack, shared limits) once each.\n"
    )

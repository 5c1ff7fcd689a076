"""Memory per idle authenticated connection: relay vs bare forwarder.

Opens ``N`` connections (relay: authenticated, each with its own identity; forwarder: after
its hello) that then stay idle, and reads the server process's VmRSS before and after. The
"before" sample is taken with a few warm-up connections already open, so one-time costs of
the first connection (lazy imports, caches) are not charged to the others. The growth
divided by ``N`` is the figure; samples along the way are kept in the JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.loadgen import Identity, Target, close_all, open_many
from benchmarks.procs import ServerProcess, raise_nofile

NAME = "idle_memory"
TITLE = "Memory per idle connection"
AIM_KIB = 24.0
WARMUP_CONNECTIONS = 20
STEPS = 4
SETTLE_S = 1.0


async def _measure(server: ServerProcess, kind: str, n: int) -> dict[str, Any]:
    target = Target(kind, server.url, server.relay_key)

    def specs(count: int) -> list[tuple[Identity, bytes, bytes]]:
        ids = [Identity.generate() for _ in range(count)]
        return [(i, b"R", i.public) for i in ids]

    opened = await open_many(target, specs(WARMUP_CONNECTIONS))
    try:
        await asyncio.sleep(SETTLE_S)
        before = server.rss_kib()
        samples = [(0, before)]
        step = n // STEPS
        for index in range(STEPS):
            count = step if index < STEPS - 1 else n - step * (STEPS - 1)
            opened += await open_many(target, specs(count))
            await asyncio.sleep(0.2)
            samples.append((len(opened) - WARMUP_CONNECTIONS, server.rss_kib()))
        await asyncio.sleep(SETTLE_S)
        after = server.rss_kib()
        server.check_alive()
    finally:
        await close_all(opened)
    await asyncio.sleep(SETTLE_S)
    after_close = server.rss_kib()
    return {
        "connections": n,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_after_close_kib": after_close,
        "kib_per_connection": round((after - before) / n, 2),
        "samples": samples,
    }


async def _run(settings: Settings) -> dict[str, Any]:
    n = 300 if settings.quick else 2000
    raise_nofile(2 * n + 256)
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {"aim_kib": AIM_KIB, "connections": n}
    # A fresh process each, so neither inherits the other's history.
    with ServerProcess.forwarder(workdir) as forwarder:
        out["bare"] = await _measure(forwarder, "bare", n)
    with ServerProcess.relay(workdir) as relay:
        out["relay"] = await _measure(relay, "relay", n)
    bare = out["bare"]["kib_per_connection"]
    relay_kib = out["relay"]["kib_per_connection"]
    out["relay_minus_bare_kib"] = round(relay_kib - bare, 2)
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    rows = []
    for kind in ("bare", "relay"):
        data = result[kind]
        per = data["kib_per_connection"]
        mark = ""
        if kind == "relay":
            mark = " ✓" if per <= result["aim_kib"] else " ✗"
        rows.append(
            [
                "relay (authenticated)" if kind == "relay" else "bare forwarder",
                fmt(data["connections"]),
                fmt(data["rss_before_kib"] / 1024, 1, " MiB"),
                fmt(data["rss_after_kib"] / 1024, 1, " MiB"),
                fmt(per, 1, " KiB") + mark,
                fmt(data["rss_after_close_kib"] / 1024, 1, " MiB"),
            ]
        )
    header = [
        "server",
        "idle connections",
        "RSS before",
        "RSS after",
        "per connection",
        "RSS after closing",
    ]
    return "\n".join(
        [
            md_table(header, rows),
            "",
            f"Relay minus bare forwarder: {fmt(result['relay_minus_bare_kib'], 1)} KiB per "
            f"connection. Aim: relay <= {fmt(result['aim_kib'])} KiB per connection. "
            f"RSS is VmRSS of the server process ({WARMUP_CONNECTIONS} warm-up connections "
            f"open before the first sample).",
        ]
    )

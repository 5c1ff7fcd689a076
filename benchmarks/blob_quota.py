"""The blob quotas' cost: an upload start (the quota reserve) and a blob's whole life on the
in-process ledger of a SQLite node (the baseline) and on the Redis ledgers that make the
quotas hold across nodes (relay/redis_blob_quota.py), in the same run.

For each backend, ``N`` blobs of 50 owners go through the blob service as the route drives
it: reserved (latency of each, p50/p99), completed and written, removed and written. Redis
runs with ``appendfsync always`` (what the relay requires) and, to separate the scripts' cost
from the disk's, with ``appendfsync no``; its commands are counted with ``INFO commandstats``
(script calls per blob: the figure that scales with uploads).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from messenger_tui.relay.blob_index import BlobConfig, BlobEntry
from messenger_tui.relay.blob_service import BlobService
from messenger_tui.relay.clock import ManualClock, wall_clock_ms
from messenger_tui.relay.redis_store import RedisStore
from tests.helpers.redis_process import RedisProcess

NAME = "blob_quota"
TITLE = "Blob quotas: an upload start, in process and in Redis"
OWNERS = 50


async def _measure(store: RedisStore | None, directory: Path, n: int) -> dict[str, Any]:
    clock = ManualClock(wall_clock_ms())
    config = BlobConfig(
        quota_count=10**6, max_uploads=10**6, quota_bytes=10**12, total_bytes=10**13
    )
    blobs = BlobService(
        config, directory, clock, logging.getLogger(NAME), shared=store is not None, store=store
    )
    await blobs.start()
    owners = [os.urandom(32) for _ in range(OWNERS)]
    entries = [
        BlobEntry(id=os.urandom(32), owner=owners[i % OWNERS], size=1000, touched_ms=clock())
        for i in range(n)
    ]
    latencies: list[float] = []
    started = time.perf_counter()
    try:
        for entry in entries:
            t = time.perf_counter()
            refusal = await blobs.reserve(entry)
            latencies.append(time.perf_counter() - t)
            if refusal is not None:
                raise RuntimeError(f"refused: {refusal.message}")
        for entry in entries:
            blobs.index.completed(entry, clock())
            await blobs.settle()  # as the route does before acknowledging the last chunk
        for entry in entries:
            blobs.index.remove(entry.id)
        await blobs.quota.flush()
        lifetime_s = time.perf_counter() - started
        if await blobs.quota.usage(None) != (0, 0, 0):
            raise RuntimeError("the ledger is not empty after every blob went")
    finally:
        await blobs.stop()
    latencies.sort()
    return {
        "blobs": n,
        "reserve_p50_us": round(latencies[n // 2] * 1e6, 1),
        "reserve_p99_us": round(latencies[int(n * 0.99)] * 1e6, 1),
        "lifetime_us_per_blob": round(lifetime_s / n * 1e6, 1),
    }


async def _redis(server: RedisProcess, directory: Path, n: int) -> dict[str, Any]:
    store = await RedisStore.open(server.url)
    try:
        await store.client.config_resetstat()
        out = await _measure(store, directory, n)
        stats = await store.client.info("commandstats")
    finally:
        await store.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    out["script_calls_per_blob"] = round((calls.get("evalsha", 0) + calls.get("eval", 0)) / n, 2)
    return out


async def _run(settings: Settings) -> dict[str, Any]:
    n = 300 if settings.quick else 3000
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {"local": await _measure(None, workdir / "local", n)}
    with RedisProcess(workdir / "redis") as server:
        out["redis"] = await _redis(server, workdir / "redis-blobs", n)
    # the same without fsync: what the scripts and round trips cost beside the disk's wait
    with RedisProcess(workdir / "redis-nofsync", appendfsync="no") as server:
        out["redis_nofsync"] = await _redis(server, workdir / "nofsync-blobs", n)
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    rows = []
    kinds = (
        ("local", "SQLite node (in-process ledger)"),
        ("redis", "Redis ledgers (appendfsync always)"),
        ("redis_nofsync", "Redis ledgers (appendfsync no)"),
    )
    for kind, label in kinds:
        data = result.get(kind)
        if data is None:
            continue
        rows.append(
            [
                label,
                fmt(data["blobs"]),
                fmt(data["reserve_p50_us"], 1, " µs"),
                fmt(data["reserve_p99_us"], 1, " µs"),
                fmt(data["lifetime_us_per_blob"], 1, " µs"),
                fmt(data.get("script_calls_per_blob"), 2),
            ]
        )
    header = [
        "quotas",
        "blobs",
        "reserve p50",
        "reserve p99",
        "life per blob",
        "Redis scripts per blob",
    ]
    return "\n".join(
        [
            md_table(header, rows),
            "",
            "An upload start waits for the reserve (owner's ledger, then the relay-wide one, "
            "each a Lua script fsynced by Redis's AOF); a blob's life adds its completion "
            "(written before the last chunk's ack) and its removal.",
        ]
    )

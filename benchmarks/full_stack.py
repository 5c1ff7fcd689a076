"""One client, full stack: encrypt, send, relay, receive, decrypt, store.

Two real :class:`~messenger_tui.app.service.MessengerService` instances (alice and bob, each
with its own profile and SQLite store, both in this process) talk through a relay
subprocess. After a warm-up that establishes the session (X3DH, first ratchet step), alice
calls ``send_text`` ``N`` times in a row; the outbox drains in the background (seal, store the
ratchet state, Send, Stored); bob decrypts and commits each message and queues a delivery
receipt. The figure is ``N`` divided by the time from the first ``send_text`` to bob's ``N``-th
``MessageReceived`` event (emitted after the message is committed to bob's store).

Baseline, same run, same relay process: the same number of envelopes of the same size pushed
through the relay by raw wire-protocol clients (benchmarks/loadgen.py, one pair, the service's
pipelining window) with no crypto and no client storage. The ratio isolates the client stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import Settings, fmt, md_table, profile_summary, render_profile
from benchmarks.loadgen import Load, Target
from benchmarks.procs import ServerProcess, machine_busy_seconds
from messenger_tui.app import events as ev
from messenger_tui.app.profile import create_profile
from messenger_tui.app.sender import MAX_IN_FLIGHT
from messenger_tui.app.service import MessengerService

NAME = "full_stack"
TITLE = "One client, full stack"
AIM_RATE = 2000.0
WARMUP_MESSAGES = 50
TEXT_CHARS = 100
PROFILE_TOP = 15


def _text(i: int) -> str:
    head = f"message {i:05d}: "
    return (head + "the quick brown fox jumps over the lazy dog " * 3)[:TEXT_CHARS]


class _Counter:
    """Counts events of one kind from a service's event queue; ``reached`` fires at target."""

    def __init__(self, queue: asyncio.Queue[ev.Event], match: Callable[[ev.Event], bool]):
        self._queue = queue
        self._match = match
        self.count = 0
        self.target = -1
        self.reached = asyncio.Event()
        self.last_at = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if self._match(event):
                self.count += 1
                self.last_at = time.perf_counter()
                if self.count == self.target:
                    self.reached.set()

    def expect(self, more: int) -> None:
        self.reached.clear()
        self.target = self.count + more
        if more <= 0:
            self.reached.set()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _wait(event: asyncio.Event, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}") from None


async def _quiet(services: list[MessengerService], timeout: float) -> None:
    """Wait until every outbox is empty (messages and receipts stored by the relay)."""
    deadline = time.monotonic() + timeout
    while any(s.outbox_count() for s in services):
        if time.monotonic() > deadline:
            counts = [s.outbox_count() for s in services]
            raise RuntimeError(f"outboxes did not drain in {timeout:g} s: {counts}")
        await asyncio.sleep(0.02)


async def _burst(
    alice: MessengerService,
    received: _Counter,
    delivered: _Counter,
    relay: ServerProcess,
    n: int,
    first: int,
    timeout: float,
    profiler: cProfile.Profile | None = None,
) -> dict[str, Any]:
    received.expect(n)
    delivered.expect(n)
    cpu0 = relay.cpu_seconds(), time.process_time(), machine_busy_seconds()
    if profiler is not None:
        profiler.enable()
    t0 = time.perf_counter()
    for i in range(first, first + n):
        await alice.send_text(alice.contact("bob").id, _text(i))
    enqueued = time.perf_counter() - t0
    await _wait(received.reached, timeout, f"bob to store {n} messages")
    stored = received.last_at - t0
    cpu1 = relay.cpu_seconds(), time.process_time(), machine_busy_seconds()
    if profiler is not None:
        profiler.disable()
    await _wait(delivered.reached, timeout, f"alice to see {n} delivery receipts")
    round_trip = delivered.last_at - t0
    relay_cpu, client_cpu, busy = (b - a for a, b in zip(cpu0, cpu1))
    return {
        "messages": n,
        "enqueue_s": round(enqueued, 3),
        "seconds": round(stored, 3),
        "msgs_per_s": round(n / stored, 1),
        "receipts_s": round(round_trip, 3),
        "relay_cpu_pct": round(100 * relay_cpu / stored, 1),
        "clients_cpu_pct": round(100 * client_cpu / stored, 1),
        "clients_cpu_us_per_msg": round(1e6 * client_cpu / n, 1),
        "other_load_cores": round(max(0.0, busy - relay_cpu - client_cpu) / stored, 2),
    }


async def _run(settings: Settings, *, want_profile: bool) -> dict[str, Any]:
    n = 500 if settings.quick else 3000
    timeout = 60.0 if settings.quick else 180.0
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {"aim_msgs_per_s": AIM_RATE, "messages": n, "text_chars": TEXT_CHARS}
    with ServerProcess.relay(workdir) as relay:
        alice = MessengerService(create_profile(workdir / "alice", "alice", relay.url, None))
        bob = MessengerService(create_profile(workdir / "bob", "bob", relay.url, None))
        received: _Counter | None = None
        delivered: _Counter | None = None
        sizes: list[int] = []
        try:
            # Observe the size of the sealed envelopes (read-only wrapper, no behaviour change).
            client = getattr(alice, "_client", None)
            submit = getattr(client, "submit_envelope", None)
            if client is not None and submit is not None:

                def recording_submit(id: bytes, to: bytes, body: bytes) -> Any:
                    if len(sizes) < 1000:
                        sizes.append(len(body))
                    return submit(id, to, body)

                client.submit_envelope = recording_submit

            alice.add_contact(bob.address, "bob")
            bob.add_contact(alice.address, "alice")
            await alice.connect(timeout=15)
            await bob.connect(timeout=15)
            received = _Counter(bob.subscribe(), lambda e: isinstance(e, ev.MessageReceived))
            delivered = _Counter(
                alice.subscribe(),
                lambda e: isinstance(e, ev.MessageStateChanged) and e.state == "delivered",
            )
            warm = await _burst(alice, received, delivered, relay, WARMUP_MESSAGES, 0, timeout)
            await _quiet([alice, bob], timeout)
            envelope = round(sum(sizes) / len(sizes)) if sizes else 0
            out["envelope_bytes"] = envelope
            out["warmup"] = warm

            # Baseline: raw clients through the same relay, same count and envelope size.
            target = Target("relay", relay.url, relay.relay_key)
            load = await Load.open(target, 1, MAX_IN_FLIGHT, relay, envelope or 200)
            try:
                base = await load.fixed(n, timeout)
            finally:
                await load.close()
            out["baseline"] = base.summary() | {"window": MAX_IN_FLIGHT}

            out["full"] = await _burst(
                alice, received, delivered, relay, n, WARMUP_MESSAGES, timeout
            )
            await _quiet([alice, bob], timeout)
            rate = out["full"]["msgs_per_s"]
            out["ratio_to_baseline"] = round(rate / out["baseline"]["msgs_per_s"], 3)
            if want_profile or (rate < AIM_RATE and not settings.quick):
                profiler = cProfile.Profile()
                profiled = await _burst(
                    alice, received, delivered, relay, n, WARMUP_MESSAGES + n, timeout, profiler
                )
                await _quiet([alice, bob], timeout)
                stats = pstats.Stats(profiler)
                sql_calls = sum(
                    nc
                    for (_f, _l, func), (_cc, nc, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
                    if ("sqlite3.Connection" in func or "sqlite3.Cursor" in func)
                    and "execute" in func
                )
                out["profile"] = {
                    "msgs_per_s_under_profiler": profiled["msgs_per_s"],
                    "sql_statements_per_msg": round(sql_calls / n, 1),
                    **profile_summary(stats, PROFILE_TOP),
                }
            relay.check_alive()
        finally:
            for counter in (received, delivered):
                if counter is not None:
                    await counter.stop()
            for service in (alice, bob):
                await service.close()
                service.profile.close()
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings, want_profile=settings.profile))


def render(result: dict[str, Any]) -> str:
    full = result["full"]
    base = result["baseline"]
    ok = " ✓" if full["msgs_per_s"] >= result["aim_msgs_per_s"] else " ✗"
    rows = [
        [
            "MessengerService -> relay -> MessengerService",
            fmt(result["messages"]),
            fmt(full["seconds"], 2),
            fmt(full["msgs_per_s"]) + ok,
            f"send_text x{result['messages']}: {fmt(full['enqueue_s'], 2)} s; all delivery "
            f"receipts back at alice: {fmt(full['receipts_s'], 2)} s; clients "
            f"{fmt(full['clients_cpu_us_per_msg'])} µs CPU/msg, relay CPU "
            f"{fmt(full['relay_cpu_pct'])} %, other load {fmt(full['other_load_cores'], 2)} "
            "cores",
        ],
        [
            "baseline: raw wire clients -> relay (no crypto, no client storage)",
            fmt(base["messages"]),
            fmt(base["seconds"], 2),
            fmt(base["msgs_per_s"]),
            f"window {base['window']}; p50 / p99 latency {fmt(base['p50_ms'], 1)} / "
            f"{fmt(base['p99_ms'], 1)} ms; relay CPU {fmt(base['server_cpu_pct'])} %",
        ],
    ]
    header = ["path", "messages", "seconds", "msgs/s", "notes"]
    text = [
        md_table(header, rows, "lrrrl"),
        "",
        f"Full stack / baseline: {fmt(result['ratio_to_baseline'], 2)}. Texts of "
        f"{result['text_chars']} characters, sealed envelopes of about "
        f"{result['envelope_bytes']} bytes; both clients run in one process (one event loop), "
        "and bob also sends one delivery receipt per message. Time = first send_text -> "
        f"bob's last MessageReceived. Aim: >= {fmt(result['aim_msgs_per_s'])} msgs/s.",
    ]
    prof = result.get("profile")
    if prof:
        title = (
            f"Where the time goes: cProfile of both clients (one more burst of "
            f"{fmt(result['messages'])}, {fmt(prof['msgs_per_s_under_profiler'])} msgs/s under "
            f"the profiler; {fmt(prof['busy_s'], 2)} s busy, {fmt(prof['idle_s'], 2)} s idle in "
            f"epoll; {fmt(prof['sql_statements_per_msg'], 1)} SQLite statements per message, "
            f"both clients together, BEGIN/COMMIT included):"
        )
        text += ["", *render_profile(prof, title)]
    return "\n".join(text)

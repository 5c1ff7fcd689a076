"""Call media through the relay: forwarding delay and loss per concurrent call, and the
saturation forwarding rate beside a bare websockets forwarder.

The relay runs as a subprocess (``--media-rate/--media-burst`` raised so the saturation phase
is not capped by the per-leg rate limit); the bare baseline is ``benchmarks/forwarder.py``'s
media role (pairs two legs by token, no auth, forwards with ``await peer.send``). This process
is the load generator: every call is two websocket legs on the media route (Challenge -> Auth
-> AuthOk -> media_join with a random 32-byte token; a hello for the bare forwarder).

* **Paced calls** (50 / 100 / 200 calls): every leg sends a 149-byte frame (the size of a
  24 kb/s Opus frame with redundancy, sealed) every 20 ms, legs spread evenly over the 20 ms
  period as independent calls would be. Each frame starts with the media version byte 0x01 and
  carries the sender's ``perf_counter_ns``; the receiving leg (same process, same clock) takes
  the difference: the forwarding delay, including both websocket stacks and the load
  generator's own scheduling. Loss = frames sent but never received.
* **Saturation**: ``SAT_CALLS`` calls, both legs sending flat out with at most ``SAT_WINDOW``
  frames in flight per direction; frames forwarded per second, rounds alternating between the
  relay and the bare forwarder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from array import array
from typing import Any

import nacl.signing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.common import Settings, fmt, md_table
from benchmarks.loadgen import percentile
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, machine_busy_seconds, raise_nofile
from messenger_tui.core import media_wire, wire

NAME = "calls_relay"
TITLE = "Call media through the relay"
FRAME_BYTES = 149
FRAME_MS = 20
AIM_CALLS = 100
AIM_P99_MS = 10.0
AIM_RATIO = 0.8
SAT_CALLS = 20
SAT_WINDOW = 16
#: Scheduling slots per 20 ms period (legs are spread over them).
SLOTS = 20
CONNECT_CONCURRENCY = 64
RELAY_ARGS = (*RELAY_BENCH_ARGS, "--media-rate", "1000000", "--media-burst", "1000000")

_now_ns = time.perf_counter_ns
_PAD = os.urandom(FRAME_BYTES - 13)


def _plan(settings: Settings) -> dict[str, Any]:
    if settings.quick:
        return {
            "cases": (50, 100),
            "warmup_s": 0.5,
            "measure_s": 1.5,
            "sat_rounds": 1,
            "sat_s": 1.0,
        }
    return {
        "cases": (50, 100, 200),
        "warmup_s": 1.0,
        "measure_s": 5.0,
        "sat_rounds": 2,
        "sat_s": 3.0,
    }


class LegConn:
    """One leg: its websocket and counters."""

    __slots__ = ("inflight_wake", "peer", "received", "recv_seq", "sent", "seq", "ws")

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.peer: LegConn | None = None
        self.seq = 0  # next sequence number to send
        self.sent = 0
        self.received = 0
        self.recv_seq = -1  # highest sequence received from the peer
        self.inflight_wake = asyncio.Event()

    def write(self, data: bytes) -> None:
        """Send without awaiting (as a client's MediaLink does)."""
        protocol = self.ws.protocol
        protocol.send_binary(data)
        self.ws.transport.write(b"".join(protocol.data_to_send()))

    def send_frame(self) -> None:
        self.send_frames(1)

    def send_frames(self, count: int) -> None:
        """``count`` frames in one transport write."""
        protocol = self.ws.protocol
        for _ in range(count):
            seq = self.seq
            self.seq += 1
            self.sent += 1
            protocol.send_binary(
                b"\x01" + seq.to_bytes(4, "big") + _now_ns().to_bytes(8, "big") + _PAD
            )
        self.ws.transport.write(b"".join(protocol.data_to_send()))


async def _open_leg(kind: str, url: str, token: bytes, leg: int) -> LegConn:
    if kind == "relay":
        ws = await connect(
            url + media_wire.MEDIA_PATH, compression=None, max_size=8192, ping_interval=None
        )
        key = nacl.signing.SigningKey.generate()
        identity = bytes(key.verify_key)
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        t = int(time.time() * 1000)
        message = wire.auth_message(challenge.relay_key, challenge.nonce, identity, t)
        auth = wire.Auth(identity=identity, time_ms=t, signature=key.sign(message).signature)
        await ws.send(wire.encode(auth))
        ok = wire.decode_relay_frame(await ws.recv())
        if not isinstance(ok, wire.AuthOk):
            raise RuntimeError(f"relay refused auth: {ok!r}")
        await ws.send(media_wire.encode_media_control(media_wire.MediaJoin(token=token, leg=leg)))
        joined = media_wire.decode_media_relay_frame(await ws.recv())
        if not isinstance(joined, media_wire.MediaJoined):
            raise RuntimeError(f"relay refused the join: {joined!r}")
    else:
        ws = await connect(url, compression=None, max_size=8192, ping_interval=None)
        await ws.send(b"M" + bytes([leg]) + token)
    return LegConn(ws)


class Calls:
    """``n`` calls (2n legs) against one server, with a reader task per leg."""

    def __init__(self, legs: list[LegConn]) -> None:
        self.legs = legs
        self.delays_ns = array("q")
        self.t0 = 0  # frames sent from this perf_counter_ns on are measured
        self._readers = [asyncio.ensure_future(self._read(leg)) for leg in legs]

    @classmethod
    async def open(cls, kind: str, url: str, n: int) -> Calls:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(token: bytes, leg: int) -> LegConn:
            async with gate:
                return await _open_leg(kind, url, token, leg)

        tokens = [os.urandom(32) for _ in range(n)]
        callers = await asyncio.gather(*(one(t, 0) for t in tokens))
        callees = await asyncio.gather(*(one(t, 1) for t in tokens))
        for a, b in zip(callers, callees, strict=True):
            a.peer, b.peer = b, a
        calls = cls([leg for pair in zip(callers, callees, strict=True) for leg in pair])
        await asyncio.sleep(0.2)  # media_peer frames settle
        return calls

    async def _read(self, leg: LegConn) -> None:
        ws = leg.ws
        delays = self.delays_ns
        with contextlib.suppress(ConnectionClosed):
            while True:
                data = await ws.recv()
                if type(data) is not bytes or data[:1] != b"\x01":
                    continue  # control frames (media_peer)
                now = _now_ns()
                leg.received += 1
                seq = int.from_bytes(data[1:5], "big")
                if seq > leg.recv_seq:
                    leg.recv_seq = seq
                sent_ns = int.from_bytes(data[5:13], "big")
                if sent_ns >= self.t0:
                    delays.append(now - sent_ns)
                sender = leg.peer
                if sender is not None and sender.seq - seq <= SAT_WINDOW // 2:
                    sender.inflight_wake.set()

    def totals(self) -> tuple[int, int]:
        return sum(leg.sent for leg in self.legs), sum(leg.received for leg in self.legs)

    async def paced(self, warmup_s: float, measure_s: float) -> dict[str, Any]:
        """Every leg one frame per 20 ms, spread over SLOTS slots; delays of frames sent in
        the measurement window, loss over the whole phase."""
        loop = asyncio.get_running_loop()
        slots: list[list[LegConn]] = [[] for _ in range(SLOTS)]
        for index, leg in enumerate(self.legs):
            slots[index % SLOTS].append(leg)
        sent0, received0 = self.totals()
        del self.delays_ns[:]
        self.t0 = 1 << 62
        slot_s = FRAME_MS / 1000 / SLOTS
        start = loop.time()
        end = start + warmup_s + measure_s
        measuring = False
        late_ticks = 0
        tick = 0
        cpu0: tuple[float, float, float] = (0.0, 0.0, 0.0)
        while True:
            due = start + tick * slot_s
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > slot_s:
                late_ticks += 1
            if due >= end:
                break
            if not measuring and due >= start + warmup_s:
                measuring = True
                self.t0 = _now_ns()
                cpu0 = (self._server_cpu(), time.process_time(), machine_busy_seconds())
            for leg in slots[tick % SLOTS]:
                leg.send_frame()
            tick += 1
        cpu1 = (self._server_cpu(), time.process_time(), machine_busy_seconds())
        await asyncio.sleep(0.3)  # let the last frames arrive
        sent1, received1 = self.totals()
        sent, received = sent1 - sent0, received1 - received0
        delays = [d / 1e6 for d in self.delays_ns]
        return {
            "frames_sent": sent,
            "frames_received": received,
            "loss": round(max(0, sent - received) / sent, 5) if sent else None,
            "p50_ms": _r(percentile(delays, 0.50)),
            "p99_ms": _r(percentile(delays, 0.99)),
            "max_ms": _r(max(delays) if delays else None),
            "server_cpu_pct": round(100 * (cpu1[0] - cpu0[0]) / measure_s, 1),
            "loadgen_cpu_pct": round(100 * (cpu1[1] - cpu0[1]) / measure_s, 1),
            "other_load_cores": round(
                max(0.0, (cpu1[2] - cpu0[2]) - (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
                / measure_s,
                2,
            ),
            "late_ticks": late_ticks,
        }

    server: ServerProcess | None = None

    def _server_cpu(self) -> float:
        return self.server.cpu_seconds() if self.server is not None else 0.0

    async def saturate(self, measure_s: float) -> dict[str, Any]:
        """Every leg flat out, at most SAT_WINDOW frames in flight per direction."""
        stop = [False]

        async def flat_out(leg: LegConn) -> None:
            peer = leg.peer
            assert peer is not None
            with contextlib.suppress(ConnectionClosed):
                while not stop[0]:
                    inflight = leg.seq - 1 - peer.recv_seq
                    if inflight >= SAT_WINDOW:
                        leg.inflight_wake.clear()
                        try:
                            async with asyncio.timeout(0.05):
                                await leg.inflight_wake.wait()
                        except TimeoutError:
                            peer.recv_seq = leg.seq - 1  # frames were dropped: move on
                        continue
                    leg.send_frames(SAT_WINDOW - inflight)
                    await asyncio.sleep(0)

        tasks = [asyncio.ensure_future(flat_out(leg)) for leg in self.legs]
        try:
            await asyncio.sleep(0.5)  # warm-up
            _, r0 = self.totals()
            t0 = time.perf_counter()
            c0 = self._server_cpu()
            await asyncio.sleep(measure_s)
            _, r1 = self.totals()
            seconds = time.perf_counter() - t0
            c1 = self._server_cpu()
        finally:
            stop[0] = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.2)
        return {
            "frames_per_s": round((r1 - r0) / seconds, 1),
            "server_cpu_pct": round(100 * (c1 - c0) / seconds, 1),
        }

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for leg in self.legs:
            leg.ws.transport.abort()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _run(settings: Settings) -> dict[str, Any]:
    plan = _plan(settings)
    raise_nofile(8 * max(plan["cases"]) + 256)
    workdir = settings.workdir / NAME
    out: dict[str, Any] = {
        "frame_bytes": FRAME_BYTES,
        "frame_ms": FRAME_MS,
        "plan": {k: v for k, v in plan.items() if k != "cases"},
        "aim": {"calls": AIM_CALLS, "p99_ms": AIM_P99_MS, "ratio": AIM_RATIO},
        "cores": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "cases": [],
    }
    with (
        ServerProcess.relay(workdir, RELAY_ARGS) as relay,
        ServerProcess.forwarder(workdir) as forwarder,
    ):
        servers = {"relay": relay, "bare": forwarder}
        for n in plan["cases"]:
            case: dict[str, Any] = {"calls": n, "legs": 2 * n}
            for kind in ("bare", "relay"):
                server = servers[kind]
                calls = await Calls.open(kind, server.url, n)
                calls.server = server
                try:
                    case[kind] = await calls.paced(plan["warmup_s"], plan["measure_s"])
                finally:
                    await calls.close()
                server.check_alive()
            out["cases"].append(case)
        sat: dict[str, list[dict[str, Any]]] = {"bare": [], "relay": []}
        loads: dict[str, Calls] = {}
        try:
            for kind in ("bare", "relay"):
                loads[kind] = await Calls.open(kind, servers[kind].url, SAT_CALLS)
                loads[kind].server = servers[kind]
            for index in range(plan["sat_rounds"]):
                order = ("bare", "relay") if index % 2 == 0 else ("relay", "bare")
                for kind in order:
                    sat[kind].append(await loads[kind].saturate(plan["sat_s"]))
                    servers[kind].check_alive()
        finally:
            for calls in loads.values():
                await calls.close()
    rates = {k: sum(r["frames_per_s"] for r in v) / len(v) for k, v in sat.items()}
    out["saturation"] = {
        "calls": SAT_CALLS,
        "window": SAT_WINDOW,
        "bare_frames_per_s": round(rates["bare"], 1),
        "relay_frames_per_s": round(rates["relay"], 1),
        "ratio": round(rates["relay"] / rates["bare"], 3) if rates["bare"] else None,
        "rounds": sat,
    }
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    aim = result["aim"]
    rows = []
    for case in result["cases"]:
        for kind, label in (("bare", "bare forwarder"), ("relay", "relay")):
            c = case[kind]
            ok = ""
            if kind == "relay" and c["p99_ms"] is not None:
                ok = " ✓" if c["p99_ms"] <= aim["p99_ms"] else " ✗"
            rows.append(
                [
                    fmt(case["calls"]),
                    label,
                    fmt(c["p50_ms"], 2),
                    fmt(c["p99_ms"], 2) + ok,
                    fmt(c["max_ms"], 1),
                    f"{100 * (c['loss'] or 0):.3f} %",
                    fmt(c["server_cpu_pct"], 0, " %"),
                    fmt(c["loadgen_cpu_pct"], 0, " %"),
                    fmt(c.get("other_load_cores"), 2),
                    fmt(c.get("late_ticks")),
                ]
            )
    table = md_table(
        [
            "calls",
            "server",
            "p50 delay ms",
            f"p99 delay ms (aim ≤ {aim['p99_ms']:g})",
            "max ms",
            "loss",
            "server CPU",
            "load gen CPU",
            "other load (cores)",
            "load gen ticks > 1 ms late",
        ],
        rows,
    )
    sat = result["saturation"]
    ratio = sat["ratio"]
    ratio_cell = fmt(ratio, 2) + (" ✓" if ratio is not None and ratio >= aim["ratio"] else " ✗")
    sat_table = md_table(
        [
            "saturation",
            "bare forwarder frames/s",
            "relay frames/s",
            f"ratio (aim ≥ {aim['ratio']:g})",
        ],
        [
            [
                f"{sat['calls']} calls, window {sat['window']}",
                fmt(sat["bare_frames_per_s"]),
                fmt(sat["relay_frames_per_s"]),
                ratio_cell,
            ]
        ],
    )
    plan = result["plan"]
    note = (
        f"Each call: two legs, each sending a {result['frame_bytes']}-byte frame every "
        f"{result['frame_ms']} ms (50 frames/s per direction), spread over the period; delay = "
        "send -> receive in the load generator (same clock), frames sent during "
        f"{plan['measure_s']:g} s after {plan['warmup_s']:g} s of warm-up; loss over the whole "
        f"phase. Load generator and servers share {result['cores']} cores."
    )
    if "loadavg_before" in result:
        note += (
            " Load average (1 min) before / after: "
            f"{result['loadavg_before'][0]:g} / {result['loadavg_after'][0]:g}."
        )
    note += (
        " Saturation: the bare forwarder awaits `send` for every frame (plain websockets); "
        "the relay writes without awaiting and joins the frames one loop turn forwards to a "
        "leg into one write, which is why it can forward more than the baseline."
    )
    return f"{note}\n\n{table}\n\n{sat_table}"

"""The load generator: sender -> recipient pairs speaking the relay wire protocol.

One load generator drives both servers, so both are measured the same way:

* relay (``Target.kind == "relay"``): each connection answers the Challenge with an Auth
  signed (nacl Ed25519) over ``wire.auth_message`` and waits for AuthOk. Senders send
  ``Send`` frames to their recipient's identity and read ``Stored``; recipients read
  ``Deliver`` and answer with batched ``Ack`` frames.
* bare forwarder (``kind == "bare"``): each connection sends a hello (role byte + the same
  32-byte identity) instead of authenticating; then the very same encoded ``Send`` frames go
  out, arrive unchanged at the recipient (decoded as Send instead of Deliver), and the
  recipient sends the same batched ``Ack`` frames, which the forwarder reads and drops.

Every body is ``BODY_SIZE`` bytes (like a short encrypted text) and starts with the sender's
``perf_counter_ns`` timestamp; the recipient's receive time minus that is the delivery
latency (both ends are in this process, so the clocks agree).

Each sender keeps at most ``window`` messages in flight: sent and not yet received by its
recipient (the same rule for both servers; the relay's Stored answers are read and counted).
A message the relay refuses (an Error naming its id) frees its slot and is counted as refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.signing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.procs import ServerProcess, machine_busy_seconds
from messenger_tui.core import wire

BODY_SIZE = 200
#: A recipient sends an Ack once it holds this many ids, or at the next flush tick.
ACK_BATCH = 64
ACK_FLUSH_S = 0.02
CONNECT_CONCURRENCY = 64
CONNECT_TIMEOUT_S = 30.0

_now_ns = time.perf_counter_ns


@dataclass(frozen=True)
class Target:
    """Where the load goes: ``kind`` is ``"relay"`` or ``"bare"``."""

    kind: str
    url: str
    relay_key: bytes = b""


@dataclass
class Identity:
    key: nacl.signing.SigningKey
    public: bytes

    @classmethod
    def generate(cls) -> Identity:
        key = nacl.signing.SigningKey.generate()
        return cls(key, bytes(key.verify_key))


class ProtocolFailure(RuntimeError):
    """The server did not answer the handshake as the protocol says."""


async def open_connection(
    target: Target, ident: Identity, role: bytes, pair_key: bytes
) -> ClientConnection:
    """Connect and authenticate as ``ident`` (relay) or say hello (bare forwarder: ``role``
    b"S" or b"R" and ``pair_key``, the recipient's identity, which pairs the two)."""
    ws = await connect(
        target.url,
        compression=None,
        max_size=wire.MAX_FRAME,
        ping_interval=None,  # the servers ping; answering is automatic
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=2.0,
    )
    try:
        if target.kind == "relay":
            await _authenticate(ws, target, ident)
        else:
            await ws.send(role + pair_key)
    except BaseException:
        ws.transport.abort()
        raise
    return ws


async def _authenticate(ws: ClientConnection, target: Target, ident: Identity) -> wire.AuthOk:
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        challenge = wire.decode_relay_frame(await ws.recv())
        if not isinstance(challenge, wire.Challenge):
            raise ProtocolFailure(f"expected Challenge, got {type(challenge).__name__}")
        if target.relay_key and challenge.relay_key != target.relay_key:
            raise ProtocolFailure("Challenge.relay_key differs from the announced relay key")
        time_ms = int(time.time() * 1000)
        message = wire.auth_message(challenge.relay_key, challenge.nonce, ident.public, time_ms)
        signature = ident.key.sign(message).signature
        await ws.send(
            wire.encode(wire.Auth(identity=ident.public, time_ms=time_ms, signature=signature))
        )
        answer = wire.decode_relay_frame(await ws.recv())
    if not isinstance(answer, wire.AuthOk):
        raise ProtocolFailure(f"expected AuthOk, got {answer!r}")
    return answer


async def open_many(
    target: Target,
    specs: Sequence[tuple[Identity, bytes, bytes]],
    concurrency: int = CONNECT_CONCURRENCY,
) -> list[ClientConnection]:
    """Open one connection per (identity, role, pair key), ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    opened: list[ClientConnection | None] = [None] * len(specs)

    async def one(index: int) -> None:
        ident, role, pair_key = specs[index]
        async with gate:
            opened[index] = await open_connection(target, ident, role, pair_key)

    try:
        await asyncio.gather(*(one(i) for i in range(len(specs))))
    except BaseException:
        await close_all([ws for ws in opened if ws is not None])
        raise
    return [ws for ws in opened if ws is not None]


async def close_all(connections: Sequence[ClientConnection], timeout: float = 10.0) -> None:
    """Close connections cleanly (bounded); abort the ones that do not finish in time."""
    if not connections:
        return

    async def one(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.close()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(ws) for ws in connections))
    for ws in connections:
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()


class Pair:
    """One sender connection, one recipient connection, and their counters."""

    __slots__ = (
        "acks",
        "delivered",
        "index",
        "recipient",
        "recipient_ws",
        "refused",
        "sender",
        "sender_ws",
        "sent",
        "stored",
        "window",
    )

    def __init__(
        self,
        index: int,
        sender: Identity,
        recipient: Identity,
        sender_ws: ClientConnection,
        recipient_ws: ClientConnection,
        window: int,
    ) -> None:
        self.index = index
        self.sender = sender
        self.recipient = recipient
        self.sender_ws = sender_ws
        self.recipient_ws = recipient_ws
        self.window = asyncio.Semaphore(window)
        self.acks: list[bytes] = []
        self.sent = 0
        self.delivered = 0
        self.stored = 0
        self.refused = 0


@dataclass
class PhaseResult:
    """What one phase measured. Latencies are in milliseconds."""

    messages: int
    seconds: float
    rate: float
    latencies_ms: list[float] = field(repr=False)
    server_cpu_s: float
    server_loop_cpu_s: float
    loadgen_cpu_s: float
    machine_busy_s: float
    drained: bool
    refused: int
    errors: dict[str, int]
    skipped: int = 0

    def percentile(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    @property
    def other_load_cores(self) -> float:
        """CPU the rest of the machine used meanwhile (other processes), in cores."""
        other = self.machine_busy_s - self.server_cpu_s - self.loadgen_cpu_s
        return max(0.0, other) / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        per_msg = 1e6 / self.messages if self.messages else None
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "msgs_per_s": round(self.rate, 1),
            "p50_ms": _round(self.percentile(0.50)),
            "p99_ms": _round(self.percentile(0.99)),
            "max_ms": _round(max(self.latencies_ms) if self.latencies_ms else None),
            "server_cpu_pct": round(100 * self.server_cpu_s / self.seconds, 1)
            if self.seconds
            else None,
            "loadgen_cpu_pct": round(100 * self.loadgen_cpu_s / self.seconds, 1)
            if self.seconds
            else None,
            "server_loop_cpu_pct": round(100 * self.server_loop_cpu_s / self.seconds, 1)
            if self.seconds
            else None,
            "server_cpu_us_per_msg": round(self.server_cpu_s * per_msg, 1) if per_msg else None,
            "loadgen_cpu_us_per_msg": round(self.loadgen_cpu_s * per_msg, 1) if per_msg else None,
            "other_load_cores": round(self.other_load_cores, 2),
            "drained": self.drained,
            "refused": self.refused,
            "errors": dict(self.errors),
            "skipped": self.skipped,
        }


def merge(results: Sequence[PhaseResult]) -> PhaseResult:
    """One result from several rounds of the same phase (sums; latencies pooled)."""
    seconds = sum(r.seconds for r in results)
    messages = sum(r.messages for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    return PhaseResult(
        messages=messages,
        seconds=seconds,
        rate=messages / seconds if seconds else 0.0,
        latencies_ms=[x for r in results for x in r.latencies_ms],
        server_cpu_s=sum(r.server_cpu_s for r in results),
        server_loop_cpu_s=sum(r.server_loop_cpu_s for r in results),
        loadgen_cpu_s=sum(r.loadgen_cpu_s for r in results),
        machine_busy_s=sum(r.machine_busy_s for r in results),
        drained=all(r.drained for r in results),
        refused=sum(r.refused for r in results),
        errors=dict(errors),
        skipped=sum(r.skipped for r in results),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of unsorted ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Load:
    """Connected pairs against one server, with reader tasks running. Use :meth:`open`."""

    def __init__(
        self,
        target: Target,
        pairs: list[Pair],
        server: ServerProcess,
        body_size: int = BODY_SIZE,
        also: Sequence[ServerProcess] = (),
    ) -> None:
        self.target = target
        self.pairs = pairs
        self.server = server
        #: Every server process whose CPU the phases count (several relay nodes).
        self.servers = (server, *also)
        self._decode: Callable[[bytes], Any] = (
            wire.decode_relay_frame if target.kind == "relay" else wire.decode_client_frame
        )
        self._sent_ns = array("q")
        self._recv_ns = array("q")
        self._dirty: set[Pair] = set()
        self._delivered_total = 0
        self._target_total = -1
        self._reached = asyncio.Event()
        self.errors: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._pad = os.urandom(max(0, body_size - 8))
        self._refused_base = 0

    @classmethod
    async def open(
        cls,
        target: Target,
        n_pairs: int,
        window: int,
        server: ServerProcess,
        body_size: int = BODY_SIZE,
        *,
        recipient_target: Target | None = None,
        also: Sequence[ServerProcess] = (),
    ) -> Load:
        """Generate identities, connect recipients first, then senders; start readers.
        ``recipient_target`` puts the recipients on another server than the senders (another
        relay node of the same deployment); ``also`` names further server processes whose
        CPU is counted with ``server``'s."""
        senders = [Identity.generate() for _ in range(n_pairs)]
        recipients = [Identity.generate() for _ in range(n_pairs)]
        at = recipient_target or target
        recipient_ws = await open_many(at, [(r, b"R", r.public) for r in recipients])
        try:
            specs = [(s, b"S", r.public) for s, r in zip(senders, recipients)]
            sender_ws = await open_many(target, specs)
        except BaseException:
            await close_all(recipient_ws)
            raise
        pairs = [
            Pair(i, senders[i], recipients[i], sender_ws[i], recipient_ws[i], window)
            for i in range(n_pairs)
        ]
        load = cls(target, pairs, server, body_size, also)
        load._start_readers()
        return load

    @property
    def connections(self) -> list[ClientConnection]:
        return [p.sender_ws for p in self.pairs] + [p.recipient_ws for p in self.pairs]

    def _start_readers(self) -> None:
        spawn = asyncio.get_running_loop().create_task
        for pair in self.pairs:
            self._tasks.append(spawn(self._recipient_reader(pair)))
            self._tasks.append(spawn(self._sender_reader(pair)))
        self._tasks.append(spawn(self._ack_flusher()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await close_all(self.connections)

    # ------------------------------------------------------------------------ readers

    async def _recipient_reader(self, pair: Pair) -> None:
        ws = pair.recipient_ws
        decode = self._decode
        sent_ns = self._sent_ns
        recv_ns = self._recv_ns
        release = pair.window.release
        deliver_types = (wire.Deliver, wire.Send)
        encode = wire.encode
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                now = _now_ns()
                frame = decode(data)  # type: ignore[arg-type]
                if type(frame) in deliver_types:
                    sent_ns.append(int.from_bytes(frame.body[:8], "little"))
                    recv_ns.append(now)
                    pair.delivered += 1
                    release()
                    self._delivered_total += 1
                    if self._delivered_total == self._target_total:
                        self._reached.set()
                    acks = pair.acks
                    acks.append(frame.id)
                    if len(acks) >= ACK_BATCH:
                        pair.acks = []
                        await ws.send(encode(wire.Ack(ids=acks)))
                    else:
                        self._dirty.add(pair)
                elif isinstance(frame, wire.Error):
                    self.errors[f"recipient:{frame.code}"] += 1

    async def _sender_reader(self, pair: Pair) -> None:
        if self.target.kind != "relay":
            return  # the forwarder never writes to a sender
        ws = pair.sender_ws
        decode = wire.decode_relay_frame
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                frame = decode(data)
                if type(frame) is wire.Stored:
                    pair.stored += 1
                elif isinstance(frame, wire.Error):
                    self.errors[f"sender:{frame.code}"] += 1
                    if isinstance(frame.ref, bytes):  # a refused Send: free its slot
                        pair.refused += 1
                        pair.window.release()

    async def _ack_flusher(self) -> None:
        encode = wire.encode
        while True:
            await asyncio.sleep(ACK_FLUSH_S)
            dirty, self._dirty = self._dirty, set()
            for pair in dirty:
                if pair.acks:
                    ids, pair.acks = pair.acks, []
                    with contextlib.suppress(ConnectionClosed):
                        await pair.recipient_ws.send(encode(wire.Ack(ids=ids)))

    # ------------------------------------------------------------------------ sending

    async def _send_one(self, pair: Pair, seq: int) -> None:
        body = _now_ns().to_bytes(8, "little") + self._pad
        msg_id = pair.index.to_bytes(4, "big") + seq.to_bytes(12, "big")
        frame = wire.Send(id=msg_id, to=pair.recipient.public, body=body)
        await pair.sender_ws.send(wire.encode(frame))
        pair.sent += 1

    async def _flat_out(self, pair: Pair, stop: asyncio.Event, count: int | None) -> None:
        """Send as fast as the window allows until ``stop`` is set (or ``count`` sent)."""
        acquire = pair.window.acquire
        seq = pair.sent
        limit = seq + count if count is not None else None
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set() and (limit is None or seq < limit):
                await acquire()
                if stop.is_set():
                    pair.window.release()
                    return
                seq += 1
                await self._send_one(pair, seq)

    async def _paced(
        self, pair: Pair, stop: asyncio.Event, start: float, interval: float, skipped: list[int]
    ) -> None:
        """Open loop: one message every ``interval`` seconds (skip if the window is full)."""
        loop = asyncio.get_running_loop()
        next_t = start + random.random() * interval
        seq = pair.sent
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set():
                delay = next_t - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop.is_set():
                    return
                if pair.window.locked():
                    skipped[0] += 1
                else:
                    await pair.window.acquire()
                    seq += 1
                    await self._send_one(pair, seq)
                next_t += interval
                now = loop.time()
                if next_t < now - interval:  # far behind: do not burst to catch up
                    skipped[0] += int((now - next_t) / interval)
                    next_t = now

    # ------------------------------------------------------------------------ phases

    def _cpu_marks(self, marks: dict[str, float], suffix: str) -> None:
        marks["c" + suffix] = sum(s.cpu_seconds() for s in self.servers)
        marks["l" + suffix] = sum(s.loop_cpu_seconds() for s in self.servers)
        marks["g" + suffix] = time.process_time()
        marks["m" + suffix] = machine_busy_seconds()

    def _reset(self) -> None:
        del self._sent_ns[:]
        del self._recv_ns[:]
        self.errors.clear()
        self._refused_base = self._refused()

    @property
    def delivered_total(self) -> int:
        """Deliveries received since the load was opened (every phase)."""
        return self._delivered_total

    def _refused(self) -> int:
        return sum(p.refused for p in self.pairs)

    def _outstanding(self) -> int:
        return sum(p.sent - p.delivered - p.refused for p in self.pairs)

    async def _drain(self, timeout: float) -> bool:
        """Wait until every sent message was delivered (or refused), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._outstanding() > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _run_tasks(
        self, coros: Sequence[Awaitable[None]], body: Callable[[], Awaitable[None]]
    ) -> None:
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            await body()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def saturate(self, warmup_s: float, measure_s: float, drain_s: float) -> PhaseResult:
        """Closed loop, every sender flat out within its window. Throughput and latency of
        the deliveries received during the measurement window (after a warm-up)."""
        self._reset()
        stop = asyncio.Event()
        marks: dict[str, float] = {}

        async def body() -> None:
            await asyncio.sleep(warmup_s)
            marks["i0"], marks["t0"] = len(self._recv_ns), _now_ns()
            self._cpu_marks(marks, "0")
            await asyncio.sleep(measure_s)
            marks["i1"], marks["t1"] = len(self._recv_ns), _now_ns()
            self._cpu_marks(marks, "1")
            stop.set()
            marks["drained"] = float(await self._drain(drain_s))

        await self._run_tasks([self._flat_out(p, stop, None) for p in self.pairs], body)
        i0, i1 = int(marks["i0"]), int(marks["i1"])
        seconds = (marks["t1"] - marks["t0"]) / 1e9
        latencies = [(self._recv_ns[i] - self._sent_ns[i]) / 1e6 for i in range(i0, i1)]
        return self._result(
            marks,
            messages=i1 - i0,
            seconds=seconds,
            rate=(i1 - i0) / seconds,
            latencies_ms=latencies,
        )

    def _result(self, marks: dict[str, float], **fields: Any) -> PhaseResult:
        """A phase's result: its own figures plus the CPU, drain and refusal marks every
        phase records the same way."""
        return PhaseResult(
            server_cpu_s=marks["c1"] - marks["c0"],
            server_loop_cpu_s=marks["l1"] - marks["l0"],
            loadgen_cpu_s=marks["g1"] - marks["g0"],
            machine_busy_s=marks["m1"] - marks["m0"],
            drained=bool(marks["drained"]),
            refused=self._refused() - self._refused_base,
            errors=dict(self.errors),
            **fields,
        )

    async def paced(
        self, rate: float, warmup_s: float, measure_s: float, drain_s: float
    ) -> PhaseResult:
        """Open loop at ``rate`` messages/s in total: latency of the messages *sent* during
        the measurement window, at a load well below saturation."""
        self._reset()
        stop = asyncio.Event()
        skipped = [0]
        marks: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        interval = len(self.pairs) / rate
        start = loop.time()

        async def body() -> None:
            await asyncio.sleep(warmup_s)
            skipped[0] = 0
            marks["t0"] = _now_ns()
            self._cpu_marks(marks, "0")
            await asyncio.sleep(measure_s)
            marks["t1"] = _now_ns()
            self._cpu_marks(marks, "1")
            marks["skipped"] = skipped[0]
            stop.set()
            marks["drained"] = float(await self._drain(drain_s))

        coros = [self._paced(p, stop, start, interval, skipped) for p in self.pairs]
        await self._run_tasks(coros, body)
        t0, t1 = marks["t0"], marks["t1"]
        latencies = [(r - s) / 1e6 for s, r in zip(self._sent_ns, self._recv_ns) if t0 <= s < t1]
        seconds = (t1 - t0) / 1e9
        return self._result(
            marks,
            messages=len(latencies),
            seconds=seconds,
            rate=len(latencies) / seconds,
            latencies_ms=latencies,
            skipped=int(marks["skipped"]),
        )

    async def fixed(self, count_per_pair: int, timeout: float) -> PhaseResult:
        """Send exactly ``count_per_pair`` per sender as fast as the window allows; time from
        the first send to the last delivery."""
        self._reset()
        stop = asyncio.Event()
        total = count_per_pair * len(self.pairs)
        self._reached.clear()
        self._target_total = self._delivered_total + total
        marks: dict[str, float] = {}

        async def body() -> None:
            try:
                async with asyncio.timeout(timeout):
                    await self._reached.wait()
                marks["drained"] = 1.0
            except TimeoutError:
                marks["drained"] = 0.0
            stop.set()

        marks["t0"] = _now_ns()
        self._cpu_marks(marks, "0")
        coros = [self._flat_out(p, stop, count_per_pair) for p in self.pairs]
        await self._run_tasks(coros, body)
        self._cpu_marks(marks, "1")
        self._target_total = -1
        n = len(self._recv_ns)
        t1 = self._recv_ns[-1] if n else _now_ns()
        seconds = (t1 - marks["t0"]) / 1e9
        latencies = [(r - s) / 1e6 for s, r in zip(self._sent_ns, self._recv_ns)]
        return self._result(
            marks,
            messages=n,
            seconds=seconds,
            rate=n / seconds if seconds > 0 else 0.0,
            latencies_ms=latencies,
        )

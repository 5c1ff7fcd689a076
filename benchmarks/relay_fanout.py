"""Relay fan-out for a 256-member group beside 1:1 sends, in the same run.

One relay subprocess (``ServerProcess.relay``), 256 recipient connections and one sender
connection in this process, ~200-byte bodies. Two modes, alternating rounds:

* group: the sender uploads each message once with ``SendMulti`` to all 256 recipients
  (a window of ``GROUP_WINDOW`` uploads awaiting their ``StoredMulti``);
* 1:1: the sender sends each message to each recipient with ``Send`` (a window of
  ``GROUP_WINDOW * 256`` sends awaiting their ``Stored``: the same deliveries in flight).

Every recipient acks each Deliver at once, in both modes. A round's deliveries per second =
deliveries received / time from the first send to the last delivery; the relay's CPU per
delivery comes from /proc. The figure of merit is group / 1:1 deliveries per second (aim:
at least 0.5); the sender's bytes uploaded per message are reported beside.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import nacl.signing
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, cpu_seconds, raise_nofile
from messenger_tui.core import wire

NAME = "relay_fanout"
TITLE = "Relay fan-out to a 256-member group"
AIM_RATIO = 0.5
MEMBERS = 256
BODY_SIZE = 200
GROUP_WINDOW = 4


class _Conn:
    """One authenticated connection; counts its deliveries and acks each at once."""

    def __init__(self, ws: ClientConnection, identity: bytes) -> None:
        self.ws = ws
        self.identity = identity
        self.answers: asyncio.Queue[wire.RelayFrame] = asyncio.Queue()
        self.received = 0

    @classmethod
    async def open(cls, url: str) -> _Conn:
        key = nacl.signing.SigningKey.generate()
        identity = bytes(key.verify_key)
        ws = await connect(url, compression=None, max_size=None, ping_interval=None)
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        now = time.time_ns() // 1_000_000
        message = wire.auth_message(challenge.relay_key, challenge.nonce, identity, now)
        signature = key.sign(message).signature
        await ws.send(wire.encode(wire.Auth(identity=identity, time_ms=now, signature=signature)))
        ok = wire.decode_relay_frame(await ws.recv())
        assert isinstance(ok, wire.AuthOk), ok
        return cls(ws, identity)

    async def read(self, on_delivery: Any) -> None:
        async for data in self.ws:
            frame = wire.decode_relay_frame(data)
            if isinstance(frame, wire.Deliver):
                self.received += 1
                await self.ws.send(wire.encode(wire.Ack(ids=[frame.id])))
                on_delivery()
            elif isinstance(frame, wire.Stored | wire.StoredMulti | wire.Error):
                self.answers.put_nowait(frame)


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def _round(
    mode: str, sender: _Conn, members: list[_Conn], messages: int, counter: _Counter, pid: int
) -> dict[str, Any]:
    body = os.urandom(BODY_SIZE)
    counter.count = 0
    counter.target = messages * len(members)
    counter.done.clear()
    uploaded = 0
    cpu0 = cpu_seconds(pid)
    started = time.perf_counter()
    if mode == "group":
        recipients = [wire.MultiRecipient(m.identity) for m in members]
        in_flight = 0
        for _ in range(messages):
            if in_flight >= GROUP_WINDOW:
                answer = await sender.answers.get()
                assert isinstance(answer, wire.StoredMulti), answer
                in_flight -= 1
            data = wire.encode(wire.SendMulti(id=os.urandom(16), body=body, to=recipients))
            uploaded += len(data)
            await sender.ws.send(data)
            in_flight += 1
    else:
        window = GROUP_WINDOW * len(members)
        in_flight = 0
        for _ in range(messages):
            for member in members:
                if in_flight >= window:
                    answer = await sender.answers.get()
                    assert isinstance(answer, wire.Stored), answer
                    in_flight -= 1
                data = wire.encode(wire.Send(id=os.urandom(16), to=member.identity, body=body))
                uploaded += len(data)
                await sender.ws.send(data)
                in_flight += 1
    await asyncio.wait_for(counter.done.wait(), timeout=120)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu0
    while not sender.answers.empty() or in_flight:
        await asyncio.wait_for(sender.answers.get(), timeout=30)
        in_flight -= 1
    deliveries = counter.count
    return {
        "mode": mode,
        "deliveries": deliveries,
        "seconds": elapsed,
        "deliveries_per_s": deliveries / elapsed,
        "relay_cpu_us_per_delivery": 1e6 * cpu / deliveries,
        "uploaded_bytes_per_message": uploaded / messages,
    }


async def _run(settings: Settings) -> dict[str, Any]:
    messages = 10 if settings.quick else 60
    rounds = 1 if settings.quick else 3
    raise_nofile(4 * MEMBERS + 256)
    workdir = settings.workdir / NAME
    results: list[dict[str, Any]] = []
    extra = (*RELAY_BENCH_ARGS, "--new-identities-per-hour", "1000000")
    with ServerProcess.relay(workdir, extra) as relay:
        counter = _Counter()
        sender = await _Conn.open(relay.url)
        members = [await _Conn.open(relay.url) for _ in range(MEMBERS)]
        readers = [asyncio.create_task(c.read(counter.hit)) for c in [sender, *members]]
        try:
            # Warm-up: one round of each, not counted.
            for mode in ("group", "1:1"):
                await _round(mode, sender, members, 2, counter, relay.pid)
            for _ in range(rounds):
                for mode in ("group", "1:1"):
                    results.append(
                        await _round(mode, sender, members, messages, counter, relay.pid)
                    )
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for conn in [sender, *members]:
                await conn.ws.close()

    def pooled(mode: str) -> dict[str, Any]:
        mine = [r for r in results if r["mode"] == mode]
        deliveries = sum(r["deliveries"] for r in mine)
        seconds = sum(r["seconds"] for r in mine)
        return {
            "deliveries": deliveries,
            "deliveries_per_s": deliveries / seconds,
            "relay_cpu_us_per_delivery": sum(
                r["relay_cpu_us_per_delivery"] * r["deliveries"] for r in mine
            )
            / deliveries,
            "uploaded_bytes_per_message": mine[0]["uploaded_bytes_per_message"],
        }

    group, pairwise = pooled("group"), pooled("1:1")
    return {
        "members": MEMBERS,
        "body_bytes": BODY_SIZE,
        "messages_per_round": messages,
        "rounds": rounds,
        "aim_ratio": AIM_RATIO,
        "group": group,
        "pairwise": pairwise,
        "ratio": group["deliveries_per_s"] / pairwise["deliveries_per_s"],
        "rounds_raw": results,
    }


def run(settings: Settings) -> dict[str, Any]:
    return asyncio.run(_run(settings))


def render(result: dict[str, Any]) -> str:
    ratio = result["ratio"]
    rows = []
    for label, key in (("SendMulti (one upload)", "group"), ("Send per member (1:1)", "pairwise")):
        entry = result[key]
        cell = ""
        if key == "group":
            cell = fmt(ratio, 2) + (" ✓" if ratio >= result["aim_ratio"] else " ✗")
        rows.append(
            [
                label,
                fmt(entry["deliveries"]),
                fmt(entry["deliveries_per_s"]),
                cell,
                fmt(entry["relay_cpu_us_per_delivery"]),
                fmt(entry["uploaded_bytes_per_message"]),
            ]
        )
    table = md_table(
        [
            "send",
            "deliveries",
            "deliveries/s",
            "group/1:1",
            "relay CPU µs/delivery",
            "sender bytes up/message",
        ],
        rows,
        "lrrrrr",
    )
    return (
        f"{result['members']} recipients, {result['body_bytes']}-byte bodies, "
        f"{result['messages_per_round']} messages x {result['rounds']} alternating rounds per "
        f"mode; every Deliver acked at once. Aim: group/1:1 ≥ {result['aim_ratio']}.\n\n" + table
    )

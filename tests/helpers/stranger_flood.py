"""A stranger flood in its own process: N fresh identities send message requests to a victim.

    python -m tests.helpers.stranger_flood URL VICTIM_HEX [--identities 20] [--seconds 30]
        [--source 127.0.0.2] [--spread]

Each identity connects (loopback relays only; from the loopback address ``--source``, so the
relay sees the flood come from one address of its own, as from one attacker), then pipelines
Sends of ``--body`` bytes to the victim in bursts of 50 every 5 ms, reading every answer; when
the relay closes the connection it reconnects with the same identity and carries on. Once every
identity is online the script prints ``ready`` on stdout; it stops after ``--seconds``, or on
SIGTERM/SIGINT or stdin EOF, and then prints one JSON line: ``{"sent": ..., "connects": ...,
"refused": ..., "stored": ..., "closed_by_relay": ...}``. With ``--spread`` every Send goes to
a fresh random recipient instead, so each one is stored: a storage flood.

Tests run it as a subprocess (:class:`FloodProcess`) so the flood competes with the relay, not
with the probe client in the test's own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from tests.helpers.relay_wire_client import WireClient, new_id, new_key

BURST = 50
PAUSE_S = 0.005
MAX_IDENTITIES = 200
MAX_SECONDS = 120.0


@dataclass
class FloodStats:
    sent: int = 0
    connects: int = 0
    refused: int = 0
    stored: int = 0
    closed_by_relay: int = 0


def _loopback_only(host: str, what: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"stranger_flood: refusing a non-loopback {what} {host!r}")


async def _reader(client: WireClient, stats: FloodStats) -> None:
    while True:
        frame = await client.recv(3600.0)
        if isinstance(frame, wire.Stored):
            stats.stored += 1
        elif isinstance(frame, wire.Error) and isinstance(frame.ref, bytes):
            stats.refused += 1


async def _flooder(
    url: str,
    source: str | None,
    victim: bytes | None,
    body: bytes,
    stats: FloodStats,
    online: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    key = new_key()
    first = True
    while not stop.is_set():
        try:
            client = await WireClient.connect(url, key, source=source)
        except (OSError, ConnectionClosed, TimeoutError, AssertionError):
            await asyncio.sleep(0.05)  # refused (rate limited) or relay busy: try again
            continue
        stats.connects += 1
        if first:
            first = False
            online.set()
        read = asyncio.get_running_loop().create_task(_reader(client, stats))
        try:
            while not stop.is_set():
                for _ in range(BURST):
                    to = os.urandom(wire.KEY_LEN) if victim is None else victim
                    await client.send(wire.Send(id=new_id(), to=to, body=body))
                    stats.sent += 1
                await asyncio.sleep(PAUSE_S)
        except ConnectionClosed:
            stats.closed_by_relay += 1
        finally:
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)
            client.ws.transport.abort()  # a paced connection may not read a close frame


async def flood(
    url: str,
    source: str | None,
    victim: bytes | None,
    identities: int,
    seconds: float,
    body_len: int,
) -> None:
    stats = FloodStats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 1) else stop.set())
    body = os.urandom(body_len)
    onlines = [asyncio.Event() for _ in range(identities)]
    tasks = [
        loop.create_task(_flooder(url, source, victim, body, stats, onlines[n], stop))
        for n in range(identities)
    ]
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(event.wait() for event in onlines))
            print("ready", flush=True)
            await stop.wait()
    except TimeoutError:
        pass
    stop.set()
    # A flooder the relay stopped reading from waits in send(): give them a moment, then
    # cancel the rest.
    _, pending = await asyncio.wait(tasks, timeout=0.5)
    for task in pending:
        task.cancel()
    # The counts go out before the last connections finish closing: a connection the relay
    # paced can take a while to wind down, and the caller kills this process 10 s after
    # asking it to stop (the counts stay readable in the pipe).
    if pending:
        await asyncio.wait(pending, timeout=2.0)
    print(json.dumps(asdict(stats)), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.helpers.stranger_flood")
    p.add_argument("url", help="ws://127.0.0.1:PORT (loopback only)")
    p.add_argument("victim", help="the victim's identity key, hex")
    p.add_argument("--identities", type=int, default=20)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--body", type=int, default=1024, help="envelope body bytes")
    p.add_argument("--source", help="local loopback address to connect from (127.0.0.2)")
    p.add_argument("--spread", action="store_true", help="send to random recipients instead")
    args = p.parse_args()
    _loopback_only(urlsplit(args.url).hostname or "", "relay")
    if args.source is not None:
        _loopback_only(args.source, "source address")
    if not 1 <= args.identities <= MAX_IDENTITIES or not 0 < args.seconds <= MAX_SECONDS:
        raise SystemExit(f"stranger_flood: 1..{MAX_IDENTITIES} identities, 0..{MAX_SECONDS} s")
    victim = None if args.spread else bytes.fromhex(args.victim)
    asyncio.run(flood(args.url, args.source, victim, args.identities, args.seconds, args.body))


class FloodProcess:
    """Run the flood as a subprocess: ``with FloodProcess(url, victim) as f: await
    f.wait_ready()``; leaving the block stops it; ``stats`` holds its final counts."""

    def __init__(
        self,
        url: str,
        victim: bytes,
        *,
        identities: int = 20,
        seconds: float = 60.0,
        source: str | None = None,
        body: int = 1024,
        spread: bool = False,
    ) -> None:
        self._cmd = [
            sys.executable,
            "-m",
            "tests.helpers.stranger_flood",
            url,
            victim.hex(),
            "--identities",
            str(identities),
            "--seconds",
            str(seconds),
            "--body",
            str(body),
            *([] if source is None else ["--source", source]),
            *(["--spread"] if spread else []),
        ]
        self._proc: subprocess.Popen[str] | None = None
        self.stats: FloodStats | None = None

    def __enter__(self) -> FloodProcess:
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            self._cmd,
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every flooding identity is online (raises RuntimeError otherwise)."""
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self._proc.stdout.readline), timeout)
        if line.strip() != "ready":
            raise RuntimeError(f"the flood did not start: {line!r}")

    def stop(self) -> FloodStats:
        """Stop the flood (stdin EOF, then SIGKILL after 10 s) and return its counts."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        if self.stats is None:
            start = time.monotonic()
            proc.stdin.close()  # the script prints a line or two: no pipe can fill up
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out = proc.stdout.read()
            proc.stdout.close()
            lines = [line for line in out.splitlines() if line.startswith("{")]
            self.stats = FloodStats(**json.loads(lines[-1])) if lines else FloodStats()
            self.stop_seconds = time.monotonic() - start
        return self.stats

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()

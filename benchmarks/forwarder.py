"""The baseline: a bare websockets forwarder (no auth, no storage, no protocol).

``python -m benchmarks.forwarder [--port 0]`` prints ``forwarder listening on ws://HOST:PORT``
once it listens and runs until SIGTERM/SIGINT.

Each connection's first message is a hello: one role byte (``R`` recipient, ``S`` sender)
followed by a pairing key (the 32-byte identity the load generator also uses with the relay).
After that, every binary message from a sender is forwarded unchanged to the recipient
connection registered under the same key; everything a recipient sends (its batched Acks) is
read and dropped.

Call media (``benchmarks/calls_relay.py``): role ``M``, then one leg byte (0 or 1) and a
32-byte token. The two legs that show the same token are paired, and every message from one
is forwarded unchanged to the other (dropped while the other is absent): the relay's media
route without authentication, join frames, limits or counters.

The websockets settings mirror the relay's (messenger_tui/relay/server.py):
no compression, the same ``max_size``, ``max_queue``, ``write_limit`` and keepalive, so the
difference between the two is the relay's own work (auth, storage, delivery bookkeeping).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from messenger_tui.core.wire import MAX_FRAME

#: Same values as messenger_tui/relay/server.py (MAX_QUEUE, WRITE_LIMIT) and RelayConfig.
MAX_QUEUE = (32, 8)
WRITE_LIMIT = (64 * 1024, 16 * 1024)
PING_INTERVAL_S = 20.0

_recipients: dict[bytes, ServerConnection] = {}
_media_legs: dict[bytes, list[ServerConnection | None]] = {}


async def _media_leg(ws: ServerConnection, leg: int, token: bytes) -> None:
    legs = _media_legs.setdefault(token, [None, None])
    legs[leg] = ws
    other = 1 - leg
    try:
        async for message in ws:
            peer = legs[other]
            if peer is not None:
                try:
                    await peer.send(message)
                except ConnectionClosed:
                    pass
    finally:
        if legs[leg] is ws:
            legs[leg] = None
        if legs[0] is None and legs[1] is None and _media_legs.get(token) is legs:
            del _media_legs[token]


async def _handle(ws: ServerConnection) -> None:
    try:
        hello = await asyncio.wait_for(ws.recv(), 30.0)
    except (TimeoutError, ConnectionClosed):
        return
    if not isinstance(hello, bytes) or len(hello) < 2:
        await ws.close(1008, "bad hello")
        return
    role, key = hello[:1], hello[1:]
    try:
        if role == b"R":
            _recipients[key] = ws
            try:
                async for _ in ws:  # batched acks: read and dropped
                    pass
            finally:
                if _recipients.get(key) is ws:
                    del _recipients[key]
        elif role == b"M" and len(key) == 33 and key[0] in (0, 1):
            await _media_leg(ws, key[0], key[1:])
        elif role == b"S":
            async for message in ws:
                peer = _recipients.get(key)
                if peer is not None:
                    try:
                        await peer.send(message)
                    except ConnectionClosed:
                        pass
        else:
            await ws.close(1008, "bad role")
    except ConnectionClosed:
        pass


async def _main(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        _handle,
        host,
        port,
        compression=None,
        max_size=MAX_FRAME,
        max_queue=MAX_QUEUE,
        write_limit=WRITE_LIMIT,
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_INTERVAL_S,
    ) as server:
        bound = server.sockets[0].getsockname()
        print(f"forwarder listening on ws://{bound[0]}:{bound[1]}", flush=True)
        await stop.wait()
        server.close(close_connections=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forwarder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_main(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

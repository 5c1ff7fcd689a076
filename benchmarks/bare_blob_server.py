"""The file-transfer baseline: a bare websockets server that stores an upload in a file and
streams it back (no auth, no index, no quotas, no encryption).

``python -m benchmarks.bare_blob_server --dir DIR`` prints ``bare blob server listening on
ws://HOST:PORT`` and runs until SIGTERM. Path ``/up``: every binary message is appended to
``DIR/blob`` (written with ``os.write`` in a worker thread, as the relay's blob store does)
and acknowledged by an 8-byte count; an empty message ends the upload (fsync). Path
``/down``: the file is sent back in 64 KiB messages, then an empty one. Websockets settings as
the relay's blob route: no compression, 257 KiB messages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

CHUNK = 64 * 1024
MAX_SIZE = 257 * 1024


async def _handle(ws: ServerConnection, folder: Path) -> None:
    path = folder / "blob"
    if ws.request is not None and ws.request.path == "/up":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            held = 0
            async for message in ws:
                data = message if isinstance(message, bytes) else message.encode()
                if not data:
                    await asyncio.to_thread(os.fsync, fd)
                    await ws.send(held.to_bytes(8, "big"))
                    break
                await asyncio.to_thread(os.write, fd, data)
                held += len(data)
                await ws.send(held.to_bytes(8, "big"))
        finally:
            os.close(fd)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while data := await asyncio.to_thread(os.pread, fd, CHUNK, offset):
            await ws.send(data)
            offset += len(data)
        await ws.send(b"")
    finally:
        os.close(fd)


async def _main(folder: Path) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(
        lambda ws: _handle(ws, folder),
        "127.0.0.1",
        0,
        compression=None,
        max_size=MAX_SIZE,
        max_queue=16,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"bare blob server listening on ws://127.0.0.1:{port}", flush=True)
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_blob_server")
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_main(args.dir))


if __name__ == "__main__":
    main()

"""Upload a file to a relay's blob route from its own process (so a test measuring chat
latency in its own process is not slowed by the uploader's event loop).

    python -m tests.helpers.blob_upload_process URL FILE

prints ``started`` once connected, ``progress DONE TOTAL`` about every MiB, then ``done ID``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import nacl.signing

from messenger_tui.transport.blob_link import BlobLink


async def main(url: str, path: Path) -> None:
    key = nacl.signing.SigningKey.generate()
    link = BlobLink(url, bytes(key.verify_key), lambda m: key.sign(m).signature)
    last = [-1]

    def progress(done: int, total: int) -> None:
        if last[0] < 0:
            print("started", flush=True)
        if done - last[0] >= 1 << 20 or done == total:
            last[0] = done
            print(f"progress {done} {total}", flush=True)

    sent = await link.upload(path, on_progress=progress)
    print(f"done {sent.id.hex()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))

"""Soak the relay's frame decoding with malformed frames (``make fuzz``).

``python -m benchmarks.frame_soak [--frames N] [--connections C]`` starts a real relay process
(``--max-malformed`` raised so a connection is not closed after 20 bad frames, and the
per-address cap off), then C connections on the message link (before and after
authentication) and the media route (after authentication and after the join) send N
malformed frames in all, as fast as the relay answers: random bytes, truncated and bit-flipped
valid frames, wrong types, unknown tags, nesting past the recursion limit (1,100 to 5,000
levels), huge integers. Each side reads the relay's answers concurrently. Reports
frames/s, the relay's RSS before / peak / after, and crashes: the process dying, a close
other than 1000/1008, an answer other than an Error,
or a traceback in relay.log or stderr. Exit status 1 on any crash.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import media_wire, wire
from tests.helpers.relay_process import RelayProcess
from tests.helpers.relay_wire_client import make_auth, new_id, new_key

DEFAULT_FRAMES = 1_000_000


def _valid_frames() -> list[bytes]:
    key = os.urandom(32)
    return [
        wire.encode(wire.Send(id=new_id(), to=key, body=b"b" * 40)),
        wire.encode(wire.Ack(ids=[new_id(), new_id()])),
        wire.encode(wire.Subscribe(identities=[key])),
        wire.encode(wire.FetchBundle(ref=7, identity=key)),
        wire.encode(wire.Auth(identity=key, time_ms=1, signature=b"s" * 64)),
        media_wire.encode_media_control(media_wire.MediaJoin(token=key, leg=0)),
    ]


def malformed_frames(rng: random.Random, count: int, limit: int) -> list[bytes]:
    """``count`` frames that are not valid client frames (of at most ``limit`` bytes)."""
    valid = _valid_frames()
    out: list[bytes] = []
    while len(out) < count:
        kind = rng.randrange(7)
        base = rng.choice(valid)
        if kind == 0:
            frame = rng.randbytes(rng.randrange(1, 200))
        elif kind == 1:
            frame = base[: rng.randrange(1, len(base))]
        elif kind == 2:
            b = bytearray(base)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            frame = bytes(b)
        elif kind == 3:  # a field of the wrong type
            frame = b"\x83\xa1t\xa4send\xa2id\x92\x01\x02\xa2to\xcf" + rng.randbytes(8)
        elif kind == 4:  # an unknown tag
            frame = b"\x81\xa1t\xa4" + rng.randbytes(4)
        elif kind == 5:  # nesting deeper than the recursion limit
            depth = min(limit - 16, rng.choice((1_100, 2_000, 5_000)))
            frame = b"\x82\xa1t\xa4auth\xa1x" + b"\x91" * depth + b"\xc0"
        else:  # huge integers and a negative length-prefixed blob
            frame = b"\x83\xa1t\xacfetch_bundle\xa3ref\xcf" + b"\xff" * 8 + b"\xa8identity\xc4\x20"
        if frame[:1] != b"\x01":  # 0x01 is a media frame, forwarded opaque, not decoded
            out.append(frame[:limit])
    return out


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.answers = 0
        self.codes: dict[str, int] = {}
        self.crashes: list[str] = []
        self.reconnects = 0


async def _session(url: str, route: str, frames: list[bytes], tally: Tally) -> None:
    """Send ``frames`` on one route, reconnecting whenever the relay closes the link."""
    index = 0
    while index < len(frames):
        path = media_wire.MEDIA_PATH if route.startswith("media") else ""
        ws = await connect(url + path, compression=None, max_size=None, ping_interval=None)
        tally.reconnects += 1
        challenge = wire.decode_relay_frame(await ws.recv())
        assert isinstance(challenge, wire.Challenge)
        if route != "link-preauth":
            key = new_key()
            await ws.send(wire.encode(make_auth(key, challenge)))
            await ws.recv()  # AuthOk
            if route == "media-joined":
                join = media_wire.MediaJoin(token=os.urandom(32), leg=0)
                await ws.send(media_wire.encode_media_control(join))
                await ws.recv()

        decode = (
            media_wire.decode_media_relay_frame
            if route.startswith("media")
            else wire.decode_relay_frame
        )

        async def reader(ws: Any = ws, decode: Any = decode) -> None:
            try:
                async for data in ws:
                    try:
                        frame = decode(data)
                    except Exception as exc:
                        tally.crashes.append(f"undecodable answer on {route}: {exc}")
                        continue
                    if isinstance(frame, wire.Error):
                        tally.answers += 1
                        tally.codes[frame.code] = tally.codes.get(frame.code, 0) + 1
            except ConnectionClosed:
                pass

        task = asyncio.create_task(reader())
        try:
            while index < len(frames):
                await ws.send(frames[index])
                index += 1
                tally.sent += 1
        except ConnectionClosed:
            pass
        await ws.close()
        await task
        code = ws.close_code
        if code not in (1000, 1008, 4001, None):
            tally.crashes.append(f"{route}: closed with {code}")


async def soak(frames: int, connections: int) -> dict[str, Any]:
    rng = random.Random(11)
    routes = ["link-preauth", "link-auth", "media-auth", "media-joined"]
    with tempfile.TemporaryDirectory(prefix="frame-soak-") as tmp:
        args = ["--max-malformed", str(10**9), "--max-connections-per-address", "0"]
        args += ["--log-level", "WARNING"]
        with RelayProcess(Path(tmp) / "data", extra_args=args) as relay:
            per = frames // connections
            plans = []
            for i in range(connections):
                route = routes[i % len(routes)]
                limit = 8_000 if route.startswith("media") else 120_000
                pool = malformed_frames(rng, 2_000, limit)
                plans.append((route, [pool[j % len(pool)] for j in range(per)]))
            status = Path(f"/proc/{relay.pid}/status")

            def rss() -> int:
                lines = status.read_text().splitlines()
                return int(next(line.split()[1] for line in lines if line.startswith("VmRSS:")))

            before = rss()
            peak = before
            tally = Tally()
            done = False

            async def watch() -> None:
                nonlocal peak
                while not done:
                    peak = max(peak, rss())
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            start = time.perf_counter()
            await asyncio.gather(*(_session(relay.url, r, f, tally) for r, f in plans))
            elapsed = time.perf_counter() - start
            done = True
            await watcher
            await asyncio.sleep(1.0)
            after = rss()
            alive = relay.running
            logs = relay.log_text() + relay.stderr_text()
            if not alive:
                tally.crashes.append("relay process died")
            if "Traceback" in logs:
                tally.crashes.append("traceback in relay.log or stderr")
    return {
        "frames": tally.sent,
        "seconds": round(elapsed, 1),
        "frames_per_s": round(tally.sent / elapsed),
        "answers": tally.answers,
        "answer_codes": tally.codes,
        "connections": connections,
        "reconnects": tally.reconnects,
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "crashes": tally.crashes[:20],
        "crash_count": len(tally.crashes),
    }


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.frame_soak", description=__doc__)
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args()
    result = asyncio.run(soak(args.frames, args.connections))
    print(json.dumps(result, indent=2))
    return 1 if result["crash_count"] else 0


if __name__ == "__main__":
    sys.exit(main())

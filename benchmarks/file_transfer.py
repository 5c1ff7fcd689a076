"""File transfer through the relay beside a bare websockets bulk copy of the same bytes.

In one run, over one random file on disk:

- **ours, send**: ``MessengerService.send_file`` from an in-process client to a real relay
  subprocess: seal into the spool file while uploading it (the upload follows the sealing)
  on the blob route (64 KiB chunks, window of 8, acknowledged), queue the pointer; until the
  transfer is ``done``.
- **ours, receive**: the other in-process client fetches the blob while checking every
  chunk and the digest and decrypting (the check follows the fetch), and saves the file;
  until its transfer is ``done``.
- **ours before, send / receive**: the same through a second relay with ``--blob-read-ahead
  0`` (each chunk read after the previous one went out) and bob writing every 64 KiB frame
  on its own (``write_batch``), as before the receive pass: before/after in one run.
- **baseline, up / down**: ``benchmarks/bare_blob_server.py``, a websockets server that only
  writes what it receives to a file (acknowledging each 64 KiB message) and streams it back:
  the floor of any upload/download over websockets on this machine.

Rate = file MiB / wall seconds. Client CPU per MiB = ``time.process_time`` of this process
(the client's event loop and its worker threads) per MiB of file.

    python -m benchmarks.file_transfer [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import ServerProcess
from messenger_tui.app.profile import create_profile
from messenger_tui.app.service import MessengerService

NAME = "file_transfer"
TITLE = "File transfer through the relay"
MIB = 1024 * 1024
CHUNK = 64 * 1024
WINDOW = 8


def _file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
    return path


def _row(name: str, size: int, wall: float, cpu: float) -> dict[str, Any]:
    mib = size / MIB
    return {
        "name": name,
        "wall_s": round(wall, 3),
        "mib_per_s": round(mib / wall, 1),
        "cpu_ms_per_mib": round(1000 * cpu / mib, 1),
    }


async def _bare(url: str, src: Path, dest: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    size = src.stat().st_size
    cpu, wall = time.process_time(), time.perf_counter()
    async with connect(url + "/up", compression=None, max_size=None) as ws:
        with src.open("rb") as f:
            inflight = 0
            while data := await asyncio.to_thread(f.read, CHUNK):
                await ws.send(data)
                inflight += 1
                if inflight >= WINDOW:
                    await ws.recv()
                    inflight -= 1
        await ws.send(b"")
        for _ in range(inflight + 1):
            await ws.recv()
    up = _row("baseline, up (bare websockets)", size, time.perf_counter() - wall,
              time.process_time() - cpu)  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    async with connect(url + "/down", compression=None, max_size=None) as ws:
        with dest.open("wb") as out:
            while piece := await ws.recv():
                await asyncio.to_thread(
                    out.write, piece.encode() if isinstance(piece, str) else piece
                )
    down = _row("baseline, down (bare websockets)", size, time.perf_counter() - wall,
                time.process_time() - cpu)  # fmt: skip
    return up, down


async def _ours(
    workdir: Path, url: str, src: Path, label: str, write_batch: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send and receive through the relay at ``url``; ``write_batch``: bob's download write
    batch (None: the client's default)."""
    size = src.stat().st_size
    alice = MessengerService(create_profile(workdir / "alice", "alice", url, None))
    bob = MessengerService(create_profile(workdir / "bob", "bob", url, None))
    try:
        alice.add_contact(bob.address, "bob")
        bob.add_contact(alice.address, "alice")
        bob.set_download_dir(workdir / "downloads")
        bob.transfer_manager.download_all = True
        if write_batch is not None:
            bob.transfer_manager.blob_link_options["write_batch"] = write_batch
        await alice.start()
        await bob.start()
        cpu, wall = time.process_time(), time.perf_counter()
        sent = await alice.send_file(alice.contact("bob").id, src)
        done = await alice.wait_transfer(sent.id, 600)
        up = _row(f"ours{label}, send (seal + upload)", size, time.perf_counter() - wall,
                  time.process_time() - cpu)  # fmt: skip
        assert done.status == "done", done.error
        deadline = time.monotonic() + 120
        cpu, wall = time.process_time(), time.perf_counter()
        while not any(t.direction == "down" for t in bob.transfers()):
            if time.monotonic() > deadline:
                raise RuntimeError("the file's message never arrived")
            await asyncio.sleep(0.01)
        got = next(t for t in bob.transfers() if t.direction == "down")
        final = await bob.wait_transfer(got.id, 600)
        down = _row(f"ours{label}, receive (fetch + check + save)", size,
                    time.perf_counter() - wall, time.process_time() - cpu)  # fmt: skip
        assert final.status == "done", final.error
        return up, down
    finally:
        for service in (alice, bob):
            await service.close()
            service.profile.close()


def run(settings: Settings) -> dict[str, Any]:
    size = (32 if settings.quick else 200) * MIB
    work = settings.workdir / "file_transfer"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = _file(work / "file.bin", size)
    bare = ServerProcess(
        "bare_blob",
        [sys.executable, "-m", "benchmarks.bare_blob_server", "--dir", str(work / "bare")],
        re.compile(r"^bare blob server listening on (\S+)$"),
        work,
    )
    relay_args = ("--blob-max-size", str(300 * MIB), "--log-level", "WARNING")
    # before: the relay reads each chunk after sending the previous one, the client writes
    # each 64 KiB frame on its own; after: 4 chunks read ahead, 1 MiB write batches
    before = ServerProcess.relay(work / "relay-before", (*relay_args, "--blob-read-ahead", "0"))
    relay = ServerProcess.relay(work / "relay-after", relay_args)
    rounds = 1 if settings.quick else 3
    runs: dict[str, list[dict[str, Any]]] = {}
    ratios: dict[str, list[float]] = {"send": [], "receive": [], "receive_before": []}
    with bare.start(), before.start(), relay.start():
        relay_before = relay.rss_kib()
        client_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for n in range(rounds):
            # each round: the bare copy, then before and after in alternating order
            base_up, base_down = asyncio.run(_bare(bare.url, src, work / "bare-copy"))
            got: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
            order = [("before", before, CHUNK), ("", relay, None)]
            for label, server, batch in order if n % 2 == 0 else order[::-1]:
                tag = f" {label}" if label else ""
                got[label] = asyncio.run(_ours(work / f"r{n}{label}", server.url, src, tag, batch))
            (ours_up, ours_down), (old_up, old_down) = got[""], got["before"]
            for row in (ours_up, old_up, base_up, ours_down, old_down, base_down):
                runs.setdefault(row["name"], []).append(row)
            ratios["send"].append(ours_up["mib_per_s"] / base_up["mib_per_s"])
            ratios["receive"].append(ours_down["mib_per_s"] / base_down["mib_per_s"])
            ratios["receive_before"].append(old_down["mib_per_s"] / base_down["mib_per_s"])
        relay_growth = relay.rss_kib() - relay_before
        client_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - client_before
    shutil.rmtree(work, ignore_errors=True)
    rows = [_median_row(name, found) for name, found in runs.items()]
    return {
        "bytes": size,
        "rounds": rounds,
        "rows": rows,
        # medians over the rounds of each round's ratio (ours / the bare copy of that round)
        "send_vs_bare": round(statistics.median(ratios["send"]), 2),
        "receive_vs_bare": round(statistics.median(ratios["receive"]), 2),
        "receive_before_vs_bare": round(statistics.median(ratios["receive_before"]), 2),
        "receive_vs_bare_rounds": [round(r, 2) for r in ratios["receive"]],
        "receive_before_vs_bare_rounds": [round(r, 2) for r in ratios["receive_before"]],
        # peak RSS growth of the benchmark process (both clients) and the relay's RSS growth
        "client_peak_rss_growth_mib": round(client_growth / 1024, 1),
        "relay_rss_growth_mib": round(relay_growth / 1024, 1),
    }


def _median_row(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "wall_s": round(statistics.median(r["wall_s"] for r in rows), 3),
        "mib_per_s": round(statistics.median(r["mib_per_s"] for r in rows), 1),
        "cpu_ms_per_mib": round(statistics.median(r["cpu_ms_per_mib"] for r in rows), 1),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [r["name"], fmt(r["mib_per_s"], 1), fmt(r["wall_s"], 2), fmt(r["cpu_ms_per_mib"], 1)]
        for r in result["rows"]
    ]
    table = md_table(["path", "MiB/s", "wall s", "client CPU ms per MiB"], rows)
    return (
        f"{result['bytes'] // MIB} MiB file, relay and baseline server as subprocesses on "
        f"loopback, both clients in the benchmark process; medians of {result.get('rounds', 1)} "
        f"rounds (each: the bare copy, then before and after in alternating order).\n\n"
        f"{table}\n\nOurs against the bare copy of the same round (median): send "
        f"{result['send_vs_bare']:.2f}x, receive {result['receive_vs_bare']:.2f}x "
        f"(rounds {result.get('receive_vs_bare_rounds', [])}); before read-ahead and write "
        f"batches: {result.get('receive_before_vs_bare', 0):.2f}x "
        f"(rounds {result.get('receive_before_vs_bare_rounds', [])}). "
        f"Memory during the transfer: peak RSS of the client process grew by "
        f"{result['client_peak_rss_growth_mib']:.1f} MiB (both clients), the relay's RSS by "
        f"{result['relay_rss_growth_mib']:.1f} MiB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.file_transfer")
    parser.add_argument("--quick", action="store_true", help="32 MiB instead of 200 MiB")
    args = parser.parse_args()
    result = run(Settings(workdir=Path("/tmp"), quick=args.quick))
    print(render(result))


if __name__ == "__main__":
    main()

"""Memory during a big transfer: a 1 GiB file from alice to bob through the relay grows
neither client's nor the relay's resident memory by more than 50 MiB (issue 14).

Three real processes: the relay (``python -m messenger_tui.relay``) and one process per
client (``python -m benchmarks.transfer_memory client ...``: a ``MessengerService`` on its own
profile, as the app runs it). Each client says ``ready`` once connected and idle; the baseline
of every process is its VmRSS then (the highest of a few samples over half a second). Then
bob is told to wait for the file and alice to send it (``send_file``: seal into the spool while
uploading, 64 KiB chunks); VmRSS of all three is sampled every 50 ms from ``/proc`` until bob
has saved the file. Growth = peak sample - baseline. Bob's saved file is checked against the
source (SHA-256).

The baseline is in the same run: each process's own VmRSS, connected and idle, just before
the transfer; the growth is set against the 50 MiB bar.

    python -m benchmarks.transfer_memory [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.procs import RELAY_BENCH_ARGS, ServerProcess, rss_kib

NAME = "transfer_memory"
TITLE = "Memory during a 1 GiB transfer"
MIB = 1024 * 1024
#: The bar of issue 14: growth of any of the three processes.
BAR_MIB = 50
SAMPLE_S = 0.05


# ---------------------------------------------------------------------- the client process


async def _client(home: Path, role: str, peer: str, path: Path) -> None:
    """One client: connect, say ready, wait for "go", send (alice) or receive (bob) the file,
    say done, wait for "quit"."""
    from messenger_tui.app.profile import open_profile
    from messenger_tui.app.service import MessengerService

    service = MessengerService(open_profile(home, None))
    loop = asyncio.get_running_loop()
    try:
        if role == "receive":
            service.set_download_dir(path)
            service.transfer_manager.download_all = True
        await service.start()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        started = time.perf_counter()
        if role == "send":
            sent = await service.send_file(service.contact(peer).id, path)
            final = await service.wait_transfer(sent.id, 1800)
        else:
            deadline = time.monotonic() + 1800
            while not any(t.direction == "down" for t in service.transfers()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the file's message never arrived")
                await asyncio.sleep(0.05)
            got = next(t for t in service.transfers() if t.direction == "down")
            final = await service.wait_transfer(got.id, 1800)
        wall = time.perf_counter() - started
        print(f"done {final.status} {wall:.3f} {final.path or ''}", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "quit"
    finally:
        await service.close()
        service.profile.close()


class ClientProcess:
    def __init__(self, work: Path, home: Path, role: str, peer: str, path: Path) -> None:
        self.name = home.name
        self._stderr = (work / f"{self.name}.stderr").open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.transfer_memory", "client", "--home", str(home),
             "--role", role, "--peer", peer, "--path", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        self.stderr_path = work / f"{self.name}.stderr"

    def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if ready:
                return self.proc.stdout.readline().strip()
            if self.proc.poll() is not None:
                break
        tail = self.stderr_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} said nothing within {timeout:.0f} s; stderr:\n{tail}")

    def tell(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.tell("quit")
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# ---------------------------------------------------------------------- the benchmark


class Sampler(threading.Thread):
    """Peak VmRSS (KiB) of each pid, sampled every :data:`SAMPLE_S` until stopped."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = {name: 0 for name in pids}
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for name, pid in self.pids.items():
                try:
                    self.peak[name] = max(self.peak[name], rss_kib(pid))
                except (OSError, RuntimeError):
                    pass
            self.samples += 1
            self._halt.wait(SAMPLE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _baseline(pids: dict[str, int]) -> dict[str, int]:
    """The highest of ten samples over half a second, per process (idle, connected)."""
    base = {name: 0 for name in pids}
    for _ in range(10):
        for name, pid in pids.items():
            base[name] = max(base[name], rss_kib(pid))
        time.sleep(SAMPLE_S)
    return base


def _file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _profiles(work: Path, url: str) -> tuple[Path, Path]:
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService

    alice = MessengerService(create_profile(work / "alice", "alice", url, None))
    bob = MessengerService(create_profile(work / "bob", "bob", url, None))
    alice.add_contact(bob.address, "bob")
    bob.add_contact(alice.address, "alice")
    for service in (alice, bob):
        asyncio.run(service.close())
        service.profile.close()
    return work / "alice", work / "bob"


def run(settings: Settings) -> dict[str, Any]:
    size = (128 if settings.quick else 1024) * MIB
    work = settings.workdir / NAME
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = work / "file.bin"
    digest = _file(src, size)
    cap = str(size + 64 * MIB)
    relay = ServerProcess.relay(
        work,
        (*RELAY_BENCH_ARGS, "--blob-max-size", cap, "--blob-quota-bytes", cap,
         "--blob-total-bytes", str(4 * size)),
    )  # fmt: skip
    clients: list[ClientProcess] = []
    try:
        with relay.start():
            alice_home, bob_home = _profiles(work, relay.url)
            bob = ClientProcess(work, bob_home, "receive", "alice", work / "downloads")
            clients.append(bob)
            alice = ClientProcess(work, alice_home, "send", "bob", src)
            clients.append(alice)
            for client in clients:
                if client.line(60) != "ready":
                    raise RuntimeError(f"{client.name} did not start")
            pids = {"alice": alice.proc.pid, "bob": bob.proc.pid, "relay": relay.pid}
            base = _baseline(pids)
            sampler = Sampler(pids)
            sampler.start()
            started = time.perf_counter()
            bob.tell("go")
            alice.tell("go")
            sent = alice.line(1800).split()
            got = bob.line(1800).split(maxsplit=3)
            wall = time.perf_counter() - started
            sampler.stop()
            relay.check_alive()
        if sent[:2] != ["done", "done"] or got[:2] != ["done", "done"]:
            raise RuntimeError(f"transfer failed: alice {sent}, bob {got}")
        if _sha256(Path(got[3])) != digest:
            raise RuntimeError("bob's file differs from the source")
    finally:
        for client in clients:
            client.stop()
        relay.stop()
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name in ("alice", "bob", "relay"):
        growth = max(0, sampler.peak[name] - base[name]) / 1024
        rows.append(
            {
                "process": name,
                "baseline_mib": round(base[name] / 1024, 1),
                "peak_mib": round(sampler.peak[name] / 1024, 1),
                "growth_mib": round(growth, 1),
                "within_bar": growth <= BAR_MIB,
            }
        )
    return {
        "bytes": size,
        "wall_s": round(wall, 1),
        "mib_per_s": round(size / MIB / wall, 1),
        "samples": sampler.samples,
        "bar_mib": BAR_MIB,
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [r["process"], fmt(r["baseline_mib"], 1), fmt(r["peak_mib"], 1), fmt(r["growth_mib"], 1),
         "yes" if r["within_bar"] else "**no**"]
        for r in result["rows"]
    ]  # fmt: skip
    table = md_table(
        ["process", "VmRSS idle MiB", "peak MiB", "growth MiB", f"≤ {result['bar_mib']} MiB"],
        rows,
        "lrrrl",
    )
    return (
        f"A {result['bytes'] // MIB} MiB file from alice to bob: the relay and each client in "
        f"its own process, VmRSS sampled every {int(SAMPLE_S * 1000)} ms "
        f"({result['samples']} samples); the transfer (seal + upload, fetch + check + save) "
        f"took {result['wall_s']:.1f} s ({result['mib_per_s']:.1f} MiB/s end to end). "
        f"Baseline: each process's VmRSS connected and idle just before.\n\n{table}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer_memory")
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client")
    client.add_argument("--home", type=Path, required=True)
    client.add_argument("--role", choices=("send", "receive"), required=True)
    client.add_argument("--peer", required=True)
    client.add_argument("--path", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="128 MiB instead of 1 GiB")
    args = parser.parse_args()
    if args.command == "client":
        asyncio.run(_client(args.home, args.role, args.peer, args.path))
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        print(render(run(Settings(workdir=Path(tmp), quick=args.quick))))


if __name__ == "__main__":
    main()

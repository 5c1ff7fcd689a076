"""Helpers shared by the UI benchmarks (ui_open_conversation, ui_backlog_stall, ui_cold_start).

The measured app always runs in a fresh child process (``python -m benchmarks.<module> child
...``) so that its resident memory and its start-up are its own; the child prints one JSON
line (prefixed ``RESULT ``) with what it measured, and the parent collects it. Profiles are
real ones (``create_profile``), filled through the storage layer directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Nothing listens here: a service pointed at it stays offline (no relay needed).
OFFLINE_URL = "ws://127.0.0.1:9"
RESULT_PREFIX = "RESULT "
PEER_NAME = "bob"
EMPTY_NAME = "carol"
#: Terminal size of the headless app in the UI benchmarks.
TERMINAL = (120, 40)


def _text(i: int) -> str:
    """Message bodies of realistic, varied length (20 to ~200 characters)."""
    base = f"message {i}: the quick brown fox jumps over the lazy dog. "
    return (base * (1 + i % 4))[: 20 + (i * 37) % 180]


def build_conversation(home: Path, messages: int, *, day_ms: int = 86_400_000) -> dict[str, Any]:
    """A profile in ``home`` with contact ``bob`` holding ``messages`` messages (alternating
    own/theirs, a few minutes apart, spread over many days) and contact ``carol`` with none.
    Written in one transaction through the storage layer."""
    # Imported here: the cold-start children import this module and must stay light.
    from messenger_tui.app.profile import create_profile
    from messenger_tui.app.service import MessengerService
    from messenger_tui.core.address import encode_address

    started = time.perf_counter()
    profile = create_profile(home, "alice", OFFLINE_URL, None)
    try:
        store = profile.store
        bob = encode_address(os.urandom(32))
        carol = encode_address(os.urandom(32))
        service = MessengerService(profile)
        contact = service.add_contact(bob, PEER_NAME)
        service.add_contact(carol, EMPTY_NAME)
        now = int(time.time() * 1000)
        step = max(1, (200 * day_ms) // max(1, messages))  # ~200 days in all
        with store.db.transaction():
            for i in range(messages):
                outgoing = i % 2 == 0
                sent = now - (messages - i) * step
                store.messages.insert(
                    contact.id,
                    i.to_bytes(16, "big"),
                    outgoing=outgoing,
                    body=_text(i),
                    sent_at_ms=sent,
                    received_at_ms=None if outgoing else sent + 500,
                    state="read" if outgoing else "seen",
                )
    finally:
        profile.close()
    return {"messages": messages, "build_s": round(time.perf_counter() - started, 2)}


def proc_memory_kib(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def emit(result: dict[str, Any]) -> None:
    """Print the child's result line (the parent reads the last one)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(module: str, args: list[str], timeout: float, workdir: Path) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> child ARGS`` and return its result line; on failure
    RuntimeError with the end of its stderr."""
    workdir.mkdir(parents=True, exist_ok=True)
    stderr_path = workdir / f"{module}.stderr"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TEXTUAL", None)
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", "child", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(stderr_path.read_text(encoding="utf-8").splitlines()[-30:])
        raise RuntimeError(f"{module} child failed (status {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2

"""Run the benchmarks, print the tables, write docs/performance.md and the raw JSON.

    python -m benchmarks.run                      # everything (what `make bench` runs)
    python -m benchmarks.run --quick              # small counts, under a minute
    python -m benchmarks.run relay_throughput     # one (or several) by name
    python -m benchmarks.run full_stack --profile # plus a cProfile of the client stack

A full run rewrites the section of docs/performance.md between ``<!-- bench:start -->`` and
``<!-- bench:end -->`` (creating the file if missing) and saves the raw figures to
benchmarks/results/latest.json. Running a subset updates only those benchmarks' parts and keeps
the others from latest.json. ``--quick`` figures are too short to publish: they are printed
and saved to benchmarks/results/quick.json only (unless ``--write-docs``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import (
    attachment_crypto,
    blob_quota,
    calls_cpu,
    calls_delay,
    calls_relay,
    file_transfer,
    full_stack,
    group_calls,
    group_send,
    idle_memory,
    media_callgrind,
    relay_fanout,
    relay_redis,
    relay_throughput,
    relay_wake,
    sqlcipher_cost,
    transfer_memory,
    ui_backlog_stall,
    ui_cold_start,
    ui_group_backlog_stall,
    ui_open_conversation,
    voice_dsp,
)
from benchmarks.common import Settings
from benchmarks.procs import machine_info

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (
        relay_throughput,
        relay_fanout,
        relay_redis,
        relay_wake,
        group_send,
        idle_memory,
        full_stack,
        calls_relay,
        calls_delay,
        calls_cpu,
        media_callgrind,
        voice_dsp,
        group_calls,
        ui_open_conversation,
        ui_backlog_stall,
        ui_group_backlog_stall,
        ui_cold_start,
        attachment_crypto,
        sqlcipher_cost,
        file_transfer,
        transfer_memory,
        blob_quota,
    )
}
ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

INTRO = f"""# Performance

Measured figures of messenger_tui, produced by `make bench` (`python -m benchmarks.run`); the
section between the markers below is rewritten by every full run. Benchmarks report numbers,
they assert nothing (tests assert behaviour).

## What is measured, and how

- **Relay throughput and latency.** The relay runs as a real subprocess
  (`python -m messenger_tui.relay --port 0 --data DIR --send-rate 1000000 --send-burst 1000000
  --log-level WARNING`: the per-identity send limit, 1,000/s with a burst of 5,000 by default,
  is raised because one benchmark pair sends far more than a person types); the baseline is a
  bare websockets forwarder (`benchmarks/forwarder.py`: no auth, no storage; it forwards each
  binary message from a sender to its paired recipient), also a subprocess with the same
  websockets settings. One load generator process (`benchmarks/loadgen.py`) speaks the real
  wire protocol (Challenge -> Auth -> AuthOk; Send -> Stored; Deliver -> batched Ack) with 10,
  100 and 1,000 sender -> recipient pairs, ~200-byte bodies, and a bounded window of messages
  in flight per sender. Saturation rounds alternate
  between the two servers; delivered msgs/s and the latency from send to Deliver received are
  reported, plus the latency under a light open-loop load.
- **Relay fan-out** (`relay_fanout`): one relay subprocess, one sender and 256 recipient
  connections in this process, 200-byte bodies; the sender uploads each message once with
  `SendMulti` to all 256, or sends it to each with `Send` (the same deliveries in flight),
  alternating rounds; every Deliver is acked at once. Deliveries per second (first send to
  last delivery), relay CPU per delivery and the sender's bytes uploaded per message.
- **Memory per idle connection.** 2,000 authenticated idle connections to a fresh relay
  process; growth of its VmRSS divided by 2,000, beside the same with the bare forwarder.
- **One client, full stack.** Two real `MessengerService` instances through a relay
  subprocess: alice sends N texts (encrypt, store, send), bob receives, decrypts and stores.
  Baseline: the same number of envelopes of the same size through the same relay by raw wire
  clients, without crypto or client storage.
- **Calls.** *Relay media forwarding* (`calls_relay`): this process is the load generator,
  50 / 100 / 200 calls (two websocket legs each, on the relay's media route after Auth and
  media_join) each sending a 149-byte frame every 20 ms per leg; forwarding delay (send ->
  receive in the same process and clock) p50/p99 and loss; then a saturation rate (frames
  forwarded per second, flat out with a window) beside the bare forwarder's media role.
  *Audio delay* (`calls_delay`): two real `messenger-tui call` / `answer` processes through a
  relay subprocess, both playing a signal of voiced bursts with sharp onsets; their WAV source
  and sink stamp every frame with `time.monotonic()` (handed to the call / pulled and
  decoded), and each burst's delay = playback instant of its onset, found in the recording by
  normalised cross-correlation, - its capture instant: capture framing, Opus lookahead,
  network, relay, jitter buffer and playout framing; no device buffers (WAV has none).
  Baselines: the codec alone (encode -> decode, 26.5 ms) and two media sessions joined by a
  direct in-memory carrier. *CPU per call* (`calls_cpu`): user + system CPU time
  (`/proc/PID/stat`) of each real headless client over a steady stretch of a call with speech
  both ways, as % of one core; baselines: the same `answer` process connected and idle before
  the call, the same call on asyncio's own loop, two media sessions in one process without
  transport (with the CPU time of each stage per frame), a bare client that only moves the
  call's frames, an event loop that only wakes once per 20 ms (what the machine charges
  before any work: `benchmarks/wakeups.py`), and Opus encode + decode alone.
- **The Textual UI.** Each measured app runs in a fresh child process
  (`python -m benchmarks.ui_<name> child ...`), headless, with a real profile (built through
  the storage layer in a temporary directory) and the real `MessengerService`.
  *Opening a conversation* (`ui_open_conversation`): a 100,000-message conversation; time to
  first paint = from calling `MainScreen.open_conversation` (what Enter on the list runs) to a
  `call_after_refresh` callback registered as soon as it returns, which Textual runs after the
  compositor has rendered the update; the first open in the process and the median of 5
  re-opens; VmRSS of the process after opening and after paging back 20,000 messages (scroll
  to the top, the view loads the page before, repaint; repeated), and VmHWM. Baselines: the
  same with a 100-message conversation, and a bare Textual app's RSS. *Backlog*
  (`ui_backlog_stall`): another client sends 5,000 texts through a relay subprocess while the
  receiver is offline; the receiver's app, with that conversation open, then connects; the
  longest event-loop stall = the worst lateness of a 5 ms asyncio ticker until every message
  is stored and shown, with a watchdog thread sampling the loop thread's stack during stalls
  over 50 ms (where the time goes). Baseline: the same backlog ingested by the service alone.
  *Cold start* (`ui_cold_start`): from spawning `Launcher` + `make_app` on an existing profile
  (headless, as `messenger-tui` does) to the main screen mounted and idle, median of 9 fresh
  processes; baselines: a bare Textual app the same way, and the bare interpreter.
  *Group backlog* (`ui_group_backlog_stall`): the same stall, for a 5,000-message backlog in
  a 50-member group written by 5 senders while the receiver was offline, with the group's
  conversation open; baseline: the service alone.
- **Group send** (`group_send`): one message to a 100-member group beside 100 pairwise sends
  of the same text, in one process on one SQLCipher profile with 100 contacts and sessions:
  `GroupChats.send_text` plus the `SendMulti` frame, against `Outgoing.send_text` to each
  contact plus the outbox sealing them and the 100 `Send` frames. Sender CPU
  (`time.process_time`) and bytes of encoded frames per message, alternating rounds.
- **Attachment encryption** (`attachment_crypto`): the chunked attachment format
  (`core/attachments`) encrypting and decrypting 128 MiB held in memory, as CPU throughput,
  beside bare libsodium loops over the same 64 KiB chunks in the same process: secretstream
  push and pull, one XChaCha20-Poly1305 call per chunk, and that plus a SHA-256 of the output.
- **Blob quotas** (`blob_quota`): 3,000 blobs through the blob service (reserve, completion,
  removal) on a SQLite node's in-process ledger (the baseline) and on the Redis ledgers that
  hold the quotas across nodes, with `appendfsync always` and `no`; reserve p50/p99, time per
  blob's life and Redis script calls per blob.
- **SQLCipher's cost** (`sqlcipher_cost`): the client database is SQLCipher; the same
  profile decrypted into plain SQLite (the previous release's format) is the baseline, in the
  same run, child processes interleaved: opening a 100,000-message conversation (first paint,
  as `ui_open_conversation`), ingesting a 5,000-message backlog through a relay subprocess
  (the service alone), full-text search over 100,000 messages (first query after opening and
  repeated), and cold start to the main screen, also with a passphrase (one argon2id run).

Every figure stands beside a baseline measured in the same run on the same machine: absolute
times drift on shared machines, ratios much less. Everything runs on 127.0.0.1, the load
generator on the same machine as the servers. The "other load" columns say how much CPU other
processes used meanwhile; figures taken on a busy machine are lower than on an idle one.

## Reproduce

```
make bench                                   # or: .venv/bin/python -m benchmarks.run
.venv/bin/python -m benchmarks.run --quick   # a smoke run, under a minute, not written here
.venv/bin/python -m benchmarks.run full_stack --profile   # one benchmark, with a profile
```

Raw figures of the last run: `benchmarks/results/latest.json` (not committed).

{START}
{END}
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="Run the messenger_tui benchmarks."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (< 60 s in total)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the relay (relay_throughput) and the clients (full_stack)",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="write docs/performance.md even with --quick"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite docs/performance.md from benchmarks/results/latest.json",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        known = ", ".join(BENCHMARKS)
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; pick from {known}")
    return args


def _load_previous(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _render_section(data: dict[str, Any]) -> str:
    machine = data["machine"]
    parts = [
        f"_Updated {data['finished']}; machine: {machine['nproc']} cores "
        f"({machine['cpu_model']}, {machine['memory']} RAM), Python {machine['python']}"
        f"{' (' + machine['python_executable'] + ')' if 'python_executable' in machine else ''}, "
        f"websockets {machine['websockets']}, Linux {machine['kernel']}._",
    ]
    for name, module in BENCHMARKS.items():
        entry = data["benchmarks"].get(name)
        parts += ["", f"### {module.TITLE}", ""]
        if entry is None:
            parts.append("_Not measured yet._")
            continue
        if "error" in entry:
            parts.append(f"_Failed on {entry['finished']}: {entry['error']}_")
            continue
        stamp = f"_Measured {entry['finished']} in {entry['duration_s']:.0f} s"
        stamp += " (--quick)._" if entry.get("quick") else "._"
        parts += [module.render(entry["result"]), "", stamp]
    return "\n".join(parts)


def write_doc(section: str, doc: Path = DOC) -> None:
    """Replace the marked section of docs/performance.md (create the file if missing)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else INTRO
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    head = INTRO.split(START, 1)[0]  # the method text always comes from INTRO
    _, tail = rest.split(END, 1)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(f"{head}{START}\n{section}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = args.names or list(BENCHMARKS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / ("quick.json" if args.quick else "latest.json")
    data = _load_previous(json_path)
    if args.render_only:
        if not data.get("benchmarks"):
            print(f"nothing to render: {json_path.relative_to(ROOT)} is missing or empty")
            return 1
        write_doc(_render_section(data))
        print(f"table written to {DOC.relative_to(ROOT)}")
        return 0
    data.setdefault("benchmarks", {})
    data["machine"] = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="messenger-bench-"))
    failed = False
    started_all = time.monotonic()
    try:
        for name in names:
            module = BENCHMARKS[name]
            print(f"== {module.TITLE} ({name}) ...", flush=True)
            settings = Settings(workdir=workdir, quick=args.quick, profile=args.profile)
            started = time.monotonic()
            now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
            try:
                result = module.run(settings)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                data["benchmarks"][name] = {
                    "finished": now,
                    "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
                }
                continue
            entry = {
                "finished": now,
                "duration_s": round(time.monotonic() - started, 1),
                "quick": args.quick,
                "result": result,
            }
            data["benchmarks"][name] = entry
            print(module.render(result), flush=True)
            print(f"({entry['duration_s']:.0f} s)\n", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    data["finished"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"raw figures: {json_path.relative_to(ROOT)}")
    if not args.no_docs and (not args.quick or args.write_docs):
        write_doc(_render_section(data))
        print(f"table written to {DOC.relative_to(ROOT)}")
    print(f"total {time.monotonic() - started_all:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What SQLCipher costs: the same client work on the same profile, its database encrypted
(SQLCipher 4, the release's format) and plain SQLite (the previous release's), in one run.

Variants of one profile, each in fresh child processes:

- **plain**: the database decrypted into a plain SQLite file (``sqlcipher_export`` with an
  empty key) and opened without a key, as the previous release did (the child builds the
  profile object itself: ``open_profile`` would re-encrypt the file);
- **SQLCipher**: ``open_profile`` on the profile as made (no passphrase: the database key comes
  from the identity key file, no key derivation);
- **SQLCipher + passphrase** (cold start only): the same with a passphrase, so the unlock
  runs argon2id (64 MiB, 2 passes) once.

Measured:

1. *Opening a 100,000-message conversation*: the ``ui_open_conversation`` measurement (time to
   first paint from ``MainScreen.open_conversation``; first open and the median of 5 re-opens)
   in a headless app on each variant.
2. *Backlog ingest*: 5,000 texts sent by a real client through a relay subprocess while the
   receiver was offline; the receiver's service alone (no UI) connects and ingests them (decrypt,
   store with the ratchet state, dedupe record and receipt in one transaction each); ingest time
   and the longest event-loop stall (the ``ui_backlog_stall`` ticker). Two receivers got the
   same backlog; one of them was made plain.
3. *Full-text search over 100,000 messages*: ``MessengerService.search`` (what the search screen
   runs) for a rare word, a common word and a prefix; the first query after opening (SQLite's
   page cache empty: pages decrypted on the way in) and the median of 20 repeats.
4. *Cold start with unlock*: spawn -> headless main screen mounted and idle (as
   ``ui_cold_start``) on a 1,000-message profile, the profile opened before the app as
   ``messenger-tui --passphrase-file`` does; median of 7 processes per variant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, fmt, md_table
from benchmarks.ui_common import (
    EMPTY_NAME,
    PEER_NAME,
    ROOT,
    TERMINAL,
    build_conversation,
    emit,
    median,
    run_child,
)

NAME = "sqlcipher_cost"
TITLE = "Client database: SQLCipher beside plain SQLite"
AIM_PAINT_MS = 200.0
PASSPHRASE = "benchmark passphrase"
READY = "READY"
REOPENS = 5
SEARCH_REPEATS = 20
COLD_RUNS = 7
ROUNDS = 5
#: Messages in the page a conversation opens at (the view's PAGE_SIZE).
PAGE = 100
#: (label, query): a word in a few messages, a word in every message, a prefix.
QUERIES = [("rare word", "message 4242"), ("common word", "fox"), ("prefix", "jum")]


# ---------------------------------------------------------------------- profiles


def make_plain(home: Path) -> None:
    """Decrypt the profile's database into plain SQLite in place (the previous release's
    format)."""
    from sqlcipher3 import dbapi2 as sqlcipher

    from messenger_tui.core.crypto import keystore
    from messenger_tui.storage.db import key_pragma

    db = home / "messenger.db"
    _, key = keystore.unlock((home / "identity.json").read_bytes(), None)
    plain = home / "plain.db"
    conn = sqlcipher.connect(db, isolation_level=None)
    conn.execute(key_pragma(key))
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute("ATTACH DATABASE ? AS plaintext KEY ''", (str(plain),))
    conn.execute("SELECT sqlcipher_export('plaintext')")
    conn.execute(f"PRAGMA plaintext.user_version = {version}")
    conn.execute("DETACH DATABASE plaintext")
    conn.close()
    os.replace(plain, db)


def copy_profile(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("profile.lock"))
    return dst


def add_passphrase(home: Path) -> None:
    from messenger_tui.app import profile_keys
    from messenger_tui.app.profile import open_profile

    profile = open_profile(home, None)
    try:
        key = profile_keys.prepare_change(
            profile.paths.identity, profile.identity, None, PASSPHRASE
        )
        profile_keys.commit_change(profile.paths.identity, profile.store, key)
    finally:
        profile.close()


def open_variant(home: Path, variant: str) -> Any:
    """The profile as the variant opens it (a ``Profile``)."""
    from messenger_tui.app.profile import Profile, ProfilePaths, claim_profile, open_profile

    if variant == "cipher":
        return open_profile(home, None)
    if variant == "passphrase":
        return open_profile(home, PASSPHRASE)
    from messenger_tui.core.crypto import keystore
    from messenger_tui.storage.store import Store

    paths = ProfilePaths(home)
    lock = claim_profile(home)
    identity = keystore.open_identity(paths.identity.read_bytes(), None)
    return Profile(paths, identity, Store.open(paths.database, None), lock)


# ---------------------------------------------------------------------- child processes


async def _child_open(home: Path, variant: str) -> dict[str, Any]:
    from benchmarks.ui_open_conversation import _timed_open
    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui import make_app

    profile = open_variant(home, variant)
    service = MessengerService(profile)
    out: dict[str, Any] = {"encrypted": profile.store.db.encrypted}
    try:
        app = make_app(service, start_service=False, freeze_gc=True)
        async with app.run_test(size=TERMINAL) as pilot:
            while app.main_screen is None:
                await pilot.pause(0.01)
            screen = app.main_screen
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            bob = service.contact(PEER_NAME).id
            carol = service.contact(EMPTY_NAME).id
            out["first_paint_ms"] = (await _timed_open(screen, bob))["paint_ms"]
            await pilot.pause()
            reopens = []
            for _ in range(REOPENS):
                await screen.open_conversation(carol)
                await pilot.pause()
                reopens.append((await _timed_open(screen, bob))["paint_ms"])
                await pilot.pause()
            out["reopen_paint_ms"] = median(reopens)
    finally:
        await service.close()
        profile.close()
    return out


async def _child_ingest(home: Path, variant: str, expected: int) -> dict[str, Any]:
    from benchmarks.ui_backlog_stall import PEER, StallMeter
    from messenger_tui.app.service import MessengerService

    profile = open_variant(home, variant)
    service = MessengerService(profile)
    out: dict[str, Any] = {"encrypted": profile.store.db.encrypted, "messages": expected}
    try:
        bob_id = service.contact(PEER).id
        target = service.store.messages.count(bob_id) + expected
        meter = StallMeter()
        meter.start()
        t0 = time.perf_counter()
        await service.start()
        while service.store.messages.count(bob_id) < target:
            await asyncio.sleep(0.02)
        out["ingest_s"] = round(time.perf_counter() - t0, 3)
        await meter.stop()
        out["max_stall_ms"] = meter.summary()["max_stall_ms"]
        out["msgs_per_s"] = round(expected / out["ingest_s"], 1)
    finally:
        await service.close()
        profile.close()
    return out


def _child_search(home: Path, variant: str) -> dict[str, Any]:
    from messenger_tui.app.service import MessengerService

    profile = open_variant(home, variant)
    service = MessengerService(profile)
    out: dict[str, Any] = {"encrypted": profile.store.db.encrypted}
    try:
        # What opening the conversation reads (its newest page), the first time after opening
        # (pages decrypted on the way into SQLite's cache) and repeated.
        t0 = time.perf_counter()
        service.history(service.contact(PEER_NAME).id, limit=PAGE)
        first = time.perf_counter() - t0
        times = []
        for _ in range(SEARCH_REPEATS):
            t0 = time.perf_counter()
            service.history(service.contact(PEER_NAME).id, limit=PAGE)
            times.append(time.perf_counter() - t0)
        out["page"] = {
            "first_ms": round(1000 * first, 2),
            "median_ms": round(1000 * median(times), 2),
        }
        for label, query in QUERIES:
            t0 = time.perf_counter()
            hits = service.search(query)
            first = time.perf_counter() - t0
            times = []
            for _ in range(SEARCH_REPEATS):
                t0 = time.perf_counter()
                service.search(query)
                times.append(time.perf_counter() - t0)
            out[label] = {
                "hits": len(hits),
                "first_ms": round(1000 * first, 2),
                "median_ms": round(1000 * median(times), 2),
            }
    finally:
        profile.close()
    return out


def _child_cold(home: Path, variant: str) -> None:
    from textual.pilot import Pilot

    from messenger_tui.app.service import MessengerService
    from messenger_tui.ui import make_app

    service = MessengerService(open_variant(home, variant))
    app = make_app(service, freeze_gc=True)

    async def auto_pilot(pilot: Pilot[object]) -> None:
        while app.main_screen is None or not app.main_screen.is_mounted:
            await pilot.pause(0.005)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        print(READY, flush=True)
        app.exit()

    try:
        app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)
    finally:
        asyncio.run(service.close())
        service.profile.close()


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME} child")
    parser.add_argument("kind", choices=["open", "ingest", "search", "cold"])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--variant", choices=["plain", "cipher", "passphrase"], required=True)
    parser.add_argument("--expected", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "open":
        emit(asyncio.run(_child_open(args.home, args.variant)))
    elif args.kind == "ingest":
        emit(asyncio.run(_child_ingest(args.home, args.variant, args.expected)))
    elif args.kind == "search":
        emit(_child_search(args.home, args.variant))
    else:
        _child_cold(args.home, args.variant)
    return 0


# ---------------------------------------------------------------------- parent


def _cold_once(home: Path, variant: str) -> float:
    cmd = [sys.executable, "-m", f"benchmarks.{NAME}", "child", "cold", "--home", str(home),
           "--variant", variant]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY:
                return time.perf_counter() - t0
        raise RuntimeError(f"cold start child failed: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        proc.wait(60)


def run(settings: Settings) -> dict[str, Any]:
    from benchmarks.procs import ServerProcess
    from benchmarks.ui_backlog_stall import _prepare

    big = 20_000 if settings.quick else 100_000
    backlog = 1_000 if settings.quick else 5_000
    runs = 3 if settings.quick else COLD_RUNS
    workdir = settings.workdir / NAME
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"aim_paint_ms": AIM_PAINT_MS, "messages": big, "backlog": backlog}

    cipher_big = workdir / "big-cipher"
    out["build_s"] = build_conversation(cipher_big, big)["build_s"]
    plain_big = copy_profile(cipher_big, workdir / "big-plain")
    make_plain(plain_big)
    sizes = {"plain": plain_big, "cipher": cipher_big}
    out["db_bytes"] = {v: (h / "messenger.db").stat().st_size for v, h in sizes.items()}

    # Interleaved, the order alternating per round, so that drifting load hits both alike.
    out["open"] = {v: [] for v in sizes}
    out["search"] = {v: [] for v in sizes}
    for round_ in range(1 if settings.quick else ROUNDS):
        order = list(sizes.items())
        for variant, home in order if round_ % 2 == 0 else order[::-1]:
            args = ["--home", str(home), "--variant", variant]
            out["open"][variant].append(run_child(NAME, ["open", *args], 600, workdir))
            out["search"][variant].append(run_child(NAME, ["search", *args], 600, workdir))

    with ServerProcess.relay(workdir) as relay:
        homes = asyncio.run(_prepare(relay.url, workdir / "backlog", backlog))
        make_plain(homes["ui"])  # the other receiver, same backlog, made plain
        out["ingest"] = {
            "plain": run_child(NAME, ["ingest", "--home", str(homes["ui"]), "--variant",
                                      "plain", "--expected", str(backlog)], 900, workdir),
            "cipher": run_child(NAME, ["ingest", "--home", str(homes["service"]), "--variant",
                                       "cipher", "--expected", str(backlog)], 900, workdir),
        }  # fmt: skip
        relay.check_alive()

    small = workdir / "small-cipher"
    build_conversation(small, 1_000)
    cold_homes = {
        "plain": copy_profile(small, workdir / "small-plain"),
        "cipher": small,
        "passphrase": copy_profile(small, workdir / "small-passphrase"),
    }
    make_plain(cold_homes["plain"])
    add_passphrase(cold_homes["passphrase"])
    times: dict[str, list[float]] = {v: [] for v in cold_homes}
    for _ in range(runs):
        for variant, home in cold_homes.items():
            times[variant].append(_cold_once(home, variant))
    out["cold"] = {v: round(median(t), 3) for v, t in times.items()}
    out["cold_runs"] = runs
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def render(result: dict[str, Any]) -> str:
    n, aim = result["messages"], result["aim_paint_ms"]

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in rows])

    op = result["open"]
    p_first, c_first = med(op["plain"], "first_paint_ms"), med(op["cipher"], "first_paint_ms")
    p_re, c_re = med(op["plain"], "reopen_paint_ms"), med(op["cipher"], "reopen_paint_ms")
    ing = result["ingest"]
    rows = [
        [f"open a {n:,}-message conversation: first paint ms (first open)", fmt(p_first, 1),
         fmt(c_first, 1) + (" ✓" if c_first <= aim else " ✗"), _ratio(c_first, p_first)],
        [f"the same, median of {REOPENS} re-opens ms", fmt(p_re, 1), fmt(c_re, 1),
         _ratio(c_re, p_re)],
        [f"  its database reads (newest {PAGE} messages), first after opening ms",
         fmt(med([r["page"] for r in result["search"]["plain"]], "first_ms"), 2),
         fmt(med([r["page"] for r in result["search"]["cipher"]], "first_ms"), 2), "-"],
        ["  the same, repeated ms",
         fmt(med([r["page"] for r in result["search"]["plain"]], "median_ms"), 2),
         fmt(med([r["page"] for r in result["search"]["cipher"]], "median_ms"), 2), "-"],
        [f"ingest a {result['backlog']:,}-message backlog s (service alone)",
         fmt(ing["plain"]["ingest_s"], 2), fmt(ing["cipher"]["ingest_s"], 2),
         _ratio(ing["cipher"]["ingest_s"], ing["plain"]["ingest_s"])],
        ["  longest event-loop stall meanwhile ms", fmt(ing["plain"]["max_stall_ms"], 1),
         fmt(ing["cipher"]["max_stall_ms"], 1), "-"],
    ]  # fmt: skip
    se = result["search"]
    for label, query in QUERIES:
        for key, what in (("first_ms", "first after opening"), ("median_ms", "repeated")):
            p = median([r[label][key] for r in se["plain"]])
            c = median([r[label][key] for r in se["cipher"]])
            hits = se["cipher"][0][label]["hits"]
            rows.append([f"search {n:,} messages, {label} `{query}` ({hits} hits), {what} ms",
                         fmt(p, 2), fmt(c, 2), _ratio(c, p)])  # fmt: skip
    cold = result["cold"]
    rows.append(["cold start to the main screen s (1,000 messages)", fmt(cold["plain"], 2),
                 fmt(cold["cipher"], 2), _ratio(cold["cipher"], cold["plain"])])  # fmt: skip
    rows.append(["  with a passphrase (argon2id unlock) s", "-", fmt(cold["passphrase"], 2),
                 _ratio(cold["passphrase"], cold["plain"])])  # fmt: skip
    table = md_table(["work", "plain SQLite", "SQLCipher", "SQLCipher / plain"], rows)
    sizes = result["db_bytes"]
    return "\n".join(
        [
            table,
            "",
            f"Same profile, same run, child processes interleaved; database files "
            f"{sizes['plain'] / 2**20:.1f} MiB plain, {sizes['cipher'] / 2**20:.1f} MiB "
            f"SQLCipher ({n:,} messages). Open and search: median of "
            f"{len(op['plain'])} child processes per variant (each: first open, then the "
            f"median of {SEARCH_REPEATS} repeats). Backlog: one receiver per variant, the same "
            f"backlog. Cold start: median of {result.get('cold_runs', COLD_RUNS)} processes "
            f"per variant. Aim: first paint <= {aim:.0f} ms with SQLCipher.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    print(f"run it through the runner: python -m benchmarks.run {NAME}")
    sys.exit(2)

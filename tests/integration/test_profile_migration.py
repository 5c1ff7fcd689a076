"""Profiles made by the previous release (plain SQLite) are re-encrypted once when opened, and
SIGKILL at any point of that leaves a usable profile.

The profiles are tests/fixtures/profile-v0.1.0.tar.gz, made by 0.1.0's own CLI; the current
CLI opens them in a subprocess, as a user upgrading would.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messenger_tui.storage.db import is_plaintext
from tests.helpers.cli import cli_command, cli_env, run_cli
from tests.helpers.profile_db import (
    PREVIOUS_PASSPHRASE,
    previous_release_profiles,
    snapshot,
)
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow

ALICE_SAYS = [f"plaintext-canary alpha {i} from alice" for i in range(3)]
BOB_SAYS = [f"plaintext-canary bravo {i} from bob" for i in range(3)]
#: The steps of storage.cipher.reencrypt, in order.
STEPS = ["checkpointed", "exported", "synced", "backed-up", "swapped", "done"]


def _history(home: Path, pp: Path | None, contact: str) -> list[str]:
    args = ["history", contact, "--json", "--limit", "100000"]
    if pp is not None:
        args += ["--passphrase-file", str(pp)]
    return [m["text"] for m in run_cli(home, *args).json_lines()]


def _assert_migrated(home: Path) -> None:
    db = home / "messenger.db"
    assert not is_plaintext(db)
    assert sorted(p.name for p in home.iterdir() if p.name.startswith("messenger.db")) == [
        "messenger.db"
    ], "no backup, half-written copy, WAL or shm is left after a clean exit"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.iterdir():
        assert b"plaintext-canary" not in path.read_bytes(), path


def test_previous_release_profiles_migrate_once_and_keep_everything(tmp_path: Path) -> None:
    alice, bob = previous_release_profiles(tmp_path)
    pp = tmp_path / "pp.txt"
    assert is_plaintext(alice / "messenger.db") and is_plaintext(bob / "messenger.db")
    assert stat.S_IMODE((alice / "messenger.db").stat().st_mode) == 0o644  # as 0.1.0 left it

    # A wrong passphrase: refused by the key file, the migration never starts.
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    before = snapshot(alice)
    res = run_cli(alice, "history", "bob", "--passphrase-file", str(wrong), check=False)
    assert res.code == 6 and "wrong passphrase" in res.err
    assert snapshot(alice) == before

    conversation = [t for pair in zip(ALICE_SAYS, BOB_SAYS) for t in pair]
    assert _history(alice, pp, "bob") == conversation
    assert _history(bob, None, "alice") == conversation
    _assert_migrated(alice)
    _assert_migrated(bob)
    migrated = (alice / "messenger.db").read_bytes()
    assert _history(alice, pp, "bob") == conversation  # once: the second open changes nothing
    assert (alice / "messenger.db").read_bytes() == migrated

    # The FTS5 index came along.
    hits = run_cli(alice, "search", "bravo", "--passphrase-file", str(pp), "--json").json_lines()
    assert sorted(h["text"] for h in hits) == BOB_SAYS
    # The ratchet sessions came along: they talk on (through a new relay: the old one is gone).
    contacts = run_cli(alice, "contacts", "list", "--json", "--passphrase-file", str(pp))
    assert "bob" in contacts.out


async def test_migrated_sessions_keep_talking(tmp_path: Path, relay: RelayProcess) -> None:
    from messenger_tui.app.profile import open_profile
    from messenger_tui.app.service import MessengerService

    alice, bob = previous_release_profiles(tmp_path)
    pp = tmp_path / "pp.txt"
    for home, passphrase in ((alice, PREVIOUS_PASSPHRASE), (bob, None)):
        service = MessengerService(open_profile(home, passphrase))  # migrates
        try:
            await service.set_relay_url(relay.url)
        finally:
            await service.close()
            service.profile.close()
    run_cli(alice, "send", "bob", "after the upgrade", "--passphrase-file", str(pp))
    got = run_cli(bob, "receive", "--json").message_lines()
    assert [m["text"] for m in got] == ["after the upgrade"]
    run_cli(bob, "send", "alice", "heard you")
    got = run_cli(alice, "receive", "--json", "--passphrase-file", str(pp)).message_lines()
    assert [m["text"] for m in got] == ["heard you"]


_KILL_AT_STEP = """
import os, signal, sys
from pathlib import Path
import messenger_tui.storage.cipher as cipher
from messenger_tui.app.profile import open_profile

step = sys.argv[2]
original = cipher.reencrypt

def reencrypt(*args, **kw):
    def on_step(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, on_step=on_step)

cipher.reencrypt = reencrypt
open_profile(Path(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else None)
print("not killed")
"""


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_of_the_migration_leaves_a_usable_profile(
    tmp_path: Path, step: str
) -> None:
    alice, _ = previous_release_profiles(tmp_path)
    pp = tmp_path / "pp.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AT_STEP, str(alice), step, PREVIOUS_PASSPHRASE],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    migrated_before_kill = step in ("swapped", "done")
    assert is_plaintext(alice / "messenger.db") is not migrated_before_kill
    if step in ("backed-up", "swapped"):
        assert (alice / "messenger.db.backup").exists()  # kept until the migration succeeded
    conversation = [t for pair in zip(ALICE_SAYS, BOB_SAYS) for t in pair]
    assert _history(alice, pp, "bob") == conversation
    _assert_migrated(alice)


def _grow_previous_release_database(db: Path, rows: int) -> None:
    """Add ``rows`` messages the way 0.1.0 stored them (plain SQLite, WAL), and leave the last
    ones in the WAL as a crashed 0.1.0 would (the process exits without closing)."""
    script = f"""
import os, sqlite3
conn = sqlite3.connect({str(db)!r}, isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
cid = conn.execute("SELECT id FROM contacts WHERE name = 'bob'").fetchone()[0]
conn.execute("BEGIN")
for i in range({rows}):
    conn.execute(
        "INSERT INTO messages (contact_id, message_id, outgoing, kind, body, sent_at_ms, "
        "received_at_ms, state) VALUES (?, ?, 0, 'text', ?, ?, ?, 'read')",
        (cid, os.urandom(16), f"grown plaintext-canary {{i}}", 2**41 + i, 2**41 + i),
    )
conn.execute("COMMIT")
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.execute("INSERT INTO messages (contact_id, message_id, outgoing, kind, body, sent_at_ms, "
             "received_at_ms, state) VALUES (?, ?, 0, 'text', 'only in the wal', ?, ?, 'read')",
             (cid, os.urandom(16), 2**42, 2**42))
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert (db.with_name("messenger.db-wal")).stat().st_size > 0
    check = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert check.execute("SELECT count(*) FROM messages").fetchone()[0] == rows + 7
    check.close()


def test_sigkill_at_random_times_during_a_large_migration(tmp_path: Path) -> None:
    """20,000 messages: SIGKILL at random moments of `history` once it has begun to
    re-encrypt them, then open for real. Every run keeps every message."""
    rows = 20_000
    root = tmp_path / "template"
    root.mkdir()
    alice, _ = previous_release_profiles(root)
    _grow_previous_release_database(alice / "messenger.db", rows)
    pp = root / "pp.txt"

    def start(home: Path) -> subprocess.Popen[bytes]:
        home.mkdir(mode=0o700)
        for path in alice.iterdir():
            (home / path.name).write_bytes(path.read_bytes())
        proc = subprocess.Popen(
            cli_command(home, "history", "bob", "--limit", "1", "--passphrase-file", str(pp)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        # the export has begun once the new file exists
        deadline = time.monotonic() + 60
        while not (home / "messenger.db.rekey").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.0005)
        return proc

    # How long a migration runs here, from the new file's creation to the backup's removal.
    home = tmp_path / "calibration"
    proc = start(home)
    t0 = time.monotonic()
    while (home / "messenger.db.rekey").exists() or (home / "messenger.db.backup").exists():
        time.sleep(0.0005)
    duration = time.monotonic() - t0
    proc.wait(60)
    rng = random.Random(11)
    killed_mid = 0
    for trial in range(6):
        home = tmp_path / f"trial-{trial}"
        proc = start(home)
        time.sleep(rng.uniform(0.0, 1.2 * duration))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        leftovers = {p.name for p in home.iterdir()}
        if "messenger.db.rekey" in leftovers or "messenger.db.backup" in leftovers:
            killed_mid += 1
        texts = _history(home, pp, "bob")
        assert len(texts) == rows + 7, f"trial {trial}: {len(texts)} messages"
        assert texts[-1] == "only in the wal"
        _assert_migrated(home)
    print(f"migration {1000 * duration:.0f} ms; {killed_mid} of 6 kills landed in it")
    assert killed_mid >= 2, "too few kills landed during the re-encryption"

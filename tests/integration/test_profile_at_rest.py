"""At rest, with a passphrase: after messages both ways, a call attempt and searches, no byte
of the profile directory (database, WAL, shm, key file, logs; while a client runs and after
it was killed) holds a sent text, a private key or the passphrase. `sqlite3` cannot read the
database; the CLI and the app still search it.

Two real CLI profiles talk through a real relay process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from messenger_tui.core.crypto import keystore
from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


class Person(User):
    """A CLI user whose profile has a passphrase."""

    def __init__(self, root: Path, name: str, passphrase: str) -> None:
        super().__init__(root, name)
        self.passphrase = passphrase
        self.pp_file = root / f"{name}.passphrase"
        self.pp_file.write_text(passphrase + "\n")

    def run(self, *args: str, **kw):  # type: ignore[no-untyped-def]
        return super().run(*args, "--passphrase-file", str(self.pp_file), **kw)

    def secrets(self) -> dict[str, bytes]:
        """What must never be on disk in the clear: the identity seed, the database key (raw
        and as hex) and the passphrase."""
        identity, db_key = keystore.unlock(
            (self.home / "identity.json").read_bytes(), self.passphrase
        )
        return {
            "identity seed": identity.seed,
            "identity seed (hex)": identity.seed.hex().encode(),
            "database key": db_key,
            "database key (hex)": db_key.hex().encode(),
            "passphrase": self.passphrase.encode(),
        }


def _scan(home: Path, texts: list[str], secrets: dict[str, bytes]) -> list[str]:
    """The files of ``home`` that were read (every byte of each); fails on any finding."""
    names = []
    for path in sorted(home.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        names.append(path.name)
        for text in texts:
            assert text.encode() not in data, f"sent text {text!r} in {path}"
        for what, needle in secrets.items():
            assert needle not in data, f"{what} in {path}"
    return names


def test_nothing_readable_at_rest_and_search_still_works(
    tmp_path: Path, relay: RelayProcess
) -> None:
    run = uuid.uuid4().hex[:10]
    alice = Person(tmp_path, "alice", f"alice passphrase {run}")
    bob = Person(tmp_path, "bob", f"bob passphrase {run}")
    a_addr = alice.run("init", "--name", "alice", "--relay", relay.url).out.split()[0]
    b_addr = bob.run("init", "--name", "bob", "--relay", relay.url).out.split()[0]
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")

    to_bob = [f"zebra{run} from alice {i}" for i in range(5)]
    to_alice = [f"yak{run} from bob {i}" for i in range(5)]
    for text in to_bob:
        alice.run("send", "bob", text)
    assert [m["text"] for m in bob.run("receive", "--json").message_lines()] == to_bob
    for text in to_alice:
        bob.run("send", "alice", text)
    assert [m["text"] for m in alice.run("receive", "--json").message_lines()] == to_alice

    # A call attempt (bob is offline: it is logged, unanswered)
    call = alice.run("call", "bob", "--ring-timeout", "1", "--record",
                     str(tmp_path / "never.wav"), check=False)  # fmt: skip
    assert call.code == 11, call.err
    history = alice.run("history", "bob", "--json").json_lines()
    assert [m["kind"] for m in history].count("call") == 1

    # Searches through the CLI (FTS5 inside the encrypted file)
    hits = alice.run("search", f"zebra{run}", "--json").json_lines()
    assert sorted(h["text"] for h in hits) == sorted(to_bob)
    hits = bob.run("search", f"yak{run[:6]}", "--contact", "alice", "--json").json_lines()
    assert sorted(h["text"] for h in hits) == sorted(to_alice)
    assert bob.run("search", "nothing-like-this", "--json").json_lines() == []

    # bob keeps a client running: his WAL holds the newest rows while it runs
    log = bob.home / "receive.log"  # the client's verbose log, kept in the profile
    with log.open("w") as log_fh:
        follower = subprocess.Popen(
            [*cli_command(bob.home, "receive", "--follow", "--json", "-v"),
             "--passphrase-file", str(bob.pp_file)],
            stdout=subprocess.PIPE, stderr=log_fh, stdin=subprocess.DEVNULL, text=True,
            env=cli_env(),
        )  # fmt: skip
        try:
            live = [f"xerus{run} while bob runs {i}" for i in range(5)]
            for text in live:
                alice.run("send", "bob", text)
            assert follower.stdout is not None
            got: list[str] = []  # message lines only: receipts for bob's texts come too
            while len(got) < len(live) and (line := follower.stdout.readline()):
                if json.loads(line).get("type") == "message":
                    got.append(line)
            assert all(text in line for text, line in zip(live, got, strict=True)), got
            time.sleep(0.5)  # receipts written
            wal = bob.home / "messenger.db-wal"
            assert wal.exists() and wal.stat().st_size > 0
            texts = to_bob + to_alice + live
            seen = _scan(bob.home, texts, bob.secrets())
            assert {"messenger.db", "messenger.db-wal", "messenger.db-shm", "identity.json",
                    "receive.log"} <= set(seen), seen  # fmt: skip
            # killed, as a crash would: the WAL stays behind
            os.kill(follower.pid, signal.SIGKILL)
            follower.wait(10)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait(10)
    assert wal.exists() and wal.stat().st_size > 0
    _scan(bob.home, texts, bob.secrets())
    _scan(alice.home, texts, alice.secrets())

    # The databases are not SQLite files to anything without the key
    for person in (alice, bob):
        db = person.home / "messenger.db"
        shell = subprocess.run(["sqlite3", str(db), "SELECT body FROM messages"],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert shell.returncode != 0 and "not a database" in shell.stderr, shell
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()
        assert stat.S_IMODE(person.home.stat().st_mode) == 0o700
        for path in person.home.iterdir():
            if path.name != "receive.log":  # the test's own redirection
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # After the crash, bob's next start has everything (the WAL was his), and search finds it
    hits = bob.run("search", f"xerus{run}", "--json").json_lines()
    assert sorted(h["text"] for h in hits) == sorted(live)


async def test_the_app_searches_the_encrypted_database(tmp_path: Path, relay: RelayProcess) -> None:
    """The search the app's search screen runs (the facade's), on a profile with a passphrase
    opened as the app opens it."""
    from messenger_tui.app.launcher import Launcher

    home = tmp_path / "carol"
    launcher = Launcher(home, kdf_limits=None)
    service = await launcher.create("carol", "carol's passphrase", relay.url)
    try:
        row_texts = [f"quokka {i}" for i in range(3)]
        with service.store.db.transaction():
            cid = service.store.contacts.insert("dave", os.urandom(32), 1).id
            for i, text in enumerate(row_texts):
                service.store.messages.insert(
                    cid, os.urandom(16), outgoing=True, body=text, sent_at_ms=i, state="sent"
                )
        hits = service.search("quok")
        assert sorted(h.message.text for h in hits) == row_texts
        assert all(h.highlights for h in hits)
    finally:
        await launcher.release(service)
    data = b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())
    assert b"quokka" not in data and b"carol's passphrase" not in data

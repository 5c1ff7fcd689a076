"""Bad input gets a clear message and a documented exit code, and nothing stored is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import User, cli_command, cli_env, run_cli
from tests.helpers.ports import free_port
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def test_bad_address_checksum_and_unknown_contact(tmp_path: Path) -> None:
    me, other = User(tmp_path, "me"), User(tmp_path, "other")
    me.init(f"ws://127.0.0.1:{free_port()}")
    addr = other.init(f"ws://127.0.0.1:{free_port()}")
    typo = addr[:20] + ("a" if addr[20] != "a" else "b") + addr[21:]
    res = me.run("contacts", "add", typo, "--name", "x", check=False)
    assert res.code == 4 and "checksum" in res.err
    res = me.run("send", "nobody", "hi", check=False)
    assert res.code == 4 and "no contact named 'nobody'" in res.err
    res = me.run("contacts", "add", "hello", "--name", "x", check=False)
    assert res.code == 4 and "not a messenger-tui address" in res.err


def test_not_initialized_and_double_init(tmp_path: Path) -> None:
    res = run_cli(tmp_path / "nobody", "id", check=False)
    assert res.code == 3 and "messenger-tui init" in res.err
    me = User(tmp_path, "me")
    me.init("ws://127.0.0.1:1")
    res = me.run("init", "--name", "again", check=False)
    assert res.code == 3 and "already exists" in res.err


def test_relay_down_queues_then_sends_later(tmp_path: Path, relay: RelayProcess) -> None:
    alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
    a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    relay.stop()
    res = alice.run("send", "bob", "typed while the relay was down")
    assert res.code == 0 and "queued" in res.err
    res = alice.run("send", "bob", "second", "--wait", "--timeout", "2", check=False)
    assert res.code == 5 and "stays queued" in res.err
    relay.restart()  # same port
    alice.run("receive")  # any command that connects drains the outbox
    got = bob.run("receive", "--json").json_lines()
    assert [m["text"] for m in got] == ["typed while the relay was down", "second"]


def test_wrong_passphrase_and_passphrase_roundtrip(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    bad = tmp_path / "bad"
    bad.write_text("wrong horse\n")
    home = tmp_path / "me"
    run_cli(
        home, "init", "--name", "me", "--relay", "ws://127.0.0.1:1", "--passphrase-file", str(pw)
    )
    identity = (home / "identity.json").read_bytes()
    assert b"correct horse" not in identity
    res = run_cli(home, "id", "--passphrase-file", str(bad), check=False)
    assert res.code == 6 and "wrong passphrase" in res.err
    res = run_cli(home, "id", check=False)
    assert res.code == 6 and "--passphrase-file" in res.err
    ok = run_cli(home, "id", "--passphrase-file", str(pw))
    assert ok.out.startswith("mt1")
    assert (home / "identity.json").read_bytes() == identity


def test_corrupt_database_is_reported_and_left_intact(tmp_path: Path) -> None:
    me = User(tmp_path, "me")
    me.init("ws://127.0.0.1:1")
    db = me.home / "messenger.db"
    for suffix in ("-wal", "-shm"):
        (me.home / f"messenger.db{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"\x00garbage" * 512)
    before = db.read_bytes()
    res = me.run("contacts", "list", check=False)
    assert res.code == 7 and "damaged" in res.err
    assert db.read_bytes() == before


def test_second_process_on_the_same_profile(tmp_path: Path, relay: RelayProcess) -> None:
    me = User(tmp_path, "me")
    me.init(relay.url)
    follower = subprocess.Popen(
        cli_command(me.home, "receive", "--follow"),
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the follower holds the lock (the lock file names its pid) before
        # competing for it; otherwise the follower itself could be the one refused.
        lock = me.home / "profile.lock"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and follower.poll() is None:
            if lock.exists() and lock.read_text().strip() == str(follower.pid):
                break
            time.sleep(0.05)
        assert follower.stderr is not None  # stderr=PIPE
        assert follower.poll() is None, f"follower exited:\n{follower.stderr.read()}"
        res = me.run("contacts", "list", check=False)
        assert res.code == 8 and f"in use by process {follower.pid}" in res.err
    finally:
        follower.terminate()
        follower.wait(10)
    assert me.run("contacts", "list", check=False).code == 0


def test_help_for_every_command() -> None:
    for cmd in (
        [],
        ["init"],
        ["send"],
        ["receive"],
        ["history"],
        ["relay"],
        ["doctor"],
        ["contacts", "add"],
        ["contacts", "verify"],
        ["id"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "messenger_tui", *cmd, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0 and "usage:" in proc.stdout

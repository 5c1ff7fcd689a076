"""Setting, changing and removing the passphrase re-encrypts the database; a crash at any point
of a change leaves a profile that opens (with the old passphrase or the new one, and the other
one says so); a wrong passphrase changes no byte; a second instance says "in use" before it
asks for a passphrase."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messenger_tui.app.errors import PassphraseProblem
from messenger_tui.app.profile import create_profile, open_profile
from messenger_tui.core.crypto import keystore
from messenger_tui.storage.db import Database
from messenger_tui.storage.errors import WrongDatabaseKey
from messenger_tui.storage.profile_lock import ProfileLock
from tests.helpers.cli import cli_command, cli_env, run_cli
from tests.helpers.profile_db import database_key, snapshot

pytestmark = pytest.mark.slow

OLD, NEW = "old passphrase", "new passphrase"
TEXT = "passphrase-canary 5e1d"


def _write(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    return path


def _profile(home: Path, passphrase: str | None) -> None:
    profile = create_profile(home, "alice", "ws://127.0.0.1:9", passphrase)
    try:
        with profile.store.db.transaction():
            cid = profile.store.contacts.insert("bob", os.urandom(32), 1).id
            for i in range(20):
                profile.store.messages.insert(
                    cid, os.urandom(16), outgoing=True, body=f"{TEXT} {i}",
                    sent_at_ms=i, state="sent",
                )  # fmt: skip
    finally:
        profile.close()


def _count(home: Path, passphrase: str | None) -> int:
    profile = open_profile(home, passphrase)
    try:
        return len(profile.store.messages.search_text("canary"))
    finally:
        profile.close()


def test_set_change_remove_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    _profile(home, None)
    old, new = _write(tmp_path / "old", OLD), _write(tmp_path / "new", NEW)
    db = home / "messenger.db"
    key_none = database_key(home)

    run_cli(home, "passphrase", "--new-passphrase-file", str(old))
    key_old = database_key(home, OLD)
    assert key_old != key_none
    with pytest.raises(WrongDatabaseKey):
        Database.open(db, key_none)  # the database itself was re-encrypted
    assert run_cli(home, "id", check=False).code == 6  # now it needs the passphrase

    res = run_cli(home, "passphrase", "--passphrase-file", str(new), "--new-passphrase-file",
                  str(old), check=False)  # fmt: skip
    assert res.code == 6 and "wrong passphrase" in res.err

    run_cli(home, "passphrase", "--passphrase-file", str(old), "--new-passphrase-file", str(new))
    key_new = database_key(home, NEW)
    with pytest.raises(WrongDatabaseKey):
        Database.open(db, key_old)
    assert run_cli(home, "id", "--passphrase-file", str(old), check=False).code == 6
    hits = run_cli(home, "search", "canary", "--passphrase-file", str(new), "--json")
    assert len(hits.json_lines()) == 20

    run_cli(home, "passphrase", "--passphrase-file", str(new), "--remove")
    with pytest.raises(WrongDatabaseKey):
        Database.open(db, key_new)
    assert database_key(home) == key_none  # without one, the key comes from the key file
    assert _count(home, None) == 20
    assert sorted(p.name for p in home.iterdir()) == ["identity.json", "messenger.db",
                                                      "profile.lock"]  # fmt: skip


_KILL_DURING_CHANGE = """
import asyncio, os, signal, sys
from pathlib import Path
import messenger_tui.app.profile_keys as profile_keys
import messenger_tui.storage.cipher as cipher
from messenger_tui.app.profile import open_profile
from messenger_tui.app.service import MessengerService

home, step, old, new = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None, sys.argv[4] or None

def kill(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)

original_reencrypt = cipher.reencrypt
cipher.reencrypt = lambda *a, **kw: original_reencrypt(*a, on_step=kill)
original_prepare = profile_keys.prepare_change

def prepare(*a, **kw):
    key = original_prepare(*a, **kw)
    kill("prepared")
    return key

profile_keys.prepare_change = prepare
original_replace = os.replace

def replace(src, dst):
    if str(src).endswith("identity.json.next"):
        kill("before-commit")
    original_replace(src, dst)
    if str(src).endswith("identity.json.next"):
        kill("committed")

os.replace = replace

async def main():
    service = MessengerService(open_profile(home, old))
    await service.change_passphrase(old, new)

asyncio.run(main())
print("not killed")
"""

#: Where the change is killed, and whether the database was re-encrypted by then.
CHANGE_STEPS = [
    ("prepared", False),
    ("checkpointed", False),
    ("exported", False),
    ("synced", False),
    ("backed-up", False),
    ("swapped", True),
    ("done", True),
    ("before-commit", True),
    ("committed", True),
]


@pytest.mark.parametrize(("old", "new"), [(OLD, NEW), (None, NEW), (OLD, None)],
                         ids=["change", "set", "remove"])  # fmt: skip
@pytest.mark.parametrize(("step", "reencrypted"), CHANGE_STEPS, ids=[s for s, _ in CHANGE_STEPS])
def test_sigkill_at_any_point_of_a_change_leaves_a_profile_that_opens(
    tmp_path: Path, step: str, reencrypted: bool, old: str | None, new: str | None
) -> None:
    home = tmp_path / "alice"
    _profile(home, old)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_CHANGE, str(home), step, old or "", new or ""],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    right, other = (new, old) if reencrypted else (old, new)
    if other is not None and right is not None:
        # the passphrase that no longer (or not yet) opens the database says what to do
        before = snapshot(home)
        said = "wrong passphrase" if step == "committed" else "change was interrupted"
        with pytest.raises(PassphraseProblem, match=said):
            open_profile(home, other)
        assert snapshot(home) == before
    # A removal past the re-encryption is finished by the old passphrase (the key file still
    # asks for it: no passphrase never completes a change); everything else by the right one.
    first = old if (reencrypted and new is None) else right
    assert _count(home, first) == 20
    assert sorted(p.name for p in home.iterdir()) == ["identity.json", "messenger.db",
                                                      "profile.lock"]  # fmt: skip
    assert keystore.is_encrypted((home / "identity.json").read_bytes()) is (right is not None)
    assert _count(home, right) == 20  # and again, now that the state is settled


@pytest.mark.parametrize("state", ["plain-key", "passphrase", "pending-change"])
def test_a_wrong_passphrase_changes_no_byte(tmp_path: Path, state: str) -> None:
    home = tmp_path / "alice"
    _profile(home, None if state == "plain-key" else OLD)
    if state == "plain-key":
        # a passphrase given for a profile without one is ignored, nothing is migrated again
        before = snapshot(home)
        assert _count(home, "anything") == 20
        assert {k: v[0] for k, v in snapshot(home).items()} == {k: v[0] for k, v in before.items()}
        return
    if state == "pending-change":
        subprocess.run(
            [sys.executable, "-c", _KILL_DURING_CHANGE, str(home), "exported", OLD, NEW],
            capture_output=True, timeout=60, env=cli_env(),
        )  # fmt: skip
        assert (home / "identity.json.next").exists() and (home / "messenger.db.rekey").exists()
    before = snapshot(home)
    for wrong in ("not it", "", None, OLD + " "):
        with pytest.raises(PassphraseProblem):
            open_profile(home, wrong)
        assert snapshot(home) == before, wrong
    res = run_cli(home, "history", "bob", "--passphrase-file", str(_write(tmp_path / "w", "no")),
                  check=False)  # fmt: skip
    assert res.code == 6 and "wrong passphrase" in res.err
    assert snapshot(home) == before


def test_a_second_instance_says_in_use_before_asking_for_the_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    _profile(home, OLD)
    lock = ProfileLock(home)
    lock.acquire()
    try:
        # On a terminal the CLI would prompt for the passphrase: it must not get that far.
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            cli_command(home, "history", "bob"),
            stdin=slave, stdout=slave, stderr=slave, env=cli_env(), start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            if b"passphrase:" in out:
                break
        if proc.poll() is None:
            proc.kill()
        code = proc.wait(10)
        try:
            while select.select([master], [], [], 0.1)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        os.close(master)
        text = out.decode(errors="replace")
        assert "passphrase:" not in text
        assert code == 8 and "in use" in text, text
    finally:
        lock.release()


async def test_the_app_says_in_use_before_its_unlock_screen(tmp_path: Path) -> None:
    from messenger_tui.app.errors import ProfileBusy
    from messenger_tui.app.launcher import Launcher
    from messenger_tui.ui import make_app
    from messenger_tui.ui.screens.onboarding import UnlockScreen

    home = tmp_path / "alice"
    _profile(home, OLD)
    seen: list[object] = []
    lock = ProfileLock(home)
    lock.acquire()
    try:
        app = make_app(launcher=Launcher(home))
        async with app.run_test() as pilot:
            for _ in range(50):
                seen.append(type(app.screen))
                if app.startup_error is not None or app._exit:
                    break
                await pilot.pause(0.05)
        assert isinstance(app.startup_error, ProfileBusy)
        assert UnlockScreen not in seen
    finally:
        lock.release()
    # once the other instance is gone, the same launcher flow asks and opens
    launcher = Launcher(home)
    launcher.claim()
    with pytest.raises(PassphraseProblem):
        await launcher.open("wrong")
    service = await launcher.open(OLD)  # the lock was kept for the second try
    await launcher.release(service)


async def test_a_failed_re_encryption_leaves_the_passphrase_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from messenger_tui.app.errors import StorageProblem
    from messenger_tui.app.service import MessengerService
    from messenger_tui.storage import cipher

    home = tmp_path / "alice"
    _profile(home, OLD)
    original = cipher.reencrypt

    def disk_full(*args, **kw):  # type: ignore[no-untyped-def]
        def on_step(name: str) -> None:
            if name == "exported":
                raise OSError(28, "No space left on device")

        return original(*args, on_step=on_step)

    service = MessengerService(open_profile(home, OLD))
    try:
        monkeypatch.setattr(cipher, "reencrypt", disk_full)
        with pytest.raises(StorageProblem, match="passphrase is unchanged"):
            await service.change_passphrase(OLD, NEW)
        monkeypatch.setattr(cipher, "reencrypt", original)
        assert len(service.search("canary")) == 20  # the open profile keeps working
        assert service.settings().passphrase_set
    finally:
        await service.close()
        service.profile.close()
    assert sorted(p.name for p in home.iterdir()) == ["identity.json", "messenger.db",
                                                      "profile.lock"]  # fmt: skip
    assert _count(home, OLD) == 20
    with pytest.raises(PassphraseProblem):
        open_profile(home, NEW)

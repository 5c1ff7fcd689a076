"""Issue 14 in groups: files and voice messages to a group through a real relay process with
the CLI. Alice sends a file of a few MiB and a voice message to a group of three; bob and
carol each save byte-identical copies; the relay's blob directory holds each blob once (one
upload serves every member); dave, removed before the sends, receives nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.relay.blob_store import META, PART
from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.counting_proxy import CountingProxy
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


def finished_blobs(relay: RelayProcess) -> list[Path]:
    folder = relay.data_dir / "blobs"
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix not in (META, PART))


def read_until(proc: subprocess.Popen[str], share: float) -> dict[str, Any]:
    """The first progress line with ``share`` of the blob uploaded (sealing and uploading
    overlap, so it may come while the status is still ``encrypting``), or the result."""
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        data: dict[str, Any] = json.loads(line)
        if data["type"] != "progress":
            return data
        if data["status"] in ("encrypting", "uploading") and data["done"] >= share * data["total"]:
            return data
    raise AssertionError(f"send-file ended early: {proc.wait()}")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_upload_serves_every_member_and_a_removed_one_gets_nothing(tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(3 * MIB + 12345))
    with RelayProcess(tmp_path / "relay") as relay:
        users = {name: User(tmp_path, name) for name in ("alice", "bob", "carol", "dave")}
        addresses = {name: user.init(relay.url) for name, user in users.items()}
        for name, user in users.items():
            for other, address in addresses.items():
                if other != name:
                    user.run("contacts", "add", address, "--name", other)
        alice, bob, carol, dave = (users[n] for n in ("alice", "bob", "carol", "dave"))

        alice.run("group", "create", "team", "--members", "bob,carol,dave")
        dave.run("receive")  # dave was in the group: it has the group and alice's old key
        alice.run("group", "remove", "team", "dave")

        sent = alice.run("send-file", "team", str(source), "--json").json_lines()
        assert sent[-1]["type"] == "sent" and sent[-1]["stored"] is True, sent
        voice = alice.run("send-voice", "team", "--duration", "2", "--json").json_lines()
        assert voice[-1]["type"] == "sent" and voice[-1]["mime_type"] == "audio/ogg", voice

        # one blob per attachment on the relay, whatever the member count
        blobs = finished_blobs(relay)
        assert len(blobs) == 2, blobs
        assert sorted(p.stat().st_size for p in blobs)[1] >= source.stat().st_size

        for member in (bob, carol):
            downloads = tmp_path / f"downloads-{member.home.name}"
            got = member.run("receive", "--json", "--download-dir", str(downloads)).json_lines()
            files = [line for line in got if line["type"] == "attachment"]
            assert len(files) == 2, got
            by_voice = {bool(f.get("voice")): f for f in files}
            data, note = by_voice[False], by_voice[True]
            assert (data["group"], data["from"], data["name"]) == ("team", "alice", "report.bin")
            assert Path(data["path"]).parent == downloads
            assert data["sha256"] == sha(source) == sha(Path(data["path"]))
            assert note["group"] == "team" and note["duration_s"] == 2.0
            assert Path(note["path"]).suffix == ".ogg" and Path(note["path"]).stat().st_size > 0
            messages = [m for m in got if m["type"] == "message"]
            assert sorted(m["kind"] for m in messages) == ["attachment", "voice"], messages
            history = member.run("history", "team", "--json").json_lines()
            kinds = [m["kind"] for m in history if m["kind"] != "notice"]
            assert kinds == ["attachment", "voice"]

        # bob's and carol's copies are the same bytes
        saved = sorted((tmp_path / "downloads-bob").iterdir())
        assert [sha(p) for p in saved] == [
            sha(p) for p in sorted((tmp_path / "downloads-carol").iterdir())
        ]

        # dave, removed before the sends, got neither pointer: nothing to fetch or show
        got = dave.run(
            "receive", "--json", "--download-dir", str(tmp_path / "downloads-dave")
        ).json_lines()
        assert [line for line in got if line["type"] == "attachment"] == []
        assert not (tmp_path / "downloads-dave").exists() or not any(
            (tmp_path / "downloads-dave").iterdir()
        )
        history = dave.run("history", "team", "--json").json_lines()
        assert [m for m in history if m["kind"] in ("attachment", "voice")] == []

        # alice's own messages: delivered to and read by both members
        alice.run("receive")  # their receipts
        own = [
            m
            for m in alice.run("group", "history", "team", "--json").json_lines()
            if m["direction"] == "out"
        ]
        assert [(m["kind"], m["delivered"], m["read"]) for m in own] == [
            ("attachment", 2, 2),
            ("voice", 2, 2),
        ]


def test_a_group_upload_killed_halfway_resumes_and_stays_one_blob(tmp_path: Path) -> None:
    """The sender is SIGKILLed early in a 48 MiB group upload and runs the same command
    again: the upload resumes from the relay's offset (at most 5 % of the blob sent twice,
    counted by a TCP forwarder), the relay holds one blob, both members save it intact."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(48 * MIB + 777))
    with (
        RelayProcess(tmp_path / "relay") as relay,
        CountingProxy("127.0.0.1", relay.port) as proxy,
    ):
        alice = User(tmp_path, "alice")
        members = {name: User(tmp_path, name) for name in ("bob", "carol")}
        a_addr = alice.init(proxy.url())
        for name, user in members.items():
            alice.run("contacts", "add", user.init(relay.url), "--name", name)
            user.run("contacts", "add", a_addr, "--name", "alice")
        alice.run("group", "create", "team", "--members", "bob,carol")
        base_up = proxy.up

        first = subprocess.Popen(
            cli_command(alice.home, "send-file", "team", str(source), "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
        )
        at_kill = read_until(first, 0.05)  # early: progress lines are 4 a second
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert at_kill["type"] == "progress" and at_kill["done"] < at_kill["total"], at_kill
        blob_size = at_kill["total"]

        again = alice.run("send-file", "team", str(source), "--json", timeout=300).json_lines()
        result = again[-1]
        # (``resumed`` is not asserted: a kill in the first second leaves no byte count stored;
        # the relay's offset is what the upload resumes from, and the bytes on the wire say so)
        assert result["type"] == "sent" and result["stored"], result
        resent = proxy.up - base_up - blob_size
        print(
            f"\ngroup upload: killed while {at_kill['status']} at {at_kill['done']}; blob "
            f"{blob_size} bytes, resent {100 * resent / blob_size:.2f} %"
        )
        assert resent <= 0.05 * blob_size, (resent, blob_size)
        assert len(finished_blobs(relay)) == 1

        for name, user in members.items():
            got = user.run(
                "receive", "--json", "--download-all", "--download-dir", str(tmp_path / name),
                timeout=300,
            ).json_lines()  # fmt: skip
            files = [line for line in got if line["type"] == "attachment"]
            assert [(f["group"], f["sha256"]) for f in files] == [("team", sha(source))], got

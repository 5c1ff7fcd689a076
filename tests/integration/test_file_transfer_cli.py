"""A big file from alice to bob with the CLI through a real relay process: the sender is
SIGKILLed at about 60 % and run again, the relay is SIGKILLed and restarted near 80 %; the
upload resumes both times, bob's copy has the same SHA-256, and the bytes alice put on the
wire (counted by a TCP forwarder) exceed the blob by at most 5 %.

The full 200 MiB of the issue: about 17 s here on the 2-core machine (sealing, uploading,
fetching and checking are four passes over the data; docs/performance.md).
``MESSENGER_TUI_BIG_FILE_MIB`` sets another size."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import User, cli_command, cli_env
from tests.helpers.counting_proxy import CountingProxy
from tests.helpers.relay_process import RelayProcess

MIB = 1024 * 1024
SIZE_MIB = int(os.environ.get("MESSENGER_TUI_BIG_FILE_MIB", "200"))

pytestmark = pytest.mark.slow


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n
    return path


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MIB):
            h.update(block)
    return h.hexdigest()


def start_send(user: User, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command(user.home, "send-file", "bob", str(path), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )


def read_until(proc: subprocess.Popen[str], share: float) -> dict[str, Any]:
    """The first upload progress line at or past ``share`` of the blob (or the result)."""
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        data: dict[str, Any] = json.loads(line)
        if data["type"] != "progress":
            return data
        if data["status"] == "uploading" and data["done"] >= share * data["total"]:
            return data
    raise AssertionError(f"send-file ended early: {proc.wait()} {proc.stderr.read()}")  # type: ignore[union-attr]


def test_a_big_file_survives_a_sender_kill_and_a_relay_kill(tmp_path: Path) -> None:
    started = time.monotonic()
    src = random_file(tmp_path / "big file.bin", SIZE_MIB * MIB + 4321)
    with (
        RelayProcess(
            tmp_path / "relay-data", extra_args=["--blob-max-size", str(300 * MIB)]
        ) as relay,
        CountingProxy("127.0.0.1", relay.port) as proxy,
    ):
        alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
        a_addr, b_addr = alice.init(proxy.url()), bob.init(relay.url)
        alice.run("contacts", "add", b_addr, "--name", "bob")
        bob.run("contacts", "add", a_addr, "--name", "alice")
        base_up = proxy.up

        first = start_send(alice, src)
        at_kill = read_until(first, 0.6)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        blob_size = at_kill["total"]
        assert at_kill["done"] < blob_size

        second = start_send(alice, src)
        at_relay_kill = read_until(second, 0.8)
        if at_relay_kill["type"] != "progress":
            second.kill()
            raise AssertionError(f"{at_relay_kill} {second.stderr.read()}")  # type: ignore[union-attr]
        relay.kill()
        relay.restart()
        assert second.stdout is not None
        lines = [json.loads(line) for line in second.stdout]
        assert second.wait(120) == 0, second.stderr.read()  # type: ignore[union-attr]
        result = lines[-1]
        assert result["type"] == "sent" and result["stored"] and result["resumed"], result
        sent_up = proxy.up - base_up

        got = bob.run(
            "receive",
            "--json",
            "--download-all",
            "--download-dir",
            str(tmp_path / "downloads"),
            timeout=300,
        ).json_lines()
        files = [line for line in got if line["type"] == "attachment"]
        assert len(files) == 1, got
        assert files[0]["size"] == src.stat().st_size
        assert files[0]["sha256"] == sha(src) == sha(Path(files[0]["path"]))
        assert Path(files[0]["path"]).name == "big file.bin"
        resent = sent_up - blob_size
        print(
            f"\n{SIZE_MIB} MiB: blob {blob_size} bytes, alice sent {sent_up} "
            f"(+{100 * resent / blob_size:.2f} %), {time.monotonic() - started:.1f} s in all"
        )
        assert resent <= 0.05 * blob_size


def test_send_file_refuses_a_missing_file_and_a_folder_clearly(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay-data") as relay:
        alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
        alice.init(relay.url)
        alice.run("contacts", "add", bob.init(relay.url), "--name", "self")
        missing = alice.run("send-file", "self", str(tmp_path / "nope.bin"), check=False)
        assert missing.code == 4 and "cannot read" in missing.err and "Traceback" not in missing.err
        folder = alice.run("send-file", "self", str(tmp_path), check=False)
        assert folder.code == 4 and "not a regular file" in folder.err
        unknown = alice.run("send-voice", "nobody", "--duration", "1", check=False)
        assert unknown.code == 4 and "nobody" in unknown.err


def test_a_voice_message_arrives_as_an_ogg_file_with_its_duration(tmp_path: Path) -> None:
    from messenger_tui.media.voice_note import read_voice_note

    with RelayProcess(tmp_path / "relay-data") as relay:
        alice, bob = User(tmp_path, "alice"), User(tmp_path, "bob")
        a_addr, b_addr = alice.init(relay.url), bob.init(relay.url)
        alice.run("contacts", "add", b_addr, "--name", "bob")
        bob.run("contacts", "add", a_addr, "--name", "alice")
        sent = alice.run("send-voice", "bob", "--duration", "3", "--json").json_lines()
        assert sent[-1]["type"] == "sent" and sent[-1]["mime_type"] == "audio/ogg"
        downloads = tmp_path / "downloads"
        got = bob.run("receive", "--json", "--download-dir", str(downloads)).json_lines()
        voice = [line for line in got if line["type"] == "attachment"]
        assert len(voice) == 1, got
        assert voice[0]["voice"] is True and voice[0]["duration_s"] == 3.0
        path = Path(voice[0]["path"])
        assert path.suffix == ".ogg" and path.parent == downloads
        stream = read_voice_note(path)
        assert stream is not None
        size = path.stat().st_size
        assert 2_000 * 3 < size < 4_500 * 3  # about 3 kB per second (24 kb/s)
        history = bob.run("history", "alice", "--json").json_lines()
        assert [m["kind"] for m in history] == ["voice"] and history[0]["text"] == "[voice 0:03]"

"""TLS with a pinned self-signed certificate, and `doctor`. (`make run`, the app on the
embedded relay, is driven through a real terminal in tests/ui/test_terminal.py.)"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.certs import make_self_signed
from tests.helpers.cli import User, cli_env, run_cli
from tests.helpers.ports import free_port
from tests.helpers.relay_process import RelayProcess

pytestmark = pytest.mark.slow


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=cli_env(),
    )


def _read_until(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 30) -> str:
    """Read the raw pipe (no Python buffering hides lines from select) until ``pattern``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
            if re.search(pattern, seen):
                return seen
        elif proc.poll() is not None:
            break
    raise AssertionError(f"{pattern!r} not printed; output so far:\n{seen}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_tls_relay_with_pinned_certificate(tmp_path: Path) -> None:
    cert, key, pin = make_self_signed(tmp_path / "tls")
    port = free_port()
    proc = _start(
        [
            sys.executable,
            "-m",
            "messenger_tui",
            "relay",
            "--port",
            str(port),
            "--data",
            str(tmp_path / "relay"),
            "--echo",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ]
    )
    try:
        out = _read_until(proc, r"echo contact: ")
        assert f"wss://127.0.0.1:{port}" in out
        found = re.search(r"echo contact: (\S+)", out)
        assert found is not None
        echo = found.group(1)
        me = User(tmp_path, "me")
        me.init(f"wss://127.0.0.1:{port}#sha256={pin}")
        me.run("contacts", "add", echo, "--name", "Echo")
        me.run("send", "Echo", "over tls")
        got = me.run("receive", "--json", "--timeout", "20").json_lines()
        assert [m["text"] for m in got if m["type"] == "message"] == ["echo: over tls"]

        # the wrong pin is refused before anything is sent; the message stays queued
        wrong = User(tmp_path, "wrong")
        res = wrong.run(
            "init", "--name", "w", "--relay", f"wss://127.0.0.1:{port}#sha256={'0' * 64}"
        )
        assert res.code == 0 and "pin" in res.err.lower()
        # no pin and an untrusted certificate: refused too
        nopin = User(tmp_path, "nopin")
        res = nopin.run("init", "--name", "n", "--relay", f"wss://127.0.0.1:{port}")
        assert "certificate" in res.err.lower()
    finally:
        _stop(proc)


def test_doctor_reports_each_problem_with_a_fix(tmp_path: Path, relay: RelayProcess) -> None:
    res = run_cli(tmp_path / "none", "doctor", check=False)
    assert res.code == 1
    assert "no profile" in res.out and "fix: create one" in res.out
    me = User(tmp_path, "me")
    me.init(relay.url)
    res = me.run("doctor", check=False)
    assert "ok  relay:" in res.out and "ok  database:" in res.out
    assert res.code == 0, res.out
    relay.stop()
    res = me.run("doctor", check=False)
    assert res.code == 1 and "!!  relay:" in res.out and "fix: start it" in res.out

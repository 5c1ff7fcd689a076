"""Fixtures: real relay processes (the bare relay, and `messenger-tui relay --echo`); the
PulseAudio server for calls through real PortAudio devices is tests/conftest.py's."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env
from tests.helpers.relay_process import RelayProcess


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    with RelayProcess(tmp_path / "relay-data") as proc:
        yield proc


class EchoRelay:
    def __init__(self, url: str, data_dir: Path, log_path: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        #: The relay's stderr: Echo's one summary line per call (its media counters).
        self.log_path = log_path

    def echo_summaries(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if "media: sent" in line]


@pytest.fixture
def relay_with_echo(tmp_path: Path) -> Iterator[tuple[EchoRelay, str]]:
    """`messenger-tui relay --echo` exactly as a user runs it; yields (relay, Echo's address)."""
    data = tmp_path / "echo-relay"
    log_path = tmp_path / "echo-relay.log"
    log_file = log_path.open("w")  # Echo's call summaries, for diagnosis
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "messenger_tui",
            "relay",
            "--port",
            "0",
            "--data",
            str(data),
            "--echo",
        ],
        stdout=subprocess.PIPE,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
    )
    url = echo = None
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while echo is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                assert proc.poll() is None, "relay --echo exited early"
                continue
            line = proc.stdout.readline()
            if m := re.match(r"relay listening on (\S+) ", line):
                url = m.group(1)
            elif m := re.match(r"echo contact: (\S+)", line):
                echo = m.group(1)
        assert url and echo, "relay --echo did not announce itself"
        yield EchoRelay(url, data, log_path), echo
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()

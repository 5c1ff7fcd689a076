"""Once through a real terminal: tmux runs `messenger-tui ui` on the embedded relay; keys are
typed with send-keys and the screen read with capture-pane."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env
from tests.helpers.ports import free_port

# tmux is installed by `make` (.ci/system-deps.sh): a missing tmux fails here, never skips.
pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, name: str) -> None:
        self.socket = f"mt-ui-test-{os.getpid()}-{name}"

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen:\n{screen}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "app"], capture_output=True
            ).returncode
            == 0
        )


def test_make_run_style_session_talks_to_echo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = cli_env()
    command = (
        f"{sys.executable} -m messenger_tui --relay-port {port} --home {home}; "  # = make run
        f"echo EXIT=$? > {tmp_path / 'exit'}"
    )
    tmux = Tmux("echo")
    tmux_env = [
        arg for k, v in env.items() if k in ("PATH", "HOME", "LANG") for arg in ("-e", f"{k}={v}")
    ]
    tmux.run("new-session", "-d", "-s", "app", "-x", "80", "-y", "24", *tmux_env, command)
    try:
        tmux.wait_for("Welcome to messenger-tui")
        # One field at a time, as a person types (focus moves between keys).
        tmux.run("send-keys", "-t", "app", "Tess")
        tmux.wait_for("Tess")
        for _ in range(3):
            tmux.run("send-keys", "-t", "app", "Enter")
            time.sleep(0.3)
        tmux.wait_for("● connected")
        tmux.wait_for("Echo")
        tmux.run("send-keys", "-t", "app", "Enter")  # open the (only) conversation
        tmux.wait_for("Say hello")
        # Typed in one go, as a fast typist would: Enter sends what came before it, and
        # what follows starts the next message.
        tmux.run("send-keys", "-t", "app", "hello from a real terminal", "Enter", "next one")
        screen = tmux.wait_for("echo: hello from a real terminal")
        assert "you" in screen and "Echo" in screen
        composer = [line for line in screen.splitlines() if "next one" in line]
        assert composer and "▊" in composer[0]  # still in the composer, not sent
        # Contact keys as tmux delivers them (Alt+B never arrived: tests/ui/test_key_reach.py),
        # from the composer, which must not type their letters.
        tmux.run("send-keys", "-t", "app", "M-x")
        tmux.wait_for("⊘ blocked (Alt+X)")
        tmux.wait_for("⊘ Echo")  # the list
        tmux.run("send-keys", "-t", "app", "M-x")
        screen = tmux.wait_for("Echo is unblocked")
        tmux.run("send-keys", "-t", "app", "M-m")
        screen = tmux.wait_for("· muted")
        assert "blocked (Alt+X)" not in screen
        composer = [line for line in screen.splitlines() if "next one" in line]
        assert composer and "next onex" not in screen and "next onem" not in screen
        tmux.run("send-keys", "-t", "app", "M-m")
        tmux.wait_for("Echo unmuted")
        tmux.run("send-keys", "-t", "app", "C-q")
        deadline = time.monotonic() + 15
        while not (tmp_path / "exit").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "exit").read_text().strip() == "EXIT=0"
    finally:
        tmux.run("kill-server")

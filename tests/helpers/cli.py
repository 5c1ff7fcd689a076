"""Run the real ``messenger-tui`` command line in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def message_lines(self) -> list[dict[str, Any]]:
        """The ``receive --json`` lines that are messages (not receipts)."""
        return [m for m in self.json_lines() if m.get("type") == "message"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MESSENGER_TUI_HOME", None)
    env.pop("MESSENGER_TUI_PASSPHRASE_FILE", None)
    return env


def cli_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "messenger_tui", *args[:1], "--home", str(home), *args[1:]]


def run_cli(home: Path, *args: str, timeout: float = 60.0, check: bool = True) -> Result:
    """``messenger-tui COMMAND --home HOME ARGS...``; with ``check`` a non-zero exit fails."""
    proc = subprocess.run(
        cli_command(home, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"messenger-tui {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        )
    return result


class User:
    """A person with a profile directory, driven through the CLI."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.home = root / name

    def run(self, *args: str, **kw: Any) -> Result:
        if args and args[0] == "contacts":
            # `contacts ACTION --home ...`: put --home after the action
            return run_cli_contacts(self.home, *args[1:], **kw)
        return run_cli(self.home, *args, **kw)

    def init(self, relay_url: str) -> str:
        res = self.run("init", "--name", self.name, "--relay", relay_url)
        return res.out.splitlines()[0].strip()

    @property
    def address(self) -> str:
        return self.run("id").out.splitlines()[0].strip()


def run_cli_contacts(home: Path, action: str, *args: str, **kw: Any) -> Result:
    check = kw.pop("check", True)
    timeout = kw.pop("timeout", 60.0)
    cmd = [sys.executable, "-m", "messenger_tui", "contacts", action, "--home", str(home), *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"contacts {action} exited {proc.returncode}:\n{proc.stderr}")
    return result

"""A headless ``messenger-tui call`` / ``answer`` process whose progress lines can be awaited.

``call`` and ``answer`` print one line per change of the call to stderr ("waiting for a
call…", "in a call with bob", "reconnecting…", "call ended: connection lost", ...). A
:class:`CallProcess` reads them in a thread and keeps each with the moment it arrived, so a
test can wait for an event, act on it (kill the relay, kill the peer) and bound how long the
next event took, without depending on exact timing. Usage::

    bob = CallProcess(bob_home, "answer", "--record", str(rec), "--timeout", "30")
    bob.wait_for("waiting for a call")
    alice = CallProcess(alice_home, "call", "bob", "--duration", "10")
    _, active_at = alice.wait_for("in a call with bob", timeout=30)
    ...
    assert alice.wait(timeout=30) == 0, alice.transcript()
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from tests.helpers.cli import User, cli_command, cli_env


class CallProcess:
    """``messenger-tui COMMAND --home HOME ARGS...`` in a subprocess, its stderr lines
    collected as ``(monotonic time, line)``."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            cli_command(home, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env() if env is None else env,
        )
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for(self, text: str, timeout: float = 30.0, start: int = 0) -> tuple[int, float]:
        """Wait for a stderr line containing ``text`` at index ``start`` or later; returns
        its index and arrival time. AssertionError (with the transcript) on timeout or when
        the process ended without printing it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i][1]:
                        return i, self.lines[i][0]
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "exited" if self._eof else f"not within {timeout:g} s"
                    raise AssertionError(
                        f"{self.args[0]}: no line with {text!r} ({why}):\n{self.transcript()}"
                    )
                self._cond.wait(min(remaining, 0.5))

    def has_line(self, text: str, start: int = 0) -> bool:
        with self._cond:
            return any(text in line for _, line in self.lines[start:])

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit (it is killed on timeout: AssertionError)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args[0]} did not exit within {timeout:g} s:\n{self.transcript()}"
            ) from None
        for thread in self._readers:
            thread.join(timeout=5)
        return code

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def transcript(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)

    def __enter__(self) -> CallProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        for thread in self._readers:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def make_pair(root: Path, relay_url: str) -> tuple[User, User]:
    """alice and bob, each with a profile on ``relay_url`` and the other as a contact."""
    alice, bob = User(root, "alice"), User(root, "bob")
    a_addr = alice.init(relay_url)
    b_addr = bob.init(relay_url)
    alice.run("contacts", "add", b_addr, "--name", "bob")
    bob.run("contacts", "add", a_addr, "--name", "alice")
    return alice, bob


def call_log(user: User, contact: str) -> list[str]:
    """The call-log lines of ``user``'s conversation with ``contact``, oldest first."""
    history = user.run("history", contact, "--json").json_lines()
    return [m["text"] for m in history if m["kind"] == "call"]

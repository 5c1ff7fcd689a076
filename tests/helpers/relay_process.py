"""A real relay process for integration tests and benchmarks.

Usage::

    with RelayProcess() as relay:            # temp data dir, --port 0
        url, key = relay.url, relay.relay_key
        ...
        relay.kill()                         # SIGKILL, like a crash
        relay.restart()                      # same data dir and (by default) same port

``RelayProcess(data_dir=..., extra_args=["--send-rate", "5"])`` passes options through to
``python -m messenger_tui.relay``; ``store="redis://..."`` runs it on that Redis (``--store``;
default ``sqlite``, the data directory). Unless ``extra_args`` sets
``--new-identities-per-hour``, the relay admits any number of new identities, and unless it
sets ``--address-send-rate`` / ``--address-auth-rate`` it does not pace Sends and connections
per source address (tests make many clients from loopback; the attack tests set the limits
they check). The relay's stderr goes to ``relay.stderr`` next to the data directory's log
(``stderr_text()`` returns it, handy in assertion messages).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

_READY = re.compile(r"^relay listening on (\S+) relay_key=([0-9a-f]{64})$")


class RelayProcess:
    """Start, kill and restart ``python -m messenger_tui.relay`` on one data directory."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
        env: dict[str, str] | None = None,
        store: str = "sqlite",
    ) -> None:
        self._own_dir: Path | None = None
        if data_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="relay-test-"))
            data_dir = self._own_dir / "data"
        self.data_dir = data_dir
        self.host = host
        self._requested_port = port
        self.extra_args = list(extra_args)
        self.store = store
        if store != "sqlite":
            self.extra_args += ["--store", store]
        if "--new-identities-per-hour" not in self.extra_args:
            self.extra_args += ["--new-identities-per-hour", "1000000"]
        for flag in ("--address-send", "--address-auth"):  # every test client is on loopback
            if f"{flag}-rate" not in self.extra_args:
                self.extra_args += [f"{flag}-rate", "1000000", f"{flag}-burst", "1000000"]
        self.startup_timeout = startup_timeout
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.relay_key = b""
        self.port = 0
        self._stderr_path = data_dir.parent / f"{data_dir.name}.relay.stderr"
        self._stderr_file: IO[str] | None = None

    # ------------------------------------------------------------------ process control

    def start(self, port: int | None = None) -> RelayProcess:
        """Spawn the relay and wait for its ready line; raises RuntimeError if it fails."""
        if self.running:
            raise RuntimeError("relay process already running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        use_port = self._requested_port if port is None else port
        cmd = [
            sys.executable,
            "-m",
            "messenger_tui.relay",
            "--data",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(use_port),
            *self.extra_args,
        ]
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        stderr = open(self._stderr_path, "a", encoding="utf-8")  # noqa: SIM115
        self._stderr_file = stderr
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, bufsize=1
        )
        line = self._read_ready_line()
        match = _READY.match(line.strip())
        if match is None:
            self._reap(signal.SIGKILL)
            raise RuntimeError(
                f"relay did not start (first line {line!r}); stderr:\n{self.stderr_text()}"
            )
        self.url = match.group(1)
        self.relay_key = bytes.fromhex(match.group(2))
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _read_ready_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.5))
            if ready:
                return self.proc.stdout.readline()
            if self.proc.poll() is not None:
                return ""

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        """Process id of the running relay."""
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the relay (a crash: nothing is flushed or closed cleanly)."""
        self._reap(signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the relay and wait for a clean exit; return its exit status."""
        return self._reap(signal.SIGTERM, timeout)

    def restart(self, *, same_port: bool = True) -> RelayProcess:
        """Stop (SIGTERM) if running, then start again on the same data directory."""
        port = self.port if same_port and self.port else None
        if self.running:
            self.stop()
        return self.start(port=port)

    def _reap(self, signum: int, timeout: float = 10.0) -> int | None:
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signum)
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
            else:
                code = proc.returncode
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        return code

    def stderr_text(self) -> str:
        """Everything the relay wrote to stderr so far (all runs)."""
        try:
            return self._stderr_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """The relay's ``relay.log``."""
        try:
            return (self.data_dir / "relay.log").read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    # ---------------------------------------------------------------- context manager

    def close(self) -> None:
        """Stop the relay and remove the temporary directory this object created."""
        if self.running:
            self.stop()
        else:
            self._reap(signal.SIGKILL)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> RelayProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

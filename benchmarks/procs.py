"""Server subprocesses (the relay, the bare forwarder) and what we read about processes.

Both servers are started the same way: a subprocess that prints one ready line on stdout
naming its URL. Their stderr goes to a file in the benchmark's temporary directory and its
tail is shown when a server fails. RSS and CPU time come from ``/proc``.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_RELAY_READY = re.compile(r"^relay listening on (\S+) relay_key=([0-9a-f]{64})$")
_FORWARDER_READY = re.compile(r"^forwarder listening on (\S+)$")

#: Relay options every benchmark uses. The per-identity Send limit (default 1,000/s, burst
#: 5,000) and the per-address pacing of Sends and connections are raised because a benchmark
#: pair sends far more than one person types, all from loopback; logging
#: stays at WARNING so per-connection INFO lines do not slow connection setup.
RELAY_BENCH_ARGS: tuple[str, ...] = (
    "--send-rate",
    "1000000",
    "--send-burst",
    "1000000",
    "--address-send-rate",
    "1000000",
    "--address-send-burst",
    "1000000",
    "--address-auth-rate",
    "1000000",
    "--address-auth-burst",
    "1000000",
    "--log-level",
    "WARNING",
)


class ServerProcess:
    """A server subprocess that announces ``... listening on URL`` when it is ready."""

    def __init__(self, name: str, cmd: Sequence[str], ready: re.Pattern[str], workdir: Path):
        self.name = name
        self.cmd = list(cmd)
        self._ready = ready
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.relay_key = b""
        self._stderr_path = workdir / f"{name}.stderr"

    @classmethod
    def relay(
        cls,
        workdir: Path,
        extra: Sequence[str] = RELAY_BENCH_ARGS,
        *,
        profile_to: Path | None = None,
    ) -> ServerProcess:
        """``python -m messenger_tui.relay --port 0 --data WORKDIR/relay-data ...``; with
        ``profile_to``, under cProfile (main thread only), stats written there on SIGTERM."""
        data = workdir / "relay-data"
        python = [sys.executable]
        if profile_to is not None:
            python += ["-m", "cProfile", "-o", str(profile_to)]
        cmd = [
            *python,
            "-m",
            "messenger_tui.relay",
            "--port",
            "0",
            # The load generator is one source address standing in for many users: no caps
            # per address (connections, new identities), which would otherwise bound it.
            "--max-connections-per-address",
            "0",
            "--new-identities-per-hour",
            "1000000",
            "--data",
            str(data),
        ]
        return cls("relay", [*cmd, *extra], _RELAY_READY, workdir)

    @classmethod
    def forwarder(cls, workdir: Path) -> ServerProcess:
        """``python -m benchmarks.forwarder --port 0``: the bare websockets baseline."""
        return cls(
            "forwarder",
            [sys.executable, "-m", "benchmarks.forwarder", "--port", "0"],
            _FORWARDER_READY,
            workdir,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Spawn and wait for the ready line; RuntimeError (with stderr) if it fails."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self._stderr_path, "a", encoding="utf-8") as stderr:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
            )
        line = self._read_line(timeout)
        match = self._ready.match(line.strip())
        if match is None:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start (first line {line!r}); stderr:\n{self.stderr_tail()}"
            )
        self.url = match.group(1)
        if match.re.groups >= 2:
            self.relay_key = bytes.fromhex(match.group(2))
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.2))
            if ready:
                return self.proc.stdout.readline()
            if self.proc.poll() is not None:
                return ""
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """RuntimeError with the stderr tail if the server died."""
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"{self.name} exited (status {code}); stderr:\n{self.stderr_tail()}")

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        """CPU time of the whole process (every thread)."""
        return cpu_seconds(self.pid)

    def loop_cpu_seconds(self) -> float:
        """CPU time of the main thread alone (the event loop; the relay's SQLite work runs
        on a worker thread)."""
        return cpu_seconds(self.pid, self.pid)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            text = self._stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServerProcess:
        if not self.alive():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of ``pid`` (all threads, or thread ``tid``) in seconds."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path, encoding="ascii") as fh:
        data = fh.read()
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def raise_nofile(needed: int) -> int:
    """Raise the soft file-descriptor limit towards ``needed`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return int(soft)


def machine_info() -> dict[str, object]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    try:
        from websockets.version import version as ws_version
    except Exception:
        ws_version = "?"
    mem_total = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_total = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    return {
        "nproc": cores,
        "cpu_model": model,
        "memory": mem_total,
        "python": platform.python_version(),
        # which build: Debian's (PGO + LTO) and a plain source build differ by 20-30 %
        "python_executable": os.path.realpath(sys.executable),
        "implementation": platform.python_implementation(),
        "websockets": ws_version,
        "kernel": platform.release(),
    }


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle/iowait since boot (from /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = fh.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK

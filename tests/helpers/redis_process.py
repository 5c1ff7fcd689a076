"""Real ``redis-server`` processes for tests and benchmarks (never a fake).

Usage::

    with RedisProcess() as redis:            # temp dir, a free port, AOF appendfsync always
        url = redis.url                      # "redis://127.0.0.1:PORT/0"
        redis.kill()                         # SIGKILL, like a crash
        redis.restart()                      # same directory (its AOF) and the same port

    with RedisProcess(tls=True) as redis:    # TLS only (a certificate made for the test)
        url = redis.url                      # "rediss://127.0.0.1:PORT/0?ssl_ca_certs=..."

    with RedisClusterProcess(masters=3) as cluster:   # three masters, all 16,384 slots covered
        url = cluster.url                             # a seed node's URL
        cluster.nodes[0].kill()

The Debian package ``redis-server`` provides the binaries (the Makefile's DEB_PACKAGES). Each
server runs in its own temporary directory with its own config given on the command line, so
nothing on the machine (a system service, ``/etc/redis``) is read or touched.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers.certs import make_certificate
from tests.helpers.ports import free_port

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10,000) is a valid, free port too."""
    while True:
        port = free_port()  # under 32,768: the bus port is valid
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class RedisProcess:
    """Start, kill and restart one ``redis-server`` on its own directory and port."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        appendfsync: str = "always",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
        tls: bool = False,
    ) -> None:
        self._own_dir: Path | None = None
        if directory is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
            directory = self._own_dir
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        #: TLS only (no plaintext port): a self-signed certificate for 127.0.0.1, which is
        #: its own CA (clients need not present one).
        self.tls = make_certificate(self.directory / "tls", ["127.0.0.1"]) if tls else None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.cert}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def command(self) -> list[str]:
        port = ["--port", str(self.port)]
        if self.tls is not None:
            port = ["--port", "0", "--tls-port", str(self.port)]
            port += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            port += ["--tls-ca-cert-file", str(self.tls.cert), "--tls-auth-clients", "no"]
        return [
            REDIS_SERVER,
            *port,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            *self.extra_args,
        ]

    def start(self) -> RedisProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server already running")
        if shutil.which(REDIS_SERVER) is None:
            raise RuntimeError("redis-server is not installed (make setup installs it)")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()  # a server that never got ready must not outlive the test
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start-up:\n{self.log_text()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"redis-server not ready in {self.startup_timeout} s:\n{self.log_text()}"
        )

    def ping(self) -> bool:
        """True when the server answers PING (and has finished loading its AOF)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                if self.tls is None:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(64).startswith(b"+PONG")
                context = ssl.create_default_context(cafile=str(self.tls.cert))
                with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"PING\r\n")
                    return tls.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def cli(self, *args: str) -> str:
        """Run ``redis-cli`` against this server; its standard output."""
        tls = [] if self.tls is None else ["--tls", "--cacert", str(self.tls.cert)]
        done = subprocess.run(
            [REDIS_CLI, "-p", str(self.port), *tls, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL, like a crash: what the AOF holds is all that survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RedisClusterProcess:
    """A Redis Cluster of ``masters`` real servers on loopback, slots spread over them."""

    def __init__(self, masters: int = 3, *, appendfsync: str = "always") -> None:
        self._root = Path(tempfile.mkdtemp(prefix="redis-cluster-test-"))
        self.nodes = [
            RedisProcess(
                self._root / f"node{index}",
                port=free_cluster_port(),
                appendfsync=appendfsync,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            for index in range(masters)
        ]

    @property
    def url(self) -> str:
        """The first node's URL: a seed the client discovers the others from."""
        return self.nodes[0].url

    def start(self) -> RedisClusterProcess:
        try:
            self._start()
        except BaseException:
            self.close()  # the nodes already started must not outlive a failed start
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self._wait_ok()

    def _wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in node.cli("cluster", "info") for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not reach cluster_state:ok")

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> RedisClusterProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""Free TCP ports on loopback for test servers (relay, redis-server, a dead address).

Tests run in parallel (pytest-xdist workers, and other suites on the same machine): a port
is chosen at random below Linux's ephemeral range, then checked free by binding it.
"""

from __future__ import annotations

import random
import socket

#: Ports handed out by :func:`free_port`: below Linux's ephemeral range (32768-60999), where
#: the kernel never puts an outgoing connection or a ``--port 0`` listener, so a port chosen
#: here stays free until the server binds it (and again across a restart), even with other
#: test processes (pytest-xdist workers) connecting and listening all the time.
_PORTS = range(20_000, 32_768)


def free_port() -> int:
    """A TCP port free on loopback right now (chosen at random among :data:`_PORTS`, so that
    parallel test processes rarely try the same one)."""
    while True:
        port = random.choice(_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port

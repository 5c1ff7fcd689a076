"""A cap on the concurrent connections of one source address.

Identities are free, addresses are not: the relay counts open TCP connections per source
(an IPv4 address, or the /64 prefix of an IPv6 address, which one host usually holds whole).
A connection over ``cap`` is refused during the websocket handshake with HTTP 429 and a
one-line reason; connections still open past ``2 * cap`` (clients that never send their HTTP
request) are aborted at once, so one source holds at most ``2 * cap`` sockets for
``OPEN_TIMEOUT_S``. ``cap = 0`` turns the cap off (benchmarks that load the relay from one
address).

:class:`SourceCap` is the bookkeeping (sans-I/O); :func:`counted_connection_class` makes the
websockets connection class that feeds it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from http import HTTPStatus
from typing import Any, Final

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

#: Seconds between two log lines about refused connections (a flood writes one per period).
LOG_PERIOD_S: Final = 60.0


def source_of(peername: Any) -> str:
    """The key a connection is counted under: its IPv4 address or its IPv6 /64."""
    if not isinstance(peername, tuple) or not peername:
        return "?"
    host = str(peername[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SourceCap:
    """Open connections per source, and the refusals the cap caused."""

    def __init__(self, cap: int, log: logging.Logger) -> None:
        self.cap = cap
        self._log = log
        self._open: dict[str, int] = {}
        #: Connections refused with HTTP 429, and connections aborted past twice the cap.
        self.refused = 0
        self.aborted = 0
        self._logged_at = -LOG_PERIOD_S
        self._unlogged = 0

    def open_count(self, source: str) -> int:
        """Connections open from ``source`` now."""
        return self._open.get(source, 0)

    @property
    def sources(self) -> int:
        """Sources with at least one open connection."""
        return len(self._open)

    def opened(self, source: str) -> bool:
        """Count a new connection; False when it must be aborted at once (past 2 x cap)."""
        count = self._open.get(source, 0) + 1
        self._open[source] = count
        if self.cap and count > 2 * self.cap:
            self.aborted += 1
            self._note()
            return False
        return True

    def closed(self, source: str) -> None:
        """A counted connection ended."""
        count = self._open.get(source, 0) - 1
        if count > 0:
            self._open[source] = count
        else:
            self._open.pop(source, None)

    def over(self, source: str) -> bool:
        """Whether a connection from ``source`` (already counted) is over the cap."""
        return bool(self.cap) and self._open.get(source, 0) > self.cap

    def refuse(self) -> None:
        """Count a refusal (the caller answers 429)."""
        self.refused += 1
        self._note()

    def _note(self) -> None:
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_PERIOD_S:
            self._log.warning(
                "refused %d connections over the cap of %d per source address (%d refused, "
                "%d aborted since start)",
                self._unlogged,
                self.cap,
                self.refused,
                self.aborted,
            )
            self._logged_at = now
            self._unlogged = 0

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request`` hook: HTTP 429 for a connection over the cap."""
        source = getattr(connection, "source", "?")
        if not self.over(source):
            return None
        self.refuse()
        return connection.respond(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"too many connections from your address (at most {self.cap}); close some first\n",
        )


def counted_connection_class(cap: SourceCap) -> type[ServerConnection]:
    """A ServerConnection class that counts itself in ``cap`` while its socket is open."""

    class CountedConnection(ServerConnection):
        source = "?"

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.source = source_of(transport.get_extra_info("peername"))
            keep = cap.opened(self.source)
            super().connection_made(transport)
            if not keep and isinstance(transport, asyncio.Transport):
                transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            cap.closed(self.source)
            super().connection_lost(exc)

    return CountedConnection

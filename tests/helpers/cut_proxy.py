"""A TCP forwarder on loopback, on the test's event loop, whose connections the test can cut:
put it between a client and the relay, then :meth:`CutProxy.cut` aborts (both ways, at once,
as a dead link does) the connections accepted after a :meth:`CutProxy.mark`. New connections
are forwarded as before (the relay is still there: only the path broke), unless
:attr:`CutProxy.refusing` is set: then each new connection is closed at once (the path stays
down)."""

from __future__ import annotations

import asyncio
import contextlib


class CutProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.refused = 0
        #: While True, new connections are closed at once.
        self.refusing = False
        self._server: asyncio.Server | None = None
        # (index of the connection, its two transports) while open
        self._open: dict[int, tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = {}

    async def __aenter__(self) -> CutProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self.cut(0)

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def mark(self) -> int:
        """The number of connections accepted so far (hand it to :meth:`cut`)."""
        return self.accepted

    def cut(self, since: int) -> int:
        """Abort every open connection accepted after ``since`` of them; how many."""
        cut = 0
        for index, (down, up) in list(self._open.items()):
            if index >= since:
                for writer in (down, up):
                    writer.transport.abort()
                del self._open[index]
                cut += 1
        return cut

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        index = self.accepted
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._open[index] = (writer, up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(256 * 1024):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open.pop(index, None)

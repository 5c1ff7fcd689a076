"""The relay server: websockets endpoint, shared services, start/stop, and run_relay().

Embed it::

    relay = RelayServer(RelayConfig(data_dir=path))
    await relay.start()            # binds; relay.port / relay.url / relay.relay_key are set
    ...
    await relay.stop()             # closes connections (1001), commits pending writes

or ``async with RelayServer(config) as relay: ...``, or run it until SIGTERM/SIGINT or
cancellation with :func:`run_relay` (what ``python -m messenger_tui.relay`` and the CLI do).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final

from websockets.asyncio.server import Server, ServerConnection, serve

from messenger_tui.core.address import short_fingerprint
from messenger_tui.relay.blob_route import BlobService, BlobSession, is_blob_path
from messenger_tui.relay.clock import Clock, wall_clock_ms
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.connection_cap import SourceCap, counted_connection_class
from messenger_tui.relay.data_dir_lock import DataDirLock, DataDirLocked
from messenger_tui.relay.errors import DataDirError, ListenError, TlsSetupError
from messenger_tui.relay.logs import (
    attach_file_log,
    attach_stderr_log,
    detach_log,
    relay_log,
    websockets_log,
)
from messenger_tui.relay.media_route import MediaRouteConnection, MediaRouter, is_media_path
from messenger_tui.relay.relay_key import RelayKeyError, load_or_create_relay_key
from messenger_tui.relay.server_setup import build_ssl_context, reason, restrict_db_files
from messenger_tui.relay.server_setup import prepare_data_dir as prepare_data_dir  # the CLI's
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.services_wiring import build_services
from messenger_tui.relay.session import MessageRouteConnection
from messenger_tui.relay.store import RelayStore, StoreUnavailable
from messenger_tui.relay.store_open import StoreSetupError, open_store, shared_relay_key
from messenger_tui.relay.store_url import parse_store_url

#: Incoming websocket messages buffered per connection before reading pauses (high, low).
MAX_QUEUE: Final = (32, 8)
#: Bytes buffered in the transport per connection before writes wait (high, low).
WRITE_LIMIT: Final = (64 * 1024, 16 * 1024)
CLOSE_TIMEOUT_S: Final = 5.0
OPEN_TIMEOUT_S: Final = 10.0
CLOSE_INTERNAL: Final = 1011
#: Unexpected connection failures logged per minute (one line each, no traceback); more are
#: counted and summed up in the next line, so a flood cannot rotate the log away.
MAX_FAILURE_LINES_PER_MIN: Final = 10


class RelayServer:
    """A running (or startable) relay. See the module docstring."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        clock: Clock = wall_clock_ms,
        store: RelayStore | None = None,
    ) -> None:
        """``store`` replaces the SQLite store (another backend); the server closes it."""
        self.config = config
        self._clock = clock
        self._custom_store = store
        self._server: Server | None = None
        self._services: RelayServices | None = None
        self._lock = DataDirLock(config.data_dir)
        self._log_handler: logging.Handler | None = None
        self._relay_key: bytes | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._media = MediaRouter()
        self._blobs: BlobService | None = None
        self._source_cap = SourceCap(config.max_connections_per_address, relay_log)
        self._failures = 0  # unexpected connection failures since start
        self._failures_unlogged = 0
        self._failure_window = (0.0, 0)  # (minute start, lines logged in it)

    # --------------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The TCP port the relay listens on (the real one when configured with 0)."""
        if self._server is None:
            raise RuntimeError("the relay is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS) for clients."""
        host = self.config.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "wss" if self.config.tls else "ws"
        return f"{scheme}://{host}:{self.port}"

    @property
    def relay_key(self) -> bytes:
        """The relay's Ed25519 public key (what Challenge.relay_key carries)."""
        if self._relay_key is None:
            raise RuntimeError("the relay is not started")
        return self._relay_key

    @property
    def services(self) -> RelayServices:
        """Shared state (for in-process tests and stats); only while started."""
        if self._services is None:
            raise RuntimeError("the relay is not started")
        return self._services

    @property
    def source_cap(self) -> SourceCap:
        """Open connections per source address and the refusals of the cap."""
        return self._source_cap

    @property
    def failures(self) -> int:
        """Connections that ended with an unexpected error (closed 1011) since start."""
        return self._failures

    @property
    def media(self) -> MediaRouter:
        """The call media route: routes by join token and ``media.stats`` (counters)."""
        return self._media

    @property
    def blobs(self) -> BlobService:
        """The blob route (attachments): index, files and ``blobs.stats``; only once started."""
        if self._blobs is None:
            raise RuntimeError("the relay is not started")
        return self._blobs

    # ---------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the data directory, the store and the listening socket.

        Raises a :class:`~messenger_tui.relay.errors.RelayStartError` naming the cause in one
        line: ``TlsSetupError`` (certificate or key), ``DataDirError`` (``DataDirLocked`` when
        another relay uses the data directory), ``ListenError`` (port in use); nothing is
        left running.
        """
        if self._server is not None:
            raise RuntimeError("the relay is already started")
        config = self.config
        try:
            ssl_context = build_ssl_context(config)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise TlsSetupError(
                f"cannot load the TLS certificate {config.tls_cert} or key {config.tls_key}: "
                f"{reason(exc)}"
            ) from None
        prepare_data_dir(config.data_dir)
        handler: logging.Handler | None = None
        store: RelayStore | None = None
        try:
            try:
                self._lock.acquire()
                handler = attach_file_log(config.data_dir)
                self._log_handler = handler
                # The relay signs nothing yet: only the public half is kept.
                signing_key = load_or_create_relay_key(config.data_dir)
                spec = parse_store_url(config.store_url)
                if self._custom_store is None and spec.redis_url is None:
                    restrict_db_files(config.data_dir)
                store = self._custom_store or await open_store(
                    spec,
                    config.data_dir,
                    durable_fsync=config.durable_fsync,
                    accept_volatile=config.accept_volatile_store,
                )
                # Several nodes on one Redis share one relay key (kept in Redis).
                signing_key = await shared_relay_key(store, signing_key)
                self._relay_key = bytes(signing_key.verify_key)
            except (DataDirLocked, StoreSetupError):
                raise
            except (OSError, sqlite3.Error, RelayKeyError) as exc:
                raise DataDirError(
                    f"cannot use the data directory {config.data_dir}: {reason(exc)}"
                ) from None
            self._services = build_services(config, self._clock, store, self.relay_key)
            if self._services.nodes is not None:
                await self._services.nodes.start()  # RedisUnavailable: one line, no traceback
            self._services.mailboxes.start()
            blobs = BlobService(
                config.blob,
                config.blob.directory(config.data_dir),
                self._clock,
                relay_log,
                shared=self._services.nodes is not None,  # several nodes: a shared directory
                store=store,  # a Redis store holds the blob quotas of every node
            )
            try:
                await blobs.start()
            except OSError as exc:
                raise DataDirError(
                    f"cannot use the blob directory {blobs.files.dir}: {reason(exc)}"
                ) from None
            self._blobs = blobs
            try:
                self._server = await serve(
                    self._handle,
                    config.host,
                    config.port,
                    ssl=ssl_context,
                    compression=None,
                    max_size=config.max_frame,
                    max_queue=MAX_QUEUE,
                    write_limit=WRITE_LIMIT,
                    ping_interval=config.ping_interval_s,
                    ping_timeout=config.ping_timeout_s,
                    open_timeout=OPEN_TIMEOUT_S,
                    close_timeout=CLOSE_TIMEOUT_S,
                    logger=websockets_log,
                    process_request=self._source_cap.process_request,
                    create_connection=counted_connection_class(self._source_cap),
                )
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on {config.host}:{config.port}: {reason(exc)}; is another "
                    "relay running there? pick another --port"
                ) from None
        except BaseException:
            if self._blobs is not None:
                await self._blobs.stop()
                self._blobs = None
            if self._services is not None:
                await self._services.mailboxes.stop()
                if self._services.nodes is not None:
                    await self._services.nodes.stop()
                self._services = None
            if store is not None:
                await store.close()
            detach_log(handler)
            self._log_handler = None
            self._lock.release()
            raise
        self._stopped.clear()
        self._maintenance = asyncio.get_running_loop().create_task(
            self._maintain(), name="relay-maintenance"
        )
        relay_log.info(
            "relay listening on %s (relay key %s, data %s)",
            self.url,
            short_fingerprint(self.relay_key),
            config.data_dir,
        )

    async def stop(self) -> None:
        """Close every connection (1001), commit pending writes, close the store. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=True)
        await server.wait_closed()
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        if self._blobs is not None:
            await self._blobs.stop()
        services, self._services = self._services, None
        if services is not None:
            await services.mailboxes.stop()
            if services.nodes is not None:
                await services.nodes.stop()
            await services.store.close()
            media = self._media.stats
            relay_log.info(
                "relay stopped (%d connections served, %d envelopes stored; media: %d legs "
                "joined, %d frames forwarded, %d dropped)",
                services.counters.connections,
                services.mailboxes.stored,
                media.joins,
                media.forwarded,
                media.dropped,
            )
        handler = self._log_handler
        self._log_handler = None
        if handler is not None:
            detach_log(handler)
        self._lock.release()
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Start if needed and serve until :meth:`stop` is called; on cancellation, stop."""
        if self._server is None:
            await self.start()
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self.stop())
            raise

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------ wiring

    async def _handle(self, connection: ServerConnection) -> None:
        services = self._services
        if services is None:  # stopping
            return
        try:
            path = connection.request.path if connection.request else "/"
            if is_media_path(path):
                await MediaRouteConnection(connection, services, self._media).run()
            elif is_blob_path(path) and self._blobs is not None:
                await BlobSession(connection, services, self._blobs).run()
            else:
                await MessageRouteConnection(connection, services).run()
        except Exception as exc:
            # A bug, not the client's fault; but a client may be able to trigger it on every
            # connection, so it costs one bounded log line, never a traceback per connection.
            self._connection_failed(exc)
            await connection.close(CLOSE_INTERNAL, "internal error")

    def _connection_failed(self, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        start, lines = self._failure_window
        if now - start >= 60.0:
            start, lines = now, 0
        if lines >= MAX_FAILURE_LINES_PER_MIN:
            self._failures_unlogged += 1
            self._failure_window = (start, lines)
            return
        relay_log.error(
            "connection failed (closed 1011): %s: %s (%d failures since start, %d not logged)",
            type(exc).__name__,
            str(exc)[:200],
            self._failures,
            self._failures_unlogged,
        )
        relay_log.debug("connection failure details", exc_info=exc)
        self._failures_unlogged = 0
        self._failure_window = (start, lines + 1)

    async def _maintain(self) -> None:
        """Purge expired envelopes and forget idle rate-limit buckets, periodically."""
        while True:
            services = self._services
            if services is None:
                return
            try:
                purged = await services.store.purge_expired(now_ms=self._clock())
                if purged:
                    relay_log.info("purged %d expired envelopes", purged)
            except StoreUnavailable as exc:
                relay_log.error("purging expired envelopes failed: %s", exc)
            except Exception:
                relay_log.exception("purging expired envelopes failed")
            services.limits.prune()
            services.prekeys.prune()
            relay_log.debug(
                "stats: %d online, %d commits, %d stored, %d duplicates",
                services.presence.online_count,
                services.mailboxes.commits,
                services.mailboxes.stored,
                services.mailboxes.duplicates,
            )
            await asyncio.sleep(self.config.purge_interval_s)


async def run_relay(
    config: RelayConfig,
    on_ready: Callable[[RelayServer], None] | None = None,
    *,
    clock: Clock = wall_clock_ms,
    companion: Callable[[RelayServer], Awaitable[None]] | None = None,
) -> None:
    """Run a relay until SIGTERM/SIGINT or cancellation, then stop it cleanly.

    ``on_ready`` runs once the relay listens (read ``server.url`` and ``server.relay_key``
    there). ``companion`` (the CLI's Echo contact) runs beside the relay once it listens; if
    it fails, the relay stops and its exception propagates. Logs go to ``relay.log`` in the
    data directory, and to stderr unless the process already configured logging. Raises
    :class:`~messenger_tui.relay.errors.RelayStartError` when the relay cannot start.
    """
    stderr_handler = attach_stderr_log()
    server = RelayServer(config, clock=clock)
    try:
        await server.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signal support: cancellation still works
        side: asyncio.Task[None] | None = None
        try:
            if on_ready is not None:
                on_ready(server)
            stopping = loop.create_task(stop.wait())
            waits: set[asyncio.Future[Any]] = {stopping}
            if companion is not None:
                side = loop.create_task(_run_companion(companion, server))
                waits.add(side)
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if side is not None and side.done():
                side.result()  # a failed companion ends the relay with its error
            relay_log.info("stop signal received")
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if side is not None and not side.done():
                side.cancel()
                await asyncio.gather(side, return_exceptions=True)
            await asyncio.shield(server.stop())
    finally:
        detach_log(stderr_handler)


async def _run_companion(
    companion: Callable[[RelayServer], Awaitable[None]], server: RelayServer
) -> None:
    await companion(server)
    await asyncio.Event().wait()  # a companion that returns leaves the relay running

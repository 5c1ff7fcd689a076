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
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve

from messenger_tui.core.address import short_fingerprint
from messenger_tui.relay.address_pacing import address_pacers
from messenger_tui.relay.clock import Clock, wall_clock_ms
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.data_dir_lock import DataDirLock
from messenger_tui.relay.logs import (
    attach_file_log,
    attach_stderr_log,
    detach_log,
    relay_log,
    websockets_log,
)
from messenger_tui.relay.mailboxes import Mailboxes
from messenger_tui.relay.media_route import MediaRouter, MediaSession, is_media_path
from messenger_tui.relay.prekey_directory import PrekeyDirectory
from messenger_tui.relay.presence import Peer, PresenceRegistry
from messenger_tui.relay.rate_limit import RateLimiter
from messenger_tui.relay.relay_key import load_or_create_relay_key
from messenger_tui.relay.services import RateLimiters, RelayServices
from messenger_tui.relay.session import RelaySession
from messenger_tui.relay.sqlite_store import DB_FILE, SqliteStore
from messenger_tui.relay.store import RelayStore, StoredEnvelope

#: Incoming websocket messages buffered per connection before reading pauses (high, low).
MAX_QUEUE: Final = (32, 8)
#: Bytes buffered in the transport per connection before writes wait (high, low).
WRITE_LIMIT: Final = (64 * 1024, 16 * 1024)
CLOSE_TIMEOUT_S: Final = 5.0
OPEN_TIMEOUT_S: Final = 10.0


def build_ssl_context(config: RelayConfig) -> ssl.SSLContext | None:
    """The server TLS context for ``config`` (TLS 1.2+), or None without a certificate."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


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
    def media(self) -> MediaRouter:
        """The call media route: routes by join token and ``media.stats`` (counters)."""
        return self._media

    # ---------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the data directory, the store and the listening socket.

        Raises ``DataDirLocked`` if another relay uses the data directory, ``OSError`` if
        the port is taken, ``ssl.SSLError`` for a bad certificate; nothing is left running.
        """
        if self._server is not None:
            raise RuntimeError("the relay is already started")
        config = self.config
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock.acquire()
        handler = attach_file_log(config.data_dir)
        self._log_handler = handler
        store: RelayStore | None = None
        try:
            # The relay signs nothing yet: only the public half is kept.
            self._relay_key = bytes(load_or_create_relay_key(config.data_dir).verify_key)
            ssl_context = build_ssl_context(config)
            store = self._custom_store or await SqliteStore.open(
                config.data_dir / DB_FILE, durable_fsync=config.durable_fsync
            )
            self._services = self._build_services(store)
            self._services.mailboxes.start()
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
            )
        except BaseException:
            if self._services is not None:
                await self._services.mailboxes.stop()
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
        services, self._services = self._services, None
        if services is not None:
            await services.mailboxes.stop()
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

    def _build_services(self, store: RelayStore) -> RelayServices:
        config = self.config
        clock = self._clock
        presence = PresenceRegistry()
        offered: dict[int, Peer] = {}

        def route_stored(envelope: StoredEnvelope) -> None:
            peer = presence.peer_for(envelope.recipient)
            if peer is not None:
                peer.offer(envelope)
                offered[id(peer)] = peer

        def batch_end() -> None:
            for peer in offered.values():
                peer.offers_done()
            offered.clear()

        return RelayServices(
            config=config,
            relay_key=self.relay_key,
            clock=clock,
            store=store,
            mailboxes=Mailboxes(
                store,
                clock=clock,
                ttl_ms=config.ttl_ms,
                mailbox_limit=config.mailbox_limit,
                quota=config.mailbox_quota,
                on_stored=route_stored,
                on_batch_end=batch_end,
            ),
            prekeys=PrekeyDirectory(
                store,
                max_one_time=config.max_one_time_prekeys,
                clock=clock,
                pair_limit=config.prekey_pair_limit,
                target_limit=config.prekey_target_limit,
            ),
            presence=presence,
            limits=RateLimiters(
                send=RateLimiter(config.send_limit, clock),
                signal=RateLimiter(config.signal_limit, clock),
                fetch_bundle=RateLimiter(config.fetch_bundle_limit, clock),
                new_identity=RateLimiter(config.new_identity_limit, clock),
                **address_pacers(config, clock),
            ),
            log=relay_log,
        )

    async def _handle(self, connection: ServerConnection) -> None:
        services = self._services
        if services is None:  # stopping
            return
        if is_media_path(connection.request.path if connection.request else "/"):
            await MediaSession(connection, services, self._media).run()
        else:
            await RelaySession(connection, services).run()

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
) -> None:
    """Run a relay until SIGTERM/SIGINT or cancellation, then stop it cleanly.

    ``on_ready`` runs once the relay listens (read ``server.url`` and ``server.relay_key``
    there). Logs go to ``relay.log`` in the data directory, and to stderr unless the process
    already configured logging.
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
        try:
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
            relay_log.info("stop signal received")
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            await asyncio.shield(server.stop())
    finally:
        detach_log(stderr_handler)

"""The relay client: one authenticated websocket to the relay, kept alive with reconnects.

The lifecycle (connect, wait with backoff, connected, healthy, replaced, closing) is the
transition table of :mod:`messenger_tui.core.links.relay_link`, with its rules; this module
only drives it: it carries out the table's effects (start an attempt, arm a timer, report a
state) and feeds it what happened (authenticated, failed, round trip, dropped, timer)::

    OFFLINE -> CONNECTING -> CONNECTED -> (drop) -> RECONNECTING(retry_in) -> CONNECTING -> ...
                    \\-> (failure) -> RECONNECTING(retry_in) -> CONNECTING -> ...

A connection is *authenticated* once the relay answered the challenge with ``AuthOk``; only
then does the client accept frames to send. Everything tied to one connection (the outbound
queue, its reader and writer, the futures waiting for ``Stored``/``Ok``/``Bundle``) lives in a
:class:`~messenger_tui.transport.relay_connection.RelayConnection` (rules there and in
:mod:`~messenger_tui.transport.pending_answers`); when it drops, every pending future fails
with :class:`NotConnected` and the caller retries on the next connection (sends are
idempotent by message id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from messenger_tui.core.links.effects import Abort, Connect, Report
from messenger_tui.core.links.relay_link import (
    REPLACED_RETRY_S,
    STABLE_AFTER,
    ConnectionState,
    LinkEffect,
    LinkPhase,
    RelayLink,
)
from messenger_tui.core.wire import KEY_LEN, MAX_FRAME, AuthOk, Challenge, Subscribe, encode
from messenger_tui.transport.backoff import Backoff
from messenger_tui.transport.dialer import authenticate, connection_class, open_socket
from messenger_tui.transport.errors import NotConnected, TransportError
from messenger_tui.transport.failover_urls import FailoverUrls
from messenger_tui.transport.relay_connection import FrameHandler, RelayConnection
from messenger_tui.transport.relay_requests import ACK_CHUNK, RelayRequests
from messenger_tui.transport.table_driver import TableDriver
from messenger_tui.transport.urls import RelayEndpoint

__all__ = [
    "ACK_CHUNK",
    "MAX_QUEUE",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "REPLACED_RETRY_S",
    "STABLE_AFTER",
    "ConnectionState",
    "RelayClient",
    "StateChange",
]

logger = logging.getLogger(__name__)

#: Seconds between keepalive pings; a relay that does not answer within PING_TIMEOUT is
#: treated as dead and the connection is dropped (then ``run`` reconnects).
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
#: Incoming frames buffered before the socket stops reading (backpressure on a slow app).
MAX_QUEUE = 32
#: Seconds to wait for the relay's answer to our close frame.
CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class StateChange:
    """Passed to ``on_state``. ``error`` is a user-readable reason for the last failure/drop."""

    state: ConnectionState
    retry_in: float | None = None
    error: str | None = None


StateHandler = Callable[[StateChange], None]
ConnectedHandler = Callable[[AuthOk, Challenge], Awaitable[None]]


class RelayClient(RelayRequests, TableDriver[RelayLink]):
    """Client side of the relay protocol over one websocket.

    Either call :meth:`start` (or await :meth:`run`) to stay connected with automatic
    reconnects, or :meth:`connect_once` for a single attempt. Incoming Deliver, Drained,
    Presence, SignalDeliver and unsolicited Error frames are passed to ``on_frame`` one at a
    time in arrival order; the app must ack a Deliver (:meth:`ack`) only after storing it
    durably. Call :meth:`close` when done.

    ``url`` may list several relay URLs of one deployment, comma-separated: each attempt
    uses one (:attr:`endpoint`, :attr:`current_url`) and a failed attempt or a drop fails
    over to the next (rule 10 of :mod:`messenger_tui.core.links.relay_link`); the outbox
    resends what was not acknowledged there.

    Raises :class:`BadRelayUrl` at construction for an unusable URL.
    """

    def __init__(
        self,
        url: str,
        identity_public: bytes,
        sign: Callable[[bytes], bytes],
        *,
        on_frame: FrameHandler,
        on_state: StateHandler | None = None,
        on_connected: ConnectedHandler | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        ping_interval: float | None = PING_INTERVAL,
        ping_timeout: float | None = PING_TIMEOUT,
        stable_after: float = STABLE_AFTER,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | bool | None = None,
    ) -> None:
        super().__init__()
        if len(identity_public) != KEY_LEN:
            raise ValueError(f"identity_public must be {KEY_LEN} bytes")
        self._relays = FailoverUrls(url)
        self.endpoint: RelayEndpoint = self._relays.endpoint
        self._conn_class: type[ClientConnection] | None = None
        self._machine = RelayLink(
            backoff if backoff is not None else Backoff(), stable_after=stable_after
        )
        self.set_url(url)
        self._identity = bytes(identity_public)
        self._sign = sign
        self._on_frame = on_frame
        self._on_state = on_state
        self._on_connected = on_connected
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ssl_context = ssl_context
        self._proxy = proxy

        self._challenge: Challenge | None = None
        self._auth: AuthOk | None = None
        self._connected_event = asyncio.Event()
        self._run_active = False
        self._run_done: asyncio.Future[None] | None = None
        self._stop: asyncio.Future[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._attempt: asyncio.Task[RelayConnection] | None = None

    def set_url(self, url: str) -> None:
        """Use the relay at ``url`` (or the comma-separated URLs of one deployment) from the
        next connection on (:class:`BadRelayUrl` for an unusable one; nothing changes then).
        To switch now: :meth:`close`, then :meth:`start` again."""
        self._relays.replace(url)
        self._machine.set_urls(len(self._relays))
        self._use_url(0)

    def _use_url(self, index: int) -> None:
        self._relays.index = index
        self.endpoint = self._relays.endpoint
        self._conn_class = connection_class(self.endpoint)

    @property
    def current_url(self) -> str:
        """The relay URL in use (of several: the one of the current or last connection);
        media and blob links of a call go there."""
        return self._relays.current

    @property
    def urls(self) -> list[str]:
        """Every relay URL of the profile, in failover order."""
        return list(self._relays.urls)

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> ConnectionState:
        return self._machine.state

    @property
    def lifecycle(self) -> RelayLink:
        """The lifecycle table's machine (read its phase; drive it only through this class)."""
        return self._machine

    @property
    def connected(self) -> bool:
        """True while an authenticated connection is up and accepts frames."""
        return self._link is not None and self._link.alive

    @property
    def challenge(self) -> Challenge | None:
        """Challenge of the most recent successful authentication (None before the first):
        gives the relay key, its max envelope size and the Echo contact."""
        return self._challenge

    @property
    def auth(self) -> AuthOk | None:
        """AuthOk of the most recent successful authentication (None before the first)."""
        return self._auth

    # ------------------------------------------------------------------ connecting

    async def connect_once(self) -> AuthOk:
        """Connect, verify TLS and the pin, authenticate, and start reading frames.

        Returns the AuthOk (already connected: the current one). Raises
        :class:`RelayUnreachable`, :class:`TlsError`, :class:`PinMismatch`,
        :class:`RelayAuthFailed` or :class:`RelayProtocolError`; the caller decides whether
        to retry (or uses :meth:`run`, which does). Not usable while :meth:`run` is active.
        With several relay URLs it tries each once, in failover order, and raises the last
        failure.
        """
        for remaining in range(len(self._relays) - 1, -1, -1):
            try:
                return await self._connect_once_attempt()
            except TransportError:
                offline = self._machine.phase is LinkPhase.OFFLINE
                if not remaining or self._run_active or not offline:
                    raise
                logger.info("relay %s failed; trying the next relay URL", self.endpoint.display)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _connect_once_attempt(self) -> AuthOk:
        if self._link is not None and self._link.alive:
            return self._link.auth
        if self._run_active:
            raise RuntimeError("run() manages this connection; use wait_connected() instead")
        phase = self._machine.phase
        if phase is LinkPhase.CLOSING:
            raise NotConnected(f"the client of relay {self.endpoint.display} is closing")
        if phase is not LinkPhase.ONCE_CONNECTING:
            self._feed(self._machine.connect_once(self._now()))
        attempt = self._attempt
        assert attempt is not None
        try:
            link = await attempt
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if attempt.cancelled() and task is not None and not task.cancelling():
                raise NotConnected(
                    f"connection attempt to relay {self.endpoint.display} cancelled by close()"
                ) from None
            raise
        return link.auth

    async def run(self) -> None:
        """Stay connected until :meth:`close` (or cancellation).

        Each failed attempt or dropped connection emits ``StateChange(RECONNECTING,
        retry_in=..., error=...)`` and waits a :class:`Backoff` delay; the backoff restarts
        from the base when a healthy connection drops (rules in
        :mod:`messenger_tui.core.links.relay_link`). Returns after :meth:`close`; on return
        the connection is closed and pending futures have failed with :class:`NotConnected`.
        """
        if self._run_active:
            raise RuntimeError("RelayClient.run() is already running")
        loop = asyncio.get_running_loop()
        self._run_active = True
        self._stop = loop.create_future()
        self._run_done = loop.create_future()
        try:
            # Adopts a link connect_once() made: a second one would replace it on the relay.
            self._feed(self._machine.start(self._now()))
            await self._stop
        finally:
            self._feed(self._machine.stop(self._now()))
            await self._end_attempt()
            current = self._link
            if current is not None:
                self._link_lost(current, "client stopped")
                await current.close()
            self._run_active = False
            self._finish_stop()
            if not self._run_done.done():
                self._run_done.set_result(None)

    def reconnect_now(self) -> bool:
        """Connect at once instead of waiting for the retry timer, and restart the backoff
        (the user's "reconnect now"). True if an attempt started; False while connected, while
        an attempt is already in flight, or when :meth:`run` is not active."""
        if not self._run_active or self._machine.phase is LinkPhase.CLOSING:
            return False
        effects = self._machine.reconnect_now(self._now())
        self._feed(effects)
        return any(isinstance(effect, Connect) for effect in effects)

    async def start(self) -> None:
        """Run :meth:`run` as a background task (no-op when already running). Use
        :meth:`wait_connected` to wait for the first connection and :meth:`close` to stop."""
        if self._run_task is not None and not self._run_task.done():
            return
        self._run_task = asyncio.create_task(self.run(), name="relay-client")

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until authenticated; False if that did not happen within ``timeout`` s."""
        if self.connected:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            return False
        return True

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued frame was handed to the socket. False on timeout or if
        there is no connection (then queued frames are lost)."""
        link = self._link
        if link is None or not link.alive:
            return False
        return await link.flush(timeout)

    async def close(self) -> None:
        """Write what is queued (up to a couple of seconds), close the connection, stop
        :meth:`run`, and fail pending futures with NotConnected.

        Safe to call more than once; :meth:`start` or :meth:`connect_once` may be used again
        afterwards."""
        self._feed(self._machine.stop(self._now()))
        try:
            if self._stop is not None and not self._stop.done():
                self._stop.set_result(None)
            link = self._link
            if link is not None:
                await link.flush(CLOSE_TIMEOUT)
                self._link_lost(link, "closed by the client")
                await link.close()
            run_done = self._run_done
            if run_done is not None and not run_done.done():
                await asyncio.shield(run_done)
            run_task, self._run_task = self._run_task, None
            if run_task is not None and run_task is not asyncio.current_task():
                try:
                    await run_task
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
                except Exception:
                    logger.exception("relay client run() ended with an error")
        finally:
            await self._end_attempt()
            self._finish_stop()

    # ------------------------------------------------------------------ internals

    def _feed(self, effects: list[LinkEffect]) -> None:
        """Carry out the lifecycle table's effects, then arm its timer."""
        for effect in effects:
            if isinstance(effect, Report):
                self._report(effect)
            elif isinstance(effect, Connect):
                if self._machine.url_index != self._relays.index:  # failover (rule 10)
                    self._use_url(self._machine.url_index)
                attempt = asyncio.get_running_loop().create_task(
                    self._connect(), name="relay-connect"
                )
                attempt.add_done_callback(_retrieve)
                self._attempt = attempt
            elif isinstance(effect, Abort) and self._attempt is not None:
                self._attempt.cancel()
            # Wait: the timer below follows the machine's deadline
        self._follow_deadline()

    def _report(self, report: Report[ConnectionState]) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(StateChange(report.state, report.retry_in, report.error))
        except Exception:
            logger.exception("on_state handler failed")

    def _finish_stop(self) -> None:
        if self._machine.phase is LinkPhase.CLOSING:
            self._feed(self._machine.closed(self._now()))

    async def _end_attempt(self) -> None:
        attempt, self._attempt = self._attempt, None
        if attempt is not None and not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt

    async def _connect(self) -> RelayConnection:
        """One attempt (the table's Connect): its outcome goes back to the table."""
        managed = self._machine.phase is LinkPhase.CONNECTING
        try:
            link = await self._open()
        except asyncio.CancelledError:
            self._feed(self._machine.failed(self._now(), "connection attempt cancelled"))
            raise
        except TransportError as exc:
            self._feed(self._machine.failed(self._now(), str(exc)))
            raise
        except Exception as exc:
            error = str(exc)
            if managed:
                logger.exception("unexpected failure connecting to relay %s", self.endpoint.display)
                error = f"unexpected error: {exc!r}"
            self._feed(self._machine.failed(self._now(), error))
            raise
        if self._machine.phase not in (LinkPhase.CONNECTING, LinkPhase.ONCE_CONNECTING):
            # stopped while the handshake finished: the table no longer wants this link
            link.ws.transport.abort()
            raise NotConnected(f"connection to relay {self.endpoint.display} no longer wanted")
        self._activate(link)
        return link

    async def _open(self) -> RelayConnection:
        ws = await self._open_socket()
        challenge, auth = await authenticate(
            ws,
            self.endpoint,
            self._identity,
            self._sign,
            clock=self._clock,
            connect_timeout=self._connect_timeout,
        )
        return RelayConnection(
            ws,
            challenge,
            auth,
            display=self.endpoint.display,
            on_frame=self._on_frame,
            on_answer=self._answered,
            on_lost=self._link_lost,
        )

    async def _open_socket(self) -> ClientConnection:
        return await open_socket(
            self.endpoint,
            connect_timeout=self._connect_timeout,
            max_size=MAX_FRAME,
            max_queue=MAX_QUEUE,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
            ssl_context=self._ssl_context,
            proxy=self._proxy,
            conn_class=self._conn_class,
        )

    def _activate(self, link: RelayConnection) -> None:
        self._link = link
        self._challenge = link.challenge
        self._auth = link.auth
        link.start()
        if self._subscription is not None:
            link.enqueue(encode(Subscribe(identities=self._subscription)))
        self._connected_event.set()
        logger.info("connected to relay %s (%d queued)", self.endpoint.display, link.auth.queued)
        self._feed(self._machine.authenticated(self._now()))
        if self._on_connected is not None:
            link.on_connected = asyncio.create_task(
                self._run_on_connected(link), name="relay-on-connected"
            )

    async def _run_on_connected(self, link: RelayConnection) -> None:
        assert self._on_connected is not None
        try:
            await self._on_connected(link.auth, link.challenge)
        except NotConnected:
            logger.info("on_connected interrupted: the relay connection dropped")
        except Exception:
            logger.exception("on_connected handler failed")

    def _answered(self, link: RelayConnection) -> None:
        """The relay answered on ``link``: it is healthy (the table's rule 4)."""
        if self._machine.phase is LinkPhase.CONNECTED and link is self._link:
            self._feed(self._machine.round_trip(self._now()))

    def _link_lost(self, link: RelayConnection, reason: str) -> None:
        """Mark ``link`` dead: fail its pending futures, stop its tasks, report the drop."""
        if not link.alive:
            return
        link.alive = False
        if self._link is link:
            self._link = None
            self._connected_event.clear()
        link.shut(reason)
        logger.info("disconnected from relay %s: %s", self.endpoint.display, reason)
        self._feed(self._machine.dropped(self._now(), reason, replaced=link.replaced))


def _retrieve(task: asyncio.Task[RelayConnection]) -> None:
    """Mark an attempt's exception retrieved: its outcome already went to the table."""
    if not task.cancelled():
        task.exception()

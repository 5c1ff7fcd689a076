"""The relay client: one authenticated websocket to the relay, kept alive with reconnects.

The lifecycle (connect, wait with backoff, connected, healthy, replaced, closing) is the
transition table of :mod:`messenger_tui.core.links.relay_link`, with its rules; this module
only drives it: it carries out the table's effects (start an attempt, arm a timer, report a
state) and feeds it what happened (authenticated, failed, round trip, dropped, timer)::

    OFFLINE -> CONNECTING -> CONNECTED -> (drop) -> RECONNECTING(retry_in) -> CONNECTING -> ...
                    \\-> (failure) -> RECONNECTING(retry_in) -> CONNECTING -> ...

A connection is *authenticated* once the relay answered the challenge with ``AuthOk``; only
then does the client accept frames to send. Everything tied to one connection (the outbound
queue, futures waiting for ``Stored``/``Ok``/``Bundle``) lives in a :class:`_Link`; when the
link drops, every pending future fails with :class:`NotConnected` and the caller retries on
the next connection (sends are idempotent by message id).

Design rules:

* one reader task per link decodes frames and dispatches them in arrival order; frames it
  cannot decode are logged (size and error only) and skipped, the connection stays up;
* one writer task per link drains an unbounded FIFO of encoded frames, so synchronous
  :meth:`RelayClient.submit_envelope` can pipeline thousands of sends without awaiting;
* nothing logged contains keys, signatures or bodies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import (
    ConnectionClosed,
)

from messenger_tui.core.close_codes import CLOSE_REPLACED
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.links.effects import Abort, Connect, Report
from messenger_tui.core.links.relay_link import (
    REPLACED_RETRY_S,
    STABLE_AFTER,
    ConnectionState,
    LinkEffect,
    LinkPhase,
    RelayLink,
)
from messenger_tui.core.wire import (
    KEY_LEN,
    MAX_FRAME,
    MAX_MULTI_HEADER,
    MAX_MULTI_RECIPIENTS,
    MESSAGE_ID_LEN,
    Ack,
    Auth,
    AuthOk,
    Bundle,
    Challenge,
    ClientFrame,
    Deliver,
    Drained,
    Error,
    FetchBundle,
    MultiRecipient,
    Ok,
    Presence,
    PublishPrekeys,
    RelayFrame,
    Send,
    SendMulti,
    Signal,
    SignalDeliver,
    Stored,
    StoredMulti,
    Subscribe,
    decode_relay_frame,
    encode,
)
from messenger_tui.transport.backoff import Backoff
from messenger_tui.transport.dialer import (
    authenticate,
    connection_class,
    open_socket,
)
from messenger_tui.transport.errors import (
    NotConnected,
    RelayProtocolError,
    RelayRequestError,
    RequestTimeout,
    TransportError,
)
from messenger_tui.transport.urls import RelayEndpoint, parse_relay_url

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
#: Largest number of ids in one Ack frame (16-byte ids stay far below MAX_FRAME).
ACK_CHUNK = 4096


@dataclass(frozen=True)
class StateChange:
    """Passed to ``on_state``. ``error`` is a user-readable reason for the last failure/drop."""

    state: ConnectionState
    retry_in: float | None = None
    error: str | None = None


FrameHandler = Callable[[RelayFrame], Awaitable[None]]
StateHandler = Callable[[StateChange], None]
ConnectedHandler = Callable[[AuthOk, Challenge], Awaitable[None]]


class _Link:
    """One authenticated connection and everything whose lifetime is bound to it."""

    def __init__(self, ws: ClientConnection, challenge: Challenge, auth: AuthOk) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.challenge = challenge
        self.auth = auth
        self.alive = True
        self.outq: collections.deque[bytes] = collections.deque()
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()  # set while nothing is queued or being written
        self.idle.set()
        self.stored: dict[bytes, asyncio.Future[Stored]] = {}
        self.stored_multi: dict[bytes, asyncio.Future[StoredMulti]] = {}
        self.requests: dict[int, asyncio.Future[RelayFrame]] = {}
        self.lost: asyncio.Future[str] = loop.create_future()
        #: The relay closed us with 4000: another instance of this identity took over.
        self.replaced = False
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.on_connected: asyncio.Task[None] | None = None

    def enqueue(self, data: bytes) -> None:
        self.outq.append(data)
        self.idle.clear()
        self.wakeup.set()


class RelayClient:
    """Client side of the relay protocol over one websocket.

    Either call :meth:`start` (or await :meth:`run`) to stay connected with automatic
    reconnects, or :meth:`connect_once` for a single attempt. Incoming Deliver, Drained,
    Presence, SignalDeliver and unsolicited Error frames are passed to ``on_frame`` one at a
    time in arrival order; the app must ack a Deliver (:meth:`ack`) only after storing it
    durably. Call :meth:`close` when done.

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
        if len(identity_public) != KEY_LEN:
            raise ValueError(f"identity_public must be {KEY_LEN} bytes")
        self.endpoint: RelayEndpoint = parse_relay_url(url)
        self._conn_class: type[ClientConnection] | None = None
        self.set_url(url)
        self._identity = bytes(identity_public)
        self._sign = sign
        self._on_frame = on_frame
        self._on_state = on_state
        self._on_connected = on_connected
        self._machine = RelayLink(
            backoff if backoff is not None else Backoff(), stable_after=stable_after
        )
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ssl_context = ssl_context
        self._proxy = proxy

        self._link: _Link | None = None
        self._challenge: Challenge | None = None
        self._auth: AuthOk | None = None
        self._connected_event = asyncio.Event()
        self._refs = itertools.count(1)
        self._subscription: list[bytes] | None = None
        self._run_active = False
        self._run_done: asyncio.Future[None] | None = None
        self._stop: asyncio.Future[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._attempt: asyncio.Task[_Link] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def set_url(self, url: str) -> None:
        """Use the relay at ``url`` from the next connection on (:class:`BadRelayUrl` for an
        unusable one; nothing changes then). To switch now: :meth:`close`, then
        :meth:`start` again."""
        endpoint = parse_relay_url(url)
        self.endpoint = endpoint
        self._conn_class = connection_class(endpoint)

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

    @property
    def pending_envelopes(self) -> int:
        """Envelopes submitted on the current connection that await their Stored frame."""
        return len(self._link.stored) if self._link is not None else 0

    @property
    def outbound_queued(self) -> int:
        """Encoded frames waiting to be written to the socket."""
        return len(self._link.outq) if self._link is not None else 0

    # ------------------------------------------------------------------ connecting

    async def connect_once(self) -> AuthOk:
        """Connect, verify TLS and the pin, authenticate, and start reading frames.

        Returns the AuthOk (already connected: the current one). Raises
        :class:`RelayUnreachable`, :class:`TlsError`, :class:`PinMismatch`,
        :class:`RelayAuthFailed` or :class:`RelayProtocolError`; the caller decides whether
        to retry (or uses :meth:`run`, which does). Not usable while :meth:`run` is active.
        """
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
                await self._close_ws(current.ws)
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
        return await self._flush_link(link, timeout)

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
                await self._flush_link(link, CLOSE_TIMEOUT)
                self._link_lost(link, "closed by the client")
                await self._close_ws(link.ws)
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

    # ------------------------------------------------------------------ sending

    async def send(self, frame: ClientFrame) -> None:
        """Queue ``frame`` on the current connection (written in call order).

        Raises :class:`NotConnected` without an authenticated connection. A frame queued
        just before a drop is lost silently: use it for frames whose loss is harmless or
        retried anyway (Ack, Subscribe, Signal); use :meth:`submit_envelope` and
        :meth:`request` when the answer matters."""
        if isinstance(frame, Auth):
            raise ValueError("Auth frames are sent by the client itself during connect")
        self._require_link().enqueue(encode(frame))

    def submit_envelope(
        self, id: bytes, to: bytes, body: bytes, access: bytes | None = None
    ) -> asyncio.Future[Stored]:
        """Send an envelope; the returned future resolves with the relay's Stored frame.

        The future fails with :class:`RelayRequestError` if the relay refuses it (an Error
        frame whose ref is ``id``) and with :class:`NotConnected` if the connection drops
        first; then keep the envelope and submit it again after reconnecting (the relay
        dedupes by id). Await the future or add a done callback. Raises NotConnected at
        once when offline, ValueError for a bad id/recipient length or an oversized body.
        Submitting an id that is still in flight returns the existing future. Any number
        of envelopes may be in flight at once. ``access`` is the recipient's delivery secret
        when we have it (see :mod:`messenger_tui.core.delivery_access`).
        """
        link = self._require_link()
        if len(id) != MESSAGE_ID_LEN:
            raise ValueError(f"message id must be {MESSAGE_ID_LEN} bytes, got {len(id)}")
        if len(to) != KEY_LEN:
            raise ValueError(f"recipient identity must be {KEY_LEN} bytes, got {len(to)}")
        if len(body) > link.challenge.max_envelope:
            raise ValueError(
                f"envelope of {len(body)} bytes exceeds the relay's limit of "
                f"{link.challenge.max_envelope} bytes"
            )
        existing = link.stored.get(id)
        if existing is not None:
            return existing
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        link.stored[id] = future
        link.enqueue(encode(Send(id=id, to=to, body=body, access=access)))
        return future

    def submit_multi(
        self, id: bytes, body: bytes, recipients: Sequence[MultiRecipient]
    ) -> asyncio.Future[StoredMulti]:
        """Upload ``body`` once for every recipient (a group message; docs/protocol.md,
        "Multi-recipient send"); the future resolves with the relay's StoredMulti, which
        reports each recipient (retry the refused ones later with the same ``id``).

        Fails as :meth:`submit_envelope` does (RelayRequestError when the whole frame is
        refused, NotConnected on a drop); ValueError at once for a bad id, no or too many
        recipients, one named twice, a bad identity, an oversized header, body or frame.
        """
        link = self._require_link()
        if len(id) != MESSAGE_ID_LEN:
            raise ValueError(f"message id must be {MESSAGE_ID_LEN} bytes, got {len(id)}")
        if not 1 <= len(recipients) <= MAX_MULTI_RECIPIENTS:
            raise ValueError(f"1 to {MAX_MULTI_RECIPIENTS} recipients, got {len(recipients)}")
        if any(len(r.to) != KEY_LEN for r in recipients):
            raise ValueError(f"recipient identities must be {KEY_LEN} bytes")
        if len({r.to for r in recipients}) != len(recipients):
            raise ValueError("a recipient is named twice")
        if any(len(r.header) > MAX_MULTI_HEADER for r in recipients):
            raise ValueError(f"a recipient header is over {MAX_MULTI_HEADER} bytes")
        if len(body) > link.challenge.max_envelope:
            raise ValueError(
                f"body of {len(body)} bytes exceeds the relay's limit of "
                f"{link.challenge.max_envelope} bytes"
            )
        existing = link.stored_multi.get(id)
        if existing is not None:
            return existing
        data = encode(SendMulti(id=id, body=body, to=list(recipients)))
        if len(data) > MAX_FRAME:
            raise ValueError(
                f"the send is {len(data)} bytes with its {len(recipients)} recipients, over the "
                f"frame limit of {MAX_FRAME}: send a smaller body or split the recipients"
            )
        future: asyncio.Future[StoredMulti] = asyncio.get_running_loop().create_future()
        link.stored_multi[id] = future
        link.enqueue(data)
        return future

    async def request(self, frame: Any, timeout: float = 10.0) -> RelayFrame:
        """Send a frame that carries ``ref`` (FetchBundle, PublishPrekeys) and return the
        relay's answer (Bundle or Ok) with the same ref.

        A ``ref`` of 0 is replaced by a fresh one. Raises :class:`RelayRequestError` for an
        Error answer, :class:`RequestTimeout` after ``timeout`` seconds (the request may
        still take effect), :class:`NotConnected` when offline or on a drop."""
        link = self._require_link()
        ref = frame.ref
        if ref == 0:
            ref = next(self._refs)
            frame = msgspec.structs.replace(frame, ref=ref)
        elif ref in link.requests:
            raise ValueError(f"a request with ref {ref} is already in flight")
        future: asyncio.Future[RelayFrame] = asyncio.get_running_loop().create_future()
        link.requests[ref] = future
        link.enqueue(encode(frame))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(
                f"relay {self.endpoint.display} did not answer {type(frame).__name__} "
                f"within {timeout:g} s"
            ) from None
        finally:
            if link.requests.get(ref) is future:
                del link.requests[ref]

    async def fetch_bundle(self, identity: bytes, timeout: float = 10.0) -> Bundle:
        """Fetch ``identity``'s prekey bundle (consumes one one-time prekey on the relay).

        The caller MUST verify ``spk_sig`` before using it. Raises RelayRequestError with
        code ``not_found`` when the identity published none, plus :meth:`request`'s errors."""
        answer = await self.request(FetchBundle(ref=0, identity=identity), timeout)
        if not isinstance(answer, Bundle):
            raise RelayProtocolError(f"relay answered fetch_bundle with {_tag(answer)}")
        if answer.identity != identity:
            raise RelayProtocolError("relay answered fetch_bundle with another identity's bundle")
        return answer

    async def publish_prekeys(self, frame: PublishPrekeys, timeout: float = 10.0) -> Ok:
        """Publish the signed prekey and one-time prekeys; returns the relay's Ok (with
        ``prekeys_remaining``). Raises like :meth:`request`."""
        answer = await self.request(frame, timeout)
        if not isinstance(answer, Ok):
            raise RelayProtocolError(f"relay answered publish_prekeys with {_tag(answer)}")
        return answer

    async def ack(self, ids: list[bytes]) -> None:
        """Delete delivered envelopes from the mailbox. Call only after they are durably
        stored; an ack lost to a drop just means a redelivery (dedupe by id)."""
        link = self._require_link()
        for start in range(0, len(ids), ACK_CHUNK):
            link.enqueue(encode(Ack(ids=list(ids[start : start + ACK_CHUNK]))))

    async def subscribe(self, identities: Iterable[bytes]) -> None:
        """Receive Presence for these identities (replaces the previous set).

        The set is remembered and sent again after every reconnect, so this never raises
        NotConnected: offline, it is sent on the next connection."""
        self._subscription = list(identities)
        link = self._link
        if link is not None and link.alive:
            link.enqueue(encode(Subscribe(identities=self._subscription)))

    async def signal(self, to: bytes, body: bytes) -> None:
        """Forward an ephemeral body (typing, ringing) to ``to`` if online; never stored.
        Raises NotConnected when offline."""
        await self.send(Signal(to=to, body=body))

    # ------------------------------------------------------------------ internals

    def _require_link(self) -> _Link:
        link = self._link
        if link is None or not link.alive:
            raise NotConnected(f"not connected to relay {self.endpoint.display}")
        return link

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _feed(self, effects: list[LinkEffect]) -> None:
        """Carry out the lifecycle table's effects, then arm its timer."""
        for effect in effects:
            if isinstance(effect, Report):
                self._report(effect)
            elif isinstance(effect, Connect):
                attempt = asyncio.get_running_loop().create_task(
                    self._connect(), name="relay-connect"
                )
                attempt.add_done_callback(_retrieve)
                self._attempt = attempt
            elif isinstance(effect, Abort) and self._attempt is not None:
                self._attempt.cancel()
            # Wait: the timer below follows the machine's deadline
        deadline = self._machine.next_deadline
        timer = self._timer
        if timer is not None and (deadline is None or timer.when() != deadline):
            timer.cancel()
            self._timer = timer = None
        if deadline is not None and timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._on_timer, deadline)

    def _on_timer(self, deadline: float) -> None:
        self._timer = None
        self._feed(self._machine.poll(max(self._now(), deadline)))

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

    async def _connect(self) -> _Link:
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

    async def _open(self) -> _Link:
        ws = await self._open_socket()
        challenge, auth = await authenticate(
            ws,
            self.endpoint,
            self._identity,
            self._sign,
            clock=self._clock,
            connect_timeout=self._connect_timeout,
        )
        return _Link(ws, challenge, auth)

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

    def _activate(self, link: _Link) -> None:
        self._link = link
        self._challenge = link.challenge
        self._auth = link.auth
        link.reader = asyncio.create_task(self._read_loop(link), name="relay-reader")
        link.writer = asyncio.create_task(self._write_loop(link), name="relay-writer")
        if self._subscription is not None:
            link.enqueue(encode(Subscribe(identities=self._subscription)))
        self._connected_event.set()
        logger.info("connected to relay %s (%d queued)", self.endpoint.display, link.auth.queued)
        self._feed(self._machine.authenticated(self._now()))
        if self._on_connected is not None:
            link.on_connected = asyncio.create_task(
                self._run_on_connected(link), name="relay-on-connected"
            )

    async def _run_on_connected(self, link: _Link) -> None:
        assert self._on_connected is not None
        try:
            await self._on_connected(link.auth, link.challenge)
        except NotConnected:
            logger.info("on_connected interrupted: the relay connection dropped")
        except Exception:
            logger.exception("on_connected handler failed")

    async def _read_loop(self, link: _Link) -> None:
        ws = link.ws
        reason = "connection closed"
        try:
            while True:
                try:
                    data = await ws.recv()
                except ConnectionClosed as exc:
                    reason = f"connection closed: {exc}"
                    if exc.rcvd is not None and exc.rcvd.code == CLOSE_REPLACED:
                        link.replaced = True
                        reason = (
                            "another instance of this profile connected to the relay and took "
                            "over (the same identity key is in use elsewhere)"
                        )
                    break
                try:
                    frame = decode_relay_frame(data)
                except MalformedFrame as exc:
                    logger.warning(
                        "skipping a %d-byte frame from relay %s that cannot be decoded: %s",
                        len(data),
                        self.endpoint.display,
                        exc,
                    )
                    continue
                await self._dispatch(link, frame)
        except asyncio.CancelledError:
            if link.alive:  # cancelled from outside: do not leave the socket open
                ws.transport.abort()
            raise
        except Exception as exc:
            logger.exception("relay reader failed")
            reason = f"client error: {exc!r}"
            ws.transport.abort()
        finally:
            self._link_lost(link, reason)

    async def _dispatch(self, link: _Link, frame: RelayFrame) -> None:
        if (
            self._machine.phase is LinkPhase.CONNECTED
            and link is self._link
            and isinstance(frame, Drained | Stored | StoredMulti | Bundle | Ok)
        ):
            # the relay answered on this connection: it is healthy (the table's rule 4)
            self._feed(self._machine.round_trip(self._now()))
        if isinstance(frame, Stored):
            stored = link.stored.pop(frame.id, None)
            if stored is not None and not stored.done():
                stored.set_result(frame)
        elif isinstance(frame, StoredMulti):
            multi = link.stored_multi.pop(frame.id, None)
            if multi is not None and not multi.done():
                multi.set_result(frame)
        elif isinstance(frame, Bundle | Ok):
            answer = link.requests.pop(frame.ref, None)
            if answer is not None and not answer.done():
                answer.set_result(frame)
            elif isinstance(frame, Ok) and frame.ref == 0:
                await self._deliver(frame)  # unsolicited: "your one-time prekeys run low"
            else:
                logger.debug("ignoring a %s for a request no longer pending", _tag(frame))
        elif isinstance(frame, Error):
            ref = frame.ref
            waiter: asyncio.Future[Any] | None = None
            if isinstance(ref, bytes):
                waiter = link.stored.pop(ref, None)
                if waiter is None:
                    waiter = link.stored_multi.pop(ref, None)
            elif isinstance(ref, int) and not isinstance(ref, bool):
                waiter = link.requests.pop(ref, None)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_exception(RelayRequestError(frame.code, frame.message))
                return
            await self._deliver(frame)
        elif isinstance(frame, Deliver | Drained | Presence | SignalDeliver):
            await self._deliver(frame)
        else:
            logger.warning("ignoring an unexpected %s frame after authentication", _tag(frame))

    async def _deliver(self, frame: RelayFrame) -> None:
        try:
            await self._on_frame(frame)
        except Exception:
            logger.exception("on_frame handler failed on a %s frame", _tag(frame))

    async def _write_loop(self, link: _Link) -> None:
        ws = link.ws
        queue = link.outq
        try:
            while True:
                if not queue:
                    link.idle.set()
                    link.wakeup.clear()
                    await link.wakeup.wait()
                    continue
                await ws.send(queue.popleft())
        except ConnectionClosed:
            pass  # the reader sees the close and reports it
        except Exception:
            logger.exception("relay writer failed")
            ws.transport.abort()

    def _link_lost(self, link: _Link, reason: str) -> None:
        """Mark ``link`` dead: fail its pending futures, stop its tasks, report the drop."""
        if not link.alive:
            return
        link.alive = False
        if self._link is link:
            self._link = None
            self._connected_event.clear()
        message = (
            f"connection to relay {self.endpoint.display} lost before the answer arrived "
            f"({reason}); retry after reconnecting"
        )
        pending: list[asyncio.Future[Any]] = [
            *link.stored.values(),
            *link.stored_multi.values(),
            *link.requests.values(),
        ]
        link.stored.clear()
        link.stored_multi.clear()
        link.requests.clear()
        for future in pending:
            if not future.done():
                future.set_exception(NotConnected(message))
        link.outq.clear()
        current = asyncio.current_task()
        for task in (link.reader, link.writer, link.on_connected):
            if task is not None and task is not current and not task.done():
                task.cancel()
        if not link.lost.done():
            link.lost.set_result(reason)
        logger.info("disconnected from relay %s: %s", self.endpoint.display, reason)
        self._feed(self._machine.dropped(self._now(), reason, replaced=link.replaced))

    @staticmethod
    async def _flush_link(link: _Link, timeout: float) -> bool:
        if link.idle.is_set():
            return True
        idle: asyncio.Future[Any] = asyncio.ensure_future(link.idle.wait())
        waiting: list[asyncio.Future[Any]] = [idle, link.lost]
        try:
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        return link.idle.is_set() and link.alive

    @staticmethod
    async def _close_ws(ws: ClientConnection) -> None:
        try:
            await ws.close()
        except Exception:
            ws.transport.abort()


def _tag(frame: object) -> str:
    return type(frame).__name__


def _retrieve(task: asyncio.Task[_Link]) -> None:
    """Mark an attempt's exception retrieved: its outcome already went to the table."""
    if not task.cancelled():
        task.exception()

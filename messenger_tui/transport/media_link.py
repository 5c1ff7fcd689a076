"""The client end of a call's media route: one websocket per call leg at the relay's ``/media``.

:class:`MediaLink` implements :class:`messenger_tui.media.ports.MediaCarrier` (structurally;
transport does not import media). Lifecycle::

    CONNECTING -> JOINED <-> RECONNECTING -> ... -> LOST        (close() -> CLOSED from anywhere)

* :meth:`MediaLink.start` (``on_frame``) returns at once; the link connects in the
  background: TCP/TLS/pin and the relay's Challenge -> Auth -> AuthOk exactly as the message link
  (:mod:`messenger_tui.transport.dialer`), then ``media_join(token, leg)`` -> ``media_joined``.
* :meth:`MediaLink.send` never blocks: it writes the frame straight to the socket, or drops it
  (returns False, counted) when the link is not joined or the socket's write buffer holds more
  than ``send_buffer_limit`` bytes. Voice is never queued for later.
* Incoming media frames go to ``on_frame`` (given to :meth:`MediaLink.start`, or to the
  constructor; synchronously, in arrival order; it must not block), the other leg's presence
  to ``on_peer``, state changes to ``on_state``.
* When the link drops, it reconnects with a short backoff and re-joins the same leg (the relay
  lets the same identity replace its own stale connection). If it is not joined again within
  ``reconnect_window_s`` (counted from the drop; for the first join, from :meth:`start`), or
  the relay refuses for good (authentication failed, leg held by another identity, this leg
  taken over by another connection of ours, peer never came), the state becomes LOST and
  :attr:`MediaLink.error` says why: the call ends with reason ``connection_lost``. These
  rules are the transition table of :mod:`messenger_tui.core.links.media_rejoin`; this class
  drives it (attempts, timers, reports) and classifies what happened.

The join handshake and what a close means are in :mod:`messenger_tui.transport.media_join`;
the socket that hands media frames over from the transport callback is
:mod:`messenger_tui.transport.media_socket`. Nothing logged contains the join token, keys or
frame bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messenger_tui.core import media_wire
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.links.effects import Abort, Connect, Report
from messenger_tui.core.links.media_rejoin import (
    MediaLinkState,
    MediaPhase,
    MediaRejoin,
    RejoinEffect,
)
from messenger_tui.core.media_wire import (
    JOIN_TOKEN_LEN,
    MAX_MEDIA_FRAME,
    MEDIA_FRAME_FIRST_BYTE,
    MEDIA_FRAME_PREFIX,
    Leg,
    MediaJoined,
    MediaPeer,
)
from messenger_tui.core.wire import KEY_LEN, Error
from messenger_tui.transport.backoff import Backoff
from messenger_tui.transport.dialer import connection_class, open_socket
from messenger_tui.transport.errors import (
    PinMismatch,
    RelayAuthFailed,
    RelayProtocolError,
    TlsError,
    TransportError,
)
from messenger_tui.transport.media_frames import (
    MaskKeys,
    client_binary_frame,
)
from messenger_tui.transport.media_join import (
    JoinRefused,
    close_reason,
    join_media,
    media_endpoint,
    media_route_key,
)
from messenger_tui.transport.media_socket import MAX_MESSAGE, MediaConnection
from messenger_tui.transport.table_driver import TableDriver
from messenger_tui.transport.urls import parse_relay_url

__all__ = [
    "MAX_MESSAGE",
    "MediaConnection",
    "MediaLink",
    "MediaLinkCounters",
    "MediaLinkState",
    "media_endpoint",
]

logger = logging.getLogger(__name__)

#: Bytes waiting in the socket's write buffer above which :meth:`MediaLink.send` drops.
SEND_BUFFER_LIMIT = 4 * 1024
#: Keepalive on the media connection: a dead relay is noticed well within the 10 s window.
PING_INTERVAL = 3.0
PING_TIMEOUT = 3.0
CLOSE_TIMEOUT = 1.0
#: Incoming messages buffered before the socket stops reading.
MAX_QUEUE = 64


@dataclass
class MediaLinkCounters:
    """Frame counts since :meth:`MediaLink.start`."""

    sent: int = 0  # frames written to the socket
    dropped: int = 0  # frames send() refused (not joined, congested, too big)
    received: int = 0  # media frames handed to on_frame
    joins: int = 0  # successful joins (1 + reconnects)


class MediaLink(TableDriver[MediaRejoin]):
    """One call leg's media connection to the relay. See the module docstring."""

    def __init__(
        self,
        relay_url: str,
        identity_public: bytes,
        sign: Callable[[bytes], bytes],
        *,
        join_token: bytes,
        leg: int,
        on_frame: Callable[[bytes], None] | None = None,
        on_peer: Callable[[bool], None] | None = None,
        on_state: Callable[[MediaLinkState], None] | None = None,
        reconnect_window_s: float = 10.0,
        connect_timeout: float = 5.0,
        send_buffer_limit: int = SEND_BUFFER_LIMIT,
        backoff: Backoff | None = None,
        ping_interval: float | None = PING_INTERVAL,
        ping_timeout: float | None = PING_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(identity_public) != KEY_LEN:
            raise ValueError(f"identity_public must be {KEY_LEN} bytes")
        if len(join_token) != JOIN_TOKEN_LEN:
            raise ValueError(f"join_token must be {JOIN_TOKEN_LEN} bytes")
        self.leg = Leg(leg)
        self.endpoint = media_endpoint(parse_relay_url(relay_url), media_route_key(join_token))
        self._conn_class = connection_class(self.endpoint, MediaConnection)
        self._identity = bytes(identity_public)
        self._sign = sign
        self._token = bytes(join_token)
        self._on_frame = on_frame
        self._on_peer = on_peer
        self._on_state = on_state
        self._machine = MediaRejoin(
            backoff if backoff is not None else Backoff(base=0.05, cap=1.0),
            display=self.endpoint.display,
            window_s=reconnect_window_s,
        )
        self._connect_timeout = connect_timeout
        self._send_limit = send_buffer_limit
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ssl_context = ssl_context
        self._clock = clock
        self._state = MediaLinkState.CONNECTING
        self._ws: ClientConnection | None = None
        self._peer = False
        self._attempt: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()
        self._ended = asyncio.Event()
        self._frame_errors = 0
        self._masks = MaskKeys()
        self.counters = MediaLinkCounters()
        #: What the relay said in media_joined (alone timeout, max frame), once joined.
        self.joined_info: MediaJoined | None = None

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> MediaLinkState:
        return self._state

    @property
    def reconnect_window_s(self) -> float:
        """Seconds to (re)join after a drop before LOST; a change applies from the next drop."""
        return self._machine.window_s

    @reconnect_window_s.setter
    def reconnect_window_s(self, seconds: float) -> None:
        self._machine.window_s = seconds

    @property
    def error(self) -> str | None:
        """Why the link is (or was last) down; None while joined. Never contains secrets."""
        return self._machine.error

    @property
    def lifecycle(self) -> MediaRejoin:
        """The lifecycle table's machine (read it; drive it only through this class)."""
        return self._machine

    @property
    def peer_present(self) -> bool:
        """Whether the other leg is connected to the relay (as the relay last said)."""
        return self._peer

    @property
    def sent(self) -> int:
        return self.counters.sent

    @property
    def dropped(self) -> int:
        return self.counters.dropped

    @property
    def received(self) -> int:
        return self.counters.received

    # ------------------------------------------------------------------ lifecycle

    def start(self, on_frame: Callable[[bytes], None] | None = None) -> None:
        """Connect and join in the background (returns at once; no-op when started or
        closed). Media frames from the peer go to ``on_frame`` (the constructor's when None):
        the media session's receive path, called straight from the socket's callback."""
        if on_frame is not None:
            self._on_frame = on_frame
        if self._machine.phase is MediaPhase.NEW:
            self._feed(self._machine.start(self._now()))

    async def wait_joined(self, timeout: float) -> bool:
        """Wait until the link is joined; False on timeout or when it ended (LOST/CLOSED)."""
        if self._state is MediaLinkState.JOINED:
            return True
        joined = asyncio.ensure_future(self._joined.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait([joined, ended], timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            joined.cancel()
            ended.cancel()
        return self._joined.is_set()

    async def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the link is LOST or CLOSED; False on timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ended.wait()
        return self._ended.is_set()

    async def close(self) -> None:
        """Leave the call: close the connection; the state becomes CLOSED. Idempotent."""
        if self._machine.phase is MediaPhase.CLOSED:
            return
        self._feed(self._machine.close(self._now()))
        tasks = [t for t in (self._attempt, self._reader) if t is not None and not t.done()]
        self._attempt = self._reader = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._drop_socket()
        self._ended.set()

    # ------------------------------------------------------------------ sending

    def send(self, frame: bytes) -> bool:
        """Write one sealed media frame now, without blocking; False (counted) when it was
        dropped: not joined, the socket's write buffer is over the limit, or the frame is
        bigger than the relay forwards."""
        ws = self._ws
        if ws is None or self._state is not MediaLinkState.JOINED:
            self.counters.dropped += 1
            return False
        if not frame or frame[0] != MEDIA_FRAME_FIRST_BYTE:
            raise ValueError(
                f"a media frame starts with the media frame version byte "
                f"{MEDIA_FRAME_FIRST_BYTE:#04x}"
            )
        transport = ws.transport
        protocol = ws.protocol
        if (
            len(frame) > MAX_MEDIA_FRAME
            or protocol.state is not State.OPEN
            or transport.is_closing()
            or transport.get_write_buffer_size() > self._send_limit
        ):
            self.counters.dropped += 1
            return False
        # framed here rather than by websockets: see transport/media_frames.py
        transport.write(client_binary_frame(frame, self._masks.next()))
        self.counters.sent += 1
        return True

    # ------------------------------------------------------------------ internals

    def _set_state(self, state: MediaLinkState) -> None:
        if state is self._state:
            return
        self._state = state
        if state is MediaLinkState.JOINED:
            self._joined.set()
        else:
            self._joined.clear()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                logger.exception("media link on_state handler failed")

    def _set_peer(self, present: bool) -> None:
        if present is self._peer:
            return
        self._peer = present
        if self._on_peer is not None:
            try:
                self._on_peer(present)
            except Exception:
                logger.exception("media link on_peer handler failed")

    def _feed(self, effects: list[RejoinEffect]) -> None:
        """Carry out the lifecycle table's effects, then follow its deadline."""
        loop = asyncio.get_running_loop()
        for effect in effects:
            if isinstance(effect, Report):
                self._report(effect.state)
            elif isinstance(effect, Connect):
                self._attempt = loop.create_task(self._attempt_join(), name="media-link")
            elif isinstance(effect, Abort) and self._attempt is not None:
                self._attempt.cancel()
        self._follow_deadline()

    def _report(self, state: MediaLinkState) -> None:
        if state is MediaLinkState.LOST:
            logger.info("media link leg %d lost: %s", self.leg, self._machine.error)
            self._set_peer(False)
        self._set_state(state)
        if state is MediaLinkState.LOST or state is MediaLinkState.CLOSED:
            self._ended.set()

    async def _attempt_join(self) -> None:
        """One attempt (the table's Connect); its outcome goes back to the table."""
        try:
            ws = await self._connect_and_join()
        except (JoinRefused, RelayAuthFailed, RelayProtocolError, PinMismatch, TlsError) as exc:
            self._feed(self._machine.refused(self._now(), str(exc)))
            return
        except TransportError as exc:
            self._feed(self._machine.attempt_failed(self._now(), str(exc)))
            return
        except asyncio.CancelledError:
            raise  # aborted: the window ended, or close()
        except Exception as exc:
            logger.exception("unexpected failure joining the call's media")
            self._feed(self._machine.refused(self._now(), f"unexpected error: {exc!r}"))
            return
        if self._machine.phase is not MediaPhase.DIALING:
            ws.transport.abort()  # the window ended at the same instant: not wanted any more
            return
        self._ws = ws
        self.counters.joins += 1
        self._feed(self._machine.joined(self._now()))
        if self.joined_info is not None:
            self._set_peer(self.joined_info.peer)
        logger.info("media link leg %d joined via %s", self.leg, self.endpoint.display)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_until_dropped(ws), name="media-link-reader"
        )

    async def _read_until_dropped(self, ws: ClientConnection) -> None:
        reason, fatal = await self._read(ws)
        self._ws = None
        self._set_peer(False)
        if not fatal:
            logger.info("media link leg %d dropped (%s); rejoining", self.leg, reason)
        self._feed(self._machine.dropped(self._now(), reason, for_good=fatal))
        if fatal:
            await self._drop_socket_of(ws)

    async def _drop_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await self._drop_socket_of(ws)

    @staticmethod
    async def _drop_socket_of(ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await ws.close()
        except Exception:
            ws.transport.abort()

    async def _connect_and_join(self) -> ClientConnection:
        ws = await open_socket(
            self.endpoint,
            connect_timeout=self._connect_timeout,
            max_size=MAX_MESSAGE,
            max_queue=MAX_QUEUE,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
            ssl_context=self._ssl_context,
            conn_class=self._conn_class,
        )
        self.joined_info = await join_media(
            ws,
            self.endpoint,
            self._identity,
            self._sign,
            token=self._token,
            leg=self.leg,
            connect_timeout=self._connect_timeout,
            clock=self._clock,
        )
        return ws

    def _frame_in(self, data: bytes) -> None:
        self.counters.received += 1
        on_frame = self._on_frame
        if on_frame is None:
            return
        try:
            on_frame(data)
        except Exception:
            self._frame_errors += 1
            if self._frame_errors == 1:
                logger.exception("media link on_frame handler failed")

    async def _read(self, ws: ClientConnection) -> tuple[str, bool]:
        """Read until the connection ends; (reason, fatal). Media frames arrive through
        :meth:`_frame_in` (see :class:`MediaConnection`); the ones queued before that was
        set, and everything else, are read here."""
        if isinstance(ws, MediaConnection):
            ws.on_media_frame = self._frame_in
        refusal: Error | None = None
        try:
            while True:
                try:
                    data = await ws.recv()
                except ConnectionClosed as exc:
                    return close_reason(exc, refusal, self.endpoint.display)
                if type(data) is bytes and data[:1] == MEDIA_FRAME_PREFIX:
                    self._frame_in(data)
                    continue
                try:
                    frame = media_wire.decode_media_relay_frame(data)
                except MalformedFrame as exc:
                    logger.warning(
                        "skipping an undecodable %d-byte media control frame: %s",
                        len(data),
                        exc,
                    )
                    continue
                if isinstance(frame, MediaPeer):
                    self._set_peer(frame.present)
                elif isinstance(frame, Error):
                    logger.info("media relay error (%s): %s", frame.code, frame.message)
                    refusal = frame
        finally:
            if isinstance(ws, MediaConnection):
                ws.on_media_frame = None

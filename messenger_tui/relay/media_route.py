"""The media route of calls: pairs the two legs of a call by join token and forwards frames.

Each call leg opens its own websocket at ``/media`` (see
:data:`messenger_tui.core.media_wire.MEDIA_PATH`), so a message backlog never delays voice.
Flow of one connection (:class:`MediaRouteConnection`)::

    Challenge -> Auth -> AuthOk        (the message link's handshake, relay/handshake.py)
    media_join(token, leg)  -> media_joined(leg, peer, alone_timeout_ms)
    binary media frames both ways, media_peer(present) when the other leg comes or goes

Pairing (:class:`MediaRouter`, relay/media_pairing.py) is keyed by the join token itself, never
by a call id: only the two parties can derive the token. A route holds at most one connection
per leg. A second join for an occupied leg by the **same identity** replaces the older
connection (close 4000; this is how a client resumes after its link dropped); by **another
identity** it is refused with ``leg_taken`` (close 1008). The identity that first joined a leg
keeps it for as long as the route exists (until both legs are gone).

A leg that sends ``group_join`` instead of ``media_join`` is a group call leg, served by
relay/group_media.py (rooms of up to 16 legs, forwarding to the loudest speakers) through this
connection's bounded write paths.

Forwarding never stores and never queues: a media frame (first byte 0x01) is written to the
other leg's transport at once, without awaiting, or dropped and counted when the other leg is
absent, its transport holds more than ``media_write_limit`` bytes, the frame is bigger than
``media_max_frame``, or the sending leg is over its rate limit. A leg alone for
``media_alone_timeout_s`` is closed (``alone_timeout``, close 4001).

Control frames (challenge, errors, media_joined, media_peer) all go through one bounded path,
:meth:`MediaRouteConnection._send_control`: when more than ``media_control_limit`` bytes
already wait for a leg that does not read, an error reply is dropped (counted in
``MediaRouteCounters.dropped_control``) and a frame the client must see closes the leg (1008), so a
client that sends requests and never reads cannot make the relay buffer its answers. Every
request after the join (a second ``media_join`` included) counts as an abuse strike like a
malformed frame: ``max_malformed`` of them close the leg.

Logs carry metadata only: identity fingerprints, leg, an 8-hex-digit hash prefix of the token
and counts; never the token or any frame byte.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from messenger_tui.core import media_wire, wire
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.group_media_wire import GroupJoin, GroupRelayFrame, try_group_join
from messenger_tui.core.media_wire import Leg, MediaErrorCode
from messenger_tui.relay.group_media import GroupLegSession
from messenger_tui.relay.handshake import CLOSE_POLICY, authenticate
from messenger_tui.relay.media_pairing import (
    JoinOutcome,
    MediaLeg,
    MediaRouteCounters,
    MediaRouter,
    Route,
    _spawn,
    is_media_path,
    token_label,
)
from messenger_tui.relay.services import RelayServices

#: Close code of a leg replaced by a newer connection of the same identity (as the message
#: link's replacement).
CLOSE_REPLACED: Final = 4000
#: Close code of a leg whose peer did not show up within ``media_alone_timeout_s``.
CLOSE_ALONE: Final = 4001
#: Largest websocket message a media connection accepts at all (bigger: close 1009). Between
#: ``media_max_frame`` and this, a media frame is dropped and counted as abuse.
MEDIA_MAX_MESSAGE: Final = 8 * 1024

ErrorCode = wire.ErrorCode

#: Names that moved to relay/media_pairing.py, still importable from here.
__all__ = [
    "CLOSE_ALONE",
    "CLOSE_REPLACED",
    "MEDIA_MAX_MESSAGE",
    "JoinOutcome",
    "MediaLeg",
    "MediaRouteConnection",
    "MediaRouteCounters",
    "MediaRouter",
    "Route",
    "is_media_path",
    "token_label",
]

#: Control frames of both modules are msgspec structs tagged by ``t``: one encoder for both.
_encode = msgspec.msgpack.Encoder().encode


class _Closing(Exception):
    """Raised inside a media session to stop serving (the connection is closing)."""


class MediaRouteConnection:
    """One connection of the media route. Create per connection and ``await run()``."""

    def __init__(
        self, connection: ServerConnection, services: RelayServices, router: MediaRouter
    ) -> None:
        self._conn = connection
        self._s = services
        self._config = services.config
        self._router = router
        self._stats = router.stats
        self._protocol = connection.protocol
        self._transport = connection.transport
        self._identity: bytes | None = None
        self._label = "unauthenticated"
        self._leg = Leg.CALLER
        self._token = b""
        self._route: Route | None = None
        self._group_join: GroupJoin | None = None  # set when the leg joins a group call
        self._abuse = 0
        self._closing = False
        self._alone: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._pending_bytes = 0  # framed by deliver() and not yet written
        self._control_limit = services.config.media_control_limit
        self._flush_scheduled = False
        self.forwarded = 0
        self.dropped = 0
        self.received = 0

    # ------------------------------------------------------------------ MediaLeg protocol

    @property
    def identity(self) -> bytes:
        """The authenticated identity."""
        if self._identity is None:
            raise RuntimeError("connection is not authenticated")
        return self._identity

    def deliver(self, data: bytes) -> bool:
        """Frame a media frame for this leg, unless what waits for it (the transport buffer
        the kernel did not take, plus the frames framed this turn) is over the limit.

        The frame goes to the transport at the end of the current event-loop turn, together
        with the others forwarded to this leg in the same turn (one write, one syscall,
        instead of one per frame), or at once when a limit's worth is pending."""
        limit = self._config.media_write_limit
        if (
            self._closing
            or self._protocol.state is not State.OPEN
            or self._transport.is_closing()
            or self._transport.get_write_buffer_size() + self._pending_bytes > limit
        ):
            return False
        self._protocol.send_binary(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= limit:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        """Write what deliver() framed, in one transport write (end of the loop turn)."""
        self._flush_scheduled = False  # a scheduled call after an early flush is harmless
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        data = b"".join(self._protocol.data_to_send())
        if data:
            self._transport.write(data)

    def peer_changed(self, present: bool) -> None:
        """Tell the client, and run the alone timer while the peer is absent."""
        if self._closing:
            return
        self._send_control(media_wire.MediaPeer(present=present))
        if present:
            self._cancel_alone()
        else:
            self._arm_alone()

    def replace(self) -> None:
        """A newer connection of the same identity took this leg."""
        self._s.log.info(
            "media %s leg %d (%s): replaced by a newer connection",
            self._route.label if self._route else "-",
            self._leg,
            self._label,
        )
        self._route = None  # frames from this connection are no longer forwarded
        self._error(MediaErrorCode.REPLACED, "replaced by a newer connection of this leg")
        _spawn(self._close(CLOSE_REPLACED, "replaced by a newer connection of this leg"))

    # ---------------------------------------------------------------------------- writing

    def _send_control(
        self,
        frame: wire.RelayFrame | media_wire.MediaRelayFrame | GroupRelayFrame,
        *,
        droppable: bool = False,
    ) -> bool:
        """Write a control frame now, unless more than ``media_control_limit`` bytes already
        wait for this leg (it does not read): then a ``droppable`` frame (an error reply) is
        dropped and counted, any other closes the leg (1008). The only path by which this
        session writes anything but forwarded media; True when written."""
        if self._closing or self._protocol.state is not State.OPEN:
            return False
        transport = self._transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() + self._pending_bytes > self._control_limit:
            if droppable:
                self._stats.dropped_control += 1
                return False
            self._stats.closed_not_reading += 1
            self._s.log.info(
                "media %s (%s): closed, it does not read what the relay sends",
                token_label(self._token) if self._token else "-",
                self._label,
            )
            _spawn(self._close(CLOSE_POLICY, "not reading"))
            return False
        protocol = self._protocol
        protocol.send_binary(_encode(frame))
        self._pending_bytes = 0  # data_to_send() takes deliver()'s frames along
        transport.write(b"".join(protocol.data_to_send()))
        return True

    def _error(self, code: str, message: str) -> None:
        self._send_control(wire.Error(code=code, message=message), droppable=True)

    async def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._cancel_alone()
        try:
            await self._conn.close(code, reason)
        except Exception:  # already gone
            self._transport.abort()

    # ------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve the connection until it closes."""
        self._stats.connections += 1
        self._tune_socket()
        try:
            identity = await authenticate(_MediaHandshake(self), self._s, self._handshake_decode)
            if identity is None:
                return
            self._identity = identity
            self._label = short_fingerprint(identity)
            self._send_control(wire.AuthOk(identity=identity, queued=0, prekeys_remaining=0))
            if not await self._join():
                return
            if self._group_join is not None:
                await GroupLegSession(self, self._router.groups, self._group_join).run()
                return
            await self._forward()
        except (ConnectionClosed, _Closing):
            pass
        finally:
            self._cancel_alone()
            if self._route is not None:
                self._route = None
                self._router.leave(self, self._token, self._leg)
            if self._identity is not None and self._token:
                self._s.log.info(
                    "media %s leg %d (%s): left (code %s, received %d, forwarded %d, dropped %d)",
                    token_label(self._token),
                    self._leg,
                    self._label,
                    self._conn.close_code,
                    self.received,
                    self.forwarded,
                    self.dropped,
                )

    def _tune_socket(self) -> None:
        self._protocol.max_message_size = MEDIA_MAX_MESSAGE
        sndbuf = self._config.media_socket_sndbuf
        sock = self._transport.get_extra_info("socket")
        if sndbuf and sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            except OSError:
                pass

    def _handshake_decode(self, data: bytes | str) -> wire.ClientFrame | None:
        """A client frame; None for a media frame or a join sent before authenticating."""
        if media_wire.is_media_frame(data):
            return None
        try:
            return wire.decode_client_frame(data)
        except MalformedFrame:
            try:
                media_wire.decode_media_client_frame(data)
            except MalformedFrame:
                pass
            else:
                return None
            raise

    async def _join(self) -> bool:
        """Wait for media_join and enter the route (or for group_join, served by
        relay/group_media.py); False when the connection is refused."""
        try:
            async with asyncio.timeout(self._config.auth_timeout_s):
                while True:
                    data = await self._conn.recv()
                    if (group := try_group_join(data)) is not None:
                        self._group_join = group
                        return True
                    if media_wire.is_media_frame(data):
                        self._stats.dropped_not_joined += 1
                        self.dropped += 1
                        continue
                    try:
                        frame = media_wire.decode_media_client_frame(data)
                    except MalformedFrame as exc:
                        await self._malformed(exc)
                        continue
                    break
        except TimeoutError:
            self._error(ErrorCode.BAD_REQUEST, "no media_join within the time limit")
            await self._close(CLOSE_POLICY, "join timeout")
            return False
        leg = Leg(frame.leg)
        outcome, route = self._router.join(self, frame.token, leg)
        label = token_label(frame.token)
        if route is None:
            self._s.log.info("media %s leg %d (%s): refused, leg taken", label, leg, self._label)
            self._error(
                MediaErrorCode.LEG_TAKEN,
                f"leg {int(leg)} of this call is held by another identity",
            )
            await self._close(CLOSE_POLICY, "leg taken by another identity")
            return False
        self._leg, self._token, self._route = leg, frame.token, route
        peer = route.peer(leg) is not None
        self._send_control(
            media_wire.MediaJoined(
                leg=int(leg),
                peer=peer,
                alone_timeout_ms=int(self._config.media_alone_timeout_s * 1000),
                max_frame=self._config.media_max_frame,
            )
        )
        if not peer:
            self._arm_alone()
        self._s.log.info(
            "media %s leg %d (%s): %s, peer %s",
            label,
            leg,
            self._label,
            outcome.value,
            "present" if peer else "absent",
        )
        return True

    async def _forward(self) -> None:
        """The hot path: read frames, forward media, answer control frames."""
        conn = self._conn
        stats = self._stats
        leg = self._leg
        max_frame = self._config.media_max_frame
        # The per-leg token bucket, inline (this loop runs for every frame of every call).
        rate = self._config.media_rate_limit.rate_per_s
        burst = float(self._config.media_rate_limit.burst)
        tokens = burst
        last = time.monotonic()
        monotonic = time.monotonic
        while True:
            data = await conn.recv()
            if type(data) is bytes and data[:1] == b"\x01":
                self.received += 1
                route = self._route
                if route is None:  # replaced: this connection is on its way out
                    stats.dropped_not_joined += 1
                    self.dropped += 1
                elif len(data) > max_frame:
                    stats.dropped_oversized += 1
                    self.dropped += 1
                    await self._abuse_strike(
                        ErrorCode.TOO_LARGE,
                        f"media frame of {len(data)} bytes dropped; the limit is {max_frame}",
                    )
                elif (tokens := min(burst, tokens + ((now := monotonic()) - last) * rate)) < 1.0:
                    last = now
                    stats.dropped_rate_limited += 1
                    self.dropped += 1
                else:
                    last = now
                    tokens -= 1.0
                    peer = route.legs[1 - leg]
                    if peer is None:
                        stats.dropped_no_peer += 1
                        self.dropped += 1
                    elif peer.deliver(data):
                        stats.forwarded += 1
                        stats.forwarded_bytes += len(data)
                        self.forwarded += 1
                    else:
                        stats.dropped_congested += 1
                        self.dropped += 1
                continue
            try:
                media_wire.decode_media_client_frame(data)
            except MalformedFrame as exc:
                await self._malformed(exc)
                continue
            await self._abuse_strike(
                ErrorCode.BAD_REQUEST, "already joined; open a new connection to rejoin"
            )

    async def _malformed(self, exc: MalformedFrame) -> None:
        self._stats.malformed += 1
        await self._abuse_strike(ErrorCode.MALFORMED, str(exc))

    async def _abuse_strike(self, code: str, message: str) -> None:
        """Answer a bad frame with an error; close 1008 after ``max_malformed`` of them."""
        self._abuse += 1
        self._stats.strikes += 1
        self._error(code, message)
        if self._abuse >= self._config.max_malformed:
            self._s.log.info(
                "media %s: closed after %d malformed, oversized or repeated requests",
                self._label,
                self._abuse,
            )
            await self._close(CLOSE_POLICY, "too many malformed, oversized or repeated requests")
            raise _Closing

    # ---------------------------------------------------------------------- alone timer

    def _arm_alone(self) -> None:
        if self._alone is None and not self._closing:
            self._alone = asyncio.get_running_loop().call_later(
                self._config.media_alone_timeout_s, self._alone_expired
            )

    def _cancel_alone(self) -> None:
        if self._alone is not None:
            self._alone.cancel()
            self._alone = None

    def _alone_expired(self) -> None:
        self._alone = None
        if self._closing:
            return
        self._stats.alone_timeouts += 1
        seconds = self._config.media_alone_timeout_s
        self._s.log.info(
            "media %s leg %d (%s): alone for %g s, closing",
            token_label(self._token),
            self._leg,
            self._label,
            seconds,
        )
        self._error(
            MediaErrorCode.ALONE_TIMEOUT, f"the other leg did not connect within {seconds:g} s"
        )
        _spawn(self._close(CLOSE_ALONE, "the other leg did not connect in time"))


class _MediaHandshake:
    """A media session as :func:`authenticate` sees it."""

    def __init__(self, session: MediaRouteConnection) -> None:
        self._session = session

    async def recv(self) -> bytes | str:
        return await self._session._conn.recv()

    def send(self, frame: wire.RelayFrame) -> None:
        self._session._send_control(frame, droppable=isinstance(frame, wire.Error))

    async def close(self, code: int, reason: str) -> None:
        await self._session._close(code, reason)

    async def malformed(self, exc: MalformedFrame) -> None:
        await self._session._malformed(exc)

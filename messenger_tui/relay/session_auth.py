"""A connection's authentication and what it holds once authenticated (a part of
:class:`~messenger_tui.relay.session.MessageRouteConnection`).

:meth:`SessionAuthentication._authenticate` runs the handshake (relay/handshake.py) over the
session and admits the identity (relay/access_gate.py). :meth:`~SessionAuthentication.
_start_authenticated` then sets up, in this order: the delivery pusher, the leases on the
shared limits (several nodes), the node claim (before the first mailbox read, node_bus rule
3), the presence registration (replacing an older connection of the identity) and AuthOk,
the first frame the client sees, before any Deliver, SignalDeliver or Presence.
:meth:`~SessionAuthentication._release_authenticated` gives back presence, the node claim
and watches, and the leases when the connection ends.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Final

from websockets.asyncio.server import ServerConnection

from messenger_tui.core import wire
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.close_codes import CLOSE_POLICY
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import ErrorCode
from messenger_tui.relay.access_gate import admit_identity
from messenger_tui.relay.config import RelayConfig
from messenger_tui.relay.delivery import DeliveryPusher
from messenger_tui.relay.frame_queue import FrameQueue
from messenger_tui.relay.handshake import authenticate
from messenger_tui.relay.node_redis import LeasedBucket
from messenger_tui.relay.presence import Peer
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.store import StoreUnavailable

CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_AGAIN: Final = 1013


class _SessionHandshake:
    """The session as :func:`authenticate` sees it."""

    def __init__(self, session: SessionAuthentication) -> None:
        self._session = session

    async def recv(self) -> bytes | str:
        return await self._session._conn.recv()

    def send(self, frame: wire.RelayFrame) -> None:
        self._session._frames.put(frame)

    async def close(self, code: int, reason: str) -> None:
        await self._session._close(code, reason)

    async def malformed(self, exc: MalformedFrame) -> None:
        await self._session._malformed_frame(exc)


class SessionAuthentication(ABC):
    """Authentication and the authenticated start and release; the session provides the
    state declared below."""

    _conn: ServerConnection
    _s: RelayServices
    _config: RelayConfig
    _frames: FrameQueue
    _identity: bytes | None
    _label: str
    _pusher: DeliveryPusher | None
    _pusher_task: asyncio.Task[None] | None
    _send_credit: LeasedBucket | None
    _fetch_credit: LeasedBucket | None

    @abstractmethod
    def _as_peer(self) -> Peer:
        """The session as presence, the node bus and the pusher know it."""

    @abstractmethod
    def _error(self, code: str, message: str, ref: int | bytes | None = None) -> None:
        """Queue an Error frame (the session's)."""

    @abstractmethod
    async def _close(self, code: int, reason: str) -> None:
        """Send what is queued (briefly), then close (the session's)."""

    @abstractmethod
    def _close_soon(self, code: int, reason: str) -> None:
        """Close the connection in a task of its own (the session's)."""

    @abstractmethod
    async def _malformed_frame(self, exc: MalformedFrame) -> None:
        """Count a malformed frame; close after too many (the session's)."""

    async def _authenticate(self) -> bytes | None:
        """The authenticated and admitted identity; None when the connection was refused
        (and is closing)."""
        identity = await authenticate(_SessionHandshake(self), self._s)
        if identity is None:
            return None
        if not await admit_identity(self._s, identity, self._conn.remote_address):
            label = short_fingerprint(identity)
            self._s.log.info("%s: refused, too many new identities", label)
            self._error(
                ErrorCode.RATE_LIMITED,
                "too many new identities from your network address; retry in an hour",
            )
            await self._close(CLOSE_POLICY, "too many new identities from this address")
            return None
        return identity

    async def _start_authenticated(self, identity: bytes) -> None:
        services = self._s
        peer = self._as_peer()
        self._identity = identity
        self._label = short_fingerprint(identity)
        self._pusher = DeliveryPusher(
            identity,
            services.store,
            peer,
            window=self._config.delivery_window,
            clock=services.clock,
            shared=services.nodes is not None,
        )
        if services.shared_send is not None:
            self._send_credit = LeasedBucket(services.shared_send, identity)
        if services.shared_fetch_bundle is not None:
            self._fetch_credit = LeasedBucket(services.shared_fetch_bundle, identity)
        if services.nodes is not None:
            await services.nodes.claim(peer)  # before the first mailbox read (node_bus rule 3)
        status = await services.prekeys.status(identity)
        queued = await services.store.count(identity, now_ms=services.clock())
        # No await from here on until the pusher runs: AuthOk is the first frame the client
        # sees after this point, before any Deliver, SignalDeliver or Presence.
        older = services.presence.connect(peer)
        if older is not None:
            older.replace()
        self._frames.put(
            wire.AuthOk(
                identity=identity,
                queued=queued,
                prekeys_remaining=status.one_time_remaining,
                signed_prekey_id=status.signed_prekey_id,
            )
        )
        services.counters.authenticated += 1
        services.log.info(
            "%s: authenticated (queued %d, prekeys %d)",
            self._label,
            queued,
            status.one_time_remaining,
        )
        task = asyncio.get_running_loop().create_task(self._pusher.run())
        task.add_done_callback(self._pusher_done)
        self._pusher_task = task

    def _pusher_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, StoreUnavailable):  # as in run(): the client reconnects
            self._s.log.warning("%s: delivery paused, storage unavailable: %s", self._label, exc)
            self._close_soon(CLOSE_TRY_AGAIN, "relay storage unavailable; retry")
        elif exc is not None:
            self._s.log.error("%s: delivery failed: %r", self._label, exc)
            self._error(ErrorCode.INTERNAL, "relay storage fault; reconnect to retry")
            self._close_soon(CLOSE_INTERNAL, "relay storage fault")

    async def _release_authenticated(self) -> None:
        """Give back what :meth:`_start_authenticated` took (the pusher is the session's to
        stop); nothing when the connection never authenticated."""
        if self._identity is None:
            return
        peer = self._as_peer()
        watched = self._s.presence.watching(peer)
        self._s.presence.disconnect(peer)
        nodes = self._s.nodes
        if nodes is not None:
            await nodes.release(peer)
            await nodes.unwatch(watched)
        for credit in (self._send_credit, self._fetch_credit):
            if credit is not None:
                await credit.close()

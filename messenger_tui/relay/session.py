"""One websocket connection: the authentication handshake, then request dispatch.

The server runs ``await MessageRouteConnection(connection, services).run()`` as the websockets
handler.
Flow: send Challenge -> wait for Auth (anything else gets ``Error(unauthenticated)`` and does
nothing) -> AuthOk -> push the mailbox and serve requests until the connection closes.
Errors never end the connection except: a failed Auth (auth_failed, close 1008), too many
malformed frames (close 1008), no Auth within the timeout (close 1008), and replacement by a
newer connection of the same identity (close 4000).

This module holds the connection's lifecycle, its side of the presence registry and the node
bus (:class:`~messenger_tui.relay.presence.Peer`), and the frame dispatch; the rest are its
parts: authentication and the authenticated start and release in ``session_auth.py``, sends
in ``session_sends.py``, presence subscriptions in ``session_presence.py``, the other requests
in ``session_requests.py``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any, Final

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire
from messenger_tui.core.close_codes import CLOSE_POLICY, CLOSE_REPLACED
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import ErrorCode
from messenger_tui.relay import fanout
from messenger_tui.relay.access_gate import address_key
from messenger_tui.relay.address_pacing import AddressPacer, send_slots
from messenger_tui.relay.delivery import DeliveryPusher
from messenger_tui.relay.frame_queue import FrameQueue
from messenger_tui.relay.node_redis import LeasedBucket
from messenger_tui.relay.presence import Peer
from messenger_tui.relay.services import RelayServices
from messenger_tui.relay.session_auth import CLOSE_TRY_AGAIN, SessionAuthentication
from messenger_tui.relay.session_presence import SessionPresence
from messenger_tui.relay.session_requests import SessionRequests
from messenger_tui.relay.session_sends import SessionSends
from messenger_tui.relay.store import StoredEnvelope, StoreUnavailable
from messenger_tui.relay.wakeup import Wakeup

#: Longest wait for a handshake slot of the source address (the client allows 5 s for the
#: whole handshake); a connection that would wait longer is closed with 1013.
AUTH_PACING_MAX_WAIT_S: Final = 2.0
#: Bytes queued for a client before producers hold back (deliveries pause, signals drop).
OUTBOX_LIMIT_BYTES: Final = 1024 * 1024
#: Message ids one Ack may carry (a window is 512; bounds the work of one frame).
MAX_ACK_IDS: Final = 4096

_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class _SessionEnd(Exception):
    """Raised inside the session to stop serving (the connection is already closing)."""


class MessageRouteConnection(SessionAuthentication, SessionSends, SessionPresence, SessionRequests):
    """State of one connection. Create per connection and ``await run()``."""

    def __init__(self, connection: ServerConnection, services: RelayServices) -> None:
        super().__init__()
        self._conn = connection
        self._s = services
        self._config = services.config
        self._frames = FrameQueue(connection, limit_bytes=OUTBOX_LIMIT_BYTES, on_space=self._room)
        self._identity: bytes | None = None
        self._label = "unauthenticated"
        self._pusher: DeliveryPusher | None = None
        self._pusher_task: asyncio.Task[None] | None = None
        #: Several nodes: this connection's leases on its identity's shared send and
        #: bundle-fetch buckets.
        self._send_credit: LeasedBucket | None = None
        self._fetch_credit: LeasedBucket | None = None
        self._resume = Wakeup()
        self._malformed = 0
        self._closing = False
        self._address = address_key(connection.remote_address)

    # ------------------------------------------------------------ Peer / FrameSink protocol

    @property
    def identity(self) -> bytes:
        """The authenticated identity (only valid after authentication)."""
        if self._identity is None:
            raise RuntimeError("connection is not authenticated")
        return self._identity

    def send_frame(self, frame: wire.RelayFrame) -> None:
        """Queue a frame for this client."""
        self._frames.put(frame)

    def try_send_frame(self, frame: wire.RelayFrame) -> bool:
        """Queue an ephemeral frame unless this client is congested."""
        return self._frames.try_put(frame)

    def congested(self) -> bool:
        """Whether this client's outgoing buffer is full."""
        return self._frames.congested()

    def offer(self, envelope: StoredEnvelope) -> None:
        """Route a newly stored envelope for this identity to the delivery pusher."""
        if self._pusher is not None:
            self._pusher.offer(envelope)

    def offers_done(self) -> None:
        """The commit batch behind the last offers is complete."""
        if self._pusher is not None:
            self._pusher.offers_done()

    def replace(self) -> None:
        """A newer connection of the same identity took over: close this one."""
        self._s.log.info("%s: replaced by a newer connection", self._label)
        if self._pusher_task is not None:
            self._pusher_task.cancel()  # the newer connection redelivers from the start
        self._close_soon(CLOSE_REPLACED, "replaced by a newer connection of this identity")

    def reread(self) -> None:
        """Another relay node committed envelopes for this identity: re-read the mailbox."""
        if self._pusher is not None:
            self._pusher.reread()

    # ------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve the connection until it closes."""
        counters = self._s.counters
        counters.connections += 1
        writer = asyncio.get_running_loop().create_task(self._frames.run())
        try:
            if not await self._paced(self._s.limits.address_auth, AUTH_PACING_MAX_WAIT_S):
                reason = "too many connections from your network address; retry in a few seconds"
                await self._close(CLOSE_TRY_AGAIN, reason)
                return
            identity = await self._authenticate()
            if identity is None:
                return
            await self._start_authenticated(identity)
            await self._serve()
        except (ConnectionClosed, _SessionEnd):
            pass
        except StoreUnavailable as exc:
            # Redis restarting, or a cluster slot migrating (TRYAGAIN): not this client's
            # fault and not a bug; it reconnects and is served again (no traceback).
            self._s.log.warning("%s: closed, storage unavailable: %s", self._label, exc)
            await self._close(CLOSE_TRY_AGAIN, "relay storage unavailable; retry")
        finally:
            await self._release_authenticated()
            pusher_task = self._pusher_task
            if pusher_task is not None:
                pusher_task.cancel()
            if not self._closing:
                await self._frames.flush(timeout=1.0)
            self._frames.close()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if pusher_task is not None:
                await asyncio.gather(pusher_task, return_exceptions=True)
            if self._identity is not None:
                pushed = self._pusher.pushed if self._pusher is not None else 0
                self._s.log.info(
                    "%s: disconnected (code %s, pushed %d, unacked %d)",
                    self._label,
                    self._conn.close_code,
                    pushed,
                    self._pusher.in_flight if self._pusher is not None else 0,
                )

    async def _close(self, code: int, reason: str) -> None:
        """Send what is queued (briefly), then close the websocket with ``code``."""
        if self._closing:
            return
        self._closing = True
        await self._frames.flush(timeout=2.0)
        self._frames.close()
        await self._conn.close(code, reason)

    def _close_soon(self, code: int, reason: str) -> None:
        """:meth:`_close` in a task of its own (from a callback, or to close another)."""
        _spawn(self._close(code, reason))

    def _as_peer(self) -> Peer:
        return self

    def _room(self) -> None:
        self._resume.set()
        if self._pusher is not None:
            self._pusher.wake()

    # ---------------------------------------------------------------------------- serving

    async def _serve(self) -> None:
        conn = self._conn
        outbox = self._frames
        while True:
            while (self._sends_backlogged() or outbox.congested()) and not outbox.closed:
                self._resume.clear()
                await self._resume.wait()
            data = await conn.recv()
            try:
                frame = wire.decode_client_frame(data)
            except MalformedFrame as exc:
                await self._malformed_frame(exc)
                continue
            if isinstance(frame, wire.Send):
                pacer = self._s.limits.address_send
                if pacer is not None:  # inline: this runs for every message
                    wait = pacer.reserve(self._address, slots=send_slots(len(frame.body)))
                    if wait:
                        await asyncio.sleep(wait)
                credit = self._send_credit
                if credit is None:
                    self._on_send(frame)
                else:
                    self._on_send(frame, await credit.allow())
            elif isinstance(frame, wire.SendMulti):
                short: fanout.ShortSend | None = None
                if frame.cred is not None:  # the short form: resolve it to the long one
                    short = await self._resolve_short(frame)
                    if short is None:
                        continue  # refused, or answered: no reference was granted
                    frame = short.frame
                # Paced like the 1:1 sends it replaces: the body once, a slot per further
                # recipient (each is a stored reference and a delivery).
                slots = send_slots(len(frame.body)) + max(0, len(frame.to) - 1)
                await self._paced(self._s.limits.address_send, slots=slots)
                shared = self._s.shared_send
                credit = self._send_credit
                if shared is None or credit is None:
                    self._on_send_multi(frame, short=short)
                else:
                    cost = fanout.rate_cost(len(frame.to), shared.limit.burst)
                    self._on_send_multi(frame, await credit.allow(cost), short)
            elif isinstance(frame, wire.Ack):
                self._on_ack(frame)
            elif isinstance(frame, wire.Signal):
                self._on_signal(frame)
            elif isinstance(frame, wire.FetchBundle):
                await self._on_fetch_bundle(frame)
            elif isinstance(frame, wire.PublishPrekeys):
                await self._on_publish_prekeys(frame)
            elif isinstance(frame, wire.Subscribe):
                if self._s.nodes is None:
                    self._on_subscribe(frame)
                else:
                    await self._on_subscribe_nodes(frame)
            elif isinstance(frame, wire.SetDeliveryVerifier):
                await self._on_set_verifier(frame)
            elif isinstance(frame, wire.SetGroupGrants):
                await self._on_set_grants(frame)
            else:  # a second Auth
                self._error(ErrorCode.BAD_REQUEST, "already authenticated")

    async def _paced(
        self, pacer: AddressPacer | None, max_wait_s: float = math.inf, slots: int = 1
    ) -> bool:
        """Wait for this source address's turn in ``pacer``, reading nothing meanwhile (see
        relay/address_pacing.py); False, with nothing booked, if that is over ``max_wait_s``."""
        wait = 0.0 if pacer is None else pacer.reserve(self._address, max_wait_s, slots)
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True

    def _error(self, code: str, message: str, ref: int | bytes | None = None) -> None:
        self._frames.put(wire.Error(code=code, message=message, ref=ref))

    async def _malformed_frame(self, exc: MalformedFrame) -> None:
        self._malformed += 1
        self._s.counters.malformed += 1
        self._error(ErrorCode.MALFORMED, str(exc))
        if self._malformed >= self._config.max_malformed:
            self._s.log.info("%s: closed after %d malformed frames", self._label, self._malformed)
            await self._close(CLOSE_POLICY, "too many malformed frames")
            raise _SessionEnd

    def _on_ack(self, frame: wire.Ack) -> None:
        ids = frame.ids
        if len(ids) > MAX_ACK_IDS:
            self._error(ErrorCode.BAD_REQUEST, f"at most {MAX_ACK_IDS} ids per Ack; nothing acked")
            return
        if any(len(msg_id) != wire.MESSAGE_ID_LEN for msg_id in ids):
            self._error(ErrorCode.BAD_REQUEST, "message ids are 16 bytes; nothing was acked")
            return
        assert self._pusher is not None
        self._pusher.acked(ids)
        self._s.mailboxes.ack(self.identity, ids)

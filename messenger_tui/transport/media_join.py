"""Joining a call's media route at the relay: where it is, the handshake, and what a close
means.

The handshake is the message link's (TCP/TLS/pin, then Challenge -> Auth -> AuthOk through
:mod:`messenger_tui.transport.dialer`), then ``media_join(token, leg)`` answered by
``media_joined`` or an Error (a refusal for good: :class:`JoinRefused`). A close before the
answer is a :class:`DropDuringJoin` (retried). Nothing raised or logged contains the join
token.

Several relay nodes (docs/operations.md, "Calls on several nodes"): both legs of a call must
reach the same node, and voice never goes through Redis. The media URL carries a *route key*,
``?route=`` 16 hex digits of a hash of the join token (:func:`media_route_key`): a load
balancer hashes on it (nginx ``hash $arg_route consistent``, HAProxy ``balance url_param
route``), so both legs land on one node; a profile listing several node URLs picks the node
by the same key from its sorted list (:func:`media_relay_url`). The relay ignores the query.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import replace

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import media_wire
from messenger_tui.core.close_codes import CLOSE_ALONE, CLOSE_POLICY, CLOSE_REPLACED
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.media_wire import Leg, MediaErrorCode, MediaJoin, MediaJoined
from messenger_tui.core.wire import Error
from messenger_tui.transport.dialer import authenticate
from messenger_tui.transport.errors import RelayProtocolError, TransportError
from messenger_tui.transport.urls import RelayEndpoint, split_relay_urls

#: Domain separation of the route key's hash (it must never equal a hash used elsewhere).
_ROUTE_KEY_CONTEXT = b"messenger-tui media route key v1"


def media_route_key(token: bytes) -> str:
    """What the media URL shows of a call: 16 hex digits of a hash of its join token, the
    same for both legs (a balancer routes on it; the token stays secret)."""
    return hashlib.sha256(_ROUTE_KEY_CONTEXT + token).hexdigest()[:16]


def media_relay_url(relay_urls: str, token: bytes) -> str:
    """The relay URL whose node hosts the call ``token`` names, from the profile's URL list
    (comma-separated): the same for both parties when they list the same nodes, in any
    order. One URL (a balancer): that URL."""
    urls = sorted(split_relay_urls(relay_urls))
    return urls[int(media_route_key(token), 16) % len(urls)]


class JoinRefused(TransportError):
    """The relay refused the join for good (no retry)."""


def media_endpoint(endpoint: RelayEndpoint, route_key: str | None = None) -> RelayEndpoint:
    """The endpoint of the media route beside a message-link endpoint: same scheme, host,
    port, TLS and pin, with ``/media`` appended to the path (``ws://h:p/`` ->
    ``ws://h:p/media``, ``wss://h/relay/`` -> ``wss://h/relay/media``) and, given a
    ``route_key``, ``route=<key>`` in the query."""
    parts = urllib.parse.urlsplit(endpoint.connect_url)
    path = parts.path.rstrip("/") + media_wire.MEDIA_PATH
    query = parts.query
    if route_key is not None:
        query = f"{query}&route={route_key}" if query else f"route={route_key}"
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))
    return replace(endpoint, connect_url=url)


async def join_media(
    ws: ClientConnection,
    endpoint: RelayEndpoint,
    identity: bytes,
    sign: Callable[[bytes], bytes],
    *,
    token: bytes,
    leg: Leg,
    connect_timeout: float,
    clock: Callable[[], float] = time.time,
) -> MediaJoined:
    """Authenticate on ``ws`` and join leg ``leg`` of the call ``token`` names. On any
    failure the socket is aborted and the error raised (:class:`JoinRefused` for good,
    :class:`DropDuringJoin` and other :class:`TransportError` to retry)."""
    display = endpoint.display
    try:
        await authenticate(ws, endpoint, identity, sign, clock=clock,
                           connect_timeout=connect_timeout)  # fmt: skip
        async with asyncio.timeout(connect_timeout):
            await ws.send(media_wire.encode_media_control(MediaJoin(token=token, leg=leg)))
            while True:
                data = await ws.recv()
                if media_wire.is_media_frame(data):
                    continue
                frame = media_wire.decode_media_relay_frame(data)
                if isinstance(frame, MediaJoined):
                    return frame
                if isinstance(frame, Error):
                    raise JoinRefused(
                        f"relay {display} refused the call's media join "
                        f"({frame.code}): {frame.message}"
                    )
    except ConnectionClosed as exc:
        ws.transport.abort()
        raise DropDuringJoin(display, exc) from None
    except MalformedFrame as exc:
        ws.transport.abort()
        raise RelayProtocolError(
            f"relay {display} sent an undecodable media control frame: {exc}"
        ) from None
    except BaseException:
        ws.transport.abort()
        raise


def close_reason(exc: ConnectionClosed, refusal: Error | None, display: str) -> tuple[str, bool]:
    """What a close of a joined media connection means: (reason, for good). Replaced, the
    peer never came, or a policy close end the link; anything else is a drop to rejoin after."""
    code = exc.rcvd.code if exc.rcvd is not None else None
    if code == CLOSE_REPLACED or (refusal and refusal.code == MediaErrorCode.REPLACED):
        return (
            f"another connection of this identity took over this call leg at {display}",
            True,
        )
    if code == CLOSE_ALONE:
        return (f"the other party never joined the call's media at {display}", True)
    if code == CLOSE_POLICY:
        detail = f" ({refusal.code}: {refusal.message})" if refusal else ""
        return (f"relay {display} closed the media connection{detail}", True)
    return (f"media connection to relay {display} lost: {exc}", False)


class DropDuringJoin(TransportError):
    """The connection closed before the join completed (retried)."""

    def __init__(self, display: str, exc: ConnectionClosed) -> None:
        super().__init__(f"media connection to relay {display} closed while joining ({exc})")

"""Joining a call's media route at the relay: where it is, the handshake, and what a close
means.

The handshake is the message link's (TCP/TLS/pin, then Challenge -> Auth -> AuthOk through
:mod:`messenger_tui.transport.dialer`), then ``media_join(token, leg)`` answered by
``media_joined`` or an Error (a refusal for good: :class:`JoinRefused`). A close before the
answer is a :class:`DropDuringJoin` (retried). Nothing raised or logged contains the join
token.
"""

from __future__ import annotations

import asyncio
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
from messenger_tui.transport.urls import RelayEndpoint


class JoinRefused(TransportError):
    """The relay refused the join for good (no retry)."""


def media_endpoint(endpoint: RelayEndpoint) -> RelayEndpoint:
    """The endpoint of the media route beside a message-link endpoint: same scheme, host,
    port, TLS and pin, with ``/media`` appended to the path (``ws://h:p/`` ->
    ``ws://h:p/media``, ``wss://h/relay/`` -> ``wss://h/relay/media``)."""
    parts = urllib.parse.urlsplit(endpoint.connect_url)
    path = parts.path.rstrip("/") + media_wire.MEDIA_PATH
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
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

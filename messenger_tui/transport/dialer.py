"""Opening an authenticated websocket to the relay: shared by the message link
(:class:`~messenger_tui.transport.client.RelayClient`) and the call media link
(:class:`~messenger_tui.transport.media_link.MediaLink`).

:func:`open_socket` does TCP, TLS (system trust store, or a ``#sha256=`` certificate pin checked
before anything is sent) and the websocket upgrade, mapping every failure to a typed
:class:`~messenger_tui.transport.errors.TransportError` with a message fit for the user;
:func:`authenticate` answers the relay's Challenge and waits for AuthOk. Nothing logged or
raised contains keys or signatures.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from messenger_tui.core.errors import MalformedFrame
from messenger_tui.core.wire import (
    PROTOCOL_VERSION,
    Auth,
    AuthOk,
    Challenge,
    Error,
    RelayFrame,
    auth_message,
    decode_relay_frame,
    encode,
)
from messenger_tui.transport.errors import (
    PinMismatch,
    RelayAuthFailed,
    RelayProtocolError,
    RelayUnreachable,
    TlsError,
)
from messenger_tui.transport.tls import (
    certificate_fingerprint,
    default_ssl_context,
    pinned_ssl_context,
)
from messenger_tui.transport.urls import RelayEndpoint

__all__ = [
    "USER_AGENT",
    "PinnedClientConnection",
    "authenticate",
    "connection_class",
    "open_socket",
]

USER_AGENT = "messenger-tui"


class PinnedClientConnection(ClientConnection):
    """Checks the peer certificate against the pin right after the TLS handshake, before the
    HTTP upgrade request (and so before any Auth) is sent."""

    pin: bytes = b""
    display: str = ""

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        ssl_object = self.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        actual = certificate_fingerprint(der) if der else None
        if actual is None or not hmac.compare_digest(actual, self.pin):
            raise PinMismatch(self.display, self.pin, actual)
        await super().handshake(*args, **kwargs)


def connection_class(
    endpoint: RelayEndpoint, base: type[ClientConnection] | None = None
) -> type[ClientConnection] | None:
    """The websocket connection class for ``endpoint``: ``base`` (None: websockets' own),
    made to enforce the endpoint's pin when it has one. Pass it to :func:`open_socket`."""
    if endpoint.pin_sha256 is None or not endpoint.tls:
        return base
    bases: tuple[type[ClientConnection], ...] = (PinnedClientConnection,)
    if base is not None and not issubclass(PinnedClientConnection, base):
        bases = (base, PinnedClientConnection)
    return type(
        "PinnedClientConnection",
        bases,
        {"pin": endpoint.pin_sha256, "display": endpoint.display},
    )


async def open_socket(
    endpoint: RelayEndpoint,
    *,
    connect_timeout: float,
    max_size: int,
    max_queue: int,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | bool | None = None,
    conn_class: type[ClientConnection] | None = None,
    connect_url: str | None = None,
) -> ClientConnection:
    """Open the websocket to ``connect_url`` (default ``endpoint.connect_url``) as a
    ``conn_class`` (from :func:`connection_class`; made here when not given).

    Raises RelayUnreachable, TlsError, PinMismatch or RelayProtocolError.
    """
    ep = endpoint
    kwargs: dict[str, Any] = {
        "compression": None,
        "max_size": max_size,
        "max_queue": max_queue,
        "open_timeout": connect_timeout,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "close_timeout": close_timeout,
        "proxy": proxy,
        "user_agent_header": USER_AGENT,
    }
    if conn_class is None:
        conn_class = connection_class(ep)
    if conn_class is not None:
        kwargs["create_connection"] = conn_class
    if ep.tls:
        if ep.pin_sha256 is not None:
            if conn_class is None or not issubclass(conn_class, PinnedClientConnection):
                raise ValueError("a pinned endpoint needs its connection_class()")
            kwargs["ssl"] = pinned_ssl_context()
        else:
            kwargs["ssl"] = ssl_context or default_ssl_context()
    try:
        return await connect(connect_url or ep.connect_url, **kwargs)
    except PinMismatch:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise TlsError(
            f"the certificate of relay {ep.display} is not trusted "
            f"({exc.verify_message or exc.reason}); if you trust this relay, ask its "
            "operator for the certificate fingerprint and add it to the URL as "
            "#sha256=<fingerprint>"
        ) from None
    except ssl.SSLError as exc:
        raise TlsError(
            f"TLS handshake with relay {ep.display} failed ({exc.reason or exc}); "
            "does it speak wss://?"
        ) from None
    except TimeoutError:
        raise RelayUnreachable(ep.display, f"timed out after {connect_timeout:g} s") from None
    except socket.gaierror as exc:
        raise RelayUnreachable(
            ep.display, f"cannot resolve host {ep.host!r} ({exc.strerror or exc})"
        ) from None
    except ConnectionRefusedError:
        raise RelayUnreachable(
            ep.display, f"connection refused; is the relay running on port {ep.port}?"
        ) from None
    except ConnectionResetError:
        hint = "; if the relay does not use TLS, use ws:// instead of wss://" if ep.tls else ""
        raise RelayUnreachable(ep.display, f"connection reset by the peer{hint}") from None
    except OSError as exc:
        cause = exc.strerror or str(exc) or type(exc).__name__
        raise RelayUnreachable(ep.display, cause) from None
    except InvalidStatus as exc:
        raise RelayProtocolError(
            f"{ep.display} refused the websocket upgrade with HTTP "
            f"{exc.response.status_code}; is this a messenger-tui relay URL?"
        ) from None
    except InvalidMessage as exc:
        if isinstance(exc.__cause__, EOFError | OSError):
            # The connection closed or was reset before any HTTP response (a relay that is
            # going down or restarting): unreachable for now, not a protocol error.
            hint = "" if ep.tls else "; if the relay uses TLS, use wss:// instead of ws://"
            raise RelayUnreachable(
                ep.display, f"connection closed during the handshake{hint}"
            ) from None
        raise RelayProtocolError(
            f"{ep.display} did not complete a websocket handshake ({exc}); "
            "is this a messenger-tui relay?"
        ) from None
    except (InvalidHandshake, InvalidURI) as exc:
        raise RelayProtocolError(
            f"{ep.display} did not complete a websocket handshake ({exc}); "
            "is this a messenger-tui relay?"
        ) from None
    except EOFError:
        raise RelayUnreachable(ep.display, "connection closed during the handshake") from None


async def authenticate(
    ws: ClientConnection,
    endpoint: RelayEndpoint,
    identity: bytes,
    sign: Callable[[bytes], bytes],
    *,
    clock: Callable[[], float],
    connect_timeout: float,
) -> tuple[Challenge, AuthOk]:
    """Answer the relay's Challenge as ``identity`` and wait for AuthOk (``connect_timeout``
    for both). On any failure the socket is aborted and RelayUnreachable, RelayAuthFailed or
    RelayProtocolError is raised."""
    display = endpoint.display
    phase = "the challenge"
    try:
        async with asyncio.timeout(connect_timeout):
            challenge = await _recv_handshake_frame(ws, display, phase)
            if not isinstance(challenge, Challenge):
                raise RelayProtocolError(
                    f"relay {display} sent {_tag(challenge)} instead of a challenge; "
                    "is this a messenger-tui relay?"
                )
            if challenge.version != PROTOCOL_VERSION:
                raise RelayProtocolError(
                    f"relay {display} speaks protocol version {challenge.version}, this "
                    f"client speaks version {PROTOCOL_VERSION}; update the older side"
                )
            time_ms = int(clock() * 1000)
            message = auth_message(challenge.relay_key, challenge.nonce, identity, time_ms)
            signature = sign(message)
            phase = "authentication"
            auth = Auth(identity=identity, time_ms=time_ms, signature=signature)
            try:
                await ws.send(encode(auth))
            except ConnectionClosed as exc:
                raise RelayUnreachable(
                    display, f"connection closed before authentication ({exc})"
                ) from None
            answer = await _recv_handshake_frame(ws, display, phase)
    except TimeoutError:
        ws.transport.abort()
        raise RelayUnreachable(
            display, f"no answer to {phase} within {connect_timeout:g} s"
        ) from None
    except BaseException:
        ws.transport.abort()
        raise
    if isinstance(answer, AuthOk) and answer.identity == identity:
        return challenge, answer
    ws.transport.abort()
    if isinstance(answer, AuthOk):
        raise RelayAuthFailed(f"relay {display} confirmed a different identity than ours")
    if isinstance(answer, Error):
        raise RelayAuthFailed(
            f"relay {display} refused authentication ({answer.code}): {answer.message}",
            code=answer.code,
        )
    raise RelayProtocolError(f"relay {display} answered authentication with {_tag(answer)}")


async def _recv_handshake_frame(ws: ClientConnection, display: str, phase: str) -> RelayFrame:
    try:
        data = await ws.recv()
    except ConnectionClosed as exc:
        raise RelayUnreachable(
            display, f"connection closed while waiting for {phase} ({exc})"
        ) from None
    try:
        return decode_relay_frame(data)
    except MalformedFrame as exc:
        raise RelayProtocolError(
            f"relay {display} sent an undecodable frame instead of {phase}: {exc}"
        ) from None


def _tag(frame: object) -> str:
    return type(frame).__name__

"""The authentication phase of a connection, shared by the message link and the media route.

:func:`authenticate` sends the Challenge, then reads frames until a valid Auth arrives (the
identity is returned), the Auth fails (``auth_failed``, close 1008), too many frames arrive
before it (``unauthenticated``, close 1008), or nothing arrives in time (close 1008). The
connection-specific parts (how frames go out, how a close happens, what a malformed frame
costs, which frames count as "needs authentication first") come in through
:class:`HandshakeIO`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from messenger_tui.core import wire
from messenger_tui.core.errors import MalformedFrame
from messenger_tui.relay.auth import AuthChallenge, AuthRefused
from messenger_tui.relay.services import RelayServices

CLOSE_POLICY: Final = 1008
#: Unauthenticated frames tolerated before the connection is closed.
MAX_UNAUTHENTICATED_FRAMES: Final = 20

ErrorCode = wire.ErrorCode

#: Decodes one incoming message during the handshake: a client frame, or None for a frame of
#: the route that is valid but needs authentication first. Raises MalformedFrame.
HandshakeDecoder = Callable[[bytes | str], wire.ClientFrame | None]


class HandshakeIO(Protocol):
    """What :func:`authenticate` needs from a connection."""

    async def recv(self) -> bytes | str:
        """The next incoming websocket message (raises ConnectionClosed)."""
        ...

    def send(self, frame: wire.RelayFrame) -> None:
        """Queue a frame for the client without blocking."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send what is queued (briefly), then close the websocket."""
        ...

    async def malformed(self, exc: MalformedFrame) -> None:
        """Answer a malformed frame; may raise to end the connection."""
        ...


async def authenticate(
    io: HandshakeIO,
    services: RelayServices,
    decode: HandshakeDecoder = wire.decode_client_frame,
) -> bytes | None:
    """Run the Challenge -> Auth exchange; the identity, or None when the connection was
    refused and is closing."""
    config = services.config
    challenge = AuthChallenge(services.relay_key, services.clock(), echo=config.echo_identity)
    io.send(challenge.frame)
    unauthenticated = 0
    try:
        async with asyncio.timeout(config.auth_timeout_s):
            while True:
                data = await io.recv()
                try:
                    frame = decode(data)
                except MalformedFrame as exc:
                    await io.malformed(exc)
                    continue
                if not isinstance(frame, wire.Auth):
                    unauthenticated += 1
                    io.send(
                        wire.Error(
                            code=ErrorCode.UNAUTHENTICATED,
                            message="authenticate first: answer the Challenge with Auth",
                        )
                    )
                    if unauthenticated >= MAX_UNAUTHENTICATED_FRAMES:
                        await io.close(CLOSE_POLICY, "too many unauthenticated frames")
                        return None
                    continue
                try:
                    identity = challenge.verify(frame, services.clock())
                except AuthRefused as exc:
                    services.counters.auth_failures += 1
                    services.log.info("auth refused: %s", exc)
                    io.send(wire.Error(code=ErrorCode.AUTH_FAILED, message=str(exc)))
                    await io.close(CLOSE_POLICY, "authentication failed")
                    return None
                return identity
    except TimeoutError:
        io.send(wire.Error(code=ErrorCode.UNAUTHENTICATED, message="no Auth within the time limit"))
        await io.close(CLOSE_POLICY, "authentication timeout")
        return None

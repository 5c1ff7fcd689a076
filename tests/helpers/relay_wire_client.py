"""A raw relay protocol client for tests: websockets + core.wire + nacl signing, no app code.

    client = await WireClient.connect(relay.url)          # new random identity, authenticated
    await client.send(wire.Send(id=new_id(), to=other.identity, body=b"x"))
    stored = await client.expect(wire.Stored)

``WireClient.connect(url, auth=False)`` stops after the Challenge (``client.challenge``);
``make_auth`` builds an Auth for any key, nonce and time (for replay / skew tests).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from typing import Any, TypeVar

import nacl.signing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import wire

F = TypeVar("F")


def new_key() -> nacl.signing.SigningKey:
    """A fresh random Ed25519 identity."""
    return nacl.signing.SigningKey.generate()


def new_id() -> bytes:
    """A fresh random 16-byte message id."""
    return os.urandom(wire.MESSAGE_ID_LEN)


def now_ms() -> int:
    """Wall clock in milliseconds."""
    return time.time_ns() // 1_000_000


def make_auth(
    key: nacl.signing.SigningKey, challenge: wire.Challenge, time_ms: int | None = None
) -> wire.Auth:
    """The Auth frame answering ``challenge`` as ``key`` at ``time_ms`` (default: now)."""
    t = now_ms() if time_ms is None else time_ms
    identity = bytes(key.verify_key)
    message = wire.auth_message(challenge.relay_key, challenge.nonce, identity, t)
    return wire.Auth(identity=identity, time_ms=t, signature=key.sign(message).signature)


class WireClient:
    """One websocket connection speaking the relay protocol frame by frame."""

    def __init__(
        self, ws: ClientConnection, key: nacl.signing.SigningKey, challenge: wire.Challenge
    ) -> None:
        self.ws = ws
        self.key = key
        self.challenge = challenge
        self.auth_ok: wire.AuthOk | None = None

    @property
    def identity(self) -> bytes:
        """This client's identity public key."""
        return bytes(self.key.verify_key)

    @classmethod
    async def connect(
        cls,
        url: str,
        key: nacl.signing.SigningKey | None = None,
        *,
        auth: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        source: str | None = None,
    ) -> WireClient:
        """Connect (from the local address ``source``, e.g. another loopback address, if
        given), read the Challenge and (unless ``auth=False``) authenticate."""
        extra: dict[str, Any] = {} if source is None else {"local_addr": (source, 0)}
        ws = await connect(
            url,
            compression=None,
            max_size=None,
            ssl=ssl_context,
            open_timeout=timeout,
            ping_interval=None,
            **extra,
        )
        first = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), timeout))
        assert isinstance(first, wire.Challenge), first
        client = cls(ws, key or new_key(), first)
        if auth:
            await client.authenticate()
        return client

    async def authenticate(self, time_ms: int | None = None) -> wire.AuthOk:
        """Answer the Challenge; returns AuthOk or raises AssertionError with the Error."""
        await self.send(make_auth(self.key, self.challenge, time_ms))
        frame = await self.recv()
        assert isinstance(frame, wire.AuthOk), frame
        self.auth_ok = frame
        return frame

    async def send(self, frame: wire.ClientFrame) -> None:
        """Encode and send one frame."""
        await self.ws.send(wire.encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        """Send arbitrary bytes (or text) as one websocket message."""
        await self.ws.send(data)

    async def recv(self, timeout: float = 10.0) -> wire.RelayFrame:
        """The next frame; raises TimeoutError or ConnectionClosed."""
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        return wire.decode_relay_frame(data)

    async def expect(self, kind: type[F], timeout: float = 10.0) -> F:
        """The next frame, asserting its type."""
        frame = await self.recv(timeout)
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def recv_until(
        self, kind: type[F], timeout: float = 10.0
    ) -> tuple[F, list[wire.RelayFrame]]:
        """Receive until a frame of ``kind``; return it and the frames before it."""
        before: list[wire.RelayFrame] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(max(remaining, 0.001))
            if isinstance(frame, kind):
                return frame, before
            before.append(frame)

    async def nothing_for(self, seconds: float) -> list[wire.RelayFrame]:
        """Frames received within ``seconds`` (expected empty by most callers)."""
        frames: list[wire.RelayFrame] = []
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return frames
            try:
                frames.append(await self.recv(remaining))
            except TimeoutError:
                return frames

    async def drain_deliveries(self, timeout: float = 10.0) -> list[wire.Deliver]:
        """Deliveries up to the next Drained (asserting nothing else arrives)."""
        _, before = await self.recv_until(wire.Drained, timeout)
        delivered = [f for f in before if isinstance(f, wire.Deliver)]
        assert len(delivered) == len(before), before
        return delivered

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait for the relay to close the connection; return the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        """Close the websocket."""
        await self.ws.close()

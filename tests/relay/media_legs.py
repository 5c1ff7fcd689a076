"""Raw media-route clients for tests: websockets + core wire/media_wire + nacl, no app code.

leg = await RawLeg.connect(relay.url, token=token, leg=0)   # authenticated and joined
await leg.send_media(b"\\x01...")
data = await leg.recv()            # bytes (a media frame) or a decoded control frame
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import nacl.signing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import media_wire, wire
from tests.helpers.relay_wire_client import make_auth, new_key


def media_url(relay_url: str) -> str:
    return relay_url.rstrip("/") + media_wire.MEDIA_PATH


def media_frame(marker: bytes = b"", size: int = 149) -> bytes:
    """A media-frame-shaped message: version byte 0x01, ``marker``, random padding."""
    body = b"\x01" + marker
    return body + os.urandom(max(0, size - len(body)))


def stamped_frame(size: int = 149) -> bytes:
    """A media frame carrying its send time (perf_counter_ns) after the version byte."""
    return b"\x01" + time.perf_counter_ns().to_bytes(8, "big") + bytes(size - 9)


def stamp_age_ms(frame: bytes) -> float:
    return (time.perf_counter_ns() - int.from_bytes(frame[1:9], "big")) / 1e6


class RawLeg:
    """One websocket on the media route."""

    def __init__(self, ws: ClientConnection, key: nacl.signing.SigningKey) -> None:
        self.ws = ws
        self.key = key
        self.joined: media_wire.MediaJoined | None = None
        self.challenge: wire.Challenge | None = None

    @property
    def identity(self) -> bytes:
        return bytes(self.key.verify_key)

    @classmethod
    async def connect(
        cls,
        relay_url: str,
        key: nacl.signing.SigningKey | None = None,
        *,
        token: bytes | None = None,
        leg: int = 0,
        auth: bool = True,
    ) -> RawLeg:
        """Connect to /media; authenticate unless ``auth=False``; join when ``token``
        is given (asserting media_joined)."""
        ws = await connect(
            media_url(relay_url), compression=None, max_size=None, ping_interval=None
        )
        self = cls(ws, key or new_key())
        challenge = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 5))
        assert isinstance(challenge, wire.Challenge), challenge
        self.challenge = challenge
        if auth:
            await ws.send(wire.encode(make_auth(self.key, challenge)))
            ok = wire.decode_relay_frame(await asyncio.wait_for(ws.recv(), 5))
            assert isinstance(ok, wire.AuthOk), ok
            if token is not None:
                joined = await self.join(token, leg)
                assert isinstance(joined, media_wire.MediaJoined), joined
        return self

    async def join(self, token: bytes, leg: int) -> Any:
        """Send media_join; return the relay's answer (MediaJoined or Error)."""
        await self.send_control(media_wire.MediaJoin(token=token, leg=leg))
        answer = await self.recv()
        if isinstance(answer, media_wire.MediaJoined):
            self.joined = answer
        return answer

    async def send_control(self, frame: Any) -> None:
        await self.ws.send(media_wire.encode_media_control(frame))

    async def send_media(self, data: bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> Any:
        """The next message: bytes for a media frame, else the decoded control frame."""
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        if media_wire.is_media_frame(data):
            return data
        return media_wire.decode_media_relay_frame(data)

    async def nothing_for(self, seconds: float) -> list[Any]:
        """Everything received within ``seconds`` (most callers expect an empty list)."""
        got: list[Any] = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                got.append(await self.recv(remaining))
            except TimeoutError:
                break
            except ConnectionClosed:
                break
        return got

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Read until the relay closes; the close code it sent."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


def control_errors(frames: list[Any]) -> list[str]:
    return [f.code for f in frames if isinstance(f, wire.Error)]

"""Raw group call legs for tests: websockets + core wire/group_media_wire, no app code.

leg = await GroupRawLeg.connect(relay.url, token)   # authenticated, group_joined
await leg.send(frame)                                 # a group media frame (first byte 0x02)
leg.start_reading()                                   # collect frames and control in the background
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import nacl.signing
from websockets.exceptions import ConnectionClosed

from messenger_tui.core import group_media_wire as gw
from tests.relay.media_legs import RawLeg


def group_test_frame(sender: int, sequence: int, level: int, size: int = 100) -> bytes:
    """A group-frame-shaped message: version 2, the level byte, sender, sequence, padding."""
    body = bytes([2, level, sender]) + sequence.to_bytes(4, "big")
    return body + bytes(size - len(body))


def parse_test_frame(frame: bytes) -> tuple[int, int]:
    """(sender, sequence) of a :func:`group_test_frame`."""
    return frame[2], int.from_bytes(frame[3:7], "big")


class GroupRawLeg:
    """One group call leg on the media route."""

    def __init__(self, raw: RawLeg) -> None:
        self.raw = raw
        self.joined: gw.GroupJoined | None = None
        self.frames: list[bytes] = []
        self.control: list[Any] = []
        self.closed_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        #: Called with each media frame as it arrives (timing tests).
        self.on_frame: Callable[[bytes], None] | None = None

    @property
    def identity(self) -> bytes:
        return self.raw.identity

    @classmethod
    async def connect(
        cls,
        relay_url: str,
        token: bytes,
        key: nacl.signing.SigningKey | None = None,
    ) -> GroupRawLeg:
        raw = await RawLeg.connect(relay_url, key)
        self = cls(raw)
        await raw.ws.send(gw.encode_group_control(gw.GroupJoin(token=token)))
        answer = gw.decode_group_relay_frame(await asyncio.wait_for(raw.ws.recv(), 5))
        if isinstance(answer, gw.GroupJoined):
            self.joined = answer
        else:
            self.control.append(answer)
        return self

    async def send(self, frame: bytes) -> None:
        await self.raw.ws.send(frame)

    async def leave(self) -> None:
        await self.raw.ws.send(gw.encode_group_control(gw.GroupLeave()))

    def start_reading(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                data = await self.raw.ws.recv()
                if isinstance(data, bytes) and data[:1] == b"\x02":
                    self.frames.append(data)
                    if self.on_frame is not None:
                        self.on_frame(data)
                else:
                    self.control.append(gw.decode_group_relay_frame(data))
        except ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd is not None else None

    def members(self) -> list[gw.ParticipantChange]:
        return [c for c in self.control if isinstance(c, gw.ParticipantChange)]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.raw.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 2)

"""The floor of a call's CPU in Python: a bare websockets client moving call-sized frames.

``python -m benchmarks.bare_media_client URL LEG TOKEN_HEX SECONDS`` joins the bare forwarder's
media pairing (``benchmarks/forwarder.py``, role ``M``) and, for ``SECONDS``, sends one
181-byte binary frame (a 24 kb/s call frame's size) every 20 ms on the same 20 ms loop grid as
the real client (:class:`~messenger_tui.media.pacing.LoopPacer`), on uvloop, writing each frame
straight to the transport and taking each incoming one straight from the protocol, as
``MediaLink`` does. No codec, no crypto, no jitter buffer, no service: what is left is the
event loop's wake-ups, websockets' framing and the socket calls, which every Python client of
this design pays. It prints ``ready`` once joined and ``received N`` at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from messenger_tui.media.pacing import LoopPacer

FRAME_SIZE = 181


class _Counting(ClientConnection):
    received = 0

    def process_event(self, event: object) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
            self.received += 1
            return
        super().process_event(event)  # type: ignore[arg-type]


async def _main(url: str, leg: int, token: bytes, seconds: float) -> None:
    async with connect(url, compression=None, create_connection=_Counting) as ws:
        await ws.send(b"M" + bytes([leg]) + token)
        print("ready", flush=True)
        frame = b"\x01" + os.urandom(FRAME_SIZE - 1)
        protocol, transport = ws.protocol, ws.transport

        def step() -> None:
            protocol.send_binary(frame)
            transport.write(b"".join(protocol.data_to_send()))

        pacer = LoopPacer(step)
        pacer.start()
        await asyncio.sleep(seconds)
        pacer.stop()
        assert isinstance(ws, _Counting)
        print(f"received {ws.received}", flush=True)


if __name__ == "__main__":
    url, leg, token, seconds = sys.argv[1:5]
    uvloop.run(_main(url, int(leg), bytes.fromhex(token), float(seconds)))

"""The floor of a call's CPU in Python: a bare websockets client moving call-sized frames.

``python -m benchmarks.bare_media_client URL LEG TOKEN_HEX SECONDS [FRAMING]`` joins the bare
forwarder's media pairing (``benchmarks/forwarder.py``, role ``M``) and, for ``SECONDS``, sends
one 181-byte binary frame (a 24 kb/s call frame's size) every 20 ms on the same 20 ms loop grid
as the real client (:class:`~messenger_tui.media.pacing.LoopPacer`), on uvloop, writing each
frame straight to the transport and taking each incoming one straight from the connection. No
codec, no crypto, no jitter buffer, no service: what is left is the event loop's wake-ups, the
websocket framing and the socket calls. ``FRAMING`` is ``websockets`` (the default: websockets'
protocol frames and parses every frame) or ``media`` (the media leg's own framing and splitter,
:mod:`messenger_tui.transport.media_frames`, as ``MediaLink`` does). It prints ``ready`` once
joined and ``received N`` at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from messenger_tui.media.pacing import LoopPacer
from messenger_tui.transport.media_frames import MaskKeys, client_binary_frame
from messenger_tui.transport.media_link import MediaConnection

FRAME_SIZE = 181


class _Counting(ClientConnection):
    received = 0

    def process_event(self, event: object) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
            self.received += 1
            return
        super().process_event(event)  # type: ignore[arg-type]


async def _main(url: str, leg: int, token: bytes, seconds: float, framing: str) -> None:
    own_framing = framing == "media"
    conn_class = MediaConnection if own_framing else _Counting
    async with connect(url, compression=None, create_connection=conn_class) as ws:
        await ws.send(b"M" + bytes([leg]) + token)
        print("ready", flush=True)
        frame = b"\x01" + os.urandom(FRAME_SIZE - 1)
        protocol, transport = ws.protocol, ws.transport
        masks = MaskKeys()
        received = 0

        def count(_frame: bytes) -> None:
            nonlocal received
            received += 1

        def step() -> None:
            if own_framing:
                transport.write(client_binary_frame(frame, masks.next()))
            else:
                protocol.send_binary(frame)
                transport.write(b"".join(protocol.data_to_send()))

        if isinstance(ws, MediaConnection):
            ws.on_media_frame = count
        pacer = LoopPacer(step)
        pacer.start()
        await asyncio.sleep(seconds)
        pacer.stop()
        if isinstance(ws, _Counting):
            received = ws.received
        print(f"received {received}", flush=True)


if __name__ == "__main__":
    url, leg, token, seconds = sys.argv[1:5]
    framing = sys.argv[5] if len(sys.argv) > 5 else "websockets"
    if framing not in ("websockets", "media"):
        raise SystemExit("FRAMING is websockets or media")
    uvloop.run(_main(url, int(leg), bytes.fromhex(token), float(seconds), framing))

"""What this machine charges for waking up: an event loop that wakes and does nothing.

``python -m benchmarks.wakeups SECONDS WAKES`` runs uvloop (as the commands do) with ``WAKES``
timers per 20 ms, spread evenly over the frame, each callback doing nothing but re-arming
itself, for ``SECONDS``; it prints ``ready`` once started. Any client that plays 20 ms frames
wakes at least once per frame; with ``WAKES`` = 1 the CPU of this process is what that costs
before any work is done (the kernel's sleep and wake-up path, timer programming, and on a
virtual machine the exits they cause): the part of a call's figure that belongs to the machine
rather than to the code. It is a lower bound: a call also wakes for the peer's frame (on the
shared 20 ms grid, within a millisecond or so of its own tick); measured here, two wakes 10 ms
apart cost 1.6-1.9 times one.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from messenger_tui.media.pacing import FRAME_S


async def _main(seconds: float, wakes: int) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()

    def tick(phase: float, slot: int) -> None:
        loop.call_at(start + phase + slot * FRAME_S, tick, phase, slot + 1)

    for i in range(wakes):
        phase = FRAME_S * i / wakes
        loop.call_at(start + phase + FRAME_S, tick, phase, 2)
    print("ready", flush=True)
    await asyncio.sleep(seconds)


if __name__ == "__main__":
    uvloop.run(_main(float(sys.argv[1]), int(sys.argv[2])))

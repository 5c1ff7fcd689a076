"""The loop pacer: 20 ms slots on a grid shared by every pacer, absolute deadlines, stop from
any thread, no burst after a stall; and the WAV ends paced by it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from messenger_tui.media.pacing import FRAME_S, MAX_LAG_S, LoopPacer
from messenger_tui.media.ports import FRAME_BYTES
from messenger_tui.media.wav_io import WavSink, WavSource, read_wav_frames

from .test_wav_io import numbered_frames, write_wav


async def test_pacers_share_the_grid_so_a_call_wakes_once_per_frame() -> None:
    """A source and a sink started at different moments still fire in the same loop
    iteration: their slots are multiples of 20 ms of the loop's clock."""
    loop = asyncio.get_running_loop()
    fired: dict[str, list[float]] = {"source": [], "sink": []}
    iteration = [0]

    def count_iterations() -> None:
        iteration[0] += 1
        loop.call_soon(count_iterations)

    source = LoopPacer(lambda: fired["source"].append(iteration[0]))
    sink = LoopPacer(lambda: fired["sink"].append(iteration[0]))
    source.start()
    await asyncio.sleep(0.007)  # not a whole frame later
    sink.start()
    loop.call_soon(count_iterations)
    await asyncio.sleep(0.2)
    source.stop()
    sink.stop()
    shared = fired["source"][-len(fired["sink"]) :]
    assert len(fired["sink"]) >= 7
    assert shared == fired["sink"]  # the same loop iteration, every frame


async def test_slots_keep_absolute_deadlines_and_stop_from_another_thread() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    pacer = LoopPacer(lambda: times.append(loop.time()))
    pacer.start()
    await asyncio.sleep(0.41)
    await asyncio.to_thread(pacer.stop)  # as a media session stops its ends
    count = len(times)
    await asyncio.sleep(0.06)
    assert len(times) == count and not pacer.running
    assert 18 <= count <= 22
    first_slot = round(times[0] / FRAME_S)
    late = [t - (first_slot + n) * FRAME_S for n, t in enumerate(times)]
    assert min(late) >= 0 and max(late) < 0.015  # on its slot, and no drift along the run


async def test_a_stalled_loop_rejoins_the_grid_without_a_burst() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    pacer = LoopPacer(lambda: times.append(loop.time()))
    pacer.start()
    await asyncio.sleep(0.05)
    time.sleep(MAX_LAG_S + 0.1)  # the loop is blocked for 55 slots
    resumed = loop.time()
    await asyncio.sleep(0.1)
    pacer.stop()
    after = [t for t in times if t >= resumed]
    # 0.1 s is 5 slots (6 with the late one): a catch-up would run the 55 missed ones too
    assert 4 <= len(after) <= 7
    slots = [t / FRAME_S for t in after[1:]]
    assert all(s - int(s) < 0.75 for s in slots)  # back on the grid


async def test_a_step_returning_false_ends_the_pacer() -> None:
    calls: list[int] = []

    def step() -> bool:
        calls.append(1)
        return len(calls) < 3

    pacer = LoopPacer(step)
    pacer.start()
    await asyncio.sleep(0.15)
    assert len(calls) == 3 and not pacer.running


async def test_loop_paced_wav_ends_play_and_record_on_the_loop(tmp_path: Path) -> None:
    frames = numbered_frames(5)
    path = write_wav(tmp_path / "in.wav", b"".join(frames))
    source = WavSource(path)  # pace="loop" is the default
    sink = WavSink(tmp_path / "out.wav")
    threads: set[int] = set()
    got: list[bytes] = []

    def on_frame(frame: bytes) -> None:
        threads.add(threading.get_ident())
        got.append(frame)

    def pull() -> bytes:
        threads.add(threading.get_ident())
        return got[-1] if got else bytes(FRAME_BYTES)

    sink.start(pull)
    source.start(on_frame)
    await asyncio.sleep(0.25)
    source.stop()
    sink.stop()
    assert threads == {threading.get_ident()}  # everything on the loop's thread
    assert got[:5] == frames and set(got[5:]) == {bytes(FRAME_BYTES)}
    recorded = read_wav_frames(tmp_path / "out.wav")
    assert 8 <= len(recorded) <= 14
    # the sink pulls in the same loop iteration as the source delivers (before or after it)
    assert frames[0] in recorded[:2]


async def test_a_late_step_runs_after_the_io_that_queued_up_during_the_stall() -> None:
    """A busy machine: the loop is held 100 ms while a frame arrives on a socket and takes
    two more loop iterations to reach the jitter buffer (as a call's frames do). The late
    steps must see it: catching up first pulled ahead of it, and the call concealed a frame
    that had arrived (docs/performance.md, "Calls under load")."""
    loop = asyncio.get_running_loop()
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    delivered: list[bytes] = []
    seen_at_step: list[tuple[float, int]] = []

    def on_readable() -> None:  # the socket -> protocol -> handler hops of a real carrier
        data = reader.recv(64)
        loop.call_soon(lambda: loop.call_soon(delivered.append, data))

    loop.add_reader(reader.fileno(), on_readable)
    pacer = LoopPacer(lambda: seen_at_step.append((loop.time(), len(delivered))))
    try:
        pacer.start()
        await asyncio.sleep(0.05)
        stall_at = loop.time()
        threading.Timer(0.03, writer.send, args=(b"frame",)).start()
        time.sleep(0.1)  # the loop gets no CPU: 5 slots pass, the frame arrives meanwhile
        await asyncio.sleep(0.06)
    finally:
        pacer.stop()
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()
    after = [seen for at, seen in seen_at_step if at >= stall_at]
    assert len(after) >= 5
    assert all(seen == 1 for seen in after), after
    assert pacer.late_steps >= 1 and pacer.max_lag_s >= 0.08 and pacer.rejoins == 0

"""Arrival traces and a simulated-time replay for jitter buffer tests.

A trace is the list of packets a receiver gets: sequence number, arrival time (receiver
clock, ms), the packet and the redundant copy of the previous frame it carries. Packets hold
``b"p<seq>"`` so a test can check what was played. Everything is seeded and runs in simulated
time: minutes of audio replay in a fraction of a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from messenger_tui.media.jitter_buffer import (
    JitterBuffer,
    JitterBufferConfig,
    JitterStats,
    Playout,
    PlayoutKind,
)


@dataclass(frozen=True)
class Arrival:
    time_ms: float
    seq: int
    packet: bytes
    redundant: bytes | None


def packet(seq: int) -> bytes:
    return b"p%d" % seq


def make_trace(
    frames: int,
    *,
    seed: int = 1,
    sender_period_ms: float = 20.0,
    base_delay_ms: float = 40.0,
    jitter: Callable[[random.Random, int], float] = lambda rng, seq: 0.0,
    lost: Iterable[int] = (),
    redundancy: bool = True,
    first_seq: int = 0,
) -> list[Arrival]:
    """Frame ``s`` leaves at ``s * sender_period_ms`` (true time; 20 ms of the sender's clock)
    and arrives ``base_delay_ms + jitter(rng, s)`` later, unless ``s`` is in ``lost``."""
    rng = random.Random(seed)
    gone = set(lost)
    trace = []
    for i in range(frames):
        seq = first_seq + i
        extra = jitter(rng, seq)
        if seq in gone:
            continue
        redundant = packet(seq - 1) if redundancy and i > 0 else None
        trace.append(
            Arrival(i * sender_period_ms + base_delay_ms + extra, seq, packet(seq), redundant)
        )
    trace.sort(key=lambda a: a.time_ms)
    return trace


def uniform_jitter(max_ms: float) -> Callable[[random.Random, int], float]:
    return lambda rng, seq: rng.uniform(0.0, max_ms)


def random_loss(frames: int, rate: float, *, seed: int, start: int = 100) -> set[int]:
    rng = random.Random(seed)
    return {s for s in range(start, frames) if rng.random() < rate}


def bursty_loss(
    frames: int, *, seed: int, p_enter: float, p_leave: float, start: int = 100
) -> set[int]:
    """Gilbert-Elliott: from "good" go "bad" with ``p_enter``; every frame while "bad" is lost
    and the channel recovers with ``p_leave``."""
    rng = random.Random(seed)
    bad = False
    gone = set()
    for s in range(start, frames):
        bad = rng.random() >= p_leave if bad else rng.random() < p_enter
        if bad:
            gone.add(s)
    return gone


@dataclass
class Replay:
    buffer: JitterBuffer
    playouts: list[Playout] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)

    @property
    def stats(self) -> JitterStats:
        return self.buffer.stats

    def kinds(self, kind: PlayoutKind) -> list[Playout]:
        return [p for p in self.playouts if p.kind is kind and not p.stretched]

    def delays_after(self, ms: float) -> list[float]:
        """Current delay at each tick from ``ms`` on, while playing."""
        return [
            d
            for t, d, p in zip(self.times, self.delays, self.playouts)
            if t >= ms and p.kind is not PlayoutKind.SILENCE
        ]

    def played_sequences(self) -> list[int]:
        return [p.sequence for p in self.playouts if p.sequence is not None]


def replay(
    trace: list[Arrival],
    *,
    config: JitterBufferConfig | None = None,
    device_period_ms: float = 20.0,
    phase_ms: float = 7.0,
    tail_ms: float = 1000.0,
    pull_late_ms: Callable[[int], float] = lambda tick: 0.0,
) -> Replay:
    """Push each arrival at its time and pull once per ``device_period_ms`` (the output
    device's clock), arrivals first when both happen at the same instant. Stops once every
    packet was pushed and the buffer is empty (or ``tail_ms`` after the last arrival).

    ``pull_late_ms(tick)``: how late that tick's pull runs (a busy machine): it reads the
    clock then, and sees the packets that arrived meanwhile; the next tick keeps its time."""
    jb = JitterBuffer(config)
    out = Replay(jb)
    end = trace[-1].time_ms + tail_ms
    i = 0
    tick = 0
    while i < len(trace) or jb.buffered:
        now = phase_ms + tick * device_period_ms
        if now > end:
            break
        now += pull_late_ms(tick)
        while i < len(trace) and trace[i].time_ms <= now:
            a = trace[i]
            jb.push(a.seq, a.packet, a.time_ms, a.redundant)
            i += 1
        out.playouts.append(jb.pull(now))
        out.times.append(now)
        out.delays.append(jb.stats.current_delay_ms)
        out.targets.append(jb.stats.target_delay_ms)
        tick += 1
    return out

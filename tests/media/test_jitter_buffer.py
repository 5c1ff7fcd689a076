"""The jitter buffer replaying arrival traces in simulated time (seeded, fast)."""

from __future__ import annotations

import itertools
import random

import pytest

from messenger_tui.media.jitter_buffer import (
    Concealment,
    JitterBuffer,
    JitterBufferConfig,
    PlayoutKind,
)

from ._sim import (
    Arrival,
    bursty_loss,
    make_trace,
    packet,
    random_loss,
    replay,
    uniform_jitter,
)

CFG = JitterBufferConfig()
SETTLED_MS = 3_000  # start delay adapted to the measured jitter by then


def _band_top(target: float) -> float:
    return target + CFG.drop_margin_ms


def _assert_in_order_without_gaps(seqs: list[int], dropped: int) -> None:
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + dropped


def test_in_order_no_jitter_settles_at_the_minimum() -> None:
    r = replay(make_trace(3000))
    s = r.stats
    assert s.concealed_total == 0 and s.late == 0 and s.lost == 0 and s.stretched == 0
    assert s.played + s.dropped == 3000
    assert s.dropped <= 3  # only to come down from the start delay
    assert r.targets[-1] == CFG.min_delay_ms
    delays = r.delays_after(SETTLED_MS)
    assert min(delays) >= CFG.min_delay_ms - CFG.stretch_margin_ms
    assert max(delays) < _band_top(CFG.min_delay_ms)
    _assert_in_order_without_gaps(r.played_sequences(), s.dropped)
    assert all(p.packet == packet(p.sequence) for p in r.kinds(PlayoutKind.FRAME))  # type: ignore[arg-type]


def test_starts_with_silence_until_the_start_delay() -> None:
    r = replay(make_trace(100, base_delay_ms=40.0))
    first_play = next(i for i, p in enumerate(r.playouts) if p.kind is not PlayoutKind.SILENCE)
    # first packet at 40 ms; ticks at 7 + 20k ms; playing starts at the first tick >= 100 ms
    assert r.times[first_play] == 107.0
    assert r.playouts[first_play].sequence == 0
    assert all(p.kind is PlayoutKind.SILENCE for p in r.playouts[:first_play])


def test_jitter_30ms() -> None:
    r = replay(make_trace(3000, seed=7, jitter=uniform_jitter(30.0)))
    s = r.stats
    assert s.late == 0 and s.concealed_total == 0
    # target = p95 of uniform(0, 30) + one frame, about 48.5 ms
    assert 44.0 <= r.targets[-1] <= 52.0
    assert 25.0 <= s.jitter_p95_ms <= 30.0
    # RFC 3550 jitter of uniform(0, 30) transit times: E|X - Y| = 10 ms
    assert 8.0 <= s.jitter_ms <= 12.0
    delays = r.delays_after(SETTLED_MS)
    assert max(delays) < _band_top(52.0)
    _assert_in_order_without_gaps(r.played_sequences(), s.dropped)


def test_reordered_packets_are_played_in_order() -> None:
    def reorder(rng: random.Random, seq: int) -> float:
        # 10 % of packets are held back 25 ms: they arrive after their successor
        return rng.uniform(0.0, 5.0) + (25.0 if rng.random() < 0.1 else 0.0)

    trace = make_trace(3000, seed=11, jitter=reorder)
    overtaken = sum(1 for a, b in itertools.pairwise(trace) if b.seq < a.seq)
    assert overtaken > 200  # the trace really is reordered
    r = replay(trace)
    s = r.stats
    assert s.late == 0 and s.concealed_total == 0
    _assert_in_order_without_gaps(r.played_sequences(), s.dropped)
    assert max(r.delays_after(SETTLED_MS)) < _band_top(r.targets[-1]) + 5.0


def _expected_concealment(lost: set[int]) -> tuple[int, int]:
    """(repaired from the next packet, concealed by PLC) for a trace without jitter."""
    from_next = sum(1 for s in lost if s + 1 not in lost)
    return from_next, len(lost) - from_next


def test_random_loss_5_percent_is_repaired_from_the_next_packet() -> None:
    lost = random_loss(5000, 0.05, seed=3)
    assert 200 < len(lost) < 300
    r = replay(make_trace(5000, lost=lost))
    s = r.stats
    from_next, plc = _expected_concealment(lost)
    assert s.concealed[Concealment.REDUNDANCY] == from_next
    assert s.concealed[Concealment.PLC] == plc
    assert s.concealed[Concealment.FEC] == 0
    assert s.lost == len(lost) and s.late == 0
    # each repaired slot played exactly the lost frame's copy
    for p in r.kinds(PlayoutKind.REDUNDANT):
        assert p.sequence in lost and p.packet == packet(p.sequence)


def test_without_redundancy_the_next_packet_fec_is_used() -> None:
    lost = random_loss(5000, 0.05, seed=3)
    r = replay(make_trace(5000, lost=lost, redundancy=False))
    from_next, plc = _expected_concealment(lost)
    assert r.stats.concealed[Concealment.FEC] == from_next
    assert r.stats.concealed[Concealment.PLC] == plc
    for p in r.kinds(PlayoutKind.FEC):
        # FEC of frame s is in packet s + 1: that is what the decoder must get
        assert p.packet == packet(p.sequence + 1)  # type: ignore[operator]


def test_bursty_loss() -> None:
    lost = bursty_loss(5000, seed=4, p_enter=0.02, p_leave=0.4)
    bursts = sum(1 for s in lost if s - 1 not in lost)
    assert bursts < len(lost) * 0.7  # there are real bursts, not only single losses
    r = replay(make_trace(5000, lost=lost))
    s = r.stats
    from_next, plc = _expected_concealment(lost)
    assert from_next == bursts  # only the last frame of a burst has its copy in a packet
    assert s.concealed[Concealment.REDUNDANCY] == from_next
    assert s.concealed[Concealment.PLC] == plc
    assert s.lost == len(lost)


def test_loss_with_jitter_still_mostly_repaired() -> None:
    lost = random_loss(5000, 0.05, seed=5)
    r = replay(make_trace(5000, seed=5, lost=lost, jitter=uniform_jitter(30.0)))
    s = r.stats
    from_next, _ = _expected_concealment(lost)
    # the target keeps one frame of lookahead above the 95th percentile of jitter
    assert s.concealed[Concealment.REDUNDANCY] >= 0.9 * from_next
    assert s.late <= 0.01 * 5000


@pytest.mark.parametrize("drift", [+0.001, -0.001])
def test_drifting_clocks_do_not_grow_or_drain_the_buffer(drift: float) -> None:
    """Five minutes with the sender's clock 0.1 % fast (or slow) against the output device:
    300 ms of drift that must be absorbed by dropping (or stretching) about 15 frames."""
    frames = 15_000
    r = replay(
        make_trace(frames, seed=13, sender_period_ms=20.0 * (1 - drift), jitter=uniform_jitter(10))
    )
    s = r.stats
    drift_frames = frames * abs(drift)  # 15
    if drift > 0:
        assert drift_frames - 2 <= s.dropped <= drift_frames + 4
        assert s.stretched <= 2
    else:
        assert drift_frames - 3 <= s.stretched <= drift_frames + 3
        assert s.dropped <= 3
    assert s.late <= 5 and s.concealed_total <= 5
    delays = r.delays_after(SETTLED_MS)
    settled_targets = r.targets[SETTLED_MS // 20 :]
    assert max(delays) <= _band_top(max(settled_targets)) + 1.0
    assert min(delays) >= min(settled_targets) - CFG.stretch_margin_ms - 2.0
    # the last minute looks like the first: no trend
    first, last = delays[: 50 * 60], delays[-50 * 60 :]
    assert abs(sum(last) / len(last) - sum(first) / len(first)) < 15.0


def test_adapts_up_to_a_jitter_spike_and_back_down() -> None:
    def spike(rng: random.Random, seq: int) -> float:
        return rng.uniform(0.0, 60.0) if 1000 <= seq < 2000 else 0.0

    r = replay(make_trace(3000, seed=17, jitter=spike))
    by_seq = {p.sequence: (p, d, t) for p, d, t in zip(r.playouts, r.delays, r.targets)}
    calm = [by_seq[s] for s in range(500, 1000)]
    rough = [by_seq[s] for s in range(1100, 2000)]
    after = [by_seq[s] for s in range(2500, 3000)]
    assert max(t for _, _, t in calm) == CFG.min_delay_ms
    assert 70.0 <= rough[-1][2] <= 82.0  # p95 of uniform(0, 60) + 20
    # once adapted, the rough second is played without concealment
    assert sum(1 for p, _, _ in rough if p.kind is not PlayoutKind.FRAME) == 0
    # only the first frames of the spike (before the target learned it) were late
    assert 0 < r.stats.late <= 25
    # and the delay comes back down when the network calms
    assert after[-1][2] == CFG.min_delay_ms
    assert max(d for _, d, _ in after) < _band_top(CFG.min_delay_ms)


@pytest.mark.parametrize("step_ms", [40.0, 100.0])
def test_a_path_that_gets_slower_costs_only_the_frames_in_flight(step_ms: float) -> None:
    """From frame 1000 on every packet takes ``step_ms`` longer. The buffer waits for them
    (stretches) as soon as they arrive late, instead of concealing frames until the jitter
    window has learned the new delay."""

    def step(rng: random.Random, seq: int) -> float:
        return step_ms if seq >= 1000 else 0.0

    r = replay(make_trace(3000, jitter=step))
    frames_in_flight = step_ms / 20.0
    assert r.stats.late <= frames_in_flight + 2
    assert r.stats.concealed_total <= frames_in_flight + 2
    assert frames_in_flight <= r.stats.stretched <= frames_in_flight + 3
    assert r.stats.resyncs == 0


def test_output_ticks_that_run_late_on_a_busy_machine_cost_no_frames() -> None:
    """A loop-paced end on a loaded machine: one pull in 40 runs 10-35 ms late (it reads the
    clock late; the ticks after it keep the grid). That is not excess delay: no frame is
    dropped out of the speech, and none stretched in to make up for it (each cost WB-PESQ in
    Echo's sound test; docs/performance.md, "Calls under load")."""
    rng = random.Random(23)
    late = {t: rng.uniform(10.0, 35.0) for t in range(100, 3000) if rng.random() < 1 / 40}
    assert len(late) > 50
    r = replay(
        make_trace(3000, seed=23, jitter=uniform_jitter(4.0)),
        pull_late_ms=lambda tick: late.get(tick, 0.0),
    )
    s = r.stats
    assert s.stretched == 0 and s.concealed_total == 0 and s.late == 0
    assert s.dropped <= 3  # only to come down from the start delay
    _assert_in_order_without_gaps(r.played_sequences(), s.dropped)


def test_delay_is_bounded_by_200ms_even_under_huge_jitter() -> None:
    r = replay(make_trace(3000, seed=19, jitter=uniform_jitter(500.0)))
    assert max(r.targets) == CFG.max_delay_ms
    assert max(r.delays_after(SETTLED_MS)) < _band_top(CFG.max_delay_ms) + 1.0
    assert r.stats.late > 0  # what does not fit in 200 ms is dropped, not waited for


def test_a_late_packet_is_dropped_and_counted_late_not_lost() -> None:
    trace = make_trace(400)
    late = next(a for a in trace if a.seq == 300)
    trace = [a for a in trace if a.seq != 300]
    trace.append(Arrival(late.time_ms + 300.0, 300, late.packet, late.redundant))
    trace.sort(key=lambda a: a.time_ms)
    r = replay(trace)
    s = r.stats
    assert s.late == 1 and s.lost == 0
    assert s.concealed[Concealment.REDUNDANCY] == 1  # repaired from packet 301 in time
    assert 300 in r.played_sequences()


def test_duplicates_are_played_once() -> None:
    trace = make_trace(500)
    dupes = [Arrival(a.time_ms + 5.0, a.seq, a.packet, a.redundant) for a in trace[::10]]
    trace = sorted(trace + dupes, key=lambda a: a.time_ms)
    r = replay(trace)
    assert r.stats.duplicates == len(dupes)
    seqs = r.played_sequences()
    assert len(seqs) == len(set(seqs))


@pytest.mark.parametrize("jump", [+10_000, -10_000])
def test_a_jump_in_sequence_numbers_resynchronises(jump: int) -> None:
    """Within a call the sender never does this; if it ever happens (a restarted sender), the
    buffer must recover within a second instead of dropping everything as late."""
    start = 20_000
    before = make_trace(500, first_seq=start)
    after = make_trace(500, first_seq=start + 500 + jump)
    shift = before[-1].time_ms + 20.0 - after[0].time_ms
    after = [Arrival(a.time_ms + shift, a.seq, a.packet, a.redundant) for a in after]
    r = replay(before + after)
    assert r.stats.resyncs == 1
    new_numbers = range(start + 500 + jump, start + 1000 + jump)
    played_after = [s for s in r.played_sequences() if s in new_numbers]
    assert len(played_after) >= 500 - 50 - CFG.resync_late_run
    assert r.stats.jitter_p95_ms < 1.0  # the jump was not mistaken for network jitter


def test_stats_are_consistent() -> None:
    lost = random_loss(3000, 0.05, seed=23)
    r = replay(make_trace(3000, seed=23, lost=lost, jitter=uniform_jitter(40.0)))
    s = r.stats
    non_silent = [p for p in r.playouts if p.kind is not PlayoutKind.SILENCE]
    assert len(non_silent) == s.played + s.concealed_total + s.stretched
    assert s.received == 3000 - len(lost)
    assert s.lost + s.late >= len(lost)
    assert not s.buffering


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        JitterBufferConfig(drop_margin_ms=10.0, stretch_margin_ms=5.0)
    with pytest.raises(ValueError):
        JitterBufferConfig(min_delay_ms=300.0)


def test_empty_buffer_plays_silence() -> None:
    jb = JitterBuffer()
    assert jb.pull(0.0).kind is PlayoutKind.SILENCE
    assert jb.stats.buffering and jb.buffered == 0

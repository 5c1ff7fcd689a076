"""The media link's lifecycle and rejoin window, row by row, with a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messenger_tui.core.links.effects import Report, Wait
from messenger_tui.core.links.media_rejoin import (
    TRANSITIONS,
    MediaEvent,
    MediaLinkState,
    MediaPhase,
    MediaRejoin,
    RejoinEffect,
    RejoinStateError,
)
from tests.core.links._fakes import DoublingDelays

P = MediaPhase
E = MediaEvent
MS = MediaLinkState
T0 = 3.0  # inside the first window (10 s from 0)


def machine_in(phase: MediaPhase) -> MediaRejoin:
    m = MediaRejoin(DoublingDelays(base=0.05, cap=1.0), display="relay.test", window_s=10.0)
    paths: dict[MediaPhase, list[Callable[[MediaRejoin], object]]] = {
        P.NEW: [],
        P.DIALING: [lambda m: m.start(0.0)],
        P.BACKING_OFF: [lambda m: m.start(0.0), lambda m: m.attempt_failed(T0, "refused")],
        P.JOINED: [lambda m: m.start(0.0), lambda m: m.joined(1.0)],
        P.LOST: [lambda m: m.start(0.0), lambda m: m.refused(1.0, "auth failed")],
        P.CLOSED: [lambda m: m.close(0.0)],
    }
    for step in paths[phase]:
        step(m)
    assert m.phase is phase
    return m


def fire(m: MediaRejoin, event: MediaEvent) -> list[RejoinEffect]:
    inputs: dict[MediaEvent, Callable[[], list[RejoinEffect]]] = {
        E.START: lambda: m.start(T0),
        E.CLOSE: lambda: m.close(T0),
        E.JOINED: lambda: m.joined(T0),
        E.ATTEMPT_FAILED: lambda: m.attempt_failed(T0, "refused"),
        E.REFUSED: lambda: m.refused(T0, "leg_taken"),
        E.DROPPED: lambda: m.dropped(T0, "lost", for_good=False),
        E.DROPPED_FOR_GOOD: lambda: m.dropped(T0, "took over", for_good=True),
        E.RETRY_DUE: lambda: m.poll(T0 + 0.05),  # the BACKING_OFF path's retry deadline
        E.WINDOW_OVER: lambda: m.poll(10.0),
    }
    return inputs[event]()


def kinds(effects: list[RejoinEffect]) -> list[str]:
    out = []
    for e in effects:
        if isinstance(e, Report):
            out.append(f"report {e.state.value}")
        elif isinstance(e, Wait):
            out.append(f"wait {e.delay:g}")
        else:
            out.append(type(e).__name__.lower())
    return out


ROWS: dict[tuple[MediaPhase, MediaEvent], tuple[MediaPhase, list[str]]] = {
    (P.NEW, E.START): (P.DIALING, ["connect"]),
    (P.NEW, E.CLOSE): (P.CLOSED, ["report closed"]),
    (P.DIALING, E.JOINED): (P.JOINED, ["report joined"]),
    (P.DIALING, E.ATTEMPT_FAILED): (P.BACKING_OFF, ["wait 0.05"]),
    (P.DIALING, E.REFUSED): (P.LOST, ["report lost"]),
    (P.DIALING, E.WINDOW_OVER): (P.LOST, ["abort", "report lost"]),
    (P.DIALING, E.CLOSE): (P.CLOSED, ["abort", "report closed"]),
    (P.BACKING_OFF, E.RETRY_DUE): (P.DIALING, ["connect"]),
    (P.BACKING_OFF, E.WINDOW_OVER): (P.LOST, ["report lost"]),
    (P.BACKING_OFF, E.CLOSE): (P.CLOSED, ["report closed"]),
    (P.JOINED, E.DROPPED): (P.DIALING, ["connect", "report reconnecting"]),
    (P.JOINED, E.DROPPED_FOR_GOOD): (P.LOST, ["report lost"]),
    (P.JOINED, E.CLOSE): (P.CLOSED, ["report closed"]),
    (P.LOST, E.CLOSE): (P.CLOSED, ["report closed"]),
    (P.CLOSED, E.CLOSE): (P.CLOSED, []),
}
LOCAL = {E.START, E.CLOSE}
TIMERS = {E.RETRY_DUE, E.WINDOW_OVER}


def test_the_written_rows_are_exactly_the_table() -> None:
    assert {(p, e) for p, row in TRANSITIONS.items() for e in row} == set(ROWS)


def _row_order(row: tuple[MediaPhase, MediaEvent]) -> tuple[str, str]:
    return (row[0].value, row[1].value)


ROW_KEYS = sorted(ROWS, key=_row_order)


@pytest.mark.parametrize(("phase", "event"), ROW_KEYS)
def test_row(phase: MediaPhase, event: MediaEvent) -> None:
    m = machine_in(phase)
    target, expected = ROWS[phase, event]
    assert kinds(fire(m, event)) == expected
    assert m.phase is target


@pytest.mark.parametrize("phase", list(MediaPhase))
def test_unlisted_events_raise_when_local_and_are_ignored_otherwise(phase: MediaPhase) -> None:
    for event in MediaEvent:
        if (phase, event) in ROWS or event in TIMERS:
            continue
        m = machine_in(phase)
        if event in LOCAL:
            with pytest.raises(RejoinStateError):
                fire(m, event)
        else:
            assert fire(m, event) == []
        assert m.phase is phase


def test_the_window_counts_from_start_and_retries_never_pass_it() -> None:
    m = MediaRejoin(DoublingDelays(base=0.5, cap=8.0), display="r", window_s=3.0)
    m.start(0.0)
    now, waits = 0.0, []
    while m.phase is not P.LOST:
        effects = m.attempt_failed(now, "connection refused")
        waits += [e.delay for e in effects if isinstance(e, Wait)]
        assert m.next_deadline is not None
        now = m.next_deadline
        m.poll(now)
    assert waits == [0.5, 1.0, 1.5]  # the third is cut to the window's end (0.5+1+1.5 = 3)
    assert now == 3.0
    assert m.state is MS.LOST
    assert m.error == "no media connection within 3 s (connection refused)"


def test_an_attempt_the_window_cuts_short_reads_as_no_answer() -> None:
    m = MediaRejoin(DoublingDelays(), display="relay.test", window_s=2.0)
    m.start(0.0)
    assert m.next_deadline == 2.0
    effects = m.poll(2.0)
    assert kinds(effects) == ["abort", "report lost"]
    assert m.error == "no media connection within 2 s (relay relay.test did not answer in time)"
    assert effects[-1] == Report(MS.LOST, None, m.error)


def test_an_earlier_failure_in_the_window_keeps_its_reason() -> None:
    m = MediaRejoin(DoublingDelays(base=0.05), display="r", window_s=2.0)
    m.start(0.0)
    m.attempt_failed(0.1, "connection refused")
    m.poll(0.15)  # retry: in flight when the window ends
    m.poll(2.0)
    assert m.error == "no media connection within 2 s (connection refused)"


def test_a_drop_opens_a_new_window_and_a_join_restarts_the_backoff() -> None:
    delays = DoublingDelays(base=0.05, cap=1.0)
    m = MediaRejoin(delays, display="r", window_s=10.0)
    m.start(0.0)
    m.attempt_failed(1.0, "refused")
    m.poll(m.next_deadline or 0.0)
    assert kinds(m.joined(2.0)) == ["report joined"]
    # compared as tuples, so mypy does not keep these attributes narrowed past the calls below
    assert (m.joins, m.error, delays.attempt) == (1, None, 0)
    assert (m.next_deadline,) == (None,)  # no window while joined
    m.window_s = 4.0  # applies from the next drop
    assert kinds(m.dropped(50.0, "connection lost", for_good=False)) == [
        "connect",
        "report reconnecting",
    ]
    assert (m.next_deadline, m.error) == (54.0, "connection lost")
    m.poll(54.0)
    assert m.error == "no media connection within 4 s (relay r did not answer in time)"
    assert m.state is MS.LOST


def test_a_drop_for_good_is_lost_at_once_with_its_reason() -> None:
    m = machine_in(P.JOINED)
    effects = m.dropped(5.0, "another connection took over", for_good=True)
    assert effects == [Report(MS.LOST, None, "another connection took over")]
    assert m.next_deadline is None

"""The relay link's lifecycle table, row by row, with a fake clock (plain floats) and a
deterministic backoff: no sockets, no sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messenger_tui.core.links.effects import Report, Wait
from messenger_tui.core.links.relay_link import (
    PUBLIC_STATE,
    TRANSITIONS,
    ConnectionState,
    LinkEffect,
    LinkPhase,
    LinkStateError,
    RelayLink,
    RelayLinkEvent,
)
from tests.core.links._fakes import DoublingDelays

P = LinkPhase
E = RelayLinkEvent
CS = ConnectionState
T0 = 100.0  # the fake clock's "now" when the row's event arrives


def phase_of(m: RelayLink) -> LinkPhase:
    """The phase read afresh (mypy keeps an earlier ``is`` check's narrowing on ``m.phase``)."""
    return m.phase


def deadline_of(m: RelayLink) -> float | None:
    return m.next_deadline


def machine_in(phase: LinkPhase, delays: DoublingDelays | None = None) -> RelayLink:
    """A machine brought into ``phase`` by the inputs that lead there."""
    m = RelayLink(delays or DoublingDelays(), stable_after=10.0, replaced_retry_s=60.0)
    paths: dict[LinkPhase, list[Callable[[RelayLink], object]]] = {
        P.OFFLINE: [],
        P.CONNECTING: [lambda m: m.start(0.0)],
        P.CONNECTED: [lambda m: m.start(0.0), lambda m: m.authenticated(T0)],
        P.HEALTHY: [
            lambda m: m.start(0.0),
            lambda m: m.authenticated(T0 - 1),
            lambda m: m.round_trip(T0 - 1),
        ],
        P.WAITING: [lambda m: m.start(0.0), lambda m: m.failed(T0 - 0.1, "refused")],
        P.ONCE_CONNECTING: [lambda m: m.connect_once(0.0)],
        P.ONCE_CONNECTED: [lambda m: m.connect_once(0.0), lambda m: m.authenticated(1.0)],
        P.CLOSING: [lambda m: m.stop(0.0)],
    }
    for step in paths[phase]:
        step(m)
    assert m.phase is phase
    return m


def fire(m: RelayLink, event: RelayLinkEvent) -> list[LinkEffect]:
    """Apply ``event`` at T0 (a timer event: at the machine's deadline)."""
    deadline = m.next_deadline
    inputs: dict[RelayLinkEvent, Callable[[], list[LinkEffect]]] = {
        E.START: lambda: m.start(T0),
        E.CONNECT_ONCE: lambda: m.connect_once(T0),
        E.RECONNECT_NOW: lambda: m.reconnect_now(T0),
        E.STOP: lambda: m.stop(T0),
        E.CLOSED: lambda: m.closed(T0),
        E.AUTHENTICATED: lambda: m.authenticated(T0),
        E.FAILED: lambda: m.failed(T0, "boom"),
        E.ROUND_TRIP: lambda: m.round_trip(T0),
        E.DROPPED: lambda: m.dropped(T0, "lost"),
        E.DROPPED_REPLACED: lambda: m.dropped(T0, "taken over", replaced=True),
        E.STABLE_TIMEOUT: lambda: m.poll(deadline if deadline is not None else T0),
        E.RETRY_DUE: lambda: m.poll(deadline if deadline is not None else T0),
    }
    return inputs[event]()


def kinds(effects: list[LinkEffect]) -> list[str]:
    out = []
    for e in effects:
        if isinstance(e, Report):
            out.append(f"report {e.state.value}")
        elif isinstance(e, Wait):
            out.append(f"wait {e.delay:g}")
        else:
            out.append(type(e).__name__.lower())
    return out


# Every row, written out independently of the table: (phase, event) -> (target, effects).
# The backoff in WAITING/CONNECTED rows: a fresh DoublingDelays hands out 0.5 first; the
# WAITING path already took one (0.5), so its next is 1.
ROWS: dict[tuple[LinkPhase, RelayLinkEvent], tuple[LinkPhase, list[str]]] = {
    (P.OFFLINE, E.START): (P.CONNECTING, ["connect", "report connecting"]),
    (P.OFFLINE, E.CONNECT_ONCE): (P.ONCE_CONNECTING, ["connect", "report connecting"]),
    (P.OFFLINE, E.STOP): (P.CLOSING, []),
    (P.CONNECTING, E.AUTHENTICATED): (P.CONNECTED, ["report connected"]),
    (P.CONNECTING, E.FAILED): (P.WAITING, ["wait 0.5", "report reconnecting"]),
    (P.CONNECTING, E.RECONNECT_NOW): (P.CONNECTING, []),
    (P.CONNECTING, E.STOP): (P.CLOSING, ["abort"]),
    (P.CONNECTED, E.ROUND_TRIP): (P.HEALTHY, []),
    (P.CONNECTED, E.STABLE_TIMEOUT): (P.HEALTHY, []),
    (P.CONNECTED, E.DROPPED): (P.WAITING, ["wait 0.5", "report reconnecting"]),
    (P.CONNECTED, E.DROPPED_REPLACED): (P.WAITING, ["wait 60", "report reconnecting"]),
    (P.CONNECTED, E.RECONNECT_NOW): (P.CONNECTED, []),
    (P.CONNECTED, E.STOP): (P.CLOSING, []),
    (P.HEALTHY, E.DROPPED): (P.WAITING, ["wait 0.5", "report reconnecting"]),
    (P.HEALTHY, E.DROPPED_REPLACED): (P.WAITING, ["wait 60", "report reconnecting"]),
    (P.HEALTHY, E.RECONNECT_NOW): (P.HEALTHY, []),
    (P.HEALTHY, E.STOP): (P.CLOSING, []),
    (P.WAITING, E.RETRY_DUE): (P.CONNECTING, ["connect", "report connecting"]),
    (P.WAITING, E.RECONNECT_NOW): (P.CONNECTING, ["connect", "report connecting"]),
    (P.WAITING, E.STOP): (P.CLOSING, []),
    (P.ONCE_CONNECTING, E.START): (P.CONNECTING, []),
    (P.ONCE_CONNECTING, E.AUTHENTICATED): (P.ONCE_CONNECTED, ["report connected"]),
    (P.ONCE_CONNECTING, E.FAILED): (P.OFFLINE, ["report offline"]),
    (P.ONCE_CONNECTING, E.RECONNECT_NOW): (P.ONCE_CONNECTING, []),
    (P.ONCE_CONNECTING, E.STOP): (P.CLOSING, ["abort"]),
    (P.ONCE_CONNECTED, E.START): (P.CONNECTED, []),
    (P.ONCE_CONNECTED, E.DROPPED): (P.OFFLINE, ["report offline"]),
    (P.ONCE_CONNECTED, E.DROPPED_REPLACED): (P.OFFLINE, ["report offline"]),
    (P.ONCE_CONNECTED, E.RECONNECT_NOW): (P.ONCE_CONNECTED, []),
    (P.ONCE_CONNECTED, E.STOP): (P.CLOSING, []),
    (P.CLOSING, E.STOP): (P.CLOSING, []),
    (P.CLOSING, E.CLOSED): (P.OFFLINE, []),  # never shown anything but offline
}
LOCAL = {E.START, E.CONNECT_ONCE, E.RECONNECT_NOW, E.STOP, E.CLOSED}
TIMERS = {E.STABLE_TIMEOUT, E.RETRY_DUE}  # poll() names the one the phase arms


def test_timers_belong_to_their_phase() -> None:
    armed = {P.CONNECTED, P.WAITING}
    for phase in LinkPhase:
        m = machine_in(phase)
        assert (m.next_deadline is not None) == (phase in armed), phase
        if phase not in armed:
            assert m.poll(1e9) == []


def test_the_written_rows_are_exactly_the_table() -> None:
    table = {(p, e) for p, row in TRANSITIONS.items() for e in row}
    assert table == set(ROWS)


def row_order(key: tuple[LinkPhase, RelayLinkEvent]) -> tuple[str, str]:
    return key[0].value, key[1].value


ROW_KEYS: list[tuple[LinkPhase, RelayLinkEvent]] = sorted(ROWS, key=row_order)


@pytest.mark.parametrize(("phase", "event"), ROW_KEYS)
def test_row(phase: LinkPhase, event: RelayLinkEvent) -> None:
    m = machine_in(phase)
    target, expected = ROWS[phase, event]
    effects = fire(m, event)
    assert m.phase is target
    assert kinds(effects) == expected
    if target in PUBLIC_STATE:
        assert m.state is PUBLIC_STATE[target]


@pytest.mark.parametrize("phase", list(LinkPhase))
def test_unlisted_events_raise_when_local_and_are_ignored_otherwise(phase: LinkPhase) -> None:
    for event in RelayLinkEvent:
        if (phase, event) in ROWS or event in TIMERS:
            continue
        m = machine_in(phase)
        if event in LOCAL:
            with pytest.raises(LinkStateError):
                fire(m, event)
        else:
            assert fire(m, event) == []
        assert m.phase is phase


def test_errors_and_retry_delays_are_reported() -> None:
    m = RelayLink(DoublingDelays())
    m.start(0.0)
    assert m.failed(1.0, "connection refused") == [
        Wait(0.5),
        Report(CS.RECONNECTING, 0.5, "connection refused"),
    ]
    m2 = RelayLink(DoublingDelays())
    m2.connect_once(0.0)
    assert m2.failed(1.0, "bad pin") == [Report(CS.OFFLINE, None, "bad pin")]


def test_backoff_grows_while_failing_and_the_retry_timer_fires_at_its_deadline() -> None:
    m = RelayLink(DoublingDelays(base=0.5, cap=4.0))
    now = 0.0
    m.start(now)
    waits = []
    for _ in range(6):
        effects = m.failed(now, "refused")
        wait = next(e for e in effects if isinstance(e, Wait))
        waits.append(wait.delay)
        deadline = m.next_deadline
        assert deadline == now + wait.delay
        assert m.poll(deadline - 0.001) == []  # not yet
        now = deadline
        assert kinds(m.poll(now)) == ["connect", "report connecting"]
    assert waits == [0.5, 1, 2, 4, 4, 4]


def test_a_healthy_connection_restarts_the_backoff_but_a_short_one_does_not() -> None:
    delays = DoublingDelays(base=0.5, cap=30.0)
    m = RelayLink(delays, stable_after=10.0)
    m.start(0.0)
    for i in range(5):  # the relay is down: 0.5, 1, 2, 4, 8
        m.failed(float(i), "refused")
        m.poll(m.next_deadline or 0.0)
    # It comes back, but drops each connection after 3 s (no round trip): keeps growing.
    m.authenticated(20.0)
    assert m.next_deadline == 30.0  # the stable timer
    effects = m.dropped(23.0, "lost")
    assert Wait(16.0) in effects
    m.poll(m.next_deadline or 0.0)
    # Held 10 s (fake clock): healthy; its drop restarts from the base.
    m.authenticated(40.0)
    assert m.poll(49.9) == [] and m.phase is P.CONNECTED
    assert m.poll(50.0) == [] and phase_of(m) is P.HEALTHY
    assert Wait(0.5) in m.dropped(120.0, "relay restarted")
    # A round trip proves it as well, without waiting for the timer.
    m.poll(m.next_deadline or 0.0)
    m.authenticated(121.0)
    m.round_trip(121.2)  # e.g. the relay's Drained
    assert phase_of(m) is P.HEALTHY and deadline_of(m) is None
    assert Wait(0.5) in m.dropped(122.0, "relay restarted again")


def test_reconnect_now_ends_the_wait_and_restarts_the_backoff() -> None:
    delays = DoublingDelays(base=0.5, cap=30.0)
    m = RelayLink(delays)
    m.start(0.0)
    for i in range(6):
        m.failed(float(i), "refused")
        m.poll(m.next_deadline or 0.0)
    m.failed(100.0, "refused")
    assert m.next_deadline == 100.0 + 30.0  # a long wait ahead
    assert kinds(m.reconnect_now(101.0)) == ["connect", "report connecting"]
    assert deadline_of(m) is None and delays.attempt == 0
    assert Wait(0.5) in m.failed(101.2, "still down")  # the next wait is short again


def test_replaced_waits_long_even_after_a_healthy_connection() -> None:
    m = RelayLink(DoublingDelays(), replaced_retry_s=60.0)
    m.start(0.0)
    m.authenticated(1.0)
    m.round_trip(1.1)
    effects = m.dropped(5.0, "another instance took over", replaced=True)
    assert effects == [
        Wait(60.0),
        Report(CS.RECONNECTING, 60.0, "another instance took over"),
    ]
    assert m.next_deadline == 65.0


def test_run_adopts_a_connect_once_link_and_arms_the_stable_timer() -> None:
    m = RelayLink(DoublingDelays(), stable_after=10.0)
    m.connect_once(0.0)
    m.authenticated(1.0)
    assert m.start(2.0) == []  # no second connection, no report: still connected
    assert m.phase is P.CONNECTED and m.state is CS.CONNECTED and m.next_deadline == 12.0


def test_stopping_ignores_late_outcomes_and_ends_offline() -> None:
    m = RelayLink(DoublingDelays())
    m.start(0.0)
    m.authenticated(1.0)
    assert m.stop(2.0) == []
    assert m.state is CS.CONNECTED  # shown until the teardown is done
    assert m.dropped(2.1, "closed by the client") == []
    assert m.failed(2.1, "late") == []
    assert m.closed(2.2) == [Report(CS.OFFLINE)]
    assert m.next_deadline is None


# ---------------------------------------------------------------- failover (rule 10)


def test_with_one_url_failover_changes_nothing() -> None:
    m = RelayLink(DoublingDelays(base=0.5, cap=4.0), urls=1)
    m.start(0.0)
    assert [m.failed(float(i), "refused")[0] for i in range(1)] == [Wait(0.5)]
    assert m.url_index == 0


def test_a_failed_attempt_fails_over_to_the_next_url_at_once_then_backs_off_per_round() -> None:
    m = RelayLink(DoublingDelays(base=0.5, cap=4.0), urls=3)
    now = 0.0
    m.start(now)
    tried, waits = [m.url_index], []
    for _ in range(9):  # the whole deployment is down: three rounds
        wait = next(e for e in m.failed(now, "refused") if isinstance(e, Wait))
        waits.append(wait.delay)
        now = m.next_deadline or now
        assert kinds(m.poll(now)) == ["connect", "report connecting"]
        tried.append(m.url_index)
    assert tried == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    # no wait inside a round, the growing backoff between rounds
    assert waits == [0, 0, 0.5, 0, 0, 1, 0, 0, 2]


def test_a_dropped_node_fails_over_at_once_and_a_healthy_link_starts_a_new_round() -> None:
    m = RelayLink(DoublingDelays(base=0.5, cap=4.0), urls=2)
    m.start(0.0)
    m.authenticated(1.0)
    m.round_trip(1.1)  # healthy on URL 0
    assert m.phase is P.HEALTHY
    effects = m.dropped(5.0, "connection closed")  # node 0 was SIGKILLed
    assert effects[0] == Wait(0.0) and m.url_index == 1
    assert kinds(m.poll(5.0)) == ["connect", "report connecting"]
    m.authenticated(5.1)
    m.round_trip(5.2)  # healthy on URL 1: a new round
    assert kinds(m.dropped(9.0, "lost"))[0] == "wait 0"  # node 1 died too: back to node 0
    assert m.url_index == 0
    m.poll(9.0)
    # node 0 is still down: the round is over, now the backoff (restarted by the healthy drop)
    assert kinds(m.failed(9.5, "refused"))[0] == "wait 0.5"
    assert m.url_index == 1


def test_nodes_that_accept_then_drop_do_not_make_a_hot_loop() -> None:
    m = RelayLink(DoublingDelays(base=0.5, cap=8.0), urls=2)
    m.start(0.0)
    now, waits = 0.0, []
    for _ in range(6):  # authenticated, dropped before healthy, on each URL in turn
        m.authenticated(now)
        wait = next(e for e in m.dropped(now + 0.1, "lost") if isinstance(e, Wait))
        waits.append(wait.delay)
        now = (m.next_deadline or now) + 0.1
        m.poll(now)
    assert waits == [0, 0.5, 0, 1, 0, 2]


def test_a_replaced_link_stays_on_its_url() -> None:
    m = RelayLink(DoublingDelays(), urls=3, replaced_retry_s=60.0)
    m.start(0.0)
    m.authenticated(1.0)
    assert kinds(m.dropped(2.0, "taken over", replaced=True))[0] == "wait 60"
    assert m.url_index == 0


def test_a_link_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        RelayLink(DoublingDelays(), urls=0)

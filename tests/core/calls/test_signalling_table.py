"""Every row of the signalling table, driven through the public API; and every missing row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from messenger_tui.core.calls.effects import (
    BusyRejected,
    CallEffect,
    CallEnded,
    PeerRinging,
    SendSignal,
    StartMedia,
    StateChanged,
    StopMedia,
)
from messenger_tui.core.calls.media_keys import CallKeyPair
from messenger_tui.core.calls.messages import (
    CallAccept,
    CallBusy,
    CallDecline,
    CallHangup,
    CallOffer,
    CallRinging,
)
from messenger_tui.core.calls.signalling import (
    EVENT_SOURCE,
    TRANSITIONS,
    Action,
    CallEvent,
    CallSignalling,
    CallStateError,
)
from messenger_tui.core.calls.states import CallState, EndReason, EventSource

from ..crypto._util import DeterministicRng
from ._pair import BOB, CAROL, T0

S = CallState
PEER_KEY = CallKeyPair.generate(DeterministicRng(b"peer key"))
LOW_ORDER_KEY = bytes(32)  # X25519 of anything with it is all zeros
INCOMING_ID = bytes.fromhex("77" * 16)
LOW_ID = bytes(16)  # beats any random call id in glare
HIGH_ID = b"\xff" * 16  # loses to any random call id in glare


@dataclass
class Rig:
    machine: CallSignalling
    now: int = T0

    def call_id(self) -> bytes:
        assert self.machine.call is not None
        return self.machine.call.call_id


def _offer(call_id: bytes = INCOMING_ID, created: int = T0) -> CallOffer:
    return CallOffer(call_id, created_ms=created, key=PEER_KEY.public)


def rig_in(state: CallState) -> Rig:
    """A machine brought to ``state`` by ordinary calls (its peer is BOB)."""
    rig = Rig(CallSignalling(rng=DeterministicRng(b"rig")))
    m = rig.machine
    if state is S.IDLE:
        return rig
    if state in (S.OUTGOING_RINGING, S.ENDED):
        m.place_call(BOB, T0)
        if state is S.ENDED:
            m.hang_up(T0)
    else:
        m.receive(BOB, _offer(), T0)
        if state in (S.CONNECTING, S.ACTIVE):
            m.accept(T0)
        if state is S.ACTIVE:
            m.media_connected(INCOMING_ID, T0)
    assert m.state is state
    return rig


def _reply(rig: Rig, make: Callable[[bytes], object]) -> list[CallEffect]:
    call_id = rig.call_id() if rig.machine.call else INCOMING_ID
    return rig.machine.receive(BOB, make(call_id), rig.now)  # type: ignore[arg-type]


def _timer(rig: Rig) -> list[CallEffect]:
    deadline = rig.machine.next_deadline_ms
    assert deadline is not None, "this state should have a timer"
    return rig.machine.poll(deadline)


#: How to make each event happen through the public API.
TRIGGERS: dict[CallEvent, Callable[[Rig], list[CallEffect]]] = {
    CallEvent.PLACE_CALL: lambda r: r.machine.place_call(CAROL, r.now),
    CallEvent.ACCEPT: lambda r: r.machine.accept(r.now),
    CallEvent.DECLINE: lambda r: r.machine.decline(r.now),
    CallEvent.HANG_UP: lambda r: r.machine.hang_up(r.now),
    CallEvent.PEER_OFFER: lambda r: r.machine.receive(BOB, _offer(bytes(range(16))), r.now),
    CallEvent.PEER_OFFER_GLARE_WON: lambda r: r.machine.receive(BOB, _offer(HIGH_ID), r.now),
    CallEvent.PEER_OFFER_GLARE_LOST: lambda r: r.machine.receive(BOB, _offer(LOW_ID), r.now),
    CallEvent.PEER_OFFER_WHILE_BUSY: lambda r: r.machine.receive(CAROL, _offer(HIGH_ID), r.now),
    CallEvent.PEER_RINGING: lambda r: _reply(r, CallRinging),
    CallEvent.PEER_ACCEPT: lambda r: _reply(r, lambda c: CallAccept(c, key=PEER_KEY.public)),
    CallEvent.PEER_ACCEPT_BAD_KEY: lambda r: _reply(r, lambda c: CallAccept(c, key=LOW_ORDER_KEY)),
    CallEvent.PEER_DECLINE: lambda r: _reply(r, CallDecline),
    CallEvent.PEER_BUSY: lambda r: _reply(r, CallBusy),
    CallEvent.PEER_HANGUP: lambda r: _reply(r, lambda c: CallHangup(c, reason="connection_lost")),
    CallEvent.MEDIA_CONNECTED: lambda r: r.machine.media_connected(r.call_id(), r.now),
    CallEvent.MEDIA_FAILED: lambda r: r.machine.media_failed(r.call_id(), r.now),
    CallEvent.MEDIA_LOST: lambda r: r.machine.media_lost(r.call_id(), r.now),
    CallEvent.RING_TIMEOUT: _timer,
    CallEvent.CONNECT_TIMEOUT: _timer,
}

#: The effect each action must produce (None: internal bookkeeping, no effect).
ACTION_EFFECT: dict[Action, tuple[type, type | None] | None] = {
    Action.NEW_OUTGOING_CALL: None,
    Action.ADOPT_OFFER: None,
    Action.STORE_PEER_KEYS: None,
    Action.MARK_ACCEPTED: None,
    Action.MARK_ACTIVE: None,
    Action.ARM_RING_TIMER: None,
    Action.ARM_CONNECT_TIMER: None,
    Action.SEND_OFFER: (SendSignal, CallOffer),
    Action.SEND_RINGING: (SendSignal, CallRinging),
    Action.SEND_ACCEPT: (SendSignal, CallAccept),
    Action.SEND_DECLINE: (SendSignal, CallDecline),
    Action.SEND_HANGUP: (SendSignal, CallHangup),
    Action.WITHDRAW_OFFER: (SendSignal, CallHangup),
    Action.SEND_BUSY: (SendSignal, CallBusy),
    Action.START_MEDIA: (StartMedia, None),
    Action.STOP_MEDIA: (StopMedia, None),
    Action.REPORT_PEER_RINGING: (PeerRinging, None),
    Action.REPORT_BUSY_REJECTED: (BusyRejected, None),
}

ROWS = [(state, event) for state, row in TRANSITIONS.items() for event in row]
#: Inputs whose event depends on the state (an offer is PEER_OFFER, GLARE_* or WHILE_BUSY by
#: state; an accept's key is checked only while ringing): their rows cover them.
_CLASSIFIED_BY_STATE = {
    CallEvent.PEER_OFFER,
    CallEvent.PEER_OFFER_GLARE_WON,
    CallEvent.PEER_OFFER_GLARE_LOST,
    CallEvent.PEER_OFFER_WHILE_BUSY,
    CallEvent.PEER_ACCEPT_BAD_KEY,
}
#: Polling fires whichever timer the state runs, so only states without one can show that an
#: unlisted timer event does nothing.
_TIMED_STATES = {S.OUTGOING_RINGING, S.INCOMING_RINGING, S.CONNECTING}
MISSING = [
    (state, event)
    for state in S
    for event in CallEvent
    if event not in TRANSITIONS[state]
    and event not in _CLASSIFIED_BY_STATE
    and not (EVENT_SOURCE[event] is EventSource.TIMER and state in _TIMED_STATES)
]


def _signature(effect: CallEffect) -> tuple[type, type | None]:
    if isinstance(effect, SendSignal):
        return SendSignal, type(effect.message)
    return type(effect), None


def test_every_action_and_event_is_covered() -> None:
    assert set(ACTION_EFFECT) == set(Action)
    assert set(TRIGGERS) == set(CallEvent) == set(EVENT_SOURCE)
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("state", "event"), ROWS, ids=[f"{s.value}-{e.value}" for s, e in ROWS])
def test_table_row(state: CallState, event: CallEvent) -> None:
    row = TRANSITIONS[state][event]
    rig = rig_in(state)
    effects = TRIGGERS[event](rig)
    m = rig.machine
    assert m.state is row.target
    expected = [ACTION_EFFECT[a] for a in row.actions if ACTION_EFFECT[a] is not None]
    if row.target is not state:
        expected.append((StateChanged, None))
        if row.target is S.ENDED:
            expected.append((CallEnded, None))
    assert [_signature(e) for e in effects] == expected
    if row.target is not state:
        changed = next(e for e in effects if isinstance(e, StateChanged))
        assert (changed.previous, changed.state) == (state, row.target)
        assert changed.call == m.call
    if row.target is S.ENDED and state is not S.ENDED:
        info = m.call
        assert info is not None
        reason = EndReason.CONNECTION_LOST if row.peer_reason else row.reason
        assert info.end_reason is reason
        assert info.ended_by is EVENT_SOURCE[event]
        assert m.next_deadline_ms is None  # nothing left to time out
    for effect in effects:
        if isinstance(effect, SendSignal) and isinstance(effect.message, CallHangup):
            if Action.WITHDRAW_OFFER in row.actions:  # our own offer, given up in glare
                assert effect.message.reason == "hung_up"
                assert m.call is not None and effect.message.call_id != m.call.call_id
                continue
            assert row.reason is not None
            assert effect.message.reason == row.reason.value


@pytest.mark.parametrize(
    ("state", "event"), MISSING, ids=[f"{s.value}-{e.value}" for s, e in MISSING]
)
def test_missing_rows(state: CallState, event: CallEvent) -> None:
    """Rule 3: a local event the table lacks raises; anything else changes nothing."""
    rig = rig_in(state)
    m = rig.machine
    before = (m.state, m.call, m.next_deadline_ms)
    if EVENT_SOURCE[event] is EventSource.LOCAL:
        with pytest.raises(CallStateError):
            TRIGGERS[event](rig)
    elif EVENT_SOURCE[event] is EventSource.TIMER:
        assert m.next_deadline_ms is None
        assert m.poll(T0 + 10**9) == []
    elif EVENT_SOURCE[event] is EventSource.MEDIA and m.call is None:
        assert m.media_lost(INCOMING_ID, rig.now) == []
    else:
        assert TRIGGERS[event](rig) == []
    assert (m.state, m.call, m.next_deadline_ms) == before


def test_hang_up_is_listed_in_every_state() -> None:
    assert all(CallEvent.HANG_UP in TRANSITIONS[s] for s in S)


def test_table_sanity() -> None:
    """Reasons exactly on ENDED rows; media stopped whenever a started call ends."""
    for state, rows in TRANSITIONS.items():
        for event, row in rows.items():
            ends = row.target is S.ENDED and state is not S.ENDED
            assert ends == (row.reason is not None or row.peer_reason), (state, event)
            if ends and state in (S.CONNECTING, S.ACTIVE):
                assert Action.STOP_MEDIA in row.actions, (state, event)
            if Action.SEND_HANGUP in row.actions:
                assert row.reason not in (EndReason.DECLINED, EndReason.BUSY, None)

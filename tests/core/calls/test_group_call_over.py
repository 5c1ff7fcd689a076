"""Rule 10 of the group call machine (the last one out says the call is over), row by row
with a fake clock."""

from __future__ import annotations

from messenger_tui.core.calls.group_call import (
    GROUP_TRANSITIONS,
    REJOIN_TIMEOUT_S,
    CallStateChange,
    GroupAction,
    GroupCall,
    GroupCallState,
    GroupEvent,
    SendCallOver,
)
from messenger_tui.core.calls.group_keys import GroupCallOver
from messenger_tui.core.payload import decode_payload, encode_payload
from tests.core.calls.test_group_call import (
    ALICE,
    BOB,
    CAROL,
    GROUP,
    MALLORY,
    FakeClock,
    S,
    invite_from,
    machine,
    now_ms,
    of,
)


def state(call: GroupCall) -> GroupCallState:
    return call.state  # a call, so mypy does not narrow the state across events


def over_for(call: GroupCall) -> GroupCallOver:
    assert call.call_id is not None
    return GroupCallOver(group_id=GROUP, call_id=call.call_id)


def alone_in_call(clock: FakeClock) -> GroupCall:
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    alice.relay_joined([ALICE])
    return alice


def test_the_rows_of_rule_10() -> None:
    for state in (S.RINGING, S.IN_PROGRESS):
        assert GROUP_TRANSITIONS[state][GroupEvent.CALL_OVER].target is S.ENDED
    for state in (S.IDLE, S.ENDED, S.JOINING, S.IN_CALL, S.REJOINING):
        assert GroupEvent.CALL_OVER not in GROUP_TRANSITIONS[state]  # ignored there
    for state in (S.IN_CALL, S.REJOINING):
        row = GROUP_TRANSITIONS[state][GroupEvent.LEAVE]
        assert GroupAction.SEND_CALL_OVER in row.actions and row.target is S.ENDED
        assert GroupAction.SEND_CALL_OVER not in (
            GROUP_TRANSITIONS[state][GroupEvent.LEAVE_REJOINABLE].actions
        )


def test_the_last_one_out_tells_every_other_member() -> None:
    clock = FakeClock()
    alice = alone_in_call(clock)
    effects = alice.leave()
    assert alice.state is S.ENDED
    assert of(SendCallOver, effects) == [
        SendCallOver(BOB, over_for(alice)),
        SendCallOver(CAROL, over_for(alice)),
    ]


def test_leaving_others_in_the_call_says_nothing() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    alice.relay_joined([ALICE, BOB])
    assert of(SendCallOver, alice.leave()) == []
    assert alice.state is S.IN_PROGRESS


def test_leaving_alone_while_rejoining_says_it_too_but_a_rejoin_that_gives_up_does_not() -> None:
    clock = FakeClock()
    alice = alone_in_call(clock)
    alice.leg_dropped()
    assert len(of(SendCallOver, alice.leave())) == 2
    bob = machine(BOB, clock)
    bob.start(now_ms(clock))
    bob.relay_joined([BOB])
    bob.leg_dropped()
    clock.now += REJOIN_TIMEOUT_S
    effects = bob.poll(clock.now)
    assert state(bob) is S.ENDED and of(SendCallOver, effects) == []  # others may be in it


def test_call_over_stops_the_ringing_and_the_offer_to_join() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    invite = invite_from(alice, clock)
    bob = machine(BOB, clock)
    bob.invite_received(ALICE, invite, now_ms(clock))
    assert state(bob) is S.RINGING
    assert bob.call_over_received(ALICE, over_for(alice)) == [CallStateChange(S.ENDED)]
    assert bob.next_deadline is None  # the ring timer is gone
    carol = machine(CAROL, clock)
    clock.now += 60
    carol.invite_received(ALICE, invite, now_ms(clock))
    assert carol.state is S.IN_PROGRESS
    # from another member than the starter: anyone last out may send it
    assert carol.call_over_received(BOB, over_for(alice)) == [CallStateChange(S.ENDED)]


def test_call_over_is_ignored_from_strangers_for_other_calls_and_while_in_the_call() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    invite = invite_from(alice, clock)
    bob = machine(BOB, clock)
    bob.invite_received(ALICE, invite, now_ms(clock))
    other = GroupCallOver(group_id=GROUP, call_id=b"x" * 16)
    assert bob.call_over_received(MALLORY, over_for(alice)) == []
    assert bob.call_over_received(ALICE, other) == []
    assert bob.call_over_received(ALICE, GroupCallOver(b"h" * 16, invite.call_id)) == []
    assert bob.call_over_received(BOB, over_for(alice)) == []  # our own
    assert state(bob) is S.RINGING
    bob.join()
    assert bob.call_over_received(ALICE, over_for(alice)) == []
    assert state(bob) is S.JOINING
    bob.relay_joined([BOB])
    assert bob.call_over_received(ALICE, over_for(alice)) == []
    assert state(bob) is S.IN_CALL
    assert machine(CAROL, clock).call_over_received(ALICE, over_for(alice)) == []  # no call


def test_call_over_travels_as_a_payload() -> None:
    message = GroupCallOver(group_id=GROUP, call_id=b"c" * 16)
    assert decode_payload(encode_payload(message)) == message
    assert repr(message).startswith("GroupCallOver(call_id=6363636")

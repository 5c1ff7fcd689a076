"""Rule 9 of the group call machine (a dropped leg rejoins by itself), row by row with a
fake clock: every row of ``REJOINING`` and the ``IN_CALL`` row that enters it."""

from __future__ import annotations

from messenger_tui.core.calls.group_call import (
    GROUP_TRANSITIONS,
    REJOIN_RETRY_S,
    REJOIN_TIMEOUT_S,
    CallStateChange,
    ConnectLeg,
    DisconnectLeg,
    GroupAction,
    GroupCall,
    GroupEvent,
    SendFrameKey,
)
from messenger_tui.core.calls.group_frames import FrameKey
from messenger_tui.core.calls.group_keys import GroupCallFrameKey
from tests.core.calls.test_group_call import (
    ALICE,
    BOB,
    CAROL,
    FakeClock,
    S,
    machine,
    now_ms,
    of,
)

FIRST_TOKENS: dict[int, bytes] = {}


def in_call(clock: FakeClock, present: list[bytes] | None = None) -> GroupCall:
    alice = machine(ALICE, clock)
    FIRST_TOKENS[id(alice)] = of(ConnectLeg, alice.start(now_ms(clock)))[0].token
    alice.relay_joined([ALICE, *(present if present is not None else [BOB, CAROL])])
    assert alice.state is S.IN_CALL
    return alice


def dropped(clock: FakeClock) -> tuple[GroupCall, bytes]:
    alice = in_call(clock)
    token = of(ConnectLeg, alice.leg_dropped())
    assert alice.state is S.REJOINING
    return alice, token[0].token


def test_the_rows_of_rule_9() -> None:
    rows = GROUP_TRANSITIONS[S.REJOINING]
    assert set(rows) == {
        GroupEvent.JOINED,
        GroupEvent.LEG_DROPPED,
        GroupEvent.LEG_FAILED,
        GroupEvent.REJOIN_RETRY,
        GroupEvent.REJOIN_TIMEOUT,
        GroupEvent.LEAVE,
        GroupEvent.LEAVE_REJOINABLE,
    }
    assert GROUP_TRANSITIONS[S.IN_CALL][GroupEvent.LEG_DROPPED].actions == (
        GroupAction.CONNECT_LEG,
        GroupAction.ARM_REJOIN_TIMER,
    )


def test_a_dropped_leg_connects_again_with_the_same_token_and_keeps_its_media() -> None:
    clock = FakeClock()
    alice = in_call(clock)
    sealer, opener, call_id = alice.sealer, alice.opener, alice.call_id
    effects = alice.leg_dropped()
    assert alice.state is S.REJOINING
    assert CallStateChange(S.REJOINING) in effects
    assert of(DisconnectLeg, effects) == []  # the media keeps running
    (connect,) = of(ConnectLeg, effects)
    assert alice.sealer is sealer and alice.opener is opener and alice.call_id == call_id
    assert alice.next_deadline == clock.now + REJOIN_TIMEOUT_S
    assert connect.token == FIRST_TOKENS[id(alice)]  # the same call, the same token


def test_rejoined_resumes_with_the_same_keys_and_announces_ours_again() -> None:
    clock = FakeClock()
    alice, _ = dropped(clock)
    sealer = alice.sealer
    assert sealer is not None
    current = sealer.current
    effects = alice.relay_joined([ALICE, BOB, CAROL])
    assert alice.state is S.IN_CALL and alice.sealer is sealer
    assert CallStateChange(S.IN_CALL) in effects
    keys = of(SendFrameKey, effects)
    assert [k.member for k in keys] == [BOB, CAROL]
    assert {k.key.key_id for k in keys} == {current.key_id}
    assert alice.next_deadline is None  # no timer left behind


def test_rejoined_forgets_members_who_left_meanwhile_and_sends_the_pending_key_too() -> None:
    clock = FakeClock()
    alice = in_call(clock)
    assert alice.opener is not None and alice.sealer is not None
    carol_key = FrameKey(key_id=7, key=b"k" * 32)
    alice.frame_key_received(
        CAROL, GroupCallFrameKey(call_id=alice.call_id or b"", key_id=7, key=carol_key.key)
    )
    assert alice.opener.key_ids(CAROL) == [7]
    alice.relay_member(BOB, False)
    alice.relay_member(BOB, True)  # rotations: a pending key, switching over
    pending = alice.sealer.pending
    assert pending is not None
    alice.leg_dropped()
    effects = alice.relay_joined([ALICE, BOB])  # Carol left while we were away
    assert alice.participants == [BOB]
    assert alice.opener.key_ids(CAROL) == []
    current = alice.sealer.current
    fresh = alice.sealer.pending  # Carol's leave, missed while away: a rotation (rule 6)
    assert fresh is not None and fresh.key_id not in (current.key_id, pending.key_id)
    sent = {(k.member, k.key.key_id) for k in of(SendFrameKey, effects)}
    assert sent == {(BOB, current.key_id), (BOB, pending.key_id), (BOB, fresh.key_id)}


def test_someone_who_joined_while_we_were_away_gets_only_a_fresh_key() -> None:
    """Rule 9 with rule 6: a joiner we missed never gets the key that sealed what we sent
    before it joined; the members who had it get it again at once."""
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    alice.relay_joined([ALICE, BOB])
    assert alice.sealer is not None
    old = alice.sealer.current
    rotations = alice.counters.rotations
    alice.leg_dropped()
    effects = alice.relay_joined([ALICE, BOB, CAROL])  # Carol joined meanwhile
    fresh = alice.sealer.pending
    assert fresh is not None and alice.counters.rotations == rotations + 1
    sent = {(k.member, k.key.key_id) for k in of(SendFrameKey, effects)}
    assert sent == {(BOB, old.key_id), (BOB, fresh.key_id), (CAROL, fresh.key_id)}


def test_the_same_roster_after_the_rejoin_needs_no_rotation() -> None:
    clock = FakeClock()
    alice, _ = dropped(clock)
    rotations = alice.counters.rotations
    effects = alice.relay_joined([ALICE, BOB, CAROL])
    assert alice.counters.rotations == rotations
    assert alice.sealer is not None and alice.sealer.pending is None
    assert len(of(SendFrameKey, effects)) == 2


def test_a_failed_attempt_is_retried_after_the_retry_delay() -> None:
    clock = FakeClock()
    alice, token = dropped(clock)
    for event in (alice.leg_failed, alice.leg_dropped):
        assert of(ConnectLeg, event()) == []
        assert alice.state is S.REJOINING
        assert alice.next_deadline == clock.now + REJOIN_RETRY_S
        clock.now += REJOIN_RETRY_S - 0.01
        assert alice.poll(clock.now) == []
        clock.now += 0.02
        assert of(ConnectLeg, alice.poll(clock.now)) == [ConnectLeg(token)]
        assert alice.state is S.REJOINING


def test_the_rejoin_gives_up_after_its_timeout() -> None:
    clock = FakeClock()
    alice, _ = dropped(clock)
    started = clock.now
    while clock.now < started + REJOIN_TIMEOUT_S - 1:
        alice.leg_failed()
        clock.now += REJOIN_RETRY_S
        alice.poll(clock.now)
        assert alice.state is S.REJOINING
    clock.now = started + REJOIN_TIMEOUT_S
    effects = alice.poll(clock.now)
    assert alice.state is S.ENDED
    assert of(DisconnectLeg, effects) == [DisconnectLeg()]
    assert alice.sealer is None and alice.opener is None
    assert alice.next_deadline is None


def test_leaving_while_rejoining() -> None:
    clock = FakeClock()
    alice, _ = dropped(clock)
    assert of(DisconnectLeg, alice.leave()) == [DisconnectLeg()]
    assert alice.state is S.IN_PROGRESS  # others were in the call: still joinable (rule 8)
    assert alice.next_deadline is None
    lone = in_call(clock, present=[])
    lone.leg_dropped()
    lone.leave()
    assert lone.state is S.ENDED


def test_member_events_of_the_lost_leg_are_ignored_while_rejoining() -> None:
    clock = FakeClock()
    alice, _ = dropped(clock)
    assert alice.relay_member(BOB, False) == []
    assert alice.relay_member(ALICE, True) == []
    assert alice.state is S.REJOINING


def test_a_leg_that_fails_before_joining_still_ends_the_call() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    assert alice.leg_dropped() == []  # not in the call: nothing to rejoin
    assert alice.leg_failed()[-1] == CallStateChange(S.ENDED)

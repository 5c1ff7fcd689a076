"""The group call machine, row by row with a fake clock, and three members wired together."""

from __future__ import annotations

import pytest

from messenger_tui.core.calls.group_call import (
    GROUP_TRANSITIONS,
    JOIN_TIMEOUT_S,
    RING_S,
    CallStateChange,
    ConnectLeg,
    DisconnectLeg,
    GroupCall,
    GroupCallState,
    GroupCallStateError,
    GroupEffect,
    GroupEvent,
    SendCallOver,
    SendFrameKey,
    SendInvite,
)
from messenger_tui.core.calls.group_frames import SWITCH_OVER_S, level_byte
from messenger_tui.core.calls.group_keys import GroupCallInvite, GroupCallOver, group_join_token

ALICE, BOB, CAROL, MALLORY = b"a" * 32, b"b" * 32, b"c" * 32, b"m" * 32
GROUP = b"g" * 16
S = GroupCallState


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def machine(own: bytes, clock: FakeClock, members: set[bytes] | None = None) -> GroupCall:
    view = frozenset(members if members is not None else {ALICE, BOB, CAROL})
    return GroupCall(own=own, group_id=GROUP, members=lambda: view, clock=clock)


def of(kind: type, effects: list[GroupEffect]) -> list:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, kind)]


def now_ms(clock: FakeClock) -> int:
    return int(clock.now * 1000)


def invite_from(alice: GroupCall, clock: FakeClock) -> GroupCallInvite:
    effects = alice.start(now_ms(clock))
    invites = of(SendInvite, effects)
    assert [i.member for i in invites] == [BOB, CAROL]
    invite: GroupCallInvite = invites[0].invite
    return invite


def test_leave_is_listed_in_every_state() -> None:
    assert set(GROUP_TRANSITIONS) == set(GroupCallState)
    for state, rows in GROUP_TRANSITIONS.items():
        assert GroupEvent.LEAVE in rows, state


def test_start_invites_every_other_member_and_connects() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    effects = alice.start(now_ms(clock))
    assert alice.state is S.JOINING
    invites = of(SendInvite, effects)
    assert [i.member for i in invites] == [BOB, CAROL]
    invite = invites[0].invite
    assert of(ConnectLeg, effects) == [ConnectLeg(group_join_token(invite.call_id, invite.secret))]
    assert "secret" not in repr(effects[-2]) and invite.secret.hex() not in repr(effects)


def test_an_invite_rings_then_shows_in_progress() -> None:
    clock = FakeClock()
    invite = invite_from(machine(ALICE, clock), clock)
    bob = machine(BOB, clock)
    assert of(CallStateChange, bob.invite_received(ALICE, invite, now_ms(clock))) == [
        CallStateChange(S.RINGING)
    ]
    clock.now += RING_S - 0.1
    assert bob.poll(clock.now) == []
    clock.now += 0.2
    assert bob.poll(clock.now) == [CallStateChange(S.IN_PROGRESS)]
    # joinable without ringing
    effects = bob.join()
    assert bob.state is S.JOINING
    assert of(ConnectLeg, effects) == [ConnectLeg(group_join_token(invite.call_id, invite.secret))]


def test_a_stale_invite_never_rings_and_strangers_invites_are_ignored() -> None:
    clock = FakeClock()
    invite = invite_from(machine(ALICE, clock), clock)
    bob = machine(BOB, clock)
    assert bob.invite_received(MALLORY, invite, now_ms(clock)) == []
    assert bob.state is S.IDLE
    clock.now += RING_S + 1
    assert bob.invite_received(ALICE, invite, now_ms(clock)) == [CallStateChange(S.IN_PROGRESS)]
    assert bob.invite_received(ALICE, invite, now_ms(clock)) == []  # duplicate


def test_decline_stops_ringing_but_stays_joinable() -> None:
    clock = FakeClock()
    invite = invite_from(machine(ALICE, clock), clock)
    bob = machine(BOB, clock)
    bob.invite_received(ALICE, invite, now_ms(clock))
    assert bob.decline() == [CallStateChange(S.IN_PROGRESS)]
    assert bob.next_deadline is None
    bob.join()
    assert bob.state is S.JOINING


def test_local_events_the_table_does_not_list_are_errors() -> None:
    bob = machine(BOB, FakeClock())
    with pytest.raises(GroupCallStateError):
        bob.join()
    with pytest.raises(GroupCallStateError):
        bob.decline()
    assert bob.leave() == []  # always safe
    assert bob.relay_member(ALICE, True) == []  # relay events out of place: ignored


def test_join_timeout_ends_and_disconnects() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    clock.now += JOIN_TIMEOUT_S
    assert alice.poll(clock.now) == [DisconnectLeg(), CallStateChange(S.ENDED)]


def test_keys_go_to_members_present_only_and_rotate_on_join_and_leave() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    effects = alice.relay_joined([MALLORY, BOB, ALICE])  # Mallory has the secret, no membership
    assert alice.state is S.IN_CALL and alice.participants == [BOB, MALLORY]
    assert [k.member for k in of(SendFrameKey, effects)] == [BOB]
    first = of(SendFrameKey, effects)[0].key.key_id
    effects = alice.relay_member(CAROL, True)
    keys = of(SendFrameKey, effects)
    assert [k.member for k in keys] == [BOB, CAROL] and keys[0].key.key_id != first
    effects = alice.relay_member(BOB, False)
    keys = of(SendFrameKey, effects)
    assert [k.member for k in keys] == [CAROL]  # the leaver gets no new key
    assert alice.counters.rotations == 2
    assert alice.relay_member(BOB, False) == []  # a repeated leave changes nothing


def test_keys_are_taken_from_members_for_this_call_only() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    alice.relay_joined([BOB])
    bob = machine(BOB, clock)
    bob_key = of(SendFrameKey, alice.relay_member(BOB, True))[0].key
    assert alice.frame_key_received(MALLORY, bob_key) is False
    assert alice.frame_key_received(BOB, bob_key) is True
    assert alice.frame_key_received(BOB, bob_key) is False  # idempotent
    other_call = type(bob_key)(call_id=b"x" * 16, key_id=1, key=b"k" * 32)
    assert alice.frame_key_received(BOB, other_call) is False
    assert alice.counters.keys_ignored == 2 and alice.counters.keys_installed == 1
    assert bob.frame_key_received(ALICE, bob_key) is False  # not in a call


def test_three_members_talk_and_a_leaver_opens_nothing_after_the_switch_over() -> None:
    clock = FakeClock()
    calls = {name: machine(name, clock) for name in (ALICE, BOB, CAROL)}
    invite = invite_from(calls[ALICE], clock)
    for name in (BOB, CAROL):
        calls[name].invite_received(ALICE, invite, now_ms(clock))
        calls[name].join()
    room: list[bytes] = []

    def deliver(sender: bytes, effects: list[GroupEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendFrameKey) and calls[effect.member].opener is not None:
                calls[effect.member].frame_key_received(sender, effect.key)

    for name in (ALICE, BOB, CAROL):  # join one by one; the relay tells those present
        effects = calls[name].relay_joined(list(room))
        for other in room:
            deliver(other, calls[other].relay_member(name, True))
        deliver(name, effects)
        room.append(name)
    clock.now += SWITCH_OVER_S
    for name in (ALICE, BOB, CAROL):
        sealer = calls[name].sealer
        assert sealer is not None
        frame = sealer.seal(b"hi", 0, level_byte(-20, voice=True))
        for other in (ALICE, BOB, CAROL):
            if other != name:
                opener = calls[other].opener
                assert opener is not None
                opened = opener.open(frame, strict=True)
                assert opened is not None and opened.sender == name
    # Carol leaves, keeping her opener (every key she got)
    carol_opener = calls[CAROL].opener
    assert carol_opener is not None
    calls[CAROL].leave()
    left_at = clock.now
    for name in (ALICE, BOB):
        deliver(name, calls[name].relay_member(CAROL, False))
    opened_after = []
    for step in range(250):  # 5 s
        clock.now += 0.02
        for name in (ALICE, BOB):
            sealer = calls[name].sealer
            assert sealer is not None
            frame = sealer.seal(b"voice", step, level_byte(-20, voice=True))
            if carol_opener.open(frame) is not None:
                opened_after.append(clock.now - left_at)
            listener = calls[BOB if name == ALICE else ALICE].opener
            assert listener is not None and listener.open(frame) is not None
    assert opened_after and max(opened_after) <= SWITCH_OVER_S + 1e-9
    assert not [t for t in opened_after if t > 3.5]


def test_group_call_payloads_travel_in_the_e2e_channel() -> None:
    from messenger_tui.core.calls.group_keys import GroupCallFrameKey
    from messenger_tui.core.payload import decode_payload, encode_payload

    invite = GroupCallInvite(group_id=GROUP, call_id=b"i" * 16, secret=b"s" * 32, started_at_ms=5)
    key = GroupCallFrameKey(call_id=b"i" * 16, key_id=9, key=b"k" * 32)
    assert decode_payload(encode_payload(invite)) == invite
    assert decode_payload(encode_payload(key)) == key


def test_keys_arriving_while_joining_are_kept_and_installed() -> None:
    clock = FakeClock()
    alice = machine(ALICE, clock)
    invite = invite_from(alice, clock)
    alice.relay_joined([])
    bob = machine(BOB, clock)
    bob.invite_received(ALICE, invite, now_ms(clock))
    bob.join()
    # the relay tells Alice of Bob before Bob reads his group_joined: her new key comes first
    key = of(SendFrameKey, alice.relay_member(BOB, True))[0].key
    assert bob.frame_key_received(ALICE, key) is True
    assert bob.frame_key_received(ALICE, key) is False  # a duplicate
    bob.relay_joined([ALICE])
    assert bob.counters.keys_installed == 1
    clock.now += SWITCH_OVER_S
    assert alice.sealer is not None and bob.opener is not None
    assert bob.opener.open(alice.sealer.seal(b"hi", 0, 0), strict=True) is not None


def test_leaving_while_others_are_in_keeps_the_call_joinable() -> None:
    """Rule 8: leave with others present -> IN_PROGRESS (same call, joinable); alone -> ENDED."""
    clock = FakeClock()
    alice = machine(ALICE, clock)
    alice.start(now_ms(clock))
    assert CallStateChange(S.IN_CALL) in alice.relay_joined([BOB])
    call_id = alice.call_id
    effects = alice.leave()
    assert effects == [DisconnectLeg(), CallStateChange(S.IN_PROGRESS)]
    assert alice.sealer is None and alice.opener is None and alice.participants == []
    assert alice.call_id == call_id
    join = alice.join()
    assert CallStateChange(S.JOINING) in join and any(isinstance(e, ConnectLeg) for e in join)
    assert CallStateChange(S.IN_CALL) in alice.relay_joined([])  # everyone else left meanwhile
    over = GroupCallOver(group_id=GROUP, call_id=call_id or b"")
    assert alice.leave() == [  # the last one out says so (rule 10)
        DisconnectLeg(),
        SendCallOver(BOB, over),
        SendCallOver(CAROL, over),
        CallStateChange(S.ENDED),
    ]

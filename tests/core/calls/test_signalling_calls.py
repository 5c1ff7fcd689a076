"""Whole calls between two (or three) signalling machines, with a fake clock."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.calls.effects import (
    BusyRejected,
    CallEnded,
    PeerRinging,
    SendSignal,
    StartMedia,
    StateChanged,
    StopMedia,
)
from messenger_tui.core.calls.media_keys import CallRole, MediaKeys
from messenger_tui.core.calls.messages import (
    CallAccept,
    CallHangup,
    CallOffer,
    CallRinging,
    decode_call_message,
)
from messenger_tui.core.calls.signalling import (
    CONNECT_TIMEOUT_MS,
    MAX_OFFER_AGE_MS,
    NO_ANSWER_TIMEOUT_MS,
    CallSignalling,
    CallStateError,
)
from messenger_tui.core.calls.states import CallInfo, CallState, EndReason, EventSource
from messenger_tui.core.crypto.media_frame import MediaDirection

from ..crypto._util import DeterministicRng
from ._pair import ALICE, BOB, CAROL, T0, PhoneNetwork


def call_of(machine: CallSignalling) -> CallInfo:
    """The machine's current (or last) call: there must be one."""
    assert machine.call is not None
    return machine.call


S = CallState


def _media(net: PhoneNetwork, name: bytes) -> StartMedia:
    (start,) = net[name].of(StartMedia)
    assert isinstance(start, StartMedia)
    return start


def _connect(net: PhoneNetwork, caller: bytes, callee: bytes) -> bytes:
    """caller calls callee, callee answers, media comes up; returns the call id."""
    net.act(caller, lambda m: m.place_call(callee, net.now))
    net.settle()
    net.act(callee, lambda m: m.accept(net.now))
    net.settle()
    call_id = call_of(net[caller].machine).call_id
    for name in (caller, callee):
        net.act(name, lambda m: m.media_connected(call_id, net.now))
    return call_id


def test_a_whole_call() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    assert net[ALICE].machine.state is S.OUTGOING_RINGING
    net.deliver(BOB)
    bob = net[BOB].machine
    assert bob.state is S.INCOMING_RINGING
    assert bob.call is not None and bob.call.peer == ALICE and bob.call.role is CallRole.CALLEE
    net.deliver(ALICE)  # Ringing
    assert len(net[ALICE].of(PeerRinging)) == 1
    assert call_of(net[ALICE].machine).peer_ringing

    net.advance(3_000)
    net.act(BOB, lambda m: m.accept(net.now))
    net.settle()
    # net[BOB].machine.state, not bob.state: mypy would keep bob.state narrowed
    assert net[ALICE].machine.state is net[BOB].machine.state is S.CONNECTING

    # both sides got the same call, complementary keys and the same join token
    a, b = _media(net, ALICE), _media(net, BOB)
    assert a.call_id == b.call_id and a.peer == BOB and b.peer == ALICE
    assert a.keys.send_key == b.keys.receive_key and b.keys.send_key == a.keys.receive_key
    assert a.keys.send_key != a.keys.receive_key
    assert a.keys.join_token == b.keys.join_token
    assert a.keys.send_direction is MediaDirection.CALLER_TO_CALLEE
    assert b.keys.send_direction is MediaDirection.CALLEE_TO_CALLER
    assert a.keys.receive_direction is b.keys.send_direction

    net.advance(500)
    for name in (ALICE, BOB):
        net.act(name, lambda m: m.media_connected(a.call_id, net.now))
    assert net[ALICE].machine.state is net[BOB].machine.state is S.ACTIVE

    net.advance(60_000)  # no timer runs during a call
    assert net[ALICE].machine.state is S.ACTIVE
    net.act(ALICE, lambda m: m.hang_up(net.now))
    net.settle()
    for name, by in ((ALICE, EventSource.LOCAL), (BOB, EventSource.PEER)):
        phone = net[name]
        (ended,) = phone.of(CallEnded)
        assert isinstance(ended, CallEnded)
        info = ended.call
        assert info.state is S.ENDED and info.end_reason is EndReason.HUNG_UP
        assert info.ended_by is by and not info.missed
        assert info.duration_ms == 60_000
        assert len(phone.of(StopMedia)) == 1
    states = [(e.previous, e.state) for e in net[BOB].of(StateChanged)]
    assert states == [
        (S.IDLE, S.INCOMING_RINGING),
        (S.INCOMING_RINGING, S.CONNECTING),
        (S.CONNECTING, S.ACTIVE),
        (S.ACTIVE, S.ENDED),
    ]


def test_decline() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    net.act(BOB, lambda m: m.decline(net.now))
    net.settle()
    alice, bob = net[ALICE].machine.call, net[BOB].machine.call
    assert alice and bob
    assert alice.end_reason is bob.end_reason is EndReason.DECLINED
    assert not bob.missed  # declining is an answer
    assert not net[ALICE].of(StartMedia) and not net[BOB].of(StartMedia)


def test_caller_cancels_and_callee_logs_a_missed_call() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    net.advance(5_000)
    net.act(ALICE, lambda m: m.hang_up(net.now))
    net.settle()
    bob = net[BOB].machine.call
    assert bob and bob.end_reason is EndReason.HUNG_UP and bob.missed


def test_no_answer_after_45_seconds() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    assert net[ALICE].machine.next_deadline_ms == T0 + NO_ANSWER_TIMEOUT_MS
    net.advance(NO_ANSWER_TIMEOUT_MS - 1)
    assert net[ALICE].machine.state is S.OUTGOING_RINGING
    net.advance(1)
    alice = net[ALICE].machine.call
    assert alice and alice.end_reason is EndReason.NO_ANSWER
    assert alice.ended_by is EventSource.TIMER and alice.ended_ms == T0 + NO_ANSWER_TIMEOUT_MS
    net.settle()  # the hangup tells bob why
    bob = net[BOB].machine.call
    assert bob and bob.end_reason is EndReason.NO_ANSWER and bob.missed


def test_callee_stops_ringing_by_itself_when_the_hangup_is_lost() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.advance(10_000)  # the offer takes 10 s to arrive
    net.deliver(BOB)
    # bob gives up when alice does: 45 s after the offer was made, not after it arrived
    assert net[BOB].machine.next_deadline_ms == T0 + NO_ANSWER_TIMEOUT_MS
    net.advance(NO_ANSWER_TIMEOUT_MS)
    net[BOB].inbox.clear()  # alice's hangup is lost
    bob = net[BOB].machine.call
    assert bob and bob.end_reason is EndReason.NO_ANSWER and bob.ended_by is EventSource.TIMER
    assert bob.missed


@pytest.mark.parametrize("age_ms", [MAX_OFFER_AGE_MS + 1, -(MAX_OFFER_AGE_MS + 1), 10 * 60_000])
def test_stale_offer_never_rings(age_ms: int) -> None:
    bob = CallSignalling(rng=DeterministicRng(b"bob"))
    offer = CallOffer(b"\x01" * 16, created_ms=T0, key=_public_key())
    assert bob.receive(ALICE, offer, T0 + age_ms) == []
    assert bob.state is S.IDLE and bob.call is None


def test_offer_just_inside_the_age_limit_rings() -> None:
    bob = CallSignalling(rng=DeterministicRng(b"bob"))
    offer = CallOffer(b"\x01" * 16, created_ms=T0, key=_public_key())
    effects = bob.receive(ALICE, offer, T0 + MAX_OFFER_AGE_MS)
    assert bob.state is S.INCOMING_RINGING
    assert [type(e) for e in effects] == [SendSignal, StateChanged]


def test_duplicate_offer_does_not_ring_again() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    (offer,) = [e for e in net[ALICE].effects if isinstance(e, SendSignal)]
    net.settle()
    net.act(BOB, lambda m: m.decline(net.now))
    net.settle()
    assert net[BOB].machine.receive(ALICE, offer.message, net.now) == []
    assert net[BOB].machine.state is S.ENDED


def test_busy_while_in_a_call() -> None:
    net = PhoneNetwork(ALICE, BOB, CAROL)
    call_id = _connect(net, BOB, CAROL)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    alice = net[ALICE].machine.call
    assert alice and alice.end_reason is EndReason.BUSY and alice.ended_by is EventSource.PEER
    (rejected,) = net[BOB].of(BusyRejected)
    assert isinstance(rejected, BusyRejected) and rejected.peer == ALICE
    assert rejected.call_id == alice.call_id
    bob = net[BOB].machine
    assert bob.state is S.ACTIVE and bob.call and bob.call.call_id == call_id


@pytest.mark.parametrize("bob_state", [S.OUTGOING_RINGING, S.INCOMING_RINGING, S.CONNECTING])
def test_busy_in_every_busy_state(bob_state: CallState) -> None:
    net = PhoneNetwork(ALICE, BOB, CAROL)
    if bob_state is S.OUTGOING_RINGING:
        net.act(BOB, lambda m: m.place_call(CAROL, net.now))
    else:
        net.act(CAROL, lambda m: m.place_call(BOB, net.now))
        net.deliver(BOB)
        if bob_state is S.CONNECTING:
            net.act(BOB, lambda m: m.accept(net.now))
    net[CAROL].inbox.clear()
    assert net[BOB].machine.state is bob_state
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.deliver(BOB)
    net.deliver(ALICE)
    assert call_of(net[ALICE].machine).end_reason is EndReason.BUSY
    assert net[BOB].machine.state is bob_state


@pytest.mark.parametrize("seed", [b"one", b"two", b"three", b"four"])
def test_glare_resolves_the_same_way_on_both_sides(seed: bytes) -> None:
    net = PhoneNetwork(ALICE, BOB, seed=seed)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.act(BOB, lambda m: m.place_call(ALICE, net.now))
    ids = {n: call_of(net[n].machine).call_id for n in (ALICE, BOB)}
    winner = min(ids, key=lambda n: ids[n])
    loser = BOB if winner == ALICE else ALICE
    net.settle()  # the offers cross
    for name in (ALICE, BOB):
        m = net[name].machine
        assert m.state is S.CONNECTING
        assert m.call and m.call.call_id == ids[winner]
    assert call_of(net[winner].machine).role is CallRole.CALLER
    assert call_of(net[loser].machine).role is CallRole.CALLEE
    w, lo = _media(net, winner), _media(net, loser)
    assert w.keys.send_key == lo.keys.receive_key and w.keys.join_token == lo.keys.join_token
    # the loser's abandoned call never shows up as a call of its own
    assert not net[ALICE].of(CallEnded) and not net[BOB].of(CallEnded)


def test_glare_when_the_first_winning_offer_is_lost() -> None:
    net = PhoneNetwork(ALICE, BOB, seed=b"one")
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.act(BOB, lambda m: m.place_call(ALICE, net.now))
    ids = {n: call_of(net[n].machine).call_id for n in (ALICE, BOB)}
    winner = min(ids, key=lambda n: ids[n])
    loser = BOB if winner == ALICE else ALICE
    net[loser].inbox.clear()  # the winning offer is lost
    net.settle()  # the winner sees the losing offer and sends its own again
    assert net[ALICE].machine.state is net[BOB].machine.state is S.CONNECTING


def test_glare_against_a_redial_never_leaves_two_calls() -> None:
    """Found by the interleaving property test: Bob calls Alice while her call to him is in
    flight, hangs up and calls again. Alice judges her offer against Bob's first one, Bob
    judges it against his second: they pick different winners. Alice's withdrawal of the
    offer she gave up is what stops Bob from connecting to it while she connects to his."""
    net = PhoneNetwork(ALICE, BOB, seed=b"\x01")
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.act(BOB, lambda m: m.place_call(ALICE, net.now))
    net.act(BOB, lambda m: m.hang_up(net.now))
    net.act(BOB, lambda m: m.place_call(ALICE, net.now))
    net.deliver(ALICE)  # glare against Bob's first call, then its hangup, then the redial
    withdrawn = [e.message for e in net[ALICE].of(SendSignal) if isinstance(e.message, CallHangup)]
    assert len(withdrawn) == 1 and withdrawn[0].call_id != call_of(net[ALICE].machine).call_id
    net.act(ALICE, lambda m: m.accept(net.now))
    net.deliver(BOB)
    a, b = net[ALICE].machine, net[BOB].machine
    assert not (a.state is S.CONNECTING and b.state is S.CONNECTING)
    net.settle()
    for name in (ALICE, BOB):
        assert net[name].machine.state is S.ENDED


def test_calling_back_a_ringing_caller_answers() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    net.act(BOB, lambda m: m.place_call(ALICE, net.now))
    net.settle()
    assert net[ALICE].machine.state is net[BOB].machine.state is S.CONNECTING


def test_connect_timeout_fails_the_call() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    net.settle()
    net.act(BOB, lambda m: m.accept(net.now))
    net.settle()
    net.advance(CONNECT_TIMEOUT_MS)
    net.settle()
    for name in (ALICE, BOB):
        info = net[name].machine.call
        assert info and info.end_reason is EndReason.FAILED and info.active_ms is None
        assert len(net[name].of(StopMedia)) == 1


def test_connection_lost_ends_both_sides() -> None:
    net = PhoneNetwork(ALICE, BOB)
    call_id = _connect(net, ALICE, BOB)
    net.advance(12_000)
    net.act(BOB, lambda m: m.media_lost(call_id, net.now))
    net.settle()
    for name, by in ((ALICE, EventSource.PEER), (BOB, EventSource.MEDIA)):
        info = net[name].machine.call
        assert info and info.end_reason is EndReason.CONNECTION_LOST and info.ended_by is by


def test_accept_with_a_low_order_key_fails_the_call() -> None:
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    call_id = call_of(net[ALICE].machine).call_id
    net.act(ALICE, lambda m: m.receive(BOB, CallAccept(call_id, key=bytes(32)), net.now))
    info = net[ALICE].machine.call
    assert info and info.end_reason is EndReason.FAILED
    assert not net[ALICE].of(StartMedia)
    sent = [e.message for e in net[ALICE].of(SendSignal)]
    assert isinstance(sent[-1], CallHangup) and sent[-1].reason == "failed"


def test_offer_with_a_low_order_key_never_rings() -> None:
    bob = CallSignalling(rng=DeterministicRng(b"bob"))
    assert bob.receive(ALICE, CallOffer(b"\x01" * 16, created_ms=T0, key=bytes(32)), T0) == []
    assert bob.state is S.IDLE


def test_messages_for_other_calls_or_from_strangers_are_ignored() -> None:
    net = PhoneNetwork(ALICE, BOB, CAROL)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    alice = net[ALICE].machine
    call_id = call_of(alice).call_id
    key = _public_key()
    assert alice.receive(CAROL, CallAccept(call_id, key=key), net.now) == []  # wrong sender
    assert alice.receive(BOB, CallAccept(b"\x09" * 16, key=key), net.now) == []  # other call
    assert alice.receive(BOB, CallHangup(b"\x09" * 16), net.now) == []
    assert alice.media_connected(b"\x09" * 16, net.now) == []  # a stale media session
    assert alice.state is S.OUTGOING_RINGING


def test_late_and_repeated_messages_are_harmless() -> None:
    net = PhoneNetwork(ALICE, BOB)
    call_id = _connect(net, ALICE, BOB)
    alice = net[ALICE].machine
    assert alice.receive(BOB, CallRinging(call_id), net.now) == []
    assert alice.receive(BOB, CallAccept(call_id, key=_public_key()), net.now) == []
    net.act(ALICE, lambda m: m.hang_up(net.now))
    net.settle()
    assert net[BOB].machine.receive(ALICE, CallHangup(call_id), net.now) == []
    assert net[BOB].machine.hang_up(net.now) == []  # idempotent


def test_local_actions_the_state_does_not_allow_raise() -> None:
    m = CallSignalling(rng=DeterministicRng(b"m"))
    for action in (m.accept, m.decline):
        with pytest.raises(CallStateError):
            action(T0)
    assert m.hang_up(T0) == []
    m.place_call(BOB, T0)
    with pytest.raises(CallStateError):
        m.place_call(CAROL, T0)
    with pytest.raises(CallStateError):
        m.accept(T0)


def test_a_new_call_after_one_ended() -> None:
    net = PhoneNetwork(ALICE, BOB)
    first = _connect(net, ALICE, BOB)
    net.act(BOB, lambda m: m.hang_up(net.now))
    net.settle()
    second = _connect(net, BOB, ALICE)
    assert first != second
    assert net[ALICE].machine.state is S.ACTIVE
    assert call_of(net[ALICE].machine).role is CallRole.CALLEE


def test_no_secret_in_reprs_and_keys_dropped_at_the_end() -> None:
    net = PhoneNetwork(ALICE, BOB)
    _connect(net, ALICE, BOB)
    keys = _media(net, ALICE).keys
    text = repr(net[ALICE].effects) + repr(net[BOB].effects)
    for secret in (keys.send_key, keys.receive_key, keys.join_token):
        assert secret.hex() not in text and repr(secret) not in text
    net.act(ALICE, lambda m: m.hang_up(net.now))
    hung_up = net[ALICE].machine._call
    assert hung_up is not None
    assert hung_up.keys is None
    assert hung_up.own_key is None


def _public_key() -> bytes:
    from messenger_tui.core.calls.media_keys import CallKeyPair

    return CallKeyPair.generate(DeterministicRng(b"somebody")).public


# ---------------------------------------------------------------- property: any interleaving

_STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["call", "accept", "decline", "hangup", "media", "deliver", "drop", "wait"]
        ),
        st.sampled_from([ALICE, BOB]),
        st.integers(min_value=0, max_value=20_000),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(_STEPS, st.binary(min_size=1, max_size=4), st.booleans())
def test_any_interleaving_stays_consistent_and_ends(
    steps: list[tuple[str, bytes, int]], seed: bytes, lossy: bool
) -> None:
    """Random user actions, delayed (and, if ``lossy``, lost) messages and time: the two sides
    never disagree about a connected call, no message makes a machine raise, and every call
    ends with its media closed."""
    net = PhoneNetwork(ALICE, BOB, seed=seed)
    other = {ALICE: BOB, BOB: ALICE}
    for what, name, ms in steps:
        m = net[name].machine
        state = m.state
        if what == "call" and state in (S.IDLE, S.ENDED):
            net.act(name, partial(CallSignalling.place_call, peer=other[name], now_ms=net.now))
        elif what == "accept" and state is S.INCOMING_RINGING:
            net.act(name, lambda m: m.accept(net.now))
        elif what == "decline" and state is S.INCOMING_RINGING:
            net.act(name, lambda m: m.decline(net.now))
        elif what == "hangup":
            net.act(name, lambda m: m.hang_up(net.now))
        elif what == "media" and state is S.CONNECTING and m.call:
            call_id = m.call.call_id
            net.act(name, partial(CallSignalling.media_connected, call_id=call_id, now_ms=net.now))
        elif what == "deliver":
            net.deliver(name)
        elif what == "drop" and lossy and net[name].inbox:
            net[name].inbox.pop(0)
        elif what == "wait":
            net.advance(ms)
        _check_agreement(net, lossy)
    # let everything play out: messages arrive, media never connects, timers fire
    net.settle()
    net.advance(NO_ANSWER_TIMEOUT_MS + CONNECT_TIMEOUT_MS + MAX_OFFER_AGE_MS)
    net.settle()
    for name in (ALICE, BOB):
        m = net[name].machine
        if m.state is S.ACTIVE:
            net.act(name, lambda m: m.hang_up(net.now))
            net.settle()
        assert net[name].machine.state in (S.IDLE, S.ENDED)
        assert net[name].machine.next_deadline_ms is None
        starts = len(net[name].of(StartMedia))
        assert starts == len(net[name].of(StopMedia))  # every media session is closed


def _check_agreement(net: PhoneNetwork, lossy: bool) -> None:
    a, b = net[ALICE].machine, net[BOB].machine
    live = (S.CONNECTING, S.ACTIVE)
    if a.state in live and b.state in live and a.call and b.call:
        # both think they are in a call: without loss it must be the same one (with loss, one
        # side may not have heard the other hang up yet; its timers end it)
        if not lossy:
            assert a.call.call_id == b.call.call_id
        if a.call.call_id == b.call.call_id:
            assert {a.call.role, b.call.role} == {CallRole.CALLER, CallRole.CALLEE}
            ka, kb = _media_for(net, ALICE, a.call.call_id), _media_for(net, BOB, a.call.call_id)
            assert ka.send_key == kb.receive_key and ka.join_token == kb.join_token


def _media_for(net: PhoneNetwork, name: bytes, call_id: bytes) -> MediaKeys:
    (start,) = [e for e in net[name].of(StartMedia) if e.call_id == call_id]
    assert isinstance(start, StartMedia)
    return start.keys


def test_encoded_effects_roundtrip() -> None:
    """What the pair harness sends is what the machine asked to send."""
    net = PhoneNetwork(ALICE, BOB)
    net.act(ALICE, lambda m: m.place_call(BOB, net.now))
    (sender, data) = net[BOB].inbox[0]
    (sent,) = net[ALICE].of(SendSignal)
    assert sender == ALICE and decode_call_message(data) == sent.message

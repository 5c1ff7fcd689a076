"""The relay's send-order gate (relay/send_order.py): every rule of its table, and a property
test: whatever the relay refuses and whenever the connection drops, a client that follows the
documented retry policy (app/sender.py) gets its envelopes stored in the order it wrote them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from messenger_tui.core import wire
from messenger_tui.relay.send_order import MAX_REMEMBERED, SendGate

A, B, C, D = (bytes([i]) * 16 for i in range(1, 5))
RATE = wire.ErrorCode.RATE_LIMITED
FULL = wire.ErrorCode.MAILBOX_FULL


def test_open_gate_admits_everything() -> None:
    gate = SendGate()
    assert [gate.admit(x) for x in (A, B, C)] == [None, None, None]
    assert not gate.closed


def test_a_refusal_closes_the_gate_for_what_follows() -> None:
    gate = SendGate()
    gate.refused(A, RATE)
    assert gate.closed
    assert gate.admit(B) == RATE
    assert gate.admit(C) == RATE
    assert gate.closed


def test_resending_a_refused_id_opens_the_gate() -> None:
    gate = SendGate()
    gate.refused(A, RATE)
    assert gate.admit(B) == RATE
    assert gate.admit(A) is None  # the client's retry starts with the oldest refused
    assert not gate.closed
    assert gate.admit(D) is None  # nothing remembered once open


def test_any_refused_id_opens_it_when_the_first_was_dropped_by_the_client() -> None:
    gate = SendGate()
    gate.refused(A, RATE)
    assert gate.admit(B) == RATE
    assert gate.admit(B) is None  # A was dropped locally (contact deleted): B is the retry


def test_a_new_id_while_closed_is_refused_then_opens_on_its_retry() -> None:
    gate = SendGate()
    gate.refused(A, FULL)
    assert gate.admit(C) == FULL  # the first code stays
    gate.refused(B, RATE)  # a later refusal while closed: remembered, code unchanged
    assert gate.admit(D) == FULL
    assert gate.admit(B) is None


def test_remembered_ids_are_bounded() -> None:
    gate = SendGate()
    gate.refused(A, RATE)
    for i in range(MAX_REMEMBERED + 500):
        assert gate.admit(i.to_bytes(16, "big")) == RATE
    assert len(gate._refused) == MAX_REMEMBERED
    late = (MAX_REMEMBERED + 100).to_bytes(16, "big")
    assert gate.admit(late) == RATE  # not remembered: still refused
    assert gate.admit(A) is None  # the earliest opens it


# --------------------------------------------------------------------- the property test


@dataclass
class _Model:
    """One sender (the policy of app/sender.py) and the relay (one connection at a time,
    frames processed in order, the real SendGate), driven step by step."""

    count: int
    unsent: list[int] = field(default_factory=list)  # outbox rows not yet Stored, in order
    submitted: set[int] = field(default_factory=set)
    outstanding: int = 0
    refused: bool = False  # paused until every answer is in
    to_relay: deque[int] = field(default_factory=deque)
    to_client: deque[tuple[int, bool]] = field(default_factory=deque)
    gate: SendGate = field(default_factory=SendGate)
    stored: list[int] = field(default_factory=list)  # the relay's mailbox, in store order

    def __post_init__(self) -> None:
        self.unsent = list(range(self.count))

    def submit(self) -> bool:
        if self.refused:
            return False
        row = next((r for r in self.unsent if r not in self.submitted), None)
        if row is None:
            return False
        self.submitted.add(row)
        self.outstanding += 1
        self.to_relay.append(row)
        return True

    def relay(self, refuse: bool) -> bool:
        if not self.to_relay:
            return False
        row = self.to_relay.popleft()
        msg_id = row.to_bytes(16, "big")
        if self.gate.admit(msg_id) is not None:
            self.to_client.append((row, False))
        elif refuse:
            self.gate.refused(msg_id, RATE)
            self.to_client.append((row, False))
        else:
            if row not in self.stored:  # a duplicate keeps its first position
                self.stored.append(row)
            self.to_client.append((row, True))
        return True

    def answer(self) -> bool:
        if not self.to_client:
            return False
        row, ok = self.to_client.popleft()
        self.outstanding -= 1
        self.submitted.discard(row)
        if ok:
            if row in self.unsent:
                self.unsent.remove(row)
        else:
            self.refused = True
        if self.refused and self.outstanding == 0:
            self.refused = False  # every answer is in: retry from the oldest unsent row
        return True

    def drop(self) -> None:
        """The connection drops: unread frames and unsent answers are lost; everything in
        flight fails on the client, which resubmits on the next connection (new gate)."""
        self.to_relay.clear()
        self.to_client.clear()
        self.submitted.clear()
        self.outstanding = 0
        self.refused = False
        self.gate = SendGate()


_S, _R, _A = ("submit", False), ("relay", False), ("answer", False)


@settings(max_examples=500, deadline=None)
# A retry before the answers behind a refusal are in would send row 2 before row 1:
@example(count=3, steps=[_S, _S, ("relay", True), _R, _A, _S, _S, _R, _R])
@given(
    count=st.integers(min_value=1, max_value=40),
    steps=st.lists(
        st.tuples(st.sampled_from(["submit", "relay", "answer", "drop"]), st.booleans()),
        max_size=400,
    ),
)
def test_any_interleaving_of_refusals_and_retries_keeps_the_senders_order(
    count: int, steps: list[tuple[str, bool]]
) -> None:
    model = _Model(count)
    for action, refuse in steps:
        if action == "submit":
            model.submit()
        elif action == "relay":
            model.relay(refuse)
        elif action == "answer":
            model.answer()
        elif refuse:  # drops are rarer than the other steps
            model.drop()
    # Then the network settles and the relay stops refusing: everything gets through.
    for _ in range(20 * count + 100):
        if not (model.answer() or model.relay(False) or model.submit()):
            break
    assert model.unsent == []
    assert model.stored == list(range(count))

"""Group rooms (sans-I/O): room by token hash, one place per identity (resume), 16 at most,
member events, forwarding only to selected receivers, congestion counted."""

from __future__ import annotations

from messenger_tui.core.calls.group_keys import room_id
from messenger_tui.relay.group_media import GroupJoinOutcome, GroupRooms


class FakeLeg:
    def __init__(self, name: str, *, congested: bool = False) -> None:
        self._identity = name.encode().ljust(32, b".")
        self.got: list[bytes] = []
        self.events: list[tuple[bytes, bool, bool]] = []
        self.replaced = False
        self.congested = congested

    @property
    def identity(self) -> bytes:
        return self._identity

    def deliver(self, data: bytes) -> bool:
        if self.congested:
            return False
        self.got.append(data)
        return True

    def member_changed(self, identity: bytes, present: bool, alone: bool) -> None:
        self.events.append((identity, present, alone))

    def replace(self) -> None:
        self.replaced = True


TOKEN = b"t" * 32


def test_rooms_are_keyed_by_the_token_hash_only() -> None:
    rooms = GroupRooms()
    outcome, room = rooms.join(FakeLeg("a"), TOKEN)
    assert outcome is GroupJoinOutcome.JOINED and room is not None
    assert rooms.room(TOKEN) is room
    assert rooms.room(room_id(TOKEN)) is None  # the room id is not a token
    assert room.label == room_id(TOKEN).hex()[:8]


def test_joins_leaves_and_events() -> None:
    rooms = GroupRooms()
    a, b, c = FakeLeg("a"), FakeLeg("b"), FakeLeg("c")
    _, room = rooms.join(a, TOKEN)
    rooms.join(b, TOKEN)
    rooms.join(c, TOKEN)
    assert room is not None
    assert a.events == [(b.identity, True, False), (c.identity, True, False)]
    rooms.leave(c, room)
    assert a.events[-1] == (c.identity, False, False) and b.events[-1] == a.events[-1]
    rooms.leave(b, room)
    assert a.events[-1] == (b.identity, False, True)  # a is alone now
    rooms.leave(a, room)
    assert len(rooms) == 0


def test_same_identity_resumes_and_an_old_leg_leaving_changes_nothing() -> None:
    rooms = GroupRooms()
    a, b = FakeLeg("a"), FakeLeg("b")
    rooms.join(b, TOKEN)
    _, room = rooms.join(a, TOKEN)
    again = FakeLeg("a")
    outcome, _ = rooms.join(again, TOKEN)
    assert outcome is GroupJoinOutcome.RESUMED and a.replaced
    assert len(b.events) == 1  # a resume is not a new participant
    assert room is not None
    rooms.leave(a, room)  # the replaced connection ends
    assert len(b.events) == 1 and room.legs[a.identity] is again


def test_sixteen_identities_at_most() -> None:
    rooms = GroupRooms()
    for i in range(16):
        assert rooms.join(FakeLeg(f"m{i}"), TOKEN)[0] is GroupJoinOutcome.JOINED
    assert rooms.join(FakeLeg("extra"), TOKEN) == (GroupJoinOutcome.FULL, None)
    assert rooms.stats.refused_full == 1


def test_forwarding_counts_selection_and_congestion() -> None:
    rooms = GroupRooms()
    legs = [FakeLeg(f"m{i}") for i in range(5)] + [FakeLeg("slow", congested=True)]
    for leg in legs:
        _, room = rooms.join(leg, TOKEN)
    assert room is not None
    for step in range(20):
        for i, leg in enumerate(legs[:4]):  # m0..m3 talk, m0 loudest
            rooms.forward(room, leg.identity, bytes([2, 10 + 10 * i]) + b"x" * 40, step * 0.02)
    assert legs[4].got  # m4 gets the top 3 of m0..m3
    senders_seen_by_m4 = {frame[1] for frame in legs[4].got[-30:]}
    assert senders_seen_by_m4 == {10, 20, 30}
    assert rooms.stats.dropped_congested > 0 and legs[5].got == []
    assert rooms.stats.not_selected > 0

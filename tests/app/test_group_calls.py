"""The group call manager (app/group_calls.py) with a fake clock, an in-memory E2E channel and
an in-memory room standing in for the relay (the real relay is in
tests/integration/test_group_calls_e2e.py). Checks the manager's rules: ringing then "in
progress", joining, keys to members present only, rotation on join and leave, one call at a
time, leaving cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_calls import GroupCallManager, LegCallbacks
from messenger_tui.app.group_models import Group, GroupMember
from messenger_tui.core.calls.group_call import RING_S
from messenger_tui.core.calls.group_frames import GroupFrameOpener, GroupFrameSealer
from messenger_tui.core.calls.group_keys import GroupCallFrameKey, GroupCallInvite, GroupCallOver
from messenger_tui.core.payload import decode_payload
from messenger_tui.media.group_receive import ParticipantHealth
from messenger_tui.media.ports import AudioSink, AudioSource

GROUP_ID = b"G" * 16


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Room:
    """The relay's room, in memory: joins, leaves, member notices."""

    def __init__(self) -> None:
        self.legs: dict[bytes, dict[bytes, LegCallbacks]] = {}  # token -> identity -> callbacks

    def join(self, token: bytes, identity: bytes, callbacks: LegCallbacks) -> None:
        legs = self.legs.setdefault(token, {})
        others = list(legs)
        for other in legs.values():
            other.on_member(identity, True)
        legs[identity] = callbacks
        callbacks.on_joined(others)

    def leave(self, token: bytes, identity: bytes) -> None:
        legs = self.legs.get(token, {})
        legs.pop(identity, None)
        for other in legs.values():
            other.on_member(identity, False)


class FakeLeg:
    def __init__(self, room: Room, token: bytes, identity: bytes, cb: LegCallbacks) -> None:
        self.room, self.token, self.identity, self.cb = room, token, identity, cb
        self.left = False

    def start(self) -> None:
        self.room.join(self.token, self.identity, self.cb)

    def send(self, frame: bytes) -> bool:
        return True

    async def leave(self) -> None:
        self.left = True
        self.room.leave(self.token, self.identity)

    async def close(self) -> None:
        # as the relay: a closed leg leaves unless a newer one of its identity holds the place
        if self.room.legs.get(self.token, {}).get(self.identity) is self.cb:
            await self.leave()


class FakeMedia:
    def __init__(self) -> None:
        self.muted = False
        self.started = self.stopped = False
        self.removed: list[bytes] = []

    def receive(self, frame: bytes) -> None:
        pass

    def remove(self, identity: bytes) -> None:
        self.removed.append(identity)

    def health(self) -> list[ParticipantHealth]:
        return []

    async def start_async(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


class Member:
    def __init__(self, name: str, net: Net) -> None:
        self.name = name
        self.identity = name.encode().ljust(32, b".")
        self.net = net
        self.events: list[ev.Event] = []
        self.keys: list[tuple[bytes, GroupCallFrameKey]] = []  # (sender, key) received
        self.legs: list[FakeLeg] = []
        self.media: list[FakeMedia] = []
        self.in_group = True
        self.skew_ms = 0  # this member's wall clock minus the others'
        self.manager = GroupCallManager(
            own=self.identity,
            clock=net.clock,
            now_ms=lambda: int(net.clock() * 1000) + self.skew_ms,
            groups=self.groups,
            send_signal=self.send_signal,
            emit=self.events.append,
            open_leg=self.open_leg,
            make_media=self.make_media,
            audio_factory=lambda: (_Nothing(), _Nothing()),
        )

    def groups(self) -> list[Group]:
        members = tuple(GroupMember(m.identity, m.name, False, None) for m in self.net.members)
        return [Group(1, GROUP_ID, "team", members, is_member=self.in_group, admin=False)]

    async def send_signal(self, peer: bytes, plaintext: bytes) -> bool:
        self.net.deliver(self.identity, peer, plaintext)
        return True

    def open_leg(self, token: bytes, cb: LegCallbacks) -> FakeLeg:
        leg = FakeLeg(self.net.room, token, self.identity, cb)
        self.legs.append(leg)
        return leg

    def make_media(
        self,
        sealer: GroupFrameSealer,
        opener: GroupFrameOpener,
        send: Callable[[bytes], bool],
        source: AudioSource,
        sink: AudioSink,
    ) -> FakeMedia:
        media = FakeMedia()
        self.media.append(media)
        return media

    @property
    def state(self) -> str | None:
        view = self.manager.view("team")
        return view.state if view else None


class _Nothing:
    def start(self, callback: Callable[..., object]) -> None:
        pass

    def stop(self) -> None:
        pass


class Net:
    def __init__(self, names: list[str]) -> None:
        self.clock = Clock()
        self.room = Room()
        self.members: list[Member] = []
        self.members = [Member(name, self) for name in names]
        self.outsider_keys = 0
        self.delivered: list[tuple[bytes, bytes, object]] = []

    def by_identity(self, identity: bytes) -> Member:
        return next(m for m in self.members if m.identity == identity)

    def deliver(self, sender: bytes, recipient: bytes, plaintext: bytes) -> None:
        member = self.by_identity(recipient)
        message = decode_payload(plaintext)
        assert isinstance(message, GroupCallInvite | GroupCallFrameKey | GroupCallOver)
        self.delivered.append((sender, recipient, message))
        if isinstance(message, GroupCallFrameKey):
            member.keys.append((sender, message))
        member.manager.on_signal(sender, message)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_start_rings_then_shows_in_progress_and_join_exchanges_keys() -> None:
    net = Net(["ann", "bob", "cy"])
    ann, bob, cy = net.members
    ann.manager.start_or_join("team")
    await settle()
    assert ann.state == "in_call"  # alone in the room until the others join
    assert bob.state == "ringing" and cy.state == "ringing"
    net.clock.now += RING_S + 0.1
    bob.manager.poll()
    cy.manager.poll()
    assert bob.state == "in_progress" and cy.state == "in_progress"  # not ringing forever
    bob.manager.start_or_join("team")
    await settle()
    assert bob.state == "in_call"
    assert [p.name for p in ann.manager.view("team").participants] == ["bob"]  # type: ignore[union-attr]
    # Bob got Ann's (rotated) key, Ann got Bob's; Cy, not in the room, got none.
    assert {s for s, _ in bob.keys} == {ann.identity}
    assert {s for s, _ in ann.keys} == {bob.identity}
    assert cy.keys == []
    assert ann.media[0].started and bob.media[0].started
    for manager in (ann.manager, bob.manager, cy.manager):
        await manager.close()


async def test_every_join_and_leave_rotates_and_a_leaver_gets_no_new_key() -> None:
    net = Net(["ann", "bob", "cy"])
    ann, bob, cy = net.members
    ann.manager.start_or_join("team")
    await settle()
    for m in (bob, cy):
        m.manager.start_or_join("team")
        await settle()
    ann_keys_to_cy = [k for s, k in cy.keys if s == ann.identity]
    assert len(ann_keys_to_cy) == 1  # announced on Cy's join
    cy.manager.leave()
    await settle()
    # the others are still in: the call stays joinable for Cy (rule 8 of the core table)
    assert cy.state == "in_progress" and cy.legs[0].left and cy.media[0].stopped
    assert cy.manager.active() is None
    # Ann and Bob rotated on the leave: new keys went to each other, none to Cy.
    assert [k for s, k in cy.keys if s == ann.identity] == ann_keys_to_cy
    ann_to_bob = [k.key_id for s, k in bob.keys if s == ann.identity]
    assert len(ann_to_bob) == 3  # Bob's join, Cy's join, Cy's leave
    assert len(set(ann_to_bob)) == 3
    assert ann.media[0].removed == [cy.identity]
    # Cy joins the same call again: the others rotate again and Cy gets their new keys
    cy.manager.start_or_join("team")
    await settle()
    assert cy.state == "in_call" and len(cy.legs) == 2
    assert cy.legs[1].token == cy.legs[0].token  # the same room
    assert [k for s, k in cy.keys if s == ann.identity][-1].key_id not in ann_to_bob
    assert sorted(p.name for p in ann.manager.view("team").participants) == ["bob", "cy"]  # type: ignore[union-attr]
    # the last one to leave ends it
    for m in (ann, bob):
        m.manager.leave()
        await settle()
    cy.manager.leave()
    await settle()
    assert cy.state == "ended"
    for manager in (ann.manager, bob.manager, cy.manager):
        await manager.close()


async def test_one_call_at_a_time_and_members_only() -> None:
    net = Net(["ann", "bob"])
    ann, bob = net.members
    ann.manager.start_or_join("team")
    await settle()
    assert ann.manager.start_or_join("team").state == "in_call"  # the same call: no-op
    with pytest.raises(BadInput, match="no group called"):
        ann.manager.start_or_join("nope")
    bob.in_group = False
    with pytest.raises(BadInput, match="no longer a member"):
        bob.manager.start_or_join("team")
    with pytest.raises(BadInput, match="no call rings"):
        ann.manager.decline("team")
    bob.in_group = True
    bob.manager._other_call_busy = lambda: True  # a 1:1 call under way
    with pytest.raises(BadInput, match="already in a call"):
        bob.manager.start_or_join("team")
    assert bob.state == "ringing" and bob.legs == []
    ann.manager.leave()
    await settle()
    assert ann.state == "ended"
    ann.manager.leave()  # nothing to leave: no error
    for manager in (ann.manager, bob.manager):
        await manager.close()


async def test_a_stale_invite_shows_in_progress_and_decline_keeps_it_joinable() -> None:
    net = Net(["ann", "bob", "cy"])
    ann, bob, cy = net.members
    cy.skew_ms = int(RING_S * 1000) + 1000  # the invite is older than the ring time for Cy
    ann.manager.start_or_join("team")
    await settle()
    assert cy.state == "in_progress"  # "call in progress, join": never rang
    assert bob.state == "ringing"
    bob.manager.decline("team")
    assert bob.state == "in_progress"
    changed = [e for e in bob.events if isinstance(e, ev.GroupCallChanged)]
    assert [e.call.state for e in changed] == ["ringing", "in_progress"]
    bob.manager.start_or_join("team")
    await settle()
    assert bob.state == "in_call"
    for manager in (ann.manager, bob.manager, cy.manager):
        await manager.close()


async def test_a_dropped_leg_rejoins_with_the_same_token_and_media() -> None:
    """Rule 9 in the manager: a leg that ends after it joined is a drop; a new leg joins the
    same room, the media session goes on (not a new one), callbacks of the dropped leg are
    ignored, and the others get our key again."""
    net = Net(["ann", "bob"])
    ann, bob = net.members
    ann.manager.start_or_join("team")
    await settle()
    bob.manager.start_or_join("team")
    await settle()
    first = ann.legs[0]
    keys_before = len([k for s, k in bob.keys if s == ann.identity])
    net.room.leave(first.token, ann.identity)  # the relay saw the connection go
    first.cb.on_ended("connection closed")
    await settle()
    # the fake room answers a join at once (inside the drop's own effects): rejoined
    # already, with a second leg (the rejoining state in between: tests/core and
    # tests/integration/test_group_call_rejoin.py)
    assert ann.state == "in_call"
    states = [e.call.state for e in ann.events if isinstance(e, ev.GroupCallChanged)]
    assert "ended" not in states
    assert len(ann.legs) == 2 and ann.legs[1].token == first.token
    assert len(ann.media) == 1 and not ann.media[0].stopped  # the same session
    assert [k for s, k in bob.keys if s == ann.identity][keys_before:]  # our key again
    view = ann.manager.view("team")
    assert view is not None and view.problem is None
    assert [p.name for p in view.participants] == ["bob"]
    # the dropped leg's late callbacks change nothing
    first.cb.on_ended("late")
    first.cb.on_member(bob.identity, False)
    await settle()
    assert ann.state == "in_call" and len(ann.legs) == 2
    assert [p.name for p in bob.manager.view("team").participants] == ["ann"]  # type: ignore[union-attr]
    for m in (ann, bob):
        await m.manager.close()


async def test_the_last_one_out_ends_the_offer_to_join_for_the_others() -> None:
    """Rule 10 in the manager: Bob and Cy in the call, Ann shown "in progress"; Bob leaves
    (Cy still there: nothing sent); Cy leaves, the last: Ann's call ends."""
    net = Net(["ann", "bob", "cy"])
    ann, bob, cy = net.members
    bob.manager.start_or_join("team")
    await settle()
    cy.manager.start_or_join("team")
    await settle()
    ann.manager.decline("team")
    assert ann.state == "in_progress"
    bob.manager.leave()
    await settle()
    assert not [m for _, _, m in net.delivered if isinstance(m, GroupCallOver)]
    assert ann.state == "in_progress"
    cy.manager.leave()
    await settle()
    overs = [(s, r) for s, r, m in net.delivered if isinstance(m, GroupCallOver)]
    assert sorted(overs) == sorted([(cy.identity, ann.identity), (cy.identity, bob.identity)])
    assert ann.state == "ended" and bob.state == "ended" and cy.state == "ended"
    assert ann.manager.calls() == []  # nothing offers to join
    for m in (ann, bob, cy):
        await m.manager.close()

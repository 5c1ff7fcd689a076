"""Membership: who may do what, signatures, welcomes, and convergence of concurrent edits
whatever the delivery order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import (
    InvalidMembershipChange,
    InvalidSignature,
    MalformedEnvelope,
    MembershipDenied,
    NotGroupMember,
)
from messenger_tui.core.groups import membership as mb
from tests.core.crypto._util import DeterministicRng, flip_bit

GROUP = bytes(range(16))


def _people(n: int) -> list[IdentityKeyPair]:
    rng = DeterministicRng(b"people")
    return [IdentityKeyPair.generate(rng) for _ in range(n)]


def _group(n: int = 4) -> tuple[list[IdentityKeyPair], mb.GroupLog, bytes]:
    people = _people(n)
    log, create = mb.create_group(people[0], GROUP, "friends", tuple(p.public for p in people[1:]))
    return people, log, create


def test_create_and_welcome() -> None:
    people, log, create = _group()
    assert log.state.version == 1 and log.state.name == "friends"
    assert log.state.admins() == (people[0].public,)
    other, outcome = mb.receive_change(None, create, people[1].public)
    assert outcome is mb.ChangeOutcome.APPLIED and other.state == log.state
    outsider = _people(6)[5]
    with pytest.raises(NotGroupMember):
        mb.receive_change(None, create, outsider.public)


def test_rights() -> None:
    people, log, create = _group()
    admin, alice, bob, carol = people
    # a member's log, for members' own proposals
    alice_log, _ = mb.receive_change(None, create, alice.public)
    for op, targets in [
        (mb.Op.ADD, (b"x" * 32,)),
        (mb.Op.REMOVE, (bob.public,)),
        (mb.Op.PROMOTE, (bob.public,)),
        (mb.Op.RENAME, ()),
    ]:
        with pytest.raises(MembershipDenied):
            mb.propose(alice_log, alice, op, targets, name="x")
    alice_log, _ = mb.propose(alice_log, alice, mb.Op.LEAVE, (alice.public,))
    assert not alice_log.state.is_member(alice.public)
    with pytest.raises(NotGroupMember):
        mb.propose(alice_log, alice, mb.Op.LEAVE, (alice.public,))
    with pytest.raises(InvalidMembershipChange):
        mb.propose(log, admin, mb.Op.REMOVE, (admin.public,))
    with pytest.raises(InvalidMembershipChange):
        mb.propose(log, admin, mb.Op.DEMOTE, (admin.public,))
    with pytest.raises(InvalidMembershipChange):
        mb.propose(log, admin, mb.Op.ADD, (bob.public,))
    with pytest.raises(InvalidMembershipChange):
        mb.propose(log, admin, mb.Op.RENAME, (), name="")
    log, _ = mb.propose(log, admin, mb.Op.PROMOTE, (carol.public,))
    log, _ = mb.propose(log, admin, mb.Op.RENAME, (), name="renamed")
    assert log.state.name == "renamed" and log.state.version == 3
    assert set(log.state.admins()) == {admin.public, carol.public}
    with pytest.raises(NotGroupMember):
        mb.require_member(log.state, b"z" * 32)


def test_last_admin_leaving_hands_admin_to_the_smallest_key() -> None:
    people, log, _ = _group()
    log, _ = mb.propose(log, people[0], mb.Op.LEAVE, (people[0].public,))
    assert log.state.admins() == (min(p.public for p in people[1:]),)


def test_group_size_bound() -> None:
    people, log, _ = _group(2)
    many = tuple(bytes([i // 256, i % 256]) * 16 for i in range(mb.MAX_GROUP_MEMBERS - 1))
    with pytest.raises(InvalidMembershipChange):
        mb.propose(log, people[0], mb.Op.ADD, many)
    log, _ = mb.propose(log, people[0], mb.Op.ADD, many[:-1])
    assert len(log.state.members) == mb.MAX_GROUP_MEMBERS == 256


def test_forged_and_smuggled_changes_are_refused() -> None:
    people, log, create = _group()
    admin, alice, bob, _ = people
    bob_log, _ = mb.receive_change(None, create, bob.public)
    _, data = mb.propose(log, admin, mb.Op.REMOVE, (alice.public,))
    with pytest.raises(InvalidSignature):
        mb.receive_change(bob_log, flip_bit(data, 8 * 70), bob.public)
    with pytest.raises(MalformedEnvelope):
        mb.receive_change(bob_log, b"\x01" + bytes(70), bob.public)
    # a change whose state says more than its operation: refused
    honest = mb.decode_change(data)
    smuggled = mb.Change(
        group_id=honest.group_id,
        version=honest.version,
        parent=honest.parent,
        author=honest.author,
        op=mb.Op.REMOVE,
        targets=honest.targets,
        state=mb.GroupState(
            group_id=GROUP,
            name="friends",
            members=tuple(m for m in honest.state.members if m.key != bob.public),
            version=2,
        ),
    )
    with pytest.raises(InvalidMembershipChange):
        mb.receive_change(bob_log, mb.encode_change(smuggled, admin), bob.public)
    # a non-member signing a change: refused and countable
    outsider = _people(6)[5]
    fake = mb.Change(
        group_id=GROUP,
        version=2,
        parent=honest.parent,
        author=outsider.public,
        op=mb.Op.RENAME,
        targets=(),
        state=mb.GroupState(group_id=GROUP, name="x", members=honest.state.members, version=2),
    )
    with pytest.raises(NotGroupMember):
        mb.receive_change(bob_log, mb.encode_change(fake, outsider), bob.public)
    assert mb.receive_change(bob_log, data, bob.public)[1] is mb.ChangeOutcome.APPLIED


def test_duplicate_held_and_stale() -> None:
    people, log, create = _group()
    admin, alice = people[0], people[1]
    alice_log, _ = mb.receive_change(None, create, alice.public)
    log, first = mb.propose(log, admin, mb.Op.RENAME, (), name="one")
    log, second = mb.propose(log, admin, mb.Op.RENAME, (), name="two")
    alice_log, outcome = mb.receive_change(alice_log, second, alice.public)
    assert outcome is mb.ChangeOutcome.HELD and alice_log.state.name == "friends"
    alice_log, outcome = mb.receive_change(alice_log, first, alice.public)
    assert outcome is mb.ChangeOutcome.APPLIED and alice_log.state == log.state
    assert mb.receive_change(alice_log, second, alice.public)[1] is mb.ChangeOutcome.DUPLICATE
    for i in range(mb.MAX_FORK_DEPTH):
        log, _ = mb.propose(log, admin, mb.Op.RENAME, (), name=f"n{i}")
    late = mb.receive_change(log, first, admin.public)
    assert late[1] in (mb.ChangeOutcome.DUPLICATE, mb.ChangeOutcome.STALE)
    assert len(log.nodes) <= mb.MAX_FORK_DEPTH


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 4), st.integers(1, 3))
def test_concurrent_admin_edits_converge(seed: int, admins: int, rounds: int) -> None:
    """Several admins edit concurrently on the heads they know; every member receives every
    change in its own random order and all end on the same head."""
    shuffle = random.Random(seed)
    people = _people(8)
    log, create = mb.create_group(people[0], GROUP, "g", tuple(p.public for p in people[1:]))
    for target in people[1:admins]:
        log, data = mb.propose(log, people[0], mb.Op.PROMOTE, (target.public,))
    history = [create] + [
        mb.encode_change(node.change, people[0]) for node in log.nodes[1:]
    ]  # the promotions, re-signed byte-identically (Ed25519 is deterministic)
    logs = {p.public: log for p in people[:admins]}
    changes: list[bytes] = []
    for _ in range(rounds):
        for admin in people[:admins]:
            own = logs[admin.public]
            op = shuffle.choice([mb.Op.RENAME, mb.Op.REMOVE, mb.Op.ADD])
            try:
                if op is mb.Op.RENAME:
                    own, data = mb.propose(own, admin, op, (), name=f"{shuffle.random():.6f}")
                elif op is mb.Op.REMOVE:
                    removable = [k for k in own.state.member_keys() if not own.state.is_admin(k)]
                    own, data = mb.propose(own, admin, op, (shuffle.choice(removable),))
                else:
                    own, data = mb.propose(own, admin, op, (bytes([shuffle.randrange(256)]) * 32,))
            except (InvalidMembershipChange, IndexError):
                continue
            logs[admin.public] = own
            changes.append(data)
        # some changes reach some admins before the next round (partial knowledge)
        for admin in people[:admins]:
            for data in shuffle.sample(changes, k=len(changes) // 2):
                try:
                    logs[admin.public] = mb.receive_change(logs[admin.public], data, admin.public)[
                        0
                    ]
                except (NotGroupMember, MembershipDenied):
                    pass
    heads = set()
    for member in people[admins:]:
        member_log: mb.GroupLog | None = None
        for data in history:
            member_log = mb.receive_change(member_log, data, member.public)[0]
        order = changes[:]
        shuffle.shuffle(order)
        for data in order:
            assert member_log is not None
            member_log = mb.receive_change(member_log, data, member.public)[0]
        assert member_log is not None
        heads.add((member_log.head, member_log.state))
    assert len(heads) == 1

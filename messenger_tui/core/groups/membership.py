"""Group membership as signed, versioned control messages, converging on every member.

Design rules
============

1. **A change is a signed statement about a whole state.** Each :class:`Change` names its
   group, its ``version``, the digest of the change it builds on (``parent``), its author
   (an identity key), the operation and its arguments, and the complete resulting
   :class:`GroupState`. The author signs ``MEMBERSHIP_SIGNATURE_CONTEXT || body`` with its
   identity key (Ed25519). The change's digest is SHA-256 of its encoded bytes.
2. **Who may do what** (checked against the *parent* state): only admins may ``add``,
   ``remove``, ``promote``, ``demote`` and ``rename`` (rename is admin-only so that a
   member cannot vandalise the name, and so a removed non-admin can author nothing but a
   ``leave``); any member may ``leave`` (itself only). ``create`` is a root and lists its
   author as an admin. An author who is not a member of the parent state raises
   :class:`NotGroupMember` (the caller counts it); a member without the right raises
   :class:`MembershipDenied`. The resulting state must be exactly what the operation gives
   on the parent (:class:`InvalidMembershipChange` otherwise), so a change cannot smuggle
   in more than it says.
3. **The highest version wins; ties go to the higher digest.** Every member keeps the valid
   changes of the last :data:`MAX_FORK_DEPTH` versions as a tree and its *head* is the valid
   change with the greatest ``(version, digest)``. Validity depends only on a change and its
   ancestors, so two members that received the same changes, in any order, have the same
   head: concurrent edits converge. A change that lost a tie is kept (a later change may
   build on it) but not applied; its author sees that its change is not in the head's
   ancestry and makes it again on top of the head.
4. **Changes arrive in any order.** A change whose parent is unknown is held (at most
   :data:`MAX_ORPHANS`, oldest evicted) and attached when the parent arrives; one whose
   version is :data:`MAX_FORK_DEPTH` or more below the head is stale and ignored.
5. **Joining.** A member added by a change it did not see grow (it was not in the group) is
   *welcomed*: the adder sends it the change that added it over the pairwise channel, and a
   member without a log for the group (or whose head says it was removed, when the change
   is a newer ``add`` of it) accepts a change as its root if the change's state lists it as
   a member and the author as an admin (it trusts the contact that added it).
6. **Sizes.** At most :data:`MAX_GROUP_MEMBERS` members; a name of 1 to
   :data:`MAX_NAME_LEN` characters; if the last admin leaves, the member with the smallest
   identity key becomes admin (deterministic, so every member agrees); ``demote`` may not
   remove the last admin.

Known limit: admins are trusted as in Signal. With no server to order changes, an admin who
was removed can still publish changes built on a state from before its removal, and a longer
branch wins by rule 3; the app shows every head change with its author.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Annotated, Final

import msgspec

from messenger_tui.core.crypto.identity import IdentityKeyPair, verify_signature
from messenger_tui.core.crypto.primitives import Key32
from messenger_tui.core.errors import (
    InvalidMembershipChange,
    MalformedEnvelope,
    MembershipDenied,
    NotGroupMember,
)
from messenger_tui.core.groups.sender_keys import GROUP_ID_LEN, GroupId

#: Prefix of every membership signature input (domain separation from other signatures).
MEMBERSHIP_SIGNATURE_CONTEXT: Final = b"messenger-tui/group-change/v1\x00"
#: First byte of an encoded change.
CHANGE_VERSION: Final = 1
#: Largest group.
MAX_GROUP_MEMBERS: Final = 256
#: Longest group name, in characters.
MAX_NAME_LEN: Final = 100
#: Versions of history kept for concurrent edits; older changes are stale.
MAX_FORK_DEPTH: Final = 16
#: Changes held while their parent is unknown.
MAX_ORPHANS: Final = 64
#: The ``parent`` of a create.
NO_PARENT: Final = bytes(32)

_SIGNATURE_LEN: Final = 64

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LEN)]


class Op(Enum):
    """The membership operations."""

    CREATE = "create"
    ADD = "add"
    REMOVE = "remove"
    LEAVE = "leave"
    RENAME = "rename"
    PROMOTE = "promote"
    DEMOTE = "demote"


class Member(msgspec.Struct, frozen=True, array_like=True):
    """A member: its identity key and whether it is an admin."""

    key: Key32
    admin: bool = False


class GroupState(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A group at one version. ``members`` is sorted by key (one canonical form)."""

    group_id: GroupId
    name: Name
    members: tuple[Member, ...]
    version: int

    def is_member(self, key: bytes) -> bool:
        return any(member.key == key for member in self.members)

    def is_admin(self, key: bytes) -> bool:
        return any(member.key == key and member.admin for member in self.members)

    def member_keys(self) -> tuple[bytes, ...]:
        return tuple(member.key for member in self.members)

    def admins(self) -> tuple[bytes, ...]:
        return tuple(member.key for member in self.members if member.admin)


class Change(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The signed body of a membership change (rule 1)."""

    group_id: GroupId
    version: int
    parent: Key32
    author: Key32
    op: Op
    targets: tuple[Key32, ...]
    state: GroupState


class Node(msgspec.Struct, frozen=True, array_like=True):
    """A valid change in a member's tree: its digest and decoded body."""

    digest: bytes
    change: Change


class GroupLog(msgspec.Struct, frozen=True, kw_only=True):
    """One member's view of a group: the valid changes kept, its head, the held orphans."""

    group_id: GroupId
    nodes: tuple[Node, ...]
    head: bytes
    orphans: tuple[bytes, ...] = ()

    @property
    def state(self) -> GroupState:
        """The group as it is now (the head change's state)."""
        return self._node(self.head).change.state

    @property
    def head_change(self) -> Change:
        return self._node(self.head).change

    def _node(self, digest: bytes) -> Node:
        for node in self.nodes:
            if node.digest == digest:
                return node
        raise KeyError(digest.hex())  # pragma: no cover - the head is always kept


class ChangeOutcome(Enum):
    """What :func:`receive_change` did with a valid (or unknown-parent) change."""

    APPLIED = "applied"  # the change is the new head (or leads to it)
    KEPT = "kept"  # valid, but another change wins (rule 3)
    DUPLICATE = "duplicate"  # already known
    HELD = "held"  # parent unknown: held until it arrives
    STALE = "stale"  # too old to matter


_CHANGE_DECODER: Final = msgspec.msgpack.Decoder(Change)


# ---------------------------------------------------------------- encoding


def encode_change(change: Change, author: IdentityKeyPair) -> bytes:
    """``CHANGE_VERSION (1) || signature (64) || body``, signed by ``author``."""
    if author.public != change.author:
        raise InvalidMembershipChange("the change names another author")
    body = msgspec.msgpack.encode(change)
    signature = author.sign(MEMBERSHIP_SIGNATURE_CONTEXT + body)
    return bytes([CHANGE_VERSION]) + signature + body


def decode_change(data: bytes) -> Change:
    """Parse and verify an encoded change; :class:`MalformedEnvelope` or
    :class:`~messenger_tui.core.errors.InvalidSignature`."""
    if len(data) < 1 + _SIGNATURE_LEN or data[0] != CHANGE_VERSION:
        raise MalformedEnvelope("not a membership change of a known version")
    signature, body = data[1 : 1 + _SIGNATURE_LEN], data[1 + _SIGNATURE_LEN :]
    try:
        change = _CHANGE_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedEnvelope(f"membership change body: {exc}") from None
    verify_signature(change.author, MEMBERSHIP_SIGNATURE_CONTEXT + body, signature)
    return change


def change_digest(data: bytes) -> bytes:
    """The digest that names an encoded change (and breaks version ties)."""
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------- the operations


def apply_op(
    parent: GroupState, author: bytes, op: Op, targets: tuple[bytes, ...], name: str
) -> GroupState:
    """The state ``op`` gives on ``parent`` (rule 2); raises if ``author`` may not."""
    if not parent.is_member(author):
        raise NotGroupMember("the author of a membership change is not a member")
    members = {member.key: member.admin for member in parent.members}
    if op is Op.LEAVE:
        if targets != (author,):
            raise InvalidMembershipChange("leave names its author only")
        del members[author]
        if members and not any(members.values()):
            members[min(members)] = True
    elif op is Op.CREATE:
        raise InvalidMembershipChange("create is only a root")
    elif not parent.is_admin(author):
        raise MembershipDenied(f"only admins may {op.value}")
    elif op is Op.RENAME:
        if targets:
            raise InvalidMembershipChange("rename has no targets")
    else:
        if not targets or len(set(targets)) != len(targets):
            raise InvalidMembershipChange(f"{op.value} needs distinct targets")
        if op is Op.ADD:
            if any(target in members for target in targets):
                raise InvalidMembershipChange("add of a current member")
            members.update(dict.fromkeys(targets, False))
            if len(members) > MAX_GROUP_MEMBERS:
                raise InvalidMembershipChange(f"a group has at most {MAX_GROUP_MEMBERS} members")
        else:
            if any(target not in members for target in targets):
                raise InvalidMembershipChange(f"{op.value} of a non-member")
            if op is Op.REMOVE:
                if author in targets:
                    raise InvalidMembershipChange("remove yourself with leave")
                for target in targets:
                    del members[target]
            else:
                members.update(dict.fromkeys(targets, op is Op.PROMOTE))
                if not any(members.values()):
                    raise InvalidMembershipChange("demote of the last admin")
    if op is not Op.RENAME:
        name = parent.name
    return _state(parent.group_id, name, members, parent.version + 1)


def _state(group_id: bytes, name: str, members: dict[bytes, bool], version: int) -> GroupState:
    if not 1 <= len(name) <= MAX_NAME_LEN:
        raise InvalidMembershipChange(f"a group name is 1 to {MAX_NAME_LEN} characters")
    ordered = tuple(Member(key, members[key]) for key in sorted(members))
    return GroupState(group_id=group_id, name=name, members=ordered, version=version)


# ---------------------------------------------------------------- making changes


def create_group(
    author: IdentityKeyPair, group_id: bytes, name: str, members: tuple[bytes, ...]
) -> tuple[GroupLog, bytes]:
    """A new group with ``author`` as its admin and ``members`` (other identity keys);
    returns our log and the encoded create change to send (pairwise) to each member."""
    if len(group_id) != GROUP_ID_LEN:
        raise InvalidMembershipChange(f"a group id is {GROUP_ID_LEN} bytes")
    keys = dict.fromkeys(members, False)
    keys[author.public] = True
    if len(keys) > MAX_GROUP_MEMBERS:
        raise InvalidMembershipChange(f"a group has at most {MAX_GROUP_MEMBERS} members")
    state = _state(group_id, name, keys, 1)
    change = Change(
        group_id=group_id,
        version=1,
        parent=NO_PARENT,
        author=author.public,
        op=Op.CREATE,
        targets=(),
        state=state,
    )
    data = encode_change(change, author)
    log = GroupLog(group_id=group_id, nodes=(Node(change_digest(data), change),), head=b"")
    return msgspec.structs.replace(log, head=log.nodes[0].digest), data


def propose(
    log: GroupLog,
    author: IdentityKeyPair,
    op: Op,
    targets: tuple[bytes, ...] = (),
    name: str = "",
) -> tuple[GroupLog, bytes]:
    """Make ``op`` on our head; returns the log with it applied and the encoded change to
    send to the group (and, for an ``add``, to each new member pairwise: rule 5)."""
    parent = log.head_change
    state = apply_op(parent.state, author.public, op, targets, name)
    change = Change(
        group_id=log.group_id,
        version=state.version,
        parent=log.head,
        author=author.public,
        op=op,
        targets=targets,
        state=state,
    )
    data = encode_change(change, author)
    new_log, _ = receive_change(log, data, author.public)
    return new_log, data


# ---------------------------------------------------------------- receiving changes


def receive_change(log: GroupLog | None, data: bytes, me: bytes) -> tuple[GroupLog, ChangeOutcome]:
    """Add an encoded change to our ``log`` (``None``: we have none, rule 5) by the rules.

    Raises :class:`MalformedEnvelope`, :class:`~messenger_tui.core.errors.InvalidSignature`,
    :class:`NotGroupMember`, :class:`MembershipDenied` or :class:`InvalidMembershipChange`;
    the log is then unchanged.
    """
    change = decode_change(data)
    digest = change_digest(data)
    if change.state.version != change.version or change.state.group_id != change.group_id:
        raise InvalidMembershipChange("the change's state disagrees with its header")
    if log is None:
        return _welcome(change, digest, me), ChangeOutcome.APPLIED
    if change.group_id != log.group_id:
        raise InvalidMembershipChange("a change for another group")
    if any(node.digest == digest for node in log.nodes):
        return log, ChangeOutcome.DUPLICATE
    if change.version <= log.head_change.version - MAX_FORK_DEPTH:
        return log, ChangeOutcome.STALE
    parent = next((node for node in log.nodes if node.digest == change.parent), None)
    if parent is None:
        if (
            change.op is Op.ADD
            and me in change.targets
            and not log.state.is_member(me)
            and change.version > log.head_change.version
        ):
            return _welcome(change, digest, me), ChangeOutcome.APPLIED  # added again (rule 5)
        if data in log.orphans:
            return log, ChangeOutcome.DUPLICATE
        orphans = (*log.orphans, data)[-MAX_ORPHANS:]
        return msgspec.structs.replace(log, orphans=orphans), ChangeOutcome.HELD
    _check_extends(parent.change, change)
    old_head = log.head
    log = _attach(log, Node(digest, change))
    log = _adopt_orphans(log)
    log = _prune(log)
    changed = log.head != old_head and _descends(log, log.head, digest)
    return log, ChangeOutcome.APPLIED if changed else ChangeOutcome.KEPT


def require_member(state: GroupState, sender: bytes) -> None:
    """Raise :class:`NotGroupMember` unless ``sender`` is a member (group messages)."""
    if not state.is_member(sender):
        raise NotGroupMember("a group message from a non-member")


def _check_extends(parent: Change, change: Change) -> None:
    if change.op is Op.CREATE:
        raise InvalidMembershipChange("create is only a root")
    expected = apply_op(parent.state, change.author, change.op, change.targets, change.state.name)
    if expected != change.state:
        raise InvalidMembershipChange("the change's state is not what its operation gives")


def _welcome(change: Change, digest: bytes, me: bytes) -> GroupLog:
    if not change.state.is_member(me):
        raise NotGroupMember("a group we are not a member of")
    if not change.state.is_admin(change.author):
        raise MembershipDenied("welcomed by someone who is not an admin")
    node = Node(digest, change)
    return GroupLog(group_id=change.group_id, nodes=(node,), head=digest)


def _key(node: Node) -> tuple[int, bytes]:
    return node.change.version, node.digest


def _attach(log: GroupLog, node: Node) -> GroupLog:
    nodes = (*log.nodes, node)
    head = log.head if _key(log._node(log.head)) >= _key(node) else node.digest
    return msgspec.structs.replace(log, nodes=nodes, head=head)


def _adopt_orphans(log: GroupLog) -> GroupLog:
    """Attach every held change whose parent is now known (and their own children)."""
    progress = True
    while progress and log.orphans:
        progress = False
        for data in log.orphans:
            change = decode_change(data)  # verified when it was held
            parent = next((n for n in log.nodes if n.digest == change.parent), None)
            if parent is None:
                continue
            rest = tuple(o for o in log.orphans if o != data)
            log = msgspec.structs.replace(log, orphans=rest)
            try:
                _check_extends(parent.change, change)
            except (NotGroupMember, MembershipDenied, InvalidMembershipChange):
                progress = True  # an invalid orphan is dropped, as it would have been
                break
            log = _attach(log, Node(change_digest(data), change))
            progress = True
            break
    return log


def _prune(log: GroupLog) -> GroupLog:
    floor = log.head_change.version - MAX_FORK_DEPTH
    nodes = tuple(node for node in log.nodes if node.change.version > floor)
    if len(nodes) == len(log.nodes):
        return log
    return msgspec.structs.replace(log, nodes=nodes)


def _descends(log: GroupLog, head: bytes, ancestor: bytes) -> bool:
    """Whether ``ancestor`` is ``head`` or on its path back (within the kept nodes)."""
    by_digest = {node.digest: node for node in log.nodes}
    current: bytes | None = head
    while current is not None and current in by_digest:
        if current == ancestor:
            return True
        current = by_digest[current].change.parent
    return False

"""The stored state of groups, read and written for the group parts of the app.

:class:`GroupBook` turns the rows of :mod:`messenger_tui.storage.groups` into the core
structs (membership log, sender keys, held messages) and the read models of
:mod:`.group_models`, and applies a new membership head to the tables in one place
(:meth:`GroupBook.save_log`): the member list, our own membership, and, when a member went,
the rules of docs/protocol.md "Groups in the app" (its sender keys and held messages are
dropped, nothing more is uploaded to it, and our sender key is rotated before our next send).
Call the writing methods inside ``store.db.transaction()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec

from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_models import Group, GroupMember, GroupMessage
from messenger_tui.core import payload as pl
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.groups import membership as gm
from messenger_tui.core.groups import pending as gp
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.storage.groups import GroupMessageRow, GroupRow
from messenger_tui.storage.store import Store

_LOG_DECODER = msgspec.msgpack.Decoder(gm.GroupLog)
_SENDING_DECODER = msgspec.msgpack.Decoder(sk.SendingSenderKey)
_RECORD_DECODER = msgspec.msgpack.Decoder(sk.SenderKeyRecord)
_PENDING_DECODER = msgspec.msgpack.Decoder(gp.PendingGroupMessages)

#: Outbox kind of the pairwise group control payloads (changes, keys, requests, receipts).
PAIRWISE_KIND = "group"


def encode(struct: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(struct)


class GroupBook:
    def __init__(
        self,
        store: Store,
        me: bytes,
        directory: ContactDirectory,
        now_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self.me = me
        self._directory = directory
        self._now_ms = now_ms
        #: identity -> short fingerprint (a base32 encoding each: worth keeping; bounded by
        #: the members of our groups, at most 256 per group)
        self._fingerprints: dict[bytes, str] = {}

    # ------------------------------------------------------------ lookups

    def named(self, name: str) -> GroupRow:
        """The group called ``name`` (a current one first); :class:`BadInput` otherwise."""
        rows = self._store.groups.by_name(name.strip())
        current = [row for row in rows if row.is_member]
        if len(current) > 1:
            raise BadInput(f"{len(current)} groups are called {name!r}; rename one first")
        if rows:
            return current[0] if current else rows[-1]
        known = ", ".join(sorted(row.name for row in self._store.groups.all())) or "none"
        raise BadInput(f"no group called {name!r} (groups: {known})")

    def log(self, row: GroupRow) -> gm.GroupLog:
        return _LOG_DECODER.decode(row.log)

    def sending_key(self, row: GroupRow) -> sk.SendingSenderKey | None:
        return _SENDING_DECODER.decode(row.sending_key) if row.sending_key else None

    def record(self, row: GroupRow, sender: bytes) -> sk.SenderKeyRecord | None:
        data = self._store.groups.sender_key(row.id, sender)
        return _RECORD_DECODER.decode(data) if data is not None else None

    def pending(self, row: GroupRow) -> gp.PendingGroupMessages:
        if row.pending is None:
            return gp.PendingGroupMessages(group_id=row.group_id)
        return _PENDING_DECODER.decode(row.pending)

    def member_name(self, row_id: int, identity: bytes, announced: str | None = None) -> str:
        if identity == self.me:
            return "me"
        contact = self._directory.by_identity(identity)
        if contact is not None:
            return contact.name
        if announced:
            return announced
        fingerprint = self._fingerprints.get(identity)
        if fingerprint is None:
            if len(self._fingerprints) >= 4096:
                self._fingerprints.clear()
            fingerprint = self._fingerprints[identity] = f"~{short_fingerprint(identity)}"
        return fingerprint

    # ------------------------------------------------------------ writes

    def save_log(self, row: GroupRow, log: gm.GroupLog) -> tuple[GroupRow, list[bytes]]:
        """Store ``log`` and apply its head; returns the row and the members that went."""
        groups = self._store.groups
        state = log.state
        before = {member.identity for member in groups.members(row.id)}
        groups.set_members(row.id, [(m.key, m.admin) for m in state.members])
        gone = [identity for identity in before if not state.is_member(identity)]
        fields: dict[str, object] = {"log": encode(log), "name": state.name}
        am_member = state.is_member(self.me)
        fields["is_member"] = int(am_member)
        if gone:
            fields["rotate"] = 1
        if not am_member:
            fields["sending_key"] = None
            fields["pending"] = None
        groups.update(row.id, **fields)
        pending = self.pending(row)
        for identity in gone:
            groups.drop_sender_key(row.id, identity)
            groups.drop_recipient(row.id, identity)
            pending, _dropped = gp.drop_sender(pending, identity)
        if gone and am_member:
            groups.update(row.id, pending=encode(pending))
        fresh = groups.by_id(row.id)
        assert fresh is not None
        return fresh, gone

    def send_pairwise(self, recipient: bytes, payload: pl.Payload) -> int:
        """Queue a group control payload to one member over the pairwise session."""
        if recipient == self.me:
            return 0
        return self._store.outbox.enqueue(
            recipient, os.urandom(16), pl.encode_payload(payload), PAIRWISE_KIND, self._now_ms()
        )

    def notice(self, row: GroupRow, text: str) -> GroupMessageRow | None:
        """A line in the group that explains something (a member added, a message dropped)."""
        now = self._now_ms()
        return self._store.groups.insert_message(
            row.id,
            self.me,
            os.urandom(16),
            outgoing=False,
            body=text,
            sent_at_ms=now,
            received_at_ms=now,
            state="seen",
            kind="notice",
        )

    # ------------------------------------------------------------ read models

    def model(self, row: GroupRow) -> Group:
        members = tuple(
            GroupMember(
                identity=m.identity,
                name=self.member_name(row.id, m.identity, m.name),
                admin=m.admin,
                contact_id=(c.id if (c := self._directory.by_identity(m.identity)) else None),
                me=m.identity == self.me,
            )
            for m in self._store.groups.members(row.id)
        )
        return Group(
            id=row.id,
            group_id=row.group_id,
            name=row.name,
            members=members,
            is_member=row.is_member,
            admin=any(m.me and m.admin for m in members),
            unread=self._store.groups.unread_count(row.id),
            dropped=row.dropped,
            muted=row.muted,
        )

    def message_model(self, m: GroupMessageRow, *, announced: str | None = None) -> GroupMessage:
        """``announced``: the sender's self-given name when the caller knows it (else read)."""
        groups = self._store.groups
        delivered = read = recipients = 0
        if m.outgoing:
            receipts = groups.receipts(m.id)
            read = sum(1 for state in receipts.values() if state == "read")
            delivered = len(receipts)
            recipients = max(0, groups.member_count(m.group_row) - 1)
        if announced is None and m.sender != self.me:
            announced = groups.member_announced_name(m.group_row, m.sender)
        return GroupMessage(
            id=m.id,
            group_row=m.group_row,
            message_id=m.message_id,
            sender=m.sender,
            sender_name=self.member_name(m.group_row, m.sender, announced),
            outgoing=m.outgoing,
            kind=m.kind,
            text=m.body,
            sent_at_ms=m.sent_at_ms,
            received_at_ms=m.received_at_ms,
            state=m.state,
            delivered=delivered,
            read=read,
            recipients=recipients,
        )

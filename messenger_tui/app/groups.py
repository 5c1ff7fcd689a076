"""Group chats, the user's side: create, add, remove, leave, rename, send, read.

``service.groups`` is this part of the facade (as ``service.calls`` is for calls). Each
operation is one transaction that leaves nothing half done:

* a membership change (:mod:`messenger_tui.core.groups.membership`) is signed, applied to our
  log, and queued pairwise (:class:`~messenger_tui.core.payload.GroupChange`) to every member
  of the group before and after it (so a removed member learns it was removed, and a new
  member is welcomed with the change that added it);
* a text is encrypted once with our sender key and queued in the group outbox, which uploads
  it once (``SendMulti``) to every other member (:mod:`.group_sender`). Before the first
  message under a sender key, the key's distribution message
  (:class:`~messenger_tui.core.payload.GroupKey`) is queued pairwise to every member that
  does not have it; the group outbox sends a member a message only after the pairwise rows
  queued to it before the message were stored, so the key always arrives first;
* after a member went (removed or left), our next send starts a new sender key
  (``rotate_sender_key``) and distributes it to the remaining members only.
"""

from __future__ import annotations

import asyncio
import heapq
import os
from collections.abc import Awaitable, Callable

from messenger_tui.app import events as ev
from messenger_tui.app.disappearing_timer import stamp
from messenger_tui.app.errors import BadInput
from messenger_tui.app.group_book import GroupBook, encode
from messenger_tui.app.group_models import Group, GroupMessage, GroupSearchHit
from messenger_tui.app.group_timer import GroupTimers
from messenger_tui.app.message_log import split_marks
from messenger_tui.app.models import Contact
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.errors import CoreError
from messenger_tui.core.groups import membership as gm
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.storage.groups import GroupRow
from messenger_tui.storage.messages import MATCH_END, MATCH_START, fts_query
from messenger_tui.storage.store import Store


class GroupChats:
    """``contact(name)`` resolves a contact by name (:class:`BadInput` otherwise);
    ``wake()`` starts the senders; ``emit`` publishes events; ``typing_to(contact, payload)``
    sends a typing notice pairwise (ephemeral); ``contact_of(id)`` is a contact by local id."""

    def __init__(
        self,
        store: Store,
        identity: IdentityKeyPair,
        book: GroupBook,
        *,
        contact: Callable[[str], Contact],
        own_name: Callable[[], str],
        now_ms: Callable[[], int],
        emit: Callable[[ev.Event], None],
        wake: Callable[[], None],
        typing_to: Callable[[Contact, pl.GroupTyping], Awaitable[None]] | None = None,
        contact_of: Callable[[int], Contact | None] | None = None,
        timers: GroupTimers | None = None,
    ) -> None:
        self._store = store
        self._identity = identity
        self._book = book
        self._contact = contact
        self._own_name = own_name
        self._now_ms = now_ms
        self._emit = emit
        self._wake = wake
        self._typing_to = typing_to
        self._contact_of = contact_of
        self._timers = timers or GroupTimers(store, book, now_ms)

    # ------------------------------------------------------------ reading

    def all(self) -> list[Group]:
        """Every group (current ones first), by name."""
        rows = sorted(self._store.groups.all(), key=lambda r: (not r.is_member, r.name.lower()))
        return [self._book.model(row) for row in rows]

    def group(self, name: str) -> Group:
        return self._book.model(self._book.named(name))

    def by_id(self, row_id: int) -> Group | None:
        row = self._store.groups.by_id(row_id)
        return self._book.model(row) if row is not None else None

    def history(self, name: str, *, limit: int = 50) -> list[GroupMessage]:
        row = self._book.named(name)
        return [self._book.message_model(m) for m in self._store.groups.history(row.id, limit)]

    def message(self, row_id: int) -> GroupMessage | None:
        m = self._store.groups.message(row_id)
        return self._book.message_model(m) if m is not None else None

    def unread(self) -> list[tuple[Group, GroupMessage]]:
        """Incoming group messages not yet shown, in arrival order."""
        groups: dict[int, Group] = {}
        result: list[tuple[Group, GroupMessage]] = []
        for m in self._store.groups.unread():
            if m.group_row not in groups:
                row = self._store.groups.by_id(m.group_row)
                assert row is not None
                groups[m.group_row] = self._book.model(row)
            result.append((groups[m.group_row], self._book.message_model(m)))
        return result

    def search(self, text: str, *, limit: int = 100) -> list[tuple[Group, GroupMessage]]:
        """Group messages with these words (as the 1:1 search: any text is safe)."""
        query = fts_query(text)
        if query is None:
            return []
        hits = []
        for m in self._store.groups.search(query, limit):
            row = self._store.groups.by_id(m.group_row)
            if row is not None:
                hits.append((self._book.model(row), self._book.message_model(m)))
        return list(heapq.merge(hits, key=lambda h: -h[1].id))

    def search_hits(
        self, text: str, *, name: str | None = None, limit: int = 100
    ) -> list[GroupSearchHit]:
        """Full-text search of what the user typed in one group (``name``) or in all of them,
        newest first, with snippets: the group half of the all-conversation search."""
        query = fts_query(text)
        if query is None:
            return []
        only = self._book.named(name).id if name is not None else None
        groups: dict[int, Group | None] = {}
        hits = []
        for m, marked in self._store.groups.search_snippets(query, group_row=only, limit=limit):
            if m.group_row not in groups:
                groups[m.group_row] = self.by_id(m.group_row)
            group = groups[m.group_row]
            if group is not None:
                plain, spans = split_marks(marked, MATCH_START, MATCH_END)
                hits.append(GroupSearchHit(group, self._book.message_model(m), plain, spans))
        return hits

    def members(self, name: str) -> Group:
        return self.group(name)

    def receipts(self, message: GroupMessage) -> list[tuple[str, str]]:
        """Who got and who read an own message: (member name, ``read`` | ``delivered`` |
        ``waiting``) for every other member of the group now, read first, then by name."""
        group = self.by_id(message.group_row)
        if group is None or not message.outgoing:
            return []
        states = self._store.groups.receipts(message.id)
        rank = {"read": 0, "delivered": 1, "waiting": 2}
        rows = [(m.name, states.get(m.identity, "waiting")) for m in group.members if not m.me]
        return sorted(rows, key=lambda r: (rank.get(r[1], 3), r[0].casefold()))

    def set_muted(self, name: str, muted: bool) -> Group:
        """Mute (no toast, bell or desktop notification, except for messages that mention
        us) or unmute a group."""
        row = self._book.named(name)
        with self._store.db.transaction():
            self._store.groups.update(row.id, muted=int(muted))
        fresh = self._store.groups.by_id(row.id)
        assert fresh is not None
        return self._changed(fresh)

    async def send_typing(self, name: str, active: bool) -> None:
        """Tell every member that is a contact we started/stopped typing in the group
        (ephemeral, pairwise: dropped for members offline; nothing queued)."""
        if self._typing_to is None or self._contact_of is None:
            return
        row = self._book.named(name)
        if not row.is_member:
            return
        payload = pl.GroupTyping(group_id=row.group_id, active=active)
        for member in self._book.model(row).members:
            if member.me or member.contact_id is None:
                continue
            contact = self._contact_of(member.contact_id)
            if contact is not None:
                await self._typing_to(contact, payload)

    # ------------------------------------------------------------ membership

    def create(self, name: str, member_names: list[str]) -> Group:
        """A new group with us as admin and these contacts; each is sent the create change."""
        contacts = self._contacts(member_names)
        group_id = os.urandom(sk.GROUP_ID_LEN)
        try:
            log, data = gm.create_group(
                self._identity, group_id, name.strip(), tuple(c.identity for c in contacts)
            )
        except CoreError as exc:
            raise BadInput(str(exc)) from None
        with self._store.db.transaction():
            row = self._store.groups.insert(group_id, log.state.name, encode(log), self._now_ms())
            row, _ = self._book.save_log(row, log)
            for contact in contacts:
                self._book.send_pairwise(contact.identity, pl.GroupChange(change=data))
            self._book.notice(row, f"You created the group {log.state.name}.")
        return self._changed(row)

    def add(self, name: str, member_names: list[str]) -> Group:
        contacts = self._contacts(member_names)
        row = self._current(name)
        present = self._book.log(row).state
        new = [c for c in contacts if not present.is_member(c.identity)]
        if not new:
            raise BadInput("they are members already")
        return self._propose(
            row, gm.Op.ADD, tuple(c.identity for c in new), f"You added {_names(new)}."
        )

    def remove(self, name: str, member_names: list[str]) -> Group:
        contacts = self._contacts(member_names)
        row = self._current(name)
        present = self._book.log(row).state
        gone = [c for c in contacts if present.is_member(c.identity)]
        if not gone:
            raise BadInput("they are not members")
        return self._propose(
            row, gm.Op.REMOVE, tuple(c.identity for c in gone), f"You removed {_names(gone)}."
        )

    def set_admin(self, name: str, member_names: list[str], admin: bool) -> Group:
        """Promote members to admins (``admin``) or demote admins (admins only)."""
        contacts = self._contacts(member_names)
        row = self._current(name)
        op = gm.Op.PROMOTE if admin else gm.Op.DEMOTE
        verb = "made" if admin else "demoted"
        note = f"You {verb} {_names(contacts)}{' admin' if admin else ''}."
        return self._propose(row, op, tuple(c.identity for c in contacts), note)

    def leave(self, name: str) -> Group:
        row = self._current(name)
        return self._propose(row, gm.Op.LEAVE, (self._identity.public,), "You left the group.")

    def rename(self, name: str, new_name: str) -> Group:
        row = self._current(name)
        return self._propose(
            row, gm.Op.RENAME, (), f"You renamed the group to {new_name.strip()}.", new_name.strip()
        )

    def _propose(
        self, row: GroupRow, op: gm.Op, targets: tuple[bytes, ...], note: str, name: str = ""
    ) -> Group:
        log = self._book.log(row)
        before = set(log.state.member_keys())
        try:
            log, data = gm.propose(log, self._identity, op, targets, name)
        except CoreError as exc:
            raise BadInput(str(exc)) from None
        recipients = before | set(log.state.member_keys())
        with self._store.db.transaction():
            for identity in sorted(recipients):
                self._book.send_pairwise(identity, pl.GroupChange(change=data))
            row, _gone = self._book.save_log(row, log)
            self._book.notice(row, note)
        return self._changed(row)

    def _changed(self, row: GroupRow) -> Group:
        self._wake()
        group = self._book.model(row)
        self._emit(ev.GroupChanged(group))
        return group

    def _current(self, name: str) -> GroupRow:
        row = self._book.named(name)
        if not row.is_member:
            raise BadInput(f"you are no longer a member of {row.name}")
        return row

    def _contacts(self, names: list[str]) -> list[Contact]:
        contacts = [self._contact(n.strip()) for n in names if n.strip()]
        for contact in contacts:
            if contact.blocked or contact.key_changed:
                raise BadInput(f"{contact.name} is blocked or their key changed")
        return list({c.identity: c for c in contacts}.values())

    # ------------------------------------------------------------ sending

    def send_text(self, name: str, text: str, mentions: list[bytes] | None = None) -> GroupMessage:
        """Encrypt once, store, and queue one upload to every other member. ``mentions``: the
        identity keys of the members the text names with ``@`` (non-members are left out)."""
        if not text.strip():
            raise BadInput("an empty message is not sent")
        if len(text.encode("utf-8")) > pl.MAX_TEXT_BYTES:
            raise BadInput(f"message too long: at most {pl.MAX_TEXT_BYTES // 1024} KiB of text")
        row = self._current(name)
        state = self._book.log(row).state
        mentioned = sorted({m for m in mentions or () if state.is_member(m) and m != self.me})
        now = self._now_ms()
        message_id = os.urandom(16)
        groups = self._store.groups
        with self._store.db.transaction():
            timer = self._timers.current(row.id)
            sending = self._sender_key(row)
            seq = groups.next_send_seq(row.id)
            plaintext = pl.encode_payload(
                pl.GroupText(
                    id=message_id,
                    text=text,
                    sent_at_ms=now,
                    sender_name=self._own_name(),
                    seq=seq,
                    mentions=mentioned or None,
                    timer=stamp(timer),
                )
            )
            sending, body = sk.group_encrypt(sending, plaintext)
            groups.update(row.id, sending_key=encode(sending))
            recipients = [m for m in self._book.log(row).state.member_keys() if m != self.me]
            stored = groups.insert_message(
                row.id,
                self.me,
                message_id,
                outgoing=True,
                body=text,
                sent_at_ms=now,
                state="sent" if not recipients else "queued",
                seq=seq,
                expire_after_s=timer.seconds,
            )
            assert stored is not None
            self._timers.start_sent(stored.id, timer.seconds, now)
            if recipients:
                groups.enqueue(
                    row.id,
                    os.urandom(16),
                    body,
                    recipients,
                    groups.outbox_tail(),
                    now,
                    message_row=stored.id,
                )
        self._wake()
        if timer.enabled:
            self._timers.rearm()
        return self._book.message_model(stored)

    @property
    def me(self) -> bytes:
        return self._identity.public

    def _sender_key(self, row: GroupRow) -> sk.SendingSenderKey:
        """Our sender key for ``row``, started or rotated as needed, and queued pairwise to
        every member that does not have it yet (call inside the send's transaction)."""
        groups = self._store.groups
        sending = self._book.sending_key(row)
        if sending is None or row.rotate:
            sending = (
                sk.new_sender_key(row.group_id)
                if sending is None
                else sk.rotate_sender_key(sending)
            )
            groups.update(row.id, sending_key=encode(sending), rotate=0)
            groups.reset_key_sent(row.id)
        missing = groups.without_key(row.id, sending.key_id, self.me)
        if missing:
            distribution = sk.encode_distribution(sk.distribution_of(sending))
            for identity in missing:
                self._book.send_pairwise(identity, pl.GroupKey(distribution=distribution))
                groups.set_key_sent(row.id, identity, sending.key_id)
        return sending

    # ------------------------------------------------------------ disappearing messages

    def timer(self, name: str) -> int:
        """The group's disappearing-message timer in seconds (0: off)."""
        return self._timers.current(self._book.named(name).id).seconds

    def set_timer(self, name: str, seconds: int) -> bool:
        """Set the group's timer for every member (:mod:`.group_timer`): stored, noted, and
        sealed once in the group channel. False if it already was ``seconds``."""
        try:
            dm.check_seconds(seconds)
        except dm.TimerError as exc:
            raise BadInput(str(exc)) from None
        row = self._current(name)
        now = self._now_ms()
        with self._store.db.transaction():
            new = self._timers.change(row, seconds)
            if new is None:
                return False
            plaintext = pl.encode_payload(pl.GroupTimer(seconds=new.seconds, version=new.version))
            self._seal_and_queue(row, plaintext, now)
        self._wake()
        group = self._book.model(row)
        self._emit(ev.GroupTimerChanged(group, seconds, by_me=True))
        return True

    def _seal_and_queue(self, row: GroupRow, plaintext: bytes, now: int) -> None:
        """Encrypt a group-channel control payload once and queue it to every other member."""
        groups = self._store.groups
        sending, body = sk.group_encrypt(self._sender_key(row), plaintext)
        groups.update(row.id, sending_key=encode(sending))
        recipients = [m for m in self._book.log(row).state.member_keys() if m != self.me]
        if recipients:
            groups.enqueue(row.id, os.urandom(16), body, recipients, groups.outbox_tail(), now)

    async def wait_sent(self, timeout: float) -> bool:
        """Wait until the relay stored every queued group message and pairwise row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._store.groups.outbox_count() or self._store.outbox.count():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def queue_sealed(self, row: GroupRow, payload: pl.Payload, message_row: int) -> int:
        """Seal ``payload`` once with our sender key (started, rotated and distributed as for a
        text) and queue it to every other member; for group messages other than texts (a
        file's pointer: app/group_files.py). Call inside a transaction with a fresh ``row``;
        returns the number of recipients (0: nobody else is in the group)."""
        groups = self._store.groups
        sending = self._sender_key(row)
        sending, body = sk.group_encrypt(sending, pl.encode_payload(payload))
        groups.update(row.id, sending_key=encode(sending))
        recipients = [m for m in self._book.log(row).state.member_keys() if m != self.me]
        if recipients:
            tail = groups.outbox_tail()
            now = self._now_ms()
            groups.enqueue(
                row.id, os.urandom(16), body, recipients, tail, now, message_row=message_row
            )
        return len(recipients)

    # ------------------------------------------------------------ reading state

    def mark_shown(self, message: GroupMessage) -> bool:
        with self._store.db.transaction():
            shown = self._store.messages.mark_seen_if_unread(message.id)
            if shown:
                self._timers.start_read([message.id])
        if shown:
            self._timers.rearm()
        return shown

    def mark_read(self, name: str) -> int:
        """Mark the group's unread messages seen and send each author a read receipt."""
        row = self._book.named(name)
        unread = self._store.groups.unread(row.id)
        if not unread:
            return 0
        by_sender: dict[bytes, list[bytes]] = {}
        with self._store.db.transaction():
            self._store.messages.mark_seen([m.id for m in unread])
            self._timers.start_read([m.id for m in unread])
            for m in unread:
                by_sender.setdefault(m.sender, []).append(m.message_id)
            self._send_receipts(row, "read", by_sender)
        self._wake()
        self._timers.rearm()
        return len(unread)

    def send_read_receipt(self, group: Group, messages: list[GroupMessage]) -> None:
        by_sender: dict[bytes, list[bytes]] = {}
        for m in messages:
            by_sender.setdefault(m.sender, []).append(m.message_id)
        row = self._store.groups.by_id(group.id)
        if row is None or not by_sender:
            return
        with self._store.db.transaction():
            self._send_receipts(row, "read", by_sender)
        self._wake()

    def _send_receipts(self, row: GroupRow, kind: str, by_sender: dict[bytes, list[bytes]]) -> None:
        state = self._book.log(row).state
        for sender, ids in by_sender.items():
            if state.is_member(sender) and row.is_member:
                receipt = pl.GroupReceipt(group_id=row.group_id, kind=kind, ids=ids)  # type: ignore[arg-type]
                self._book.send_pairwise(sender, receipt)


def _names(contacts: list[Contact]) -> str:
    return ", ".join(c.name for c in contacts)

"""Receiving group traffic: pairwise control payloads and sender-key group messages.

Called by :class:`~messenger_tui.app.receiver.Receiver` inside its per-envelope savepoint, so
what a message changes is committed with its dedupe record before the envelope is acked.

Rules (docs/protocol.md "Groups in the app"):

1. A membership change (:class:`~messenger_tui.core.payload.GroupChange`) for a group we do
   not have is accepted only from a contact (we trust the contact that added us: rule 5 of
   :mod:`messenger_tui.core.groups.membership`); one for a group we have goes through
   ``receive_change`` (signed, versioned, converging). An invalid one is dropped and counted.
2. A sender key (:class:`~messenger_tui.core.payload.GroupKey`) is kept only from a current
   member of a group we are in; it releases the messages held for it.
3. A group message (a delivery with a fan-out header) from an identity that is not a member
   at our head is dropped and counted (``groups.dropped``); one whose sender key we lack is
   held (:mod:`messenger_tui.core.groups.pending`) and the sender is asked to resend its key
   (at most once per 30 s per key); forged, replayed or undecryptable ones are dropped and
   counted; nothing is dropped silently (a notice names each drop but replays).
4. Every stored group message is acknowledged to its author with a pairwise
   :class:`~messenger_tui.core.payload.GroupReceipt` (delivered), one per author and burst.
5. A group message whose plaintext is an :class:`~messenger_tui.core.payload.Attachment` is a
   member's file: stored with its download by :attr:`GroupInbound.attachments`
   (app/group_files.py), receipted as a text is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.disappearing_timer import TimerBook
from messenger_tui.app.group_book import GroupBook, encode
from messenger_tui.app.group_models import Group
from messenger_tui.app.group_timer import GroupTimers
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.errors import (
    CoreError,
    DuplicateMessage,
    NoSenderKey,
    NotGroupMember,
)
from messenger_tui.core.groups import membership as gm
from messenger_tui.core.groups import pending as gp
from messenger_tui.core.groups import sender_keys as sk
from messenger_tui.core.message_states import MessageState
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.groups import GroupMessageRow, GroupRow
from messenger_tui.storage.store import Store

log = logging.getLogger(__name__)

#: Payloads that travel pairwise for groups.
PAIRWISE_GROUP_PAYLOADS = (pl.GroupChange, pl.GroupKey, pl.GroupKeyRequest, pl.GroupReceipt)

#: Stores a member's file (app/group_files.py ``incoming_attachment``): (group, sender,
#: payload, now) -> the stored message, None if stored already.
AttachmentSink = Callable[[GroupRow, bytes, pl.Attachment, int], GroupMessageRow | None]


class GroupInbound:
    def __init__(
        self,
        store: Store,
        book: GroupBook,
        now_ms: Callable[[], int],
        timers: GroupTimers | None = None,
    ) -> None:
        self._store = store
        self._book = book
        self._now_ms = now_ms
        self._timers = timers or GroupTimers(store, book, now_ms)
        #: (group row, author) -> ids of group messages stored this burst (delivered receipts).
        self._delivered: dict[tuple[int, bytes], list[bytes]] = {}
        #: Where a member's file goes (the service sets it); None: files are dropped.
        self.attachments: AttachmentSink | None = None
        #: The read model of each group a message of this burst went to (its members are 50
        #: names to resolve: once per burst, not per message), its unread count kept up.
        self._models: dict[int, Group] = {}
        #: (group row, member) -> the name it gave itself, as stored this burst.
        self._names: dict[tuple[int, bytes], str] = {}
        #: Read once per burst, not per message (a backlog is thousands of messages from a few
        #: senders): group id -> the group's row and membership state; (group row, sender) ->
        #: its sender-key record as last stored; group row -> its timer. Kept only while
        #: nothing else writes them: any pairwise group payload, a held message, an error
        #: (its savepoint is rolled back) and the burst's end clear them (:meth:`_forget`).
        self._rows: dict[bytes, tuple[GroupRow, gm.GroupState]] = {}
        self._records: dict[tuple[int, bytes], sk.SenderKeyRecord | None] = {}
        self._timer_settings: dict[int, dm.TimerSetting] = {}

    # ------------------------------------------------------------ pairwise

    def on_pairwise(
        self,
        contact: ContactRow | None,
        sender: bytes,
        payload: pl.Payload,
        events: list[ev.Event],
    ) -> None:
        self._forget()  # a change, key or receipt may rewrite what the caches hold
        if isinstance(payload, pl.GroupChange):
            self._change(contact, sender, payload.change, events)
        elif isinstance(payload, pl.GroupKey):
            self._key(sender, payload.distribution, events)
        elif isinstance(payload, pl.GroupKeyRequest):
            self._resend(sender, payload)
        elif isinstance(payload, pl.GroupReceipt):
            self._receipt(sender, payload, events)

    def typing(self, sender: bytes, payload: pl.GroupTyping) -> ev.GroupTypingChanged | None:
        """A member's typing notice, for a group we are in and it is a member of (else None:
        dropped quietly, as 1:1 typing from a blocked contact is)."""
        row = self._store.groups.by_group_id(payload.group_id)
        if row is None or not row.is_member or sender == self._book.me:
            return None
        if not self._book.log(row).state.is_member(sender):
            return None
        name = self._book.member_name(row.id, sender)
        return ev.GroupTypingChanged(self._book.model(row), sender, name, payload.active)

    def _change(
        self, contact: ContactRow | None, sender: bytes, data: bytes, events: list[ev.Event]
    ) -> None:
        try:
            change = gm.decode_change(data)
        except CoreError as exc:
            log.warning("dropped a membership change: %s", type(exc).__name__)
            return
        groups = self._store.groups
        row = groups.by_group_id(change.group_id)
        if row is None and (contact is None or contact.auto_added or contact.blocked):
            log.info("ignored an invitation from %s (not a contact)", short_fingerprint(sender))
            return
        log_before = self._book.log(row) if row is not None else None
        try:
            new_log, outcome = gm.receive_change(log_before, data, self._book.me)
        except CoreError as exc:
            log.warning("dropped a membership change: %s", type(exc).__name__)
            if row is not None:
                groups.count_dropped(row.id)
            return
        if outcome is not gm.ChangeOutcome.APPLIED:
            if row is not None and new_log != log_before:
                groups.update(row.id, log=encode(new_log))
            return
        if row is None:
            now = self._now_ms()
            row = groups.insert(change.group_id, new_log.state.name, encode(new_log), now)
        was_member = row.is_member
        old_state = log_before.state if log_before is not None else None
        row, _gone = self._book.save_log(row, new_log)
        self._models.pop(row.id, None)
        self._book.notice(row, self._describe(old_state, new_log.state, was_member, change))
        events.append(ev.GroupChanged(self._book.model(row)))

    def _describe(
        self,
        old: gm.GroupState | None,
        new: gm.GroupState,
        was_member: bool,
        change: gm.Change,
    ) -> str:
        who = self._book.member_name(0, change.author)
        me = self._book.me
        if old is None or (not was_member and new.is_member(me)):
            return f"{who} added you to the group {new.name}."
        if not new.is_member(me):
            if change.op is gm.Op.REMOVE:
                return f"{who} removed you from the group."
            return "You left the group."
        added = [k for k in new.member_keys() if not old.is_member(k)]
        gone = [k for k in old.member_keys() if not new.is_member(k)]
        parts = []
        if added:
            parts.append("added " + ", ".join(self._book.member_name(0, k) for k in added))
        if gone:
            if change.op is gm.Op.LEAVE:
                return f"{who} left the group."
            parts.append("removed " + ", ".join(self._book.member_name(0, k) for k in gone))
        if new.name != old.name:
            parts.append(f"renamed the group to {new.name}")
        if not parts:
            parts.append("changed the admins")
        return f"{who} " + "; ".join(parts) + "."

    def _member_group(self, group_id: bytes, sender: bytes) -> GroupRow | None:
        row = self._store.groups.by_group_id(group_id)
        if row is None or not row.is_member:
            return None
        if not self._book.log(row).state.is_member(sender):
            self._store.groups.count_dropped(row.id)
            return None
        return row

    def _key(self, sender: bytes, data: bytes, events: list[ev.Event]) -> None:
        try:
            distribution = sk.decode_distribution(data)
        except CoreError as exc:
            log.warning("dropped a sender key: %s", type(exc).__name__)
            return
        row = self._member_group(distribution.group_id, sender)
        if row is None:
            return
        try:
            record = sk.process_distribution(self._book.record(row, sender), distribution)
        except CoreError as exc:
            log.warning("dropped a sender key: %s", type(exc).__name__)
            return
        self._store.groups.put_sender_key(row.id, sender, encode(record))
        self._store.groups.sender_key_changed()  # our group send grants follow (group_grants)
        pending, released = gp.release_messages(
            self._book.pending(row), sender, distribution.key_id
        )
        if released:
            self._store.groups.update(row.id, pending=encode(pending))
            fresh = self._store.groups.by_id(row.id)
            assert fresh is not None
            for body in released:
                self._open(fresh, sender, body, events, released=True)

    def _resend(self, sender: bytes, request: pl.GroupKeyRequest) -> None:
        row = self._member_group(request.group_id, sender)
        if row is None:
            return
        sending = self._book.sending_key(row)
        if sending is None or sending.key_id != request.key_id:
            return  # an old key: our newer one reaches them before our newer messages
        distribution = sk.encode_distribution(sk.distribution_of(sending))
        self._book.send_pairwise(sender, pl.GroupKey(distribution=distribution))

    def _receipt(self, sender: bytes, receipt: pl.GroupReceipt, events: list[ev.Event]) -> None:
        row = self._member_group(receipt.group_id, sender)
        if row is None:
            return
        state: MessageState = "read" if receipt.kind == "read" else "delivered"
        groups = self._store.groups
        for message_row in groups.outgoing_rows(row.id, receipt.ids).values():
            if groups.advance_receipt(message_row, sender, state):
                message = groups.message(message_row)
                if message is not None:
                    events.append(
                        ev.GroupMessageStateChanged(
                            self._book.model(row), self._book.message_model(message)
                        )
                    )

    # ------------------------------------------------------------ group messages

    def on_group_message(self, frame: wire.Deliver, events: list[ev.Event]) -> None:
        """A delivery with a fan-out header: a sender-key group message."""
        try:
            header = sk.parse_group_header(frame.body)
        except CoreError as exc:
            log.warning("dropped a group message: %s", type(exc).__name__)
            return
        cached = self._rows.get(header.group_id)
        if cached is None:
            row = self._store.groups.by_group_id(header.group_id)
            if row is None or not row.is_member:
                return  # a group we are not (or no longer) in: nothing to read
            cached = self._rows[header.group_id] = (row, self._book.log(row).state)
        try:
            self._open(cached[0], frame.sender, frame.body, events, state=cached[1])
        except BaseException:
            self._forget()  # the receiver rolls this envelope's savepoint back
            raise

    def _forget(self) -> None:
        self._rows.clear()
        self._records.clear()
        self._timer_settings.clear()

    def _open(
        self,
        row: GroupRow,
        sender: bytes,
        body: bytes,
        events: list[ev.Event],
        *,
        released: bool = False,
        state: gm.GroupState | None = None,
    ) -> None:
        """Decrypt and store one group message (``released``: it was held for its key;
        ``state``: the group's membership state when the caller has it)."""
        groups = self._store.groups
        try:
            gm.require_member(self._book.log(row).state if state is None else state, sender)
        except NotGroupMember:
            groups.count_dropped(row.id)
            log.info("dropped a group message from a non-member")
            return
        key = (row.id, sender)
        if key in self._records:
            record = self._records[key]
        else:
            record = self._records[key] = self._book.record(row, sender)
        try:
            if record is None:
                header = sk.parse_group_header(body)
                raise NoSenderKey("no key", group_id=header.group_id, key_id=header.key_id)
            record, plaintext = sk.group_decrypt(record, body)
            payload = pl.decode_payload(plaintext)
        except NoSenderKey as exc:
            self._hold(row, sender, exc.key_id, body)
            return
        except DuplicateMessage:
            if released:
                # Held for a key that came back starting after it (a resend carries the
                # chain's current position): it cannot be opened. Said, never silent.
                groups.count_dropped(row.id)
                who = self._book.member_name(row.id, sender)
                self._book.notice(row, f"A message from {who} arrived before its key and is lost.")
            return  # else a replay, or a redelivery we stored already
        except (CoreError, pl.MalformedPayload) as exc:
            groups.count_dropped(row.id)
            who = self._book.member_name(row.id, sender)
            self._book.notice(row, f"A message from {who} could not be opened and was dropped.")
            log.warning("dropped a group message: %s", type(exc).__name__)
            return
        if isinstance(payload, pl.GroupTimer):
            groups.put_sender_key(row.id, sender, encode(record))
            self._records[key] = record
            self._timer_settings[row.id] = self._timers.merge_from_member(
                row, GroupTimers.from_payload(sender, payload), events, self._timer(row.id)
            )
            return
        if isinstance(payload, pl.Attachment) and self.attachments is not None:
            stored: GroupMessageRow | None = None
            mentions: list[bytes] | None = None
        elif isinstance(payload, pl.GroupText):
            mentions = payload.mentions
        else:
            groups.count_dropped(row.id)
            return
        # No stamp: no statement about the timer (never "off"), as for 1:1 texts. A file
        # carries no stamp (pl.Attachment has none) and is not timed.
        if isinstance(payload, pl.GroupText) and payload.timer is not None:
            incoming = TimerBook.from_stamp(payload.timer)
            setting = self._timers.merge_from_member(row, incoming, events, self._timer(row.id))
        else:
            setting = self._timer(row.id)
        self._timer_settings[row.id] = setting
        name = (payload.sender_name or "")[:32]
        if name and self._names.get((row.id, sender)) != name:
            groups.set_member_name(row.id, sender, name)
            self._names[(row.id, sender)] = name
            self._models.pop(row.id, None)
        if isinstance(payload, pl.Attachment):
            assert self.attachments is not None
            stored = self.attachments(row, sender, payload, self._now_ms())
        else:
            stored = groups.insert_message(
                row.id,
                sender,
                payload.id,
                outgoing=False,
                body=payload.text,
                sent_at_ms=payload.sent_at_ms,
                received_at_ms=self._now_ms(),
                state="received",
                seq=payload.seq or None,
                expire_after_s=setting.seconds or None,  # counts from the read
            )
        groups.put_sender_key(row.id, sender, encode(record))
        self._records[key] = record
        if stored is None:
            return
        self._delivered.setdefault((row.id, sender), []).append(payload.id)
        mentioned = self._book.me in (mentions or ())
        # The name the member gave itself is the one just stored, if it gave one.
        message = self._book.message_model(stored, announced=name or None)
        events.append(ev.GroupMessageReceived(self._burst_model(row), message, mentioned=mentioned))

    def _timer(self, row_id: int) -> dm.TimerSetting:
        setting = self._timer_settings.get(row_id)
        if setting is None:
            setting = self._timer_settings[row_id] = self._timers.current(row_id)
        return setting

    def _burst_model(self, row: GroupRow) -> Group:
        """The group's read model after one more unread message, built once per burst."""
        model = self._models.get(row.id)
        if model is None:
            model = self._book.model(row)  # counts the message just stored
        else:
            model = dataclasses.replace(model, unread=model.unread + 1)
        self._models[row.id] = model
        return model

    def _hold(self, row: GroupRow, sender: bytes, key_id: int, body: bytes) -> None:
        self._forget()  # the row's held messages change
        now = self._now_ms()
        pending, expired = gp.expire_messages(self._book.pending(row), now)
        for message in expired:  # held a week: the sender never answered (rule 4)
            self._store.groups.count_dropped(row.id)
            who = self._book.member_name(row.id, message.sender)
            self._book.notice(row, f"A message from {who} never got its key and was dropped.")
        result = gp.hold_message(pending, sender, key_id, body, now)
        self._store.groups.update(row.id, pending=encode(result.pending))
        if result.request is not None:
            request = pl.GroupKeyRequest(group_id=row.group_id, key_id=key_id)
            self._book.send_pairwise(sender, request)
        for _evicted in result.evicted:
            self._store.groups.count_dropped(row.id)
            who = self._book.member_name(row.id, _evicted.sender)
            self._book.notice(row, f"A message from {who} never got its key and was dropped.")

    def begin_burst(self) -> None:
        """A burst starts (its own transaction): nothing kept from an earlier one, which may
        have been rolled back."""
        self._models.clear()
        self._names.clear()
        self._delivered.clear()
        self._forget()

    def flush_receipts(self) -> bool:
        """Queue the delivered receipts of this burst; True if any was queued."""
        self._models.clear()
        self._names.clear()
        self._forget()
        delivered, self._delivered = self._delivered, {}
        for (row_id, sender), ids in delivered.items():
            row = self._store.groups.by_id(row_id)
            if row is not None:
                receipt = pl.GroupReceipt(group_id=row.group_id, kind="delivered", ids=ids)
                self._book.send_pairwise(sender, receipt)
        return bool(delivered)

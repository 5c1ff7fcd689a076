"""Receiving: turn delivered envelopes into stored messages, receipts and events.

A burst of deliveries is processed in one database transaction (one commit instead of one per
envelope), each envelope inside its own savepoint: a failure in one never loses the others.
For every envelope the plaintext, the advanced ratchet state, the dedupe record and the
delivery receipt to send are committed together; the caller acks the envelopes only after
:meth:`Receiver.process` returned, i.e. after the commit.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from messenger_tui.app import events as ev
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.disappearing_timer import TimerBook
from messenger_tui.app.group_inbound import PAIRWISE_GROUP_PAYLOADS, GroupInbound
from messenger_tui.app.models import Contact
from messenger_tui.app.rows import contact_model, message_model
from messenger_tui.app.session_book import SessionBook
from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.address import short_fingerprint
from messenger_tui.core.attachments import encode_pointer
from messenger_tui.core.calls.group_keys import (
    GroupCallFrameKey,
    GroupCallInvite,
    GroupCallMessage,
    GroupCallOver,
)
from messenger_tui.core.calls.messages import (
    CallAccept,
    CallBusy,
    CallDecline,
    CallHangup,
    CallMessage,
    CallOffer,
    CallRinging,
    MalformedCallMessage,
    decode_call_message,
)
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto import session as cs
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.core.delivery_access import ACCESS_SECRET_LEN
from messenger_tui.core.errors import (
    CryptoError,
    DuplicateMessage,
    IdentityMismatch,
    MalformedEnvelope,
    TooManySkipped,
    UnknownPrekey,
)
from messenger_tui.core.message_states import MessageState
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.errors import StorageError
from messenger_tui.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a processed burst asks of the caller, after the commit."""

    acks: list[bytes] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)
    used_prekey: bool = False
    queued_receipts: bool = False
    #: A peer started a session with us: messages queued for it while it had no published
    #: keys can go now (the sender skips such recipients until woken).
    new_session: bool = False


def enqueue_receipt(store: Store, recipient: bytes, kind: str, ids: list[bytes], now: int) -> None:
    """Queue a receipt payload in the outbox (call inside a transaction)."""
    body = pl.encode_payload(pl.Receipt(kind=kind, ids=ids))  # type: ignore[arg-type]
    store.outbox.enqueue(recipient, os.urandom(16), body, "receipt", now)


def attachment_text(name: str, duration_ms: int | None) -> str:
    """A file's message text (what history and search show): its name, or for a voice
    message its length."""
    if duration_ms is None:
        return f"[file] {name}"
    seconds = duration_ms // 1000
    return f"[voice {seconds // 60}:{seconds % 60:02d}]"


def insert_notice(store: Store, contact_id: int, text: str, now: int) -> None:
    """A line in the conversation that explains something (a dropped message, a key change)."""
    store.messages.insert(
        contact_id,
        os.urandom(16),
        outgoing=False,
        body=text,
        sent_at_ms=now,
        received_at_ms=now,
        state="seen",
        kind="notice",
    )


class Receiver:
    def __init__(
        self,
        store: Store,
        identity: IdentityKeyPair,
        directory: ContactDirectory,
        now_ms: Callable[[], int],
        timers: TimerBook | None = None,
    ) -> None:
        self._timers = timers or TimerBook(store, identity.public, now_ms)
        #: Let calls from senders who are not contacts ring (Echo answers everyone).
        self.calls_from_strangers = False
        self._store = store
        self._identity = identity
        self._directory = directory
        self._now_ms = now_ms
        #: Group traffic (set by the service; None: group payloads are ignored).
        self.groups: GroupInbound | None = None
        #: Whether an identity is a member of a group we are in (set by the service): group
        #: call messages are taken from such members even when they are not contacts.
        self.group_member: Callable[[bytes], bool] = lambda identity: False

    def process(self, frames: list[wire.Deliver]) -> Outcome:
        """Decrypt and store a burst of deliveries in one transaction; then ack ``acks``."""
        out = Outcome()
        now = self._now_ms()
        delivered: dict[bytes, list[bytes]] = {}
        db = self._store.db
        if self.groups is not None:
            self.groups.begin_burst()
        with db.transaction():
            book = SessionBook(self._store.sessions, now)
            for frame in frames:
                try:
                    with db.savepoint():
                        self._one(frame, book, now, out, delivered)
                except StorageError:
                    raise  # the database itself failed: nothing of the burst is acked
                except Exception:
                    # A bug must not lose the burst: this envelope stays unacked and comes
                    # back on the next connection.
                    log.exception("could not process an envelope; it will be redelivered")
            for sender, ids in delivered.items():
                enqueue_receipt(self._store, sender, "delivered", ids, now)
                out.queued_receipts = True
            if self.groups is not None and self.groups.flush_receipts():
                out.queued_receipts = True
            book.flush()
        return out

    def _one(
        self,
        frame: wire.Deliver,
        book: SessionBook,
        now: int,
        out: Outcome,
        delivered: dict[bytes, list[bytes]],
    ) -> None:
        sender = frame.sender
        received = self._store.received
        if received.seen(sender, frame.id):  # a redelivery after a crash before our ack
            out.acks.append(frame.id)
            return
        row = self._directory.by_identity(sender)
        if row is not None and row.blocked:
            received.record(sender, frame.id, now)
            out.acks.append(frame.id)
            return
        if frame.header is not None:  # a group message (fan-out): sealed with a sender key
            if self.groups is not None:
                self.groups.on_group_message(frame, out.events)
            received.record(sender, frame.id, now)
            out.acks.append(frame.id)
            return
        try:
            envelope = cs.parse_envelope(frame.body)
            session, plaintext, used_opk = self._open(sender, envelope, book)
            payload = pl.decode_payload(plaintext)
        except DuplicateMessage:
            received.record(sender, frame.id, now)
            out.acks.append(frame.id)
            return
        except (CryptoError, pl.MalformedPayload) as exc:
            out.events.append(self._record_failure(sender, frame.id, row, exc, now))
            out.acks.append(frame.id)
            return
        events: list[ev.Event] = []
        # Someone who added us before we added them sends a delivery-access grant: of no use
        # until we write to them, and it must not show up as an empty message request. The
        # session it started is kept; the grant is dropped. So is a disappearing-message timer
        # from a stranger (it must not open a message request either).
        unsolicited_grant = row is None and isinstance(payload, (pl.Access, pl.Timer))
        # Group control payloads from members who are not contacts make no message request.
        group_control = isinstance(payload, PAIRWISE_GROUP_PAYLOADS)
        if row is None and not unsolicited_grant and not group_control:
            row = self._auto_contact(sender, payload, now)
            events.append(ev.ContactChanged(contact_model(row)))
        if envelope.prekey is not None:
            self._store.sessions.remember_accepted(sender, session.base_key, now)
            out.new_session = True
        if used_opk is not None:
            self._store.prekeys.delete_one_time(used_opk)
        if group_control:
            if self.groups is not None:
                self.groups.on_pairwise(row, sender, payload, events)
            delivered_id = None
        else:
            delivered_id = None if row is None else self._apply(row, payload, now, events)
        received.record(sender, frame.id, now)
        book.put(sender, session)  # last: only once every write above succeeded
        if delivered_id is not None:
            delivered.setdefault(sender, []).append(delivered_id)
        out.used_prekey = out.used_prekey or used_opk is not None
        out.events.extend(events)
        out.acks.append(frame.id)

    def _open(
        self, sender: bytes, envelope: cs.Envelope, book: SessionBook
    ) -> tuple[cs.Session, bytes, int | None]:
        """Decrypt with the right session, or start one from a prekey message. Pure: the
        caller records the returned session once the plaintext is stored."""
        base_key = cs.envelope_session_key(envelope)
        known = book.candidates(sender)
        if base_key is not None:
            for key, session in known:
                if key == base_key:
                    new, plaintext = cs.decrypt(session, envelope)
                    return new, plaintext, None
            assert envelope.prekey is not None
            if self._store.sessions.was_accepted(base_key):
                # The session this handshake started was archived away: a replay.
                raise DuplicateMessage("a handshake this profile accepted before")
            spk_data = self._store.prekeys.signed(envelope.prekey.spk_id)
            if spk_data is None:
                raise UnknownPrekey("the message uses a signed prekey this profile no longer has")
            opk = None
            if envelope.prekey.opk_id is not None:
                opk_data = self._store.prekeys.one_time(envelope.prekey.opk_id)
                if opk_data is None:
                    raise UnknownPrekey("the message uses a one-time prekey already used")
                opk = msgspec.msgpack.decode(opk_data, type=pk.OneTimePrekey)
            spk = msgspec.msgpack.decode(spk_data, type=pk.SignedPrekey)
            new, plaintext = cs.accept_session(self._identity, envelope, sender, spk, opk)
            return new, plaintext, envelope.prekey.opk_id
        last_error: CryptoError | None = None
        for _key, session in known:
            try:
                new, plaintext = cs.decrypt(session, envelope)
            except DuplicateMessage:
                raise
            except CryptoError as exc:
                last_error = exc  # not this session; try the next
                continue
            return new, plaintext, None
        if last_error is not None:
            raise last_error
        raise MalformedEnvelope("no session with this sender; its first message never arrived")

    def _auto_contact(self, sender: bytes, payload: pl.Payload, now: int) -> ContactRow:
        """A message from an unknown sender: keep it under a new contact (a message request)."""
        announced = payload.sender_name if isinstance(payload, pl.Text | pl.Attachment) else None
        base = _safe_name(announced) or f"unknown-{short_fingerprint(sender)}"
        name, n = base, 2
        while self._store.contacts.by_name(name) is not None:
            name, n = f"{base}-{n}", n + 1
        row = self._store.contacts.insert(
            name, sender, now, auto_added=True, announced_name=announced
        )
        self._directory.invalidate()
        return row

    def _apply(
        self, row: ContactRow, payload: pl.Payload, now: int, events: list[ev.Event]
    ) -> bytes | None:
        """Store the payload's effect; returns a message id to acknowledge with a receipt."""
        contact = contact_model(row)
        if isinstance(payload, pl.Text):
            # No stamp: no statement about the timer (never "off"); the message is kept under
            # the conversation's timer as it stands once the stamp is merged.
            setting = self._timers.current(row.id)
            if payload.timer is not None:
                incoming = TimerBook.from_stamp(payload.timer)
                setting = self._timers.merge_from_peer(row, incoming, now, events)
            stored = self._store.messages.insert(
                row.id,
                payload.id,
                outgoing=False,
                body=payload.text,
                sent_at_ms=payload.sent_at_ms,
                received_at_ms=now,
                state="received",
                seq=payload.seq or None,
                expire_after_s=setting.seconds or None,  # counts from the read
            )
            if stored is None:
                return None  # the same message id again (resent under a new envelope)
            if payload.access is not None and len(payload.access) == ACCESS_SECRET_LEN:
                self._store.contacts.set_delivery_access(row.identity, payload.access)
            events.append(ev.MessageReceived(contact, message_model(stored)))
            return payload.id
        if isinstance(payload, pl.Attachment):
            return self._attachment(row, payload, now, events)
        if isinstance(payload, pl.Receipt):
            state: MessageState = "read" if payload.kind == "read" else "delivered"
            for row_id in self._store.messages.advance_outgoing(row.id, payload.ids, state):
                events.append(ev.MessageStateChanged(contact, row_id, state))
        elif isinstance(payload, pl.Typing):
            events.append(ev.TypingChanged(contact, payload.active))
        elif isinstance(payload, pl.Timer):
            self._timers.merge_from_peer(row, self._timers.from_payload(row, payload), now, events)
        elif isinstance(payload, pl.Access) and len(payload.secret) == ACCESS_SECRET_LEN:
            self._store.contacts.set_delivery_access(row.identity, payload.secret)
        return None

    def _attachment(
        self, row: ContactRow, payload: pl.Attachment, now: int, events: list[ev.Event]
    ) -> bytes | None:
        """Store an attachment's message and its transfer (status ``new``: the transfer
        manager downloads it or offers it, app/transfers.py) in the same transaction."""
        pointer = payload.pointer
        stored = self._store.messages.insert(
            row.id,
            payload.id,
            outgoing=False,
            body=attachment_text(pointer.name, pointer.duration_ms),
            sent_at_ms=payload.sent_at_ms,
            received_at_ms=now,
            state="received",
            kind="voice" if pointer.is_voice else "attachment",
            seq=payload.seq or None,
        )
        if stored is None:
            return None
        self._store.transfers.insert(
            contact_id=row.id,
            direction="down",
            status="new",
            name=pointer.name,
            mime_type=pointer.mime_type,
            size=pointer.size,
            now_ms=now,
            message_row=stored.id,
            state=encode_pointer(pointer),
            blob_id=pointer.blob_id,
            blob_size=pointer.layout.blob_size,
            duration_ms=pointer.duration_ms,
        )
        if payload.access is not None and len(payload.access) == ACCESS_SECRET_LEN:
            self._store.contacts.set_delivery_access(row.identity, payload.access)
        events.append(ev.MessageReceived(contact_model(row), message_model(stored)))
        return payload.id

    def _record_failure(
        self,
        sender: bytes,
        envelope_id: bytes,
        row: ContactRow | None,
        exc: Exception,
        now: int,
    ) -> ev.MessageFailed:
        reason = failure_reason(exc)
        log.warning("dropped envelope from %s: %s", short_fingerprint(sender), type(exc).__name__)
        if row is not None:
            insert_notice(
                self._store,
                row.id,
                f"A message from {row.name} could not be opened and was dropped: {reason}.",
                now,
            )
        self._store.received.record(sender, envelope_id, now)
        return ev.MessageFailed(contact_model(row) if row else None, sender, reason)

    def process_signal(self, frame: wire.SignalDeliver) -> SignalIn | None:
        """An ephemeral frame: typing, or a call message. Garbled or stale ones are dropped
        quietly. A call offer may be the first message of a session (the caller had no
        reply from us yet); typing never starts one."""
        row = self._directory.by_identity(frame.sender)
        member = row is None and self.group_member(frame.sender)
        if (row is None and not self.calls_from_strangers and not member) or (
            row is not None and row.blocked
        ):
            return None
        now = self._now_ms()
        with self._store.db.transaction():
            book = SessionBook(self._store.sessions, now)
            try:
                envelope = cs.parse_envelope(frame.body)
                session, plaintext, used_opk = self._open(frame.sender, envelope, book)
                content = decode_signal(plaintext)
            except (CryptoError, pl.MalformedPayload, MalformedCallMessage):
                return None
            if isinstance(content, pl.Typing | pl.GroupTyping):
                if envelope.prekey is not None:
                    return None
            elif not isinstance(content, CALL_MESSAGE_TYPES + GROUP_CALL_MESSAGE_TYPES):
                return None
            if row is None and isinstance(content, GROUP_CALL_MESSAGE_TYPES):
                if not member:
                    return None
            elif row is None:
                # Only a profile that answers anyone (Echo) gets here; strangers' calls
                # otherwise never ring. The caller becomes a message request.
                if not isinstance(content, CallOffer):
                    return None
                row = self._auto_contact(frame.sender, pl.Typing(False), now)
            if envelope.prekey is not None:
                self._store.sessions.remember_accepted(frame.sender, session.base_key, now)
            if used_opk is not None:
                self._store.prekeys.delete_one_time(used_opk)
            book.put(frame.sender, session)
            book.flush()
        if isinstance(content, GROUP_CALL_MESSAGE_TYPES):
            # the group call manager checks membership of the group the message names
            return SignalIn(
                contact_model(row) if row else None,
                group_call=content,
                used_prekey=used_opk is not None,
            )
        assert row is not None
        contact = contact_model(row)
        if isinstance(content, pl.Typing):
            return SignalIn(contact, event=ev.TypingChanged(contact, content.active))
        if isinstance(content, pl.GroupTyping):
            event = self.groups.typing(frame.sender, content) if self.groups else None
            return SignalIn(contact, event=event) if event is not None else None
        return SignalIn(contact, call=content, used_prekey=used_opk is not None)


@dataclass(frozen=True)
class SignalIn:
    """What an ephemeral frame carried: an event to publish, or a (group) call message."""

    contact: Contact | None
    event: ev.Event | None = None
    call: CallMessage | None = None
    group_call: GroupCallMessage | None = None
    used_prekey: bool = False


CALL_MESSAGE_TYPES = (CallOffer, CallRinging, CallAccept, CallDecline, CallBusy, CallHangup)
GROUP_CALL_MESSAGE_TYPES = (GroupCallInvite, GroupCallFrameKey, GroupCallOver)


def decode_signal(plaintext: bytes) -> pl.Payload | CallMessage:
    """A payload (group call messages are payloads), or (for ``call_*`` tags) a call
    message."""
    try:
        return pl.decode_payload(plaintext)
    except pl.MalformedPayload:
        return decode_call_message(plaintext)


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = re.sub(r"\s+", " ", "".join(ch for ch in name if ch.isprintable())).strip()
    return cleaned[:32] or None


def failure_reason(exc: Exception) -> str:
    """Why an envelope was dropped, in words for the conversation notice."""
    if isinstance(exc, UnknownPrekey):
        return f"it was sealed to a prekey this profile no longer holds ({exc})"
    if isinstance(exc, MalformedEnvelope):
        return f"it is malformed ({exc})"
    if isinstance(exc, pl.MalformedPayload):
        return "its content is unreadable by this version"
    if isinstance(exc, IdentityMismatch):
        return "the sender claimed another identity (possible impersonation)"
    if isinstance(exc, TooManySkipped):
        return "too many messages were lost before it"
    return "it failed authentication (tampered with, or corrupted in transit)"

"""MessengerService: the facade the UI and the CLI talk to.

It owns the profile's store, the relay connection and the crypto sessions. Callers use its
async methods (``send_text``, ``mark_read``, ...) and read its events (:meth:`subscribe`).

Delivery guarantees, and where they come from:

* Sending: ``send_text`` commits the message and an outbox row in one transaction before it
  returns, so nothing typed is lost, online or not. The outbox drains in order whenever the
  relay is connected; each row is sealed once (ratchet state saved in the same transaction) and
  resent byte-identical until the relay answers Stored.
* Receiving: a delivered envelope is decrypted, and the plaintext, the advanced ratchet state,
  the dedupe record and the receipt to send are committed in one transaction; only then is the
  envelope acked. A crash before the ack means a redelivery, which the dedupe record turns into
  a silent re-ack: no loss, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput, KeyChangeBlocked, RelayUnavailable, TimedOut
from messenger_tui.app.models import Contact, Message
from messenger_tui.app.profile import Profile, validate_name
from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.address import decode_address, encode_address, short_fingerprint
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto import session as cs
from messenger_tui.core.crypto.safety import format_safety_number, safety_number
from messenger_tui.core.errors import (
    AddressError,
    CryptoError,
    DuplicateMessage,
    MalformedEnvelope,
    UnknownPrekey,
)
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.messages import MessageRow
from messenger_tui.storage.outbox import OutboxRow
from messenger_tui.transport.client import ConnectionState, RelayClient, StateChange
from messenger_tui.transport.errors import NotConnected, RelayRequestError, TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Replenish one-time prekeys on the relay below this many; publish this many at a time.
PREKEY_LOW_WATER = 25
PREKEY_BATCH = 100
#: Rotate the signed prekey weekly; keep old ones long enough for late first messages.
SIGNED_PREKEY_ROTATE_MS = 7 * 24 * 3600 * 1000
SIGNED_PREKEY_KEEP_MS = 60 * 24 * 3600 * 1000
#: Dedupe records outlive the relay's 30-day TTL.
DEDUPE_KEEP_MS = 35 * 24 * 3600 * 1000
#: How often long-running clients rotate prekeys and prune old records.
MAINTENANCE_INTERVAL_S = 3600.0
#: Envelopes in flight to the relay at once (pipelining; the relay answers in order).
MAX_IN_FLIGHT = 512


def _contact(row: ContactRow) -> Contact:
    return Contact(
        id=row.id,
        name=row.name,
        identity=row.identity,
        verified=row.verified,
        key_changed=row.key_changed,
        blocked=row.blocked,
        auto_added=row.auto_added,
    )


def _message(row: MessageRow) -> Message:
    return Message(
        id=row.id,
        message_id=row.message_id,
        contact_id=row.contact_id,
        outgoing=row.outgoing,
        kind=row.kind,
        text=row.body,
        sent_at_ms=row.sent_at_ms,
        received_at_ms=row.received_at_ms,
        state=row.state,
    )


@dataclass(frozen=True)
class SafetyNumber:
    contact: Contact
    digits: str  # 60 digits
    formatted: str  # groups of five


class MessengerService:
    """One profile's messenger. ``await start()`` to connect in the background (reconnecting
    forever), or ``await connect()`` for one attempt (CLI one-shots); ``await close()``."""

    def __init__(
        self,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.time,
        auto_reply_contacts: bool = False,
        connect_timeout: float = 5.0,
    ) -> None:
        self.profile = profile
        self.store = profile.store
        self.identity = profile.identity
        self._clock = clock
        self._subscribers: list[asyncio.Queue[ev.Event]] = []
        self._client = RelayClient(
            profile.relay_url,
            self.identity.public,
            self.identity.sign,
            on_frame=self._on_frame,
            on_state=self._on_state,
            on_connected=self._on_connected,
            connect_timeout=connect_timeout,
        )
        self._outbox_wakeup = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._prekey_task: asyncio.Task[None] | None = None
        self._submitted: set[int] = set()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._pending_acks: list[bytes] = []
        self._outbox_event_pending = False
        self._ack_task: asyncio.Task[None] | None = None
        self._waiting_bundle: set[bytes] = set()
        self._bundle_errors: dict[bytes, str] = {}
        self._drained = asyncio.Event()
        self._connected_once = asyncio.Event()
        self._setup_lock = asyncio.Lock()
        self._setup_done = asyncio.Event()
        self._echo_identity: bytes | None = None
        self.auto_reply_contacts = auto_reply_contacts
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        return encode_address(self.identity.public)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def relay_echo_identity(self) -> bytes | None:
        """The Echo contact's identity if the relay runs one (known after connecting)."""
        return self._echo_identity

    async def start(self) -> None:
        """Connect in the background and stay connected (backoff with jitter on failures)."""
        self._ensure_drainer()
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(self._maintenance_loop())
        await self._client.start()

    async def connect(self, timeout: float = 5.0) -> None:
        """One connection attempt for one-shot commands. Raises :class:`RelayUnavailable`."""
        self._ensure_drainer()
        try:
            await asyncio.wait_for(self._client.connect_once(), timeout)
        except (TransportError, OSError, TimeoutError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            raise RelayUnavailable(
                f"cannot reach the relay {self.profile.relay_url}: {self.last_error}"
            ) from None
        # Prekeys and presence are set up by _on_connected; wait for it so one-shot commands
        # leave the relay with our keys published.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._setup_done.wait(), timeout)

    async def close(self) -> None:
        """Flush pending acks, close the connection and stop background tasks."""
        await self._flush_acks()
        for task in (self._drainer, self._maintenance, self._prekey_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._drainer = self._maintenance = self._prekey_task = None
        await self._client.close()

    def subscribe(self) -> asyncio.Queue[ev.Event]:
        """A queue receiving every event from now on. Read it promptly (it is unbounded)."""
        queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def _emit(self, event: ev.Event) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ contacts

    def contacts(self) -> list[Contact]:
        return [_contact(r) for r in self.store.contacts.all()]

    def contact(self, name: str) -> Contact:
        """The contact called ``name``; :class:`BadInput` naming the known ones otherwise."""
        row = self.store.contacts.by_name(name)
        if row is None:
            known = ", ".join(c.name for c in self.store.contacts.all()) or "none yet"
            raise BadInput(
                f"no contact named {name!r} (known: {known}); add one with "
                "`messenger-tui contacts add ADDRESS --name NAME`"
            )
        return _contact(row)

    def add_contact(self, address: str, name: str) -> Contact:
        """Add (or update) a contact. A known name with a new address is a key change:
        sending to it stays blocked until :meth:`accept_key`."""
        try:
            identity = decode_address(address)
        except AddressError as exc:
            raise BadInput(f"bad address: {exc}") from None
        if identity == self.identity.public:
            raise BadInput("that is your own address")
        name = validate_name(name)
        with self.store.db.transaction():
            by_key = self.store.contacts.by_identity(identity)
            by_name = self.store.contacts.by_name(name)
            if by_key is not None:
                if by_key.name != name:
                    if by_name is not None:
                        raise BadInput(f"the name {name!r} is taken by another contact")
                    self.store.contacts.rename(by_key.id, name)
                self.store.contacts.confirm(by_key.id)
                row = self.store.contacts.by_id(by_key.id)
            elif by_name is not None:
                self.store.contacts.change_identity(by_name.id, identity)
                self.store.sessions.delete_peer(by_name.identity)
                row = self.store.contacts.by_id(by_name.id)
                assert row is not None
                self._insert_notice(
                    row.id,
                    f"{name}'s identity key changed. Sending is blocked until you review the "
                    "new safety number (`messenger-tui contacts verify "
                    f"{name} --accept`).",
                )
            else:
                row = self.store.contacts.insert(name, identity, self._now_ms())
        assert row is not None
        contact = _contact(row)
        self._emit(ev.ContactChanged(contact))
        return contact

    def rename_contact(self, name: str, new_name: str) -> Contact:
        contact = self.contact(name)
        new_name = validate_name(new_name)
        if (
            self.store.contacts.by_name(new_name) not in (None,)
            and new_name.lower() != name.lower()
        ):
            raise BadInput(f"the name {new_name!r} is taken")
        with self.store.db.transaction():
            self.store.contacts.rename(contact.id, new_name)
        return self.contact(new_name)

    def set_blocked(self, name: str, blocked: bool) -> Contact:
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.contacts.set_blocked(contact.id, blocked)
        return self.contact(name)

    def delete_contact(self, name: str) -> None:
        """Delete a contact with its conversation, sessions and queued messages."""
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.outbox.drop_recipient(contact.identity)
            self.store.sessions.delete_peer(contact.identity)
            self.store.contacts.delete(contact.id)

    def safety_number(self, name: str) -> SafetyNumber:
        contact = self.contact(name)
        digits = safety_number(
            self.identity.public,
            self.address.encode(),
            contact.identity,
            contact.address.encode(),
        )
        return SafetyNumber(contact, digits, format_safety_number(digits))

    def accept_key(self, name: str) -> Contact:
        """Mark the contact verified; also accepts a changed key and unblocks sending."""
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.contacts.accept_key(contact.id)
        updated = self.contact(name)
        self._emit(ev.ContactChanged(updated))
        self._outbox_wakeup.set()
        return updated

    # ------------------------------------------------------------------ messages

    def history(self, name: str, *, limit: int = 50, before_id: int | None = None) -> list[Message]:
        contact = self.contact(name)
        rows = self.store.messages.history(contact.id, limit=limit, before_id=before_id)
        return [_message(r) for r in rows]

    def unread(self) -> list[tuple[Contact, Message]]:
        """Incoming messages not yet shown to the user, oldest first."""
        out: list[tuple[Contact, Message]] = []
        for row in self.store.contacts.all():
            contact = _contact(row)
            out.extend((contact, _message(m)) for m in self.store.messages.unread_incoming(row.id))
        out.sort(key=lambda cm: cm[1].id)
        return out

    def outbox_count(self) -> int:
        return self.store.outbox.count()

    def bundle_problem(self, identity: bytes) -> str | None:
        """Why messages to ``identity`` wait (e.g. no keys published), if known."""
        return self._bundle_errors.get(identity)

    async def send_text(self, name: str, text: str) -> Message:
        """Queue a text for ``name``; it is durably stored before this returns and sent as
        soon as the relay is reachable. Watch :class:`MessageStateChanged` for progress."""
        contact = self.contact(name)
        if contact.key_changed:
            raise KeyChangeBlocked(
                f"{contact.name}'s identity key changed; review the safety number and accept "
                f"it first (`messenger-tui contacts verify {contact.name} --accept`)"
            )
        if contact.blocked:
            raise BadInput(f"{contact.name} is blocked; unblock them to send")
        if not text.strip():
            raise BadInput("an empty message is not sent")
        now = self._now_ms()
        message_id = os.urandom(16)
        try:
            body = pl.encode_payload(
                pl.Text(id=message_id, text=text, sent_at_ms=now, sender_name=self.name)
            )
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        with self.store.db.transaction():
            row = self.store.messages.insert(
                contact.id, message_id, outgoing=True, body=text, sent_at_ms=now, state="queued"
            )
            assert row is not None
            self.store.outbox.enqueue(
                contact.identity, os.urandom(16), body, "text", now, message_row=row.id
            )
        self._outbox_wakeup.set()
        self._outbox_changed_soon()
        return _message(row)

    async def mark_read(self, name: str) -> int:
        """Mark the conversation's incoming messages as seen and send a read receipt."""
        return self._mark_read(self.contact(name))

    def _mark_read(self, contact: Contact) -> int:
        unread = self.store.messages.unread_incoming(contact.id)
        if not unread:
            return 0
        with self.store.db.transaction():
            self.store.messages.mark_seen([m.id for m in unread])
            if not contact.blocked:
                self._enqueue_receipt(contact.identity, "read", [m.message_id for m in unread])
        self._outbox_wakeup.set()
        return len(unread)

    async def send_typing(self, name: str, active: bool) -> None:
        """Tell the contact we started/stopped typing (ephemeral; dropped when offline)."""
        contact = self.contact(name)
        if not self.connected or contact.key_changed or contact.blocked:
            return
        current = self.store.sessions.active(contact.identity)
        if current is None:
            return
        body = self._seal_with(contact.identity, current, pl.encode_payload(pl.Typing(active)))
        with contextlib.suppress(NotConnected):
            await self._client.signal(contact.identity, body)

    async def wait_outbox_empty(self, timeout: float, *, message_row: int | None = None) -> bool:
        """Wait until the outbox (or one message's row) is stored by the relay."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if message_row is not None:
                msg = self.store.messages.by_id(message_row)
                if msg is not None and msg.state != "queued":
                    return True
            elif self.store.outbox.count() == 0:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def wait_backlog(self, timeout: float) -> None:
        """Wait until the relay has pushed, and we have stored, everything queued."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            raise TimedOut("the relay did not finish delivering in time") from None

    # ------------------------------------------------------------------ connection callbacks

    def _on_state(self, change: StateChange) -> None:
        if change.state is not ConnectionState.CONNECTED:
            self._submitted.clear()
            self._drained.clear()
            self._setup_done.clear()
        self._emit(ev.ConnectionChanged(change.state.value, change.retry_in, change.error))

    async def _on_connected(self, auth: wire.AuthOk, challenge: wire.Challenge) -> None:
        self._echo_identity = challenge.echo
        self._submitted.clear()
        self._waiting_bundle.clear()
        self.prune()
        try:
            async with self._setup_lock:
                await self._maintain_prekeys(auth.prekeys_remaining, auth.signed_prekey_id)
                identities = [c.identity for c in self.store.contacts.all()]
                if identities:
                    await self._client.subscribe(identities)
        except (TransportError, OSError) as exc:
            log.warning("prekey/presence setup failed: %s", type(exc).__name__)
        finally:
            self._setup_done.set()
            self._outbox_wakeup.set()
        self._connected_once.set()

    async def _maintain_prekeys(self, remaining: int, relay_spk_id: int | None) -> None:
        """Rotate the signed prekey when due, top up one-time prekeys when the relay holds
        fewer than PREKEY_LOW_WATER, and publish what the relay lacks."""
        now = self._now_ms()
        newest = self.store.prekeys.newest_signed()
        with self.store.db.transaction():
            if newest is None or now - newest[2] > SIGNED_PREKEY_ROTATE_MS:
                spk_id = self.store.settings.next_counter("next_spk_id")
                spk = pk.generate_signed_prekey(self.identity, spk_id, now)
                self.store.prekeys.add_signed(spk_id, _encode_struct(spk), now)
                self.store.prekeys.prune_signed(now - SIGNED_PREKEY_KEEP_MS)
                newest = (spk_id, _encode_struct(spk), now)
            unpublished = self.store.prekeys.unpublished_one_time()
            if remaining + len(unpublished) < PREKEY_LOW_WATER:
                first = self.store.prekeys.max_one_time_id() + 1
                fresh = pk.generate_one_time_prekeys(first, PREKEY_BATCH)
                self.store.prekeys.add_one_time([(k.id, _encode_struct(k)) for k in fresh])
                unpublished = self.store.prekeys.unpublished_one_time()
        spk = _decode_struct(newest[1], pk.SignedPrekey)
        batch = [_decode_struct(d, pk.OneTimePrekey) for _, d in unpublished[:PREKEY_BATCH]]
        if relay_spk_id == spk.id and not batch:
            return
        frame = wire.PublishPrekeys(
            ref=0,
            spk_id=spk.id,
            spk=spk.public,
            spk_sig=spk.signature,
            opks=[wire.OneTimePrekeyWire(k.id, k.public) for k in batch],
        )
        await self._client.publish_prekeys(frame)
        with self.store.db.transaction():
            self.store.prekeys.mark_published([k.id for k in batch])

    async def _on_frame(self, frame: wire.RelayFrame) -> None:
        if isinstance(frame, wire.Deliver):
            self._handle_deliver(frame)
        elif isinstance(frame, wire.Drained):
            await self._flush_acks()
            self._drained.set()
            self._emit(ev.BacklogDrained())
        elif isinstance(frame, wire.SignalDeliver):
            self._handle_signal(frame)
        elif isinstance(frame, wire.Presence):
            row = self.store.contacts.by_identity(frame.identity)
            if row is not None:
                self._emit(ev.PresenceChanged(_contact(row), frame.online))
        elif isinstance(frame, wire.Error):
            self.last_error = f"{frame.code}: {frame.message}"
            log.warning("relay error %s: %s", frame.code, frame.message)

    async def _refresh_prekeys(self) -> None:
        """While connected: ask the relay how many one-time prekeys it still holds (an empty
        publish of the current signed prekey answers with the count) and top up when low."""
        async with self._setup_lock:
            newest = self.store.prekeys.newest_signed()
            if newest is None or not self._client.connected:
                return
            spk = _decode_struct(newest[1], pk.SignedPrekey)
            ok = await self._client.publish_prekeys(
                wire.PublishPrekeys(ref=0, spk_id=spk.id, spk=spk.public, spk_sig=spk.signature)
            )
            remaining = ok.prekeys_remaining if ok.prekeys_remaining is not None else 0
            await self._maintain_prekeys(remaining, spk.id)

    def _schedule_prekey_refresh(self) -> None:
        if self._prekey_task is None or self._prekey_task.done():
            self._prekey_task = asyncio.get_running_loop().create_task(self._refresh_safely())

    async def _refresh_safely(self) -> None:
        try:
            await self._refresh_prekeys()
        except (TransportError, OSError) as exc:
            log.warning("prekey refresh failed: %s", type(exc).__name__)

    async def _maintenance_loop(self) -> None:
        """Long-running clients (the UI, Echo): rotate prekeys and prune hourly."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            self.prune()
            if self._client.connected:
                await self._refresh_safely()

    # ------------------------------------------------------------------ receiving

    def _handle_deliver(self, frame: wire.Deliver) -> None:
        sender = frame.sender
        if self.store.received.seen(sender, frame.id):
            self._queue_ack(frame.id)  # a redelivery after a crash before our ack
            return
        row = self.store.contacts.by_identity(sender)
        if row is not None and row.blocked:
            with self.store.db.transaction():
                self.store.received.record(sender, frame.id, self._now_ms())
            self._queue_ack(frame.id)
            return
        try:
            envelope = cs.parse_envelope(frame.body)
            opened = self._open(sender, envelope)
        except DuplicateMessage:
            with self.store.db.transaction():
                self.store.received.record(sender, frame.id, self._now_ms())
            self._queue_ack(frame.id)
            return
        except (CryptoError, pl.MalformedPayload) as exc:
            self._record_failure(sender, frame.id, row, exc)
            self._queue_ack(frame.id)
            return
        session, plaintext, used_opk = opened
        try:
            payload = pl.decode_payload(plaintext)
        except pl.MalformedPayload as exc:
            self._record_failure(sender, frame.id, row, exc)
            self._queue_ack(frame.id)
            return
        now = self._now_ms()
        emitted: list[ev.Event] = []
        used_prekey = False
        with self.store.db.transaction():
            if row is None:
                row = self._auto_contact(sender, payload)
                emitted.append(ev.ContactChanged(_contact(row)))
            self.store.sessions.save(
                sender, session.base_key, cs.serialize_session(session), now, make_active=True
            )
            if envelope.prekey is not None:
                self.store.sessions.remember_accepted(sender, session.base_key, now)
            if used_opk is not None:
                self.store.prekeys.delete_one_time(used_opk)
                used_prekey = True
            self._apply_payload(row, payload, now, emitted)
            self.store.received.record(sender, frame.id, now)
        self._queue_ack(frame.id)
        for event in emitted:
            self._emit(event)
        if emitted:
            self._outbox_wakeup.set()
        if used_prekey:
            self._schedule_prekey_refresh()

    def _open(self, sender: bytes, envelope: cs.Envelope) -> tuple[cs.Session, bytes, int | None]:
        """Decrypt with the right session (or start one from a prekey message).

        Nothing is saved here: the caller commits the returned session with the plaintext.
        """
        base_key = cs.envelope_session_key(envelope)
        known = self.store.sessions.for_peer(sender)
        if base_key is not None:
            for key, state, _active in known:
                if key == base_key:
                    session, plaintext = cs.decrypt(cs.deserialize_session(state), envelope)
                    return session, plaintext, None
            assert envelope.prekey is not None
            if self.store.sessions.was_accepted(base_key):
                # The session this handshake started was archived away: a replay.
                raise DuplicateMessage("a handshake this profile accepted before")
            spk_data = self.store.prekeys.signed(envelope.prekey.spk_id)
            if spk_data is None:
                raise UnknownPrekey("the message uses a signed prekey this profile no longer has")
            opk = None
            if envelope.prekey.opk_id is not None:
                opk_data = self.store.prekeys.one_time(envelope.prekey.opk_id)
                if opk_data is None:
                    raise UnknownPrekey("the message uses a one-time prekey already used")
                opk = _decode_struct(opk_data, pk.OneTimePrekey)
            spk = _decode_struct(spk_data, pk.SignedPrekey)
            session, plaintext = cs.accept_session(self.identity, envelope, sender, spk, opk)
            return session, plaintext, envelope.prekey.opk_id
        last_error: CryptoError | None = None
        for _key, state, _active in known:
            try:
                session, plaintext = cs.decrypt(cs.deserialize_session(state), envelope)
            except DuplicateMessage:
                raise
            except CryptoError as exc:
                last_error = exc
                continue
            return session, plaintext, None
        if last_error is not None:
            raise last_error
        raise MalformedEnvelope("no session with this sender; its first message never arrived")

    def _auto_contact(self, sender: bytes, payload: pl.Payload) -> ContactRow:
        """A message from an unknown sender: keep it under a new contact (a message request)."""
        announced = payload.sender_name if isinstance(payload, pl.Text) else None
        base = _safe_name(announced) or f"unknown-{short_fingerprint(sender)}"
        name, n = base, 2
        while self.store.contacts.by_name(name) is not None:
            name, n = f"{base}-{n}", n + 1
        return self.store.contacts.insert(
            name, sender, self._now_ms(), auto_added=True, announced_name=announced
        )

    def _apply_payload(
        self, row: ContactRow, payload: pl.Payload, now: int, emitted: list[ev.Event]
    ) -> None:
        contact = _contact(row)
        if isinstance(payload, pl.Text):
            stored = self.store.messages.insert(
                row.id,
                payload.id,
                outgoing=False,
                body=payload.text,
                sent_at_ms=payload.sent_at_ms,
                received_at_ms=now,
                state="received",
            )
            if stored is not None:
                self._enqueue_receipt(row.identity, "delivered", [payload.id])
                emitted.append(ev.MessageReceived(contact, _message(stored)))
        elif isinstance(payload, pl.Receipt):
            state = "read" if payload.kind == "read" else "delivered"
            for row_id in self.store.messages.advance_outgoing(row.id, payload.ids, state):
                emitted.append(ev.MessageStateChanged(contact, row_id, state))
        elif isinstance(payload, pl.Typing):
            emitted.append(ev.TypingChanged(contact, payload.active))

    def _record_failure(
        self, sender: bytes, envelope_id: bytes, row: ContactRow | None, exc: Exception
    ) -> None:
        reason = _failure_reason(exc)
        log.warning("dropped envelope from %s: %s", short_fingerprint(sender), type(exc).__name__)
        with self.store.db.transaction():
            if row is not None:
                self._insert_notice(
                    row.id,
                    f"A message from {row.name} could not be opened and was dropped: {reason}.",
                )
            self.store.received.record(sender, envelope_id, self._now_ms())
        self._emit(ev.MessageFailed(_contact(row) if row else None, sender, reason))

    def _insert_notice(self, contact_id: int, text: str) -> None:
        now = self._now_ms()
        self.store.messages.insert(
            contact_id,
            os.urandom(16),
            outgoing=False,
            body=text,
            sent_at_ms=now,
            received_at_ms=now,
            state="seen",
            kind="notice",
        )

    def _handle_signal(self, frame: wire.SignalDeliver) -> None:
        row = self.store.contacts.by_identity(frame.sender)
        if row is None or row.blocked:
            return
        try:
            envelope = cs.parse_envelope(frame.body)
            if envelope.prekey is not None:
                return  # ephemeral frames never start sessions
            session, plaintext, _ = self._open(frame.sender, envelope)
            payload = pl.decode_payload(plaintext)
        except (CryptoError, pl.MalformedPayload):
            return  # ephemeral: a stale or garbled typing notice is not worth a notice
        if not isinstance(payload, pl.Typing):
            return
        with self.store.db.transaction():
            self.store.sessions.save(
                frame.sender,
                session.base_key,
                cs.serialize_session(session),
                self._now_ms(),
                make_active=True,
            )
        self._emit(ev.TypingChanged(_contact(row), payload.active))

    # ------------------------------------------------------------------ acks

    def _queue_ack(self, envelope_id: bytes) -> None:
        self._pending_acks.append(envelope_id)
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.get_running_loop().create_task(self._flush_acks_soon())

    async def _flush_acks_soon(self) -> None:
        await asyncio.sleep(0)  # coalesce the acks of one burst into one frame
        await self._flush_acks()

    async def _flush_acks(self) -> None:
        if not self._pending_acks:
            return
        ids, self._pending_acks = self._pending_acks, []
        try:
            await self._client.ack(ids)
        except (NotConnected, TransportError):
            pass  # unacked envelopes are redelivered and re-acked via the dedupe record

    # ------------------------------------------------------------------ sending

    def _enqueue_receipt(self, recipient: bytes, kind: str, ids: list[bytes]) -> None:
        payload = pl.encode_payload(pl.Receipt(kind=kind, ids=ids))  # type: ignore[arg-type]
        self.store.outbox.enqueue(recipient, os.urandom(16), payload, "receipt", self._now_ms())

    def _ensure_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain_loop())

    async def _drain_loop(self) -> None:
        while True:
            await self._outbox_wakeup.wait()
            self._outbox_wakeup.clear()
            if not self._client.connected:
                continue
            try:
                await self._drain_once()
            except (NotConnected, TransportError):
                continue
            except Exception:
                log.exception("outbox drain failed")
                await asyncio.sleep(1.0)
                self._outbox_wakeup.set()

    async def _drain_once(self) -> None:
        after = 0
        skipped_recipients: set[bytes] = set()
        while self._client.connected:
            rows = self.store.outbox.pending(after_seq=after, limit=500)
            if not rows:
                return
            for row in rows:
                after = row.seq
                if row.seq in self._submitted or row.recipient in skipped_recipients:
                    continue
                if not self._may_send_to(row.recipient):
                    skipped_recipients.add(row.recipient)
                    continue
                body = row.body
                if body is None:
                    body = await self._seal_row(row)
                    if body is None:
                        skipped_recipients.add(row.recipient)  # keep order: later rows wait
                        continue
                await self._in_flight.acquire()
                try:
                    future = self._client.submit_envelope(row.envelope_id, row.recipient, body)
                except BaseException:
                    self._in_flight.release()
                    raise
                self._submitted.add(row.seq)
                future.add_done_callback(lambda f, r=row: self._on_stored(r, f))

    def _may_send_to(self, recipient: bytes) -> bool:
        row = self.store.contacts.by_identity(recipient)
        return row is None or not (row.key_changed or row.blocked)

    async def _seal_row(self, row: OutboxRow) -> bytes | None:
        """Encrypt an outbox row once; the sealed body and the new ratchet state are saved
        together. Returns None when the recipient has no session and no published keys."""
        current = self.store.sessions.active(row.recipient)
        if current is None:
            try:
                bundle = await self._client.fetch_bundle(row.recipient)
            except RelayRequestError as exc:
                self._bundle_errors[row.recipient] = (
                    "they have not published keys on this relay yet (have they run "
                    "`messenger-tui init` with this relay and connected once?)"
                    if exc.code == wire.ErrorCode.NOT_FOUND
                    else str(exc)
                )
                return None
            # The fetch awaited: a session may have appeared meanwhile (their first message).
            current = self.store.sessions.active(row.recipient)
            if current is None:
                try:
                    session = cs.initiate_session(
                        self.identity,
                        pk.PrekeyBundle(
                            identity=bundle.identity,
                            spk_id=bundle.spk_id,
                            spk=bundle.spk,
                            spk_sig=bundle.spk_sig,
                            opk_id=bundle.opk_id,
                            opk=bundle.opk,
                        ),
                    )
                except CryptoError as exc:
                    self._bundle_errors[row.recipient] = f"their published keys are invalid: {exc}"
                    return None
                current = (session.base_key, cs.serialize_session(session))
        self._bundle_errors.pop(row.recipient, None)
        return self._seal_with(row.recipient, current, row.payload, seal_seq=row.seq)

    def _seal_with(
        self,
        recipient: bytes,
        current: tuple[bytes, bytes],
        plaintext: bytes,
        *,
        seal_seq: int | None = None,
    ) -> bytes:
        base_key, state = current
        session, body = cs.encrypt(cs.deserialize_session(state), plaintext)
        with self.store.db.transaction():
            self.store.sessions.save(
                recipient,
                base_key,
                cs.serialize_session(session),
                self._now_ms(),
                make_active=True,
            )
            if seal_seq is not None:
                self.store.outbox.seal(seal_seq, body)
        return body

    def _on_stored(self, row: OutboxRow, future: asyncio.Future[wire.Stored]) -> None:
        self._in_flight.release()
        if future.cancelled():
            self._submitted.discard(row.seq)
            return
        exc = future.exception()
        if exc is not None:
            self._submitted.discard(row.seq)
            if isinstance(exc, RelayRequestError) and exc.code == wire.ErrorCode.TOO_LARGE:
                self._fail_row(row, str(exc))
            elif isinstance(exc, RelayRequestError):
                # rate limited, mailbox full, relay fault: try again shortly, in order
                asyncio.get_running_loop().call_later(1.0, self._outbox_wakeup.set)
            return
        emitted: list[ev.Event] = []
        with self.store.db.transaction():
            self.store.outbox.remove(row.seq)
            if row.message_row is not None:
                changed = self.store.messages.advance_outgoing_row(row.message_row, "sent")
                msg = self.store.messages.by_id(row.message_row)
                if changed and msg is not None:
                    contact = self.store.contacts.by_id(msg.contact_id)
                    if contact is not None:
                        emitted.append(ev.MessageStateChanged(_contact(contact), msg.id, "sent"))
        self._submitted.discard(row.seq)
        for event in emitted:
            self._emit(event)
        self._outbox_changed_soon()

    def _outbox_changed_soon(self) -> None:
        """One OutboxChanged per event-loop turn, however many rows a burst stored."""
        if not self._outbox_event_pending and self._subscribers:
            self._outbox_event_pending = True
            asyncio.get_running_loop().call_soon(self._emit_outbox_changed)

    def _emit_outbox_changed(self) -> None:
        self._outbox_event_pending = False
        self._emit(ev.OutboxChanged(self.store.outbox.count()))

    def _fail_row(self, row: OutboxRow, reason: str) -> None:
        with self.store.db.transaction():
            self.store.outbox.remove(row.seq)
            if row.message_row is not None:
                self.store.messages.set_state(row.message_row, "failed")
        log.warning("relay refused an envelope: %s", reason)

    # ------------------------------------------------------------------ maintenance

    def prune(self) -> None:
        """Forget dedupe records older than the relay can redeliver."""
        now = self._now_ms()
        with self.store.db.transaction():
            self.store.received.prune(now - DEDUPE_KEEP_MS)
            self.store.sessions.forget_accepted_before(now - 2 * SIGNED_PREKEY_KEEP_MS)


def _safe_name(name: str | None) -> str | None:
    if not name:
        return None
    cleaned = re.sub(r"\s+", " ", "".join(ch for ch in name if ch.isprintable())).strip()
    return cleaned[:32] or None


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, MalformedEnvelope):
        return f"it is malformed ({exc})"
    if isinstance(exc, pl.MalformedPayload):
        return "its content is unreadable by this version"
    name = type(exc).__name__
    if name == "IdentityMismatch":
        return "the sender claimed another identity (possible impersonation)"
    if name == "UnknownPrekey":
        return f"it was sealed to a prekey this profile no longer holds ({exc})"
    if name == "TooManySkipped":
        return "too many messages were lost before it"
    return "it failed authentication (tampered with, or corrupted in transit)"


def _encode_struct(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


def _decode_struct(data: bytes, kind: type[T]) -> T:
    return msgspec.msgpack.decode(data, type=kind)

"""MessengerService: the facade the UI and the CLI talk to.

It owns the profile's store, the relay connection and the crypto sessions. Callers use its
async methods (``send_text``, ``mark_read``, ...) and read its events (:meth:`subscribe`).

Delivery guarantees, and where they come from:

* Sending (:mod:`messenger_tui.app.sender`): ``send_text`` commits the message and an outbox
  row in one transaction before it returns, so nothing typed is lost, online or not. The
  outbox drains in order whenever the relay is connected; each row is sealed once (ratchet
  state saved in the same transaction) and resent byte-identical until the relay answers Stored.
* Receiving (:mod:`messenger_tui.app.receiver`): the plaintext, the advanced ratchet state,
  the dedupe record and the delivery receipt are committed together before the envelope is
  acked. A crash before the ack means a redelivery, which the dedupe record turns into a silent
  re-ack: no loss, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import msgspec

from messenger_tui.app import events as ev
from messenger_tui.app import profile_keys
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.calls import AudioFactory, CallManager, MediaCarrierLink, MediaSessionLike
from messenger_tui.app.conversations import ConversationSummary, summaries, summary_for
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.errors import (
    AudioProblem,
    BadInput,
    KeyChangeBlocked,
    RelayUnavailable,
    TimedOut,
)
from messenger_tui.app.facade import SearchHit
from messenger_tui.app.models import (
    AudioDevices,
    CallStats,
    CallView,
    Contact,
    Message,
    Settings,
)
from messenger_tui.app.profile import DEFAULT_RELAY_URL, Profile, validate_name
from messenger_tui.app.receiver import Receiver, enqueue_receipt, insert_notice
from messenger_tui.app.rows import contact_model, message_model
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.settings import ProfileSettings
from messenger_tui.core import payload as pl
from messenger_tui.core import wire
from messenger_tui.core.address import decode_address, encode_address
from messenger_tui.core.calls.media_keys import MediaKeys
from messenger_tui.core.calls.states import CallInfo
from messenger_tui.core.crypto import prekeys as pk
from messenger_tui.core.crypto.safety import (
    format_safety_number,
    safety_number,
    safety_qr_payload,
)
from messenger_tui.core.errors import AddressError
from messenger_tui.core.turns import OncePerTurn
from messenger_tui.media.ports import AudioSink, AudioSource, AudioUnavailable
from messenger_tui.transport.client import ConnectionState, RelayClient, StateChange
from messenger_tui.transport.errors import NotConnected, TransportError

if TYPE_CHECKING:
    from messenger_tui.media.audio_io import LevelMonitor

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
#: Deliveries decrypted and committed together at most: one commit per batch instead of one
#: per message, yet short enough (about 0.6 ms each, ~40 ms a batch) that a UI on the same
#: event loop stays responsive during a backlog (benchmarks/ui_backlog_stall.py).
DELIVERY_BATCH = 32
#: How often the settings' mic test reports the microphone's level.
MIC_TEST_INTERVAL_MS = 100


@dataclass(frozen=True)
class SafetyNumber:
    contact: Contact
    digits: str  # 60 digits
    formatted: str  # groups of five
    qr_payload: bytes = b""  # what the safety QR code encodes (core.crypto.safety)


class MessengerService:
    """One profile's messenger. ``await start()`` to connect in the background (reconnecting
    forever), or ``await connect()`` for one attempt (CLI one-shots); ``await close()``."""

    def __init__(
        self,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.time,
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
        self._directory = ContactDirectory(self.store.contacts)
        self._settings = ProfileSettings(self.store, DEFAULT_RELAY_URL, profile.paths.identity)
        self._receiver = Receiver(self.store, self.identity, self._directory, self._now_ms)
        self._access = AccessKeys(self.store)
        self._access_task: asyncio.Task[None] | None = None
        self._sender = OutboxSender(
            self.store,
            self.identity,
            self._client,
            self._directory,
            self._now_ms,
            self._emit,
            self._outbox_changed_soon,
        )
        self._drainer: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._prekey_task: asyncio.Task[None] | None = None
        self._deliveries: list[wire.Deliver] = []
        self._deliveries_soon = OncePerTurn(self._process_deliveries, asyncio.get_running_loop)
        self._pending_acks: list[bytes] = []
        self._ack_task: asyncio.Task[None] | None = None
        self._outbox_event_soon = OncePerTurn(self._emit_outbox_changed, asyncio.get_running_loop)
        self._drained = asyncio.Event()
        self._setup_lock = asyncio.Lock()
        self._setup_done = asyncio.Event()
        self._echo_identity: bytes | None = None
        self.calls = CallManager(
            now_ms=self._now_ms,
            send_signal=self._send_call_signal,
            contact_for=self._contact_model_for,
            log_call=self._log_call,
            emit=self._emit,
            open_link=self._open_media_link,
            make_session=self._make_media_session,
            audio_factory=self.chosen_devices,
        )
        self.last_error: str | None = None
        #: Opus kb/s for the next calls, over the settings' (a headless ``--bitrate``; never
        #: stored). None: the settings decide.
        self.call_bitrate_override: int | None = None

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
        """Store what was delivered, flush acks, close the connection, stop background tasks."""
        await self.calls.close()
        self._process_deliveries()
        await self._flush_acks()
        for task in (self._drainer, self._maintenance, self._prekey_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._drainer = self._maintenance = self._prekey_task = None
        await self._client.close()

    def reconnect_now(self) -> bool:
        """Connect to the relay at once instead of waiting out the retry delay, and restart
        the backoff. True if an attempt started; False when connected, already connecting,
        or not started."""
        return self._client.reconnect_now()

    def subscribe(self) -> asyncio.Queue[ev.Event]:
        """A queue receiving every event from now on. Read it promptly (it is unbounded)."""
        queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def _emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.TypingChanged) and not self._settings.current().typing:
            return  # typing notices turned off: neither sent nor shown
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _ensure_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._sender.run())

    def _outbox_changed_soon(self) -> None:
        """One OutboxChanged per event-loop turn, however many rows a burst stored."""
        if self._subscribers:
            self._outbox_event_soon.request()

    def _emit_outbox_changed(self) -> None:
        self._emit(ev.OutboxChanged(self.store.outbox.count()))

    # ------------------------------------------------------------------ contacts

    def contacts(self) -> list[Contact]:
        return [contact_model(r) for r in self.store.contacts.all()]

    def contact(self, name: str) -> Contact:
        """The contact called ``name``; :class:`BadInput` naming the known ones otherwise."""
        row = self.store.contacts.by_name(name)
        if row is None:
            known = ", ".join(c.name for c in self.store.contacts.all()) or "none yet"
            raise BadInput(
                f"no contact named {name!r} (known: {known}); add one with "
                "`messenger-tui contacts add ADDRESS --name NAME`"
            )
        return contact_model(row)

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
                insert_notice(
                    self.store,
                    row.id,
                    f"{name}'s identity key changed. Sending is blocked until you review the "
                    "new safety number (`messenger-tui contacts verify "
                    f"{name} --accept`).",
                    self._now_ms(),
                )
            else:
                row = self.store.contacts.insert(name, identity, self._now_ms())
            assert row is not None
            if not row.blocked:
                # Adding someone grants them delivery access (docs/protocol.md).
                self._access.share_with([row.identity], self._now_ms())
        self._directory.invalidate()
        self._sender.wake()
        contact = contact_model(row)
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
        self._directory.invalidate()
        renamed = self.contact(new_name)
        self._emit(ev.ContactChanged(renamed))
        return renamed

    def set_blocked(self, name: str, blocked: bool) -> Contact:
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.contacts.set_blocked(contact.id, blocked)
            if blocked and not contact.blocked:
                # Their copy of our delivery secret stops working (docs/threat-model.md);
                # every other added contact is sent the new one.
                self._access.rotate()
                self._access.share_with_all(self._now_ms())
            elif not blocked and contact.blocked:
                self._access.share_with([contact.identity], self._now_ms())
        if blocked and not contact.blocked and self._client.connected:
            self._access_task = asyncio.get_running_loop().create_task(
                self._register_access_safely()
            )
        self._directory.invalidate()
        self._sender.wake()
        updated = self.contact(name)
        self._emit(ev.ContactChanged(updated))
        return updated

    def delete_contact(self, name: str) -> None:
        """Delete a contact with its conversation, sessions and queued messages."""
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.outbox.drop_recipient(contact.identity)
            self.store.sessions.delete_peer(contact.identity)
            self.store.contacts.delete(contact.id)
        self._directory.invalidate()

    def safety_number(self, name: str) -> SafetyNumber:
        contact = self.contact(name)
        digits = safety_number(
            self.identity.public,
            self.address.encode(),
            contact.identity,
            contact.address.encode(),
        )
        qr = safety_qr_payload(
            self.identity.public, self.address.encode(), contact.identity, contact.address.encode()
        )
        return SafetyNumber(contact, digits, format_safety_number(digits), qr)

    def accept_key(self, name: str) -> Contact:
        """Mark the contact verified; also accepts a changed key and unblocks sending."""
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.contacts.accept_key(contact.id)
        self._directory.invalidate()
        updated = self.contact(name)
        self._emit(ev.ContactChanged(updated))
        self._sender.wake()
        return updated

    def contact_by_id(self, contact_id: int) -> Contact | None:
        """The contact with this local id (ids survive renames), or None if deleted."""
        row = self.store.contacts.by_id(contact_id)
        return contact_model(row) if row is not None else None

    async def watch_presence(self) -> None:
        """Watch the presence of every contact (contacts known when the connection started are
        watched already; call this after adding one). Offline, it applies on reconnect."""
        identities = [c.identity for c in self.store.contacts.all()]
        with contextlib.suppress(NotConnected, TransportError):
            await self._client.subscribe(identities)

    # ------------------------------------------------------------------ conversations

    def conversations(self) -> list[ConversationSummary]:
        """Every conversation (one per contact), most recent activity first."""
        return summaries(self.store)

    def conversation(self, contact_id: int) -> ConversationSummary | None:
        """One conversation's summary, or None if the contact no longer exists."""
        row = self.store.contacts.by_id(contact_id)
        return summary_for(self.store, row) if row is not None else None

    @property
    def connection_state(self) -> str:
        """offline, connecting, connected or reconnecting (as in ConnectionChanged)."""
        return self._client.state.value

    # ------------------------------------------------------------------ messages

    def history(self, name: str, *, limit: int = 50, before_id: int | None = None) -> list[Message]:
        contact = self.contact(name)
        rows = self.store.messages.history(contact.id, limit=limit, before_id=before_id)
        return [message_model(r) for r in rows]

    def history_after(self, name: str, after_id: int, *, limit: int = 50) -> list[Message]:
        """The page after ``after_id`` (a local row id), oldest first."""
        contact = self.contact(name)
        rows = self.store.messages.history_after(contact.id, after_id, limit=limit)
        return [message_model(r) for r in rows]

    def history_around(self, name: str, message_id: int, *, limit: int = 50) -> list[Message]:
        """About ``limit`` messages with the row ``message_id`` in the middle, oldest first
        (where a search result opens); empty if it is not in this conversation."""
        contact = self.contact(name)
        rows = self.store.messages.history_around(contact.id, message_id, limit=limit)
        return [message_model(r) for r in rows]

    def search(self, text: str, *, name: str | None = None, limit: int = 100) -> list[SearchHit]:
        """Full-text search for what the user typed, in one conversation (``name``) or in
        all, newest first. Any text is safe (FTS5 syntax characters are taken literally)."""
        from messenger_tui.storage.messages import MATCH_END, MATCH_START

        contact_id = self.contact(name).id if name is not None else None
        hits: list[SearchHit] = []
        contacts: dict[int, Contact | None] = {}
        for row, snippet in self.store.messages.search_text(
            text, contact_id=contact_id, limit=limit
        ):
            if row.contact_id not in contacts:
                contacts[row.contact_id] = self.contact_by_id(row.contact_id)
            contact = contacts[row.contact_id]
            if contact is None:
                continue
            plain, spans = _split_marks(snippet, MATCH_START, MATCH_END)
            hits.append(SearchHit(contact, message_model(row), plain, spans))
        return hits

    def unread(self) -> list[tuple[Contact, Message]]:
        """Incoming messages not yet shown to the user: each conversation in its display
        order (the sender's), conversations merged by arrival."""
        per_contact: list[list[tuple[Contact, Message]]] = []
        for row in self.store.contacts.all():
            contact = contact_model(row)
            rows = self.store.messages.unread_incoming(row.id)
            per_contact.append([(contact, message_model(m)) for m in rows])
        return list(heapq.merge(*per_contact, key=lambda cm: cm[1].id))

    def message(self, row_id: int) -> Message | None:
        """One message by its local row id (None if it is gone)."""
        row = self.store.messages.by_id(row_id)
        return message_model(row) if row is not None else None

    def mark_shown(self, message: Message) -> bool:
        """Mark one incoming message seen, durably, without a read receipt (see
        :meth:`send_read_receipt`): what ``receive`` does right after printing it. False if
        it was not unread."""
        with self.store.db.transaction():
            return self.store.messages.mark_seen_if_unread(message.id)

    def send_read_receipt(self, name: str, message_ids: list[bytes]) -> None:
        """Queue a read receipt for these incoming messages (the same rules as
        :meth:`mark_read`: none to blocked contacts, message requests, or when read receipts
        are off)."""
        contact = self.contact(name)
        if (
            not message_ids
            or contact.blocked
            or contact.auto_added
            or not self._settings.current().read_receipts
        ):
            return
        with self.store.db.transaction():
            enqueue_receipt(self.store, contact.identity, "read", message_ids, self._now_ms())
        self._sender.wake()
        self._outbox_changed_soon()

    def outbox_count(self) -> int:
        return self.store.outbox.count()

    def bundle_problem(self, identity: bytes) -> str | None:
        """Why messages to ``identity`` wait (e.g. no keys published), if known."""
        return self._sender.bundle_problem(identity)

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
        if len(text.encode("utf-8")) > pl.MAX_TEXT_BYTES:
            raise BadInput(f"message too long: at most {pl.MAX_TEXT_BYTES // 1024} KiB of text")
        with self.store.db.transaction():
            seq = self.store.contacts.next_send_seq(contact.id, now)
            body = pl.encode_payload(
                pl.Text(
                    id=message_id,
                    text=text,
                    sent_at_ms=now,
                    sender_name=self.name,
                    access=self._access.own_secret(),
                    seq=seq,
                )
            )
            row = self.store.messages.insert(
                contact.id,
                message_id,
                outgoing=True,
                body=text,
                sent_at_ms=now,
                state="queued",
                seq=seq,
            )
            assert row is not None
            self.store.outbox.enqueue(
                contact.identity, os.urandom(16), body, "text", now, message_row=row.id
            )
        self._sender.wake()
        self._outbox_changed_soon()
        return message_model(row)

    async def mark_read(self, name: str) -> int:
        """Mark the conversation's incoming messages as seen and send a read receipt."""
        return self._mark_read(self.contact(name))

    def _mark_read(self, contact: Contact) -> int:
        unread = self.store.messages.unread_incoming(contact.id)
        if not unread:
            return 0
        now = self._now_ms()
        with self.store.db.transaction():
            self.store.messages.mark_seen([m.id for m in unread])
            # No read receipts to blocked contacts or to message requests not yet accepted:
            # a stranger does not learn that (or when) their message was read.
            # Nor when the user turned read receipts off (the local read state is kept).
            if (
                not contact.blocked
                and not contact.auto_added
                and self._settings.current().read_receipts
            ):
                enqueue_receipt(
                    self.store, contact.identity, "read", [m.message_id for m in unread], now
                )
        self._sender.wake()
        return len(unread)

    async def send_typing(self, name: str, active: bool) -> None:
        """Tell the contact we started/stopped typing (ephemeral; dropped when offline)."""
        contact = self.contact(name)
        if not self.connected or contact.key_changed or contact.blocked:
            return
        if not self._settings.current().typing:
            return
        body = self._sender.seal_ephemeral(contact.identity, pl.encode_payload(pl.Typing(active)))
        if body is None:
            return
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

    # ------------------------------------------------------------------ calls

    def accept_calls_from_strangers(self, accept: bool = True) -> None:
        """Let calls from people who are not contacts ring (for Echo; users never need it:
        a stranger's offer is dropped unread)."""
        self._receiver.calls_from_strangers = accept

    def set_audio(self, factory: AudioFactory) -> None:
        """Where calls take and play audio: ``factory()`` returns a (source, sink) pair per
        call. Defaults to the devices chosen in the settings (:meth:`chosen_devices`);
        :func:`device_audio` means those too."""
        self.calls.audio_factory = self.chosen_devices if factory is device_audio else factory

    def chosen_devices(self) -> tuple[AudioSource, AudioSink]:
        """The microphone and speaker the settings name (the system's defaults if none)."""
        settings = self._settings.current()
        return device_audio(settings.microphone or None, settings.speaker or None)

    async def audio_devices(self, *, rescan: bool = False) -> AudioDevices:
        """The input and output devices PortAudio reports, or why there are none (never
        raises). ``rescan``: look again first (a headset plugged in since the start; not
        possible while a call or a mic test has a device open, then the last list is used)."""
        from messenger_tui.media.audio_io import list_devices, refresh_devices

        def scan() -> AudioDevices:
            try:
                if rescan:
                    with contextlib.suppress(AudioUnavailable):
                        refresh_devices()
                inputs, outputs = list_devices()
            except AudioUnavailable as exc:
                return AudioDevices(problem=exc.reason, fix=exc.fix)
            problem = fix = None
            if not inputs or not outputs:
                missing = "microphone" if not inputs else "speaker"
                problem = f"no {missing} device found; calls have no audio (chat works)"
                fix = "connect one, or start a sound server (PulseAudio, PipeWire)"
            return AudioDevices(tuple(inputs), tuple(outputs), problem, fix)

        return await asyncio.to_thread(scan)

    async def start_mic_test(
        self, device: str | None, on_level: Callable[[float], None]
    ) -> MicLevelTest:
        """Open the microphone ``device`` (None: the system default) and report its level
        (0..1, about ten times a second) to ``on_level``, which runs on the device's thread
        and must not block. :class:`AudioProblem` when it cannot be opened. Stop it with
        the returned handle's ``stop()``."""
        from messenger_tui.media.audio_io import LevelMonitor

        monitor = LevelMonitor(device, on_level, interval_ms=MIC_TEST_INTERVAL_MS)
        try:
            await asyncio.to_thread(monitor.start)
        except AudioUnavailable as exc:
            raise AudioProblem(exc.reason, exc.fix) from None
        return MicLevelTest(monitor)

    def place_call(self, name: str) -> CallView:
        """Ring a contact. Raises :class:`BadInput` (blocked, key changed, already in a call)
        or :class:`RelayUnavailable` (calls need the relay now; they are never queued)."""
        contact = self.contact(name)
        if contact.blocked:
            raise BadInput(f"{contact.name} is blocked; unblock them to call")
        if contact.key_changed:
            raise KeyChangeBlocked(
                f"{contact.name}'s safety number changed; review it before calling"
            )
        if not self.connected:
            raise RelayUnavailable("not connected to the relay; calls need a live connection")
        self._check_devices()
        return self.calls.place_call(contact)

    def accept_call(self) -> None:
        """Answer the ringing call (:class:`BadInput` when none rings; :class:`AudioProblem`
        when the chosen devices are missing: the call keeps ringing, decline it)."""
        self._check_devices()
        self.calls.accept()

    def _check_devices(self) -> None:
        """With real devices, say before ringing anyone that there is no microphone or
        speaker (instead of a call that fails once answered). WAV files and Echo's loop
        need no check."""
        if self.calls.audio_factory != self.chosen_devices:
            return
        from messenger_tui.media.audio_io import resolve_device

        settings = self._settings.current()
        try:
            resolve_device(settings.microphone or None, "input")
            resolve_device(settings.speaker or None, "output")
        except AudioUnavailable as exc:
            raise AudioProblem(exc.reason, exc.fix) from None

    def decline_call(self) -> None:
        """Decline the ringing call (:class:`BadInput` when none rings)."""
        self.calls.decline()

    def hang_up(self) -> None:
        """End, cancel or decline the current call; a no-op without one."""
        self.calls.hang_up()

    def set_call_muted(self, muted: bool) -> None:
        self.calls.set_muted(muted)

    def current_call(self) -> CallView | None:
        """The live call, or the last one; None before the first."""
        return self.calls.current()

    def call_stats(self) -> CallStats | None:
        return self.calls.stats()

    async def _send_call_signal(self, peer: bytes, plaintext: bytes) -> bool:
        if not self.connected:
            return False
        try:
            if not await self._sender.ensure_session(peer):
                return False
            body = self._sender.seal_ephemeral(peer, plaintext)
            if body is None:
                return False
            await self._client.signal(peer, body)
        except (TransportError, OSError):
            return False
        return True

    def _contact_model_for(self, identity: bytes) -> Contact | None:
        row = self._directory.by_identity(identity)
        return contact_model(row) if row is not None else None

    def _log_call(self, info: CallInfo, text: str) -> Message | None:
        row = self._directory.by_identity(info.peer)
        if row is None:
            return None
        now = self._now_ms()
        with self.store.db.transaction():
            stored = self.store.messages.insert(
                row.id,
                info.call_id,
                outgoing=info.outgoing,
                body=text,
                sent_at_ms=info.started_ms,
                received_at_ms=now,
                state="seen",
                kind="call",
            )
        return message_model(stored) if stored is not None else None

    def _open_media_link(
        self,
        join_token: bytes,
        leg: int,
        on_state: Callable[[str], None],
    ) -> MediaCarrierLink:
        from messenger_tui.transport.media_link import MediaLink

        return MediaLink(
            self.profile.relay_url,
            self.identity.public,
            self.identity.sign,
            join_token=join_token,
            leg=leg,
            on_state=lambda state: on_state(state.name.lower()),
        )

    def _make_media_session(
        self,
        keys: MediaKeys,
        carrier: MediaCarrierLink,
        source: AudioSource,
        sink: AudioSink,
        on_connected: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> MediaSessionLike:
        from messenger_tui.media.codec import OpusSettings
        from messenger_tui.media.session import DEFAULT_COMPLEXITY, MediaSession

        kbps = self.call_bitrate_override or self._settings.current().call_bitrate_kbps
        bitrate = kbps * 1000
        return MediaSession(
            keys,
            carrier,
            source,
            sink,
            loop=asyncio.get_running_loop(),
            settings=OpusSettings(bitrate=bitrate, complexity=DEFAULT_COMPLEXITY),
            on_connected=on_connected,
            on_lost=on_lost,
        )

    # ------------------------------------------------------------------ settings

    def settings(self) -> Settings:
        """The profile's settings (the settings screen shows and changes them)."""
        return self._settings.current()

    def update_settings(self, **changes: bool | str | int) -> Settings:
        """Change and store settings by name (``read_receipts=False``, ``theme="nord"``);
        :class:`BadInput` for an unknown name or a wrong type (nothing is stored then)."""
        return self._settings.update(changes)

    def set_setting_defaults(self, defaults: dict[str, bool | str | int]) -> None:
        """Defaults (from the config file) for settings the profile does not store yet."""
        self._settings.set_defaults(defaults)

    async def set_relay_url(self, url: str) -> Settings:
        """Validate and store another relay URL (:class:`BadInput` saying why it is not one)
        and, if the service runs, reconnect to it now; queued messages go out there."""
        url = self._settings.set_relay_url(url)
        self._client.set_url(url)
        self.last_error = None
        if self._maintenance is not None:  # started: stay connected, to the new relay
            await self._client.close()
            await self._client.start()
        return self._settings.current()

    async def change_passphrase(self, current: str | None, new: str | None) -> Settings:
        """Re-seal the identity key file and re-encrypt the database under ``new`` (None or
        "": remove the passphrase; the database is then under a key stored with the identity
        key). ``current`` must unlock the file if it has a passphrase
        (:class:`PassphraseProblem` otherwise; nothing changes). The key derivation runs off
        the event loop; the re-encryption runs on it (it needs the database to itself: about
        0.3 s per 100,000 messages here), see :mod:`messenger_tui.app.profile_keys`."""
        key_file = self.profile.paths.identity
        new_key = await asyncio.to_thread(
            profile_keys.prepare_change, key_file, self.identity, current, new
        )
        profile_keys.commit_change(key_file, self.store, new_key)
        self._settings.forget()
        return self._settings.current()

    def set_muted(self, name: str, muted: bool) -> Contact:
        """Mute (no toast, bell or desktop notification) or unmute a contact."""
        contact = self.contact(name)
        with self.store.db.transaction():
            self.store.contacts.set_muted(contact.id, muted)
        self._directory.invalidate()
        updated = self.contact(name)
        self._emit(ev.ContactChanged(updated))
        return updated

    # ------------------------------------------------------------------ connection callbacks

    def _on_state(self, change: StateChange) -> None:
        if change.state is not ConnectionState.CONNECTED:
            self._sender.reset()
            self._drained.clear()
            self._setup_done.clear()
        self._emit(ev.ConnectionChanged(change.state.value, change.retry_in, change.error))

    async def _on_connected(self, auth: wire.AuthOk, challenge: wire.Challenge) -> None:
        self._echo_identity = challenge.echo
        self._sender.reset()
        self.prune()
        try:
            async with self._setup_lock:
                await self._maintain_prekeys(auth.prekeys_remaining, auth.signed_prekey_id)
                await self._access.register(self._client)
                identities = [c.identity for c in self.store.contacts.all()]
                if identities:
                    await self._client.subscribe(identities)
        except (TransportError, OSError) as exc:
            log.warning("prekey/presence setup failed: %s", type(exc).__name__)
        finally:
            self._setup_done.set()
            self._sender.wake()

    async def _on_frame(self, frame: wire.RelayFrame) -> None:
        if isinstance(frame, wire.Deliver):
            # Deliveries arriving together are decrypted and committed together.
            self._deliveries.append(frame)
            if len(self._deliveries) >= DELIVERY_BATCH:
                self._process_deliveries()
                # The reader would go on with the next buffered frames in this same turn;
                # let the UI (and timers) in between batches of a backlog.
                await asyncio.sleep(0)
            else:
                self._deliveries_soon.request()
            return
        self._process_deliveries()  # keep the relay's order for every other frame
        if isinstance(frame, wire.Drained):
            await self._flush_acks()
            self._drained.set()
            self._emit(ev.BacklogDrained())
        elif isinstance(frame, wire.SignalDeliver):
            signal_in = self._receiver.process_signal(frame)
            if signal_in is not None:
                if signal_in.event is not None:
                    self._emit(signal_in.event)
                if signal_in.call is not None:
                    self.calls.on_signal(frame.sender, signal_in.call)
                if signal_in.used_prekey:
                    self._schedule_prekey_refresh()
        elif isinstance(frame, wire.Presence):
            row = self._directory.by_identity(frame.identity)
            if row is not None:
                self._emit(ev.PresenceChanged(contact_model(row), frame.online))
        elif isinstance(frame, wire.Ok) and frame.prekeys_remaining is not None:
            self._schedule_prekey_refresh()  # the relay says our one-time prekeys run low
        elif isinstance(frame, wire.Error):
            self.last_error = f"{frame.code}: {frame.message}"
            log.warning("relay error %s: %s", frame.code, frame.message)

    def _process_deliveries(self) -> None:
        frames, self._deliveries = self._deliveries, []
        if not frames:
            return
        outcome = self._receiver.process(frames)
        self._pending_acks.extend(outcome.acks)
        if self._pending_acks and (self._ack_task is None or self._ack_task.done()):
            self._ack_task = asyncio.get_running_loop().create_task(self._flush_acks_soon())
        for event in outcome.events:
            self._emit(event)
        if outcome.queued_receipts or outcome.new_session:
            self._sender.wake()
        if outcome.used_prekey:
            self._schedule_prekey_refresh()

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

    # ------------------------------------------------------------------ prekeys

    async def _maintain_prekeys(self, remaining: int, relay_spk_id: int | None) -> None:
        """Rotate the signed prekey when due, top up one-time prekeys when the relay holds
        fewer than PREKEY_LOW_WATER, and publish what the relay lacks."""
        now = self._now_ms()
        newest = self.store.prekeys.newest_signed()
        with self.store.db.transaction():
            if newest is None or now - newest[2] > SIGNED_PREKEY_ROTATE_MS:
                spk_id = self.store.settings.next_counter("next_spk_id")
                fresh_spk = pk.generate_signed_prekey(self.identity, spk_id, now)
                self.store.prekeys.add_signed(spk_id, _encode_struct(fresh_spk), now)
                self.store.prekeys.prune_signed(now - SIGNED_PREKEY_KEEP_MS)
                newest = (spk_id, _encode_struct(fresh_spk), now)
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

    async def _register_access_safely(self) -> None:
        try:
            await self._access.register(self._client)
        except (TransportError, OSError) as exc:
            log.warning("delivery verifier registration failed: %s", type(exc).__name__)

    async def _maintenance_loop(self) -> None:
        """Long-running clients (the UI, Echo): rotate prekeys and prune hourly."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            self.prune()
            if self._client.connected:
                await self._refresh_safely()

    def prune(self) -> None:
        """Forget dedupe records older than the relay can redeliver."""
        now = self._now_ms()
        with self.store.db.transaction():
            self.store.received.prune(now - DEDUPE_KEEP_MS)
            self.store.sessions.forget_accepted_before(now - 2 * SIGNED_PREKEY_KEEP_MS)


def device_audio(
    microphone: str | None = None, speaker: str | None = None
) -> tuple[AudioSource, AudioSink]:
    """The microphone and speaker called so (PortAudio names; None: the system default)."""
    from messenger_tui.media.audio_io import DeviceSink, DeviceSource

    return DeviceSource(microphone), DeviceSink(speaker)


class MicLevelTest:
    """A running settings mic test (:meth:`MessengerService.start_mic_test`)."""

    def __init__(self, monitor: LevelMonitor) -> None:
        self._monitor = monitor

    @property
    def device(self) -> str | None:
        """The PortAudio name of the open microphone."""
        return self._monitor.device_name

    def stop(self) -> None:
        """Close the microphone; no level follows once this returns. Idempotent."""
        self._monitor.stop()


def _split_marks(marked: str, start: str, end: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The text without the match marks, and the spans the marks enclosed."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    opened: int | None = None
    for ch in marked:
        if ch == start:
            opened = pos
        elif ch == end:
            if opened is not None and pos > opened:
                spans.append((opened, pos))
            opened = None
        else:
            out.append(ch)
            pos += 1
    return "".join(out), tuple(spans)


def _encode_struct(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


def _decode_struct(data: bytes, kind: type[T]) -> T:
    return msgspec.msgpack.decode(data, type=kind)

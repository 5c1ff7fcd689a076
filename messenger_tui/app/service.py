"""MessengerService: the facade the UI and the CLI talk to, and the composition root.

It owns the profile's store, the relay connection and the crypto sessions, and wires the
parts that do the work; its methods check their arguments and forward. Callers use its
async methods (``send_text``, ``mark_read``, ...) and read its events (:meth:`subscribe`).

The parts, one job each: :mod:`.inbound` (frames from the relay: delivery batches, ack
coalescing, signals) over :mod:`.receiver`; :mod:`.outgoing` (texts, receipts, typing) and
:mod:`.sender` (the outbox drained in order); :mod:`.prekey_upkeep` (rotation and top-up by a
pure ``plan``, pruning); :mod:`.contact_book` (one transaction → invalidate → re-read →
``ContactChanged`` path) and :mod:`.access_keys` (delivery access); :mod:`.message_log`
(history, search, unread); :mod:`.calls` with :mod:`.call_ports`; :mod:`.audio_setup`
(devices, the mic test); :mod:`.event_bus` (subscribers); :mod:`.transfers` (files and
voice messages: upload, download, resume, progress).

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
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from messenger_tui.app import audio_setup, profile_keys
from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.audio_setup import MicLevelTest, device_audio
from messenger_tui.app.call_ports import CallPorts, make_call_manager, make_group_call_manager
from messenger_tui.app.calls import AudioFactory
from messenger_tui.app.contact_book import ContactBook, SafetyNumber
from messenger_tui.app.conversations import ConversationSummary, summaries, summary_for
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.disappearing_timer import ExpiryScheduler, TimerBook
from messenger_tui.app.errors import BadInput, RelayUnavailable, TimedOut
from messenger_tui.app.event_bus import EventBus
from messenger_tui.app.facade import SearchHit
from messenger_tui.app.group_book import GroupBook
from messenger_tui.app.group_calls import GroupCallManager
from messenger_tui.app.group_files import GroupFiles, incoming_attachment
from messenger_tui.app.group_inbound import GroupInbound
from messenger_tui.app.group_sender import GroupSender
from messenger_tui.app.group_timer import GroupTimers
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.images import CellRow
from messenger_tui.app.inbound import Inbound, InboundHooks
from messenger_tui.app.message_log import MessageLog
from messenger_tui.app.models import (
    AudioDevices,
    CallStats,
    CallView,
    Contact,
    ContactId,
    Message,
    Settings,
    TransferView,
)
from messenger_tui.app.outgoing import Outgoing, gate
from messenger_tui.app.prekey_upkeep import PrekeyUpkeep
from messenger_tui.app.profile import DEFAULT_RELAY_URL, Profile
from messenger_tui.app.receiver import Receiver
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.settings import ProfileSettings
from messenger_tui.app.transfer_files import open_with_desktop
from messenger_tui.app.transfers import TransferManager
from messenger_tui.app.voice_notes import VoiceNotes
from messenger_tui.core import disappearing as dm
from messenger_tui.core import wire
from messenger_tui.core.address import encode_address
from messenger_tui.media.ports import AudioSink, AudioSource
from messenger_tui.transport.client import ConnectionState, RelayClient, StateChange
from messenger_tui.transport.errors import NotConnected, TransportError

log = logging.getLogger(__name__)


class MessengerService:
    """One profile's messenger. ``await start()`` to connect in the background (reconnecting
    forever), or ``await connect()`` for one attempt (CLI one-shots); ``await close()``."""

    #: Group chats: create, members, send, read (:mod:`.groups`).
    groups: GroupChats
    #: Group calls: start or join, leave, participants (:mod:`.group_calls`).
    group_calls: GroupCallManager
    voice: VoiceNotes
    group_files: GroupFiles

    def __init__(
        self,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 5.0,
    ) -> None:
        self.profile = profile
        self.store = store = profile.store
        self.identity = identity = profile.identity
        self._clock = clock
        self.last_error: str | None = None
        #: Opus kb/s for the next calls, over the settings' (a headless ``--bitrate``; never
        #: stored). None: the settings decide.
        self.call_bitrate_override: int | None = None
        self._client = client = RelayClient(
            profile.relay_url,
            identity.public,
            identity.sign,
            on_frame=lambda frame: self._inbound.on_frame(frame),
            on_state=self._on_state,
            on_connected=self._on_connected,
            connect_timeout=connect_timeout,
        )
        self._directory = directory = ContactDirectory(store.contacts)
        self._settings = ProfileSettings(store, DEFAULT_RELAY_URL, profile.paths.identity)
        self._events = events = EventBus(
            lambda: self._settings.current().typing, store.outbox.count
        )
        self._emit = events.emit
        self._timers = TimerBook(store, identity.public, self._now_ms)
        self._expiry = ExpiryScheduler(store, self._now_ms, self._emit)
        # Before anything reads the store for display: what expired while the profile was
        # closed (or the app was killed) goes first, WAL included.
        self._expiry.purge_now()
        self._receiver = Receiver(store, identity, directory, self._now_ms, self._timers)
        self._access = AccessKeys(store)
        self._sender = sender = OutboxSender(
            store, identity, client, directory, self._now_ms, self._emit, events.outbox_changed_soon
        )
        self._drainer: asyncio.Task[None] | None = None
        self._upkeep = PrekeyUpkeep(store, identity, client, self._now_ms)
        self._setup_done = asyncio.Event()
        self._echo_identity: bytes | None = None
        self._contacts = ContactBook(
            store,
            identity.public,
            directory,
            self._access,
            now_ms=self._now_ms,
            emit=self._emit,
            wake_sender=sender.wake,
            access_rotated=lambda: self._access.register_soon(client),
        )
        self._log = MessageLog(store)
        self._outgoing = Outgoing(
            store,
            client,
            sender,
            self._access,
            now_ms=self._now_ms,
            own_name=lambda: self.name,
            settings=self._settings.current,
            outbox_changed=events.outbox_changed_soon,
            timers=self._timers,
            deadlines_changed=self._expiry.reschedule,
        )
        self._call_ports = CallPorts(
            store=store,
            identity=identity,
            client=client,
            sender=sender,
            directory=directory,
            now_ms=self._now_ms,
            relay_url=lambda: ",".join(self._client.urls),  # media: one node per call
            bitrate_kbps=lambda: (
                self.call_bitrate_override or self._settings.current().call_bitrate_kbps
            ),
            voice=lambda: (
                self._settings.current().echo_cancellation,
                self._settings.current().noise_suppression,
            ),
        )
        self.calls = make_call_manager(
            self._call_ports, emit=self._emit, audio_factory=self.chosen_devices
        )
        group_book = GroupBook(store, identity.public, directory, self._now_ms)
        group_timers = GroupTimers(store, group_book, self._now_ms, self._expiry.reschedule)
        self._receiver.groups = group_inbound = GroupInbound(
            store, group_book, self._now_ms, group_timers
        )
        self._group_sender = GroupSender(store, client, group_book, self._emit)
        self._group_drainer: asyncio.Task[None] | None = None
        self.groups = GroupChats(
            store,
            identity,
            group_book,
            contact=self.contact,
            own_name=lambda: self.name,
            now_ms=self._now_ms,
            emit=self._emit,
            wake=self._wake_senders,
            typing_to=self._outgoing.send_ephemeral,
            contact_of=self.contact_by_id,
            timers=group_timers,
        )
        self.group_calls = make_group_call_manager(
            self._call_ports,
            groups=self.groups.all,
            emit=self._emit,
            audio_factory=self.chosen_devices,
            other_call_busy=lambda: self.calls.busy,
        )
        self._receiver.group_member = self._is_group_member
        self._transfers = TransferManager(
            store,
            identity,
            sender,
            self._access,
            spool_dir=profile.paths.home / "transfers",
            relay_url=lambda: self.profile.relay_url,
            settings=self._settings.current,
            own_name=lambda: self.name,
            now_ms=self._now_ms,
            emit=self._emit,
            outbox_changed=events.outbox_changed_soon,
        )
        #: Files and voice messages in groups (app/group_files.py).
        self.group_files = GroupFiles(
            store,
            group_book,
            self.groups,
            self._transfers,
            own_name=lambda: self.name,
            now_ms=self._now_ms,
            emit=self._emit,
            wake=self._wake_senders,
        )
        group_inbound.attachments = functools.partial(incoming_attachment, store)
        #: Voice messages: record, send, play (app/voice_notes.py).
        self.voice = VoiceNotes(
            microphone=lambda: self.chosen_devices()[0],
            speaker=lambda: self.chosen_devices()[1],
            current_call=self.calls.current,
            send_voice=self.send_voice,
            send_group_voice=self.group_files.send_voice,
            transfer_for_message=self._transfers.for_message,
            transfer=self._transfers.view,
        )
        self._inbound = Inbound(
            self._receiver,
            client,
            directory,
            InboundHooks(
                emit=self._emit_inbound,
                wake_sender=self._wake_senders,
                refresh_prekeys=self._upkeep.schedule_refresh,
                on_call=self.calls.on_signal,
                on_relay_error=self._relay_error,
                on_group_call=self.group_calls.on_signal,
            ),
        )

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
        self._expiry.resume()
        self._upkeep.start()
        self._transfers.resume_all()
        await self._client.start()

    async def connect(self, timeout: float = 5.0) -> None:
        """One connection attempt for one-shot commands. Raises :class:`RelayUnavailable`."""
        self._ensure_drainer()
        self._expiry.resume()
        self._transfers.resume_all()
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
        await self.group_calls.close()
        await self.voice.close()
        await self._transfers.close()
        await self._inbound.close()
        self._expiry.close()
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drainer
            self._drainer = None
        if self._group_drainer is not None:
            self._group_drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._group_drainer
            self._group_drainer = None
        await self._upkeep.stop()
        await self._client.close()

    def reconnect_now(self) -> bool:
        """Connect to the relay now instead of waiting out the retry delay, and restart the
        backoff. True if an attempt started; False if connected, connecting or not started."""
        return self._client.reconnect_now()

    def subscribe(self) -> asyncio.Queue[ev.Event]:
        """A queue receiving every event from now on. Read it promptly (it is unbounded)."""
        return self._events.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[ev.Event]) -> None:
        self._events.unsubscribe(queue)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _ensure_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._sender.run())
        if self._group_drainer is None or self._group_drainer.done():
            self._group_drainer = asyncio.get_running_loop().create_task(self._group_sender.run())

    def _wake_senders(self) -> None:
        self._sender.wake()
        self._group_sender.wake()

    # ------------------------------------------------------------------ contacts

    def contacts(self) -> list[Contact]:
        return self._contacts.all()

    def contact(self, name: str) -> Contact:
        """The contact called ``name``; :class:`BadInput` naming the known ones otherwise.
        For the edges that take names (the CLI resolves its NAME arguments once, then uses
        the id); everything else takes a :data:`ContactId`."""
        return self._contacts.named(name)

    def _known(self, contact_id: ContactId) -> Contact:
        """The contact with this id as stored now; :class:`BadInput` if it was deleted."""
        contact = self._contacts.by_id(contact_id)
        if contact is None:
            raise BadInput("that contact no longer exists")
        return contact

    def add_contact(self, address: str, name: str) -> Contact:
        """Add (or update) a contact. A known name with a new address is a key change:
        sending to it stays blocked until :meth:`accept_key`."""
        return self._contacts.add(address, name)

    def rename_contact(self, contact_id: ContactId, new_name: str) -> Contact:
        return self._contacts.rename(self._known(contact_id), new_name)

    def set_blocked(self, contact_id: ContactId, blocked: bool) -> Contact:
        return self._contacts.set_blocked(self._known(contact_id), blocked)

    def delete_contact(self, contact_id: ContactId) -> None:
        """Delete a contact with its conversation, sessions and queued messages."""
        self._contacts.delete(self._known(contact_id))

    def safety_number(self, contact_id: ContactId) -> SafetyNumber:
        return self._contacts.safety_number(self._known(contact_id))

    def accept_key(self, contact_id: ContactId) -> Contact:
        """Mark the contact verified; also accepts a changed key and unblocks sending."""
        return self._contacts.accept_key(self._known(contact_id))

    def set_muted(self, contact_id: ContactId, muted: bool) -> Contact:
        """Mute (no toast, bell or desktop notification) or unmute a contact."""
        return self._contacts.set_muted(self._known(contact_id), muted)

    def contact_by_id(self, contact_id: int) -> Contact | None:
        """The contact with this local id (ids survive renames), or None if deleted."""
        return self._contacts.by_id(contact_id)

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

    def history(
        self, contact_id: ContactId, *, limit: int = 50, before_id: int | None = None
    ) -> list[Message]:
        """A page of the conversation before ``before_id`` (the newest without), oldest
        first; empty for a contact that does not exist (any more)."""
        return self._log.page(contact_id, limit=limit, before_id=before_id)

    def history_after(
        self, contact_id: ContactId, after_id: int, *, limit: int = 50
    ) -> list[Message]:
        """The page after ``after_id`` (a local row id), oldest first."""
        return self._log.page_after(contact_id, after_id, limit=limit)

    def history_around(
        self, contact_id: ContactId, message_id: int, *, limit: int = 50
    ) -> list[Message]:
        """About ``limit`` messages with the row ``message_id`` in the middle, oldest first
        (where a search result opens); empty if it is not in this conversation."""
        return self._log.page_around(contact_id, message_id, limit=limit)

    def search(
        self, text: str, *, contact_id: ContactId | None = None, limit: int = 100
    ) -> list[SearchHit]:
        """Full-text search for what the user typed, in one conversation (``contact_id``) or
        in all, newest first. Any text is safe (FTS5 syntax characters are taken literally)."""
        return self._log.search(text, contact_id=contact_id, limit=limit)

    def unread(self) -> list[tuple[Contact, Message]]:
        """Incoming messages not yet shown to the user: each conversation in its display
        order (the sender's), conversations merged by arrival."""
        return self._log.unread()

    def message(self, row_id: int) -> Message | None:
        """One message by its local row id (None if it is gone)."""
        return self._log.message(row_id)

    def mark_shown(self, message: Message) -> bool:
        """Mark one incoming message seen, durably, without a read receipt (see
        :meth:`send_read_receipt`): what ``receive`` does right after printing it. False if
        it was not unread."""
        return self._outgoing.mark_shown(message)

    def send_read_receipt(self, contact_id: ContactId, message_ids: list[bytes]) -> None:
        """Queue a read receipt for these incoming messages (the same rules as
        :meth:`mark_read`: none to blocked contacts, message requests, or when read receipts
        are off)."""
        self._outgoing.send_read_receipt(self._known(contact_id), message_ids)

    def outbox_count(self) -> int:
        return self.store.outbox.count() + self.store.groups.outbox_count()

    def bundle_problem(self, identity: bytes) -> str | None:
        """Why messages to ``identity`` wait (e.g. no keys published), if known."""
        return self._sender.bundle_problem(identity)

    async def send_text(self, contact_id: ContactId, text: str) -> Message:
        """Queue a text for the contact; it is durably stored before this returns and sent as
        soon as the relay is reachable. Watch :class:`MessageStateChanged` for progress.
        The contact is read as stored now (a rename or a key change since the caller looked
        it up applies; the key-change gate of :mod:`.outgoing` decides)."""
        return self._outgoing.send_text(self._known(contact_id), text)

    async def mark_read(self, contact_id: ContactId) -> int:
        """Mark the conversation's incoming messages as seen and send a read receipt."""
        return self._outgoing.mark_read(self._known(contact_id))

    async def send_typing(self, contact_id: ContactId, active: bool) -> None:
        """Tell the contact we started/stopped typing (ephemeral; dropped when offline)."""
        await self._outgoing.send_typing(self._known(contact_id), active)

    def disappearing_timer(self, contact_id: ContactId) -> int:
        """The conversation's disappearing-message timer in seconds (0: off)."""
        return self._timers.current(self._known(contact_id).id).seconds

    def set_disappearing_timer(self, contact_id: ContactId, seconds: int) -> int:
        """Set the conversation's disappearing-message timer (0: off; 1 s to 4 weeks) for both
        sides: stored and queued to the contact (sent as soon as the relay is reachable).
        Messages sent or read from now on disappear that long after; older ones are kept.
        :class:`BadInput` for a duration out of range, or a contact one may not write to."""
        contact = self._known(contact_id)
        gate(contact)
        try:
            changed = self._timers.set_by_user(contact, seconds)
        except dm.TimerError as exc:
            raise BadInput(str(exc)) from None
        if changed:
            self._emit(ev.TimerChanged(contact, seconds, by_me=True))
            self._sender.wake()
            self._events.outbox_changed_soon()
        return seconds

    def purge_expired(self) -> int:
        """Purge what has expired now (the scheduler does it on its own); how many went."""
        count = self._expiry.purge_now().count
        self._expiry.reschedule()
        return count

    async def wait_outbox_empty(self, timeout: float, *, message_row: int | None = None) -> bool:
        """Wait until the outbox (or one message's row) is stored by the relay."""
        return await self._outgoing.wait_stored(timeout, message_row=message_row)

    async def wait_backlog(self, timeout: float) -> None:
        """Wait until the relay has pushed, and we have stored, everything queued."""
        try:
            await asyncio.wait_for(self._inbound.drained.wait(), timeout)
        except TimeoutError:
            raise TimedOut("the relay did not finish delivering in time") from None

    # ------------------------------------------------------------------ files (app/transfers.py)

    @property
    def transfer_manager(self) -> TransferManager:
        return self._transfers

    async def send_file(self, contact_id: ContactId, path: str | Path) -> TransferView:
        """Send a file to the contact: sealed, uploaded on its own connection (resuming by
        itself), then its pointer through the outbox. Watch :class:`TransferChanged`.
        An image is re-encoded without its metadata (EXIF location) and gets a thumbnail;
        :class:`BadInput` for an unreadable file or a decompression bomb. (A group's files:
        :attr:`group_files`.)"""
        return await self._transfers.send_any(self._known(contact_id), Path(path))

    async def image_preview(
        self, message_row: int, cols: int, rows: int
    ) -> tuple[list[CellRow], bool] | None:
        """An image message's half-block preview: (cell rows, drawn from the full image)."""
        return await self._transfers.image_preview(message_row, cols, rows)

    async def send_voice(
        self, contact_id: ContactId, path: str | Path, duration_ms: int, waveform: tuple[int, ...]
    ) -> TransferView:
        """Send an Ogg Opus file (media/voice_note.py) as a voice message to the contact
        (a group's: :attr:`group_files`)."""
        return self._transfers.send_file(
            self._known(contact_id),
            Path(path),
            mime_type="audio/ogg",
            voice=(duration_ms, waveform),
        )

    def transfers(self) -> list[TransferView]:
        return self._transfers.all()

    def transfer(self, transfer_id: int) -> TransferView | None:
        return self._transfers.view(transfer_id)

    def transfer_for_message(self, message_row: int) -> TransferView | None:
        return self._transfers.for_message(message_row)

    def download_file(self, transfer_id: int) -> TransferView:
        """Download a received file now (one over the auto-download limit, or failed)."""
        return self._transfers.download(transfer_id)

    def cancel_transfer(self, transfer_id: int) -> TransferView:
        return self._transfers.cancel(transfer_id)

    def open_file(self, transfer_id: int) -> None:
        """Open a saved download with the desktop's program (``xdg-open``), on request
        only. :class:`BadInput` when it is not saved or there is no such program."""
        view = self._transfers.view(transfer_id)
        if view is None or view.status != "done" or not view.path:
            raise BadInput("that file is not downloaded yet")
        open_with_desktop(Path(view.path))

    def retry_transfer(self, transfer_id: int) -> TransferView:
        return self._transfers.retry(transfer_id)

    async def wait_transfer(self, transfer_id: int, timeout: float) -> TransferView:
        """Wait until the transfer is done, failed or cancelled (:class:`TimedOut`)."""
        return await self._transfers.wait(transfer_id, timeout)

    def set_download_dir(self, folder: str | Path | None) -> None:
        """Save received files in ``folder`` for this run (not stored; the setting
        ``download_dir`` is the lasting choice). None: back to the setting."""
        self._transfers.download_dir_override = None if folder is None else Path(folder)

    def _emit_inbound(self, event: ev.Event) -> None:
        self._emit(event)
        if isinstance(event, ev.MessageReceived | ev.GroupMessageReceived) and (
            event.message.kind in ("attachment", "voice")
        ):
            self._transfers.pump()

    # ------------------------------------------------------------------ calls and audio

    def accept_calls_from_strangers(self, accept: bool = True) -> None:
        """Let calls from people who are not contacts ring (for Echo; users never need it:
        a stranger's offer is dropped unread)."""
        self._receiver.calls_from_strangers = accept

    def set_audio(self, factory: AudioFactory) -> None:
        """Where calls take and play audio: ``factory()`` returns a (source, sink) per call;
        the default, :meth:`chosen_devices` (also meant by :func:`device_audio`)."""
        self.calls.audio_factory = self.chosen_devices if factory is device_audio else factory
        self.group_calls.audio_factory = self.calls.audio_factory

    def chosen_devices(self) -> tuple[AudioSource, AudioSink]:
        """The microphone and speaker the settings name (the system's defaults if none)."""
        return audio_setup.settings_audio(self._settings.current())

    async def audio_devices(self, *, rescan: bool = False) -> AudioDevices:
        """The devices PortAudio reports, or why there are none (:mod:`.audio_setup`)."""
        return await audio_setup.scan_devices(rescan=rescan)

    async def start_mic_test(
        self, device: str | None, on_level: Callable[[float], None]
    ) -> MicLevelTest:
        """Report microphone ``device``'s level to ``on_level`` (:mod:`.audio_setup`)."""
        return await audio_setup.start_mic_test(device, on_level)

    def place_call(self, contact_id: ContactId) -> CallView:
        """Ring a contact. Raises :class:`BadInput` (blocked, key changed, already in a call)
        or :class:`RelayUnavailable` (calls need the relay now; they are never queued)."""
        contact = self._known(contact_id)
        gate(contact, calling=True)
        if not self.connected:
            raise RelayUnavailable("not connected to the relay; calls need a live connection")
        if self.group_calls.busy:
            raise BadInput("you are in a group call; leave it first")
        self._check_devices()
        self.calls.gated = self._settings.current().talk_mode != "open"
        return self.calls.place_call(contact)

    def accept_call(self) -> None:
        """Answer the ringing call (:class:`BadInput` when none rings; :class:`AudioProblem`
        when the chosen devices are missing: the call keeps ringing, decline it)."""
        if self.group_calls.busy:
            raise BadInput("you are in a group call; leave it first")
        self._check_devices()
        self.calls.gated = self._settings.current().talk_mode != "open"
        self.calls.accept()

    def _check_devices(self) -> None:
        """With real devices, say before ringing anyone that there is no microphone or
        speaker (instead of a call that fails once answered). WAV files and Echo's loop
        need no check."""
        if self.calls.audio_factory == self.chosen_devices:
            audio_setup.check_devices(self._settings.current())

    def decline_call(self) -> None:
        """Decline the ringing call (:class:`BadInput` when none rings)."""
        self.calls.decline()

    def hang_up(self) -> None:
        """End, cancel or decline the current call; a no-op without one."""
        self.calls.hang_up()

    def set_call_muted(self, muted: bool) -> None:
        self.calls.set_muted(muted)

    def set_call_talking(self, talking: bool) -> None:
        """Open or close the call's mic gate (the talk key in hold-to-talk or toggle mode)."""
        self.calls.set_talking(talking)

    def current_call(self) -> CallView | None:
        """The live call, or the last one; None before the first."""
        return self.calls.current()

    def call_stats(self) -> CallStats | None:
        return self.calls.stats()

    # ------------------------------------------------------------------ settings

    def settings(self) -> Settings:
        """The profile's settings (the settings screen shows and changes them)."""
        return self._settings.current()

    def update_settings(self, **changes: bool | str | int) -> Settings:
        """Change and store settings by name (``read_receipts=False``, ``theme="nord"``);
        :class:`BadInput` for an unknown name or a wrong type (nothing is stored then)."""
        updated = self._settings.update(changes)
        if "talk_mode" in changes:  # the current call follows: open mic opens the gate
            self.calls.gated = updated.talk_mode != "open"
            self.calls.set_talking(not self.calls.gated)
        return updated

    def set_setting_defaults(self, defaults: dict[str, bool | str | int]) -> None:
        """Defaults (from the config file) for settings the profile does not store yet."""
        self._settings.set_defaults(defaults)

    async def set_relay_url(self, url: str) -> Settings:
        """Validate and store another relay URL (:class:`BadInput` saying why it is not one)
        and, if the service runs, reconnect to it now; queued messages go out there."""
        url = self._settings.set_relay_url(url)
        self._client.set_url(url)
        self.last_error = None
        if self._upkeep.running:  # started: stay connected, to the new relay
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

    # ------------------------------------------------------------------ connection callbacks

    def _on_state(self, change: StateChange) -> None:
        if change.state is not ConnectionState.CONNECTED:
            self._sender.reset()
            self._inbound.drained.clear()
            self._setup_done.clear()
        self._emit(ev.ConnectionChanged(change.state.value, change.retry_in, change.error))

    async def _on_connected(self, auth: wire.AuthOk, challenge: wire.Challenge) -> None:
        self._echo_identity = challenge.echo
        self._sender.reset()
        self._upkeep.prune()
        try:
            async with self._upkeep.lock:
                await self._upkeep.maintain(auth.prekeys_remaining, auth.signed_prekey_id)
                await self._access.register(self._client)
                identities = [c.identity for c in self.store.contacts.all()]
                if identities:
                    await self._client.subscribe(identities)
        except (TransportError, OSError) as exc:
            log.warning("prekey/presence setup failed: %s", type(exc).__name__)
        finally:
            self._setup_done.set()
            self._wake_senders()

    def _is_group_member(self, identity: bytes) -> bool:
        """A member of a group we are in (group call messages are taken from them)."""
        return any(
            group.is_member and any(m.identity == identity for m in group.members)
            for group in self.groups.all()
        )

    def _relay_error(self, text: str) -> None:
        self.last_error = text


if TYPE_CHECKING:  # the UI is typed against the facade protocol: the service satisfies it
    from messenger_tui.app.facade import MessengerFacade

    _conforms: type[MessengerFacade] = MessengerService

"""MessengerService: the facade the UI and the CLI talk to, and the composition root.

It owns the profile's store, the relay connection and the crypto sessions, and wires the
parts that do the work; its methods check their arguments and forward. Callers use its
async methods (``send_text``, ``mark_read``, ...) and read its events (:meth:`subscribe`).
Contacts are named by id (:data:`~messenger_tui.app.models.ContactId`).

This module holds the wiring (``__init__``), the lifecycle (start, connect, close) and the
connection callbacks; the facade's methods are grouped by what they act on in the bases of
the class, one module each: :mod:`.service_contacts` (contacts, conversations),
:mod:`.service_messages` (history, search, sending, receipts, typing, timers),
:mod:`.service_files` (files and voice messages, transfers), :mod:`.service_calls` (calls,
audio devices), :mod:`.service_settings` (settings, relay URL, passphrase), over the state
they share, declared in :mod:`.service_state`.

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
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from messenger_tui.app import events as ev
from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.call_ports import CallPorts, make_call_manager
from messenger_tui.app.contact_book import ContactBook
from messenger_tui.app.directory import ContactDirectory
from messenger_tui.app.disappearing_timer import ExpiryScheduler, TimerBook
from messenger_tui.app.errors import RelayUnavailable
from messenger_tui.app.event_bus import EventBus
from messenger_tui.app.group_calls import GroupCallManager
from messenger_tui.app.group_files import GroupFiles
from messenger_tui.app.group_wiring import wire_groups
from messenger_tui.app.groups import GroupChats
from messenger_tui.app.inbound import Inbound, InboundHooks
from messenger_tui.app.message_log import MessageLog
from messenger_tui.app.outgoing import Outgoing
from messenger_tui.app.prekey_upkeep import PrekeyUpkeep
from messenger_tui.app.profile import DEFAULT_RELAY_URL, Profile
from messenger_tui.app.receiver import Receiver
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.service_calls import CallMethods
from messenger_tui.app.service_contacts import ContactMethods
from messenger_tui.app.service_files import FileMethods
from messenger_tui.app.service_messages import MessageMethods
from messenger_tui.app.service_settings import SettingsMethods
from messenger_tui.app.service_state import ServiceState
from messenger_tui.app.settings import ProfileSettings
from messenger_tui.app.transfers import TransferManager
from messenger_tui.app.voice_notes import VoiceNotes
from messenger_tui.core import wire
from messenger_tui.core.address import encode_address
from messenger_tui.transport.client import ConnectionState, RelayClient, StateChange
from messenger_tui.transport.errors import TransportError

log = logging.getLogger(__name__)


class MessengerService(
    ContactMethods, MessageMethods, FileMethods, CallMethods, SettingsMethods, ServiceState
):
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
        group_parts = wire_groups(
            store,
            identity,
            directory,
            client,
            self._receiver,
            self._transfers,
            self._call_ports,
            now_ms=self._now_ms,
            emit=self._emit,
            wake=self._wake_senders,
            reschedule_expiry=self._expiry.reschedule,
            contact=self.contact,
            contact_of=self.contact_by_id,
            own_name=lambda: self.name,
            typing_to=self._outgoing.send_ephemeral,
            audio_factory=self.chosen_devices,
            other_call_busy=lambda: self.calls.busy,
        )
        self.groups = group_parts.chats
        self.group_calls = group_parts.calls
        #: Files and voice messages in groups (app/group_files.py).
        self.group_files = group_parts.files
        self._group_sender = group_parts.sender
        self._group_drainer: asyncio.Task[None] | None = None
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

    def _relay_error(self, text: str) -> None:
        self.last_error = text


if TYPE_CHECKING:  # the UI is typed against the facade protocol: the service satisfies it
    from messenger_tui.app.facade import MessengerFacade

    _conforms: type[MessengerFacade] = MessengerService

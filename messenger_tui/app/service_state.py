"""What the parts of the service class share: the state the composition root
(:mod:`.service`) wires, declared once for the parts that read it
(:mod:`.service_contacts`, :mod:`.service_messages`, :mod:`.service_files`,
:mod:`.service_calls`, :mod:`.service_settings`), and the one lookup they all use: a
contact by id, as stored now."""

from __future__ import annotations

from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.calls import CallManager
from messenger_tui.app.contact_book import ContactBook
from messenger_tui.app.disappearing_timer import ExpiryScheduler, TimerBook
from messenger_tui.app.errors import BadInput
from messenger_tui.app.event_bus import EventBus
from messenger_tui.app.group_calls import GroupCallManager
from messenger_tui.app.inbound import Inbound
from messenger_tui.app.message_log import MessageLog
from messenger_tui.app.models import Contact, ContactId
from messenger_tui.app.outgoing import Outgoing
from messenger_tui.app.prekey_upkeep import PrekeyUpkeep
from messenger_tui.app.profile import Profile
from messenger_tui.app.receiver import Receiver
from messenger_tui.app.sender import OutboxSender
from messenger_tui.app.settings import ProfileSettings
from messenger_tui.app.transfers import TransferManager
from messenger_tui.core.crypto.identity import IdentityKeyPair
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient


class ServiceState:
    """The service's wired parts (assigned in ``MessengerService.__init__``)."""

    profile: Profile
    store: Store
    identity: IdentityKeyPair
    #: The last relay error in words (shown by the CLI), if any.
    last_error: str | None
    calls: CallManager
    group_calls: GroupCallManager
    _client: RelayClient
    _contacts: ContactBook
    _emit: Callable[[ev.Event], None]
    _events: EventBus
    _expiry: ExpiryScheduler
    _inbound: Inbound
    _log: MessageLog
    _outgoing: Outgoing
    _receiver: Receiver
    _sender: OutboxSender
    _settings: ProfileSettings
    _timers: TimerBook
    _transfers: TransferManager
    _upkeep: PrekeyUpkeep

    @property
    def connected(self) -> bool:
        return self._client.connected

    def _known(self, contact_id: ContactId) -> Contact:
        """The contact with this id as stored now; :class:`BadInput` if it was deleted."""
        contact = self._contacts.by_id(contact_id)
        if contact is None:
            raise BadInput("that contact no longer exists")
        return contact

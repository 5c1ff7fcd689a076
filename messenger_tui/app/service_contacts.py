"""The contacts and conversations part of :class:`~messenger_tui.app.service.MessengerService`:
the contact book's changes (:mod:`.contact_book`), presence watching, the conversation list.

A part of the service class (a base of ``MessengerService``): its methods forward to the
parts the composition root (:mod:`.service`) wires; the state they use is declared in
:class:`~messenger_tui.app.service_state.ServiceState`.
"""

from __future__ import annotations

import contextlib

from messenger_tui.app.contact_book import SafetyNumber
from messenger_tui.app.conversations import ConversationSummary, summaries, summary_for
from messenger_tui.app.models import Contact, ContactId
from messenger_tui.app.service_state import ServiceState
from messenger_tui.transport.errors import NotConnected, TransportError


class ContactMethods(ServiceState):
    """Contacts by id: add, rename, block, mute, verify, delete; the conversation list."""

    def contacts(self) -> list[Contact]:
        return self._contacts.all()

    def contact(self, name: str) -> Contact:
        """The contact called ``name``; :class:`BadInput` naming the known ones otherwise.
        For the edges that take names (the CLI resolves its NAME arguments once, then uses
        the id); everything else takes a :data:`ContactId`."""
        return self._contacts.named(name)

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

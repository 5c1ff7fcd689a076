"""The messages part of :class:`~messenger_tui.app.service.MessengerService`: history and
search (:mod:`.message_log`), sending texts, receipts and typing (:mod:`.outgoing`), the
disappearing-message timer, waiting for the outbox and the backlog.

A part of the service class (a base of ``MessengerService``): its methods forward to the
parts the composition root (:mod:`.service`) wires; the state they use is declared in
:class:`~messenger_tui.app.service_state.ServiceState`.
"""

from __future__ import annotations

import asyncio

from messenger_tui.app import events as ev
from messenger_tui.app.errors import BadInput, TimedOut
from messenger_tui.app.facade import SearchHit
from messenger_tui.app.models import Contact, ContactId, Message
from messenger_tui.app.outgoing import gate
from messenger_tui.app.service_state import ServiceState
from messenger_tui.core import disappearing as dm


class MessageMethods(ServiceState):
    """Messages by contact id: history, search, sending, receipts, typing, timers."""

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

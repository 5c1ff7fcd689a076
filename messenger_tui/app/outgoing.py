"""What the user sends from a conversation: texts, read receipts, typing notices.

A text is committed with its outbox row in one transaction before :meth:`Outgoing.send_text`
returns, so nothing typed is lost, online or not; the
:class:`~messenger_tui.app.sender.OutboxSender` drains the outbox in order. Sending to a
contact whose identity key changed is refused until the new key is accepted (the one
key-change gate), and so is sending to a blocked contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from messenger_tui.app.access_keys import AccessKeys
from messenger_tui.app.disappearing_timer import TimerBook, stamp
from messenger_tui.app.errors import BadInput, KeyChangeBlocked
from messenger_tui.app.models import Contact, Message, Settings
from messenger_tui.app.receiver import enqueue_receipt
from messenger_tui.app.rows import message_model
from messenger_tui.app.sender import OutboxSender
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from messenger_tui.storage.store import Store
from messenger_tui.transport.client import RelayClient
from messenger_tui.transport.errors import NotConnected


def gate(contact: Contact, *, calling: bool = False) -> None:
    """The one check before writing to or calling ``contact``: :class:`KeyChangeBlocked`
    while its changed identity key is not accepted, :class:`BadInput` while it is blocked."""
    if calling:
        if contact.blocked:
            raise BadInput(f"{contact.name} is blocked; unblock them to call")
        if contact.key_changed:
            raise KeyChangeBlocked(
                f"{contact.name}'s safety number changed; review it before calling"
            )
        return
    if contact.key_changed:
        raise KeyChangeBlocked(
            f"{contact.name}'s identity key changed; review the safety number and accept "
            f"it first (`messenger-tui contacts verify {contact.name} --accept`)"
        )
    if contact.blocked:
        raise BadInput(f"{contact.name} is blocked; unblock them to send")


class Outgoing:
    """``own_name()`` is the name our texts carry; ``settings()`` the current settings
    (read receipts, typing); ``outbox_changed()`` asks for an OutboxChanged event."""

    def __init__(
        self,
        store: Store,
        client: RelayClient,
        sender: OutboxSender,
        access: AccessKeys,
        *,
        now_ms: Callable[[], int],
        own_name: Callable[[], str],
        settings: Callable[[], Settings],
        outbox_changed: Callable[[], None],
        timers: TimerBook | None = None,
        deadlines_changed: Callable[[], None] = lambda: None,
    ) -> None:
        #: The conversation timers; ``deadlines_changed()`` re-arms the purge timer.
        self._timers = timers
        self._deadlines_changed = deadlines_changed
        self._store = store
        self._client = client
        self._sender = sender
        self._access = access
        self._now_ms = now_ms
        self._own_name = own_name
        self._settings = settings
        self._outbox_changed = outbox_changed

    def send_text(self, contact: Contact, text: str) -> Message:
        """Store a text for ``contact`` and queue it (see the module's rules)."""
        gate(contact)
        if not text.strip():
            raise BadInput("an empty message is not sent")
        now = self._now_ms()
        message_id = os.urandom(16)
        if len(text.encode("utf-8")) > pl.MAX_TEXT_BYTES:
            raise BadInput(f"message too long: at most {pl.MAX_TEXT_BYTES // 1024} KiB of text")
        store = self._store
        with store.db.transaction():
            seq = store.contacts.next_send_seq(contact.id, now)
            timer = self._timers.current(contact.id) if self._timers is not None else None
            row_timer = timer.seconds if timer is not None else None
            body = pl.encode_payload(
                pl.Text(
                    id=message_id,
                    text=text,
                    sent_at_ms=now,
                    sender_name=self._own_name(),
                    access=self._access.own_secret(),
                    seq=seq,
                    timer=stamp(timer) if timer is not None else None,
                )
            )
            row = store.messages.insert(
                contact.id,
                message_id,
                outgoing=True,
                body=text,
                sent_at_ms=now,
                state="queued",
                seq=seq,
                expire_after_s=row_timer,
            )
            assert row is not None
            deadline = dm.expires_at_ms(row_timer, now)
            if deadline is not None:  # the sender's countdown starts now
                store.expiry.set_deadline(row.id, deadline)
            store.outbox.enqueue(
                contact.identity, os.urandom(16), body, "text", now, message_row=row.id
            )
        self._sender.wake()
        self._outbox_changed()
        if row_timer:
            self._deadlines_changed()
        return message_model(row)

    def _receipts_to(self, contact: Contact) -> bool:
        """Read receipts go to this contact: none to blocked contacts or to message requests
        not yet accepted (a stranger does not learn that, or when, their message was read),
        nor when the user turned read receipts off (the local read state is kept)."""
        return not contact.blocked and not contact.auto_added and self._settings().read_receipts

    def mark_read(self, contact: Contact) -> int:
        """Mark the conversation's incoming messages as seen and queue a read receipt."""
        unread = self._store.messages.unread_incoming(contact.id)
        if not unread:
            return 0
        now = self._now_ms()
        with self._store.db.transaction():
            self._store.messages.mark_seen([m.id for m in unread])
            self._store.expiry.start_at_read([m.id for m in unread], now)
            if self._receipts_to(contact):
                ids = [m.message_id for m in unread]
                enqueue_receipt(self._store, contact.identity, "read", ids, now)
        self._sender.wake()
        self._deadlines_changed()
        return len(unread)

    def mark_shown(self, message: Message) -> bool:
        """Mark one incoming message seen, durably, without a read receipt. False if it was
        not unread."""
        with self._store.db.transaction():
            shown = self._store.messages.mark_seen_if_unread(message.id)
            if shown:
                self._store.expiry.start_at_read([message.id], self._now_ms())
        if shown:
            self._deadlines_changed()
        return shown

    def send_read_receipt(self, contact: Contact, message_ids: list[bytes]) -> None:
        """Queue a read receipt for these incoming messages (the rules of :meth:`mark_read`)."""
        if not message_ids or not self._receipts_to(contact):
            return
        with self._store.db.transaction():
            enqueue_receipt(self._store, contact.identity, "read", message_ids, self._now_ms())
        self._sender.wake()
        self._outbox_changed()

    async def send_typing(self, contact: Contact, active: bool) -> None:
        """Tell the contact we started/stopped typing (ephemeral; dropped when offline)."""
        if not self._client.connected or contact.key_changed or contact.blocked:
            return
        await self.send_ephemeral(contact, pl.Typing(active))

    async def send_ephemeral(self, contact: Contact, payload: pl.Typing | pl.GroupTyping) -> None:
        """One typing notice to the contact (1:1 or group; ephemeral; dropped when offline,
        when the typing setting is off, or to a blocked contact or a changed key)."""
        if not self._client.connected or contact.key_changed or contact.blocked:
            return
        if not self._settings().typing:
            return
        body = self._sender.seal_ephemeral(contact.identity, pl.encode_payload(payload))
        if body is None:
            return
        with contextlib.suppress(NotConnected):
            await self._client.signal(contact.identity, body)

    async def wait_stored(self, timeout: float, *, message_row: int | None = None) -> bool:
        """Wait until the outbox (or one message's row) is stored by the relay."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if message_row is not None:
                msg = self._store.messages.by_id(message_row)
                if msg is not None and msg.state != "queued":
                    return True
            elif self._store.outbox.count() == 0:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)

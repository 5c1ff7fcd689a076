"""Disappearing messages in the service: the timer per conversation, and the one purge timer.

The rules are :mod:`messenger_tui.core.disappearing`'s; the storage is
:mod:`messenger_tui.storage.expiry`'s. Here:

* :class:`TimerBook` reads and changes a conversation's timer. A change by the user is stored,
  noted in the conversation and queued to the contact as a ``Timer`` payload in one
  transaction; a setting from the contact (a ``Timer`` payload, or the stamp every text
  carries) is merged (the highest version wins) inside the receiver's transaction.
* :class:`ExpiryScheduler` purges expired messages: once when the service is built (the store
  is open, nothing has been shown yet: a message that expired while the profile was closed
  never reaches the screen), and then at the next deadline with one ``call_later`` timer,
  re-armed whenever a deadline may have come earlier (a send, a read). Each purge publishes
  :class:`~messenger_tui.app.events.MessagesExpired` per conversation.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.models import Contact
from messenger_tui.app.rows import contact_model
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from messenger_tui.storage.contacts import ContactRow
from messenger_tui.storage.errors import StorageError
from messenger_tui.storage.expiry import Purged, contact_conversation
from messenger_tui.storage.store import Store

log = logging.getLogger(__name__)

#: Messages purged per event-loop turn by the timer (about 50 ms on a 100,000-message
#: encrypted profile, checkpoint included: docs/performance.md). The purge at start-up takes all.
PURGE_BATCH = 64


def timer_notice(who: str, seconds: int) -> str:
    if seconds <= 0:
        return f"{who} turned disappearing messages off."
    return f"{who} set disappearing messages to {dm.describe(seconds)}."


def _insert_notice(store: Store, contact_id: int, text: str, now: int) -> None:
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


def stamp(setting: dm.TimerSetting) -> pl.TimerStamp:
    """What a text says of the timer it is sent under."""
    return pl.TimerStamp(seconds=setting.seconds, version=setting.version, author=setting.author)


class TimerBook:
    """``own_identity``: this profile's identity key (the author of its changes)."""

    def __init__(self, store: Store, own_identity: bytes, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._own = own_identity
        self._now_ms = now_ms

    def current(self, contact_id: int) -> dm.TimerSetting:
        return self._store.expiry.timer(contact_conversation(contact_id))

    def set_by_user(self, contact: Contact, seconds: int) -> bool:
        """Set the timer and queue it to the contact (one transaction). False if it already
        was ``seconds`` (nothing is sent)."""
        dm.check_seconds(seconds)
        store = self._store
        now = self._now_ms()
        key = contact_conversation(contact.id)
        with store.db.transaction():
            current = store.expiry.timer(key)
            if current.seconds == seconds:
                return False
            new = dm.change(current, seconds, self._own)
            store.expiry.set_timer(key, new, now)
            _insert_notice(store, contact.id, timer_notice("You", seconds), now)
            body = pl.encode_payload(pl.Timer(seconds=new.seconds, version=new.version))
            store.outbox.enqueue(contact.identity, os.urandom(16), body, "timer", now)
        return True

    def merge_from_peer(
        self, row: ContactRow, incoming: dm.TimerSetting, now: int, events: list[ev.Event]
    ) -> dm.TimerSetting:
        """Merge a setting the contact sent (inside the receiver's transaction); a change is
        noted in the conversation and published. A setting out of bounds is ignored (and
        logged without its content). Returns the conversation's setting afterwards."""
        key = contact_conversation(row.id)
        current = self._store.expiry.timer(key)
        try:
            dm.check_incoming(current, incoming)
        except dm.TimerError as exc:
            log.warning("ignored a disappearing-message timer: %s", exc)
            return current
        merged = dm.merge(current, incoming)
        if merged == current:
            return current
        self._store.expiry.set_timer(key, merged, now)
        if merged.seconds != current.seconds:
            who = "You" if merged.author == self._own else row.name
            _insert_notice(self._store, row.id, timer_notice(who, merged.seconds), now)
            events.append(ev.TimerChanged(contact_model(row), merged.seconds, by_me=False))
        return merged

    def from_payload(self, row: ContactRow, payload: pl.Timer) -> dm.TimerSetting:
        """A ``Timer`` payload's setting: its author is the sender."""
        return dm.TimerSetting(
            version=payload.version, author=row.identity, seconds=payload.seconds
        )

    @staticmethod
    def from_stamp(value: pl.TimerStamp) -> dm.TimerSetting:
        return dm.TimerSetting(version=value.version, author=value.author, seconds=value.seconds)


class ExpiryScheduler:
    """Purges at the next deadline with one timer. ``emit`` publishes the events."""

    def __init__(
        self, store: Store, now_ms: Callable[[], int], emit: Callable[[ev.Event], None]
    ) -> None:
        self._store = store
        self._now_ms = now_ms
        self._emit = emit
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None
        self._closed = False

    def purge_now(self, *, limit: int = -1) -> Purged:
        """Delete what has expired, the ``limit`` earliest (-1: all), checkpointing the WAL when
        anything went, and publish :class:`~messenger_tui.app.events.MessagesExpired` per
        1:1 conversation and :class:`~messenger_tui.app.events.GroupMessagesExpired` per group."""
        purged = self._store.expiry.purge(self._now_ms(), limit=limit)
        for contact_id, rows in purged.rows.items():
            self._emit(ev.MessagesExpired(contact_id, tuple(rows)))
        for group_row, rows in purged.groups.items():
            self._emit(ev.GroupMessagesExpired(group_row, tuple(rows)))
        return purged

    def reschedule(self) -> None:
        """Arm the one timer for the earliest deadline (call after anything that may have set
        an earlier one). Without a running event loop (a one-shot command), nothing is armed:
        the next start purges."""
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        earliest = self._store.expiry.earliest()
        if earliest == self._armed_for and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_for = earliest
        delay = dm.next_wakeup(earliest, self._now_ms())
        if delay is not None:
            self._handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = None
        try:
            # A batch at a time: many messages expiring at once are purged over several
            # event-loop turns (the timer fires again at once while any is due).
            self.purge_now(limit=PURGE_BATCH)
        except StorageError as exc:
            # e.g. the database is busy: try again in a second rather than at once
            log.warning("purging expired messages failed: %s", type(exc).__name__)
            if not self._closed:
                self._handle = asyncio.get_running_loop().call_later(1.0, self._fire)
            return
        self.reschedule()

    def resume(self) -> None:
        """Purge on time again after :meth:`close` (the service was started again) and arm
        the timer."""
        self._closed = False
        self.reschedule()

    def close(self) -> None:
        """No purge on a timer until :meth:`resume` (the next start purges what expired)."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

"""Disappearing messages in groups: the group's timer, and the countdown of group messages.

The rules are :mod:`messenger_tui.core.disappearing`'s, as for 1:1 conversations
(:mod:`.disappearing_timer`); what differs for a group (docs/protocol.md "Disappearing
messages in groups"):

1. **One timer per group**, under the conversation key ``group:<row id>``
   (:func:`~messenger_tui.storage.expiry.group_conversation`), a versioned register: the
   highest ``(version, author)`` wins, so two members who change it at once converge on every
   member whatever the order of arrival.
2. **A change travels in the group channel**: a :class:`~messenger_tui.core.payload.GroupTimer`
   sealed once with the changer's sender key and fanned out like a text; its author is the
   member whose sender key signed it (a member cannot set a change in another's name). Every
   :class:`~messenger_tui.core.payload.GroupText` carries the setting it was sent under; a text
   without one says nothing about the timer (never "off").
3. **A change from someone who is not a member at our head is never seen**: group messages
   from non-members are dropped before they are opened (:mod:`.group_inbound` rule 3).
4. **The countdown starts at send for the sender and at read for each recipient**; the purge
   (:class:`~messenger_tui.app.disappearing_timer.ExpiryScheduler`) removes a group's expired
   messages and publishes :class:`~messenger_tui.app.events.GroupMessagesExpired` naming the
   group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from messenger_tui.app import events as ev
from messenger_tui.app.disappearing_timer import timer_notice
from messenger_tui.app.group_book import GroupBook
from messenger_tui.core import disappearing as dm
from messenger_tui.core import payload as pl
from messenger_tui.storage.expiry import group_conversation
from messenger_tui.storage.groups import GroupRow
from messenger_tui.storage.store import Store

log = logging.getLogger(__name__)


class GroupTimers:
    """``deadlines_changed`` re-arms the purge timer (a deadline may have come earlier)."""

    def __init__(
        self,
        store: Store,
        book: GroupBook,
        now_ms: Callable[[], int],
        deadlines_changed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._book = book
        self._now_ms = now_ms
        self._deadlines_changed = deadlines_changed

    def current(self, group_row: int) -> dm.TimerSetting:
        return self._store.expiry.timer(group_conversation(group_row))

    def change(self, row: GroupRow, seconds: int) -> dm.TimerSetting | None:
        """Our change of the timer, stored with its notice (inside the caller's transaction);
        None if it already was ``seconds``. The caller seals and queues the
        :class:`~messenger_tui.core.payload.GroupTimer`."""
        dm.check_seconds(seconds)
        current = self.current(row.id)
        if current.seconds == seconds:
            return None
        new = dm.change(current, seconds, self._book.me)
        self._store.expiry.set_timer(group_conversation(row.id), new, self._now_ms())
        self._book.notice(row, timer_notice("You", seconds))
        return new

    def merge_from_member(
        self,
        row: GroupRow,
        incoming: dm.TimerSetting,
        events: list[ev.Event],
        current: dm.TimerSetting | None = None,
    ) -> dm.TimerSetting:
        """Merge a setting a member sent (a ``GroupTimer``, or the stamp of a text), inside the
        receiver's savepoint; a change of the seconds is noted in the group and published. A
        setting out of bounds is ignored (logged without content). Returns the setting after.
        ``current``: the stored setting when the caller has it (else it is read)."""
        key = group_conversation(row.id)
        if current is None:
            current = self._store.expiry.timer(key)
        try:
            dm.check_incoming(current, incoming)
        except dm.TimerError as exc:
            log.warning("ignored a group disappearing-message timer: %s", exc)
            return current
        merged = dm.merge(current, incoming)
        if merged == current:
            return current
        now = self._now_ms()
        self._store.expiry.set_timer(key, merged, now)
        if merged.seconds != current.seconds:
            who = "You" if merged.author == self._book.me else self._member(row, merged.author)
            self._book.notice(row, timer_notice(who, merged.seconds))
            events.append(ev.GroupTimerChanged(self._book.model(row), merged.seconds, False))
        return merged

    @staticmethod
    def from_payload(sender: bytes, payload: pl.GroupTimer) -> dm.TimerSetting:
        """A ``GroupTimer``'s setting: its author is the member whose sender key sealed it."""
        return dm.TimerSetting(version=payload.version, author=sender, seconds=payload.seconds)

    def start_sent(self, message_row: int, seconds: int, now: int) -> None:
        """Our own message, stored under ``seconds``: its countdown starts at the send."""
        deadline = dm.expires_at_ms(seconds, now)
        if deadline is not None:
            self._store.expiry.set_deadline(message_row, deadline)

    def start_read(self, message_rows: list[int]) -> None:
        """Incoming messages were shown: those stored under a timer start counting now."""
        if message_rows:
            self._store.expiry.start_at_read(message_rows, self._now_ms())

    def rearm(self) -> None:
        """Call after a transaction that may have set an earlier deadline."""
        if self._deadlines_changed is not None:
            self._deadlines_changed()

    def _member(self, row: GroupRow, identity: bytes) -> str:
        announced = self._store.groups.member_announced_name(row.id, identity)
        return self._book.member_name(row.id, identity, announced)

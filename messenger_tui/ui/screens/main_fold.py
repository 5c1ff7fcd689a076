"""What a burst of service events does to the main screen, decided without the screen.

:func:`fold` reads a batch of events and what the screen shows now (:class:`FoldState`) and
returns one :class:`ScreenUpdate`: which conversations to re-read, which messages to add to
the open view, what to announce, whether the header and status line need redrawing. It does
no I/O and touches no widget, so it is unit-tested without an app; ``MainScreen`` applies the
update with one refresh of each affected widget (a backlog of thousands of messages never
re-renders per message).

Rules:

- A message for the open conversation goes to the view; one for another conversation, or
  one that arrives while reading is not allowed (terminal unfocused, another screen on top),
  is announced (toast, bell, desktop notification as the settings say).
- When the view shows an older window (``view_has_newer``: a search result, or far back), new
  messages are not on screen: they are announced, not appended, unless the view reloads anyway.
- For typing notices, presence, the connection, the call and its statistics only the last
  event of a burst counts; a message from a contact ends their typing notice.
- A change of our own connection redraws the header and the list: a contact's presence is
  known only while we are connected.
- Disappearing messages: a timer change redraws the header and the view (its notice line);
  expired messages leave the open view (it is re-read from the store, where they are gone)
  and their conversation's preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from messenger_tui.app import events as ev
from messenger_tui.app.models import CallStats, CallView, Contact, Message
from messenger_tui.core.message_states import MessageState


@dataclass(frozen=True)
class FoldState:
    """What the fold needs to know about the screen."""

    current: Contact | None
    reading_allowed: bool
    view_has_newer: bool = False


@dataclass
class ScreenUpdate:
    """What the screen does for one burst of events (see the module's rules)."""

    #: Conversations whose summary is re-read (unread count, preview).
    touched: set[int] = field(default_factory=set)
    #: Every summary is re-read (a contact was added, renamed, blocked, deleted...).
    all_contacts: bool = False
    #: Messages appended to the open view.
    new_for_view: list[Message] = field(default_factory=list)
    #: New states of own messages in the open view (row id -> state).
    states: dict[int, MessageState] = field(default_factory=dict)
    #: The open view is reloaded from the store.
    reload_view: bool = False
    #: The open conversation's contact changed (renamed, blocked...): the new one.
    current: Contact | None = None
    #: Messages announced: outside the open conversation or not seen now.
    announce: list[tuple[Contact, Message]] = field(default_factory=list)
    #: Typing notices started (True) or ended (False), per contact; the last one counts.
    typing: dict[int, bool] = field(default_factory=dict)
    #: Presence per contact; the last one counts.
    presence: dict[int, bool] = field(default_factory=dict)
    #: Our own connection's last change.
    connection: ev.ConnectionChanged | None = None
    #: Messages waiting in the outbox, when it changed.
    outbox_waiting: int | None = None
    call: CallView | None = None
    stats: CallStats | None = None
    header: bool = False
    status: bool = False
    #: The list is redrawn from the summaries it has (presence dots, typing).
    relist: bool = False


def fold(batch: list[ev.Event], state: FoldState) -> ScreenUpdate:
    """One update for a burst of events (see the module's rules)."""
    update = ScreenUpdate()
    current_id = state.current.id if state.current is not None else None
    for event in batch:
        _fold_one(event, update, current_id, state.reading_allowed)
    if update.new_for_view and state.view_has_newer and not update.reload_view:
        current = update.current or state.current
        if current is not None:
            update.announce.extend((current, m) for m in update.new_for_view)
        update.new_for_view = []
    update.header = update.header or update.reload_view
    return update


def _fold_one(event: ev.Event, u: ScreenUpdate, current_id: int | None, reading: bool) -> None:
    if isinstance(event, ev.MessageReceived):
        cid = event.contact.id
        u.touched.add(cid)
        u.typing[cid] = False
        if cid == current_id:
            u.new_for_view.append(event.message)
        if cid != current_id or not reading:
            u.announce.append((event.contact, event.message))
    elif isinstance(event, ev.MessageStateChanged):
        u.touched.add(event.contact.id)
        if event.contact.id == current_id:
            u.states[event.message_row] = event.state
    elif isinstance(event, ev.MessageFailed):
        if event.contact is not None:
            u.touched.add(event.contact.id)
            u.reload_view = u.reload_view or event.contact.id == current_id
    elif isinstance(event, ev.ContactChanged):
        u.all_contacts = True
        if event.contact.id == current_id:
            u.current = event.contact
            u.reload_view = True
    elif isinstance(event, ev.TypingChanged):
        u.typing[event.contact.id] = event.active
        u.touched.add(event.contact.id)
        u.header = u.header or event.contact.id == current_id
    elif isinstance(event, ev.PresenceChanged):
        u.presence[event.contact.id] = event.online
        u.touched.add(event.contact.id)
        u.header = u.header or event.contact.id == current_id
    elif isinstance(event, ev.ConnectionChanged):
        u.connection = event
        u.status = u.header = u.relist = True
    elif isinstance(event, ev.CallChanged):
        u.call = event.call
    elif isinstance(event, ev.CallStatsChanged):
        u.stats = event.stats
    elif isinstance(event, ev.OutboxChanged):
        u.outbox_waiting = event.waiting
        u.status = True
    elif isinstance(event, ev.TimerChanged):
        u.touched.add(event.contact.id)
        if event.contact.id == current_id:  # the header shows the timer; the view its notice
            u.header = u.reload_view = True
    elif isinstance(event, ev.MessagesExpired):
        u.touched.add(event.contact_id)
        u.reload_view = u.reload_view or event.contact_id == current_id

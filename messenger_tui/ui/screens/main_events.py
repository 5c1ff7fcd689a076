"""The main screen's event handling: a burst of service events, folded by
:func:`~messenger_tui.ui.screens.main_fold.fold` (pure) into one
:class:`~messenger_tui.ui.screens.main_fold.ScreenUpdate`, carried out on the widgets (the
open conversation, the list, the call pane, the status line) with one refresh each, and the
notifications it calls for."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from messenger_tui.app import events as ev
from messenger_tui.app.models import UNREAD_KINDS, Contact, Message
from messenger_tui.ui.notify import announce
from messenger_tui.ui.screens import transfer_actions
from messenger_tui.ui.screens.group_chat import announce_group, announce_group_call
from messenger_tui.ui.screens.main_fold import FoldState, ScreenUpdate, fold
from messenger_tui.ui.widgets.call_pane import CallPane
from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen


async def apply_events(screen: MainScreen, batch: list[ev.Event]) -> None:
    """Apply a burst of service events with one refresh of each affected widget (what to do
    is decided by :func:`~messenger_tui.ui.screens.main_fold.fold`, pure; this carries it
    out on the screen's widgets)."""
    update = fold(batch, FoldState(screen.current, screen.reading_allowed, screen.view.has_newer))
    changed = [e.transfer for e in batch if isinstance(e, ev.TransferChanged)]
    transfer_actions.transfers_changed(screen, changed)
    screen.voice_controls.transfers_changed(changed)
    for cid, active in update.typing.items():
        screen.typing.set(cid, active)
    screen.presence.update(update.presence)
    if update.connection is not None:
        screen.status.set_connection(update.connection)
    if update.outbox_waiting is not None:
        screen.status.outbox_waiting = update.outbox_waiting
    await _apply_to_view(screen, update)
    if update.announce:
        _announce(screen, update.announce)
    if update.call is not None:
        screen.call_changed(update.call)
    if update.stats is not None:  # after the call: a new call resets the pane's stats
        screen.query_one(CallPane).show_stats(update.stats)
    await _apply_to_list(screen, update)
    if any(isinstance(e, ev.GroupChanged | ev.GroupMessageReceived) for e in batch):
        if screen.app.screen is screen:  # covered (a group open): rebuilt when it resumes
            screen.show_summaries()  # groups: their rows and unread counts
        announce_group(screen.app, screen.service.settings(), batch)
    announce_group_call(screen.app, screen.service.settings(), batch)
    if update.header:
        screen.refresh_header()
    if update.status:
        screen.status.redraw()


async def _apply_to_view(screen: MainScreen, update: ScreenUpdate) -> None:
    view = screen.view
    if update.current is not None:
        screen.current = update.current
        view.set_their_name(update.current.name)
    if update.reload_view and screen.current is not None:
        view.reload(screen.history_page(screen.current.id, None, PAGE_SIZE), page_size=PAGE_SIZE)
    elif update.new_for_view:
        if view.unread_marker is None and not screen.reading_allowed:
            first = next((m for m in update.new_for_view if m.kind in UNREAD_KINDS), None)
            if first is not None:
                view.set_unread_marker(first.id)
        view.append(update.new_for_view)
    if update.states:
        view.update_states(update.states)
    if update.new_for_view and screen.reading_allowed:
        await screen.mark_current_read()


async def _apply_to_list(screen: MainScreen, update: ScreenUpdate) -> None:
    if update.all_contacts:
        known = set(screen.summaries)
        screen.refresh_all_summaries()
        if set(screen.summaries) - known:  # a new contact (e.g. a message request)
            await screen.service.watch_presence()
    elif update.touched:
        screen.refresh_summaries(update.touched)
    elif update.relist:
        screen.show_summaries()


def _announce(screen: MainScreen, items: list[tuple[Contact, Message]]) -> None:
    """Toasts, the bell and desktop notifications for new messages outside the visible
    conversation, as the settings say (ui/notify.py); none for muted contacts."""
    texts = [(c, m) for c, m in items if m.kind in UNREAD_KINDS and not _is_muted(screen, c)]
    if texts:
        settings = screen.service.settings()
        if any(screen.timer_of(c) > 0 for c, _ in texts):
            # A disappearing message's text must not outlive it in the desktop's
            # notification history: the notification says only that one arrived.
            settings = dataclasses.replace(settings, private=True)
        announce(screen.app, screen.notifier, settings, texts)


def _is_muted(screen: MainScreen, contact: Contact) -> bool:
    summary = screen.summaries.get(contact.id)
    return summary.contact.muted if summary is not None else contact.muted

"""The main screen: conversation list, conversation view, composer, header and status line.

Everything on it is driven by the service's events: a worker reads the queue from
``service.subscribe()`` and applies each burst of events at once (one list refresh, one view
update), so a backlog of thousands of messages never re-renders per message.
"""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import ConversationSummary, MessengerFacade, SearchHit
from messenger_tui.app.models import CallStats, CallView, Contact, Message
from messenger_tui.ui.bindings import focus_bindings
from messenger_tui.ui.formatting import connection_text, short_address
from messenger_tui.ui.notify import DesktopNotifier, announce
from messenger_tui.ui.screens.incoming_call import IncomingCallScreen
from messenger_tui.ui.widgets.call_pane import CallPane
from messenger_tui.ui.widgets.composer import Composer
from messenger_tui.ui.widgets.conversation_list import ConversationList, contact_id_of
from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE, ConversationView
from messenger_tui.ui.widgets.footer import FittingFooter

#: A "typing" notice disappears after this long without a refresh (the sender re-announces
#: every few seconds while typing, and says when it stops).
TYPING_SHOW_S = 8.0
#: Events applied per step at most, then the event loop gets a turn (input, repaint). A
#: message shown costs about 0.6 ms (measured: benchmarks/ui_backlog_stall.py), so a step stays
#: near 40 ms and a backlog never freezes typing.
EVENT_BATCH = 32

#: Footer keys left out first when the terminal is too narrow for all (actions, least
#: important first); they keep working and F1 / Ctrl+P list them.
FOOTER_DROP_ORDER = ("own_address", "add_contact", "settings", "safety_number", "newline")

NO_CONTACTS_HINT = "No contacts yet.\nPress Ctrl+N to add one."
PICK_HINT = "Pick a conversation on the left (↑ ↓ Enter), or add a contact with Ctrl+N."


class MainScreen(Screen[None], inherit_bindings=False):
    BINDINGS = [
        *focus_bindings(),
        Binding("ctrl+n", "add_contact", "Add", id="contacts.add",
                tooltip="Add a contact by pasting their address"),
        Binding("f2", "safety_number", "Verify", id="contact.safety_number",
                tooltip="Show the safety number of the open conversation and verify the "
                        "contact (or accept their changed key)"),
        Binding("f3", "own_address", "Address", id="contacts.own_address",
                tooltip="Show your address with a QR code, to share it"),
        Binding("ctrl+f", "search", "Search", show=False, priority=True, id="search.open",
                tooltip="Search messages: in the open conversation (Ctrl+T in the search: "
                        "in all of them)"),
        Binding("alt+r", "rename_contact", "Rename", show=False, priority=True,
                id="contact.rename", tooltip="Rename the contact of the open conversation"),
        Binding("alt+b", "toggle_block", "Block", show=False, priority=True,
                id="contact.block",
                tooltip="Block or unblock the contact of the open conversation (a blocked "
                        "contact's messages and typing notices are dropped unseen)"),
        Binding("alt+d", "delete_contact", "Delete", show=False, priority=True,
                id="contact.delete",
                tooltip="Delete the contact of the open conversation with the conversation "
                        "(asks first)"),
        Binding("f5", "call", "Call", id="call.start",
                tooltip="Call the contact of the open conversation (voice, end-to-end "
                        "encrypted); calling Echo is a sound test"),
        # priority: the composer (a TextArea) binds F6 and F7 too (select line / all)
        Binding("f6", "mute", "Mute", id="call.mute", priority=True,
                tooltip="Mute or unmute your microphone in the call"),
        Binding("f7", "hang_up", "Hang up", id="call.hang_up", priority=True,
                tooltip="End the call (or cancel it while it rings)"),
        Binding("escape", "focus_conversations", "Conversations", show=False,
                id="focus.conversations", tooltip="Move the focus to the conversation list"),
        Binding("alt+up", "cycle(-1)", "Previous chat", show=False,
                id="conversations.previous", tooltip="Open the conversation above"),
        Binding("alt+down", "cycle(1)", "Next chat", show=False,
                id="conversations.next", tooltip="Open the conversation below"),
        Binding("pageup", "scroll_messages(-1)", "Older", show=False, priority=True,
                id="messages.page_up", tooltip="Scroll the conversation one page up (older)"),
        Binding("pagedown", "scroll_messages(1)", "Newer", show=False, priority=True,
                id="messages.page_down",
                tooltip="Scroll the conversation one page down (newer)"),
        Binding("f9", "settings", "Settings", id="app.settings",
                tooltip="Settings: notifications, receipts, typing, theme, call devices, relay, "
                        "passphrase"),
        Binding("alt+m", "toggle_mute", "Mute chat", show=False, id="conversation.mute",
                tooltip="Mute or unmute the open conversation (no notices, bell or desktop "
                        "notifications; unread counts still update)"),
    ]  # fmt: skip

    def __init__(
        self, service: MessengerFacade, events: asyncio.Queue[ev.Event] | None = None
    ) -> None:
        """``events``: a queue from ``service.subscribe()`` taken before the service started
        (so that no early event is missed); subscribes itself when None."""
        super().__init__()
        self.service = service
        self.current: Contact | None = None
        self.presence: dict[int, bool] = {}
        self.typing: dict[int, Timer] = {}
        self.outbox_waiting = 0
        self.conn_state = "offline"
        self.conn_error: str | None = None
        self._retry_deadline: float | None = None
        self._countdown: Timer | None = None
        self._summaries: dict[int, ConversationSummary] = {}
        self._drafts: dict[int, str] = {}
        self._filter = ""
        self._queue: asyncio.Queue[ev.Event] | None = events
        #: Desktop notifications, written to the real terminal (tests swap ``write``).
        self.notifier = DesktopNotifier(self._write_to_terminal)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Input(
                    placeholder="Filter conversations…", id="filter", compact=True,
                    select_on_focus=False,
                )  # fmt: skip
                yield ConversationList(id="conversations")
                yield Static(NO_CONTACTS_HINT, id="no-contacts")
            with Vertical(id="chat"):
                yield Static(id="chat-header")
                yield CallPane(id="call-pane")
                yield ConversationView(id="messages")
                yield Static(id="key-banner")
                yield Composer(id="composer")
        yield Static(id="status")
        yield FittingFooter(drop_order=FOOTER_DROP_ORDER)

    @property
    def conversation_list(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def view(self) -> ConversationView:
        return self.query_one(ConversationView)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    def on_mount(self) -> None:
        if self._queue is None:
            self._queue = self.service.subscribe()
        self.outbox_waiting = self.service.outbox_count()
        self.conn_state = self.service.connection_state
        self.view.clear(PICK_HINT)
        self._refresh_all_summaries()
        self._refresh_header()
        self._refresh_status()
        self.watch(self.app, "app_focus", self._on_app_focus_changed, init=False)
        self.conversation_list.focus()
        self._consume_events(self._queue)

    def on_unmount(self) -> None:
        if self._queue is not None:
            self.service.unsubscribe(self._queue)

    # ------------------------------------------------------------------ events from the service

    @work(exclusive=True, group="service-events")
    async def _consume_events(self, queue: asyncio.Queue[ev.Event]) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < EVENT_BATCH:
                batch.append(queue.get_nowait())
            try:
                await self.apply_events(batch)
            except NoMatches:
                return  # the screen is being torn down (app exit): its widgets are gone
            await asyncio.sleep(0)

    async def apply_events(self, batch: list[ev.Event]) -> None:
        """Apply a burst of service events with one refresh of each affected widget."""
        touched: set[int] = set()
        all_contacts = False
        new_for_view: list[Message] = []
        states: dict[int, str] = {}
        reload_view = False
        header = False
        status = False
        current_id = self.current.id if self.current else None
        incoming_elsewhere: list[tuple[Contact, Message]] = []
        last_call: CallView | None = None
        last_stats: CallStats | None = None
        for event in batch:
            if isinstance(event, ev.MessageReceived):
                cid = event.contact.id
                touched.add(cid)
                self._stop_typing(cid)
                if cid == current_id:
                    new_for_view.append(event.message)
                if cid != current_id or not self.reading_allowed:
                    incoming_elsewhere.append((event.contact, event.message))
            elif isinstance(event, ev.MessageStateChanged):
                touched.add(event.contact.id)
                if event.contact.id == current_id:
                    states[event.message_row] = event.state
            elif isinstance(event, ev.MessageFailed):
                if event.contact is not None:
                    touched.add(event.contact.id)
                    reload_view = reload_view or event.contact.id == current_id
            elif isinstance(event, ev.ContactChanged):
                all_contacts = True
                if event.contact.id == current_id:
                    self.current = event.contact
                    self.view.set_their_name(event.contact.name)
                    reload_view = True
                    header = True
            elif isinstance(event, ev.TypingChanged):
                cid = event.contact.id
                if event.active:
                    self._start_typing(cid)
                else:
                    self._stop_typing(cid)
                touched.add(cid)
                header = header or cid == current_id
            elif isinstance(event, ev.PresenceChanged):
                self.presence[event.contact.id] = event.online
                touched.add(event.contact.id)
                header = header or event.contact.id == current_id
            elif isinstance(event, ev.ConnectionChanged):
                self._set_connection(event)
                status = True
            elif isinstance(event, ev.CallChanged):
                last_call = event.call  # only the latest state of a burst matters
            elif isinstance(event, ev.CallStatsChanged):
                last_stats = event.stats
            elif isinstance(event, ev.OutboxChanged):
                self.outbox_waiting = event.waiting
                status = True
        view = self.view
        if new_for_view and view.has_newer and not reload_view:
            # The view shows an older window (a search result, or far back): the new
            # messages are not on screen, so they are announced, not marked read.
            if self.current is not None:
                incoming_elsewhere.extend((self.current, m) for m in new_for_view)
            new_for_view = []
        if reload_view and self.current is not None:
            view.reload(self._history(self.current.id, None, PAGE_SIZE), page_size=PAGE_SIZE)
        elif new_for_view:
            if view.unread_marker is None and not self.reading_allowed:
                first = next((m for m in new_for_view if m.kind == "text"), None)
                if first is not None:
                    view.set_unread_marker(first.id)
            view.append(new_for_view)
        if states:
            view.update_states(states)
        if new_for_view and self.reading_allowed:
            await self.mark_current_read()
        if incoming_elsewhere:
            self._announce(incoming_elsewhere)
        if last_call is not None:
            self._call_changed(last_call)
        if last_stats is not None:  # after the call: a new call resets the pane's stats
            self.query_one(CallPane).show_stats(last_stats)
        if all_contacts:
            known = set(self._summaries)
            self._refresh_all_summaries()
            if set(self._summaries) - known:  # a new contact (e.g. a message request)
                await self.service.watch_presence()
        elif touched:
            self._refresh_summaries(touched)
        if header or reload_view:
            self._refresh_header()
        if status:
            self._refresh_status()

    def _announce(self, items: list[tuple[Contact, Message]]) -> None:
        """Toasts, the bell and desktop notifications for new messages outside the visible
        conversation, as the settings say (ui/notify.py); none for muted contacts."""
        texts = [(c, m) for c, m in items if m.kind == "text" and not self._is_muted(c)]
        if texts:
            announce(self.app, self.notifier, self.service.settings(), texts)

    def _is_muted(self, contact: Contact) -> bool:
        summary = self._summaries.get(contact.id)
        return summary.contact.muted if summary is not None else contact.muted

    def _write_to_terminal(self, text: str) -> None:
        driver = self.app._driver
        if driver is not None:
            driver.write(text)
            driver.flush()

    # ------------------------------------------------------------------ conversations

    def _history(self, contact_id: int, before_id: int | None, limit: int) -> list[Message]:
        contact = self.service.contact_by_id(contact_id)
        if contact is None:
            return []
        return self.service.history(contact.name, limit=limit, before_id=before_id)

    def _history_after(self, contact_id: int, after_id: int, limit: int) -> list[Message]:
        contact = self.service.contact_by_id(contact_id)
        if contact is None:
            return []
        return self.service.history_after(contact.name, after_id, limit=limit)

    def _refresh_all_summaries(self) -> None:
        summaries = self.service.conversations()
        self._summaries = {s.contact.id: s for s in summaries}
        if self.current is not None:
            fresh = self._summaries.get(self.current.id)
            if fresh is None:  # deleted
                self.current = None
                self.refresh_bindings()
                self.view.clear(PICK_HINT)
            else:
                self.current = fresh.contact
        self._show_summaries()

    def _refresh_summaries(self, contact_ids: set[int]) -> None:
        for cid in contact_ids:
            summary = self.service.conversation(cid)
            if summary is None:
                self._summaries.pop(cid, None)
            else:
                self._summaries[cid] = summary
        self._show_summaries()

    def _show_summaries(self) -> None:
        ordered = sorted(self._summaries.values(), key=lambda s: s.activity_key, reverse=True)
        if self._filter:
            ordered = [s for s in ordered if self._filter in s.contact.name.casefold()]
        clist = self.conversation_list
        clist.set_data(ordered, self.presence, set(self.typing))
        empty = not ordered
        clist.display = not empty
        hint = self.query_one("#no-contacts", Static)
        hint.update(
            f"No conversation matches “{self._filter}”." if self._filter else NO_CONTACTS_HINT
        )
        hint.display = empty
        if clist.highlighted is None and ordered:
            clist.highlighted = 0

    async def open_conversation(
        self, contact_id: int, *, focus_composer: bool = True, around: int | None = None
    ) -> None:
        """Show a conversation at its newest messages, or ``around`` a message row (a search
        result: scrolled to it and highlighted)."""
        contact = self.service.contact_by_id(contact_id)
        if contact is None:
            return
        composer = self.composer
        previous = self.current
        if previous is not None and previous.id != contact.id:
            if composer.typing_active:
                await self._send_typing(previous, False)
            composer.reset_typing()
            self._drafts[previous.id] = composer.text
        if previous is not None and previous.id != contact.id:
            composer.load_draft(self._drafts.pop(contact.id, ""))
        self.current = contact
        self.refresh_bindings()  # the call key applies now
        older = lambda before, limit: self._history(contact.id, before, limit)  # noqa: E731
        newer = lambda after, limit: self._history_after(contact.id, after, limit)  # noqa: E731
        window = (
            self.service.history_around(contact.name, around, limit=PAGE_SIZE)
            if around is not None
            else []
        )
        if around is not None and window:
            self.view.show_at(contact.name, window, around, older, newer)
        else:
            page = self._history(contact.id, None, PAGE_SIZE)
            self.view.show(contact.name, page, older, page_size=PAGE_SIZE, newer_loader=newer)
        self.view.set_hint(f"No messages with {contact.name} yet. Say hello!")
        self.conversation_list.highlight_contact(contact.id)
        self._refresh_header()
        if self.reading_allowed:
            await self.mark_current_read()
        if focus_composer:
            composer.focus()

    # ------------------------------------------------------------------ filter

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._filter = event.value.strip().casefold()
            self._show_summaries()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        first = self.conversation_list.summaries[:1]
        if first:
            await self.open_conversation(first[0].contact.id)

    def on_conversation_list_type_to_filter(self, event: ConversationList.TypeToFilter) -> None:
        field = self.query_one("#filter", Input)
        field.focus()
        field.insert_text_at_cursor(event.character)

    def action_focus_conversations(self) -> None:
        field = self.query_one("#filter", Input)
        if self.focused is field and field.value:
            field.value = ""
        self.conversation_list.focus()

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        cid = contact_id_of(event.option.id)
        if cid is not None:
            await self.open_conversation(cid)

    # ------------------------------------------------------------------ reading and receipts

    @property
    def reading_allowed(self) -> bool:
        """Read receipts go out only while the conversation is on screen (this screen is the
        active one) and the terminal has the focus."""
        return self.current is not None and self.app.app_focus and self.app.screen is self

    async def mark_current_read(self) -> None:
        if self.current is None:
            return
        try:
            marked = await self.service.mark_read(self.current.name)
        except AppError:
            return
        if marked:
            self._refresh_summaries({self.current.id})

    async def _on_app_focus_changed(self, focused: bool) -> None:
        if focused and self.reading_allowed:
            await self.mark_current_read()

    async def on_screen_resume(self) -> None:
        if self.reading_allowed:
            await self.mark_current_read()
        self._refresh_all_summaries()
        self._refresh_header()

    # ------------------------------------------------------------------ typing

    def _start_typing(self, contact_id: int) -> None:
        timer = self.typing.pop(contact_id, None)
        if timer is not None:
            timer.stop()
        self.typing[contact_id] = self.set_timer(
            TYPING_SHOW_S, lambda: self._typing_expired(contact_id)
        )

    def _stop_typing(self, contact_id: int) -> None:
        timer = self.typing.pop(contact_id, None)
        if timer is not None:
            timer.stop()

    def _typing_expired(self, contact_id: int) -> None:
        self.typing.pop(contact_id, None)
        self._show_summaries()
        self._refresh_header()

    async def _send_typing(self, contact: Contact, active: bool) -> None:
        try:
            await self.service.send_typing(contact.name, active)
        except AppError:
            pass

    async def on_composer_typing_state(self, event: Composer.TypingState) -> None:
        if self.current is not None:
            await self._send_typing(self.current, event.active)

    # ------------------------------------------------------------------ sending

    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        composer = self.composer
        if self.current is None:
            composer.restore(event.text)
            self.app.notify("Open a conversation first (Esc, then ↑ ↓ Enter).", severity="warning")
            return
        contact = self.service.contact_by_id(self.current.id)
        if contact is None:
            composer.restore(event.text)
            return
        if contact.key_changed:
            composer.restore(event.text)
            self.app.notify(
                f"{contact.name}'s key changed: review the safety number (F2) before sending.",
                severity="error",
            )
            self.query_one("#key-banner").add_class("-flash")
            self.set_timer(0.6, lambda: self.query_one("#key-banner").remove_class("-flash"))
            return
        try:
            message = await self.service.send_text(contact.name, event.text)
        except AppError as exc:
            composer.restore(event.text)
            self.app.notify(str(exc), severity="error")
            return
        self.view.append([message])
        self.view.jump_to_newest()
        self._refresh_summaries({contact.id})

    # ------------------------------------------------------------------ header and status

    def _refresh_header(self) -> None:
        header = self.query_one("#chat-header", Static)
        banner = self.query_one("#key-banner", Static)
        contact = self.current
        if contact is None:
            header.update(Text("messenger-tui", style="bold"))
            banner.remove_class("-shown")
            return
        line = Text(contact.name, style="bold")
        online = self.presence.get(contact.id, False)
        line.append("  ")
        line.append("● online" if online else "○ offline", style="green" if online else "dim")
        if contact.id in self.typing:
            line.append(" · typing…", style="italic")
        if contact.muted:
            line.append(" · muted", style="dim")
        if contact.blocked:
            line.append(" · ⊘ blocked (Alt+B)", style="bold red")
        if contact.key_changed:
            trust = Text("⚠ key changed", style="bold red")
        elif contact.verified:
            trust = Text("✔ verified", style="green")
        else:
            trust = Text("not verified (F2)", style="dim")
        width = header.content_region.width or 60
        line.append(" " * max(2, width - line.cell_len - trust.cell_len))
        line.append_text(trust)
        header.update(line)
        if contact.key_changed:
            banner.update(
                f"⚠ {contact.name}'s identity key changed. Sending is blocked until you review "
                "the new safety number: press F2, compare it with them, then accept."
            )
            banner.add_class("-shown")
        else:
            banner.remove_class("-shown")

    def on_resize(self) -> None:
        self._refresh_header()

    @property
    def header_text(self) -> str:
        return str(self.query_one("#chat-header", Static).render())

    def _set_connection(self, event: ev.ConnectionChanged) -> None:
        self.conn_state = event.state
        self.conn_error = event.error
        if event.state == "reconnecting" and event.retry_in is not None:
            self._retry_deadline = time.monotonic() + event.retry_in
            if self._countdown is None:
                self._countdown = self.set_interval(1.0, self._refresh_status)
        else:
            self._retry_deadline = None
            if self._countdown is not None:
                self._countdown.stop()
                self._countdown = None

    def status_text(self) -> str:
        retry = None
        if self._retry_deadline is not None:
            retry = max(0.0, self._retry_deadline - time.monotonic())
        conn = connection_text(self.conn_state, retry)
        parts = [("● " if self.conn_state == "connected" else "○ ") + conn]
        waiting = self.outbox_waiting
        parts.append(f"{waiting} waiting to send" if waiting else "outbox empty")
        parts.append(f"{self.service.name}: {short_address(self.service.address, 16)}")
        return "  │  ".join(parts)

    def _refresh_status(self) -> None:
        status = self.query_one("#status", Static)
        status.update(self.status_text())
        status.set_class(self.conn_state == "connected", "-connected")
        status.set_class(self.conn_state != "connected", "-disconnected")

    # ------------------------------------------------------------------ actions

    # ------------------------------------------------------------------ calls

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Call keys appear in the footer (and work) only when they apply: Call with a
        conversation open and no call under way, Mute and Hang up during a call."""
        if action in ("mute", "hang_up", "call"):
            call = self.service.current_call()
            live = call is not None and call.live
            if action == "call":
                return not live and self.current is not None
            return live
        return True

    def _call_changed(self, call: CallView) -> None:
        self.query_one(CallPane).show_call(call)
        self.refresh_bindings()
        # The ringing dialog may sit under help or the command palette: look in the stack.
        ringing = next(
            (s for s in self.app.screen_stack if isinstance(s, IncomingCallScreen)), None
        )
        if ringing is not None:
            ringing.call_changed(call)
        elif call.state == "incoming_ringing":
            self.app.push_screen(IncomingCallScreen(call), self._incoming_answered)

    def _incoming_answered(self, choice: str | None) -> None:
        try:
            if choice == "accept":
                self.service.accept_call()
                call = self.service.current_call()
                if call is not None and call.contact is not None:
                    self.run_worker(self.open_conversation(call.contact.id, focus_composer=False))
            elif choice == "decline":
                self.service.decline_call()
        except AppError as exc:
            self.app.notify(str(exc), severity="warning")

    def action_call(self) -> None:
        if self.current is None:
            self.app.notify("Open a conversation to call its contact.", severity="warning")
            return
        try:
            self.service.place_call(self.current.name)
        except AppError as exc:
            self.app.notify(str(exc), severity="error")

    def action_mute(self) -> None:
        call = self.service.current_call()
        if call is not None and call.live:
            self.service.set_call_muted(not call.muted)

    def action_hang_up(self) -> None:
        self.service.hang_up()

    def action_add_contact(self) -> None:
        from messenger_tui.ui.screens.add_contact import AddContactScreen

        async def added(contact: Contact | None) -> None:
            if contact is None:
                return
            await self.service.watch_presence()
            self._refresh_all_summaries()
            await self.open_conversation(contact.id)

        self.app.push_screen(AddContactScreen(self.service), added)

    def action_own_address(self) -> None:
        from messenger_tui.ui.screens.own_address import OwnAddressScreen

        self.app.push_screen(OwnAddressScreen(self.service))

    def action_safety_number(self) -> None:
        from messenger_tui.ui.screens.safety import SafetyNumberScreen

        contact = self.current
        if contact is None:
            cid = self.conversation_list.highlighted_contact
            contact = self.service.contact_by_id(cid) if cid is not None else None
        if contact is None:
            self.app.notify("Open a conversation first.", severity="warning")
            return
        self.app.push_screen(SafetyNumberScreen(self.service, contact))

    async def action_cycle(self, step: int) -> None:
        ordered = self.conversation_list.summaries
        if not ordered:
            return
        ids = [s.contact.id for s in ordered]
        if self.current is None or self.current.id not in ids:
            target = ids[0]
        else:
            target = ids[(ids.index(self.current.id) + step) % len(ids)]
        await self.open_conversation(target, focus_composer=self.focused is self.composer)

    def action_settings(self) -> None:
        from messenger_tui.ui.screens.settings import SettingsScreen

        launcher = getattr(self.app, "launcher", None)
        self.app.push_screen(SettingsScreen(self.service, launcher))

    def action_toggle_mute(self) -> None:
        contact = self.current
        if contact is None:
            self.app.notify("Open a conversation first.", severity="warning")
            return
        try:
            updated = self.service.set_muted(contact.name, not contact.muted)
        except AppError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        self.current = updated
        self._refresh_summaries({updated.id})
        self._refresh_header()
        self.app.notify(
            f"{updated.name} muted: no notifications (Alt+M to unmute)."
            if updated.muted
            else f"{updated.name} unmuted.",
            markup=False,
        )

    # ------------------------------------------------------------------ search, contacts

    def action_search(self, everywhere: bool = False) -> None:
        from messenger_tui.ui.screens.search import SearchScreen

        async def chosen(hit: SearchHit | None) -> None:
            if hit is None:
                return
            if self._filter:  # the result's conversation must be in the list
                self.action_focus_conversations()
                self.query_one("#filter", Input).value = ""
            await self.open_conversation(hit.contact.id, around=hit.message.id)

        contact = None if everywhere else self.current
        self.app.push_screen(SearchScreen(self.service, contact), chosen)

    def _contact_to_manage(self) -> Contact | None:
        """The open conversation's contact, else the highlighted one in the list."""
        contact = self.current
        if contact is None:
            cid = self.conversation_list.highlighted_contact
            contact = self.service.contact_by_id(cid) if cid is not None else None
        if contact is None:
            self.app.notify("Open a conversation first.", severity="warning")
        return contact

    def action_rename_contact(self) -> None:
        from messenger_tui.ui.screens.contact_dialogs import RenameContactScreen

        contact = self._contact_to_manage()
        if contact is None:
            return

        def renamed(updated: Contact | None) -> None:
            if updated is None:
                return
            if self.current is not None and self.current.id == updated.id:
                self.current = updated
                self.view.set_their_name(updated.name)
            self._refresh_all_summaries()
            self._refresh_header()
            self.app.notify(f"{contact.name} is now called {updated.name}.", markup=False)

        self.app.push_screen(RenameContactScreen(self.service, contact), renamed)

    def action_toggle_block(self) -> None:
        contact = self._contact_to_manage()
        if contact is None:
            return
        try:
            updated = self.service.set_blocked(contact.name, not contact.blocked)
        except AppError as exc:
            self.app.notify(str(exc), severity="error", markup=False)
            return
        if self.current is not None and self.current.id == updated.id:
            self.current = updated
        self._refresh_all_summaries()
        self._refresh_header()
        self.app.notify(
            f"{updated.name} is blocked: their messages are dropped unseen and you cannot "
            "write to them (Alt+B unblocks)."
            if updated.blocked
            else f"{updated.name} is unblocked.",
            markup=False,
        )

    def action_delete_contact(self) -> None:
        from messenger_tui.ui.screens.contact_dialogs import ConfirmScreen

        contact = self._contact_to_manage()
        if contact is None:
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.service.delete_contact(contact.name)
            except AppError as exc:
                self.app.notify(str(exc), severity="error", markup=False)
                return
            self._drafts.pop(contact.id, None)
            if self.current is not None and self.current.id == contact.id:
                self.composer.load_draft("")
            self._refresh_all_summaries()
            self._refresh_header()
            self.conversation_list.focus()
            self.app.notify(f"{contact.name} and your conversation were deleted.", markup=False)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {contact.name}?",
                f"This deletes {contact.name}, your whole conversation with them and any "
                "message still waiting to be sent. It cannot be undone. (To stop their "
                "messages but keep the conversation, block them instead: Alt+B.)",
                "Delete",
            ),
            confirmed,
        )

    def action_scroll_messages(self, direction: int) -> None:
        if direction < 0:
            self.view.scroll_page_up(animate=False)
        else:
            self.view.scroll_page_down(animate=False)

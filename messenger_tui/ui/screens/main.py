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
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, OptionList, Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import ConversationSummary, MessengerFacade
from messenger_tui.app.models import Contact, Message
from messenger_tui.ui.bindings import focus_bindings
from messenger_tui.ui.formatting import clean_text, connection_text, preview, short_address
from messenger_tui.ui.widgets.composer import Composer
from messenger_tui.ui.widgets.conversation_list import ConversationList, contact_id_of
from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE, ConversationView

#: A "typing" notice disappears after this long without a refresh (the sender re-announces
#: every few seconds while typing, and says when it stops).
TYPING_SHOW_S = 8.0
#: Events applied per step at most, then the event loop gets a turn (input, repaint): about
#: 0.2 ms per message shown, so a backlog never stalls the UI for long.
EVENT_BATCH = 250

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
                yield ConversationView(id="messages")
                yield Static(id="key-banner")
                yield Composer(id="composer")
        yield Static(id="status")
        yield Footer(compact=True, show_command_palette=False)

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
            await self.apply_events(batch)
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
            elif isinstance(event, ev.OutboxChanged):
                self.outbox_waiting = event.waiting
                status = True
        view = self.view
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
        """A toast per new message outside the visible conversation; the terminal bell when
        the terminal does not have the focus (tmux marks the window)."""
        texts = [(c, m) for c, m in items if m.kind == "text"]
        if not texts:
            return
        for contact, message in texts[-3:]:
            self.app.notify(
                preview(clean_text(message.text), 200), title=contact.name, timeout=4, markup=False
            )
        if len(texts) > 3:
            self.app.notify(f"and {len(texts) - 3} more messages", timeout=4)
        if not self.app.app_focus:
            self.app.bell()

    # ------------------------------------------------------------------ conversations

    def _history(self, contact_id: int, before_id: int | None, limit: int) -> list[Message]:
        contact = self.service.contact_by_id(contact_id)
        if contact is None:
            return []
        return self.service.history(contact.name, limit=limit, before_id=before_id)

    def _refresh_all_summaries(self) -> None:
        summaries = self.service.conversations()
        self._summaries = {s.contact.id: s for s in summaries}
        if self.current is not None:
            fresh = self._summaries.get(self.current.id)
            if fresh is None:  # deleted
                self.current = None
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

    async def open_conversation(self, contact_id: int, *, focus_composer: bool = True) -> None:
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
        page = self._history(contact.id, None, PAGE_SIZE)
        self.view.show(
            contact.name,
            page,
            lambda before, limit: self._history(contact.id, before, limit),
            page_size=PAGE_SIZE,
        )
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
        self.view.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
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

    def action_scroll_messages(self, direction: int) -> None:
        if direction < 0:
            self.view.scroll_page_up(animate=False)
        else:
            self.view.scroll_page_down(animate=False)

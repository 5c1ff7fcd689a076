"""The main screen: conversation list, conversation view, composer, header and status line.

Everything on it is driven by the service's events: a worker reads the queue from
``service.subscribe()`` and applies each burst of events at once (one list refresh, one view
update), so a backlog of thousands of messages never re-renders per message.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import ConversationSummary, MessengerFacade, SearchHit
from messenger_tui.app.group_models import Group, GroupSearchHit
from messenger_tui.app.models import CallView, Contact, ContactId, Message
from messenger_tui.ui.notify import DesktopNotifier, write_to_terminal
from messenger_tui.ui.screens import (
    call_actions,
    contact_actions,
    main_events,
    main_header,
    sending,
    transfer_actions,
)
from messenger_tui.ui.screens.group_chat import (
    GroupChatScreen,
)
from messenger_tui.ui.screens.main_bindings import MAIN_BINDINGS
from messenger_tui.ui.screens.voice_actions import VoiceControls
from messenger_tui.ui.typing_notices import TypingNotices
from messenger_tui.ui.widgets.call_pane import CallPane
from messenger_tui.ui.widgets.composer import Composer
from messenger_tui.ui.widgets.conversation_list import (
    ConversationList,
    contact_id_of,
    group_id_of,
)
from messenger_tui.ui.widgets.conversation_view import PAGE_SIZE, ConversationView
from messenger_tui.ui.widgets.footer import FittingFooter
from messenger_tui.ui.widgets.status_line import StatusLine
from messenger_tui.ui.widgets.transfer_bar import TransferBar
from messenger_tui.ui.widgets.voice_line import RecordingLine

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
    BINDINGS = MAIN_BINDINGS

    def __init__(
        self, service: MessengerFacade, events: asyncio.Queue[ev.Event] | None = None
    ) -> None:
        """``events``: a queue from ``service.subscribe()`` taken before the service started
        (so that no early event is missed); subscribes itself when None."""
        super().__init__()
        self.service = service
        self.current: Contact | None = None
        self.presence: dict[int, bool] = {}
        self.typing = TypingNotices(self, self._typing_expired)
        #: The conversation list's summaries by contact id.
        self.summaries: dict[int, ConversationSummary] = {}
        self._drafts: dict[int, str] = {}
        self._filter = ""
        self._queue: asyncio.Queue[ev.Event] | None = events
        #: Desktop notifications, written to the real terminal (tests swap ``write``).
        self.notifier = DesktopNotifier(lambda text: write_to_terminal(self.app, text))

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
                yield TransferBar(id="transfers")
                yield Static(id="key-banner")
                yield Static(id="request-banner")
                yield RecordingLine(id="recording")
                yield Composer(id="composer")
        yield StatusLine(self.service.name, self.service.address, id="status")
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
        status = self.status
        status.outbox_waiting = self.service.outbox_count()
        status.conn_state = self.service.connection_state
        self.voice_controls = VoiceControls(self)
        transfer_actions.install_previews(self)
        self.view.clear(PICK_HINT)
        self.refresh_all_summaries()
        self.refresh_header()
        self.status.redraw()
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
        """Apply a burst of service events with one refresh of each affected widget
        (:mod:`.main_events`)."""
        await main_events.apply_events(self, batch)

    # ------------------------------------------------------------------ conversations

    def history_page(
        self, contact_id: ContactId, before_id: int | None, limit: int
    ) -> list[Message]:
        return self.service.history(contact_id, limit=limit, before_id=before_id)

    def _history_after(self, contact_id: ContactId, after_id: int, limit: int) -> list[Message]:
        return self.service.history_after(contact_id, after_id, limit=limit)

    def refresh_all_summaries(self) -> None:
        summaries = self.service.conversations()
        self.summaries = {s.contact.id: s for s in summaries}
        if self.current is not None:
            fresh = self.summaries.get(self.current.id)
            if fresh is None:  # deleted
                self.current = None
                self.refresh_bindings()
                self.view.clear(PICK_HINT)
            else:
                self.current = fresh.contact
        self.show_summaries()

    def refresh_summaries(self, contact_ids: set[int]) -> None:
        for cid in contact_ids:
            summary = self.service.conversation(cid)
            if summary is None:
                self.summaries.pop(cid, None)
            else:
                self.summaries[cid] = summary
        self.show_summaries()

    def show_summaries(self) -> None:
        ordered = sorted(self.summaries.values(), key=lambda s: s.activity_key, reverse=True)
        if self._filter:
            ordered = [s for s in ordered if self._filter in s.contact.name.casefold()]
        clist = self.conversation_list
        # A contact's presence is known only while we are connected.
        presence = self.presence if self.conn_state == "connected" else {}
        groups = [g for g in self.service.groups.all() if self._filter in g.name.casefold()]
        clist.set_data(ordered, presence, set(self.typing), groups)
        empty = not ordered and not groups
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
                await sending.send_typing(self, previous, False)
            composer.reset_typing()
            self._drafts[previous.id] = composer.text
        if previous is not None and previous.id != contact.id:
            composer.load_draft(self._drafts.pop(contact.id, ""))
        self.current = contact
        self.refresh_bindings()  # the call key applies now
        older = lambda before, limit: self.history_page(contact.id, before, limit)  # noqa: E731
        newer = lambda after, limit: self._history_after(contact.id, after, limit)  # noqa: E731
        window = (
            self.service.history_around(contact.id, around, limit=PAGE_SIZE)
            if around is not None
            else []
        )
        if around is not None and window:
            self.view.show_at(contact.name, window, around, older, newer)
        else:
            page = self.history_page(contact.id, None, PAGE_SIZE)
            self.view.show(contact.name, page, older, page_size=PAGE_SIZE, newer_loader=newer)
        self.view.set_hint(f"No messages with {contact.name} yet. Say hello!")
        self.conversation_list.highlight_contact(contact.id)
        transfer_actions.conversation_opened(self, contact.id)
        self.refresh_header()
        if self.reading_allowed:
            await self.mark_current_read()
        if focus_composer:
            composer.focus()

    # ------------------------------------------------------------------ filter

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._filter = event.value.strip().casefold()
            self.show_summaries()

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
        group_row = group_id_of(event.option.id)
        if group_row is not None:
            self.app.push_screen(GroupChatScreen(self.service, group_row))

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
            marked = await self.service.mark_read(self.current.id)
        except AppError:
            return
        if marked:
            self.refresh_summaries({self.current.id})

    async def _on_app_focus_changed(self, focused: bool) -> None:
        if focused and self.reading_allowed:
            await self.mark_current_read()

    async def on_screen_resume(self) -> None:
        if self.reading_allowed:
            await self.mark_current_read()
        self.refresh_all_summaries()
        self.refresh_header()

    # ------------------------------------------------------------------ typing and sending

    async def on_composer_typing_state(self, event: Composer.TypingState) -> None:
        if self.current is not None:
            await sending.send_typing(self, self.current, event.active)

    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        await sending.submit(self, event.text)

    # ------------------------------------------------------------------ header and status

    def _typing_expired(self) -> None:
        self.show_summaries()
        self.refresh_header()

    def refresh_header(self) -> None:
        """The header line and the key-change / message-request banners
        (:mod:`.main_header`)."""
        main_header.refresh_header(self)

    def timer_of(self, contact: Contact | None) -> int:
        """The disappearing-message timer of ``contact``'s conversation (0: off or none)."""
        return main_header.timer_of(self, contact)

    def on_resize(self) -> None:
        self.refresh_header()

    @property
    def header_text(self) -> str:
        return str(self.query_one("#chat-header", Static).render())

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def conn_state(self) -> str:
        """Our connection to the relay: offline, connecting, connected, reconnecting."""
        return self.status.conn_state

    def status_text(self) -> str:
        return self.status.text

    # ------------------------------------------------------------------ calls

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Call keys appear in the footer (and work) only when they apply: Call with a
        conversation open and no call under way, Mute and Hang up during a call, Talk during a
        call when the talk mode is hold-to-talk or toggle."""
        if action in ("mute", "hang_up", "call", "talk"):
            call = self.service.current_call()
            live = call is not None and call.live
            if action == "call":
                return not live and self.current is not None
            if action == "talk":
                return live and self.service.settings().talk_mode != "open"
            return live
        return True

    def call_changed(self, call: CallView) -> None:
        call_actions.call_changed(self, call)

    async def action_call(self) -> None:
        await call_actions.place_call(self)

    def action_mute(self) -> None:
        call_actions.toggle_mic_mute(self)

    def action_talk(self) -> None:
        call_actions.talk(self)

    def action_hang_up(self) -> None:
        self.service.hang_up()

    def action_new_group(self) -> None:
        from messenger_tui.ui.screens.group_dialogs import CreateGroupScreen

        def created(group: Group | None) -> None:
            if group is not None:
                self.show_summaries()
                self.app.push_screen(GroupChatScreen(self.service, group.id))

        self.app.push_screen(CreateGroupScreen(self.service), created)

    def action_add_contact(self) -> None:
        contact_actions.add(self)

    def action_own_address(self) -> None:
        contact_actions.own_address(self)

    def action_safety_number(self) -> None:
        contact_actions.safety_number(self)

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

    # ------------------------------------------------------------------ search, contacts

    def action_search(self, everywhere: bool = False) -> None:
        from messenger_tui.ui.screens.search import SearchScreen

        async def chosen(hit: SearchHit | GroupSearchHit | None) -> None:
            if hit is None:
                return
            if isinstance(hit, GroupSearchHit):
                self.app.push_screen(GroupChatScreen(self.service, hit.group.id))
                return
            if self._filter:  # the result's conversation must be in the list
                self.action_focus_conversations()
                self.query_one("#filter", Input).value = ""
            await self.open_conversation(hit.contact.id, around=hit.message.id)

        contact = None if everywhere else self.current
        self.app.push_screen(SearchScreen(self.service, contact), chosen)

    def action_rename_contact(self) -> None:
        contact_actions.rename(self)

    def action_toggle_block(self) -> None:
        contact_actions.toggle_block(self)

    def action_accept_request(self) -> None:
        contact_actions.accept_request(self)

    def action_delete_contact(self) -> None:
        contact_actions.delete(self)

    def action_toggle_mute(self) -> None:
        contact_actions.toggle_mute(self)

    def action_disappearing_timer(self) -> None:
        contact_actions.disappearing_timer(self)

    def forget_draft(self, contact_id: int) -> None:
        """Drop a deleted contact's draft (and empty the composer if it was theirs)."""
        self._drafts.pop(contact_id, None)
        if self.current is not None and self.current.id == contact_id:
            self.composer.load_draft("")

    def action_attach_file(self) -> None:
        transfer_actions.attach(self)

    def action_cancel_transfer(self) -> None:
        transfer_actions.cancel_newest(self)

    # voice messages (ui/screens/voice_actions.py)
    async def action_record_voice(self) -> None:
        await self.voice_controls.record()

    async def action_send_voice(self) -> None:
        await self.voice_controls.send()

    async def action_cancel_voice(self) -> None:
        await self.voice_controls.cancel()

    async def action_play_voice(self) -> None:
        await self.voice_controls.play()

    def action_seek_voice(self, forward: bool) -> None:
        self.voice_controls.seek(forward)

    def action_voice_speed(self) -> None:
        self.voice_controls.next_speed()

    def action_open_file(self) -> None:
        transfer_actions.open_newest(self)

    def action_scroll_messages(self, direction: int) -> None:
        if direction < 0:
            self.view.scroll_page_up(animate=False)
        else:
            self.view.scroll_page_down(animate=False)

"""A group conversation: its messages with each sender's name (coloured per member), the
delivery state of our own ("delivered to 2 of 3, read by 1"), and a line to write in.

Opened from the conversation list (a "# name" row); Escape goes back. Driven by the
service's events: a group message, state change or membership change of this group reloads
the view, and what is shown is marked read (read receipts go to each author).

F2 shows the members panel (:mod:`.group_members`); F3 lists who got and read our newest
message; F5 starts the group's call, or joins it when it rings or is in progress (the call
pane above the messages lists the participants, :mod:`..widgets.group_call_pane`), F6 mutes
the microphone in it and F7 leaves it; Alt+M mutes the group (mentions of us still
notify). In the composer, Tab completes ``@name`` to a member's name; a sent text carries
the identity keys of the members it names (``GroupText.mentions``). Typing sends "typing"
to the members (ephemeral); theirs shows above the composer ("alice is typing…").
Ctrl+O attaches a file, Ctrl+R records a voice message and Alt+P plays one
(:mod:`.group_file_actions`); an image shows a preview under its line, Alt+O opens the newest
file received, Alt+← Alt+→ seek and Alt+S sets the speed of the voice message playing
(:mod:`.group_media`).
"""

from __future__ import annotations

import asyncio
import re

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Static

from messenger_tui.app import events as ev
from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.group_models import Group, GroupCallView, GroupMember, GroupMessage
from messenger_tui.app.models import Contact
from messenger_tui.core.disappearing import describe
from messenger_tui.ui.screens import group_members
from messenger_tui.ui.screens.group_file_actions import GroupFileControls, file_note
from messenger_tui.ui.screens.group_media import GroupMedia
from messenger_tui.ui.screens.group_members import MemberList
from messenger_tui.ui.screens.group_message_text import (
    mentioned_members,
    message_line,
)
from messenger_tui.ui.screens.group_notify import announce_group, announce_group_call
from messenger_tui.ui.screens.group_typing import GroupTypingTracker
from messenger_tui.ui.widgets.footer import FittingFooter
from messenger_tui.ui.widgets.group_call_pane import GroupCallPane
from messenger_tui.ui.widgets.group_lines import GroupLines
from messenger_tui.ui.widgets.voice_line import RecordingLine

#: Messages shown (the newest).
GROUP_PAGE = 200
#: Footer keys left out first in a narrow terminal (they stay in the palette and F1).
FOOTER_DROP_ORDER = (
    "screen.rename_group",
    "screen.member_safety",
    "receipts",
    "back",
    "toggle_members",
)
#: Re-exported: the main screen announces group messages and calls with these.
__all__ = ["GroupChatScreen", "announce_group", "announce_group_call"]
#: The partial ``@name`` before the cursor.
_MENTION_TAIL = re.compile(r"@([^@\n]*)$")


class GroupChatScreen(Screen[None], inherit_bindings=False):
    BINDINGS = [
        Binding("escape", "back", "Back", id="group.back",
                tooltip="Back to the conversation list (from the members panel: to the "
                        "composer)"),
        Binding("f2", "toggle_members", "Members", id="group.members",
                tooltip="Show or hide the members panel: members, admins, add, remove, "
                        "promote, rename, leave"),
        Binding("f3", "receipts", "Who got it", id="group.receipts",
                tooltip="Who got and who read your newest message in this group"),
        Binding("f5", "group_call", "Call", id="group.call",
                tooltip="Start the group's call (ringing the members), or join it when it "
                        "rings or is in progress"),
        Binding("f6", "group_call_mute", "Mute mic", id="group.call_mute",
                tooltip="Mute or unmute your microphone in the group call"),
        Binding("f7", "leave_call", "Leave call", id="group.call_leave",
                tooltip="Leave the group call"),
        Binding("alt+m", "toggle_mute", "Mute", show=False, priority=True, id="group.mute",
                tooltip="Mute or unmute the group (messages that mention you still notify)"),
        Binding("tab", "complete", "Complete", show=False, priority=True,
                id="group.complete_mention",
                tooltip="In the composer: complete @name to a member's name; elsewhere: "
                        "the next field"),
        Binding("shift+tab", "app.focus_previous", "Previous", show=False,
                id="group.focus_previous", tooltip="Focus the previous field"),
        Binding("ctrl+o", "attach_file", "Attach", show=False, priority=True,
                id="group.attach", tooltip="Send a file to the group (a path prompt)"),
        Binding("ctrl+r", "record_voice", "Record", show=False, priority=True,
                id="group.record_voice",
                tooltip="Record a voice message for the group (Enter sends, Esc cancels)"),
        Binding("alt+p", "play_voice", "Play", show=False, priority=True, id="group.play_voice",
                tooltip="Play or pause the newest voice message shown"),
        Binding("alt+left", "seek_voice(False)", "Back 5 s", show=False, priority=True,
                id="group.voice_back", tooltip="Jump 5 seconds back in the voice message playing"),
        Binding("alt+right", "seek_voice(True)", "Ahead 5 s", show=False, priority=True,
                id="group.voice_ahead",
                tooltip="Jump 5 seconds ahead in the voice message playing"),
        Binding("alt+s", "voice_speed", "Speed", show=False, priority=True, id="group.voice_speed",
                tooltip="Voice message speed: 1x, 1.5x, 2x (faster is also higher)"),
        Binding("alt+o", "open_file", "Open file", show=False, priority=True, id="group.open_file",
                tooltip="Open the newest file received in this group with the desktop's program "
                        "(xdg-open); files never open by themselves"),
    ]  # fmt: skip

    DEFAULT_CSS = """
    GroupChatScreen { layout: vertical; }
    GroupChatScreen #group-header { height: 1; background: $panel; padding: 0 1; }
    GroupChatScreen #group-body { height: 1fr; }
    GroupChatScreen #group-typing { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, service: MessengerFacade, group_row: int) -> None:
        super().__init__()
        self.service = service
        self.group_row = group_row
        self.messages: list[GroupMessage] = []
        self._queue: asyncio.Queue[ev.Event] | None = None
        #: Who is typing here, and our own typing notices (group_typing.py).
        self.typing = GroupTypingTracker(self)
        #: The group's call as last shown (None: it never had one here).
        self.call: GroupCallView | None = None
        self.files = GroupFileControls(self)
        self.media = GroupMedia(self)

    def compose(self) -> ComposeResult:
        yield Static(id="group-header")
        yield GroupCallPane(id="group-call")
        with Horizontal(id="group-body"):
            yield GroupLines(id="group-lines")
            yield MemberList(id="group-members", classes="-hidden")
        yield Static(id="group-typing")
        yield RecordingLine()
        yield Input(placeholder="Write to the group…", id="group-composer")
        yield FittingFooter(drop_order=FOOTER_DROP_ORDER)

    @property
    def composer(self) -> Input:
        return self.query_one("#group-composer", Input)

    @property
    def group(self) -> Group | None:
        return self.service.groups.by_id(self.group_row)

    def on_mount(self) -> None:
        self._queue = self.service.subscribe()
        self._consume(self._queue)
        self.reload()
        group = self.group
        if group is not None:
            self.show_call(self.service.group_calls.view(group.name))
        self.query_one(GroupLines).sixel_source = self.media.sixel_for
        self.query_one(Input).focus()
        self.set_interval(1.0, self.typing.tick)

    def on_unmount(self) -> None:
        if self._queue is not None:
            self.service.unsubscribe(self._queue)

    @work(exclusive=True, group="group-events")
    async def _consume(self, queue: asyncio.Queue[ev.Event]) -> None:
        """One update per burst, when the queue empties after an event of this group (or a
        contact change: a member's key or name), whatever came after it: the new messages
        appended when that is all the burst brought (a backlog: each message rendered once),
        else a reload."""
        stale = False
        new: list[ev.GroupMessageReceived] = []
        while True:
            event = await queue.get()
            ours = (
                (
                    isinstance(
                        event,
                        ev.GroupMessageReceived
                        | ev.GroupMessageStateChanged
                        | ev.GroupChanged
                        | ev.GroupTimerChanged,
                    )
                    and event.group.id == self.group_row
                )
                or (  # a file of this group moved on (progress, saved, failed)
                    isinstance(event, ev.TransferChanged)
                    and event.transfer.group_row == self.group_row
                )
                or (
                    isinstance(event, ev.GroupMessagesExpired) and event.group_row == self.group_row
                )
            )
            if ours and isinstance(event, ev.TransferChanged):
                self.media.transfer_changed(event.transfer)
            if isinstance(event, ev.GroupCallChanged) and event.call.group_row == self.group_row:
                self.show_call(event.call)
            elif isinstance(event, ev.GroupTypingChanged) and event.group.id == self.group_row:
                self.typing.changed(event)
            elif ours and isinstance(event, ev.GroupMessageReceived):
                self.typing.sent(event.message.sender)  # it was sent: no longer typing
                new.append(event)
                ours = False
            stale = stale or ours or isinstance(event, ev.ContactChanged)
            if (stale or new) and queue.empty():
                if stale:
                    self.reload()
                else:
                    self._append(new)
                stale, new = False, []

    def reload(self) -> None:
        group = self.group
        if group is None:
            return
        if group.unread:
            self.service.groups.mark_read(group.name)
        self.messages = self.service.groups.history(group.name, limit=GROUP_PAGE)
        members = ", ".join(m.name for m in group.members)
        about = f"{len(group.members)} members: {members}" if group.is_member else "you left"
        header = Text(f"# {group.name} — {about}")
        if group.muted:
            header.append("  (muted)", style="dim")
        timer = self.service.groups.timer(group.name)
        if timer:  # as the 1:1 header: the disappearing-message timer
            header.append(f"  ⏱ {describe(timer)}", style="dim")
        contacts = self.contacts_of(group)
        changed = [c.name for c in contacts.values() if c.key_changed]
        if changed:  # as in 1:1: their safety number changed (F2, then s on them)
            header.append(f"  ! {', '.join(changed)}: key changed (F2, s)", style="bold red")
        self.query_one("#group-header", Static).update(header)
        names, own = self._names(group)
        self.query_one(GroupLines).show(self._line(m, names, own) for m in self.messages)
        panel = self.query_one(MemberList)
        if not panel.has_class("-hidden"):
            panel.show_group(group, contacts)

    def _line(self, m: GroupMessage, names: list[str], own: str) -> Text:
        line = message_line(m, names, own)
        note = file_note(self.service, m)
        if note is not None:
            line += note
        image = self.media.preview(m)
        return line if image is None else line + Text("\n") + image

    def _names(self, group: Group) -> tuple[list[str], str]:
        """The names a mention may use (members', ours) and our own."""
        own = self.service.name
        return [m.name for m in group.members if not m.me] + [own], own

    def _append(self, received: list[ev.GroupMessageReceived]) -> None:
        """Messages stored after those shown: add their lines (marked read: the group is on
        screen), without reloading the ones shown."""
        shown = {m.id for m in self.messages[-len(received) - 1 :]}
        fresh = [e.message for e in received if e.message.id not in shown]
        if not fresh:
            return
        group = received[-1].group
        newest = self.service.groups.history(group.name, limit=1)
        if (self.messages and fresh[0].id < self.messages[-1].id) or (
            newest and newest[-1].id != fresh[-1].id
        ):
            # not simply after the last shown (a notice came with them, say): reload
            self.reload()
            return
        self.messages = (self.messages + fresh)[-GROUP_PAGE:]
        names, own = self._names(group)
        self.query_one(GroupLines).append(self._line(m, names, own) for m in fresh)
        if any(not m.outgoing for m in fresh):
            self.service.groups.mark_read(group.name)

    def contacts_of(self, group: Group) -> dict[int, Contact]:
        contacts: dict[int, Contact] = {}
        for m in group.members:
            if m.contact_id is not None:
                contact = self.service.contact_by_id(m.contact_id)
                if contact is not None:
                    contacts[m.contact_id] = contact
        return contacts

    # ------------------------------------------------------------ typing (group_typing)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "group-composer":
            self.typing.composer_changed(event.value)

    # ------------------------------------------------------------ mentions

    def action_complete(self) -> None:
        composer = self.query_one("#group-composer", Input)
        if self.focused is not composer:
            self.focus_next()
            return
        group = self.group
        before = composer.value[: composer.cursor_position]
        match = _MENTION_TAIL.search(before)
        if group is None or match is None:
            return
        prefix = match.group(1).casefold()
        names = sorted(m.name for m in group.members if not m.me)
        found = [n for n in names if n.casefold().startswith(prefix)]
        if not found:
            self.notify(f"No member's name starts with {match.group(1)!r}", markup=False)
            return
        if len(found) == 1:
            completed = found[0] + " "
        else:
            completed = _common_prefix(found) or match.group(1)
            self.notify("Members: " + ", ".join(found), markup=False, timeout=3)
        after = composer.value[composer.cursor_position :]
        start = match.start(1)
        composer.value = before[:start] + completed + after
        composer.cursor_position = start + len(completed)

    # ------------------------------------------------------------ members panel

    # ------------------------------------------------------------------ the group's call

    def show_call(self, call: GroupCallView | None) -> None:
        self.call = call
        self.query_one(GroupCallPane).show_call(call)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Call keys show (and work) when they apply: Call unless we are in (or joining) the
        call; Mute mic and Leave call while we are."""
        if action in ("group_call", "group_call_mute", "leave_call"):
            in_call = self.call is not None and self.call.state in (
                "joining",
                "in_call",
                "rejoining",
            )
            if action == "group_call":
                group = self.group
                return not in_call and group is not None and group.is_member
            return in_call
        return True

    async def action_group_call(self) -> None:
        group = self.group
        if group is None:
            return
        try:
            await self.service.audio_devices(rescan=True)
            self.show_call(self.service.group_calls.start_or_join(group.name))
        except AppError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)

    def action_group_call_mute(self) -> None:
        call = self.call
        if call is not None:
            self.service.group_calls.set_muted(not call.muted)

    def action_leave_call(self) -> None:
        self.service.group_calls.leave()

    def action_back(self) -> None:
        panel = self.query_one(MemberList)
        if self.focused is panel:
            self.query_one("#group-composer", Input).focus()
        else:
            self.app.pop_screen()

    def action_toggle_members(self) -> None:
        group_members.toggle_panel(self)

    def highlighted_member(self) -> GroupMember | None:
        return group_members.highlighted_member(self)

    def action_add_members(self) -> None:
        group_members.add_members(self)

    def action_remove_member(self) -> None:
        group_members.apply(self, "remove")

    def action_toggle_admin(self) -> None:
        group_members.apply(self, "admin")

    def action_rename_group(self) -> None:
        group_members.rename_group(self)

    def action_leave_group(self) -> None:
        group_members.leave_group(self)

    def action_member_safety(self) -> None:
        group_members.member_safety(self)

    # ------------------------------------------------------------ receipts, mute

    def action_receipts(self) -> None:
        from messenger_tui.ui.screens.group_dialogs import ReceiptsScreen

        own = [m for m in self.messages if m.outgoing and m.kind in ("text", "attachment", "voice")]
        if not own:
            self.notify("You have not written in this group yet")
            return
        self.app.push_screen(ReceiptsScreen(self.service, own[-1]))

    def action_disappearing_timer(self) -> None:
        """Pick the group's disappearing-message timer (every member; from the palette)."""
        from messenger_tui.ui.screens.timer_dialog import DisappearingTimerScreen

        group = self.group
        if group is None or not group.is_member:
            return

        def chosen(seconds: int | None) -> None:
            if seconds is None:
                return
            try:
                self.service.groups.set_timer(group.name, seconds)
            except AppError as exc:
                self.app.notify(str(exc), severity="error", markup=False)
                return
            self.app.notify(
                f"Disappearing messages in {group.name}: {describe(seconds)}", markup=False
            )
            self.reload()

        current = self.service.groups.timer(group.name)
        self.app.push_screen(DisappearingTimerScreen(group.name, current), chosen)

    def action_toggle_mute(self) -> None:
        group = self.group
        if group is None:
            return
        try:
            updated = self.service.groups.set_muted(group.name, not group.muted)
        except AppError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(
            f"{group.name} muted: only mentions of you notify"
            if updated.muted
            else f"{group.name} unmuted",
            markup=False,
        )
        self.reload()

    # ------------------------------------------------------------ files (group_file_actions)

    def action_attach_file(self) -> None:
        self.files.attach()

    async def action_record_voice(self) -> None:
        await self.files.record()

    async def action_send_voice(self) -> None:
        await self.files.send_voice()

    async def action_cancel_voice(self) -> None:
        await self.files.cancel_voice()

    async def action_play_voice(self) -> None:
        await self.files.play()

    def action_seek_voice(self, forward: bool) -> None:
        self.media.seek(forward)

    def action_voice_speed(self) -> None:
        self.media.next_speed()

    def action_open_file(self) -> None:
        self.media.open_newest()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        group = self.group
        if not text.strip() or group is None:
            return
        try:
            self.service.groups.send_text(
                group.name, text, mentioned_members(text, group.members) or None
            )
        except AppError as exc:
            self.notify(str(exc), severity="error")
            return
        event.input.value = ""
        self.typing.stop()
        self.reload()


def _common_prefix(names: list[str]) -> str:
    first, last = min(names, key=str.casefold), max(names, key=str.casefold)
    n = 0
    while n < min(len(first), len(last)) and first[n].casefold() == last[n].casefold():
        n += 1
    return first[:n]

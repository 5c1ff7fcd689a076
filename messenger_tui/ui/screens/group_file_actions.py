"""Files and voice messages in a group conversation (:mod:`.group_chat`).

Ctrl+O asks for a path and sends the file to the group (uploaded once for every member);
Ctrl+R records a voice message for the group (Enter sends, Esc cancels, as in 1:1); Alt+P
plays or pauses the newest voice message shown. In the view, a file's line keeps the
sender's name and adds, while it moves, the transfer's bar, bytes, rate and time left (the
1:1 transfer bar's line) or why it failed; a voice message's line is its ``▶ 0:00/0:12
▁▃▅▇`` label (position and ⏸ while it plays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.timer import Timer

from messenger_tui.app.errors import AppError
from messenger_tui.app.facade import MessengerFacade
from messenger_tui.app.group_models import GroupMessage
from messenger_tui.ui.screens.attach_prompt import AttachPrompt
from messenger_tui.ui.widgets.transfer_bar import SHOWN, transfer_line
from messenger_tui.ui.widgets.voice_line import RecordingLine, voice_label

if TYPE_CHECKING:
    from messenger_tui.ui.screens.group_chat import GroupChatScreen

#: Redraw period while recording or playing (seconds).
TICK_S = 0.2
FILE_KINDS = frozenset({"attachment", "voice"})


def file_note(service: MessengerFacade, m: GroupMessage) -> Text | None:
    """What a file or voice message's line adds after the sender's name and the file's name."""
    if m.kind not in FILE_KINDS:
        return None
    view = service.transfer_for_message(m.id)
    if view is None:
        return None
    if m.kind == "voice":
        player = service.voice.player
        if player is not None and player.message_row == m.id:
            label = voice_label(
                player.duration_ms,
                view.waveform,
                position_ms=player.position_ms,
                playing=player.playing,
                speed=player.speed,
            )
        else:
            label = voice_label(view.duration_ms, view.waveform)
        note = Text(f"  {label}")
        if view.direction == "down" and view.status != "done":
            note.append(f" {view.status}", style="dim")
        return note
    if view.status in SHOWN:
        return Text(f"  {transfer_line(view)}", style="dim")
    size = f"{view.size / 1048576:.1f} MiB" if view.size >= 1048576 else f"{view.size} bytes"
    if view.direction == "down" and view.status == "done":
        size += ", saved"
    elif view.status == "cancelled":
        size += ", cancelled"
    return Text(f"  ({size})", style="dim")


class GroupFileControls:
    """The group screen's attach and voice keys (see the module doc)."""

    def __init__(self, screen: GroupChatScreen) -> None:
        self.screen = screen
        self._timer: Timer | None = None

    @property
    def line(self) -> RecordingLine:
        return self.screen.query_one(RecordingLine)

    def _error(self, exc: AppError) -> None:
        self.screen.notify(str(exc), severity="error", markup=False)

    def _group_name(self) -> str | None:
        group = self.screen.group
        if group is None or not group.is_member:
            self.screen.notify("You are no longer a member of this group.", severity="warning")
            return None
        return group.name

    def attach(self) -> None:
        name = self._group_name()
        if name is None:
            return

        async def chosen(path: str | None) -> None:
            if path is None:
                return
            try:
                await self.screen.service.group_files.send_file(name, path)
            except AppError as exc:
                self._error(exc)
                return
            self.screen.reload()

        self.screen.app.push_screen(AttachPrompt(f"#{name}"), chosen)

    async def record(self) -> None:
        name = self._group_name()
        if name is None:
            return
        try:
            recording = await self.screen.service.voice.record_for_group(name)
        except AppError as exc:
            self._error(exc)
            return
        self.line.show_state(recording.level, recording.elapsed_ms, recording.at_limit)
        self.line.focus()
        self._ensure_ticking()

    async def send_voice(self) -> None:
        self.line.hide()
        self.screen.composer.focus()
        try:
            await self.screen.service.voice.send()
        except AppError as exc:
            self._error(exc)
            return
        self.screen.reload()

    async def cancel_voice(self) -> None:
        self.line.hide()
        self.screen.composer.focus()
        await self.screen.service.voice.cancel()
        self.screen.notify("Voice message discarded")

    async def play(self) -> None:
        player = self.screen.service.voice.player
        shown = {m.id for m in self.screen.messages}
        row = player.message_row if player is not None and player.message_row in shown else None
        if row is None:
            voices = [m.id for m in self.screen.messages if m.kind == "voice"]
            row = voices[-1] if voices else None
        if row is None:
            self.screen.notify("No voice message on screen.", severity="warning")
            return
        try:
            await self.screen.service.voice.play(row)
        except AppError as exc:
            self._error(exc)
            return
        self.screen.reload()
        self._ensure_ticking()

    def _ensure_ticking(self) -> None:
        if self._timer is None:
            self._timer = self.screen.set_interval(TICK_S, self._tick)

    def _tick(self) -> None:
        voice = self.screen.service.voice
        recording = voice.recording
        if recording is not None:
            self.line.show_state(recording.level, recording.elapsed_ms, recording.at_limit)
        player = voice.player
        if player is not None and player.playing:
            self.screen.reload()
        if recording is None and (player is None or not player.playing):
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
            self.screen.reload()  # the paused or ended player's position

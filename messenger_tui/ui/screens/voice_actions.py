"""Voice messages from the main screen: record (Ctrl+R, then Enter sends, Esc cancels), and
play the voice message on screen (Alt+P play/pause, Alt+← Alt+→ seek 5 s, Alt+S speed).

The message played is the one already playing, else the newest voice message on screen.
While something records or plays, a 10 Hz timer redraws the recording line and the playing
message's line; it stops when both are over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.timer import Timer

from messenger_tui.app.errors import AppError
from messenger_tui.app.models import Message, TransferView
from messenger_tui.ui.widgets.voice_line import RecordingLine, voice_label

if TYPE_CHECKING:
    from messenger_tui.ui.screens.main import MainScreen

TICK_S = 0.1


class VoiceControls:
    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen
        self._timer: Timer | None = None
        self._drawn_row: int | None = None
        screen.view.voice_label = self.label

    @property
    def line(self) -> RecordingLine:
        return self.screen.query_one(RecordingLine)

    def _error(self, exc: AppError) -> None:
        self.screen.app.notify(str(exc), severity="error", markup=False)

    # ------------------------------------------------------------------ the inline line

    def label(self, m: Message) -> str:
        service = self.screen.service
        view = service.transfer_for_message(m.id)
        duration = view.duration_ms if view else None
        waveform = view.waveform if view else None
        player = service.voice.player
        if player is not None and player.message_row == m.id:
            return voice_label(
                player.duration_ms,
                waveform,
                position_ms=player.position_ms,
                playing=player.playing,
                speed=player.speed,
            )
        text = voice_label(duration, waveform)
        if view is not None and view.direction == "down" and view.status != "done":
            text += f" {view.status}"
        return text

    def transfers_changed(self, views: list[TransferView]) -> None:
        for view in views:
            if view.duration_ms is not None and view.message_row is not None:
                self.screen.view.redraw_message(view.message_row)

    # ------------------------------------------------------------------ recording

    async def record(self) -> None:
        screen = self.screen
        if screen.current is None:
            screen.app.notify(
                "Open a conversation first (Esc, then ↑ ↓ Enter).", severity="warning"
            )
            return
        try:
            recording = await screen.service.voice.record(screen.current.id)
        except AppError as exc:
            self._error(exc)
            return
        self.line.show_state(recording.level, recording.elapsed_ms, recording.at_limit)
        self.line.focus()
        self._ensure_ticking()

    async def send(self) -> None:
        screen = self.screen
        self.line.hide()
        screen.composer.focus()
        try:
            view = await screen.service.voice.send()
        except AppError as exc:
            self._error(exc)
            return
        contact = screen.current
        if contact is not None and contact.id == view.contact_id:
            newest = screen.service.history(contact.id, limit=1)
            if newest and newest[-1].id == view.message_row:
                screen.view.append(newest)
                screen.view.jump_to_newest()
            screen.refresh_summaries({contact.id})

    async def cancel(self) -> None:
        self.line.hide()
        self.screen.composer.focus()
        await self.screen.service.voice.cancel()
        self.screen.app.notify("Voice message discarded")

    # ------------------------------------------------------------------ playback

    def _target(self) -> int | None:
        player = self.screen.service.voice.player
        if player is not None:
            return player.message_row
        view = self.screen.view
        for row in reversed(view.visible_rows()):
            m = view.message(row)
            if m is not None and m.kind == "voice":
                return row
        return None

    async def play(self) -> None:
        row = self._target()
        if row is None:
            self.screen.app.notify("No voice message on screen.", severity="warning")
            return
        previous = self._drawn_row
        try:
            await self.screen.service.voice.play(row)
        except AppError as exc:
            self._error(exc)
            return
        if previous is not None and previous != row:
            self.screen.view.redraw_message(previous)
        self._drawn_row = row
        self.screen.view.redraw_message(row)
        self._ensure_ticking()

    def seek(self, forward: bool) -> None:
        self.screen.service.voice.seek(forward)
        self._redraw_player()

    def next_speed(self) -> None:
        speed = self.screen.service.voice.next_speed()
        self.screen.app.notify(f"Voice messages play at {speed:g}x")
        self._redraw_player()

    def _redraw_player(self) -> None:
        player = self.screen.service.voice.player
        if player is not None:
            self.screen.view.redraw_message(player.message_row)

    # ------------------------------------------------------------------ the timer

    def _ensure_ticking(self) -> None:
        if self._timer is None:
            self._timer = self.screen.set_interval(TICK_S, self._tick)

    def _tick(self) -> None:
        voice = self.screen.service.voice
        recording = voice.recording
        if recording is not None:
            self.line.show_state(recording.level, recording.elapsed_ms, recording.at_limit)
        player = voice.player
        if player is not None:
            self.screen.view.redraw_message(player.message_row)
        idle = recording is None and (player is None or not player.playing)
        if idle and self._timer is not None:
            self._timer.stop()
            self._timer = None

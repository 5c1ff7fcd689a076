"""Voice messages in the app: record one for a contact, send it, and play received ones.

``service.voice`` is a :class:`VoiceNotes`. At most one recording and one player at a time.

- :meth:`VoiceNotes.record` refuses while a call is live (the call has the microphone) and
  while another recording runs, then starts a :class:`~.voice_recording.VoiceRecording` on the
  chosen microphone. :meth:`send` finishes it off the loop and sends the file through the
  transfer path (``send_voice``: an attachment with duration and waveform). The file stays
  in its private temporary folder while its upload may resume and for replaying it in this
  run; :meth:`close` removes the folders of finished uploads.
- :meth:`play` toggles the player of a voice message (loading it first: decoded off the
  loop, :mod:`.voice_playback`), through the chosen speaker; another message's player is
  closed first. Playing is refused during a call too.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from messenger_tui.app.errors import BadInput
from messenger_tui.app.models import CallView, ContactId, TransferView
from messenger_tui.app.voice_playback import SEEK_MS, VoicePlayer
from messenger_tui.app.voice_recording import VoiceRecording
from messenger_tui.media.ports import AudioSink, AudioSource

#: Sends a recorded file (path, duration in ms, waveform) to a contact (by id) ...
SendVoice = Callable[[ContactId, Path, int, tuple[int, ...]], Awaitable[TransferView]]
#: ... or to a group (by name).
SendGroupVoice = Callable[[str, Path, int, tuple[int, ...]], Awaitable[TransferView]]


class VoiceNotes:
    def __init__(
        self,
        *,
        microphone: Callable[[], AudioSource],
        speaker: Callable[[], AudioSink],
        current_call: Callable[[], CallView | None],
        send_voice: SendVoice,
        send_group_voice: SendGroupVoice | None = None,
        transfer_for_message: Callable[[int], TransferView | None],
        transfer: Callable[[int], TransferView | None],
    ) -> None:
        self.microphone = microphone
        self.speaker = speaker
        self._current_call = current_call
        self._send_voice = send_voice
        self._send_group_voice = send_group_voice
        self._transfer_for_message = transfer_for_message
        self._transfer = transfer
        self.recording: VoiceRecording | None = None
        #: Who the recording is for: a contact's id, or (``recording_group``) a group's name.
        self.recording_for: ContactId | str | None = None
        #: The recording is for the group ``recording_for`` (app/group_files.py).
        self.recording_group = False
        self.player: VoicePlayer | None = None
        self._sent: list[tuple[int, Path]] = []  # (transfer id, folder)

    def _refuse_during_call(self, what: str) -> None:
        call = self._current_call()
        if call is not None and call.live:
            raise BadInput(f"cannot {what} during a call: the call is using the microphone")

    async def record(self, contact_id: ContactId) -> VoiceRecording:
        """Start recording a voice message for a contact (see the module doc)."""
        return await self._start(contact_id, group=False)

    async def record_for_group(self, name: str) -> VoiceRecording:
        """Start recording a voice message for the group ``name``."""
        return await self._start(name, group=True)

    async def _start(self, target: ContactId | str, *, group: bool) -> VoiceRecording:
        self._refuse_during_call("record a voice message")
        if self.recording is not None:
            raise BadInput("a voice message is already being recorded")
        if self.player is not None:
            await self.player.close()
            self.player = None
        self.recording = await VoiceRecording.start(self.microphone())
        self.recording_for = target
        self.recording_group = group
        return self.recording

    async def send(self) -> TransferView:
        """Finish the recording and send it to the contact it was started for."""
        recording, target = self.recording, self.recording_for
        if recording is None or target is None:
            raise BadInput("no voice message is being recorded")
        self.recording = self.recording_for = None
        path, info = await recording.finish()
        try:
            if isinstance(target, str):
                if self._send_group_voice is None:
                    raise BadInput("voice messages to groups are not available here")
                view = await self._send_group_voice(target, path, info.duration_ms, info.waveform)
            else:
                view = await self._send_voice(target, path, info.duration_ms, info.waveform)
        except Exception:
            shutil.rmtree(recording.folder, ignore_errors=True)
            raise
        self._sent.append((view.id, recording.folder))
        return view

    async def cancel(self) -> None:
        """Stop recording and remove the file (a no-op without a recording)."""
        recording, self.recording, self.recording_for = self.recording, None, None
        if recording is not None:
            await recording.cancel()

    def voice_path(self, message_row: int) -> Path:
        """The ``.ogg`` of a voice message: the downloaded file, or the recording sent."""
        view = self._transfer_for_message(message_row)
        if view is None:
            raise BadInput("that message is not a voice message")
        if view.direction == "down" and view.status != "done":
            raise BadInput(f"the voice message is not downloaded yet ({view.status})")
        if view.path is None or not Path(view.path).is_file():
            raise BadInput("the voice message's file is no longer here")
        return Path(view.path)

    async def play(self, message_row: int) -> VoicePlayer:
        """Play or pause voice message ``message_row``."""
        if self.player is not None and self.player.message_row == message_row:
            await self.player.toggle()
            return self.player
        self._refuse_during_call("play a voice message")
        if self.recording is not None:
            raise BadInput("finish or cancel the recording first")
        path = self.voice_path(message_row)
        await self.stop_playing()
        player = await VoicePlayer.load(self.speaker(), path, message_row)
        self.player = player
        await player.play()
        return player

    def seek(self, forward: bool) -> None:
        if self.player is not None:
            self.player.seek(SEEK_MS if forward else -SEEK_MS)

    def next_speed(self) -> float:
        return self.player.next_speed() if self.player is not None else 1.0

    async def stop_playing(self) -> None:
        player, self.player = self.player, None
        if player is not None:
            await player.close()

    async def close(self) -> None:
        """Stop everything; remove the recordings whose upload is over."""
        await self.cancel()
        await self.stop_playing()
        for transfer_id, folder in self._sent:
            view = self._transfer(transfer_id)
            if view is None or view.status in ("done", "cancelled"):
                shutil.rmtree(folder, ignore_errors=True)
        self._sent.clear()

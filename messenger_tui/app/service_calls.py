"""The calls part of :class:`~messenger_tui.app.service.MessengerService`: placing, answering
and ending 1:1 calls (:mod:`.calls`), the audio devices and the mic test
(:mod:`.audio_setup`).

A part of the service class (a base of ``MessengerService``): its methods forward to the
parts the composition root (:mod:`.service`) wires; the state they use is declared in
:class:`~messenger_tui.app.service_state.ServiceState`.
"""

from __future__ import annotations

from collections.abc import Callable

from messenger_tui.app import audio_setup
from messenger_tui.app.audio_setup import MicLevelTest, device_audio
from messenger_tui.app.errors import BadInput, RelayUnavailable
from messenger_tui.app.models import AudioDevices, CallStats, CallView, ContactId
from messenger_tui.app.outgoing import gate
from messenger_tui.app.service_state import ServiceState
from messenger_tui.media.ports import AudioFactory, AudioSink, AudioSource


class CallMethods(ServiceState):
    """1:1 calls and the audio devices they use."""

    def accept_calls_from_strangers(self, accept: bool = True) -> None:
        """Let calls from people who are not contacts ring (for Echo; users never need it:
        a stranger's offer is dropped unread)."""
        self._receiver.calls_from_strangers = accept

    def set_audio(self, factory: AudioFactory) -> None:
        """Where calls take and play audio: ``factory()`` returns a (source, sink) per call;
        the default, :meth:`chosen_devices` (also meant by :func:`device_audio`)."""
        self.calls.audio_factory = self.chosen_devices if factory is device_audio else factory
        self.group_calls.audio_factory = self.calls.audio_factory

    def chosen_devices(self) -> tuple[AudioSource, AudioSink]:
        """The microphone and speaker the settings name (the system's defaults if none)."""
        return audio_setup.settings_audio(self._settings.current())

    async def audio_devices(self, *, rescan: bool = False) -> AudioDevices:
        """The devices PortAudio reports, or why there are none (:mod:`.audio_setup`)."""
        return await audio_setup.scan_devices(rescan=rescan)

    async def start_mic_test(
        self, device: str | None, on_level: Callable[[float], None]
    ) -> MicLevelTest:
        """Report microphone ``device``'s level to ``on_level`` (:mod:`.audio_setup`)."""
        return await audio_setup.start_mic_test(device, on_level)

    def place_call(self, contact_id: ContactId) -> CallView:
        """Ring a contact. Raises :class:`BadInput` (blocked, key changed, already in a call)
        or :class:`RelayUnavailable` (calls need the relay now; they are never queued)."""
        contact = self._known(contact_id)
        gate(contact, calling=True)
        if not self.connected:
            raise RelayUnavailable("not connected to the relay; calls need a live connection")
        if self.group_calls.busy:
            raise BadInput("you are in a group call; leave it first")
        self._check_devices()
        self.calls.gated = self._settings.current().talk_mode != "open"
        return self.calls.place_call(contact)

    def accept_call(self) -> None:
        """Answer the ringing call (:class:`BadInput` when none rings; :class:`AudioProblem`
        when the chosen devices are missing: the call keeps ringing, decline it)."""
        if self.group_calls.busy:
            raise BadInput("you are in a group call; leave it first")
        self._check_devices()
        self.calls.gated = self._settings.current().talk_mode != "open"
        self.calls.accept()

    def _check_devices(self) -> None:
        """With real devices, say before ringing anyone that there is no microphone or
        speaker (instead of a call that fails once answered). WAV files and Echo's loop
        need no check."""
        if self.calls.audio_factory == self.chosen_devices:
            audio_setup.check_devices(self._settings.current())

    def decline_call(self) -> None:
        """Decline the ringing call (:class:`BadInput` when none rings)."""
        self.calls.decline()

    def hang_up(self) -> None:
        """End, cancel or decline the current call; a no-op without one."""
        self.calls.hang_up()

    def set_call_muted(self, muted: bool) -> None:
        self.calls.set_muted(muted)

    def set_call_talking(self, talking: bool) -> None:
        """Open or close the call's mic gate (the talk key in hold-to-talk or toggle mode)."""
        self.calls.set_talking(talking)

    def current_call(self) -> CallView | None:
        """The live call, or the last one; None before the first."""
        return self.calls.current()

    def call_stats(self) -> CallStats | None:
        return self.calls.stats()

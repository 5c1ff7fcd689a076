"""The service's call-device methods on a private PulseAudio server (tests/helpers/
pulseaudio.py): the device list, the devices chosen in the settings (remembered; the default
audio factory opens them by name), the mic level test, and what happens without audio."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from messenger_tui.app.audio_setup import device_audio
from messenger_tui.app.errors import AudioProblem
from messenger_tui.app.profile import open_profile
from messenger_tui.app.service import MessengerService
from messenger_tui.media import audio_io
from messenger_tui.media.ports import AudioUnavailable
from tests.helpers.clients import make_service
from tests.helpers.pulseaudio import PulseServer
from tests.helpers.speech import speech_wav

OFFLINE_URL = "ws://127.0.0.1:9"
_names = itertools.count()


@pytest.fixture
def devices(pulse_server: PulseServer) -> Iterator[Any]:
    """A pipe source (the microphone the test speaks into) and a pipe sink, with this
    process's PortAudio pointed at them."""
    n = next(_names)
    mic = pulse_server.add_pipe_source(f"app-mic{n}")
    speaker = pulse_server.add_pipe_sink(f"app-speaker{n}")
    with pulse_server.use(source=mic.name, sink=speaker.name):
        yield mic


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[MessengerService]:
    s = make_service(tmp_path, "alice", OFFLINE_URL)
    try:
        yield s
    finally:
        await s.close()
        s.profile.close()


class Levels:
    """Collects mic-test levels from the device thread."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, level: float) -> None:
        with self._lock:
            self.values.append(level)
            self.threads.add(threading.current_thread().name)

    def loudest(self) -> float:
        with self._lock:
            return max(self.values, default=0.0)


async def test_devices_listed_and_the_chosen_ones_remembered_and_opened_by_name(
    devices: Any, service: MessengerService
) -> None:
    found = await service.audio_devices()
    assert found.problem is None
    assert "pulse" in found.inputs and "pulse" in found.outputs
    assert (await service.audio_devices(rescan=True)).inputs == found.inputs

    assert service.settings().microphone == "" and service.settings().speaker == ""
    source, sink = service.chosen_devices()  # nothing chosen: the system defaults
    assert getattr(source, "requested", "?") is None and getattr(sink, "requested", "?") is None

    service.update_settings(microphone="pulse", speaker="pulse")
    source, sink = service.chosen_devices()
    assert getattr(source, "requested", None) == "pulse"
    assert getattr(sink, "requested", None) == "pulse"
    # The calls' default audio factory is the chosen devices, and device_audio means them.
    assert service.calls.audio_factory == service.chosen_devices
    service.set_audio(device_audio)
    assert service.calls.audio_factory == service.chosen_devices

    home = service.profile.paths.home
    await service.close()
    service.profile.close()
    again = MessengerService(open_profile(home, None))
    try:
        assert again.settings().microphone == "pulse" and again.settings().speaker == "pulse"
    finally:
        await again.close()
        again.profile.close()
        service.profile = again.profile  # the fixture closes it again (harmless)


async def test_mic_test_follows_speech_on_the_device_thread_and_stops(
    devices: Any, service: MessengerService, tmp_path: Path
) -> None:
    mic = devices
    levels = Levels()
    test = await service.start_mic_test("pulse", levels)
    try:
        assert test.device == "pulse"
        time.sleep(0.3)
        quiet = levels.loudest()
        assert levels.values, "no level reported"
        assert quiet < 0.01, f"silence measured {quiet}"
        mic.feed(speech_wav(tmp_path / "speech", "Testing, one, two, three."))
        deadline = time.monotonic() + 5
        while levels.loudest() < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert levels.loudest() >= 0.05, f"speech measured {levels.loudest()}"
        # About ten levels a second, from PortAudio's thread, not the event loop's.
        assert threading.current_thread().name not in levels.threads
    finally:
        test.stop()
    count = len(levels.values)
    time.sleep(0.25)
    assert len(levels.values) == count, "a level arrived after stop()"
    test.stop()  # idempotent


async def test_a_missing_microphone_is_an_audio_problem(
    devices: Any, service: MessengerService
) -> None:
    with pytest.raises(AudioProblem) as caught:
        await service.start_mic_test("Built-in Microphone", lambda level: None)
    assert "no microphone called 'Built-in Microphone'" in caught.value.reason
    assert caught.value.fix


async def test_without_portaudio_the_reason_is_given_and_nothing_raises(
    service: MessengerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Any:
        raise AudioUnavailable("PortAudio is not installed (libportaudio.so.2)", "install it")

    monkeypatch.setattr(audio_io, "_sounddevice", missing)
    found = await service.audio_devices(rescan=True)
    assert found.inputs == () and found.outputs == ()
    assert found.problem == "PortAudio is not installed (libportaudio.so.2)"
    assert found.fix == "install it"
    with pytest.raises(AudioProblem, match="PortAudio is not installed"):
        await service.start_mic_test(None, lambda level: None)

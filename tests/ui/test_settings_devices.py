"""The settings screen's Calls section on a private PulseAudio server (tests/helpers/
pulseaudio.py): it lists the devices PortAudio reports, remembers the chosen microphone and
speaker across a restart, and its level meter moves when the microphone hears speech (and
stops when the screen closes). Without audio it says why, and the rest works."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Select, Static

from messenger_tui.app.service import MessengerService
from messenger_tui.media import audio_io
from messenger_tui.media.ports import AudioUnavailable
from messenger_tui.ui import make_app
from messenger_tui.ui.app import MessengerApp
from messenger_tui.ui.screens.settings import SettingsScreen
from messenger_tui.ui.screens.settings_options import SYSTEM_DEFAULT
from tests.helpers.clients import make_service
from tests.helpers.pulseaudio import PulseServer
from tests.helpers.speech import speech_wav

from .conftest import LARGE, OFFLINE_URL, wait_until

_names = itertools.count()


@pytest.fixture
def mic(pulse_server: PulseServer) -> Iterator[Any]:
    n = next(_names)
    source = pulse_server.add_pipe_source(f"ui-mic{n}")
    sink = pulse_server.add_pipe_sink(f"ui-speaker{n}")
    with pulse_server.use(source=source.name, sink=sink.name):
        yield source


async def open_settings(pilot: Any, app: MessengerApp) -> SettingsScreen:
    await wait_until(pilot, lambda: app.main_screen is not None, what="the main screen")
    await pilot.press("f9")
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, SettingsScreen) and app.screen.devices is not None,
        what="the settings with the devices listed",
    )
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    return screen


def options(screen: SettingsScreen, select_id: str) -> list[str]:
    select: Select[str] = screen.query_one(f"#{select_id}", Select)
    return [str(prompt) for prompt, _ in select._options]


async def test_devices_listed_chosen_remembered_and_the_meter_moves(
    mic: Any, tmp_path: Path
) -> None:
    service = make_service(tmp_path, "alice", OFFLINE_URL)
    app = make_app(service)
    async with app.run_test(size=LARGE) as pilot:
        screen = await open_settings(pilot, app)
        for select_id in ("set-microphone", "set-speaker"):
            listed = options(screen, select_id)
            assert listed[0] == SYSTEM_DEFAULT
            assert "pulse" in listed
        state = str(screen.query_one("#audio-state", Static).render())
        assert "microphone(s)" in state and "found" in state

        # Choose "pulse" for both (stored at once).
        for select_id in ("set-microphone", "set-speaker"):
            screen.query_one(f"#{select_id}", Select).value = "pulse"
        await wait_until(
            pilot,
            lambda: (
                (service.settings().microphone, service.settings().speaker) == ("pulse", "pulse")
            ),
            what="the choice stored",
        )

        # The meter: off, then silence, then speech moves it.
        assert "(off)" in str(screen.query_one("#mic-meter", Static).render())
        await pilot.click("#mic-test")
        await wait_until(pilot, lambda: screen.mic_test is not None, what="the mic test")
        test = screen.mic_test
        assert test is not None and test.device == "pulse"
        assert str(screen.query_one("#mic-test", Button).label) == "Stop test"
        await pilot.pause(0.3)
        assert screen.mic_level < 0.01
        mic.feed(speech_wav(tmp_path / "speech", "Is this thing on? Testing the microphone."))
        await wait_until(pilot, lambda: screen.mic_level > 0.05, what="the meter moving")
        assert "█" in str(screen.query_one("#mic-meter", Static).render())

        # Leaving the screen stops the test (the device is closed).
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert screen.mic_test is None
        monitor = getattr(test, "_monitor", None)
        assert monitor is not None and not monitor.running
    await service.close()
    service.profile.close()

    # A restart: the settings show the remembered devices.
    again = make_service(tmp_path, "alice", OFFLINE_URL)
    app = make_app(again)
    try:
        async with app.run_test(size=LARGE) as pilot:
            screen = await open_settings(pilot, app)
            assert screen.query_one("#set-microphone", Select).value == "pulse"
            assert screen.query_one("#set-speaker", Select).value == "pulse"
            assert "(not found)" not in " ".join(options(screen, "set-microphone"))
    finally:
        await again.close()
        again.profile.close()


async def test_without_portaudio_the_section_says_why_and_chat_settings_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Any:
        raise AudioUnavailable(
            "PortAudio is not installed (libportaudio.so.2: cannot open)",
            "install it: sudo apt-get install libportaudio2",
        )

    monkeypatch.setattr(audio_io, "_sounddevice", missing)
    service: MessengerService = make_service(tmp_path, "alice", OFFLINE_URL)
    service.update_settings(microphone="USB Headset")  # chosen earlier, not there now
    app = make_app(service)
    try:
        async with app.run_test(size=LARGE) as pilot:
            screen = await open_settings(pilot, app)
            state = str(screen.query_one("#audio-state", Static).render())
            assert "PortAudio is not installed" in state
            assert "sudo apt-get install libportaudio2" in state
            assert "Chat works" in state
            assert screen.query_one("#mic-test", Button).disabled
            assert options(screen, "set-microphone") == [SYSTEM_DEFAULT, "USB Headset (not found)"]
            # The rest of the settings still work.
            await pilot.click("#set-typing")
            await wait_until(pilot, lambda: not service.settings().typing, what="typing off")
    finally:
        await service.close()
        service.profile.close()

"""A sound server started after the app (as the app's own hint suggests) is found without a
restart: the devices are looked for again when a call starts and when the settings open.
Without any device, F5 says why at once and nothing rings (docs/user-guide.md, Devices).
Real PortAudio on a private PulseAudio server (tests/helpers/pulseaudio.py), a real relay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from messenger_tui.media.audio_io import refresh_devices
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.settings import SettingsScreen
from tests.helpers.clients import introduce, make_service
from tests.helpers.pulseaudio import PulseServer, no_audio_env
from tests.helpers.relay_process import RelayProcess

from .conftest import SMALL, screen_text, wait_until

pytestmark = pytest.mark.slow

_KEYS = ("PULSE_SERVER", "PULSE_CLIENTCONFIG", "PULSE_SOURCE", "PULSE_SINK")


@pytest.fixture
def no_sound_server(tmp_path: Path) -> Iterator[None]:
    """This process's PortAudio starts with no sound server (no device at all); the
    environment and the device list are restored afterwards."""
    saved = {k: os.environ.get(k) for k in _KEYS}
    quiet = no_audio_env(tmp_path)
    for key in _KEYS:
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in quiet.items() if k in _KEYS})
    refresh_devices()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        refresh_devices()


async def test_a_sound_server_started_later_is_found_by_f5_and_the_settings(
    tmp_path: Path, relay: RelayProcess, pulse_server: PulseServer, no_sound_server: None
) -> None:
    alice = make_service(tmp_path, "alice", relay.url)
    bob = make_service(tmp_path, "bob", relay.url)
    await introduce(alice, bob)
    await alice.close()
    mic = pulse_server.add_pipe_source("rescan-mic")
    speaker = pulse_server.add_pipe_sink("rescan-speaker")
    app = make_app(alice)
    try:
        async with app.run_test(size=SMALL) as pilot:
            screen = app.main_screen
            assert screen is not None
            await wait_until(pilot, lambda: "● connected" in screen_text(app), what="online")
            await pilot.press("enter")  # Bob
            await wait_until(pilot, lambda: screen.current is not None)

            # No device: F5 says so (with the fix) and nothing rings.
            await pilot.press("f5")
            await wait_until(pilot, lambda: bool(app._notifications), what="the notice")
            [notice] = [n.message for n in app._notifications]
            assert "no microphone device found" in notice and "PulseAudio" in notice
            assert alice.current_call() is None

            # The sound server appears (this process is told where it is, nothing else).
            os.environ.update(pulse_server.env(source=mic.name, sink=speaker.name))

            await pilot.press("f9")
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, SettingsScreen) and app.screen.devices is not None,
                what="the settings with devices",
            )
            settings = app.screen
            assert isinstance(settings, SettingsScreen)
            state = str(settings.query_one("#audio-state", Static).render())
            assert "microphone(s)" in state and "found" in state, state
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen)

            await pilot.press("f5")
            await wait_until(
                pilot,
                lambda: (call := alice.current_call()) is not None and call.live,
                what="the call ringing",
            )
            await pilot.press("f7")
            await wait_until(
                pilot,
                lambda: (call := alice.current_call()) is not None and not call.live,
                what="hung up",
            )
    finally:
        for s in (alice, bob):
            await s.close()
            s.profile.close()

"""First run (onboarding) and the unlock screen, through the same factory the CLI uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.pwhash import argon2id
from textual.widgets import Input, RadioButton

from messenger_tui.app.launcher import EmbeddedRelay, Launcher
from messenger_tui.app.profile import is_key_encrypted, open_profile, profile_exists
from messenger_tui.ui import make_app
from messenger_tui.ui.screens.main import MainScreen
from messenger_tui.ui.screens.onboarding import OnboardingScreen, UnlockScreen
from tests.helpers.clients import make_service
from tests.helpers.relay_process import RelayProcess

from .conftest import SMALL, screen_text, wait_shown, wait_until

pytestmark = pytest.mark.slow

#: Cheap key derivation for tests (the real default takes ~0.1 s and 64 MiB).
FAST_KDF = (argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)


async def test_onboarding_creates_a_profile_on_the_embedded_relay_with_echo(
    tmp_path: Path, relay: RelayProcess
) -> None:
    # The "embedded relay" here is the test's relay process; its Echo is a real participant.
    echo = make_service(tmp_path, "echo-participant", relay.url)
    started: list[bool] = []

    async def start_embedded() -> bytes:
        started.append(True)
        return echo.identity.public

    home = tmp_path / "new-user"
    launcher = Launcher(
        home, embedded=EmbeddedRelay(relay.url, start_embedded), kdf_limits=FAST_KDF
    )
    app = make_app(launcher=launcher)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, OnboardingScreen))
            await wait_shown(pilot, "Embedded local relay")
            onboarding = app.screen
            assert isinstance(onboarding, OnboardingScreen)
            await pilot.press("enter")  # no name yet
            assert "display name" in onboarding.error_text
            await pilot.press(*"Zoe", "enter", "enter", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="main")
            screen = app.screen
            assert isinstance(screen, MainScreen)
            await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
            assert [s.contact.name for s in screen.conversation_list.summaries] == ["Echo"]
            await wait_shown(pilot, "Zoe")
            assert started == [True]
    finally:
        await app.close_service()
        await echo.close()
        echo.profile.close()
    assert profile_exists(home) and not is_key_encrypted(home)
    profile = open_profile(home, None)  # the app released the profile lock
    try:
        assert profile.name == "Zoe" and profile.relay_url == relay.url
    finally:
        profile.close()


async def test_onboarding_with_a_relay_url_and_passphrase_then_unlock(
    tmp_path: Path, relay: RelayProcess
) -> None:
    home = tmp_path / "careful-user"
    launcher = Launcher(home, kdf_limits=FAST_KDF)
    app = make_app(launcher=launcher)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, OnboardingScreen))
            onboarding = app.screen
            assert isinstance(onboarding, OnboardingScreen)
            onboarding.query_one("#name", Input).value = "Yves"
            onboarding.query_one("#passphrase", Input).value = "correct horse"
            onboarding.query_one("#passphrase2", Input).value = "correct hose"
            onboarding.query_one("#relay-remote", RadioButton).value = True
            await pilot.pause()
            onboarding.query_one("#relay-url", Input).value = "ftp://nowhere"
            onboarding.action_create()
            await pilot.pause()
            assert "passphrases differ" in onboarding.error_text
            onboarding.query_one("#passphrase2", Input).value = "correct horse"
            onboarding.action_create()
            await wait_until(pilot, lambda: "ws://" in onboarding.error_text, what="url error")
            assert not profile_exists(home)
            onboarding.query_one("#relay-url", Input).value = relay.url
            onboarding.action_create()
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="main")
            await wait_until(pilot, lambda: "● connected" in screen_text(app), what="connected")
    finally:
        await app.close_service()
    assert is_key_encrypted(home)

    # Next start: the unlock screen; a wrong passphrase says so and lets the user retry.
    app = make_app(launcher=Launcher(home))
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, UnlockScreen))
            unlock = app.screen
            assert isinstance(unlock, UnlockScreen)
            await pilot.press(*"wrong", "enter")
            await wait_until(pilot, lambda: "Wrong passphrase" in unlock.error_text)
            await wait_shown(pilot, "Wrong passphrase")
            await pilot.press(*"correct horse", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), what="main")
            await wait_shown(pilot, "Yves")
    finally:
        await app.close_service()


def test_launcher_refuses_a_bad_relay_url(tmp_path: Path) -> None:
    from messenger_tui.app.errors import BadInput
    from messenger_tui.app.settings import check_relay_url

    assert check_relay_url("  ws://127.0.0.1:4000 ") == "ws://127.0.0.1:4000"
    with pytest.raises(BadInput):
        check_relay_url("http://example.org")


async def test_a_profile_in_use_elsewhere_is_reported_not_crashed(tmp_path: Path) -> None:
    holder = make_service(tmp_path, "busy", "ws://127.0.0.1:9")  # holds the profile lock
    try:
        app = make_app(launcher=Launcher(tmp_path / "busy"))
        async with app.run_test(size=SMALL) as pilot:
            await wait_until(pilot, lambda: app.startup_error is not None)
        error = app.startup_error
        assert error is not None and error.exit_code == 8
        assert "in use" in str(error) or "another" in str(error)
    finally:
        await holder.close()
        holder.profile.close()
